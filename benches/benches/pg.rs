//! PostgreSQL benchmarks: how many tasks per second the PostgreSQL store turns over, beside a peer.
//!
//! - `m3_pg_task_throughput`: 10,000 empty tasks (the no-op kind `bench_empty`) created (in batches
//!   of 1,000 through `BatchManager::create_tasks`), claimed, run and completed by `BatchManager`
//!   workers (`run_worker`, 1,024 slots each, each worker with its own `PgStore` as a separate process
//!   would have, connected as `batch worker` connects: hearing only the changes that make tasks
//!   claimable) on a throwaway PostgreSQL server started by the test kit with default settings
//!   (fsync and synchronous_commit on). Flavours: `batch_pg_1_worker`, `batch_pg_4_workers` (each
//!   worker's store with the default two writer lanes), `batch_pg_4_workers_1_lane` (one each, as
//!   `batch worker --writers 1`: the fleet's four lanes about the two-core server's cores, fewer and
//!   larger groups); every worker keeps the default two claims in flight; the peer
//!   `apalis_postgres` (apalis-postgres 1.0 from crates.io: 10,000 no-op jobs pushed and worked by
//!   one worker, batch size 100, on the same server in the same run), `apalis_postgres_default`
//!   (the same with apalis's default batch size, 10); `batch_sqlite_1_worker`, the same flow on the
//!   SQLite store, as a second baseline; and `sql_one_per_transaction_1_conn` and `_4_conns`, the
//!   issue's floor in the same run (one job per transaction with hand-written SQL, on one connection
//!   and on four: 1,300 and 2,600 jobs/s where River did 15,000–17,000), which tells what River's
//!   rate comes to on the machine of the run; and `sql_river_statements`, River's own statements
//!   (its jobs table and indexes, bulk insert, one-statement fetch, batch completion) driven by a
//!   minimal client: a ceiling of River's rate on the machine of the run, since River's client does
//!   more around the same statements. Each iteration works on a fresh database, made after a
//!   checkpoint and dropped afterwards (outside the timing). Target (issue 11): River's rate, about
//!   15,000 tasks/s on this machine, and at least 8x apalis-postgres.
//!
//! Run: `cargo bench -p benches --bench pg` (needs PostgreSQL's server binaries: `apt-get install
//! postgresql`). Figures go to docs/BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config as ApalisConfig, PostgresStorage};
use batch_manager::store::postgres::{Heard, PgOptions, PgStore};
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{TaskChanges, TaskStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{CreateTaskRequest, TaskType};
use batch_testkit::PgCluster;
use benches::manager_workloads::{empty_tasks_manager, wait_completed};
use benches::river_sql;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

const M3_TASKS: usize = 10_000;
const CREATE_BATCH: usize = 1_000;
/// A worker's slots (tasks at once). The tasks are empty, so slots cost a tokio task each: 1,024
/// lets a worker's claims run ahead of its finishes' commits (256 held it to one claim per finish
/// group: 15-20% slower in `pg_statements`, `PG_SLOTS=256`). apalis spawns each fetched job.
const SLOTS_PER_WORKER: usize = 1_024;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
    }
}

fn or_panic<T, E: std::fmt::Display>(result: Result<T, E>, doing: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{doing}: {error}"),
    }
}

fn manager_on(store: Arc<dyn TaskStore>, name: &str, claims_in_flight: usize) -> BatchManager {
    or_panic(empty_tasks_manager(store, name, SLOTS_PER_WORKER, claims_in_flight), "building a manager")
}

fn empty_requests() -> Vec<CreateTaskRequest> {
    (0..CREATE_BATCH).map(|_| CreateTaskRequest::new(TaskType::Custom("bench_empty".to_owned()))).collect()
}

