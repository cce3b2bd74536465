//! `zip`: pairs of one element from each of two inputs.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::source::Source;
use crate::stage::StageContext;

/// The `zip` flow: its upstream paired with another source. Built by `zip` on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Zip<O> {
    other: O,
}

impl<O> Zip<O> {
    pub(crate) fn new(other: O) -> Self {
        Zip { other }
    }
}

impl<In, O> Flow<In> for Zip<O>
where
    In: Send + 'static,
    O: Source,
{
    type Out = (In, O::Item);
    type Stream<S>
        = ZipStream<S, O::Stream>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let other = self.other.open(ctx);
        let probe = ctx.register("zip").probe();
        ZipStream { first: Some(Box::pin(upstream)), second: Some(Box::pin(other)), pending: None, probe }
    }
}

/// The stream of `zip`. When either input ends it ends, and drops both inputs (and an element of
/// the other one it may have been holding).
#[must_use = "streams do nothing unless polled"]
pub struct ZipStream<A: Stream, B> {
    first: Option<Pin<Box<A>>>,
    second: Option<Pin<Box<B>>>,
    /// An element of `first` waiting for its partner.
    pending: Option<A::Item>,
    probe: StageProbe,
}

impl<A: Stream, B> std::fmt::Debug for ZipStream<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipStream")
            .field("ended", &self.first.is_none())
            .field("holding", &self.pending.is_some())
            .finish()
    }
}

impl<A: Stream, B: Stream> ZipStream<A, B> {
    fn end(&mut self) -> Poll<Option<(A::Item, B::Item)>> {
        self.first = None;
        self.second = None;
        self.pending = None;
        Poll::Ready(None)
    }
}

impl<A: Stream, B: Stream> Stream for ZipStream<A, B> {
    type Item = (A::Item, B::Item);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let (Some(first), Some(second)) = (this.first.as_mut(), this.second.as_mut()) else {
            return Poll::Ready(None);
        };
        if this.pending.is_none() {
            match first.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    this.pending = Some(item);
                }
                Poll::Ready(None) => return this.end(),
                Poll::Pending => return Poll::Pending,
            }
        }
        match second.as_mut().poll_next(cx) {
            Poll::Ready(Some(partner)) => match this.pending.take() {
                Some(item) => {
                    this.probe.record_in();
                    this.probe.record_out();
                    Poll::Ready(Some((item, partner)))
                }
                None => this.end(),
            },
            Poll::Ready(None) => this.end(),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (Some(first), Some(second)) = (&self.first, &self.second) else {
            return (0, Some(0));
        };
        let held = usize::from(self.pending.is_some());
        let (first_low, first_high) = first.size_hint();
        let (first_low, first_high) =
            (first_low.saturating_add(held), first_high.and_then(|h| h.checked_add(held)));
        let (second_low, second_high) = second.size_hint();
        let high = match (first_high, second_high) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        (first_low.min(second_low), high)
    }
}

// Both inputs are boxed, so the stream is `Unpin` whatever they are.
impl<A: Stream, B> Unpin for ZipStream<A, B> {}
