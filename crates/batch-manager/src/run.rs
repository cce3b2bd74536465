//! Running one claimed task: the manager's side of the job ([`TaskControl`], the kind's
//! `JobControl`), the heartbeat that keeps the lease and hears stop requests, and how the run's end
//! is recorded (finished, or released for a later resume).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    BatchTask, Checkpoint, Counters, ErrorCode, ProcessingMetrics, Progress, TaskError, TaskId, TaskStatus,
};
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::store::{ClaimedTask, LeaseRequest, StoreError, TaskOutcome, TaskStore, WorkerId};

/// Why a running task was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// `stop_task` (here or in another process): the task ends `cancelled`.
    Requested {
        /// The caller's reason, when known (a stop from another process has none).
        reason: Option<String>,
    },
    /// The manager is shutting down: the task is released, to be resumed.
    Shutdown,
}

/// What the run learned from its kind and its checkpoints.
#[derive(Debug, Default)]
struct Observed {
    /// The counters of the last committed checkpoint.
    counters: Counters,
    /// The last committed or reported progress.
    progress: Option<Progress>,
    /// Why the task was asked to stop, if it was. A stop request outranks a shutdown.
    stop: Option<StopReason>,
    /// The lease expiry as of the last successful claim or heartbeat.
    lease_expires_at: Option<DateTime<Utc>>,
}

/// The manager's side of one running task: commits checkpoints to the store under the task's lease,
/// carries stop requests to the kind, and aborts it when the grace period runs out or the lease is
/// lost.
pub(crate) struct TaskControl {
    store: Arc<dyn TaskStore>,
    id: TaskId,
    worker: WorkerId,
    grace: Duration,
    stop: AtomicBool,
    lease_lost: AtomicBool,
    /// Cancelled to abort the kind's in-flight work.
    abort: CancellationToken,
    /// Cancelled when the run is over (ends the grace timer).
    finished: CancellationToken,
    observed: Mutex<Observed>,
}

impl std::fmt::Debug for TaskControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskControl")
            .field("id", &self.id)
            .field("worker", &self.worker)
            .field("stop", &self.stop)
            .field("lease_lost", &self.lease_lost)
            .finish_non_exhaustive()
    }
}

impl TaskControl {
    pub(crate) fn new(
        store: Arc<dyn TaskStore>,
        id: TaskId,
        worker: WorkerId,
        grace: Duration,
    ) -> TaskControl {
        TaskControl {
            store,
            id,
            worker,
            grace,
            stop: AtomicBool::new(false),
            lease_lost: AtomicBool::new(false),
            abort: CancellationToken::new(),
            finished: CancellationToken::new(),
            observed: Mutex::new(Observed::default()),
        }
    }

    fn observed(&self) -> MutexGuard<'_, Observed> {
        // Every update is a plain assignment, so a poisoned lock still guards consistent data.
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the task to stop at its next chunk boundary; its in-flight work is aborted if it has not
    /// stopped after the grace period. A stop request replaces a shutdown as the reason, never the
    /// other way round.
    pub(crate) fn request_stop(&self, reason: StopReason) {
        let first = {
            let mut observed = self.observed();
            let first = observed.stop.is_none();
            let upgrade = matches!(
                (&observed.stop, &reason),
                (Some(StopReason::Shutdown), StopReason::Requested { .. })
            );
            if first || upgrade {
                observed.stop = Some(reason);
            }
            first
        };
        self.stop.store(true, Ordering::SeqCst);
        if first {
            let abort = self.abort.clone();
            let finished = self.finished.clone();
            let grace = self.grace;
            let id = self.id;
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(grace) => {
                        tracing::warn!(task_id = %id, ?grace, "task did not stop within its grace period; aborting in-flight work");
                        abort.cancel();
                    }
                    () = finished.cancelled() => {}
                }
            });
        }
    }

    /// Ends the grace period now: asks the task to stop (if it was not) and aborts its in-flight work.
    pub(crate) fn abort_now(&self, reason: StopReason) {
        self.request_stop(reason);
        self.abort.cancel();
    }

    /// The worker no longer holds the task: abort at once and record nothing more.
    pub(crate) fn lose_lease(&self) {
        self.lease_lost.store(true, Ordering::SeqCst);
        self.abort.cancel();
    }

    fn has_lost_lease(&self) -> bool {
        self.lease_lost.load(Ordering::SeqCst)
    }

    fn renewed(&self, expires_at: DateTime<Utc>) {
        self.observed().lease_expires_at = Some(expires_at);
    }

    fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.observed().lease_expires_at
    }

    fn stop_reason(&self) -> Option<StopReason> {
        self.observed().stop.clone()
    }
}

