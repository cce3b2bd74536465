//! PostgreSQL task store (feature `postgres`): many worker processes on many machines sharing one
//! database.
//!
//! # Design
//!
//! - **Its own schema.** Everything lives in the schema `batch` (`batch.tasks` with each task's
//!   record, result and metrics, `batch.checkpoints`, `batch.task_events`,
//!   `batch.schema_migrations`), so a user's database is not cluttered. Migrations are numbered and
//!   applied on connect under a transaction-scoped advisory lock, so that many processes starting at
//!   once on an empty database migrate it once (each in one transaction: a crash leaves the schema
//!   as it was); a schema newer than this build knows is refused (`STORAGE_ERROR`). Every process on
//!   a database must run a build that knows its schema: a migration changes tables older builds use.
//! - **The same rules.** A call that changes a task locks its row `FOR UPDATE` — with its family
//!   when it is a partition or a parent, the parent first, then the partitions in id order — applies
//!   the rules the memory and SQLite stores apply (`store/rules.rs`: `TaskRow`, `Family`) in Rust,
//!   and saves every changed row in the same transaction, so the three stores behave alike.
//! - **A holder's calls without a lock** (schema 4). Every update of a task bumps its version
//!   (`rev`) and names the version it started from; a row that changed since fails the update
//!   (`batch.stale_task`, SQLSTATE `PMP01`) and the group rolls back. So a store keeps a copy of each
//!   held task as its last group left it (`held.rs`), and a heartbeat, checkpoint, progress update,
//!   finish or release of such a task (not a partition) starts from the copy instead of locking and
//!   reading the row. A copy behind the row (another store stopped the task, took it over, or gave it
//!   to a holder this store has not seen) is never acted on: the group runs again with the row locked
//!   and read, and a call refused on a copy is always judged again on the row before it is answered.
//!   Such a row is locked by its update, in id order; a deadlock with another group's row locks is
//!   found by the server and the group is tried again.
//! - **The database's clock.** Lease expiry is judged, and every time the store stamps (claims,
//!   status changes, finishes, releases, stops) is read, on the database's clock
//!   (`clock_timestamp()` once the group's rows are locked) at **microsecond** resolution, never on a
//!   worker's; lease expiry times are kept in whole microseconds (rounded down). Times the caller
//!   sets in records (`created_at`, a checkpoint's `committed_at`, a progress's `updated_at`) are kept
//!   as given. Tests give the store a [`Clock`] instead ([`PgOptions::clock`]), whose time is sent
//!   with each statement that needs it.
//! - **Fencing.** Every claim bumps the task's `epoch`; every write names the [`Holder`] it acts for
//!   and is refused (`LeaseLost`) unless it holds the task under that epoch.
//! - **Group commit.** Calls that change tasks are gathered into one transaction per group, up to
//!   [`PgOptions::writers`] groups at once, each group two pipelined round trips (see `writer.rs`);
//!   a group is closed after one turn round the runtime's queue, so that calls made ready together
//!   (the finishes of a claimed batch) share it; reads use pooled connections directly. No
//!   transaction stays open beyond one group: never while a task runs. A group whose connection is
//!   lost, or that meets a restarting server, is tried again for up to [`PgOptions::retry_for`]; if
//!   the connection was lost while its commit was on the way, the store first asks the server
//!   whether it committed, so a group never applies twice. The groups' connections are made, and
//!   their statements prepared, when the store connects (unless
//!   [`PgOptions::open_writers_at_connect`] is off): the first groups pay for no new server process,
//!   and a server without enough free connection slots fails the connect.
//! - **Writes attached to checkpoints.** [`TaskStore::commit_checkpoint_with`] runs a task's
//!   output rows (a table in this database) in the group that commits its checkpoint, after the
//!   call's holder and sequence are checked, behind a savepoint: a write that fails through its own
//!   fault is undone and only its call fails (the calls are applied again without it). The store's
//!   database is named by the server itself (`system_identifier` and database name,
//!   [`TaskStore::attachable_database`]), and a write for another database is refused.
//! - **Claims.** `FOR UPDATE SKIP LOCKED`, oldest first, from partial indexes that cover only
//!   claimable rows (`pending`, and `processing` but not waiting for partitions), so finished tasks
//!   cost a claim nothing and two workers never get one task.
//! - **Change feed.** Each group sends one NOTIFY statement on `batch_task_changes` whose payloads
//!   carry a line per changed task — id, status, claimable — for inserts, claims, checkpoints,
//!   progress, finishes, releases, stops, restarts and splits (heartbeats are not changes); the
//!   lines of changes that make a task claimable also go on `batch_task_claimable`, the lines of
//!   tasks' ends on `batch_task_ended`, and resyncs on all three. One dedicated connection per store
//!   LISTENs (pooled connections would drop notifications), on the channel its
//!   [`PgOptions::hear`] names: the server sends each listener every payload of its channel, so a
//!   fleet whose workers heard every change would cost the server a copy of every change per
//!   worker, and a client waiting for a task to end would hear every change of every task. The
//!   listener reconnects with backoff and publishes [`TaskChange::Resync`] after a reconnect.
//!   [`TaskStore::subscribe`] hands out receivers.
//! - **An audit trail.** `batch.task_events` gets a row for each claim, checkpoint, end, release,
//!   split, quarantine and restart, in the transaction that made it: [`PgStore::task_events`].
//! - **Client.** tokio-postgres (pipelining, cached prepared statements, binary COPY for bulk inserts,
//!   task ids as binary `uuid` values) and deadpool-postgres; connections are made without TLS.
//! - **Errors that say what to do.** A failure is [`StoreError::Storage`] (`STORAGE_ERROR`) naming
//!   `postgres://user@host:port/database` (never the password) and what to fix: a refused connection,
//!   a bad password, an unknown database, a missing privilege.

