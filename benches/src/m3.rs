//! m3's flows that more than one tool runs (issue 11): the store's (10,000 empty tasks created in
//! batches by a submitter and worked by `BatchManager` workers on a `PgStore`) and River's statements
//! driven by a minimal client ([`river_sql`]), each on a fresh database of a throwaway server. The
//! criterion bench (`benches/pg.rs`, `m3_pg_task_throughput`) times them beside its other peers; the
//! `m3_rounds` probe alternates them round after round, so that their ratio is taken in the same
//! minutes on a machine whose speed drifts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::TaskStore;
use batch_manager::store::postgres::{Heard, PgOptions, PgStore};
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{CreateTaskRequest, TaskType};
use batch_testkit::{PgCluster, TestDatabase};

use crate::manager_workloads::{empty_tasks_manager, wait_completed};
use crate::river_sql;

/// The tasks of one m3 run.
pub const M3_TASKS: usize = 10_000;
/// How many tasks the submitter creates per call (River's ceiling inserts its jobs in batches of
/// the same size).
pub const CREATE_BATCH: usize = 1_000;
/// A worker's slots (tasks at once). The tasks are empty, so slots cost a tokio task each: 1,024
/// lets a worker's claims run ahead of its finishes' commits (256 held it to one claim per finish
/// group: 15-20% slower in `pg_statements`, `PG_SLOTS=256`). River's ceiling gets as many.
pub const SLOTS_PER_WORKER: usize = 1_024;

/// A failed step of a run, saying which.
pub type Failure = String;

fn failed<E: std::fmt::Display>(doing: &'static str) -> impl FnOnce(E) -> Failure {
    move |error| format!("{doing}: {error}")
}

/// A fresh database for one run, after a checkpoint (outside the timing): no run flushes the dirty
/// pages of the one before, whichever flow that was.
pub async fn fresh_database(cluster: &PgCluster) -> Result<TestDatabase, Failure> {
    let admin = cluster.connect("postgres").await.map_err(failed("connecting to the server"))?;
    admin.batch_execute("CHECKPOINT").await.map_err(failed("checkpointing"))?;
    cluster.create_database().await.map_err(failed("creating a database"))
}

/// Drops a run's database (outside the timing), so that autovacuum does not work on old runs'
/// tables during later ones.
pub async fn drop_database(cluster: &PgCluster, database: &TestDatabase) -> Result<(), Failure> {
    cluster.drop_database(&database.name).await.map_err(failed("dropping a database"))
}

/// Workers on their own stores, each running `run_worker` in the background.
struct Workers {
    managers: Vec<BatchManager>,
    loops: Vec<tokio::task::JoinHandle<Result<(), batch_manager::ManagerError>>>,
}

impl Workers {
    fn start(managers: Vec<BatchManager>) -> Workers {
        let loops = managers
            .iter()
            .map(|manager| {
                let manager = manager.clone();
                tokio::spawn(async move { manager.run_worker().await })
            })
            .collect();
        Workers { managers, loops }
    }

    async fn stop(self) -> Result<(), Failure> {
        for manager in &self.managers {
            manager.shutdown().await;
        }
        for handle in self.loops {
            handle
                .await
                .map_err(failed("a worker loop panicked"))?
                .map_err(failed("a worker loop failed"))?;
        }
        Ok(())
    }
}

/// One batch of requests for [`CREATE_BATCH`] empty tasks (the kind `bench_empty`).
pub fn empty_requests() -> Vec<CreateTaskRequest> {
    (0..CREATE_BATCH).map(|_| CreateTaskRequest::new(TaskType::Custom("bench_empty".to_owned()))).collect()
}

/// Creates the run's tasks through `submitter`, in batches of [`CREATE_BATCH`].
async fn create_all(submitter: &BatchManager) -> Result<(), Failure> {
    for _ in 0..M3_TASKS / CREATE_BATCH {
        submitter.create_tasks(empty_requests()).await.map_err(failed("creating tasks"))?;
    }
    Ok(())
}

/// One run of the store's flow: [`M3_TASKS`] empty tasks created by a submitter (connected as
/// `batch tasks wait` connects: hearing only tasks' ends, which is all its waiting reads) while
/// `workers` workers (`run_worker`, [`SLOTS_PER_WORKER`] slots and the default claims in flight
/// each, each on its own store as a separate process would have, connected as `batch worker
/// --writers N` connects: hearing only the changes that make tasks claimable, `writers` lanes) work
/// them; timed from the first creation to the submitter's hearing of the last completion.
pub async fn run_batch_pg(cluster: &PgCluster, workers: usize, writers: usize) -> Result<Duration, Failure> {
    run_batch_pg_with(cluster, workers, writers, ManagerConfig::default().claims_in_flight).await
}

