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
//! - **Many processes, one host.** Every operation that depends on the current state reads and
//!   changes it in one `BEGIN IMMEDIATE` transaction, so two processes sharing the file cannot both
//!   claim a task; the `busy_timeout` bounds how long one waits for the other. WAL needs shared memory
//!   between the processes, so they must run on the same host (not over a network file system); a
//!   fleet of workers on many machines uses the PostgreSQL store. Leases are judged by the store's
//!   [`Clock`] — the host's system clock, the same for every process. A process paused (SIGSTOP, a
//!   stalled VM) inside a write transaction keeps the file locked until it resumes: no other process
//!   can write, or take its tasks over, meanwhile (nothing can end another process's SQLite lock;
//!   the PostgreSQL store's server ends such a transaction after `idle_transaction_timeout`).
//! - **A change feed.** Changes made through this handle are published at once; changes by other
//!   processes are noticed by a watcher (`PRAGMA data_version`, every `watch_interval` while anyone
//!   subscribes) and published as [`TaskChange::Resync`].
//! - **Errors that say what to do.** Every SQLite failure becomes [`StoreError::Storage`]
//!   (`STORAGE_ERROR`) naming the file, what was being done, and what to fix: a corrupt file, one
//!   that is not a database, a read-only file or directory, a database locked by another process.

mod error;
mod queries;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    BatchMetrics, BatchTask, Durability, ListTasksRequest, Progress, TaskId, TaskStatus, TaskType,
};
use chrono::{DateTime, Utc};

use super::clock::{Clock, SystemClock};
use super::feed::{ChangeFeed, TaskChange};
use super::rules::{ClaimResult, Family, TaskRow, check_children, time_key};
use super::{
    Checkpoint, CheckpointCommit, ClaimedTask, HeartbeatReply, Holder, LeaseRequest, StatusUpdate,
    StoreError, TaskChanges, TaskOutcome, TaskPage, TaskResultRecord, TaskStore,
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
    /// How often the change feed looks for changes made by other processes while someone subscribes
    /// (default 250 ms).
    pub watch_interval: Duration,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            durability: Durability::Process,
            busy_timeout: Duration::from_secs(5),
            max_group: 256,
            queue_capacity: 1024,
            watch_interval: Duration::from_millis(250),
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
    writer: Arc<Writer>,
    clock: Arc<dyn Clock>,
    feed: ChangeFeed,
    watch_interval: Duration,
    /// Set once a watcher for other processes' changes runs.
    watching: std::sync::atomic::AtomicBool,
}

/// Tasks a request changed, with their statuses after it and whether they are claimable, to publish
/// once it committed.
type Changed = Vec<(TaskId, TaskStatus, bool)>;

