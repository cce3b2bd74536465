//! SQLite task store: the embedded default (one file, WAL, versioned migrations, group commit on a
//! dedicated writer thread).
//!
//! # Design
//!
//! - **One file, WAL.** The database is one file (plus SQLite's `-wal` and `-shm` files while open).
//!   WAL lets readers in other processes (the CLI's `batch tasks list`) read while a manager writes.
//!   `synchronous=NORMAL` by default survives a killed process; [`Durability::PowerLoss`] selects
//!   `synchronous=FULL`, which fsyncs the log at every commit and survives power loss.
//! - **Columns for what is searched, JSON for the record.** `tasks` has columns for the fields that
//!   are filtered, ordered or aggregated (status, type, creation time, lease, stop flag, run time) and
//!   the whole [`BatchTask`] as JSON, from which the columns are derived on every write; the latest
//!   checkpoint per task and the results of finished tasks live in their own tables. Migrations are
//!   numbered and applied on open; `PRAGMA user_version` records the schema version, and a file with
//!   a newer version than this build knows is refused.
//! - **A writer thread, group commit.** SQLite calls block, so none runs on an async worker thread.
//!   One thread owns the connection and takes requests from a bounded channel (a full channel makes
//!   callers wait: backpressure). It gathers every request already waiting, up to
//!   [`SqliteOptions::max_group`], and runs them in one transaction, each inside its own savepoint:
//!   a request that fails (a compare-and-set that loses, a duplicate id) is rolled back to its
//!   savepoint and answered with its error, and the others still commit. Each caller is answered
//!   after the commit, so an `Ok` means durable (to the configured level). If the transaction as a
//!   whole fails (the database is locked by another process past the busy timeout, the disk is full),
//!   every request of the group gets the error and the thread goes on with the next group. Reads go
//!   through the same thread: they see every change answered before them, and are cheap beside a
//!   commit.
//! - **Many processes, many machines.** Every operation that depends on the current state reads and
//!   changes it in one `BEGIN IMMEDIATE` transaction, so two processes sharing the file cannot both
//!   claim a task; the `busy_timeout` bounds how long one waits for the other.
//! - **Errors that say what to do.** Every SQLite failure becomes [`StoreError::Storage`]
//!   (`STORAGE_ERROR`) naming the file, what was being done, and what to fix: a corrupt file, one
//!   that is not a database, a read-only file or directory, a database locked by another process.

mod error;
mod queries;
mod schema;
mod writer;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{BatchMetrics, BatchTask, Durability, ListTasksRequest, Progress, TaskId, TaskType};
use chrono::{DateTime, Utc};

use super::rules::{TaskRow, time_key};
use super::{
    Checkpoint, ClaimedTask, HeartbeatReply, LeaseRequest, StatusUpdate, StoreError, TaskOutcome, TaskPage,
    TaskResultRecord, TaskStore, WorkerId,
};
use queries::Db;
use writer::Writer;

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// What a commit survives: [`Durability::Process`] (`synchronous=NORMAL`, the default) or
    /// [`Durability::PowerLoss`] (`synchronous=FULL`).
    pub durability: Durability,
    /// How long to wait for another process's lock before failing with `STORAGE_ERROR`
    /// (default 5 s).
    pub busy_timeout: Duration,
    /// Most requests committed in one transaction (default 256; 0 counts as 1).
    pub max_group: usize,
    /// Requests that may wait for the writer thread before callers are made to wait (default 1024;
    /// 0 counts as 1).
    pub queue_capacity: usize,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            durability: Durability::Process,
            busy_timeout: Duration::from_secs(5),
            max_group: 256,
            queue_capacity: 1024,
        }
    }
}

/// What the writer thread has done so far (see [`SqliteStore::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed.
    pub transactions_committed: u64,
    /// Transactions that failed as a whole (every request in them got the error).
    pub transactions_failed: u64,
    /// Requests sent and waiting for the writer thread to take them.
    pub queued: u64,
    /// Requests (calls) handled, reads included.
    pub requests: u64,
    /// Most requests handled in one transaction.
    pub largest_group: u64,
}

