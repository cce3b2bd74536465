//! `map`: transform each element.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `map` flow. Built by `map` on sources and flows.
#[derive(Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Map<F> {
    f: F,
}

impl<F> Map<F> {
    pub(crate) fn new(f: F) -> Self {
        Map { f }
    }
}

impl<F> std::fmt::Debug for Map<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Map")
    }
}

pin_project! {
    /// The stream of the `map` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct MapStream<S, F> {
        #[pin]
        upstream: S,
        f: F,
        probe: DeferredProbe,
    }
}

impl<S, F, U> Stream for MapStream<S, F>
where
    S: Stream,
    F: FnMut(S::Item) -> U,
{
    type Item = U;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let this = self.project();
        match crate::metrics::ready_or_publish!(this.probe, this.upstream.poll_next(cx)) {
            Some(item) => {
                let out = (this.f)(item);
                this.probe.record_in_out();
                Poll::Ready(Some(out))
            }
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

impl<In, U, F> Flow<In> for Map<F>
where
    F: FnMut(In) -> U + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Stream<S>
        = MapStream<S, F>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        MapStream {
            upstream,
            f: self.f,
            probe: DeferredProbe::one_to_one(ctx.register("map").metrics().clone()),
        }
    }
}
