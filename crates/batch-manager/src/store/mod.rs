//! The durable home of tasks, leases and checkpoints: the [`TaskStore`] trait.
//!
//! The trait is written for many workers in many processes on many machines sharing one store: every
//! change that depends on the current state is a compare-and-set (a status change names the status it
//! expects; a checkpoint names the worker that must hold the lease), tasks are *claimed* atomically with
//! a time-limited lease that a heartbeat renews, and a task whose lease expired (its worker died) can be
//! claimed by another worker, which resumes from the last checkpoint. Times come from the caller
//! (`now` arguments) so that tests can drive a clock and a PostgreSQL store may substitute its own.

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod rules;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
pub use batch_model::{Checkpoint, Counters};

use batch_model::{
    BatchMetrics, BatchTask, ListTasksRequest, ProcessingMetrics, Progress, TaskError, TaskId, TaskStatus,
    TaskType, TransitionCause,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Identifies one worker (a manager in one process). Unique across processes and machines, e.g.
/// `host:pid:random`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub String);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker asks for when it claims or renews a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The worker.
    pub worker: WorkerId,
    /// How long the lease lasts from `now` unless renewed.
    pub ttl: Duration,
    /// The current time.
    pub now: DateTime<Utc>,
}

/// A worker's hold on a processing task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The holder.
    pub worker: WorkerId,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A task a worker now holds, with its last checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    /// The task, status `processing`.
    pub task: BatchTask,
    /// The lease the worker holds.
    pub lease: Lease,
    /// The last committed checkpoint, if the task ran before.
    pub checkpoint: Option<Checkpoint>,
    /// True when the task was taken over from a worker whose lease expired (or that released it).
    pub resumed: bool,
    /// A stop was requested before this claim (while an earlier worker held the task): the new holder
    /// should end the task `cancelled` at once instead of running it.
    pub stop_requested: bool,
}

/// A status change that only applies if the task is still in `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The task.
    pub id: TaskId,
    /// The status the caller saw.
    pub from: TaskStatus,
    /// The new status.
    pub to: TaskStatus,
    /// Why (only `LeaseExpired` allows processing -> pending).
    pub cause: TransitionCause,
    /// The error to record (failed or cancelled only).
    pub error: Option<TaskError>,
    /// When.
    pub at: DateTime<Utc>,
}

/// How a claimed task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// `completed`, `failed` or `cancelled`.
    pub status: TaskStatus,
    /// The error, for failed and cancelled tasks.
    pub error: Option<TaskError>,
    /// The task kind's result summary (JSON).
    pub result: serde_json::Value,
    /// The final progress.
    pub progress: Progress,
    /// Final item counters and timings.
    pub metrics: ProcessingMetrics,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Someone asked the task to stop (`stop_task`, possibly from another process).
    pub stop_requested: bool,
}

/// One page of a task listing.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    /// The tasks on the page, newest first.
    pub tasks: Vec<BatchTask>,
    /// How many tasks match the filter in all.
    pub total: u64,
}

