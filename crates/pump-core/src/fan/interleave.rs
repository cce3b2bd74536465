//! `interleave` and `interleave_all`: a segment from each input in turn.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::Either;

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::source::Source;
use crate::stage::StageContext;

/// The `interleave` flow: segments of its upstream alternating with segments of another source.
/// Built by `interleave` on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Interleave<O> {
    other: O,
    segment_size: NonZeroUsize,
}

impl<O> Interleave<O> {
    pub(crate) fn new(other: O, segment_size: NonZeroUsize) -> Self {
        Interleave { other, segment_size }
    }
}

impl<In, O> Flow<In> for Interleave<O>
where
    In: Send + 'static,
    O: Source<Item = In>,
{
    type Out = In;
    type Stream<S>
        = InterleaveStream<Either<S, O::Stream>>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let other = self.other.open(ctx);
        let probe = ctx.register("interleave").probe();
        InterleaveStream::new(vec![Either::Left(upstream), Either::Right(other)], self.segment_size, probe)
    }
}

/// The `interleave_all` source. Built by [`interleave_all`].
#[derive(Debug, Clone)]
#[must_use = "sources do nothing unless run"]
pub struct InterleaveAll<S> {
    sources: Vec<S>,
    segment_size: NonZeroUsize,
}

/// A source taking `segment_size` elements from each source in turn; a source that ends leaves
/// the rotation (mid-segment too), so when one is left, the rest of it follows. The order is
/// deterministic: it waits for the input whose turn it is, even if another has elements ready.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use std::num::NonZeroUsize;
/// let out = pump_core::fan::interleave_all(
///     vec![source::iter(vec![1, 2, 3]), source::iter(vec![10, 20, 30, 40, 50])],
///     NonZeroUsize::new(2).unwrap(),
/// )
/// .to(sink::collect())
/// .run()
/// .await
/// .unwrap();
/// assert_eq!(out.value, vec![1, 2, 10, 20, 3, 30, 40, 50]);
/// # }
/// ```
pub fn interleave_all<S: Source>(sources: Vec<S>, segment_size: NonZeroUsize) -> InterleaveAll<S> {
    InterleaveAll { sources, segment_size }
}

impl<Src: Source> Source for InterleaveAll<Src> {
    type Item = Src::Item;
    type Stream = InterleaveStream<Src::Stream>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let streams = self.sources.into_iter().map(|source| source.open(ctx)).collect();
        InterleaveStream::new(streams, self.segment_size, ctx.register("interleave").probe())
    }
}

/// The stream of `interleave` and `interleave_all`.
#[must_use = "streams do nothing unless polled"]
pub struct InterleaveStream<S> {
    /// The inputs that have not ended, in their original order.
    streams: Vec<Pin<Box<S>>>,
    segment_size: usize,
    /// Whose turn it is.
    current: usize,
    /// Elements taken from `current` in this segment.
    taken: usize,
    probe: StageProbe,
}

impl<S> std::fmt::Debug for InterleaveStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterleaveStream")
            .field("inputs", &self.streams.len())
            .field("segment_size", &self.segment_size)
            .field("current", &self.current)
            .field("taken", &self.taken)
            .finish()
    }
}

impl<S: Stream> InterleaveStream<S> {
    fn new(streams: Vec<S>, segment_size: NonZeroUsize, probe: StageProbe) -> Self {
        InterleaveStream {
            streams: streams.into_iter().map(Box::pin).collect(),
            segment_size: segment_size.get(),
            current: 0,
            taken: 0,
            probe,
        }
    }
}

impl<S: Stream> Stream for InterleaveStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        loop {
            if this.streams.is_empty() {
                return Poll::Ready(None);
            }
            if this.current >= this.streams.len() {
                this.current = 0;
            }
            match this.streams[this.current].as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.taken += 1;
                    if this.taken == this.segment_size {
                        this.taken = 0;
                        this.current += 1;
                    }
                    this.probe.record_in();
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    // The next input slides into `current` and starts a fresh segment.
                    drop(this.streams.remove(this.current));
                    this.taken = 0;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.streams.iter().fold((0, Some(0)), |(low, high), stream| {
            let (stream_low, stream_high) = stream.size_hint();
            (low.saturating_add(stream_low), high.zip(stream_high).and_then(|(a, b)| a.checked_add(b)))
        })
    }
}

// Every input is boxed, so the stream is `Unpin` whatever they are.
impl<S> Unpin for InterleaveStream<S> {}
