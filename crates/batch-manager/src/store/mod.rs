//! The durable home of tasks, leases and checkpoints: the [`TaskStore`] trait.
//!
//! The trait is written for many workers in many processes on many machines sharing one store: every
//! change that depends on the current state is a compare-and-set (a status change names the status it
//! expects; a write by a worker names the lease it holds), tasks are *claimed* atomically with a
//! time-limited lease that a heartbeat renews, and a task whose lease expired (its worker died) can be
//! claimed by another worker, which resumes from the last checkpoint.
//!
//! **Time is the store's.** Lease expiry, `started_at`, `completed_at` and `updated_at` are judged and
//! stamped by the store's own clock — the database server's for PostgreSQL, a [`Clock`] for the
//! in-memory and SQLite stores (the system clock unless a test gives a [`ManualClock`]) — never by a
//! worker's wall clock, so clock skew between machines cannot cause an early or late takeover.
//!
//! **Every write is fenced.** Each claim bumps the task's *epoch*; every write a worker makes under its
//! lease (heartbeat, checkpoint, progress, finish, release, split) presents its [`Holder`] — worker and
//! epoch — and is refused with [`StoreError::LeaseLost`] once another claim has bumped the epoch, so a
//! worker that was paused past its lease can change nothing when it wakes up.

pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod feed;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod json;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod record;
mod rules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod skip_nulls;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
pub use batch_model::{
    AttachedInput, AttachedWrite, Checkpoint, CheckpointCommit, Counters, DatabaseIdentity,
};

use batch_model::{
    BatchMetrics, BatchTask, ListTasksRequest, ProcessingMetrics, Progress, TaskError, TaskId, TaskStatus,
    TaskType, TransitionCause,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use clock::{Clock, ManualClock, SystemClock};
pub use feed::{TaskChange, TaskChanges};

/// Identifies one worker (a manager in one process). Unique across processes and machines, e.g.
/// `host:pid:random`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub String);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker asks for when it claims a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The worker.
    pub worker: WorkerId,
    /// How long the lease lasts, from the store's now, unless renewed.
    pub ttl: Duration,
    /// Quarantine: a task whose workers were lost this many times in a row without a new checkpoint
    /// in between (it probably crashes its process) is not handed out again but ends `failed`
    /// (`PROCESSING_ERROR`) at the claim that would have been the next loss. 0 turns quarantine off.
    pub max_lost_leases: u32,
}

impl LeaseRequest {
    /// Lease losses without progress before a task is quarantined, unless set otherwise.
    pub const DEFAULT_MAX_LOST_LEASES: u32 = 3;

    /// A request for `worker` with `ttl` and the default quarantine threshold.
    pub fn new(worker: WorkerId, ttl: Duration) -> LeaseRequest {
        LeaseRequest { worker, ttl, max_lost_leases: Self::DEFAULT_MAX_LOST_LEASES }
    }
}

/// Who may write to a claimed task: the worker and the epoch of its claim (the fencing token).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// The worker.
    pub worker: WorkerId,
    /// The task's epoch at the claim: bumped by every claim, so an older claim's writes are refused.
    pub epoch: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (epoch {})", self.worker, self.epoch)
    }
}

