//! Running a pipeline: the runnable graph, its handle, its outcome, and the dynamic builder.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::PipelineError;
use crate::flow::{BoxFlow, Flow};
use crate::metrics::{MetricsRegistry, MetricsSnapshot};
use crate::sink::{BoxSink, Sink};
use crate::source::{BoxSource, Source, SourceExt};
use crate::stage::{StageContext, scope_token};

/// What a finished run reports besides the sink's value.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Wall time from start to the sink's completion.
    pub elapsed: Duration,
    /// Time the driving task spent polling (the fused part of the pipeline).
    pub busy: Duration,
    /// Every stage's final counters.
    pub metrics: MetricsSnapshot,
}

/// A successful run: the sink's value and the run's statistics.
#[derive(Debug, Clone)]
pub struct RunOutcome<R> {
    /// What the sink produced.
    pub value: R,
    /// Counters and timings.
    pub stats: RunStats,
}

/// Controls of one run, usable from anywhere while it runs (cheap to clone).
#[derive(Debug, Clone)]
pub struct RunControls {
    ctx: StageContext,
}

impl RunControls {
    /// Stops the sources; elements already in flight finish and the sink completes normally.
    /// Idempotent.
    pub fn drain(&self) {
        self.ctx.drain_token().cancel();
    }

    /// Stops the run now: in-flight elements are dropped and the run ends with
    /// [`PipelineError::Aborted`]. Idempotent.
    pub fn abort(&self) {
        self.ctx.cancellation_token().cancel();
    }

    /// The run's cancellation token, cancelled on abort or failure.
    pub fn cancellation_token(&self) -> &CancellationToken {
        self.ctx.cancellation_token()
    }

    /// A snapshot of every stage's counters, readable while the run goes on.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.ctx.metrics().snapshot()
    }

    /// The live registry (cheaper than repeated snapshots when polling often).
    pub fn registry(&self) -> &MetricsRegistry {
        self.ctx.metrics()
    }
}

/// A source connected to a sink: ready to run. Built by [`SourceExt::to`].
#[must_use = "pipelines do nothing unless run"]
pub struct Graph<Src, Snk> {
    source: Src,
    sink: Snk,
    ctx: StageContext,
}

impl<Src, Snk> std::fmt::Debug for Graph<Src, Snk> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph").finish_non_exhaustive()
    }
}

impl<Src, Snk> Graph<Src, Snk>
where
    Src: Source,
    Snk: Sink<Src::Item>,
{
    pub(crate) fn new(source: Src, sink: Snk) -> Self {
        Graph { source, sink, ctx: StageContext::new(tracing::info_span!("pipeline")) }
    }

    /// Names the pipeline in its tracing span.
    pub fn named(mut self, name: &str) -> Self {
        self.ctx = StageContext::new(tracing::info_span!("pipeline", name));
        self
    }

    /// Controls for the run this graph will make (take them before calling `run`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let graph = source::iter(0..).to(sink::count());
    /// let controls = graph.controls();
    /// controls.drain();
    /// let out = graph.run().await.unwrap();
    /// assert!(out.value <= 256, "a drained source stops within one yield budget");
    /// # }
    /// ```
    pub fn controls(&self) -> RunControls {
        RunControls { ctx: self.ctx.clone() }
    }

    /// Runs the pipeline on the calling task. Fused stages run right here; async boundaries and
    /// blocking work run on their own tasks. Cancel-safe: dropping the future aborts the run.
    pub fn run(
        self,
    ) -> impl Future<Output = Result<RunOutcome<Snk::Output>, PipelineError>> + Send + 'static {
        let Graph { source, sink, ctx } = self;
        let span = ctx.span().clone();
        let token = ctx.cancellation_token().clone();
        let driver = async move {
            let started = Instant::now();
            let mut busy = Duration::ZERO;
            let build = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let stream = source.open(&ctx);
                sink.consume(stream, &ctx)
            }));
            let result = match build {
                Ok(consume) => {
                    let timed =
                        Timed { inner: AssertUnwindSafe(Box::pin(consume)).catch_unwind(), busy: &mut busy };
                    tokio::select! {
                        biased;
                        outcome = timed => match outcome {
                            Ok(result) => result,
                            Err(payload) => Err(PipelineError::from_panic("pipeline", payload.as_ref())),
                        },
                        () = ctx.cancellation_token().cancelled() => Err(PipelineError::Aborted),
                    }
                }
                Err(payload) => Err(PipelineError::from_panic("pipeline", payload.as_ref())),
            };
            // A stage failure outranks whatever the sink made of the truncated stream.
            if let Some(error) = ctx.failure().take() {
                return Err(error);
            }
            // So does an abort: sources end once the run is cancelled, and the sink may finish on the
            // truncated stream before the cancellation branch above is polled.
            if ctx.cancellation_token().is_cancelled() {
                return Err(PipelineError::Aborted);
            }
            let value = result?;
            let stats = RunStats { elapsed: started.elapsed(), busy, metrics: ctx.metrics().snapshot() };
            tracing::debug!(elapsed = ?stats.elapsed, "pipeline completed");
            Ok(RunOutcome { value, stats })
        };
        scope_token(token, driver.instrument(span))
    }

    /// Spawns the run on the tokio runtime and returns its handle.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    pub fn spawn(self) -> RunHandle<Snk::Output> {
        let controls = self.controls();
        let task = tokio::spawn(self.run());
        RunHandle { task, controls }
    }
}

