//! Applies an error policy's on-failure half to a stream of per-element results.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::error::BoxError;
use crate::metrics::StageProbe;
use crate::policy::{AfterFailure, Failure, FailureHandler};
use crate::stage::Stage;

/// An element that failed for good, as reported by a per-element future.
pub(crate) struct Failed<T, E> {
    pub(crate) element: T,
    pub(crate) failure: Failure<E>,
    pub(crate) attempts: u32,
}

pin_project! {
    /// Passes `Ok` values on and hands failures to the policy (dead letters, or failing the run).
    #[must_use = "streams do nothing unless polled"]
    pub struct Supervise<S, T, E> {
        #[pin]
        upstream: S,
        handler: FailureHandler<T, E>,
        failed: bool,
        stage: Stage,
        probe: StageProbe,
    }
}

impl<S, T, E> Supervise<S, T, E> {
    pub(crate) fn new(upstream: S, handler: FailureHandler<T, E>, stage: Stage, probe: StageProbe) -> Self {
        Supervise { upstream, handler, failed: false, stage, probe }
    }
}

impl<S, T, E> fmt::Debug for Supervise<S, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervise").field("stage", &self.stage.name()).finish()
    }
}

impl<S, U, T, E> Stream for Supervise<S, T, E>
where
    S: Stream<Item = Result<U, Failed<T, E>>>,
    T: Send + 'static,
    E: Into<BoxError> + fmt::Display + Send + 'static,
{
    type Item = U;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let mut this = self.project();
        loop {
            ready!(this.handler.poll_deliver(cx));
            if *this.failed {
                return Poll::Ready(None);
            }
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(Ok(out)) => {
                    this.probe.record_out();
                    return Poll::Ready(Some(out));
                }
                Some(Err(failed)) => {
                    let after =
                        this.handler.handle(this.stage, failed.element, failed.failure, failed.attempts);
                    if after == AfterFailure::Stop {
                        *this.failed = true;
                        return Poll::Ready(None);
                    }
                }
                None => return Poll::Ready(None),
            }
        }
    }
}