/// A worker's hold on a processing task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The holder.
    pub worker: WorkerId,
    /// The claim's epoch (fencing token).
    pub epoch: u64,
    /// When the lease lapses unless renewed, on the store's clock.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// The token the holder presents with every write.
    pub fn holder(&self) -> Holder {
        Holder { worker: self.worker.clone(), epoch: self.epoch }
    }
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
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Someone asked the task to stop (`stop_task`, possibly from another process).
    pub stop_requested: bool,
    /// The renewed lease's expiry, on the store's clock.
    pub expires_at: DateTime<Utc>,
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
    /// The worker no longer holds the task's lease under this epoch: another claim took the task
    /// over, or the task ended (`INVALID_STATE`).
    #[error("worker {holder} no longer holds the lease of task {id}")]
    LeaseLost {
        /// The task.
        id: TaskId,
        /// The worker and epoch that thought they held it.
        holder: Holder,
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
    /// A write attached to a checkpoint failed (a row that does not fit, no such table, a missing
    /// privilege), or the store cannot take it (another database, a store without attached writes):
    /// neither the write nor its checkpoint was committed (`STORAGE_ERROR`). Only the call that
    /// carried it fails; other calls sharing the store's transaction are committed.
    #[error("task {id}: writing into {target} with its checkpoint failed: {message}")]
    AttachedWrite {
        /// The task whose checkpoint carried the write.
        id: TaskId,
        /// What the write writes ([`AttachedWrite::target`]).
        target: String,
        /// The cause and what to fix, in words.
        message: String,
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
            StoreError::AttachedWrite { .. } | StoreError::Storage { .. } => ErrorCode::StorageError,
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl StoreError {
    /// `count` copies of this error, for callers that share one failure (a bulk insert whose
    /// transaction failed). Store errors are not `Clone`: the copies of a storage error share its
    /// cause.
    pub(crate) fn copies(self, count: usize) -> Vec<StoreError> {
        let shared = match self {
            StoreError::Storage { location, message, source } => StoreError::Storage {
                location,
                message,
                source: source.map(|source| Box::new(SharedCause(std::sync::Arc::from(source))) as _),
            },
            other => other,
        };
        (0..count).map(|_| shared.copy()).collect()
    }

    /// A copy; the cause of a storage error is kept only when it is shared already.
    fn copy(&self) -> StoreError {
        match self {
            StoreError::NotFound { id } => StoreError::NotFound { id: *id },
            StoreError::Conflict { id, expected, actual, to } => {
                StoreError::Conflict { id: *id, expected: *expected, actual: *actual, to: *to }
            }
            StoreError::LeaseLost { id, holder } => StoreError::LeaseLost { id: *id, holder: holder.clone() },
            StoreError::CheckpointOutOfOrder { id, expected, got } => {
                StoreError::CheckpointOutOfOrder { id: *id, expected: *expected, got: *got }
            }
            StoreError::Duplicate { id } => StoreError::Duplicate { id: *id },
            StoreError::AttachedWrite { id, target, message } => {
                StoreError::AttachedWrite { id: *id, target: target.clone(), message: message.clone() }
            }
            StoreError::Storage { location, message, source } => StoreError::Storage {
                location: location.clone(),
                message: message.clone(),
                source: source
                    .as_deref()
                    .and_then(|source| source.downcast_ref::<SharedCause>())
                    .map(|cause| Box::new(cause.clone()) as _),
            },
        }
    }
}

/// The cause of a storage error shared by several copies of it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
struct SharedCause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
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
/// Implementations: [`memory::MemoryStore`] (tests, one process), [`sqlite::SqliteStore`] (the
/// embedded default, one file, WAL; feature `sqlite`) and `postgres::PgStore` (a shared database for
/// worker fleets on many machines; feature `postgres`). Every method is atomic; methods that depend on
/// the current state check it in the same transaction. The stores share one set of rules and one
/// conformance suite ([`conformance`], feature `conformance`), so they behave alike.
///
/// # Leases and epochs
///
/// A `processing` task is *held* by the worker named in its lease, under the epoch of that claim. A
/// worker keeps holding the task until it finishes or releases it, or another claim takes it over,
/// even after the lease's expiry time passed: a late heartbeat still renews a lapsed lease that nobody
/// took over. A task is *claimable* when it is `pending`, or `processing` with no holder (released, or
/// set `processing` through [`update_status`](TaskStore::update_status)) or with a lease that expired
/// strictly before the store's now — unless it is a partitioned parent waiting for its partitions.
/// Every claim bumps the epoch; every write under a lease names its [`Holder`] and is refused with
/// [`StoreError::LeaseLost`] if the epoch moved on or the task left `processing`.
///
/// # Time
///
/// Expiry and the record's timestamps come from the store's clock (see the [module docs](self)),
/// kept to [`time_resolution`](TaskStore::time_resolution): the nanosecond in memory and SQLite, the
/// microsecond in PostgreSQL.
///
/// # Quarantine
///
/// A takeover of a task whose lease expired (not one that was released) counts as a *lost lease*;
/// a committed checkpoint resets the count. A claim that would be the task's
/// [`max_lost_leases`](LeaseRequest::max_lost_leases)-th lost lease in a row ends the task `failed`
/// with `PROCESSING_ERROR` instead, and the claim gets nothing.
///
/// # Partitions
///
/// A partitioned task (the *parent*) is claimed like any task; its holder splits it with
/// [`split_task`](TaskStore::split_task), which stores the child tasks (its partitions, `pending`,
/// `parent_id` set) and *parks* the parent: still `processing`, no holder, not claimable. The
/// parent's progress is the sum of its partitions'. When the last partition completes, the parent
/// becomes claimable again and its next holder merges the partitions' results and finishes it. When a
/// partition fails or is cancelled, the parent ends the same way and its other partitions are asked
/// to stop; stopping the parent stops every partition; restarting it restarts its failed and cancelled
/// partitions.
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

    /// Stores several new tasks, each as [`insert_task`](TaskStore::insert_task) would, and returns
    /// each one's outcome in order: a failing task (`Duplicate` for an id that exists or came earlier
    /// in `tasks`) does not keep the others out. Stores may do it in fewer round trips (one
    /// transaction, a bulk copy); the default inserts one by one. When the storage fails as a whole,
    /// every task not known to be stored gets the error.
    async fn insert_tasks(&self, tasks: &[BatchTask]) -> Vec<Result<(), StoreError>> {
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(self.insert_task(task).await);
        }
        outcomes
    }

    /// The task, if it exists.
    async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError>;

    /// Tasks matching the request's status, type and parent filters, newest first, `request.limit`
    /// tasks after skipping `request.offset`; with the total count of matching tasks. The request is
    /// not validated here (the manager does that).
    async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError>;

    /// Changes a task's status if it is still `update.from` and the state machine allows it
    /// (`Conflict` otherwise; `NotFound` for an unknown task). Sets `started_at`/`completed_at` as
    /// [`BatchTask::transition`] does, and records `update.error` when moving to `failed` or
    /// `cancelled`. Clears the lease and the stop flag when the task leaves `processing`; a task moved
    /// to `processing` here has no holder, so it is claimable. A restart goes through
    /// [`restart_task`](TaskStore::restart_task), not here.
    async fn update_status(&self, update: &StatusUpdate) -> Result<BatchTask, StoreError>;

    /// Claims the task for `lease.worker`: a `pending` task becomes `processing`; a claimable
    /// `processing` task (see [Leases](TaskStore#leases-and-epochs)) is taken over (`resumed = true`;
    /// it passes through `pending` by [`TransitionCause::LeaseExpired`]). The epoch is bumped; the lease
    /// lasts `lease.ttl` from the store's now. `Ok(None)` when the task is not claimable (terminal, held
    /// by a live lease, a parked parent) or was quarantined by this claim; `NotFound` for an unknown
    /// task.
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

    /// Renews the lease of `holder` until the store's now + `ttl` (`LeaseLost` if it no longer holds
    /// it) and reports whether a stop was requested.
    async fn heartbeat(
        &self,
        id: &TaskId,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<HeartbeatReply, StoreError>;

    /// Commits a checkpoint and the progress in one transaction, if `holder` holds the lease
    /// (`LeaseLost` otherwise). `checkpoint.sequence` must be the previous sequence + 1, 1 for the
    /// first (`CheckpointOutOfOrder` otherwise). Only the latest checkpoint is kept.
    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        holder: &Holder,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError>;

    /// [`commit_checkpoint`](TaskStore::commit_checkpoint) with `writes` run in the same
    /// transaction: after the holder and the sequence are checked, before the commit. Either the
    /// checkpoint and every write are committed, or none of them: a stale holder's writes are refused
    /// with its checkpoint (`LeaseLost`), and a write that fails fails this call alone
    /// ([`StoreError::AttachedWrite`], naming its target and the cause), never another call the
    /// store commits in the same transaction.
    ///
    /// Only a store whose own database is each write's [`AttachedWrite::database`] (see
    /// [`attachable_database`](TaskStore::attachable_database)) can take them. The default takes
    /// none: with `writes` empty it is `commit_checkpoint`, else an `AttachedWrite` error and
    /// nothing committed.
    async fn commit_checkpoint_with(
        &self,
        id: &TaskId,
        holder: &Holder,
        checkpoint: &Checkpoint,
        progress: &Progress,
        writes: Vec<AttachedWrite>,
    ) -> Result<(), StoreError> {
        match writes.first() {
            None => self.commit_checkpoint(id, holder, checkpoint, progress).await,
            Some(write) => Err(StoreError::AttachedWrite {
                id: *id,
                target: write.target.clone(),
                message: "this task store cannot run writes in its transactions (only a PostgreSQL \
                          store, for its own database, can)"
                    .to_owned(),
            }),
        }
    }

    /// Consecutive checkpoints of one task (each `sequence` one more than the one before), committed
    /// in order, each as [`commit_checkpoint_with`](TaskStore::commit_checkpoint_with) would: the
    /// chunks a run wrote while its previous commit was on its way. A store that can commits them in
    /// one transaction (the PostgreSQL store: one group, one flush of its log, its task row written
    /// once); then either all of them or none are committed. The default commits them one by one, in
    /// order, and stops at the first that fails: the ones before it stay committed. Either way every
    /// checkpoint is checked and recorded (its audit event, its sequence) as if it came alone.
    async fn commit_checkpoints(
        &self,
        id: &TaskId,
        holder: &Holder,
        commits: Vec<CheckpointCommit>,
    ) -> Result<(), StoreError> {
        for commit in commits {
            let CheckpointCommit { checkpoint, progress, writes } = commit;
            self.commit_checkpoint_with(id, holder, &checkpoint, &progress, writes).await?;
        }
        Ok(())
    }

    /// The database this store's transactions run in, when its checkpoints can carry
    /// [`AttachedWrite`]s into it (see
    /// [`commit_checkpoint_with`](TaskStore::commit_checkpoint_with)): a PostgreSQL store answers
    /// its own database, every other store `None` (the default). A store that cannot tell (the
    /// server refuses to say) answers `None` too.
    async fn attachable_database(&self) -> Result<Option<DatabaseIdentity>, StoreError> {
        Ok(None)
    }

    /// Updates the live progress only (between checkpoints), if `holder` holds the lease.
    async fn update_progress(
        &self,
        id: &TaskId,
        holder: &Holder,
        progress: &Progress,
    ) -> Result<(), StoreError>;

    /// The last committed checkpoint.
    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError>;

    /// Ends a claimed task (`processing` -> `outcome.status`, which must be terminal: `Conflict`
    /// otherwise), storing result, metrics, progress and error, and releasing the lease; `LeaseLost`
    /// if `holder` no longer holds it. A partition's end settles its parent (see
    /// [Partitions](TaskStore#partitions)).
    async fn finish_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError>;

    /// Hands a claimed task back without finishing it (shutdown): it stays `processing` with no holder
    /// and its lease expired at the store's now, so any worker can claim and resume it from its
    /// checkpoint at once (not a lost lease); `LeaseLost` if `holder` no longer holds it.
    async fn release_task(&self, id: &TaskId, holder: &Holder) -> Result<(), StoreError>;

    /// Asks for a task to stop. A `pending` task is cancelled at once (with a `CANCELLED` error); a
    /// `processing` task held by a live lease is flagged for its worker (seen at its next heartbeat or
    /// claim); a `processing` task that nobody holds (its worker is gone, or a parent waiting for its
    /// partitions) is cancelled at once, keeping its last checkpoint. A parent's partitions are asked to
    /// stop too. Returns the task as it now is; `Conflict` for a terminal task.
    async fn request_stop(&self, id: &TaskId) -> Result<BatchTask, StoreError>;

    /// Starts a new attempt of a `failed` or `cancelled` task (see [`BatchTask::restart`]): it becomes
    /// `pending` with its checkpoint kept, so the next claim resumes from it. A parent's failed and
    /// cancelled partitions are restarted with it. `Conflict` for any other status, or for a parent one
    /// of whose partitions is still running.
    async fn restart_task(&self, id: &TaskId) -> Result<BatchTask, StoreError>;

    /// Splits the partitioned task `id`, held by `holder`, into `children` (new `pending` tasks whose
    /// `parent_id` is `id`; none when the partitions exist already) and parks it: it stays
    /// `processing`, released, and is not claimable until its last partition completes. `LeaseLost` if
    /// `holder` no longer holds it; `Duplicate` if a child exists; `Conflict` if a child is not a
    /// pending task of this parent.
    async fn split_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        children: &[BatchTask],
    ) -> Result<(), StoreError>;

    /// The result summary and metrics of a finished task (`None` before [`finish_task`]).
    ///
    /// [`finish_task`]: TaskStore::finish_task
    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError>;

    /// Counts by status and durations of finished tasks, equal to [`BatchMetrics::from_tasks`] over
    /// every stored task.
    async fn metrics(&self) -> Result<BatchMetrics, StoreError>;

    /// A feed of changes to tasks: every task this store handle changes, and (where the backend can
    /// see them) changes made by other processes — or [`TaskChange::Resync`] when it can only tell that
    /// something changed. Best effort: a receiver that falls behind gets `Lagged` and should re-read
    /// what it shows. Used to wake idle workers and to push live updates.
    fn subscribe(&self) -> TaskChanges;

    /// How finely the store keeps times (the nanosecond unless overridden).
    fn time_resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
}
