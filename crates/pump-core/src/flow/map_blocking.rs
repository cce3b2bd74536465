//! `map_blocking`: CPU-heavy work on dedicated blocking threads, in order, amortised over chunks.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::sync::mpsc;

use crate::error::{PipelineError, panic_message};
use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext, scope_token_blocking};

/// The most elements handed to a worker at once (a bound on the stage's buffer).
const MAX_CHUNK: usize = 8192;

/// The size of the first chunks, before the stage knows how long an element takes.
const FIRST_CHUNK: usize = 64;

/// How much work a chunk should carry: enough that waking the pipeline's task to hand results back
/// (tens to a couple of hundred microseconds on a virtual machine) is a few percent of it.
const CHUNK_WORK_NANOS: u64 = 4_000_000;

/// Chunks in flight per worker: one running and one queued, so a worker that finishes a chunk takes
/// the next one at once, without waiting for the pipeline's task to wake up and dispatch.
const CHUNKS_PER_WORKER: usize = 2;

/// The `map_blocking` flow. Built by `map_blocking` on sources and flows, or with
/// [`MapBlocking::new`] and [`via`](crate::SourceExt::via) to tune it.
#[must_use = "flows do nothing unless run"]
pub struct MapBlocking<F> {
    parallelism: NonZeroUsize,
    max_chunk: usize,
    f: F,
}

impl<F> MapBlocking<F> {
    /// Runs `f` on `parallelism` worker threads, as [`map_blocking`](crate::SourceExt::map_blocking)
    /// does.
    pub fn new(parallelism: NonZeroUsize, f: F) -> Self {
        MapBlocking { parallelism, max_chunk: MAX_CHUNK, f }
    }

    /// Hands at most `max_chunk` elements to a worker at once (8192 by default). Chunks are sized to
    /// carry about 4 ms of work; lower the cap when each element is itself large (a batch of
    /// records, say), so that the elements in flight stay within a memory budget: at most
    /// `2 × parallelism × max_chunk` of them are handed out at any time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
    /// use pump_core::flow::MapBlocking;
    /// use pump_core::prelude::*;
    /// use std::num::NonZeroUsize;
    /// let parallelism = NonZeroUsize::new(2).unwrap();
    /// let out = source::iter(0..10_000u64)
    ///     .batch(NonZeroUsize::new(1000).unwrap(), std::time::Duration::from_millis(10))
    ///     .via(MapBlocking::new(parallelism, |batch: Vec<u64>| batch.iter().sum::<u64>())
    ///         .max_chunk(NonZeroUsize::new(4).unwrap()))
    ///     .to(sink::fold(0u64, |total, sum| total + sum))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value, (0..10_000u64).sum::<u64>());
    /// # }
    /// ```
    pub fn max_chunk(mut self, max_chunk: NonZeroUsize) -> Self {
        self.max_chunk = max_chunk.get();
        self
    }
}

impl<F> std::fmt::Debug for MapBlocking<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapBlocking")
            .field("parallelism", &self.parallelism)
            .field("max_chunk", &self.max_chunk)
            .finish()
    }
}

/// How long a worker with nothing to do waits for another chunk before it returns its thread.
const LINGER: Duration = Duration::from_millis(1);

/// Chunks waiting for a worker, the workers, and whether the stage is gone.
struct WorkQueue<T> {
    chunks: VecDeque<(u64, Vec<T>)>,
    /// Workers alive (running a chunk or waiting for one).
    workers: usize,
    /// Workers waiting for a chunk.
    idle: usize,
    closed: bool,
}

/// What the stage and its workers share.
///
/// Workers are started on demand, at most `parallelism`, and leave once the queue has stayed empty
/// for [`LINGER`]: a busy stage keeps its threads, while an idle one holds none. That matters beyond
/// thread economy: tokio's paused test clock does not advance while a blocking task runs, so a
/// worker parked for the whole run would freeze every timer of a paused-time test.
struct Work<T> {
    queue: Mutex<WorkQueue<T>>,
    available: Condvar,
    parallelism: usize,
}

impl<T> Work<T> {
    /// Queues a chunk; true when the caller must start a worker for it (none is idle and fewer
    /// than `parallelism` are alive).
    fn push(&self, seq: u64, chunk: Vec<T>) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.chunks.push_back((seq, chunk));
        let start = queue.chunks.len() > queue.idle && queue.workers < self.parallelism;
        if start {
            queue.workers += 1;
        }
        drop(queue);
        self.available.notify_one();
        start
    }

    /// The next chunk, waiting up to [`LINGER`] for one; `None` when the worker should leave (it
    /// is then no longer counted).
    fn next(&self) -> Option<(u64, Vec<T>)> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lingered = false;
        loop {
            if !queue.closed
                && let Some(chunk) = queue.chunks.pop_front()
            {
                return Some(chunk);
            }
            if queue.closed || lingered {
                queue.workers -= 1;
                return None;
            }
            queue.idle += 1;
            queue = self.available.wait_timeout(queue, LINGER).unwrap_or_else(PoisonError::into_inner).0;
            queue.idle -= 1;
            lingered = true;
        }
    }

    /// A worker that stops early (its results have nowhere to go) is no longer counted.
    fn leave(&self) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).workers -= 1;
    }

    fn close(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.closed = true;
        queue.chunks.clear();
        drop(queue);
        self.available.notify_all();
    }
}

/// A chunk's outputs, or the panic that ended it, with the time it took.
type Done<U> = (u64, Result<Vec<U>, String>, u64);

