//! `concat` and `concat_all`: all of one input, then all of the next.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::source::Source;
use crate::stage::StageContext;

/// The `concat` flow: its upstream, then another source. Built by `concat` on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Concat<O> {
    other: O,
}

impl<O> Concat<O> {
    pub(crate) fn new(other: O) -> Self {
        Concat { other }
    }
}

impl<In, O> Flow<In> for Concat<O>
where
    In: Send + 'static,
    O: Source<Item = In>,
{
    type Out = In;
    type Stream<S>
        = ConcatStream<S, O>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let probe = ctx.register("concat").probe();
        ConcatStream {
            first: Some(Box::pin(upstream)),
            second: Some(self.other),
            second_stream: None,
            ctx: ctx.clone(),
            probe,
        }
    }
}

/// The stream of `concat`. The second source is opened only when the first input has ended (so
/// nothing of it runs, or is buffered, before), and not at all if the run is draining or cancelled
/// by then.
#[must_use = "streams do nothing unless polled"]
pub struct ConcatStream<S, O: Source> {
    first: Option<Pin<Box<S>>>,
    second: Option<O>,
    second_stream: Option<Pin<Box<O::Stream>>>,
    ctx: StageContext,
    probe: StageProbe,
}

impl<S, O: Source> std::fmt::Debug for ConcatStream<S, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcatStream")
            .field("in_first", &self.first.is_some())
            .field("second_opened", &self.second_stream.is_some())
            .finish()
    }
}

/// Whether a source opened now would only be stopped again.
fn stopping(ctx: &StageContext) -> bool {
    ctx.drain_token().is_cancelled() || ctx.cancellation_token().is_cancelled()
}

impl<S, O> Stream for ConcatStream<S, O>
where
    S: Stream<Item = O::Item>,
    O: Source,
{
    type Item = O::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<O::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.as_mut() {
            match first.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    this.first = None;
                    if let Some(second) = this.second.take()
                        && !stopping(&this.ctx)
                    {
                        this.second_stream = Some(Box::pin(second.open(&this.ctx)));
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let Some(second) = this.second_stream.as_mut() else {
            return Poll::Ready(None);
        };
        match second.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.probe.record_in();
                this.probe.record_out();
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.second_stream = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match (&self.first, &self.second_stream) {
            // The second source is not opened yet: its length is unknown.
            (Some(first), _) => (first.size_hint().0, None),
            (None, Some(second)) => second.size_hint(),
            (None, None) => (0, Some(0)),
        }
    }
}

// The inputs are boxed (and the unopened source is never pinned), so the stream is `Unpin`.
impl<S, O: Source> Unpin for ConcatStream<S, O> {}

/// The `concat_all` source. Built by [`concat_all`].
#[derive(Debug, Clone)]
#[must_use = "sources do nothing unless run"]
pub struct ConcatAll<S> {
    sources: Vec<S>,
}

/// A source yielding all of the first source, then all of the second, and so on. Each source is
/// opened only when the previous one has ended (and not at all once the run drains or is
/// cancelled).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = pump_core::fan::concat_all(vec![source::iter(vec![1, 2]), source::iter(vec![3]), source::iter(vec![4])])
///     .to(sink::collect())
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(out.value, vec![1, 2, 3, 4]);
/// # }
/// ```
pub fn concat_all<S: Source>(sources: Vec<S>) -> ConcatAll<S> {
    ConcatAll { sources }
}

impl<Src: Source> Source for ConcatAll<Src> {
    type Item = Src::Item;
    type Stream = ConcatAllStream<Src>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let probe = ctx.register("concat").probe();
        ConcatAllStream { remaining: self.sources.into(), current: None, ctx: ctx.clone(), probe }
    }
}

/// The stream of `concat_all`.
#[must_use = "streams do nothing unless polled"]
pub struct ConcatAllStream<Src: Source> {
    remaining: VecDeque<Src>,
    current: Option<Pin<Box<Src::Stream>>>,
    ctx: StageContext,
    probe: StageProbe,
}

impl<Src: Source> std::fmt::Debug for ConcatAllStream<Src> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcatAllStream")
            .field("remaining", &self.remaining.len())
            .field("current", &self.current.is_some())
            .finish()
    }
}

impl<Src: Source> Stream for ConcatAllStream<Src> {
    type Item = Src::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Src::Item>> {
        let this = self.get_mut();
        loop {
            if this.current.is_none() {
                if stopping(&this.ctx) {
                    this.remaining.clear();
                }
                let Some(next) = this.remaining.pop_front() else {
                    return Poll::Ready(None);
                };
                this.current = Some(Box::pin(next.open(&this.ctx)));
            }
            let Some(current) = this.current.as_mut() else {
                continue;
            };
            match current.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => this.current = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

// The inputs are boxed (and unopened sources are never pinned), so the stream is `Unpin`.
impl<Src: Source> Unpin for ConcatAllStream<Src> {}
