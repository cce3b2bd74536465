//! PostgreSQL task store (feature `postgres`): many worker processes on many machines sharing one
//! database.
//!
//! # Design
//!
//! - **Its own schema.** Everything lives in the schema `batch` (`batch.tasks`, `batch.checkpoints`,
//!   `batch.results`, `batch.schema_migrations`), so a user's database is not cluttered. Migrations
//!   are numbered and applied on connect under a transaction-scoped advisory lock, so that many
//!   processes starting at once on an empty database migrate it once; a schema newer than this build
//!   knows is refused (`STORAGE_ERROR`).
//! - **The same rules.** A call that changes a task loads its row `FOR UPDATE`, applies the rule the
//!   memory and SQLite stores apply (`store/rules.rs`) in Rust, and saves it in the same
//!   transaction, so the three stores behave alike.
//! - **The database's clock.** Lease expiry is judged, and every time the store stamps (claims,
//!   status changes, finishes, releases, stops) is read, on the database's clock (`now()` of the
//!   transaction) at **microsecond** resolution; the callers' `now` and `at` arguments are ignored.
//!   Lease expiry times are kept in microseconds (rounded down). Times the caller sets in records
//!   (`created_at`, a checkpoint's `committed_at`, a progress's `updated_at`) are kept as given. Tests
//!   shift the store's view of the clock through [`PgStore::clock`] ([`DbClock`]).
//! - **Group commit.** Calls that change tasks are gathered into one transaction per group, up to
//!   [`PgOptions::writers`] groups at once, each group two pipelined round trips (see `writer.rs`);
//!   reads use pooled connections directly. No transaction stays open beyond one group: never while
//!   a task runs.
//! - **Claims.** `FOR UPDATE SKIP LOCKED`, oldest first, from partial indexes that cover only
//!   claimable rows (`pending`, `processing`), so finished tasks cost a claim nothing and two workers
//!   never get one task. Every claim bumps the task's `epoch` (a fencing token, column `epoch`).
//! - **Change feed.** Inserts, stops, releases, finishes and status changes NOTIFY
//!   `batch_task_changes` with `"<id> <status>"` in their transaction; one dedicated connection per
//!   store LISTENs (pooled connections would drop notifications), reconnects with backoff, and sends
//!   [`StoreEvent::Resync`] after a reconnect. [`PgStore::subscribe`] hands out receivers.
//! - **Client.** tokio-postgres (pipelining, cached prepared statements, binary COPY for bulk inserts)
//!   and deadpool-postgres; connections are made without TLS.
//! - **Errors that say what to do.** A failure is [`StoreError::Storage`] (`STORAGE_ERROR`) naming
//!   `postgres://user@host:port/database` (never the password) and what to fix: a refused connection,
//!   a bad password, an unknown database, a missing privilege.

mod clock;
mod error;
mod listener;
mod queries;
mod schema;
mod writer;

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    BatchMetrics, BatchTask, ListTasksRequest, Progress, StatusCount, TaskId, TaskStatus, TaskType,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{broadcast, watch};
use tokio_postgres::types::Json;
use tokio_util::sync::CancellationToken;

pub use clock::DbClock;
pub use listener::{StoreEvent, TaskChange};

use super::{
    Checkpoint, ClaimedTask, HeartbeatReply, LeaseRequest, StatusUpdate, StoreError, TaskOutcome, TaskPage,
    TaskResultRecord, TaskStore, WorkerId,
};
use error::{PgLocation, corrupt_record, storage};
use writer::{Answer, Op, Writer};

/// How to connect a [`PgStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most pooled connections (default 8; at least `writers + 1`). The change feed's connection
    /// comes on top.
    pub max_connections: usize,
    /// Most group transactions at once (default 4; 0 counts as 1).
    pub writers: usize,
    /// Most calls in one group transaction (default 512; 0 counts as 1).
    pub max_group: usize,
    /// Calls that may wait for a group before callers are made to wait (default 4096; 0 counts as 1).
    pub queue_capacity: usize,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Whether to run the change feed's listener (default true).
    pub listen: bool,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            max_connections: 8,
            writers: 4,
            max_group: 512,
            queue_capacity: 4096,
            connect_timeout: Duration::from_secs(10),
            listen: true,
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
}

/// Bulk inserts of at least this many tasks go through binary COPY.
const COPY_THRESHOLD: usize = 1000;

/// Bulk inserts that notify each task; larger ones send one [`StoreEvent::Resync`].
const NOTIFY_EACH_UP_TO: usize = 100;