/// The worker loop: take chunks while there are any, send each chunk's outputs back.
fn work<T, U, F>(work: &Work<T>, f: &F, results: &mpsc::Sender<Done<U>>, stage: &Stage)
where
    F: Fn(T) -> U,
{
    let _entered = stage.span().enter();
    while let Some((seq, chunk)) = work.next() {
        let started = Instant::now();
        let token = stage.cancellation_token().clone();
        let outputs = catch_unwind(AssertUnwindSafe(|| {
            scope_token_blocking(token, || chunk.into_iter().map(f).collect::<Vec<U>>())
        }))
        .map_err(|payload| panic_message(payload.as_ref()));
        let elapsed = started.elapsed();
        stage.metrics().record_busy(elapsed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if results.blocking_send((seq, outputs, nanos)).is_err() {
            work.leave();
            return;
        }
    }
}

pin_project! {
    /// The stream of the `map_blocking` flow: `parallelism` worker threads, each with at most two
    /// chunks in flight (one running, one queued), each chunk of at most `max_chunk` (8192) elements
    /// and sized to carry about 4 ms of work (64 elements until a chunk has been timed); results in
    /// input order.
    /// Dropping the stream stops the workers after their current chunk.
    #[must_use = "streams do nothing unless polled"]
    pub struct MapBlockingStream<S: Stream, F, U> {
        #[pin]
        upstream: S,
        f: Arc<F>,
        work: Arc<Work<S::Item>>,
        results: mpsc::Receiver<Done<U>>,
        results_sender: mpsc::Sender<Done<U>>,
        reorder: BTreeMap<u64, Vec<U>>,
        next_seq: u64,
        next_out: u64,
        chunk: Vec<S::Item>,
        chunk_len: usize,
        max_chunk: usize,
        ready: VecDeque<U>,
        parallelism: usize,
        upstream_done: bool,
        failed: bool,
        stage: Stage,
        probe: StageProbe,
    }

    impl<S: Stream, F, U> PinnedDrop for MapBlockingStream<S, F, U> {
        fn drop(this: Pin<&mut Self>) {
            this.work.close();
        }
    }
}

impl<S, F, U> MapBlockingStream<S, F, U>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    /// Starts a worker on the blocking pool.
    fn start_worker(results: &mpsc::Sender<Done<U>>, work: &Arc<Work<S::Item>>, f: &Arc<F>, stage: &Stage) {
        let (work, f, results, stage) = (Arc::clone(work), Arc::clone(f), results.clone(), stage.clone());
        tokio::task::spawn_blocking(move || self::work(&work, &*f, &results, &stage));
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
            if *this.failed {
                return Poll::Ready(None);
            }
            // Gather what upstream has ready into chunks, while workers have room: also while
            // finished outputs wait to be taken, so that the workers keep going while a slow
            // consumer takes them.
            let most_in_flight = *this.parallelism * CHUNKS_PER_WORKER;
            while ((*this.next_seq - *this.next_out) as usize) < most_in_flight && !*this.upstream_done {
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
                    if this.work.push(*this.next_seq, chunk) {
                        Self::start_worker(this.results_sender, this.work, this.f, this.stage);
                    }
                    *this.next_seq += 1;
                }
            }
            this.stage.metrics().set_buffer_depth((*this.next_seq - *this.next_out) as usize);
            if let Some(out) = this.ready.pop_front() {
                this.probe.record_out();
                return Poll::Ready(Some(out));
            }
            if *this.next_out == *this.next_seq {
                // Nothing in flight: done, or waiting on upstream (which registered our waker).
                return if *this.upstream_done && this.chunk.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                };
            }
            match this.results.poll_recv(cx) {
                Poll::Ready(Some((seq, Ok(outputs), nanos))) => {
                    // Size the next chunks to carry about CHUNK_WORK_NANOS of work each.
                    if let Some(per_item) = nanos.checked_div(outputs.len() as u64).filter(|n| *n > 0) {
                        let target = usize::try_from(CHUNK_WORK_NANOS / per_item).unwrap_or(*this.max_chunk);
                        *this.chunk_len = target.clamp(1, *this.max_chunk);
                    } else if !outputs.is_empty() {
                        *this.chunk_len = *this.max_chunk;
                    }
                    this.reorder.insert(seq, outputs);
                    while let Some(outputs) = this.reorder.remove(this.next_out) {
                        *this.next_out += 1;
                        this.ready.extend(outputs);
                    }
                }
                Poll::Ready(Some((_, Err(message), _))) => {
                    *this.failed = true;
                    this.stage.fail(PipelineError::Panicked { stage: this.stage.name(), message });
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => {
                    // The stream holds a sender, so this cannot happen; fail rather than hang if it does.
                    *this.failed = true;
                    this.stage.fail(PipelineError::io(this.stage.name(), "the blocking workers stopped"));
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
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
        let parallelism = self.parallelism.get();
        let max_chunk = self.max_chunk;
        let first_chunk = FIRST_CHUNK.min(max_chunk);
        stage.metrics().set_buffer_capacity(parallelism * CHUNKS_PER_WORKER * max_chunk);
        let (results_sender, results) = mpsc::channel(parallelism * CHUNKS_PER_WORKER + 1);
        MapBlockingStream {
            upstream,
            f: Arc::new(self.f),
            work: Arc::new(Work {
                queue: Mutex::new(WorkQueue { chunks: VecDeque::new(), workers: 0, idle: 0, closed: false }),
                available: Condvar::new(),
                parallelism,
            }),
            results,
            results_sender,
            reorder: BTreeMap::new(),
            next_seq: 0,
            next_out: 0,
            chunk: Vec::with_capacity(first_chunk),
            chunk_len: first_chunk,
            max_chunk,
            ready: VecDeque::new(),
            parallelism,
            upstream_done: false,
            failed: false,
            probe: stage.probe(),
            stage,
        }
    }
}