/// The SQLite [`TaskStore`]. See the [module docs](self) for the design.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_manager::store::TaskStore;
/// use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
/// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskType};
/// use chrono::Utc;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("tasks.db");
/// let store = SqliteStore::open(&path, SqliteOptions::default())?;
/// let task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), Utc::now())?;
/// store.insert_task(&task).await?;
/// store.close().await?;
///
/// let reopened = SqliteStore::open(&path, SqliteOptions::default())?;
/// assert_eq!(reopened.task(&task.id).await?, Some(task));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file if it does not exist, and applies the schema
    /// migrations it lacks.
    ///
    /// Fails with [`StoreError::Storage`] (`STORAGE_ERROR`) when the file is not a database or is
    /// corrupt, is read-only or in a read-only directory, belongs to another application, has a newer
    /// schema than this build knows, or stays locked by another process past `busy_timeout`.
    ///
    /// Blocking: it reads (and may write) the file on the calling thread; in async code call it at
    /// start-up or through `tokio::task::spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let db = schema::open(path.as_ref(), &options)?;
        let writer = Writer::start(db, options.queue_capacity, options.max_group)?;
        Ok(SqliteStore { writer })
    }

    /// Counters of the writer thread: transactions committed and failed, requests waiting and
    /// handled, largest group.
    pub fn stats(&self) -> StoreStats {
        self.writer.counters.snapshot()
    }

    /// Commits what is queued, closes the database and stops the writer thread. Later calls fail with
    /// `STORAGE_ERROR`. Dropping the store closes it too, in the background.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.writer.close().await
    }

    /// Loads the task's row, applies `change` to it and saves it, in one request.
    async fn change<T, F>(&self, id: &TaskId, change: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db, &mut TaskRow) -> Result<T, StoreError> + Send + 'static,
    {
        let id = *id;
        self.writer
            .call(true, move |db| {
                let mut row = db.load_existing(&id)?;
                change(db, &mut row)
            })
            .await
    }
}

/// Claims the loaded row for the lease; saves it and completes the claim with the checkpoint.
fn claim(db: &Db, mut row: TaskRow, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
    let Some(claim) = row.claim(lease) else {
        return Ok(None);
    };
    db.save(&row)?;
    let checkpoint = db.checkpoint(&row.task.id)?;
    Ok(Some(ClaimedTask {
        task: row.task,
        lease: claim.lease,
        checkpoint,
        resumed: claim.resumed,
        stop_requested: claim.stop_requested,
    }))
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn insert_task(&self, task: &BatchTask) -> Result<(), StoreError> {
        let task = task.clone();
        self.writer.call(true, move |db| db.insert(&task)).await
    }

    async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError> {
        let id = *id;
        self.writer.call(false, move |db| Ok(db.load(&id)?.map(|row| row.task))).await
    }

    async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError> {
        let request = request.clone();
        self.writer.call(false, move |db| db.list(&request)).await
    }

    async fn update_status(&self, update: &StatusUpdate) -> Result<BatchTask, StoreError> {
        let (id, update) = (update.id, update.clone());
        self.change(&id, move |db, row| {
            row.update_status(&update)?;
            db.save(row)?;
            Ok(row.task.clone())
        })
        .await
    }

    async fn claim_task(&self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
        let (id, lease) = (*id, lease.clone());
        self.writer.call(true, move |db| claim(db, db.load_existing(&id)?, &lease)).await
    }

    async fn claim_next(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let task_types = task_types.to_vec();
        let lease = lease.clone();
        self.writer
            .call(true, move |db| {
                let Some(id) = db.oldest_claimable(&task_types, time_key(lease.now))? else {
                    return Ok(None);
                };
                claim(db, db.load_existing(&id)?, &lease)
            })
            .await
    }

    async fn heartbeat(&self, id: &TaskId, lease: &LeaseRequest) -> Result<HeartbeatReply, StoreError> {
        let lease = lease.clone();
        self.change(id, move |db, row| {
            let reply = row.heartbeat(&lease)?;
            db.save_lease(row)?;
            Ok(reply)
        })
        .await
    }

    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let (worker, checkpoint, progress) = (worker.clone(), checkpoint.clone(), progress.clone());
        self.change(id, move |db, row| {
            let previous = db.checkpoint_sequence(&row.task.id)?;
            row.commit_checkpoint(&worker, previous, &checkpoint, &progress)?;
            db.save(row)?;
            db.save_checkpoint(&row.task.id, &checkpoint)
        })
        .await
    }

    async fn update_progress(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let (worker, progress) = (worker.clone(), progress.clone());
        self.change(id, move |db, row| {
            row.update_progress(&worker, &progress)?;
            db.save(row)
        })
        .await
    }

    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        let id = *id;
        self.writer.call(false, move |db| db.checkpoint(&id)).await
    }

    async fn finish_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError> {
        let (worker, outcome) = (worker.clone(), outcome.clone());
        self.change(id, move |db, row| {
            row.finish(&worker, &outcome)?;
            db.save(row)?;
            let record = TaskResultRecord { result: outcome.result, metrics: outcome.metrics };
            db.save_result(&row.task.id, &record)?;
            Ok(row.task.clone())
        })
        .await
    }

    async fn release_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let worker = worker.clone();
        self.change(id, move |db, row| {
            row.release(&worker, now)?;
            db.save_lease(row)
        })
        .await
    }

    async fn request_stop(&self, id: &TaskId, now: DateTime<Utc>) -> Result<BatchTask, StoreError> {
        self.change(id, move |db, row| {
            row.request_stop(now)?;
            db.save(row)?;
            Ok(row.task.clone())
        })
        .await
    }

    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        let id = *id;
        self.writer.call(false, move |db| db.result(&id)).await
    }

    async fn metrics(&self) -> Result<BatchMetrics, StoreError> {
        self.writer.call(false, Db::metrics).await
    }
}
