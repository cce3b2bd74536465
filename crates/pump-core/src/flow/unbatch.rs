//! `unbatch`: flatten batches back into elements.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `unbatch` flow. Built by `unbatch` on sources and flows.
#[derive(Debug, Clone, Default)]
#[must_use = "flows do nothing unless run"]
pub struct Unbatch;

impl Unbatch {
    pub(crate) fn new() -> Self {
        Unbatch
    }
}

pin_project! {
    /// The stream of the `unbatch` flow; it holds one batch at a time.
    #[must_use = "streams do nothing unless polled"]
    pub struct UnbatchStream<S, I> {
        #[pin]
        upstream: S,
        current: Option<I>,
        probe: DeferredProbe,
    }
}

impl<S> Stream for UnbatchStream<S, <S::Item as IntoIterator>::IntoIter>
where
    S: Stream,
    S::Item: IntoIterator,
{
    type Item = <S::Item as IntoIterator>::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(items) = this.current.as_mut() {
                if let Some(item) = items.next() {
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                *this.current = None;
            }
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(batch) => {
                    this.probe.record_in();
                    *this.current = Some(batch.into_iter());
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<In> Flow<In> for Unbatch
where
    In: IntoIterator + Send + 'static,
    In::IntoIter: Send + 'static,
    In::Item: Send + 'static,
{
    type Out = In::Item;
    type Stream<S>
        = UnbatchStream<S, In::IntoIter>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        UnbatchStream {
            upstream,
            current: None,
            probe: DeferredProbe::new(ctx.register("unbatch").metrics().clone()),
        }
    }
}
