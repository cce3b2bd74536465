//! `filter`: keep the elements a predicate accepts.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `filter` flow. Built by `filter` on sources and flows.
#[derive(Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Filter<P> {
    predicate: P,
}

impl<P> Filter<P> {
    pub(crate) fn new(predicate: P) -> Self {
        Filter { predicate }
    }
}

impl<P> std::fmt::Debug for Filter<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

pin_project! {
    /// The stream of the `filter` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct FilterStream<S, P> {
        #[pin]
        upstream: S,
        predicate: P,
        probe: DeferredProbe,
    }
}

impl<S, P> Stream for FilterStream<S, P>
where
    S: Stream,
    P: FnMut(&S::Item) -> bool,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(item) => {
                    this.probe.record_in();
                    if (this.predicate)(&item) {
                        this.probe.record_out();
                        return Poll::Ready(Some(item));
                    }
                }
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.upstream.size_hint().1)
    }
}

impl<In, P> Flow<In> for Filter<P>
where
    In: Send + 'static,
    P: FnMut(&In) -> bool + Send + 'static,
{
    type Out = In;
    type Stream<S>
        = FilterStream<S, P>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        FilterStream {
            upstream,
            predicate: self.predicate,
            probe: DeferredProbe::new(ctx.register("filter").metrics().clone()),
        }
    }
}
