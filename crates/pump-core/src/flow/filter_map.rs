//! `filter_map`: transform and keep the `Some` results.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `filter_map` flow. Built by `filter_map` on sources and flows.
#[derive(Clone)]
#[must_use = "flows do nothing unless run"]
pub struct FilterMap<F> {
    f: F,
}

impl<F> FilterMap<F> {
    pub(crate) fn new(f: F) -> Self {
        FilterMap { f }
    }
}

impl<F> std::fmt::Debug for FilterMap<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilterMap")
    }
}

pin_project! {
    /// The stream of the `filter_map` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct FilterMapStream<S, F> {
        #[pin]
        upstream: S,
        f: F,
        probe: DeferredProbe,
    }
}

impl<S, F, U> Stream for FilterMapStream<S, F>
where
    S: Stream,
    F: FnMut(S::Item) -> Option<U>,
{
    type Item = U;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let mut this = self.project();
        loop {
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(item) => {
                    this.probe.record_in();
                    if let Some(out) = (this.f)(item) {
                        this.probe.record_out();
                        return Poll::Ready(Some(out));
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

impl<In, U, F> Flow<In> for FilterMap<F>
where
    F: FnMut(In) -> Option<U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Stream<S>
        = FilterMapStream<S, F>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        FilterMapStream {
            upstream,
            f: self.f,
            probe: DeferredProbe::new(ctx.register("filter_map").metrics().clone()),
        }
    }
}
