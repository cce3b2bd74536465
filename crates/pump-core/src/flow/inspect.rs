//! `inspect`: look at each element as it passes.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `inspect` flow. Built by `inspect` on sources and flows.
#[derive(Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Inspect<F> {
    f: F,
}

impl<F> Inspect<F> {
    pub(crate) fn new(f: F) -> Self {
        Inspect { f }
    }
}

impl<F> std::fmt::Debug for Inspect<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspect")
    }
}

pin_project! {
    /// The stream of the `inspect` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct InspectStream<S, F> {
        #[pin]
        upstream: S,
        f: F,
        probe: DeferredProbe,
    }
}

impl<S, F> Stream for InspectStream<S, F>
where
    S: Stream,
    F: FnMut(&S::Item),
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let item = crate::metrics::ready_or_publish!(this.probe, this.upstream.poll_next(cx));
        if let Some(item) = &item {
            (this.f)(item);
            this.probe.record_in_out();
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

impl<In, F> Flow<In> for Inspect<F>
where
    In: Send + 'static,
    F: FnMut(&In) + Send + 'static,
{
    type Out = In;
    type Stream<S>
        = InspectStream<S, F>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        InspectStream {
            upstream,
            f: self.f,
            probe: DeferredProbe::one_to_one(ctx.register("inspect").metrics().clone()),
        }
    }
}