/// Workers on their own stores, each running `run_worker` in the background.
struct Workers {
    managers: Vec<BatchManager>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    fn start(managers: Vec<BatchManager>) -> Workers {
        let loops = managers
            .iter()
            .map(|manager| {
                let manager = manager.clone();
                tokio::spawn(async move { or_panic(manager.run_worker().await, "a worker loop failed") })
            })
            .collect();
        Workers { managers, loops }
    }

    async fn stop(self) {
        for manager in &self.managers {
            manager.shutdown().await;
        }
        for handle in self.loops {
            or_panic(handle.await, "a worker loop panicked");
        }
    }
}

/// Creates the tasks through `submitter`, in batches.
async fn create_all(submitter: &BatchManager) {
    for _ in 0..M3_TASKS / CREATE_BATCH {
        or_panic(submitter.create_tasks(empty_requests()).await, "creating tasks");
    }
}

/// Waits for every task to complete (see [`wait_completed`]).
async fn wait_all(store: &dyn TaskStore, events: &mut TaskChanges) {
    or_panic(wait_completed(store, events, M3_TASKS as u64, Duration::from_secs(300)).await, "waiting");
}

/// A fresh database for one iteration, after a checkpoint (outside the timing): no iteration
/// flushes the dirty pages of the one before, whichever flavour that was.
async fn fresh_database(cluster: &PgCluster) -> batch_testkit::TestDatabase {
    let admin = or_panic(cluster.connect("postgres").await, "connecting to the server");
    or_panic(admin.batch_execute("CHECKPOINT").await, "checkpointing");
    or_panic(cluster.create_database().await, "creating a database")
}

/// Drops an iteration's database (outside the timing), so that autovacuum does not work on old
/// iterations' tables during later ones.
async fn drop_database(cluster: &PgCluster, database: &batch_testkit::TestDatabase) {
    or_panic(cluster.drop_database(&database.name).await, "dropping a database");
}

async fn run_batch_pg(cluster: &PgCluster, workers: usize, writers: usize) -> Duration {
    let database = fresh_database(cluster).await;
    let connect = |options: PgOptions| async {
        Arc::new(or_panic(PgStore::connect(&database.url, options).await, "connecting"))
    };
    // As `batch tasks wait` connects: hearing only tasks' ends, which is all the waiter reads.
    let submitter_store = connect(PgOptions { hear: Heard::Ended, ..PgOptions::default() }).await;
    // The submitter only creates tasks: its claims setting is never used.
    let submitter = manager_on(Arc::clone(&submitter_store) as Arc<dyn TaskStore>, "submitter", 1);
    let mut managers = Vec::new();
    for idx in 0..workers {
        // As `batch worker --writers N` connects: hearing only the changes that make tasks claimable.
        let options = PgOptions { hear: Heard::Claimable, writers, ..PgOptions::default() };
        let store = connect(options).await as Arc<dyn TaskStore>;
        managers.push(manager_on(store, &format!("worker-{idx}"), ManagerConfig::default().claims_in_flight));
    }
    let running = Workers::start(managers);
    let mut events = submitter_store.subscribe();

    // The feed is read while the tasks are created, as a client waiting for them would.
    let started = Instant::now();
    tokio::join!(create_all(&submitter), wait_all(submitter_store.as_ref(), &mut events));
    let elapsed = started.elapsed();
    running.stop().await;
    let metrics = or_panic(submitter_store.metrics().await, "reading metrics");
    assert_eq!(metrics.completed_tasks, M3_TASKS as u64, "{metrics:?}");
    // The stores (and their listeners) go before their database.
    drop(submitter);
    drop(submitter_store);
    drop_database(cluster, &database).await;
    elapsed
}

async fn run_batch_sqlite() -> Duration {
    let dir = or_panic(tempfile::tempdir(), "creating a temporary directory");
    let store: Arc<dyn TaskStore> = Arc::new(or_panic(
        SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default()),
        "opening SQLite",
    ));
    let submitter = manager_on(Arc::clone(&store), "submitter", 1);
    let running = Workers::start(vec![manager_on(
        Arc::clone(&store),
        "worker-0",
        ManagerConfig::default().claims_in_flight,
    )]);

    let mut events = store.subscribe();

    let started = Instant::now();
    tokio::join!(create_all(&submitter), wait_all(store.as_ref(), &mut events));
    let elapsed = started.elapsed();
    running.stop().await;
    elapsed
}

