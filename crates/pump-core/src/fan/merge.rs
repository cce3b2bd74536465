//! `merge` and `merge_all`: elements of several inputs as they come, fairly.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::Either;

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::source::Source;
use crate::stage::StageContext;

/// The `merge` flow: its upstream merged with another source. Built by `merge` on sources and
/// flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Merge<O> {
    other: O,
}

impl<O> Merge<O> {
    pub(crate) fn new(other: O) -> Self {
        Merge { other }
    }
}

impl<In, O> Flow<In> for Merge<O>
where
    In: Send + 'static,
    O: Source<Item = In>,
{
    type Out = In;
    type Stream<S>
        = MergeStream<Either<S, O::Stream>>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let other = self.other.open(ctx);
        let probe = ctx.register("merge").probe();
        MergeStream::new(vec![Either::Left(upstream), Either::Right(other)], probe)
    }
}

/// The `merge_all` source. Built by [`merge_all`].
#[derive(Debug, Clone)]
#[must_use = "sources do nothing unless run"]
pub struct MergeAll<S> {
    sources: Vec<S>,
}

/// A source merging all `sources`: elements are taken round-robin from the inputs that have one
/// ready, so none starves another; each input's own order is kept; it ends when all have ended.
/// Nothing is buffered: an element is pulled from an input only when downstream asks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = pump_core::fan::merge_all(vec![source::iter(vec![1, 2]), source::iter(vec![10, 20])])
///     .to(sink::collect())
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(out.value, vec![1, 10, 2, 20]);
/// # }
/// ```
pub fn merge_all<S: Source>(sources: Vec<S>) -> MergeAll<S> {
    MergeAll { sources }
}

impl<Src: Source> Source for MergeAll<Src> {
    type Item = Src::Item;
    type Stream = MergeStream<Src::Stream>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let streams = self.sources.into_iter().map(|source| source.open(ctx)).collect();
        MergeStream::new(streams, ctx.register("merge").probe())
    }
}

/// The stream of `merge` and `merge_all`.
#[must_use = "streams do nothing unless polled"]
pub struct MergeStream<S> {
    /// The inputs that have not ended, in their original order.
    streams: Vec<Pin<Box<S>>>,
    /// Where the next poll starts: just after the input that gave the last element.
    next: usize,
    probe: StageProbe,
}

impl<S> std::fmt::Debug for MergeStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeStream").field("inputs", &self.streams.len()).field("next", &self.next).finish()
    }
}

impl<S: Stream> MergeStream<S> {
    fn new(streams: Vec<S>, probe: StageProbe) -> Self {
        MergeStream { streams: streams.into_iter().map(Box::pin).collect(), next: 0, probe }
    }
}

impl<S: Stream> Stream for MergeStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let mut index = this.next;
        let mut tried = 0;
        // Try each remaining input once, starting after the one that gave the last element.
        while tried < this.streams.len() {
            if index >= this.streams.len() {
                index = 0;
            }
            match this.streams[index].as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.next = index + 1;
                    this.probe.record_in();
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                // The next input slides into `index`; it has not been tried yet.
                Poll::Ready(None) => drop(this.streams.remove(index)),
                Poll::Pending => {
                    tried += 1;
                    index += 1;
                }
            }
        }
        if this.streams.is_empty() { Poll::Ready(None) } else { Poll::Pending }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.streams.iter().fold((0, Some(0)), |(low, high), stream| {
            let (stream_low, stream_high) = stream.size_hint();
            (low.saturating_add(stream_low), high.zip(stream_high).and_then(|(a, b)| a.checked_add(b)))
        })
    }
}

// Every input is boxed, so the stream is `Unpin` whatever they are.
impl<S> Unpin for MergeStream<S> {}