/// A finished task's result summary and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResultRecord {
    /// The kind's result summary.
    pub result: serde_json::Value,
    /// Final counters and timings.
    pub metrics: ProcessingMetrics,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The task does not exist (`NOT_FOUND`).
    #[error("task {id} not found")]
    NotFound {
        /// The task.
        id: TaskId,
    },
    /// The task was not in the expected state, or the change is illegal (`INVALID_STATE`). When the
    /// task is in the expected state, `expected == actual` and the state machine forbids the change.
    #[error("{}", conflict_message(id, *expected, *actual, *to))]
    Conflict {
        /// The task.
        id: TaskId,
        /// The status the caller expected.
        expected: TaskStatus,
        /// The status it has.
        actual: TaskStatus,
        /// The status asked for.
        to: TaskStatus,
    },
    /// The worker no longer holds the task's lease: another worker took it over (`INVALID_STATE`).
    #[error("worker {worker} no longer holds the lease of task {id}")]
    LeaseLost {
        /// The task.
        id: TaskId,
        /// The worker that thought it held it.
        worker: WorkerId,
    },
    /// A checkpoint's sequence is not the previous checkpoint's + 1: a stale or duplicated commit
    /// (`INVALID_STATE`).
    #[error("checkpoint {got} of task {id} is out of order: the next checkpoint must be {expected}")]
    CheckpointOutOfOrder {
        /// The task.
        id: TaskId,
        /// The sequence the store expected (the last committed one + 1).
        expected: u64,
        /// The sequence that was offered.
        got: u64,
    },
    /// A task with this id already exists (`INVALID_STATE`).
    #[error("task {id} already exists")]
    Duplicate {
        /// The task.
        id: TaskId,
    },
    /// The storage itself failed: corrupt, read-only, locked, full (`STORAGE_ERROR`).
    #[error("storage error at {location}: {message}")]
    Storage {
        /// The database file or connection.
        location: String,
        /// What to fix, in words.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// The stable error code of this error.
    pub fn code(&self) -> batch_model::ErrorCode {
        use batch_model::ErrorCode;
        match self {
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            StoreError::Conflict { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::CheckpointOutOfOrder { .. }
            | StoreError::Duplicate { .. } => ErrorCode::InvalidState,
            StoreError::Storage { .. } => ErrorCode::StorageError,
        }
    }
}

fn conflict_message(id: &TaskId, expected: TaskStatus, actual: TaskStatus, to: TaskStatus) -> String {
    if expected == actual {
        format!("task {id} is {actual}: it cannot change to {to}")
    } else {
        format!("task {id} is {actual}, not {expected}: cannot change it to {to}")
    }
}

/// Durable storage of tasks, leases, checkpoints and results.
///
/// Implementations: [`memory::MemoryStore`] (tests, one process) and [`sqlite::SqliteStore`] (the
/// embedded default, one file, WAL). Every method is atomic; methods that depend on the current state
/// check it in the same transaction. Both implementations share one set of rules, so they behave alike.
///
/// # Leases
///
/// A `processing` task is *held* by the worker named in its lease. A worker keeps holding the task
/// until it finishes or releases it, or another worker takes it over, even after the lease's expiry
/// time passed: a late heartbeat still renews a lapsed lease that nobody took over. A task is
/// *claimable* when it is `pending`, or `processing` with no holder (released, or set `processing`
/// through [`update_status`](TaskStore::update_status)) or with a lease that expired strictly before
/// the claimer's `now`. Expiry is compared to the nanosecond (timestamps are clamped to the years
/// 1677–2262 for the comparison).
///
/// # Order
///
/// Listings are newest first and claims oldest first, by `created_at` and then by id (ids are time
/// ordered), so paging is stable.
///
/// # Cancel safety
///
/// Dropping a call's future does not undo it: the change may still be committed.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Stores a new task, as given (normally `pending`). `Duplicate` if the id exists.
    async fn insert_task(&self, task: &BatchTask) -> Result<(), StoreError>;

    /// Stores many new tasks, each as [`insert_task`](TaskStore::insert_task) would, and returns each
    /// one's outcome in order (`Duplicate` for an id that exists or came earlier in `tasks`). Stores
    /// with a faster way (one transaction, a bulk copy) override the default, which inserts one by
    /// one.
    async fn insert_tasks(&self, tasks: &[BatchTask]) -> Vec<Result<(), StoreError>> {
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(self.insert_task(task).await);
        }
        outcomes
    }

    /// The task, if it exists.
    async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError>;

    /// Tasks matching the request's status and type filters, newest first, `request.limit` tasks
    /// after skipping `request.offset`; with the total count of matching tasks. The request is not
    /// validated here (the manager does that).
    async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError>;

    /// Changes a task's status if it is still `update.from` and the state machine allows it
    /// (`Conflict` otherwise; `NotFound` for an unknown task). Sets `started_at`/`completed_at` as
    /// [`BatchTask::transition`] does, and records `update.error` when moving to `failed` or
    /// `cancelled`. Clears the lease and the stop flag when the task leaves `processing`; a task moved
    /// to `processing` here has no holder, so it is claimable.
    async fn update_status(&self, update: &StatusUpdate) -> Result<BatchTask, StoreError>;

    /// Claims the task for `lease.worker`: a `pending` task becomes `processing`; a claimable
    /// `processing` task (see [Leases](TaskStore#leases)) is taken over (`resumed = true`; it passes
    /// through `pending` by [`TransitionCause::LeaseExpired`]). The lease lasts `lease.ttl` from
    /// `lease.now`. `Ok(None)` when the task is not claimable (terminal, or held by a live lease);
    /// `NotFound` for an unknown task.
    async fn claim_task(&self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError>;

    /// Claims the oldest claimable task whose type is in `task_types` (any type when empty);
    /// `Ok(None)` when there is none. Concurrent callers never get the same task.
    async fn claim_next(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
    ) -> Result<Option<ClaimedTask>, StoreError>;

    /// Claims up to `max` of the oldest claimable tasks whose type is in `task_types`, as that many
    /// [`claim_next`](TaskStore::claim_next) calls would, oldest first; fewer (or none) when there are
    /// fewer. Stores that can claim a batch in one transaction override the default, which claims one
    /// by one.
    async fn claim_many(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
        max: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let mut claimed = Vec::new();
        while claimed.len() < max {
            match self.claim_next(task_types, lease).await? {
                Some(task) => claimed.push(task),
                None => break,
            }
        }
        Ok(claimed)
    }

    /// Renews the lease held by `lease.worker` until `lease.now + lease.ttl` (`LeaseLost` if it no
    /// longer holds it) and reports whether a stop was requested.
    async fn heartbeat(&self, id: &TaskId, lease: &LeaseRequest) -> Result<HeartbeatReply, StoreError>;

    /// Commits a checkpoint and the progress in one transaction, if `worker` holds the lease
    /// (`LeaseLost` otherwise). `checkpoint.sequence` must be the previous sequence + 1, 1 for the
    /// first (`CheckpointOutOfOrder` otherwise). Only the latest checkpoint is kept.
    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError>;

    /// Updates the live progress only (between checkpoints), if `worker` holds the lease.
    async fn update_progress(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        progress: &Progress,
    ) -> Result<(), StoreError>;

    /// The last committed checkpoint.
    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError>;

    /// Ends a claimed task (`processing` -> `outcome.status`, which must be terminal: `Conflict`
    /// otherwise), storing result, metrics, progress and error, and releasing the lease; `LeaseLost`
    /// if `worker` no longer holds it.
    async fn finish_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError>;

    /// Hands a claimed task back without finishing it (shutdown): it stays `processing` with no holder
    /// and its lease expired at `now`, so any worker can claim and resume it from its checkpoint at
    /// once; `LeaseLost` if `worker` no longer holds it.
    async fn release_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Asks for a task to stop. A `pending` task is cancelled at once (with a `CANCELLED` error); a
    /// `processing` task held by a live lease is flagged for its worker (seen at its next heartbeat or
    /// claim); a `processing` task that is claimable at `now` (its worker is gone) is cancelled at
    /// once, keeping its last checkpoint. Returns the task as it now is; `Conflict` for a terminal
    /// task.
    async fn request_stop(&self, id: &TaskId, now: DateTime<Utc>) -> Result<BatchTask, StoreError>;

    /// The result summary and metrics of a finished task (`None` before [`finish_task`]).
    ///
    /// [`finish_task`]: TaskStore::finish_task
    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError>;

    /// Counts by status and durations of finished tasks, equal to [`BatchMetrics::from_tasks`] over
    /// every stored task.
    async fn metrics(&self) -> Result<BatchMetrics, StoreError>;
}
