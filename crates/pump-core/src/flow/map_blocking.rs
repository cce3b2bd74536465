//! `map_blocking`: CPU-heavy work on tokio's blocking pool, in order, amortised over chunks.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use futures::stream::FuturesOrdered;
use pin_project_lite::pin_project;
use tokio::task::JoinHandle;

use crate::error::PipelineError;
use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext, scope_token_blocking};

/// The most elements handed to a worker at once (a bound on the stage's buffer).
const MAX_CHUNK: usize = 8192;

/// The size of the first chunks, before the stage knows how long an element takes.
const FIRST_CHUNK: usize = 64;

/// How much work a chunk should carry. A hand-off to a blocking thread and back costs tens to a
/// couple of hundred microseconds (thread wake-ups on both sides); chunks of about 4 ms of work keep
/// that under a few percent, while staying small enough to spread the work evenly near the end.
const CHUNK_WORK_NANOS: u64 = 4_000_000;

/// The `map_blocking` flow. Built by `map_blocking` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct MapBlocking<F> {
    parallelism: NonZeroUsize,
    f: F,
}

impl<F> MapBlocking<F> {
    pub(crate) fn new(parallelism: NonZeroUsize, f: F) -> Self {
        MapBlocking { parallelism, f }
    }
}

impl<F> std::fmt::Debug for MapBlocking<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapBlocking").field("parallelism", &self.parallelism).finish()
    }
}

pin_project! {
    /// The stream of the `map_blocking` flow: at most `parallelism` chunks in flight, each of at most
    /// 8192 elements and sized to carry about 4 ms of work (64
    /// elements until the first chunk has been timed); results in
    /// flight, results in input order.
    #[must_use = "streams do nothing unless polled"]
    pub struct MapBlockingStream<S: Stream, F, U> {
        #[pin]
        upstream: S,
        f: Arc<F>,
        chunk: Vec<S::Item>,
        in_flight: FuturesOrdered<JoinHandle<(Vec<U>, u64)>>,
        chunk_len: usize,
        ready: VecDeque<U>,
        parallelism: usize,
        upstream_done: bool,
        failed: bool,
        stage: Stage,
        probe: StageProbe,
    }
}

impl<S, F, U> Stream for MapBlockingStream<S, F, U>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    type Item = U;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let mut this = self.project();
        loop {
            if let Some(out) = this.ready.pop_front() {
                this.probe.record_out();
                return Poll::Ready(Some(out));
            }
            if *this.failed {
                return Poll::Ready(None);
            }
            // Gather what upstream has ready into one chunk, and dispatch while there is room.
            while !*this.upstream_done && this.in_flight.len() < *this.parallelism {
                let dispatch = match this.upstream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        this.probe.record_in();
                        this.chunk.push(item);
                        this.chunk.len() >= *this.chunk_len
                    }
                    Poll::Ready(None) => {
                        *this.upstream_done = true;
                        !this.chunk.is_empty()
                    }
                    Poll::Pending if this.chunk.is_empty() => break,
                    Poll::Pending => true,
                };
                if dispatch {
                    let chunk = std::mem::replace(this.chunk, Vec::with_capacity(*this.chunk_len));
                    let f = Arc::clone(this.f);
                    let metrics = this.stage.metrics().clone();
                    let span = this.stage.span().clone();
                    let token = this.stage.cancellation_token().clone();
                    this.in_flight.push_back(tokio::task::spawn_blocking(move || {
                        scope_token_blocking(token, || {
                            let _entered = span.enter();
                            let started = Instant::now();
                            let out: Vec<U> = chunk.into_iter().map(|item| f(item)).collect();
                            let elapsed = started.elapsed();
                            metrics.record_busy(elapsed);
                            (out, u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
                        })
                    }));
                }
            }
            this.stage.metrics().set_buffer_depth(this.in_flight.len());
            match Pin::new(&mut *this.in_flight).poll_next(cx) {
                Poll::Ready(Some(Ok((outputs, nanos)))) => {
                    // Size the next chunks to carry about CHUNK_WORK_NANOS of work each.
                    if let Some(per_item) = nanos.checked_div(outputs.len() as u64).filter(|n| *n > 0) {
                        let target = usize::try_from(CHUNK_WORK_NANOS / per_item).unwrap_or(MAX_CHUNK);
                        *this.chunk_len = target.clamp(1, MAX_CHUNK);
                    } else if !outputs.is_empty() {
                        *this.chunk_len = MAX_CHUNK;
                    }
                    this.ready.extend(outputs);
                }
                Poll::Ready(Some(Err(join_error))) => {
                    *this.failed = true;
                    let error = match join_error.try_into_panic() {
                        Ok(payload) => PipelineError::from_panic(this.stage.name(), payload.as_ref()),
                        Err(join_error) => PipelineError::io(this.stage.name(), join_error),
                    };
                    this.stage.fail(error);
                    return Poll::Ready(None);
                }
                Poll::Ready(None) if *this.upstream_done && this.chunk.is_empty() => {
                    return Poll::Ready(None);
                }
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<In, U, F> Flow<In> for MapBlocking<F>
where
    In: Send + 'static,
    F: Fn(In) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Stream<S>
        = MapBlockingStream<S, F, U>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("map_blocking");
        stage.metrics().set_buffer_capacity(self.parallelism.get() * MAX_CHUNK);
        MapBlockingStream {
            upstream,
            f: Arc::new(self.f),
            chunk: Vec::with_capacity(FIRST_CHUNK),
            chunk_len: FIRST_CHUNK,
            in_flight: FuturesOrdered::new(),
            ready: VecDeque::new(),
            parallelism: self.parallelism.get(),
            upstream_done: false,
            failed: false,
            probe: stage.probe(),
            stage,
        }
    }
}
