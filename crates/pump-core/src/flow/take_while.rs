//! `take_while`: elements while a predicate holds.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::stage::StageContext;

/// The `take_while` flow. Built by `take_while` on sources and flows.
#[derive(Clone)]
#[must_use = "flows do nothing unless run"]
pub struct TakeWhile<P> {
    predicate: P,
}

impl<P> TakeWhile<P> {
    pub(crate) fn new(predicate: P) -> Self {
        TakeWhile { predicate }
    }
}

impl<P> std::fmt::Debug for TakeWhile<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TakeWhile")
    }
}

pin_project! {
    /// The stream of the `take_while` flow. The first rejected element ends it and drops upstream.
    #[must_use = "streams do nothing unless polled"]
    pub struct TakeWhileStream<S, P> {
        upstream: Option<Pin<Box<S>>>,
        predicate: P,
        probe: StageProbe,
    }
}

impl<S, P> Stream for TakeWhileStream<S, P>
where
    S: Stream,
    P: FnMut(&S::Item) -> bool,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let Some(upstream) = this.upstream.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(upstream.as_mut().poll_next(cx)) {
            Some(item) => {
                this.probe.record_in();
                if (this.predicate)(&item) {
                    this.probe.record_out();
                    Poll::Ready(Some(item))
                } else {
                    *this.upstream = None;
                    Poll::Ready(None)
                }
            }
            None => {
                *this.upstream = None;
                Poll::Ready(None)
            }
        }
    }
}

impl<In, P> Flow<In> for TakeWhile<P>
where
    In: Send + 'static,
    P: FnMut(&In) -> bool + Send + 'static,
{
    type Out = In;
    type Stream<S>
        = TakeWhileStream<S, P>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        TakeWhileStream {
            upstream: Some(Box::pin(upstream)),
            predicate: self.predicate,
            probe: ctx.register("take_while").probe(),
        }
    }
}