/// Adds the time spent in each poll of `inner` to `busy`.
struct Timed<'a, F> {
    inner: F,
    busy: &'a mut Duration,
}

impl<F: Future + Unpin> Future for Timed<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let result = self.inner.poll_unpin(cx);
        *self.busy += started.elapsed();
        result
    }
}

/// A spawned run. Await it for the outcome; it is a future of
/// `Result<RunOutcome<R>, PipelineError>`. Dropping the handle does not stop the run; call
/// [`abort`](RunHandle::abort) for that.
#[derive(Debug)]
#[must_use = "a run handle is how the result is read"]
pub struct RunHandle<R> {
    task: JoinHandle<Result<RunOutcome<R>, PipelineError>>,
    controls: RunControls,
}

impl<R> RunHandle<R> {
    /// See [`RunControls::drain`].
    pub fn drain(&self) {
        self.controls.drain();
    }

    /// See [`RunControls::abort`].
    pub fn abort(&self) {
        self.controls.abort();
    }

    /// See [`RunControls::metrics`].
    pub fn metrics(&self) -> MetricsSnapshot {
        self.controls.metrics()
    }

    /// The run's controls.
    pub fn controls(&self) -> &RunControls {
        &self.controls
    }
}

impl<R> Future for RunHandle<R> {
    type Output = Result<RunOutcome<R>, PipelineError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.task.poll_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(join_error)) => Poll::Ready(Err(match join_error.try_into_panic() {
                Ok(payload) => PipelineError::from_panic("pipeline", payload.as_ref()),
                Err(_cancelled) => PipelineError::Aborted,
            })),
        }
    }
}

/// The dynamic pipeline builder of the original `BatchProcessor`: stages chosen at run time, boxed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::BatchProcessor;
/// let validate = flow::identity::<i64>().filter(|x| *x >= 0).boxed();
/// let process = flow::identity::<i64>().map(|x| x * 10).boxed();
/// let out = BatchProcessor::new()
///     .with_source(source::iter([3, -1, 4]))
///     .with_flow(validate)
///     .with_flow(process)
///     .with_sink(sink::collect())
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(out.value, vec![30, 40]);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct BatchProcessor {
    name: Option<String>,
}

impl BatchProcessor {
    /// An empty builder.
    pub fn new() -> Self {
        BatchProcessor::default()
    }

    /// Names the pipeline (tracing span).
    pub fn named(name: impl Into<String>) -> Self {
        BatchProcessor { name: Some(name.into()) }
    }

    /// Sets the source.
    pub fn with_source<S: Source>(self, source: S) -> ProcessorWithSource<S::Item> {
        ProcessorWithSource { name: self.name, source: source.boxed() }
    }
}

/// A [`BatchProcessor`] with its source set.
#[derive(Debug)]
pub struct ProcessorWithSource<T> {
    name: Option<String>,
    source: BoxSource<T>,
}

impl<T: Send + 'static> ProcessorWithSource<T> {
    /// Appends a flow (any flow; it is boxed).
    pub fn with_flow<F: Flow<T>>(self, flow: F) -> ProcessorWithSource<F::Out> {
        ProcessorWithSource { name: self.name, source: self.source.via(BoxFlow::new(flow)).boxed() }
    }

    /// Sets the sink, giving a runnable pipeline.
    pub fn with_sink<K: Sink<T>>(self, sink: K) -> Graph<BoxSource<T>, BoxSink<T, K::Output>> {
        let graph = self.source.to(BoxSink::new(sink));
        match &self.name {
            Some(name) => graph.named(name),
            None => graph,
        }
    }
}
