//! `m2_task_throughput`: 10,000 empty tasks created, processed and completed, by the batch manager
//! on its SQLite store and by two peers in the same run: apalis-sqlite (an embedded Rust job queue
//! on SQLite) in two configurations, and plain rusqlite running the statements our store runs for a
//! task, one transaction each (the limit of doing them one at a time).
//!
//! Every iteration starts from a fresh database file, created (and migrated) outside the timing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, ParallelizeExt, TaskBuilder, TaskSink, WorkerBuilder, WorkerContext};
use apalis_sqlite::{Config as ApalisConfig, SqliteConnectOptions, SqlitePool, SqliteStorage};
use batch_model::{
    BatchTask, CreateTaskRequest, Durability, ProcessingMetrics, TaskId, TaskStatus, TaskType,
    TransitionCause,
};
use benches::manager_workloads::manager;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use tokio::task::JoinSet;

use crate::runtime;

/// Tasks per iteration.
const M2_TASKS: u64 = 10_000;

fn or_panic<T, E: std::fmt::Display>(result: Result<T, E>, doing: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{doing}: {error}"),
    }
}

fn temporary_dir() -> tempfile::TempDir {
    or_panic(tempfile::tempdir(), "creating a temporary directory")
}

pub(crate) fn m2_task_throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("m2_task_throughput");
    group.throughput(Throughput::Elements(M2_TASKS));
    // One iteration per sample: an apalis iteration takes a minute or more here.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("batch_manager", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += run_batch_manager().await;
            }
            total
        })
    });
    // Its best configuration found: 100 jobs per query. Its default, 10, took about 100 s per
    // iteration here (about twice fetch_100's time per job in a trial run) and cannot finish
    // criterion's 10 samples in a reasonable run; a pool of one connection or a fetch of 1,000
    // changed little. Turning its result persistence off makes it finish in about a second, but then
    // no job is recorded as done: not the same work.
    let fetch = 100;
    group.bench_function(BenchmarkId::new("apalis_sqlite", format!("fetch_{fetch}")), |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += run_apalis(fetch).await;
            }
            total
        })
    });
    group.bench_function("rusqlite_one_transaction_each", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_rusqlite_limit()).sum())
    });
    group.finish();
}

/// Our manager: 10,000 tasks created, processed and awaited at once (256 run at a time); the store's
/// writer thread groups the concurrent requests into shared transactions.
async fn run_batch_manager() -> Duration {
    let dir = temporary_dir();
    let manager = manager(&dir.path().join("tasks.db"), Durability::Process, 256);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..M2_TASKS {
        let manager = manager.clone();
        tasks.spawn(async move {
            let request = CreateTaskRequest::new(TaskType::Custom("bench_empty".to_owned()));
            let id = manager.create_task(request).await?.id;
            manager.process_task(&id).await?;
            manager.wait(&id).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(task)) => assert_eq!(task.status, TaskStatus::Completed),
            Ok(Err(error)) => panic!("a task failed: {error}"),
            Err(error) => panic!("a task panicked: {error}"),
        }
    }
    let elapsed = started.elapsed();
    manager.shutdown().await;
    elapsed
}

/// Jobs the apalis worker has finished in the current iteration.
static APALIS_DONE: AtomicU64 = AtomicU64::new(0);

async fn apalis_job(_job: u64, worker: WorkerContext) -> Result<(), BoxDynError> {
    if APALIS_DONE.fetch_add(1, Ordering::SeqCst) + 1 == M2_TASKS {
        worker.stop()?;
    }
    Ok(())
}