/// Jobs the apalis worker has finished in the current iteration.
static APALIS_DONE: AtomicUsize = AtomicUsize::new(0);

async fn apalis_job(_job: u64, worker: WorkerContext) -> Result<(), BoxDynError> {
    if APALIS_DONE.fetch_add(1, Ordering::SeqCst) + 1 == M3_TASKS {
        worker.stop()?;
    }
    Ok(())
}

/// apalis-postgres's fetch batch in the main peer flavour; `apalis_postgres_default` keeps its
/// default (10), the configuration the figure for apalis (about 1,600 jobs/s) came from.
const APALIS_BATCH: usize = 100;

async fn run_apalis(cluster: &PgCluster, batch_size: usize) -> Duration {
    let database = fresh_database(cluster).await;
    let pool = or_panic(apalis_postgres::PgPool::connect(&database.url).await, "connecting apalis");
    or_panic(PostgresStorage::setup(&pool).await, "migrating apalis");
    let config = ApalisConfig::default().queue("m3").batch_size(batch_size);
    let mut backend = PostgresStorage::new(&pool).with_config(config);
    APALIS_DONE.store(0, Ordering::SeqCst);

    let started = Instant::now();
    let mut jobs = futures::stream::iter((0..M3_TASKS as u64).map(|job| TaskBuilder::new(job).build()));
    or_panic(backend.push_all(&mut jobs).await, "pushing apalis jobs");
    let worker = WorkerBuilder::new("m3-apalis").backend(backend).parallelize(tokio::spawn).build(apalis_job);
    or_panic(worker.run().await, "running the apalis worker");
    let elapsed = started.elapsed();
    assert_eq!(APALIS_DONE.load(Ordering::SeqCst), M3_TASKS);
    pool.close().await;
    drop_database(cluster, &database).await;
    elapsed
}

/// The hand-written SQL peer's table: a narrow jobs row as River's, with an index of the claimable
/// jobs only.
const SQL_JOBS_TABLE: &str = "\
CREATE TABLE jobs (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    state        text        NOT NULL DEFAULT 'available',
    args         jsonb       NOT NULL DEFAULT '{}',
    attempt      integer     NOT NULL DEFAULT 0,
    attempted_at timestamptz,
    finalized_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_available ON jobs (id) WHERE state = 'available'";

/// Creates `$1` jobs in one statement.
const SQL_CREATE_JOBS: &str = "INSERT INTO jobs (kind) SELECT 'noop' FROM generate_series(1, $1::int)";