/// `key` (ns since the epoch) rounded down to a whole microsecond: what PostgreSQL keeps.
pub(super) fn micros_floor(key: i64) -> i64 {
    key - key.rem_euclid(1000)
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
    clock: DbClock,
    events: broadcast::Sender<StoreEvent>,
    listening: watch::Receiver<bool>,
    stop: CancellationToken,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Stops the listener; the writer stops when its channel closes.
        self.stop.cancel();
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or the
    /// `key=value` form), checks it can be used, and applies the schema migrations it lacks.
    ///
    /// Fails with [`StoreError::Storage`] (`STORAGE_ERROR`) naming the server and database and what to
    /// fix when the URL is malformed, the server refuses the connection or the password, the database
    /// does not exist, the user may not create the schema, or the schema is newer than this build.
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

        let clock = DbClock::default();
        let writer = Writer::start(
            pool.clone(),
            location.clone(),
            clock.clone(),
            writers,
            options.max_group,
            options.queue_capacity,
        );
        let (events, _) = broadcast::channel(1024);
        let (listening_sender, mut listening) = watch::channel(false);
        let stop = CancellationToken::new();
        if options.listen {
            tokio::spawn(listener::run(
                config,
                location.clone(),
                events.clone(),
                listening_sender,
                stop.clone(),
            ));
            // Subscribers made right after connect hear every later change.
            let _ = tokio::time::timeout(options.connect_timeout, listening.wait_for(|listening| *listening))
                .await;
        }
        Ok(PgStore { pool, location, writer, clock, events, listening, stop })
    }

    /// The store's view of the database clock: shift it in tests (see [`DbClock`]).
    pub fn clock(&self) -> &DbClock {
        &self.clock
    }

    /// The store's current time: the database's clock as this store sees it (with the
    /// [`DbClock`]'s offset or pin).
    pub async fn database_time(&self) -> Result<DateTime<Utc>, StoreError> {
        let client = self.client().await?;
        let (pinned, offset) = self.clock.params();
        let row = client
            .query_one(queries::NOW, &[&pinned, &offset])
            .await
            .map_err(|error| self.location.error("reading the database time", error))?;
        row.try_get(0).map_err(|error| corrupt_record(&self.location, "the database time", error))
    }

    /// A receiver of the change feed: each task inserted, stopped, released, finished or given a new
    /// status, and [`StoreEvent::Resync`] whenever changes may have been missed. A receiver that falls
    /// more than 1024 events behind gets `Lagged` and should look at the store again.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
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

    /// Inserts many tasks by binary COPY into a staging table, then one `INSERT ... ON CONFLICT DO
    /// NOTHING`; each task's outcome in order.
    async fn copy_insert(&self, tasks: &[BatchTask]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;

        let mut client = self.client().await?;
        let location = &self.location;
        let transaction =
            client.transaction().await.map_err(|error| location.error("starting a bulk insert", error))?;
        transaction
            .batch_execute(queries::CREATE_IMPORT_TABLE)
            .await
            .map_err(|error| location.error("creating the staging table", error))?;
        let sink = transaction
            .copy_in(queries::COPY_IMPORT)
            .await
            .map_err(|error| location.error("starting the COPY of new tasks", error))?;
        let types = [Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::JSON];
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for task in tasks {
            let id = task.id.to_string();
            let created = super::rules::time_key(task.created_at);
            let run_nanos = writer::run_nanos(&super::rules::TaskRow::new(task.clone()));
            let record = Json(task);
            writer
                .as_mut()
                .write(&[&id, &task.task_type.as_str(), &task.status.as_str(), &created, &run_nanos, &record])
                .await
                .map_err(|error| location.error("copying new tasks", error))?;
        }
        writer.finish().await.map_err(|error| location.error("finishing the COPY of new tasks", error))?;
        let rows = transaction
            .query(queries::INSERT_IMPORTED, &[])
            .await
            .map_err(|error| location.error("inserting the copied tasks", error))?;
        let mut inserted = std::collections::BTreeSet::new();
        for row in rows {
            inserted.insert(
                row.try_get::<_, String>(0).map_err(|error| corrupt_record(location, "an id", error))?,
            );
        }
        let outcomes: Vec<Result<(), StoreError>> = tasks
            .iter()
            .map(|task| {
                if inserted.remove(&task.id.to_string()) {
                    Ok(())
                } else {
                    Err(StoreError::Duplicate { id: task.id })
                }
            })
            .collect();
        let notifications: Vec<String> =
            if outcomes.iter().filter(|outcome| outcome.is_ok()).count() > NOTIFY_EACH_UP_TO {
                vec!["*".to_owned()]
            } else {
                tasks
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, outcome)| outcome.is_ok())
                    .map(|(task, _)| format!("{} {}", task.id, task.status))
                    .collect()
            };
        transaction
            .execute(queries::NOTIFY, &[&notifications])
            .await
            .map_err(|error| location.error("notifying new tasks", error))?;
        transaction.commit().await.map_err(|error| location.error("committing new tasks", error))?;
        Ok(outcomes)
    }
}