mod encoding;
mod error;
mod held;
mod listener;
mod queries;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    BatchMetrics, BatchTask, CheckpointCommit, ListTasksRequest, Progress, StatusCount, TaskId, TaskStatus,
    TaskType,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::watch;
use tokio_postgres::types::Json;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::feed::{ChangeFeed, TaskChange};
use super::{
    AttachedWrite, Checkpoint, ClaimedTask, DatabaseIdentity, HeartbeatReply, Holder, LeaseRequest,
    StatusUpdate, StoreError, TaskChanges, TaskOutcome, TaskPage, TaskResultRecord, TaskStore, WorkerId,
};
use error::{PgLocation, corrupt_record, storage};
use writer::{Answer, Limits, Op, Shared, Writer};

/// How to connect a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most pooled connections (default 8; at least `writers + 1`). The change feed's connection
    /// comes on top.
    pub max_connections: usize,
    /// Most group transactions at once, each on a connection of its own: the writer's lanes
    /// (default 2; 0 counts as 1). Two let a group's round trips overlap the commit of the group
    /// before; more make smaller groups that contend for the same pages and the commit's locks. A
    /// fleet does best when its lanes together (workers × `writers`) are about the server's cores:
    /// on a two-core server, one worker with 2 and four workers with 1 each (`batch worker
    /// --writers`); measured in docs/BENCHMARKS.md.
    pub writers: usize,
    /// Most calls in one group transaction (default 512; 0 counts as 1).
    pub max_group: usize,
    /// Calls that may wait for a group before callers are made to wait (default 4096; 0 counts as 1).
    pub queue_capacity: usize,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// How long a group keeps trying when the connection is lost or the server is restarting, before
    /// its calls fail with `STORAGE_ERROR` (default 30 s).
    pub retry_for: Duration,
    /// How long the server lets one of the store's transactions sit idle before it ends it
    /// (`idle_in_transaction_session_timeout`; default 10 s; zero leaves the server's setting).
    /// A group's transaction is idle only between its pipelined round trips, for milliseconds; a
    /// longer idle means its process is paused or hung (SIGSTOP, a stalled VM) while it holds the
    /// row locks of the tasks in its group, which would keep every other worker from taking them
    /// over until it wakes. The server then rolls the transaction back, the locks go, and the
    /// paused process's group fails as a lost connection would (nothing of it committed).
    pub idle_transaction_timeout: Duration,
    /// Whether to make the writer's connections (one per [`writers`](PgOptions::writers)), with the
    /// group statements prepared on each, when the store connects (default true): the first groups
    /// then pay for no new server process, and a server without enough free connection slots fails
    /// the connect instead of the first groups. A short-lived handle that mostly reads (a command
    /// that lists tasks) turns it off and makes connections as it needs them.
    pub open_writers_at_connect: bool,
    /// Whether to run the change feed's listener (default true). Without it, the feed carries only
    /// this handle's own changes.
    pub listen: bool,
    /// With [`listen`](PgOptions::listen), which changes from every process the listener hears
    /// (default [`Heard::Every`]; the resyncs in every case). A worker hears
    /// [`Heard::Claimable`] and a client that waits for tasks to end [`Heard::Ended`]: the server
    /// then sends this store the few lines it waits for instead of a line per change of every task
    /// (a fleet's server sends every change to every listener of all changes).
    pub hear: Heard,
    /// The clock that judges leases and stamps tasks: `None` (the default) for the database's, as
    /// every process sharing the database must; tests give a
    /// [`ManualClock`](crate::store::ManualClock), whose time is sent with each call.
    pub clock: Option<Arc<dyn Clock>>,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            max_connections: 8,
            writers: 2,
            max_group: 512,
            queue_capacity: 4096,
            connect_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
            idle_transaction_timeout: Duration::from_secs(10),
            open_writers_at_connect: true,
            listen: true,
            hear: Heard::Every,
            clock: None,
        }
    }
}