/// Claims the oldest available job: one statement, its own transaction.
const SQL_CLAIM_JOB: &str = "\
UPDATE jobs SET state = 'running', attempt = attempt + 1, attempted_at = now()
WHERE id = (SELECT id FROM jobs WHERE state = 'available' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id";

/// Completes a claimed job: its own transaction.
const SQL_COMPLETE_JOB: &str = "UPDATE jobs SET state = 'completed', finalized_at = now() WHERE id = $1";

/// The floor, in the same run: one job per transaction with hand-written SQL. The jobs are
/// created in batches of 1,000 (10 statements, a few percent of the run), then `connections`
/// connections each claim one job per transaction and complete it in another until none is left.
/// Where River worked 15,000–17,000 jobs/s, this did 1,300/s on one connection and 2,600/s on four
/// (issue 11), so it tells what River's rate comes to on the machine of the run.
async fn run_sql_one_per_transaction(cluster: &PgCluster, connections: usize) -> Duration {
    let database = fresh_database(cluster).await;
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(or_panic(cluster.connect(&database.name).await, "connecting"));
    }
    let Some(first) = clients.first() else { panic!("no connection") };
    or_panic(first.batch_execute(SQL_JOBS_TABLE).await, "creating the jobs table");

    let started = Instant::now();
    let batch = i32::try_from(CREATE_BATCH).unwrap_or(i32::MAX);
    for _ in 0..M3_TASKS / CREATE_BATCH {
        or_panic(first.execute(SQL_CREATE_JOBS, &[&batch]).await, "creating jobs");
    }
    let work = clients.iter().map(|client| async move {
        let claim = or_panic(client.prepare(SQL_CLAIM_JOB).await, "preparing the claim");
        let complete = or_panic(client.prepare(SQL_COMPLETE_JOB).await, "preparing the completion");
        let mut done = 0_usize;
        while let Some(row) = or_panic(client.query_opt(&claim, &[]).await, "claiming a job") {
            let id: i64 = or_panic(row.try_get(0), "reading a claimed job's id");
            or_panic(client.execute(&complete, &[&id]).await, "completing a job");
            done += 1;
        }
        done
    });
    let done: usize = futures::future::join_all(work).await.into_iter().sum();
    let elapsed = started.elapsed();
    assert_eq!(done, M3_TASKS);
    drop(clients);
    drop_database(cluster, &database).await;
    elapsed
}

/// River's statements with no client work around them, in the same run (`benches::river_sql`): a
/// ceiling of River's rate on the machine of the run, not River.
async fn run_sql_river_statements(cluster: &PgCluster) -> Duration {
    let database = fresh_database(cluster).await;
    let inserter = or_panic(cluster.connect(&database.name).await, "connecting");
    let fetcher = or_panic(cluster.connect(&database.name).await, "connecting");
    let completer = or_panic(cluster.connect(&database.name).await, "connecting");
    or_panic(river_sql::create_table(&inserter).await, "creating River's jobs table");
    let elapsed = or_panic(
        river_sql::run(&inserter, &fetcher, &completer, M3_TASKS, CREATE_BATCH, SLOTS_PER_WORKER).await,
        "running River's statements",
    );
    drop((inserter, fetcher, completer));
    drop_database(cluster, &database).await;
    elapsed
}

/// Adds flavour `name`: each iteration is one whole `run` (timed by the run itself).
fn bench_runs<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    run: F,
) where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = Duration>,
{
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += run().await;
            }
            total
        })
    });
}

fn m3_pg_task_throughput(c: &mut Criterion) {
    let Some(cluster) = batch_testkit::own_or_skip("m3_pg_task_throughput") else { return };
    let cluster = &cluster;
    let rt = runtime();
    let mut group = c.benchmark_group("m3_pg_task_throughput");
    group.throughput(Throughput::Elements(M3_TASKS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let default_writers = PgOptions::default().writers;
    for (name, workers, writers) in [
        ("batch_pg_1_worker", 1, default_writers),
        ("batch_pg_4_workers", 4, default_writers),
        ("batch_pg_4_workers_1_lane", 4, 1),
    ] {
        bench_runs(&mut group, &rt, name, || run_batch_pg(cluster, workers, writers));
    }
    for (name, batch_size) in
        [("apalis_postgres", APALIS_BATCH), ("apalis_postgres_default", ApalisConfig::default().batch_size)]
    {
        bench_runs(&mut group, &rt, name, || run_apalis(cluster, batch_size));
    }
    bench_runs(&mut group, &rt, "batch_sqlite_1_worker", run_batch_sqlite);
    for (name, connections) in [("sql_one_per_transaction_1_conn", 1), ("sql_one_per_transaction_4_conns", 4)]
    {
        bench_runs(&mut group, &rt, name, || run_sql_one_per_transaction(cluster, connections));
    }
    bench_runs(&mut group, &rt, "sql_river_statements", || run_sql_river_statements(cluster));
    group.finish();
}

criterion_group!(benches, m3_pg_task_throughput);
criterion_main!(benches);