#[async_trait]
impl JobControl for TaskControl {
    async fn commit(&self, checkpoint: Checkpoint, progress: Progress) -> Result<(), TaskError> {
        if self.has_lost_lease() {
            let lost = StoreError::LeaseLost { id: self.id, worker: self.worker.clone() };
            return Err(TaskError::new(lost.code(), lost.to_string()).not_retryable());
        }
        match self.store.commit_checkpoint(&self.id, &self.worker, &checkpoint, &progress).await {
            Ok(()) => {
                let mut observed = self.observed();
                observed.counters = checkpoint.counters;
                observed.progress = Some(progress);
                Ok(())
            }
            Err(error) => {
                if matches!(error, StoreError::LeaseLost { .. }) {
                    self.lose_lease();
                }
                Err(TaskError::new(error.code(), error.to_string()).not_retryable())
            }
        }
    }

    async fn report_progress(&self, progress: Progress) {
        match self.store.update_progress(&self.id, &self.worker, &progress).await {
            Ok(()) => self.observed().progress = Some(progress),
            Err(StoreError::LeaseLost { .. }) => self.lose_lease(),
            Err(error) => tracing::debug!(task_id = %self.id, %error, "progress not recorded"),
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn cancellation_token(&self) -> CancellationToken {
        self.abort.clone()
    }
}

/// The settings a run needs from the manager.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    pub(crate) lease_ttl: Duration,
    pub(crate) heartbeat_interval: Duration,
}

/// Runs a claimed task to its end and records the end: finished (`completed`, `failed`,
/// `cancelled`) or, after a shutdown, released for a later resume. Nothing is recorded once the lease
/// is lost: the task belongs to another worker then.
pub(crate) async fn run_claimed(
    store: Arc<dyn TaskStore>,
    claimed: ClaimedTask,
    kind: Arc<dyn TaskKind>,
    control: Arc<TaskControl>,
    settings: RunSettings,
) {
    let ClaimedTask { task, lease, checkpoint, resumed, stop_requested } = claimed;
    control.renewed(lease.expires_at);
    tracing::info!(
        resumed,
        checkpoint = checkpoint.as_ref().map(|checkpoint| checkpoint.sequence),
        "task claimed"
    );
    if stop_requested {
        // Stopped while no worker held it: end it without running the kind.
        control.request_stop(StopReason::Requested { reason: None });
        settle(&*store, &task, &control, Ok(JobOutcome::Stopped)).await;
        control.finished.cancel();
        return;
    }
    let job = JobContext::new(task.clone(), checkpoint, Arc::clone(&control) as Arc<dyn JobControl>);
    // The kind runs on its own task so that a panic in it becomes a failure of this task, not of the
    // manager.
    let mut kind_run = tokio::spawn(async move { kind.run(job).await }.in_current_span());
    let heartbeat = heartbeat(Arc::clone(&store), Arc::clone(&control), settings);
    let mut heartbeat = std::pin::pin!(heartbeat);
    let mut beating = true;
    let joined = loop {
        tokio::select! {
            joined = &mut kind_run => break joined,
            () = &mut heartbeat, if beating => beating = false,
        }
    };
    let result = match joined {
        Ok(result) => result,
        Err(join_error) => {
            let message = match join_error.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(_cancelled) => "the task kind's run was cancelled".to_owned(),
            };
            Err(TaskError::new(ErrorCode::ProcessingError, format!("the task kind panicked: {message}"))
                .not_retryable())
        }
    };
    settle(&*store, &task, &control, result).await;
    control.finished.cancel();
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Renews the lease every `heartbeat_interval` and picks up stop requests made elsewhere; returns when
/// the lease is lost (taken over, or not renewable past its expiry), after aborting the run.
async fn heartbeat(store: Arc<dyn TaskStore>, control: Arc<TaskControl>, settings: RunSettings) {
    loop {
        tokio::time::sleep(settings.heartbeat_interval).await;
        let now = Utc::now();
        let lease = LeaseRequest { worker: control.worker.clone(), ttl: settings.lease_ttl, now };
        match store.heartbeat(&control.id, &lease).await {
            Ok(reply) => {
                let ttl = chrono::TimeDelta::from_std(settings.lease_ttl).unwrap_or(chrono::TimeDelta::MAX);
                control.renewed(now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC));
                if reply.stop_requested {
                    // Idempotent; also turns a shutdown into a stop, so the task ends cancelled.
                    control.request_stop(StopReason::Requested { reason: None });
                }
            }
            Err(StoreError::LeaseLost { .. }) => {
                tracing::warn!("lease lost: another worker took the task over; aborting this run");
                control.lose_lease();
                return;
            }
            Err(error) => {
                let expired = control.lease_expires_at().is_some_and(|expires_at| now >= expires_at);
                tracing::warn!(%error, expired, "heartbeat failed");
                if expired {
                    // Another worker may take the task over now: stop writing.
                    control.lose_lease();
                    return;
                }
            }
        }
    }
}

