//! PostgreSQL benchmarks: how many tasks per second the PostgreSQL store turns over, beside a peer.
//!
//! - `m3_pg_task_throughput`: 10,000 empty tasks (the no-op kind `bench_empty`) created (in batches
//!   of 1,000 through `BatchManager::create_tasks`), claimed, run and completed by `BatchManager`
//!   workers (`run_worker`, 1,024 slots each, each worker with its own `PgStore` as a separate process
//!   would have, connected as `batch worker` connects: hearing only the changes that make tasks
//!   claimable; the submitter, which also waits for the tasks, as `batch tasks wait` connects:
//!   hearing only their ends; the flows in `benches::m3`) on a throwaway PostgreSQL server started
//!   by the test kit with default settings (fsync and synchronous_commit on). Flavours:
//!   `batch_pg_1_worker`, `batch_pg_4_workers` (each worker's store with the default two writer
//!   lanes), `batch_pg_4_workers_1_lane` (one each, as
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config as ApalisConfig, PostgresStorage};
use batch_manager::store::postgres::PgOptions;
use batch_testkit::PgCluster;
use benches::m3::{self, CREATE_BATCH, M3_TASKS};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

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

async fn fresh_database(cluster: &PgCluster) -> batch_testkit::TestDatabase {
    or_panic(m3::fresh_database(cluster).await, "an iteration's database")
}

async fn drop_database(cluster: &PgCluster, database: &batch_testkit::TestDatabase) {
    or_panic(m3::drop_database(cluster, database).await, "after an iteration");
}

/// The store's flow ([`m3::run_batch_pg`]).
async fn run_batch_pg(cluster: &PgCluster, workers: usize, writers: usize) -> Duration {
    or_panic(m3::run_batch_pg(cluster, workers, writers).await, "the store's flow")
}

/// The store's flow on SQLite ([`m3::run_batch_sqlite`]).
async fn run_batch_sqlite() -> Duration {
    or_panic(m3::run_batch_sqlite().await, "the store's flow on SQLite")
}

/// River's statements with no client work around them ([`m3::run_sql_river_statements`]): a
/// ceiling of River's rate on the machine of the run, not River.
async fn run_sql_river_statements(cluster: &PgCluster) -> Duration {
    or_panic(m3::run_sql_river_statements(cluster).await, "River's statements")
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