fn decode_task(location: &PgLocation, row: &tokio_postgres::Row) -> Result<BatchTask, StoreError> {
    let Json(task): Json<BatchTask> =
        row.try_get(0).map_err(|error| corrupt_record(location, "a task record", error))?;
    Ok(task)
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
            Err(error) => {
                let failure = error::GroupFailure::new(error);
                tasks.iter().map(|_| Err(failure.to_error())).collect()
            }
        }
    }

    async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(queries::GET_TASK)
            .await
            .map_err(|error| self.location.error("reading a task", error))?;
        let row = client
            .query_opt(&statement, &[&id.to_string()])
            .await
            .map_err(|error| self.location.error("reading a task", error))?;
        row.map(|row| decode_task(&self.location, &row)).transpose()
    }

    async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError> {
        let client = self.client().await?;
        let status = request.status.map(TaskStatus::as_str);
        let task_type = request.task_type.as_ref().map(TaskType::as_str);
        let limit = i64::from(request.limit);
        let offset = i64::try_from(request.offset).unwrap_or(i64::MAX);
        let listing = |error| self.location.error("listing tasks", error);
        let (count, page) = tokio::try_join!(
            client.prepare_cached(queries::COUNT_TASKS),
            client.prepare_cached(queries::LIST_TASKS)
        )
        .map_err(listing)?;
        let count_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&status, &task_type];
        let page_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&status, &task_type, &limit, &offset];
        let (total, rows) =
            tokio::try_join!(client.query_one(&count, &count_params), client.query(&page, &page_params))
                .map_err(listing)?;
        let total: i64 =
            total.try_get(0).map_err(|error| corrupt_record(&self.location, "a count", error))?;
        let tasks = rows.iter().map(|row| decode_task(&self.location, row)).collect::<Result<_, _>>()?;
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

    async fn heartbeat(&self, id: &TaskId, lease: &LeaseRequest) -> Result<HeartbeatReply, StoreError> {
        match self.call(Op::Heartbeat { id: *id, lease: lease.clone() }).await? {
            Answer::Heartbeat(reply) => Ok(reply),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.done(Op::CommitCheckpoint {
            id: *id,
            worker: worker.clone(),
            checkpoint: checkpoint.clone(),
            progress: progress.clone(),
        })
        .await
    }

    async fn update_progress(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.done(Op::UpdateProgress { id: *id, worker: worker.clone(), progress: progress.clone() }).await
    }

    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.client().await?;
        let reading = |error| self.location.error("reading a checkpoint", error);
        let statement = client.prepare_cached(queries::GET_CHECKPOINT).await.map_err(reading)?;
        let row = client.query_opt(&statement, &[&id.to_string()]).await.map_err(reading)?;
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
        worker: &WorkerId,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError> {
        self.task_answer(Op::Finish { id: *id, worker: worker.clone(), outcome: outcome.clone() }).await
    }

    async fn release_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.done(Op::Release { id: *id, worker: worker.clone() }).await
    }

    async fn request_stop(&self, id: &TaskId, _now: DateTime<Utc>) -> Result<BatchTask, StoreError> {
        self.task_answer(Op::RequestStop { id: *id }).await
    }

    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        let client = self.client().await?;
        let reading = |error| self.location.error("reading a result", error);
        let statement = client.prepare_cached(queries::GET_RESULT).await.map_err(reading)?;
        let Some(row) = client.query_opt(&statement, &[&id.to_string()]).await.map_err(reading)? else {
            return Ok(None);
        };
        let corrupt =
            |what: &str, error| corrupt_record(&self.location, &format!("the {what} of task {id}"), error);
        let Json(result) = row.try_get(0).map_err(|error| corrupt("result", error))?;
        let Json(metrics) = row.try_get(1).map_err(|error| corrupt("metrics", error))?;
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
}
