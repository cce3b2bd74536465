//! Running one claimed task: the manager's side of the job ([`TaskControl`], the kind's
//! `JobControl`), the heartbeat that keeps the lease and hears stop requests, and how the run's end
//! is recorded (finished, or released for a later resume).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    AttachedWrite, BatchConfig, BatchTask, Checkpoint, CheckpointCommit, Counters, CreateTaskRequest,
    DatabaseIdentity, ErrorCode, ListTasksRequest, Partition, ProcessingMetrics, Progress, TaskError, TaskId,
    TaskStatus,
};
use batch_tasks::{JobContext, JobControl, JobOutcome, PartitionResult, TaskKind};
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::store::{ClaimedTask, Holder, StoreError, TaskOutcome, TaskStore};

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
    /// When the lease surely still holds until, on this process's monotonic clock: the send time of
    /// the last successful claim or heartbeat plus the lease's ttl. The store's own expiry is later
    /// (it counts from when the store handled the call), so stopping at this deadline is never late.
    lease_deadline: Option<Instant>,
}

/// The manager's side of one running task: commits checkpoints to the store under the task's lease,
/// carries stop requests to the kind, and aborts it when the grace period runs out or the lease is
/// lost.
pub(crate) struct TaskControl {
    store: Arc<dyn TaskStore>,
    id: TaskId,
    holder: Holder,
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
            .field("holder", &self.holder)
            .field("stop", &self.stop)
            .field("lease_lost", &self.lease_lost)
            .finish_non_exhaustive()
    }
}

