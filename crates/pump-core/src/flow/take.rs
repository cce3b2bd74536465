//! `take`: the first `n` elements.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::stage::StageContext;

/// The `take` flow. Built by `take` on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Take {
    n: u64,
}

impl Take {
    pub(crate) fn new(n: u64) -> Self {
        Take { n }
    }
}

pin_project! {
    /// The stream of the `take` flow. Once `n` elements are out, upstream is dropped (cancelled).
    #[must_use = "streams do nothing unless polled"]
    pub struct TakeStream<S> {
        upstream: Option<Pin<Box<S>>>,
        remaining: u64,
        probe: StageProbe,
    }
}

impl<S: Stream> Stream for TakeStream<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let Some(upstream) = this.upstream.as_mut() else {
            return Poll::Ready(None);
        };
        if *this.remaining == 0 {
            *this.upstream = None;
            return Poll::Ready(None);
        }
        match ready!(upstream.as_mut().poll_next(cx)) {
            Some(item) => {
                this.probe.record_in();
                this.probe.record_out();
                *this.remaining -= 1;
                if *this.remaining == 0 {
                    // Cancel upstream as soon as the last element is out.
                    *this.upstream = None;
                }
                Poll::Ready(Some(item))
            }
            None => {
                *this.upstream = None;
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        match &self.upstream {
            None => (0, Some(0)),
            Some(upstream) => {
                let (low, high) = upstream.size_hint();
                (low.min(remaining), Some(high.map_or(remaining, |high| high.min(remaining))))
            }
        }
    }
}

impl<In: Send + 'static> Flow<In> for Take {
    type Out = In;
    type Stream<S>
        = TakeStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        TakeStream {
            upstream: Some(Box::pin(upstream)),
            remaining: self.n,
            probe: ctx.register("take").probe(),
        }
    }
}