/// apalis-sqlite 1.0: the 10,000 jobs pushed in one call (its bulk insert), then worked by one
/// worker running jobs concurrently (`parallelize`), fetching `fetch` jobs per query and
/// acknowledging them in batches. The database is in WAL mode with `synchronous=NORMAL`, as ours
/// (apalis's own `setup` also switches the connection it runs on to `synchronous=OFF`).
async fn run_apalis(fetch: usize) -> Duration {
    let dir = temporary_dir();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("jobs.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = or_panic(SqlitePool::connect_with(options).await, "opening apalis's database");
    or_panic(SqliteStorage::setup(&pool).await, "migrating apalis's database");
    let config = ApalisConfig::default().queue("m2").batch_size(fetch);
    let mut backend = SqliteStorage::new(&pool).with_config(config);
    APALIS_DONE.store(0, Ordering::SeqCst);

    let started = Instant::now();
    let mut jobs = futures::stream::iter((0..M2_TASKS).map(|job| TaskBuilder::new(job).build()));
    or_panic(backend.push_all(&mut jobs).await, "pushing apalis jobs");
    let worker = WorkerBuilder::new("m2-apalis").backend(backend).parallelize(tokio::spawn).build(apalis_job);
    or_panic(worker.run().await, "running the apalis worker");
    let elapsed = started.elapsed();

    assert_eq!(APALIS_DONE.load(Ordering::SeqCst), M2_TASKS);
    let done: i64 = or_panic(
        sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE done_at IS NOT NULL").fetch_one(&pool).await,
        "counting apalis's finished jobs",
    );
    assert_eq!(u64::try_from(done).unwrap_or(0), M2_TASKS, "apalis recorded every job as done");
    pool.close().await;
    elapsed
}

/// The tables and indexes of our SQLite store (`batch-manager`'s `store/sqlite/schema.rs`,
/// migrations 1 and 2), so the limit writes rows of the same shape into the same indexes.
const LIMIT_SCHEMA: &str = "
    CREATE TABLE tasks (
        id               TEXT    NOT NULL PRIMARY KEY,
        task_type        TEXT    NOT NULL,
        status           TEXT    NOT NULL
                         CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
        created_at       INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        stop_requested   INTEGER NOT NULL DEFAULT 0 CHECK (stop_requested IN (0, 1)),
        run_seconds      INTEGER,
        run_nanos        INTEGER,
        record           TEXT    NOT NULL,
        epoch            INTEGER NOT NULL DEFAULT 0,
        lost_leases      INTEGER NOT NULL DEFAULT 0,
        waiting          INTEGER NOT NULL DEFAULT 0 CHECK (waiting IN (0, 1)),
        parent_id        TEXT
    ) STRICT;
    CREATE INDEX tasks_by_created ON tasks (created_at, id);
    CREATE INDEX tasks_by_status ON tasks (status, created_at, id);
    CREATE INDEX tasks_by_type ON tasks (task_type, created_at, id);
    CREATE INDEX tasks_by_parent ON tasks (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
    CREATE INDEX tasks_claimable ON tasks (created_at, id) WHERE status IN ('pending', 'processing');
    CREATE TABLE checkpoints (
        task_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
        sequence INTEGER NOT NULL,
        record   TEXT    NOT NULL
    ) STRICT;
    CREATE TABLE results (
        task_id TEXT NOT NULL PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
        result  TEXT NOT NULL,
        metrics TEXT NOT NULL
    ) STRICT;";

/// Our store's statements for a task's life (`store/sqlite/queries.rs`).
const INSERT_TASK: &str = "INSERT INTO tasks (id, task_type, status, created_at, lease_owner, lease_expires_at, \
     stop_requested, run_seconds, run_nanos, record, parent_id) \
     VALUES (?1, ?2, ?3, ?4, NULL, NULL, 0, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING";
const LOAD_TASK: &str = "SELECT record, lease_owner, lease_expires_at, stop_requested, epoch, lost_leases, waiting \
     FROM tasks WHERE id = ?1";
const SAVE_TASK: &str = "UPDATE tasks SET status = ?2, lease_owner = ?3, lease_expires_at = ?4, stop_requested = ?5, \
     run_seconds = ?6, run_nanos = ?7, record = ?8, epoch = ?9, lost_leases = ?10, waiting = ?11 WHERE id = ?1";
const LOAD_CHECKPOINT: &str = "SELECT record FROM checkpoints WHERE task_id = ?1";
const SAVE_RESULT: &str = "INSERT INTO results (task_id, result, metrics) VALUES (?1, ?2, ?3) \
     ON CONFLICT (task_id) DO UPDATE SET result = excluded.result, metrics = excluded.metrics";

/// One task's rows as our store writes them: its id, creation key, and its record (the task as JSON)
/// when pending, processing and completed.
struct LimitTask {
    id: String,
    created_at: i64,
    records: [String; 3],
}

impl LimitTask {
    fn new() -> LimitTask {
        let now = chrono::Utc::now();
        let request = CreateTaskRequest::new(TaskType::Custom("bench_empty".to_owned()));
        let mut task = or_panic(BatchTask::new(TaskId::new(), request, now), "building a task");
        let pending = or_panic(serde_json::to_string(&task), "writing a task");
        or_panic(task.transition(TaskStatus::Processing, TransitionCause::Requested, now), "claiming a task");
        let processing = or_panic(serde_json::to_string(&task), "writing a task");
        or_panic(task.transition(TaskStatus::Completed, TransitionCause::Requested, now), "finishing a task");
        let completed = or_panic(serde_json::to_string(&task), "writing a task");
        LimitTask {
            id: task.id.to_string(),
            created_at: now.timestamp_nanos_opt().unwrap_or(i64::MAX),
            records: [pending, processing, completed],
        }
    }
}

/// Plain rusqlite, one connection, the task's three writes one after the other, each its own
/// transaction as our store would run it alone: the insert; the claim (read the row, save it
/// `processing` under a lease, read its checkpoint); the finish (read the row, save it `completed`,
/// write its result). Same file settings as our store (WAL, `synchronous=NORMAL`, foreign keys).
/// The records are rendered before the timing: this is the statements' cost alone.
fn run_rusqlite_limit() -> Duration {
    let dir = temporary_dir();
    let mut conn = or_panic(Connection::open(dir.path().join("limit.db")), "opening the limit's database");
    let configured = conn
        .pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| conn.pragma_update(None, "foreign_keys", true))
        .and_then(|()| conn.execute_batch(LIMIT_SCHEMA));
    or_panic(configured, "creating the limit's schema");
    let tasks: Vec<LimitTask> = (0..M2_TASKS).map(|_| LimitTask::new()).collect();
    let result = or_panic(serde_json::to_string(&serde_json::Value::Null), "writing a result");
    let metrics = or_panic(serde_json::to_string(&ProcessingMetrics::default()), "writing metrics");

    let started = Instant::now();
    for task in &tasks {
        or_panic(life_of_a_task(&mut conn, task, &result, &metrics), "running the limit's statements");
    }
    started.elapsed()
}

fn life_of_a_task(
    conn: &mut Connection,
    task: &LimitTask,
    result: &str,
    metrics: &str,
) -> rusqlite::Result<()> {
    let [pending, processing, completed] = &task.records;
    conn.prepare_cached(INSERT_TASK)?.execute(params![
        task.id,
        "bench_empty",
        "pending",
        task.created_at,
        None::<i64>,
        None::<i64>,
        pending,
        None::<String>,
    ])?;
    let load = |conn: &Connection| -> rusqlite::Result<String> {
        conn.prepare_cached(LOAD_TASK)?.query_row([&task.id], |row| row.get(0))
    };
    let claim = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    load(&claim)?;
    claim.prepare_cached(SAVE_TASK)?.execute(params![
        task.id,
        "processing",
        "bench-worker",
        task.created_at + 30_000_000_000,
        false,
        None::<i64>,
        None::<i64>,
        processing,
        1,
        0,
        false,
    ])?;
    claim.prepare_cached(LOAD_CHECKPOINT)?.query_row([&task.id], |row| row.get::<_, String>(0)).optional()?;
    claim.commit()?;
    let finish = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    load(&finish)?;
    finish.prepare_cached(SAVE_TASK)?.execute(params![
        task.id,
        "completed",
        None::<String>,
        None::<i64>,
        false,
        0,
        1_000,
        completed,
        1,
        0,
        false,
    ])?;
    finish.prepare_cached(SAVE_RESULT)?.execute(params![task.id, result, metrics])?;
    finish.commit()
}
