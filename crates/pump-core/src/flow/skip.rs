//! `skip`: discard the first `n` elements.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `skip` flow. Built by `skip` on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Skip {
    n: u64,
}

impl Skip {
    pub(crate) fn new(n: u64) -> Self {
        Skip { n }
    }
}

pin_project! {
    /// The stream of the `skip` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct SkipStream<S> {
        #[pin]
        upstream: S,
        remaining: u64,
        probe: DeferredProbe,
    }
}

impl<S: Stream> Stream for SkipStream<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(item) => {
                    this.probe.record_in();
                    if *this.remaining == 0 {
                        this.probe.record_out();
                        return Poll::Ready(Some(item));
                    }
                    *this.remaining -= 1;
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<In: Send + 'static> Flow<In> for Skip {
    type Out = In;
    type Stream<S>
        = SkipStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        SkipStream {
            upstream,
            remaining: self.n,
            probe: DeferredProbe::new(ctx.register("skip").metrics().clone()),
        }
    }
}