/// Which changes a store's listener hears from every process ([`PgOptions::hear`]). The resyncs
/// ([`TaskChange::Resync`]) are heard in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heard {
    /// Every change of every task: a dashboard's store, or a client that follows tasks' progress.
    #[default]
    Every,
    /// The changes that make a task claimable (a new pending task, a task handed back or whose
    /// holder stopped, a parent whose partitions are all done): what a worker's claim loops wait
    /// for. [`BatchManager::wait`](crate::BatchManager::wait) on a task another process runs
    /// then sees its end by polling (every `poll_interval`).
    Claimable,
    /// Tasks' ends (completed, failed, cancelled): what
    /// [`BatchManager::wait`](crate::BatchManager::wait) and `batch tasks wait` wait for, a line
    /// per task instead of one per change. A worker on such a store sees new tasks by polling
    /// only, and so does a waiter the ends of tasks finished by processes of a build older than
    /// this channel (they do not send on it).
    Ended,
}

impl Heard {
    /// The channel its listener LISTENs on.
    fn channel(self) -> &'static str {
        match self {
            Heard::Every => queries::CHANNEL,
            Heard::Claimable => queries::CLAIMABLE_CHANNEL,
            Heard::Ended => queries::ENDED_CHANNEL,
        }
    }
}

/// What the store's writer has done so far (see [`PgStore::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Group transactions committed.
    pub transactions_committed: u64,
    /// Group transactions that failed as a whole (every call in them got the error).
    pub transactions_failed: u64,
    /// Group transactions tried again after a deadlock, serialization failure or dead connection.
    pub transactions_retried: u64,
    /// Calls that went through the writer.
    pub requests: u64,
    /// Most calls in one group.
    pub largest_group: u64,
    /// Rows of holder calls (heartbeat, checkpoint, progress, finish, release) committed from the
    /// store's copy of the task instead of being locked and read first.
    pub held_rows_used: u64,
}

/// The server setting the store's connections start with (see [`PgStore::connect`]).
const GENERIC_PLANS: &str = "-c plan_cache_mode=force_generic_plan";

/// Bulk inserts of at least this many tasks go through binary COPY.
const COPY_THRESHOLD: usize = 1000;

/// Bulk inserts that notify each task; larger ones send one [`TaskChange::Resync`].
const NOTIFY_EACH_UP_TO: usize = 100;

/// One entry of a task's audit trail (see [`PgStore::task_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// What happened.
    pub kind: TaskEventKind,
    /// The task's epoch at the event: for a claim, the epoch it started.
    pub epoch: u64,
    /// The worker whose call it was; `None` for a change nobody held the task for (a stop, a
    /// restart, an end that a partition's end caused).
    pub worker: Option<WorkerId>,
    /// The sequence of the task's last checkpoint after the event (for a claim: the checkpoint it
    /// resumes from); `None` before the first.
    pub sequence: Option<u64>,
    /// When, on the store's clock (the transaction's time).
    pub at: DateTime<Utc>,
}

/// What a [`TaskEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskEventKind {
    /// A worker claimed (or took over) the task.
    Claimed,
    /// Its holder committed a checkpoint.
    Checkpoint,
    /// The task ended `completed`.
    Completed,
    /// The task ended `failed`.
    Failed,
    /// The task ended `cancelled`.
    Cancelled,
    /// Its holder handed it back.
    Released,
    /// Its holder split it into partitions.
    Split,
    /// It ended `failed` because its workers kept getting lost (see [`LeaseRequest::max_lost_leases`]).
    Quarantined,
    /// A new attempt of it started.
    Restarted,
}

