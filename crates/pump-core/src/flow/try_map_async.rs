//! `try_map_async`: a fallible async transformation with retries, in order, under an error policy.

use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};

use crate::error::{BoxError, panic_message};
use crate::flow::Flow;
use crate::flow::map_async::{InFlight, Ordered, Ordering};
use crate::flow::supervise::{Failed, Supervise};
use crate::guard::Guarded;
use crate::policy::{ErrorPolicy, Failure, FailureHandler};
use crate::stage::StageContext;

/// The `try_map_async` flow. Built by `try_map_async` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct TryMapAsync<F, T, E> {
    parallelism: NonZeroUsize,
    f: F,
    policy: ErrorPolicy<T, E>,
}

impl<F, T, E> TryMapAsync<F, T, E> {
    pub(crate) fn new(parallelism: NonZeroUsize, f: F, policy: ErrorPolicy<T, E>) -> Self {
        TryMapAsync { parallelism, f, policy }
    }
}

impl<F, T, E> fmt::Debug for TryMapAsync<F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapAsync")
            .field("parallelism", &self.parallelism)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<In, U, E, Fut, F> Flow<In> for TryMapAsync<F, In, E>
where
    In: Clone + Send + 'static,
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Into<BoxError> + fmt::Display + Send + 'static,
{
    type Out = U;
    // Boxed: the per-element future is an `async` block, whose type cannot be named. One allocation
    // per element is small next to an async call.
    type Stream<S>
        = BoxStream<'static, U>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("try_map_async");
        stage.metrics().set_buffer_capacity(self.parallelism.get());
        let f = Arc::new(self.f);
        let retry = self.policy.retry;
        let attempt_stage = stage.clone();
        let mut probe = stage.probe();
        let attempts =
            Box::pin(upstream).map(move |element: In| -> BoxFuture<'static, Result<U, Failed<In, E>>> {
                probe.record_in();
                let f = Arc::clone(&f);
                let retry = retry.clone();
                let stage = attempt_stage.clone();
                async move {
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        let attempt = Guarded::new(f(element.clone()), stage.metrics().clone()).await;
                        let error = match attempt {
                            Ok(Ok(out)) => return Ok(out),
                            Ok(Err(error)) => error,
                            Err(payload) => {
                                let failure = Failure::Panicked(panic_message(payload.as_ref()));
                                return Err(Failed { element, failure, attempts });
                            }
                        };
                        match retry.next_retry(&error, attempts) {
                            Some(wait) => {
                                stage.metrics().record_retry();
                                tokio::time::sleep(wait).await;
                            }
                            None => {
                                return Err(Failed { element, failure: Failure::Error(error), attempts });
                            }
                        }
                    }
                }
                .boxed()
            });
        let in_flight =
            InFlightStream::<_, <Ordered as Ordering>::Queue<_>>::new(attempts, self.parallelism.get());
        let probe = stage.probe();
        Supervise::new(in_flight, FailureHandler::new(self.policy.on_failure), stage, probe).boxed()
    }
}

/// Runs up to `parallelism` futures from a stream of futures (`buffered`, with our queue trait).
struct InFlightStream<S, Q> {
    upstream: S,
    queue: Q,
    parallelism: usize,
    upstream_done: bool,
}

impl<S, Q> InFlightStream<S, Q> {
    fn new(upstream: S, parallelism: usize) -> Self
    where
        S: Stream,
        S::Item: Future,
        Q: InFlight<S::Item>,
    {
        InFlightStream { upstream, queue: Q::empty(), parallelism, upstream_done: false }
    }
}

impl<S, Q> Stream for InFlightStream<S, Q>
where
    S: Stream + Unpin,
    S::Item: Future,
    Q: InFlight<S::Item>,
{
    type Item = <S::Item as Future>::Output;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        while !this.upstream_done && this.queue.in_flight() < this.parallelism {
            match this.upstream.poll_next_unpin(cx) {
                Poll::Ready(Some(future)) => this.queue.push(future),
                Poll::Ready(None) => this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        match this.queue.poll_next_unpin(cx) {
            Poll::Ready(Some(out)) => Poll::Ready(Some(out)),
            Poll::Ready(None) if this.upstream_done => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}