/// [`run_batch_pg`] with `claims` claims in flight per worker.
pub async fn run_batch_pg_with(
    cluster: &PgCluster,
    workers: usize,
    writers: usize,
    claims: usize,
) -> Result<Duration, Failure> {
    let database = fresh_database(cluster).await?;
    let connect = |options: PgOptions| async {
        PgStore::connect(&database.url, options).await.map(Arc::new).map_err(failed("connecting"))
    };
    let submitter_store = connect(PgOptions { hear: Heard::Ended, ..PgOptions::default() }).await?;
    // The submitter only creates tasks: its slots and claims are never used.
    let submitter = empty_tasks_manager(
        Arc::clone(&submitter_store) as Arc<dyn TaskStore>,
        "submitter",
        SLOTS_PER_WORKER,
        1,
    )
    .map_err(failed("building the submitter"))?;
    let mut managers = Vec::new();
    for idx in 0..workers {
        let store = connect(PgOptions { hear: Heard::Claimable, writers, ..PgOptions::default() }).await?;
        let manager = empty_tasks_manager(store, &format!("worker-{idx}"), SLOTS_PER_WORKER, claims)
            .map_err(failed("building a worker"))?;
        managers.push(manager);
    }
    let running = Workers::start(managers);
    let mut events = submitter_store.subscribe();

    // The feed is read while the tasks are created, as a client waiting for them would.
    let started = Instant::now();
    let waiting =
        wait_completed(submitter_store.as_ref(), &mut events, M3_TASKS as u64, Duration::from_secs(300));
    let (created, waited) = tokio::join!(create_all(&submitter), waiting);
    let elapsed = started.elapsed();
    running.stop().await?;
    created?;
    waited?;
    let metrics = submitter_store.metrics().await.map_err(failed("reading metrics"))?;
    if metrics.completed_tasks != M3_TASKS as u64 {
        return Err(format!("{} tasks completed of {M3_TASKS}: {metrics:?}", metrics.completed_tasks));
    }
    // The stores (and their listeners) go before their database.
    drop(submitter);
    drop(submitter_store);
    drop_database(cluster, &database).await?;
    Ok(elapsed)
}

/// One run of the store's flow on SQLite (a second baseline): as [`run_batch_pg`] with one worker,
/// the submitter and the worker sharing one store (SQLite's processes share one host).
pub async fn run_batch_sqlite() -> Result<Duration, Failure> {
    let dir = tempfile::tempdir().map_err(failed("creating a temporary directory"))?;
    let store = SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default())
        .map_err(failed("opening SQLite"))?;
    let store: Arc<dyn TaskStore> = Arc::new(store);
    let submitter = empty_tasks_manager(Arc::clone(&store), "submitter", SLOTS_PER_WORKER, 1)
        .map_err(failed("building the submitter"))?;
    let claims = ManagerConfig::default().claims_in_flight;
    let worker = empty_tasks_manager(Arc::clone(&store), "worker-0", SLOTS_PER_WORKER, claims)
        .map_err(failed("building a worker"))?;
    let running = Workers::start(vec![worker]);
    let mut events = store.subscribe();

    let started = Instant::now();
    let waiting = wait_completed(store.as_ref(), &mut events, M3_TASKS as u64, Duration::from_secs(300));
    let (created, waited) = tokio::join!(create_all(&submitter), waiting);
    let elapsed = started.elapsed();
    running.stop().await?;
    created?;
    waited?;
    Ok(elapsed)
}

/// One run of River's statements with no client work around them ([`river_sql`]): a ceiling of
/// River's rate on the machine of the run, not River.
pub async fn run_sql_river_statements(cluster: &PgCluster) -> Result<Duration, Failure> {
    let database = fresh_database(cluster).await?;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(cluster.connect(&database.name).await.map_err(failed("connecting"))?);
    }
    let [inserter, fetcher, completer] = &clients[..] else { return Err("three connections".to_owned()) };
    river_sql::create_table(inserter).await.map_err(failed("creating River's jobs table"))?;
    let elapsed =
        river_sql::run(inserter, fetcher, completer, M3_TASKS, CREATE_BATCH, SLOTS_PER_WORKER).await?;
    drop(clients);
    drop_database(cluster, &database).await?;
    Ok(elapsed)
}