/// Records how the run ended.
async fn settle(
    store: &dyn TaskStore,
    task: &BatchTask,
    control: &TaskControl,
    result: Result<JobOutcome, TaskError>,
) {
    if control.has_lost_lease() {
        tracing::warn!("the task's lease was lost; its new holder records its end");
        return;
    }
    let now = Utc::now();
    let stop = control.stop_reason();
    let stopped = match &result {
        Ok(JobOutcome::Stopped) => true,
        // Aborted after a stop's grace period ran out.
        Err(error) => error.code == ErrorCode::Cancelled && stop.is_some(),
        Ok(_) => false,
    };
    if stopped && stop == Some(StopReason::Shutdown) {
        match store.release_task(&task.id, &control.worker, now).await {
            Ok(()) => tracing::info!("task released at shutdown; it resumes from its last checkpoint"),
            Err(error) => tracing::warn!(%error, "task not released"),
        }
        return;
    }
    let (counters, last_progress) = {
        let observed = control.observed();
        (observed.counters, observed.progress.clone())
    };
    let last_progress = last_progress.unwrap_or_else(|| task.progress.clone());
    let (status, error, summary, progress) = match result {
        Ok(JobOutcome::Completed { summary, progress }) => (TaskStatus::Completed, None, summary, progress),
        Ok(JobOutcome::Stopped) => {
            let reason = match stop {
                Some(StopReason::Requested { reason: Some(reason) }) => reason,
                Some(_) => "stopped by request".to_owned(),
                None => "the task kind stopped without a stop request".to_owned(),
            };
            let message = format!("{reason}; stopped at a chunk boundary, its last checkpoint is kept");
            (TaskStatus::Cancelled, Some(cancelled(message, now)), serde_json::Value::Null, last_progress)
        }
        Err(error) if stopped => {
            let reason = match stop {
                Some(StopReason::Requested { reason: Some(reason) }) => reason,
                _ => "stopped by request".to_owned(),
            };
            let message = format!(
                "{reason}; in-flight work was aborted ({}), its last checkpoint is kept",
                error.message
            );
            (TaskStatus::Cancelled, Some(cancelled(message, now)), serde_json::Value::Null, last_progress)
        }
        Err(error) => (TaskStatus::Failed, Some(error), serde_json::Value::Null, last_progress),
        Ok(_) => {
            let error = TaskError::new(
                ErrorCode::ProcessingError,
                "the task kind ended with an outcome this manager does not know",
            );
            (TaskStatus::Failed, Some(error), serde_json::Value::Null, last_progress)
        }
    };
    let started_at = task.started_at.unwrap_or(now);
    let metrics = ProcessingMetrics {
        total_items: progress.done(),
        processed_items: progress.processed,
        failed_items: progress.failed,
        retried_items: counters.retried,
        skipped_items: progress.skipped,
        start_time: Some(started_at),
        end_time: Some(now),
        duration: (now - started_at).to_std().unwrap_or_default(),
    };
    let outcome = TaskOutcome { status, error, result: summary, progress, metrics, at: now };
    match store.finish_task(&task.id, &control.worker, &outcome).await {
        Ok(finished) => match &finished.error {
            None => tracing::info!(status = %finished.status, "task finished"),
            Some(error) => tracing::info!(status = %finished.status, %error, "task finished"),
        },
        Err(error) => tracing::warn!(%error, status = %status, "task end not recorded"),
    }
}

fn cancelled(message: String, at: DateTime<Utc>) -> TaskError {
    TaskError::new(ErrorCode::Cancelled, message).with_timestamp(at)
}