/// What [`Changed`] records of a row at `now`.
fn changed(row: &TaskRow, now: DateTime<Utc>) -> (TaskId, TaskStatus, bool) {
    (row.task.id, row.task.status, row.is_claimable(now))
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file if it does not exist, and applies the schema
    /// migrations it lacks. Safe when several processes open a new file at once: the check of what
    /// the file holds and the migration run in one exclusive transaction.
    ///
    /// Fails with [`StoreError::Storage`] (`STORAGE_ERROR`) when the file is not a database or is
    /// corrupt, is read-only or in a read-only directory, belongs to another application, has a newer
    /// schema than this build knows, or stays locked by another process past `busy_timeout`.
    ///
    /// Blocking: it reads (and may write) the file on the calling thread; in async code call it at
    /// start-up or through `tokio::task::spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_clock(path, options, Arc::new(SystemClock))
    }

    /// [`open`](SqliteStore::open), reading the time from `clock` (tests pass a
    /// [`ManualClock`](super::ManualClock)). Every process sharing the file must read the same
    /// clock: on one host, the system clock.
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<SqliteStore, StoreError> {
        let db = schema::open(path.as_ref(), &options)?;
        let writer = Writer::start(db, options.queue_capacity, options.max_group)?;
        Ok(SqliteStore {
            writer: Arc::new(writer),
            clock,
            feed: ChangeFeed::default(),
            watch_interval: options.watch_interval,
            watching: std::sync::atomic::AtomicBool::new(false),
        })
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

    fn publish(&self, changed: &Changed) {
        for (id, status, claimable) in changed {
            self.feed.task(*id, *status, *claimable);
        }
    }

    /// Loads the task's row, applies `change` to it with the store's now and saves it, in one
    /// request; then, for a partition, settles its family in the same transaction. Publishes what
    /// changed once it committed.
    async fn change<T, F>(&self, id: &TaskId, change: F) -> Result<(T, BatchTask), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db, &mut TaskRow, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        let id = *id;
        let now = self.clock.now();
        let (answer, task, changed) = self
            .writer
            .call(true, move |db| {
                let mut row = db.load_existing(&id)?;
                let answer = change(db, &mut row, now)?;
                db.save(&row)?;
                let mut changed = vec![changed(&row, now)];
                if let Some(parent_id) = row.task.parent_id {
                    changed.extend(with_family(db, &parent_id, now, |family| Ok(family.settle(now)))?);
                }
                Ok((answer, row.task, changed))
            })
            .await?;
        self.publish(&changed);
        Ok((answer, task))
    }

    /// Starts, once, a task that asks SQLite every `watch_interval` whether another connection
    /// changed the file (`PRAGMA data_version`), and publishes [`TaskChange::Resync`] when one did. It
    /// runs while anyone subscribes and the store is open.
    fn watch_other_processes(&self) {
        use std::sync::atomic::Ordering;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let writer = Arc::downgrade(&self.writer);
        let feed = self.feed.clone();
        let interval = self.watch_interval;
        runtime.spawn(async move {
            let mut last = None;
            loop {
                tokio::time::sleep(interval).await;
                let Some(writer) = writer.upgrade() else { return };
                if !feed.has_subscribers() {
                    // Nobody listens now; keep the last version so a later subscriber starts fresh.
                    last = None;
                    continue;
                }
                match writer.call(false, Db::data_version).await {
                    Ok(version) => {
                        if last.is_some_and(|last| last != version) {
                            feed.publish(TaskChange::Resync);
                        }
                        last = Some(version);
                    }
                    Err(_) => return,
                }
            }
        });
    }
}

/// Loads the family of `parent_id`, applies `change`, and saves the parent and every child it
/// changed. The statuses of the tasks it saved.
fn with_family(
    db: &Db,
    parent_id: &TaskId,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut Family) -> Result<Vec<usize>, StoreError>,
) -> Result<Changed, StoreError> {
    let parent = db.load_existing(parent_id)?;
    let mut family = Family::new(parent, db.load_children(parent_id)?);
    let changed_children = change(&mut family)?;
    db.save(&family.parent)?;
    let mut saved = vec![changed(&family.parent, now)];
    for idx in changed_children {
        let child = &family.children[idx];
        db.save(child)?;
        saved.push(changed(child, now));
    }
    Ok(saved)
}