impl TaskEventKind {
    /// The name stored in `batch.task_events.event`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskEventKind::Claimed => "claimed",
            TaskEventKind::Checkpoint => "checkpoint",
            TaskEventKind::Completed => "completed",
            TaskEventKind::Failed => "failed",
            TaskEventKind::Cancelled => "cancelled",
            TaskEventKind::Released => "released",
            TaskEventKind::Split => "split",
            TaskEventKind::Quarantined => "quarantined",
            TaskEventKind::Restarted => "restarted",
        }
    }

    fn parse(name: &str) -> Option<TaskEventKind> {
        [
            TaskEventKind::Claimed,
            TaskEventKind::Checkpoint,
            TaskEventKind::Completed,
            TaskEventKind::Failed,
            TaskEventKind::Cancelled,
            TaskEventKind::Released,
            TaskEventKind::Split,
            TaskEventKind::Quarantined,
            TaskEventKind::Restarted,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

/// The PostgreSQL [`TaskStore`]. See the [module docs](self) for the design.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use batch_manager::store::TaskStore;
/// use batch_manager::store::postgres::{PgOptions, PgStore};
/// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskType};
/// use chrono::Utc;
///
/// let store = PgStore::connect("postgres://batch@127.0.0.1:5432/batch", PgOptions::default()).await?;
/// let task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), Utc::now())?;
/// store.insert_task(&task).await?;
/// assert_eq!(store.task(&task.id).await?.map(|stored| stored.id), Some(task.id));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    location: PgLocation,
    writer: Writer,
    clock: Option<Arc<dyn Clock>>,
    feed: ChangeFeed,
    /// Whether a listener runs (else the feed is fed by this handle itself).
    listen: bool,
    listening: watch::Receiver<bool>,
    stop: CancellationToken,
    /// The store's database as the server names it, read once (`None`: the server would not say).
    identity: tokio::sync::OnceCell<Option<DatabaseIdentity>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Stops the listener; the writer stops when its channel closes.
        self.stop.cancel();
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or the
    /// `key=value` form), checks it can be used, and applies the schema migrations it lacks. Must be
    /// called within a tokio runtime (the store's writer and listener run on it).
    ///
    /// Fails with [`StoreError::Storage`] (`STORAGE_ERROR`) naming the server and database and what to
    /// fix when the URL is malformed, the server refuses the connection or the password, the database
    /// does not exist, the user may not create the schema, or the schema is newer than this build,
    /// and (with [`open_writers_at_connect`](PgOptions::open_writers_at_connect)) when the server
    /// cannot give it a connection for each of its [`writers`](PgOptions::writers).
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|error| StoreError::Storage {
            location: "postgres".to_owned(),
            message: format!(
                "the database address is not a valid PostgreSQL URL ({error}): write it as \
                 postgres://user:password@host:port/database"
            ),
            source: None,
        })?;
        config.connect_timeout(options.connect_timeout);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("batch");
        }
        // Every statement of the store is prepared once per connection and planned generically: no
        // planning per call, and no plan fitted to a statistics snapshot taken when the table was
        // small or held other rows (a claim planned as "sort every pending row" when the statistics
        // said there were none; see `tests.rs`).
        let mut ours = GENERIC_PLANS.to_owned();
        let idle = options.idle_transaction_timeout.as_millis();
        if idle > 0 {
            // A paused process must not hold its group's row locks for ever (see the option).
            ours.push_str(&format!(" -c idle_in_transaction_session_timeout={idle}"));
        }
        let server_options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {ours}"),
            _ => ours,
        };
        config.options(&server_options);
        let location = PgLocation::new(&config);
        let writers = options.writers.max(1);
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(writers + 1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| storage(&location, format!("cannot build the connection pool: {error}")))?;
        let mut client = pool.get().await.map_err(|error| location.pool_error("connecting", error))?;
        schema::migrate(&mut client, &location).await?;
        drop(client);
        if options.open_writers_at_connect {
            writer::open_lanes(&pool, &location, writers).await?;
        }

        let feed = ChangeFeed::default();
        let shared = Shared {
            pool: pool.clone(),
            location: location.clone(),
            clock: options.clock.clone(),
            local_feed: (!options.listen).then(|| feed.clone()),
            retry_for: options.retry_for,
            held: Arc::default(),
        };
        let limits = Limits { writers, max_group: options.max_group, queue_capacity: options.queue_capacity };
        let writer = Writer::start(shared, limits);
        let (listening_sender, mut listening) = watch::channel(false);
        let stop = CancellationToken::new();
        if options.listen {
            tokio::spawn(listener::run(
                config,
                options.hear.channel(),
                location.clone(),
                feed.clone(),
                listening_sender,
                stop.clone(),
            ));
            // Subscribers made right after connect hear every later change.
            let _ = tokio::time::timeout(options.connect_timeout, listening.wait_for(|listening| *listening))
                .await;
        }
        Ok(PgStore {
            pool,
            location,
            writer,
            clock: options.clock,
            feed,
            listen: options.listen,
            listening,
            stop,
            identity: tokio::sync::OnceCell::new(),
        })
    }

    /// The store's current time: the database's clock (or the clock the store was given).
    pub async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        let client = self.client().await?;
        let given = self.clock.as_ref().map(|clock| clock.now());
        let row = client
            .query_one(queries::NOW, &[&given])
            .await
            .map_err(|error| self.location.error("reading the database time", error))?;
        row.try_get(0).map_err(|error| corrupt_record(&self.location, "the database time", error))
    }

    /// The task's audit trail, oldest first: each claim, checkpoint, end, release, split, quarantine
    /// and restart, with the epoch and worker it happened under, written in the transaction that
    /// made the change. Empty for an unknown task.
    ///
    /// Fleet tests prove with it that each task completed exactly once and that no write of a stale
    /// epoch was accepted; operators read a task's history in it.
    pub async fn task_events(&self, id: &TaskId) -> Result<Vec<TaskEvent>, StoreError> {
        let client = self.client().await?;
        let reading = |error| self.location.error("reading a task's events", error);
        let statement = client.prepare_cached(queries::GET_EVENTS).await.map_err(reading)?;
        let rows = client.query(&statement, &[&encoding::Uuid(*id)]).await.map_err(reading)?;
        rows.iter()
            .map(|row| {
                let corrupt = |error| corrupt_record(&self.location, &format!("an event of task {id}"), error);
                let epoch: i64 = row.try_get(0).map_err(corrupt)?;
                let worker: Option<String> = row.try_get(1).map_err(corrupt)?;
                let name: String = row.try_get(2).map_err(corrupt)?;
                let sequence: Option<i64> = row.try_get(3).map_err(corrupt)?;
                let at: DateTime<Utc> = row.try_get(4).map_err(corrupt)?;
                let kind = TaskEventKind::parse(&name).ok_or_else(|| {
                    storage(
                        &self.location,
                        format!(
                            "an event of task {id} has the unknown kind {name:?}: the database was written by \
                             a newer version of batch or another program"
                        ),
                    )
                })?;
                Ok(TaskEvent {
                    kind,
                    epoch: u64::try_from(epoch).unwrap_or(0),
                    worker: worker.map(WorkerId),
                    sequence: sequence.map(|sequence| u64::try_from(sequence).unwrap_or(0)),
                    at,
                })
            })
            .collect()
    }

    /// Whether the change feed's listener is connected and listening now.
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }

    /// Counters of the group-commit writer.
    pub fn stats(&self) -> PgStats {
        self.writer.counters.snapshot()
    }

    /// The database address as shown in errors and logs (no password).
    pub fn location(&self) -> &str {
        &self.location.shown
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|error| self.location.pool_error("getting a connection", error))
    }

    async fn call(&self, op: Op) -> Result<Answer, StoreError> {
        self.writer.call(op).await
    }

    fn unexpected(&self, answer: &Answer) -> StoreError {
        storage(
            &self.location,
            format!("the writer answered {answer:?} to another call (a bug in the store)"),
        )
    }

    async fn claimed(&self, op: Op) -> Result<Vec<ClaimedTask>, StoreError> {
        match self.call(op).await? {
            Answer::Claimed(claimed) => Ok(claimed),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn task_answer(&self, op: Op) -> Result<BatchTask, StoreError> {
        match self.call(op).await? {
            Answer::Task(task) => Ok(*task),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn done(&self, op: Op) -> Result<(), StoreError> {
        match self.call(op).await? {
            Answer::Done => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Inserts many tasks by binary COPY, each task's outcome in order: straight into `tasks` when
    /// none of their ids exists (the common case: new ids), else (a unique violation undoes that
    /// COPY) through a staging table and one `INSERT ... ON CONFLICT DO NOTHING`, which skips the ids
    /// that exist, whoever inserted them.
    async fn copy_insert(&self, tasks: &[BatchTask]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut client = self.client().await?;
        let location = &self.location;
        let mut transaction =
            client.transaction().await.map_err(|error| location.error("starting a bulk insert", error))?;
        let direct = transaction
            .savepoint("direct_copy")
            .await
            .map_err(|error| location.error("starting a bulk insert", error))?;
        let data = copy_data(location, tasks)?;
        let outcomes = match copy_tasks(&direct, queries::COPY_TASKS, data.clone()).await {
            Ok(()) => {
                direct.commit().await.map_err(|error| location.error("copying new tasks", error))?;
                tasks.iter().map(|_| Ok(())).collect()
            }
            Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                direct.rollback().await.map_err(|error| location.error("copying new tasks", error))?;
                self.staged_insert(&transaction, tasks, data).await?
            }
            Err(error) => return Err(location.error("copying new tasks", error)),
        };
        let changes: Vec<TaskChange> =
            if outcomes.iter().filter(|outcome| outcome.is_ok()).count() > NOTIFY_EACH_UP_TO {
                vec![TaskChange::Resync]
            } else {
                tasks
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, outcome)| outcome.is_ok())
                    .map(|(task, _)| TaskChange::Task {
                        id: task.id,
                        status: task.status,
                        // A new task has no holder: its time does not matter.
                        claimable: super::rules::TaskRow::new(task.clone())
                            .is_claimable(DateTime::<Utc>::MIN_UTC),
                    })
                    .collect()
            };
        let notifications = listener::Notifications::of_changes(changes.iter().copied());
        if !notifications.is_empty() {
            transaction
                .execute(queries::NOTIFY, &[&notifications.channels, &notifications.payloads])
                .await
                .map_err(|error| location.error("notifying new tasks", error))?;
        }
        transaction.commit().await.map_err(|error| location.error("committing new tasks", error))?;
        if !self.listen {
            for change in changes {
                self.feed.publish(change);
            }
        }
        Ok(outcomes)
    }

    /// Inserts `tasks` (`data`: their COPY data) through the staging table, skipping ids that exist;
    /// each task's outcome.
    async fn staged_insert(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        tasks: &[BatchTask],
        data: bytes::Bytes,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let location = &self.location;
        transaction
            .batch_execute(queries::CREATE_IMPORT_TABLE)
            .await
            .map_err(|error| location.error("creating the staging table", error))?;
        copy_tasks(transaction, queries::COPY_IMPORT, data)
            .await
            .map_err(|error| location.error("copying new tasks", error))?;
        let rows = transaction
            .query(queries::INSERT_IMPORTED, &[])
            .await
            .map_err(|error| location.error("inserting the copied tasks", error))?;
        let mut inserted = std::collections::BTreeSet::new();
        for row in rows {
            let encoding::Uuid(id) =
                row.try_get(0).map_err(|error| corrupt_record(location, "an id", error))?;
            inserted.insert(id);
        }
        Ok(tasks
            .iter()
            .map(|task| inserted.remove(&task.id).then_some(()).ok_or(StoreError::Duplicate { id: task.id }))
            .collect())
    }
}

/// PostgreSQL's binary COPY header: the signature, no flags, no header extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The largest piece of COPY data sent in one message.
const COPY_MESSAGE: usize = 1 << 20;

/// `tasks` as binary COPY data for the columns of [`queries::COPY_TASKS`], encoded once and whole
/// before a COPY starts (so that a value that cannot be encoded fails no statement, and the staging
/// table's retry sends the same bytes). Sent in pieces of up to 1 MiB: tokio-postgres's
/// `BinaryCopyInWriter` hands the connection a piece every 4 KiB, a wake-up of the connection's
/// task each time (170 for a thousand new tasks).
fn copy_data(location: &PgLocation, tasks: &[BatchTask]) -> Result<bytes::Bytes, StoreError> {
    use bytes::BufMut as _;
    use tokio_postgres::types::{IsNull, ToSql, Type};

    const TYPES: [Type; 7] =
        [Type::UUID, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::TEXT, Type::UUID];
    // An empty task's COPY row is about 510 bytes (its record 440): room for most new tasks without
    // growing; larger ones grow the buffer by doubling.
    const ROW_BYTES: usize = 640;
    let mut data = bytes::BytesMut::with_capacity(COPY_HEADER.len() + tasks.len() * ROW_BYTES + 2);
    data.put_slice(COPY_HEADER);
    for task in tasks {
        let id = encoding::Uuid(task.id);
        let created = super::rules::time_key(task.created_at);
        let run_nanos = writer::run_nanos(task);
        let record = encoding::TaskRecord(task);
        let parent = task.parent_id.map(encoding::Uuid);
        let values: [&(dyn ToSql + Sync); 7] =
            [&id, &task.task_type.as_str(), &task.status.as_str(), &created, &run_nanos, &record, &parent];
        data.put_i16(7);
        for (value, ty) in values.into_iter().zip(&TYPES) {
            let at = data.len();
            data.put_i32(0);
            let written = value.to_sql_checked(ty, &mut data).map_err(|error| {
                storage(location, format!("task {} cannot be written to the store: {error}", task.id))
            })?;
            let length = match written {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(data.len() - at - 4).map_err(|_| {
                    storage(location, format!("task {} is too large for one column (1 GiB)", task.id))
                })?,
            };
            data[at..at + 4].copy_from_slice(&length.to_be_bytes());
        }
    }
    data.put_i16(-1);
    Ok(data.freeze())
}

/// Sends `data` (from [`copy_data`]) through the binary COPY `statement`.
async fn copy_tasks(
    client: &tokio_postgres::Transaction<'_>,
    statement: &str,
    mut data: bytes::Bytes,
) -> Result<(), tokio_postgres::Error> {
    use futures::SinkExt as _;

    let sink = client.copy_in(statement).await?;
    let mut sink = std::pin::pin!(sink);
    while !data.is_empty() {
        let piece = data.split_to(data.len().min(COPY_MESSAGE));
        sink.send(piece).await?;
    }
    sink.finish().await.map(drop)
}

#[async_trait]
impl TaskStore for PgStore {
    async fn insert_task(&self, task: &BatchTask) -> Result<(), StoreError> {
        match self.call(Op::Insert(vec![task.clone()])).await? {
            Answer::Inserted(mut outcomes) if outcomes.len() == 1 => outcomes.remove(0),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn insert_tasks(&self, tasks: &[BatchTask]) -> Vec<Result<(), StoreError>> {
        if tasks.is_empty() {
            return Vec::new();
        }
        let outcome = if tasks.len() >= COPY_THRESHOLD {
            self.copy_insert(tasks).await
        } else {
            match self.call(Op::Insert(tasks.to_vec())).await {
                Ok(Answer::Inserted(outcomes)) if outcomes.len() == tasks.len() => Ok(outcomes),
                Ok(other) => Err(self.unexpected(&other)),
                Err(error) => Err(error),
            }
        };
        match outcome {
            Ok(outcomes) => outcomes,
            Err(error) => error.copies(tasks.len()).into_iter().map(Err).collect(),
        }
    }

    async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(queries::GET_TASK)
            .await
            .map_err(|error| self.location.error("reading a task", error))?;
        let row = client
            .query_opt(&statement, &[&encoding::Uuid(*id)])
            .await
            .map_err(|error| self.location.error("reading a task", error))?;
        row.map(|row| writer::decode_task(&self.location, &row)).transpose()
    }

    async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError> {
        let mut client = self.client().await?;
        let status = request.status.map(TaskStatus::as_str);
        let task_type = request.task_type.as_ref().map(TaskType::as_str);
        let parent = request.parent_id.map(encoding::Uuid);
        let limit = i64::from(request.limit);
        let offset = i64::try_from(request.offset).unwrap_or(i64::MAX);
        let newest = limit.saturating_add(offset);
        let listing = |error| self.location.error("listing tasks", error);
        // In a transaction of its own, under the settings that keep its plans ordered index scans.
        let transaction = client.transaction().await.map_err(listing)?;
        transaction.batch_execute(queries::INDEX_PLANS).await.map_err(listing)?;
        // Without a type or parent filter the count reads the indexes alone.
        let by_status = task_type.is_none() && parent.is_none();
        let count_query = if by_status { queries::COUNT_BY_STATUS } else { queries::COUNT_TASKS };
        let (count, page) = tokio::try_join!(
            transaction.prepare_cached(count_query),
            transaction.prepare_cached(queries::LIST_TASKS)
        )
        .map_err(listing)?;
        let filters: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&status, &task_type, &parent];
        let count_params = if by_status { &filters[..1] } else { &filters[..] };
        let page_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
            [&status, &task_type, &parent, &limit, &offset, &newest];
        let (total, rows) = tokio::try_join!(
            transaction.query_one(&count, count_params),
            transaction.query(&page, &page_params)
        )
        .map_err(listing)?;
        transaction.commit().await.map_err(listing)?;
        let total: i64 =
            total.try_get(0).map_err(|error| corrupt_record(&self.location, "a count", error))?;
        let tasks =
            rows.iter().map(|row| writer::decode_task(&self.location, row)).collect::<Result<_, _>>()?;
        Ok(TaskPage { tasks, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn update_status(&self, update: &StatusUpdate) -> Result<BatchTask, StoreError> {
        self.task_answer(Op::UpdateStatus(update.clone())).await
    }

    async fn claim_task(&self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
        Ok(self.claimed(Op::ClaimTask { id: *id, lease: lease.clone() }).await?.pop())
    }

    async fn claim_next(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let op = Op::ClaimNext { task_types: task_types.to_vec(), lease: lease.clone(), max: 1 };
        Ok(self.claimed(op).await?.pop())
    }

    async fn claim_many(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
        max: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.claimed(Op::ClaimNext { task_types: task_types.to_vec(), lease: lease.clone(), max }).await
    }

    async fn heartbeat(
        &self,
        id: &TaskId,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<HeartbeatReply, StoreError> {
        match self.call(Op::Heartbeat { id: *id, holder: holder.clone(), ttl }).await? {
            Answer::Heartbeat(reply) => Ok(reply),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        holder: &Holder,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.commit_checkpoint_with(id, holder, checkpoint, progress, Vec::new()).await
    }

    /// Runs `writes` in the transaction of the group that commits the checkpoint, once the holder
    /// and the sequence are checked: a failing write undoes every write of the group (a savepoint)
    /// and the group's calls are applied again without this one, which gets the error (see
    /// `writer.rs`).
    async fn commit_checkpoint_with(
        &self,
        id: &TaskId,
        holder: &Holder,
        checkpoint: &Checkpoint,
        progress: &Progress,
        writes: Vec<AttachedWrite>,
    ) -> Result<(), StoreError> {
        let commit = CheckpointCommit { checkpoint: checkpoint.clone(), progress: progress.clone(), writes };
        self.commit_checkpoints(id, holder, vec![commit]).await
    }

    /// The checkpoints in one call of the next group: checked and recorded in order, their writes
    /// run in order, all committed in its transaction. A refused checkpoint (a stale holder, a
    /// sequence out of order) fails the call as a whole. When an attached write fails, nothing of
    /// the call is committed, and its checkpoints are then committed one by one up to the failing
    /// one, whose error the call returns: the checkpoints before it stay committed, as when each
    /// came alone.
    async fn commit_checkpoints(
        &self,
        id: &TaskId,
        holder: &Holder,
        commits: Vec<CheckpointCommit>,
    ) -> Result<(), StoreError> {
        if commits.is_empty() {
            return Ok(());
        }
        if commits.iter().any(|commit| !commit.writes.is_empty()) {
            let own = self.attachable_database().await?;
            let foreign = commits
                .iter()
                .flat_map(|commit| &commit.writes)
                .find(|write| Some(&write.database) != own.as_ref());
            if let Some(write) = foreign {
                let own = own
                    .map_or_else(|| "unknown (the server would not say)".to_owned(), |own| own.to_string());
                return Err(StoreError::AttachedWrite {
                    id: *id,
                    target: write.target.clone(),
                    message: format!(
                        "it is in {}, but this store's database is {own}: write it through its own connection",
                        write.database
                    ),
                });
            }
        }
        let commits: Vec<Arc<CheckpointCommit>> = commits.into_iter().map(Arc::new).collect();
        let one_by_one = (commits.len() > 1).then(|| commits.clone());
        match self.done(Op::CommitCheckpoint { id: *id, holder: holder.clone(), commits }).await {
            Err(StoreError::AttachedWrite { .. }) if let Some(commits) = one_by_one => {
                // (Should every one pass alone, the writes failed only beside each other: all are
                // committed now, which is the call's promise.)
                for commit in commits {
                    self.done(Op::CommitCheckpoint {
                        id: *id,
                        holder: holder.clone(),
                        commits: vec![commit],
                    })
                    .await?;
                }
                Ok(())
            }
            answer => answer,
        }
    }

    /// The database's `system_identifier` (from `pg_control_system()`, which PostgreSQL lets any
    /// user call) and name, read once; `None` when the server refuses to say (a privilege revoked).
    async fn attachable_database(&self) -> Result<Option<DatabaseIdentity>, StoreError> {
        let identity = self
            .identity
            .get_or_try_init(|| async {
                let client = self.client().await?;
                match client.query_one(queries::DATABASE_IDENTITY, &[]).await {
                    Ok(row) => {
                        let read = |idx| {
                            row.try_get::<_, String>(idx).map_err(|error| {
                                corrupt_record(&self.location, "the database's identity", error)
                            })
                        };
                        Ok(Some(DatabaseIdentity::new(read(0)?, read(1)?)))
                    }
                    Err(error)
                        if error.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
                    {
                        Ok(None)
                    }
                    Err(error) => Err(self.location.error("reading the database's identity", error)),
                }
            })
            .await?;
        Ok(identity.clone())
    }

    async fn update_progress(
        &self,
        id: &TaskId,
        holder: &Holder,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.done(Op::UpdateProgress { id: *id, holder: holder.clone(), progress: progress.clone() }).await
    }

    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.client().await?;
        let reading = |error| self.location.error("reading a checkpoint", error);
        let statement = client.prepare_cached(queries::GET_CHECKPOINT).await.map_err(reading)?;
        let row = client.query_opt(&statement, &[&encoding::Uuid(*id)]).await.map_err(reading)?;
        row.map(|row| {
            row.try_get::<_, Json<Checkpoint>>(0).map(|Json(checkpoint)| checkpoint).map_err(|error| {
                corrupt_record(&self.location, &format!("the checkpoint of task {id}"), error)
            })
        })
        .transpose()
    }

    async fn finish_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError> {
        self.task_answer(Op::Finish { id: *id, holder: holder.clone(), outcome: outcome.clone() }).await
    }

    async fn release_task(&self, id: &TaskId, holder: &Holder) -> Result<(), StoreError> {
        self.done(Op::Release { id: *id, holder: holder.clone() }).await
    }

    async fn request_stop(&self, id: &TaskId) -> Result<BatchTask, StoreError> {
        self.task_answer(Op::RequestStop { id: *id }).await
    }

    async fn restart_task(&self, id: &TaskId) -> Result<BatchTask, StoreError> {
        self.task_answer(Op::Restart { id: *id }).await
    }

    async fn split_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        children: &[BatchTask],
    ) -> Result<(), StoreError> {
        self.done(Op::Split { id: *id, holder: holder.clone(), children: children.to_vec() }).await
    }

    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        let client = self.client().await?;
        let reading = |error| self.location.error("reading a result", error);
        let statement = client.prepare_cached(queries::GET_RESULT).await.map_err(reading)?;
        let Some(row) = client.query_opt(&statement, &[&encoding::Uuid(*id)]).await.map_err(reading)? else {
            return Ok(None);
        };
        let corrupt =
            |what: &str, error| corrupt_record(&self.location, &format!("the {what} of task {id}"), error);
        let encoding::JsonText(result) = row.try_get(0).map_err(|error| corrupt("result", error))?;
        let encoding::JsonText(metrics) = row.try_get(1).map_err(|error| corrupt("metrics", error))?;
        Ok(Some(TaskResultRecord { result, metrics }))
    }

    async fn metrics(&self) -> Result<BatchMetrics, StoreError> {
        let client = self.client().await?;
        let computing = |error| self.location.error("computing metrics", error);
        let statement = client.prepare_cached(queries::METRICS).await.map_err(computing)?;
        let rows = client.query(&statement, &[]).await.map_err(computing)?;
        let counts = rows
            .iter()
            .map(|row| {
                let corrupt = |error| corrupt_record(&self.location, "a metrics row", error);
                let status: String = row.try_get(0).map_err(corrupt)?;
                let tasks: i64 = row.try_get(1).map_err(corrupt)?;
                let timed: i64 = row.try_get(2).map_err(corrupt)?;
                let nanos: String = row.try_get(3).map_err(corrupt)?;
                let status = TaskStatus::from_str(&status)
                    .map_err(|error| corrupt_record(&self.location, "a task status", error))?;
                let nanos: u128 = nanos.parse().unwrap_or(0);
                let run_time = Duration::new(
                    u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
                    (nanos % 1_000_000_000) as u32,
                );
                Ok(StatusCount {
                    status,
                    tasks: u64::try_from(tasks).unwrap_or(0),
                    timed_tasks: u64::try_from(timed).unwrap_or(0),
                    run_time,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(BatchMetrics::from_counts(counts))
    }

    fn subscribe(&self) -> TaskChanges {
        self.feed.subscribe()
    }

    /// PostgreSQL keeps microseconds.
    fn time_resolution(&self) -> Duration {
        Duration::from_micros(1)
    }
}
