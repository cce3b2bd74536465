//! A future wrapper that turns a panic into a value and times the work.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;

use crate::metrics::StageMetrics;

/// A caught panic's payload.
pub(crate) type PanicPayload = Box<dyn Any + Send + 'static>;

pin_project! {
    /// Polls `inner`, catching a panic in it and adding the time spent in each poll to the stage's
    /// busy time.
    #[must_use = "futures do nothing unless polled"]
    pub struct Guarded<F> {
        #[pin]
        inner: F,
        metrics: Arc<StageMetrics>,
    }
}

impl<F> Guarded<F> {
    pub(crate) fn new(inner: F, metrics: Arc<StageMetrics>) -> Self {
        Guarded { inner, metrics }
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, PanicPayload>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let started = Instant::now();
        let inner = this.inner;
        let result = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        this.metrics.record_busy(started.elapsed());
        match result {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
