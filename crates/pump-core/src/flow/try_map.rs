//! `try_map`: a fallible synchronous transformation under an error policy.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::error::{BoxError, panic_message};
use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::policy::{AfterFailure, ErrorPolicy, Failure, FailureHandler, RetryPart};
use crate::stage::{Stage, StageContext};

/// The `try_map` flow. Built by `try_map` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct TryMap<F, T, E> {
    f: F,
    policy: ErrorPolicy<T, E>,
}

impl<F, T, E> TryMap<F, T, E> {
    pub(crate) fn new(f: F, policy: ErrorPolicy<T, E>) -> Self {
        TryMap { f, policy }
    }
}

impl<F, T, E> fmt::Debug for TryMap<F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMap").field("policy", &self.policy).finish()
    }
}

pin_project! {
    /// The stream of the `try_map` flow. While an element waits out a retry backoff, nothing else is
    /// pulled (order is kept).
    #[must_use = "streams do nothing unless polled"]
    pub struct TryMapStream<S, F, T, E> {
        #[pin]
        upstream: S,
        f: F,
        retry: RetryPart<E>,
        handler: FailureHandler<T, E>,
        backoff: Option<(T, u32, Pin<Box<Sleep>>)>,
        failed: bool,
        stage: Stage,
        probe: StageProbe,
    }
}

impl<S, F, U, E> Stream for TryMapStream<S, F, S::Item, E>
where
    S: Stream,
    S::Item: Send + 'static,
    F: FnMut(&S::Item) -> Result<U, E>,
    E: Into<BoxError> + fmt::Display + Send + 'static,
{
    type Item = U;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let mut this = self.project();
        loop {
            ready!(this.handler.poll_deliver(cx));
            if *this.failed {
                return Poll::Ready(None);
            }
            let (item, previous_attempts) = match this.backoff.as_mut() {
                Some((_, _, sleep)) => {
                    ready!(sleep.as_mut().poll(cx));
                    let Some((item, attempts, _)) = this.backoff.take() else {
                        continue;
                    };
                    (item, attempts)
                }
                None => {
                    match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx))
                    {
                        Some(item) => {
                            this.probe.record_in();
                            (item, 0)
                        }
                        None => return Poll::Ready(None),
                    }
                }
            };
            let attempts = previous_attempts + 1;
            let f = &mut *this.f;
            let failure = match catch_unwind(AssertUnwindSafe(|| f(&item))) {
                Ok(Ok(out)) => {
                    this.probe.record_out();
                    return Poll::Ready(Some(out));
                }
                Ok(Err(error)) => {
                    if let Some(wait) = this.retry.next_retry(&error, attempts) {
                        this.stage.metrics().record_retry();
                        *this.backoff = Some((item, attempts, Box::pin(tokio::time::sleep(wait))));
                        continue;
                    }
                    Failure::Error(error)
                }
                Err(payload) => Failure::Panicked(panic_message(payload.as_ref())),
            };
            if this.handler.handle(this.stage, item, failure, attempts) == AfterFailure::Stop {
                *this.failed = true;
                return Poll::Ready(None);
            }
        }
    }
}

impl<In, U, E, F> Flow<In> for TryMap<F, In, E>
where
    In: Send + 'static,
    F: FnMut(&In) -> Result<U, E> + Send + 'static,
    U: Send + 'static,
    E: Into<BoxError> + fmt::Display + Send + 'static,
{
    type Out = U;
    type Stream<S>
        = TryMapStream<S, F, In, E>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("try_map");
        TryMapStream {
            upstream,
            f: self.f,
            retry: self.policy.retry,
            handler: FailureHandler::new(self.policy.on_failure),
            backoff: None,
            failed: false,
            probe: stage.probe(),
            stage,
        }
    }
}