impl TaskControl {
    pub(crate) fn new(store: Arc<dyn TaskStore>, id: TaskId, holder: Holder, grace: Duration) -> TaskControl {
        TaskControl {
            store,
            id,
            holder,
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

    fn renewed(&self, deadline: Instant) {
        self.observed().lease_deadline = Some(deadline);
    }

    fn lease_deadline(&self) -> Option<Instant> {
        self.observed().lease_deadline
    }

    /// The lease was lost or could not be kept: log it once, abort, record nothing more.
    fn refused(&self, what: &str, error: &StoreError) {
        if matches!(error, StoreError::LeaseLost { .. }) {
            tracing::warn!(
                task_id = %self.id,
                epoch = self.holder.epoch,
                %error,
                "{what} refused: this worker's claim is stale (another claim took the task over); dropping the task"
            );
            self.lose_lease();
        }
    }

    fn stop_reason(&self) -> Option<StopReason> {
        self.observed().stop.clone()
    }
}

#[async_trait]
impl JobControl for TaskControl {
    async fn commit(&self, checkpoint: Checkpoint, progress: Progress) -> Result<(), TaskError> {
        self.commit_with(checkpoint, progress, Vec::new()).await
    }

    async fn commit_with(
        &self,
        checkpoint: Checkpoint,
        progress: Progress,
        writes: Vec<AttachedWrite>,
    ) -> Result<(), TaskError> {
        self.commit_all(vec![CheckpointCommit { checkpoint, progress, writes }]).await
    }

    async fn commit_all(&self, commits: Vec<CheckpointCommit>) -> Result<(), TaskError> {
        let (Some(first), Some(last)) = (commits.first(), commits.last()) else { return Ok(()) };
        let what = if commits.len() == 1 {
            format!("checkpoint {}", last.checkpoint.sequence)
        } else {
            format!("checkpoints {} to {}", first.checkpoint.sequence, last.checkpoint.sequence)
        };
        let (counters, progress) = (last.checkpoint.counters, last.progress.clone());
        if self.has_lost_lease() {
            let lost = StoreError::LeaseLost { id: self.id, holder: self.holder.clone() };
            return Err(TaskError::new(lost.code(), lost.to_string()).not_retryable());
        }
        match self.store.commit_checkpoints(&self.id, &self.holder, commits).await {
            Ok(()) => {
                let mut observed = self.observed();
                observed.counters = counters;
                observed.progress = Some(progress);
                Ok(())
            }
            Err(error) => {
                self.refused(&what, &error);
                Err(TaskError::new(error.code(), error.to_string()).not_retryable())
            }
        }
    }

    async fn attachable_database(&self) -> Option<DatabaseIdentity> {
        match self.store.attachable_database().await {
            Ok(identity) => identity,
            Err(error) => {
                tracing::warn!(task_id = %self.id, %error, "the store's database could not be identified");
                None
            }
        }
    }

    async fn report_progress(&self, progress: Progress) {
        match self.store.update_progress(&self.id, &self.holder, &progress).await {
            Ok(()) => self.observed().progress = Some(progress),
            Err(error @ StoreError::LeaseLost { .. }) => self.refused("a progress update", &error),
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

/// How a run ended, as the manager counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The task ended with this status (recorded in the store).
    Finished(TaskStatus),
    /// It was handed back at a shutdown.
    Released,
    /// A partitioned parent now waits for its partitions.
    Parked,
    /// The lease was lost, or the end could not be recorded: another worker owns the task now.
    Dropped,
}

/// How a kind's run ended.
enum RunEnd {
    /// The kind (or a parent's merge) returned.
    Kind(Result<JobOutcome, TaskError>),
    /// A partitioned parent was split (or re-parked) and now waits for its partitions: nothing more
    /// to record.
    Parked,
}

/// Runs a claimed task to its end and records the end: finished (`completed`, `failed`,
/// `cancelled`) or, after a shutdown, released for a later resume. Nothing is recorded once the lease
/// is lost: the task belongs to another worker then. A partitioned parent is split into its
/// partitions on its first claim and merged when they are done.
pub(crate) async fn run_claimed(
    store: Arc<dyn TaskStore>,
    claimed: ClaimedTask,
    kind: Arc<dyn TaskKind>,
    control: Arc<TaskControl>,
    settings: RunSettings,
    claimed_at: Instant,
) -> Settled {
    let ClaimedTask { task, lease, checkpoint, resumed, stop_requested } = claimed;
    control.renewed(claimed_at + settings.lease_ttl);
    tracing::info!(
        resumed,
        epoch = lease.epoch,
        checkpoint = checkpoint.as_ref().map(|checkpoint| checkpoint.sequence),
        "task claimed"
    );
    if stop_requested {
        // Stopped while no worker held it: end it without running the kind.
        control.request_stop(StopReason::Requested { reason: None });
        let settled = settle(&*store, &task, &control, Ok(JobOutcome::Stopped)).await;
        control.finished.cancel();
        return settled;
    }
    let job = JobContext::new(task.clone(), checkpoint, Arc::clone(&control) as Arc<dyn JobControl>)
        .with_epoch(lease.epoch);
    let parent = is_parent(&task);
    let run_store = Arc::clone(&store);
    let holder = lease.holder();
    // The kind runs on its own task so that a panic in it becomes a failure of this task, not of the
    // manager.
    let mut kind_run = tokio::spawn(
        async move {
            if parent {
                run_parent(&*run_store, &*kind, job, &holder).await
            } else {
                RunEnd::Kind(kind.run(job).await)
            }
        }
        .in_current_span(),
    );
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
        Ok(RunEnd::Kind(result)) => result,
        Ok(RunEnd::Parked) => {
            tracing::info!("task waits for its partitions");
            control.finished.cancel();
            return Settled::Parked;
        }
        Err(join_error) => {
            let message = match join_error.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(_cancelled) => "the task kind's run was cancelled".to_owned(),
            };
            Err(TaskError::new(ErrorCode::ProcessingError, format!("the task kind panicked: {message}"))
                .not_retryable())
        }
    };
    let settled = settle(&*store, &task, &control, result).await;
    control.finished.cancel();
    settled
}

/// Whether `task` is the parent of a partitioned task.
pub(crate) fn is_parent(task: &BatchTask) -> bool {
    task.config.partitions > 1 && task.parent_id.is_none()
}

/// A parent's run: on its first claim, split it and park it; once every partition completed, merge
/// them; in between (a restarted parent whose partitions run again), park it again.
async fn run_parent(store: &dyn TaskStore, kind: &dyn TaskKind, job: JobContext, holder: &Holder) -> RunEnd {
    let task = job.task().clone();
    let listing = ListTasksRequest {
        parent_id: Some(task.id),
        limit: ListTasksRequest::LIMIT_MAX,
        ..ListTasksRequest::default()
    };
    let mut children = match store.list_tasks(&listing).await {
        Ok(page) => page.tasks,
        Err(error) => return RunEnd::Kind(Err(store_failure(&error))),
    };
    if children.is_empty() {
        let params = match kind.split(&job, task.config.partitions).await {
            Ok(params) => params,
            Err(error) => return RunEnd::Kind(Err(error)),
        };
        let children = match partition_tasks(&task, params) {
            Ok(children) => children,
            Err(error) => return RunEnd::Kind(Err(error)),
        };
        tracing::info!(partitions = children.len(), "task split into partitions");
        return match store.split_task(&task.id, holder, &children).await {
            Ok(()) => RunEnd::Parked,
            Err(error) => RunEnd::Kind(Err(store_failure(&error))),
        };
    }
    if children.iter().any(|child| child.status != TaskStatus::Completed) {
        return match store.split_task(&task.id, holder, &[]).await {
            Ok(()) => RunEnd::Parked,
            Err(error) => RunEnd::Kind(Err(store_failure(&error))),
        };
    }
    children.sort_by_key(|child| child.partition.map(|partition| partition.index));
    let mut results = Vec::with_capacity(children.len());
    for child in children {
        match store.task_result(&child.id).await {
            Ok(Some(record)) => results.push(PartitionResult { task: child, result: record.result }),
            Ok(None) => {
                let error = TaskError::new(
                    ErrorCode::StorageError,
                    format!("partition task {} completed without a stored result", child.id),
                );
                return RunEnd::Kind(Err(error));
            }
            Err(error) => return RunEnd::Kind(Err(store_failure(&error))),
        }
    }
    tracing::info!(partitions = results.len(), "merging the partitions");
    RunEnd::Kind(kind.merge(job, results).await)
}

/// The child tasks of `parent`, one per params object from the kind's split.
fn partition_tasks(parent: &BatchTask, params: Vec<serde_json::Value>) -> Result<Vec<BatchTask>, TaskError> {
    let count = u32::try_from(params.len()).unwrap_or(u32::MAX);
    if count == 0 || count > parent.config.partitions {
        return Err(TaskError::new(
            ErrorCode::ProcessingError,
            format!(
                "the kind split the task into {count} partitions; 1 to {} expected",
                parent.config.partitions
            ),
        )
        .not_retryable());
    }
    let now = Utc::now();
    params
        .into_iter()
        .zip(0..)
        .map(|(params, index)| {
            let request = CreateTaskRequest {
                task_type: parent.task_type.clone(),
                config: Some(BatchConfig { partitions: 1, ..parent.config.clone() }),
                params,
                metadata: parent.metadata.clone(),
            };
            let mut child =
                BatchTask::new(TaskId::new(), request, now).map_err(|error| TaskError::from(&error))?;
            child.parent_id = Some(parent.id);
            child.partition = Some(Partition { index, count });
            Ok(child)
        })
        .collect()
}

fn store_failure(error: &StoreError) -> TaskError {
    TaskError::new(error.code(), error.to_string()).not_retryable()
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
/// the lease is lost (taken over, or not renewable before this process's own deadline for it), after
/// aborting the run.
async fn heartbeat(store: Arc<dyn TaskStore>, control: Arc<TaskControl>, settings: RunSettings) {
    loop {
        tokio::time::sleep(settings.heartbeat_interval).await;
        let sent_at = Instant::now();
        match store.heartbeat(&control.id, &control.holder, settings.lease_ttl).await {
            Ok(reply) => {
                control.renewed(sent_at + settings.lease_ttl);
                if reply.stop_requested {
                    // Idempotent; also turns a shutdown into a stop, so the task ends cancelled.
                    control.request_stop(StopReason::Requested { reason: None });
                }
            }
            Err(error @ StoreError::LeaseLost { .. }) => {
                control.refused("the heartbeat", &error);
                return;
            }
            Err(error) => {
                let expired = control.lease_deadline().is_some_and(|deadline| Instant::now() >= deadline);
                tracing::warn!(%error, expired, "heartbeat failed");
                if expired {
                    // Another worker may take the task over now: stop writing.
                    tracing::warn!("the lease could not be renewed before it ran out; dropping the task");
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
) -> Settled {
    if control.has_lost_lease() {
        tracing::warn!("the task's lease was lost; its new holder records its end");
        return Settled::Dropped;
    }
    let now = Utc::now();
    let stop = control.stop_reason();
    let holder = &control.holder;
    let stopped = match &result {
        Ok(JobOutcome::Stopped) => true,
        // Aborted after a stop's grace period ran out.
        Err(error) => error.code == ErrorCode::Cancelled && stop.is_some(),
        Ok(_) => false,
    };
    if stopped && stop == Some(StopReason::Shutdown) {
        return match store.release_task(&task.id, holder).await {
            Ok(()) => {
                tracing::info!("task released at shutdown; it resumes from its last checkpoint");
                Settled::Released
            }
            Err(error) => {
                tracing::warn!(%error, "task not released");
                Settled::Dropped
            }
        };
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
    let outcome = TaskOutcome { status, error, result: summary, progress, metrics };
    match store.finish_task(&task.id, holder, &outcome).await {
        Ok(finished) => {
            match &finished.error {
                None => tracing::info!(status = %finished.status, "task finished"),
                Some(error) => tracing::info!(status = %finished.status, %error, "task finished"),
            }
            Settled::Finished(finished.status)
        }
        Err(error @ StoreError::LeaseLost { .. }) => {
            control.refused("the task's end", &error);
            Settled::Dropped
        }
        Err(error) => {
            tracing::warn!(%error, status = %status, "task end not recorded");
            Settled::Dropped
        }
    }
}

fn cancelled(message: String, at: DateTime<Utc>) -> TaskError {
    TaskError::new(ErrorCode::Cancelled, message).with_timestamp(at)
}
