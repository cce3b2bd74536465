//! What a stage receives when a pipeline is built: its metrics, its span, the run's cancellation and
//! the way to fail the run.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use crate::error::PipelineError;
use crate::metrics::{MetricsRegistry, StageMetrics, StageProbe};

tokio::task_local! {
    static RUN_TOKEN: CancellationToken;
}

/// The cancellation token of the pipeline run the calling code belongs to, if any.
///
/// Every task a pipeline runs (its driver, async boundaries, blocking workers) is scoped with the
/// run's token, so async user functions can watch it without it being threaded through their
/// signatures. Futures of `map_async` and friends are also dropped promptly on abort.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
///
/// let outcome = source::iter([1u32, 2, 3])
///     .map_async(std::num::NonZeroUsize::MIN, |x| async move {
///         let token = pump_core::current_cancellation_token().expect("inside a run");
///         assert!(!token.is_cancelled());
///         x
///     })
///     .to(sink::collect())
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(outcome.value, vec![1, 2, 3]);
/// # }
/// ```
pub fn current_cancellation_token() -> Option<CancellationToken> {
    RUN_TOKEN.try_with(CancellationToken::clone).ok()
}

/// Runs `future` with `token` as its [`current_cancellation_token`].
pub(crate) fn scope_token<F: Future>(token: CancellationToken, future: F) -> impl Future<Output = F::Output> {
    RUN_TOKEN.scope(token, future)
}

/// Runs the blocking `f` with `token` as its [`current_cancellation_token`] (task-locals do not
/// follow a closure onto tokio's blocking pool).
pub(crate) fn scope_token_blocking<R>(token: CancellationToken, f: impl FnOnce() -> R) -> R {
    RUN_TOKEN.sync_scope(token, f)
}

/// The first failure of a run; later ones are logged and otherwise ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct FailureSlot {
    first: Arc<Mutex<Option<PipelineError>>>,
}

impl FailureSlot {
    fn set(&self, error: PipelineError) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error);
        } else {
            tracing::debug!(%error, "further stage failure after the run already failed");
        }
    }

    pub(crate) fn take(&self) -> Option<PipelineError> {
        self.first.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The build-time context handed to every source, flow and sink of one run.
#[derive(Debug, Clone)]
pub struct StageContext {
    cancel: CancellationToken,
    drain: CancellationToken,
    metrics: MetricsRegistry,
    failure: FailureSlot,
    span: tracing::Span,
}

impl Default for StageContext {
    fn default() -> Self {
        StageContext::new(tracing::Span::none())
    }
}

impl StageContext {
    /// A fresh context for one run, whose stages log under `span`.
    pub fn new(span: tracing::Span) -> Self {
        StageContext {
            cancel: CancellationToken::new(),
            drain: CancellationToken::new(),
            metrics: MetricsRegistry::default(),
            failure: FailureSlot::default(),
            span,
        }
    }

    /// Registers a stage named after its operator and returns its handle.
    pub fn register(&self, operator: &str) -> Stage {
        let metrics = self.metrics.register(operator);
        let span = tracing::debug_span!(parent: &self.span, "stage", name = %metrics.name());
        Stage { metrics, cancel: self.cancel.clone(), failure: self.failure.clone(), span }
    }

    /// The run's cancellation token: cancelled on abort and when a stage fails the run.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The run's drain token: cancelled when the run should stop taking new input.
    pub fn drain_token(&self) -> &CancellationToken {
        &self.drain
    }

    /// The registry of this run's stage metrics.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    /// The pipeline's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(crate) fn failure(&self) -> &FailureSlot {
        &self.failure
    }

    /// A context for a sub-pipeline of this run (a fan-out consumer): it shares the run's metrics
    /// and span; its cancellation and drain tokens are children of the run's, so an abort or a drain
    /// of the run reaches it, while a failure inside it cancels only it and is recorded in its own
    /// failure slot, for the owner to act on.
    pub(crate) fn child(&self) -> StageContext {
        StageContext {
            cancel: self.cancel.child_token(),
            drain: self.drain.child_token(),
            metrics: self.metrics.clone(),
            failure: FailureSlot::default(),
            span: self.span.clone(),
        }
    }
}

/// One stage's handle: its counters, span, and the means to fail the run.
#[derive(Debug, Clone)]
pub struct Stage {
    metrics: Arc<StageMetrics>,
    cancel: CancellationToken,
    failure: FailureSlot,
    span: tracing::Span,
}

impl Stage {
    /// A stage that belongs to no run (for streams used outside a pipeline).
    pub fn detached(operator: &str) -> Self {
        StageContext::default().register(operator)
    }

    /// The stage's name.
    pub fn name(&self) -> Arc<str> {
        self.metrics.name_arc()
    }

    /// The stage's shared counters.
    pub fn metrics(&self) -> &Arc<StageMetrics> {
        &self.metrics
    }

    /// A single-writer probe for the `in`/`out` counters.
    pub fn probe(&self) -> StageProbe {
        StageProbe::new(self.metrics.clone())
    }

    /// The run's cancellation token.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The stage's tracing span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Fails the whole run with `error` and cancels every stage. The caller should end its stream.
    pub fn fail(&self, error: PipelineError) {
        tracing::warn!(parent: &self.span, %error, "stage failed the pipeline");
        self.failure.set(error);
        self.cancel.cancel();
    }
}
