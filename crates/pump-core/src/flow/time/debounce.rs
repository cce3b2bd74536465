//! `debounce`: emit an element only once no newer one has come for a quiet period.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::flow::Flow;
use crate::flow::time::timeout::{arm, poll_elapsed};
use crate::metrics::StageProbe;
use crate::stage::StageContext;

/// The `debounce` flow. Built by `debounce` on sources and flows.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct Debounce {
    quiet: Duration,
}

impl Debounce {
    pub(crate) fn new(quiet: Duration) -> Self {
        Debounce { quiet }
    }
}

pin_project! {
    /// The stream of the `debounce` flow.
    ///
    /// Holds at most one element: the latest. A newer element replaces it (the replaced one is
    /// counted as `dropped`) and restarts the quiet period; when the period passes with no newer
    /// element, the held one is emitted. When upstream ends, the held element is emitted at once.
    #[must_use = "streams do nothing unless polled"]
    pub struct DebounceStream<S: Stream> {
        #[pin]
        upstream: S,
        quiet: Duration,
        held: Option<S::Item>,
        sleep: Option<Pin<Box<Sleep>>>,
        done: bool,
        probe: StageProbe,
    }
}

impl<S: Stream> std::fmt::Debug for DebounceStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebounceStream")
            .field("quiet", &self.quiet)
            .field("holding", &self.held.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl<S: Stream> Stream for DebounceStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    if this.held.replace(item).is_some() {
                        this.probe.metrics().record_dropped(1);
                    }
                    this.probe.metrics().set_buffer_depth(1);
                    arm(this.sleep, *this.quiet);
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    return Poll::Ready(emit(this.held, this.probe));
                }
                Poll::Pending => {
                    if this.held.is_some() && poll_elapsed(this.sleep, cx) {
                        return Poll::Ready(emit(this.held, this.probe));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let held = usize::from(self.held.is_some());
        let (lower, upper) = if self.done { (0, Some(0)) } else { self.upstream.size_hint() };
        (usize::from(lower > 0 || held > 0), upper.and_then(|upper| upper.checked_add(held)))
    }
}

/// Hands out the held element, if any.
fn emit<T>(held: &mut Option<T>, probe: &mut StageProbe) -> Option<T> {
    let item = held.take()?;
    probe.metrics().set_buffer_depth(0);
    probe.record_out();
    Some(item)
}

impl<In: Send + 'static> Flow<In> for Debounce {
    type Out = In;
    type Stream<S>
        = DebounceStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("debounce");
        stage.metrics().set_buffer_capacity(1);
        DebounceStream {
            upstream,
            quiet: self.quiet,
            held: None,
            sleep: None,
            done: false,
            probe: stage.probe(),
        }
    }
}