/// Claims the loaded row for the lease at `now`; saves it and completes the claim with the checkpoint.
fn claim(
    db: &Db,
    mut row: TaskRow,
    lease: &LeaseRequest,
    now: DateTime<Utc>,
) -> Result<(Option<ClaimedTask>, Changed), StoreError> {
    match row.claim(lease, now) {
        ClaimResult::NotClaimable => Ok((None, Vec::new())),
        ClaimResult::Quarantined => {
            db.save(&row)?;
            let mut saved = vec![changed(&row, now)];
            if let Some(parent_id) = row.task.parent_id {
                saved.extend(with_family(db, &parent_id, now, |family| Ok(family.settle(now)))?);
            }
            Ok((None, saved))
        }
        ClaimResult::Claimed(claim) => {
            db.save(&row)?;
            let checkpoint = db.checkpoint(&row.task.id)?;
            let changed = vec![changed(&row, now)];
            let claimed = ClaimedTask {
                task: row.task,
                lease: claim.lease,
                checkpoint,
                resumed: claim.resumed,
                stop_requested: claim.stop_requested,
            };
            Ok((Some(claimed), changed))
        }
    }
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn insert_task(&self, task: &BatchTask) -> Result<(), StoreError> {
        let inserted = task.clone();
        self.writer.call(true, move |db| db.insert(&inserted)).await?;
        self.feed.task(task.id, task.status, task.status == TaskStatus::Pending);
        Ok(())
    }

    async fn insert_tasks(&self, tasks: &[BatchTask]) -> Vec<Result<(), StoreError>> {
        if tasks.is_empty() {
            return Vec::new();
        }
        // One request, one transaction: a refused task (a duplicate id) inserts nothing and leaves
        // the others in.
        let inserted = tasks.to_vec();
        let outcomes = self
            .writer
            .call(true, move |db| Ok(inserted.iter().map(|task| db.insert(task)).collect::<Vec<_>>()))
            .await;
        match outcomes {
            Ok(outcomes) => {
                for (task, outcome) in tasks.iter().zip(&outcomes) {
                    if outcome.is_ok() {
                        self.feed.task(task.id, task.status, task.status == TaskStatus::Pending);
                    }
                }
                outcomes
            }
            Err(error) => error.copies(tasks.len()).into_iter().map(Err).collect(),
        }
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
        let ((), task) = self.change(&id, move |_, row, now| row.update_status(&update, now)).await?;
        Ok(task)
    }

    async fn claim_task(&self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
        let (id, lease) = (*id, lease.clone());
        let now = self.clock.now();
        let (claimed, changed) =
            self.writer.call(true, move |db| claim(db, db.load_existing(&id)?, &lease, now)).await?;
        self.publish(&changed);
        Ok(claimed)
    }

    async fn claim_next(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let task_types = task_types.to_vec();
        let lease = lease.clone();
        let now = self.clock.now();
        let (claimed, changed) = self
            .writer
            .call(true, move |db| {
                let mut changed = Vec::new();
                loop {
                    let Some(id) = db.oldest_claimable(&task_types, time_key(now))? else {
                        return Ok((None, changed));
                    };
                    let (claimed, more) = claim(db, db.load_existing(&id)?, &lease, now)?;
                    changed.extend(more);
                    if claimed.is_some() {
                        return Ok((claimed, changed));
                    }
                }
            })
            .await?;
        self.publish(&changed);
        Ok(claimed)
    }

    async fn heartbeat(
        &self,
        id: &TaskId,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<HeartbeatReply, StoreError> {
        let (id, holder) = (*id, holder.clone());
        let now = self.clock.now();
        // A renewal changes nothing anyone watches: no change published.
        self.writer
            .call(true, move |db| {
                let mut row = db.load_existing(&id)?;
                let reply = row.heartbeat(&holder, ttl, now)?;
                db.save_lease(&row)?;
                Ok(reply)
            })
            .await
    }

    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        holder: &Holder,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let commit = CheckpointCommit {
            checkpoint: checkpoint.clone(),
            progress: progress.clone(),
            writes: Vec::new(),
        };
        self.commit_checkpoints(id, holder, vec![commit]).await
    }

    /// The checkpoints in one request of the next group (one savepoint, one commit): each checked
    /// and saved in order, all or none. This store takes no attached writes: the checkpoints before
    /// the first that carries some are committed, and that one is refused as by
    /// [`commit_checkpoint_with`](TaskStore::commit_checkpoint_with)'s default.
    async fn commit_checkpoints(
        &self,
        id: &TaskId,
        holder: &Holder,
        mut commits: Vec<CheckpointCommit>,
    ) -> Result<(), StoreError> {
        let refused = commits
            .iter()
            .position(|commit| !commit.writes.is_empty())
            .map(|at| commits.split_off(at).swap_remove(0));
        if !commits.is_empty() {
            let holder = holder.clone();
            self.change(id, move |db, row, now| {
                for commit in &commits {
                    let previous = db.checkpoint_sequence(&row.task.id)?;
                    row.commit_checkpoint(&holder, previous, &commit.checkpoint, &commit.progress, now)?;
                    db.save_checkpoint(&row.task.id, &commit.checkpoint)?;
                }
                Ok(())
            })
            .await?;
        }
        match refused {
            Some(CheckpointCommit { checkpoint, progress, writes }) => {
                self.commit_checkpoint_with(id, holder, &checkpoint, &progress, writes).await
            }
            None => Ok(()),
        }
    }

    async fn update_progress(
        &self,
        id: &TaskId,
        holder: &Holder,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let (holder, progress) = (holder.clone(), progress.clone());
        self.change(id, move |_, row, now| row.update_progress(&holder, &progress, now)).await?;
        Ok(())
    }

    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        let id = *id;
        self.writer.call(false, move |db| db.checkpoint(&id)).await
    }

    async fn finish_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError> {
        let (holder, outcome) = (holder.clone(), outcome.clone());
        let ((), task) = self
            .change(id, move |db, row, now| {
                row.finish(&holder, &outcome, now)?;
                let record = TaskResultRecord { result: outcome.result, metrics: outcome.metrics };
                db.save_result(&row.task.id, &record)
            })
            .await?;
        Ok(task)
    }

    async fn release_task(&self, id: &TaskId, holder: &Holder) -> Result<(), StoreError> {
        let holder = holder.clone();
        self.change(id, move |_, row, now| row.release(&holder, now)).await?;
        Ok(())
    }

    async fn request_stop(&self, id: &TaskId) -> Result<BatchTask, StoreError> {
        let id = *id;
        let now = self.clock.now();
        let (task, changed) = self
            .writer
            .call(true, move |db| {
                let mut row = db.load_existing(&id)?;
                row.request_stop(now)?;
                db.save(&row)?;
                let mut saved = vec![changed(&row, now)];
                if let Some(parent_id) = row.task.parent_id {
                    saved.extend(with_family(db, &parent_id, now, |family| Ok(family.settle(now)))?);
                }
                if db.has_children(&id)? {
                    saved.extend(with_family(db, &id, now, |family| Ok(family.stop_children(now)))?);
                }
                Ok((row.task, saved))
            })
            .await?;
        self.publish(&changed);
        Ok(task)
    }

    async fn restart_task(&self, id: &TaskId) -> Result<BatchTask, StoreError> {
        let id = *id;
        let now = self.clock.now();
        let (task, changed) = self
            .writer
            .call(true, move |db| {
                let mut row = db.load_existing(&id)?;
                row.restart(now)?;
                if db.has_children(&id)? {
                    let saved = with_family(db, &id, now, |family| {
                        let restarted = family.restart_children(now)?;
                        family.parent = row.clone();
                        Ok(restarted)
                    })?;
                    return Ok((row.task, saved));
                }
                db.save(&row)?;
                let saved = vec![changed(&row, now)];
                Ok((row.task, saved))
            })
            .await?;
        self.publish(&changed);
        Ok(task)
    }

    async fn split_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        children: &[BatchTask],
    ) -> Result<(), StoreError> {
        let (id, holder, children) = (*id, holder.clone(), children.to_vec());
        let now = self.clock.now();
        let changed = self
            .writer
            .call(true, move |db| {
                let parent = db.load_existing(&id)?;
                parent.check_holder(&holder)?;
                check_children(&parent, &children)?;
                let mut saved = Vec::new();
                for child in &children {
                    db.insert(child)?;
                    saved.push((child.id, child.status, true));
                }
                saved.extend(with_family(db, &id, now, |family| family.park(&holder, now))?);
                Ok(saved)
            })
            .await?;
        self.publish(&changed);
        Ok(())
    }

    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        let id = *id;
        self.writer.call(false, move |db| db.result(&id)).await
    }

    async fn metrics(&self) -> Result<BatchMetrics, StoreError> {
        self.writer.call(false, Db::metrics).await
    }

    fn subscribe(&self) -> TaskChanges {
        let changes = self.feed.subscribe();
        self.watch_other_processes();
        changes
    }
}
