//! `map_async` and `map_async_unordered`: bounded concurrent async transformation.

use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use pin_project_lite::pin_project;

use crate::error::PipelineError;
use crate::flow::Flow;
use crate::guard::Guarded;
use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext};

/// Emit results in input order (a result waits for the results before it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ordered;

/// Emit results as soon as they complete.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unordered;

/// The in-flight set of an async stage, ordered or not.
pub trait InFlight<Fut: Future>: Stream<Item = Fut::Output> + Unpin + Send + 'static {
    /// An empty set.
    fn empty() -> Self;
    /// Adds a future.
    fn push(&mut self, future: Fut);
    /// Futures in flight (and, when ordered, completed results not yet emitted).
    fn in_flight(&self) -> usize;
}

/// How a `map_async` stage orders its results: [`Ordered`] or [`Unordered`].
pub trait Ordering: Send + 'static {
    /// The in-flight set.
    type Queue<Fut: Future + Send + 'static>: InFlight<Fut>
    where
        Fut::Output: Send;
    /// The stage's name in metrics.
    const OPERATOR: &'static str;
}

impl<Fut: Future + Send + 'static> InFlight<Fut> for FuturesOrdered<Fut>
where
    Fut::Output: Send,
{
    fn empty() -> Self {
        FuturesOrdered::new()
    }
    fn push(&mut self, future: Fut) {
        self.push_back(future);
    }
    fn in_flight(&self) -> usize {
        self.len()
    }
}

impl<Fut: Future + Send + 'static> InFlight<Fut> for FuturesUnordered<Fut>
where
    Fut::Output: Send,
{
    fn empty() -> Self {
        FuturesUnordered::new()
    }
    fn push(&mut self, future: Fut) {
        FuturesUnordered::push(self, future);
    }
    fn in_flight(&self) -> usize {
        self.len()
    }
}

impl Ordering for Ordered {
    type Queue<Fut: Future + Send + 'static>
        = FuturesOrdered<Fut>
    where
        Fut::Output: Send;
    const OPERATOR: &'static str = "map_async";
}

impl Ordering for Unordered {
    type Queue<Fut: Future + Send + 'static>
        = FuturesUnordered<Fut>
    where
        Fut::Output: Send;
    const OPERATOR: &'static str = "map_async_unordered";
}

/// The `map_async` / `map_async_unordered` flow.
#[must_use = "flows do nothing unless run"]
pub struct MapAsync<F, O> {
    parallelism: NonZeroUsize,
    f: F,
    marker: PhantomData<O>,
}

impl<F> MapAsync<F, Ordered> {
    pub(crate) fn ordered(parallelism: NonZeroUsize, f: F) -> Self {
        MapAsync { parallelism, f, marker: PhantomData }
    }
}

impl<F> MapAsync<F, Unordered> {
    pub(crate) fn unordered(parallelism: NonZeroUsize, f: F) -> Self {
        MapAsync { parallelism, f, marker: PhantomData }
    }
}

impl<F, O> std::fmt::Debug for MapAsync<F, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapAsync").field("parallelism", &self.parallelism).finish()
    }
}

pin_project! {
    /// The stream of the `map_async` flows: at most `parallelism` futures (or held results) at once.
    #[must_use = "streams do nothing unless polled"]
    pub struct MapAsyncStream<S, F, Q> {
        #[pin]
        upstream: S,
        f: F,
        in_flight: Q,
        parallelism: usize,
        upstream_done: bool,
        failed: bool,
        stage: Stage,
        probe: StageProbe,
    }
}

impl<S, F, Fut, Q> Stream for MapAsyncStream<S, F, Q>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
    Q: InFlight<Guarded<Fut>>,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        while !*this.upstream_done && this.in_flight.in_flight() < *this.parallelism {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    let future = (this.f)(item);
                    this.in_flight.push(Guarded::new(future, this.stage.metrics().clone()));
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        this.stage.metrics().set_buffer_depth(this.in_flight.in_flight());
        match Pin::new(&mut *this.in_flight).poll_next(cx) {
            Poll::Ready(Some(Ok(out))) => {
                this.probe.record_out();
                Poll::Ready(Some(out))
            }
            Poll::Ready(Some(Err(payload))) => {
                *this.failed = true;
                this.stage.fail(PipelineError::from_panic(this.stage.name(), payload.as_ref()));
                Poll::Ready(None)
            }
            Poll::Ready(None) if *this.upstream_done => Poll::Ready(None),
            // Nothing in flight and upstream has nothing ready: upstream registered our waker.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<In, U, Fut, F, O> Flow<In> for MapAsync<F, O>
where
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = U> + Send + 'static,
    U: Send + 'static,
    O: Ordering,
{
    type Out = U;
    type Stream<S>
        = MapAsyncStream<S, F, O::Queue<Guarded<Fut>>>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register(O::OPERATOR);
        stage.metrics().set_buffer_capacity(self.parallelism.get());
        MapAsyncStream {
            upstream,
            f: self.f,
            in_flight: O::Queue::empty(),
            parallelism: self.parallelism.get(),
            upstream_done: false,
            failed: false,
            probe: stage.probe(),
            stage,
        }
    }
}
