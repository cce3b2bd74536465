//! PostgreSQL tables as a task's input and output: how fast a task copies a table, beside the
//! server copying it alone.
//!
//! - `c1_pg_source_sink`: 1,000,000 rows (`id bigint` primary key, text, `numeric`, `timestamptz`,
//!   `jsonb`) copied from `t1` into an empty `t2` of the same shape by a `batch_process` task (no
//!   filter: every row kept) created, claimed, run and completed by a `BatchManager` on the
//!   PostgreSQL store in the same database, reading `t1` in key order a page at a time, a checkpoint
//!   every 1,000 rows (`batch_size` 1000, `concurrency` 2). Flavours: `batch_process_task`
//!   (`output_mode` auto, which finds the store in the table's database: each chunk's rows copied in
//!   (`COPY … FROM STDIN`) in the transaction that commits its checkpoint, through the store's group
//!   commit); `batch_process_task_upsert` (`output_mode` upsert: each chunk upserted through the
//!   sink's own connection before its checkpoint, the path for a table in another database); and the baseline
//!   `insert_select`, `INSERT INTO t2 SELECT * FROM t1` on one connection. `t2` is emptied
//!   (`TRUNCATE`) before each iteration, outside the timing; `t1` is made once. Target (issue 10):
//!   the task within 3x of the baseline.
//!
//! Run: `cargo bench -p benches --bench pg_tables` (needs PostgreSQL's server binaries: `apt-get
//! install postgresql`). Figures go to docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::TaskStore;
use batch_manager::store::postgres::{PgOptions, PgStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, CreateTaskRequest, TaskStatus, TaskType};
use batch_testkit::{PgCluster, TestDatabase};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const C1_ROWS: u64 = 1_000_000;

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

/// The database with `t1` filled and `t2` empty.
async fn prepare(cluster: &PgCluster) -> TestDatabase {
    let database = or_panic(cluster.create_database().await, "creating a database");
    let client = or_panic(cluster.connect(&database.name).await, "connecting");
    let sql = benches::pg_probe::c1_tables_sql(C1_ROWS);
    or_panic(client.batch_execute(&sql).await, "creating t1");
    // Alone: VACUUM cannot run inside the implicit transaction of a multi-statement query.
    or_panic(client.batch_execute("VACUUM ANALYZE t1").await, "vacuuming t1");
    database
}

async fn empty_t2(cluster: &PgCluster, database: &TestDatabase) -> tokio_postgres::Client {
    let client = or_panic(cluster.connect(&database.name).await, "connecting");
    or_panic(client.batch_execute("TRUNCATE t2").await, "emptying t2");
    client
}

async fn count_t2(client: &tokio_postgres::Client) -> i64 {
    or_panic(client.query_one("SELECT count(*) FROM t2", &[]).await, "counting t2").get(0)
}

/// Runs the copy task with `output_mode` `mode` and returns its time.
async fn run_task(
    cluster: &PgCluster,
    database: &TestDatabase,
    dead_letters: &std::path::Path,
    mode: &str,
) -> Duration {
    let client = empty_t2(cluster, database).await;
    let store =
        Arc::new(or_panic(PgStore::connect(&database.url, PgOptions::default()).await, "opening the store"));
    let config = ManagerConfig::default().with_worker_id("c1").with_poll_interval(Duration::from_millis(10));
    let manager = or_panic(
        BatchManager::new(store as Arc<dyn TaskStore>, batch_tasks::builtin_registry(), config),
        "manager",
    );
    let params = serde_json::json!({
        "input": database.url, "input_table": "t1",
        "output": database.url, "output_table": "t2",
        "dead_letter": dead_letters, "output_mode": mode,
    });
    let task_config = BatchConfig { batch_size: 1000, concurrency: 2, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::BatchProcess).with_config(task_config).with_params(params);

    let started = Instant::now();
    let id = or_panic(manager.create_task(request).await, "creating the task").id;
    or_panic(manager.process_task(&id).await, "starting the task");
    let task = or_panic(manager.wait(&id).await, "waiting for the task");
    let elapsed = started.elapsed();
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
    manager.shutdown().await;
    assert_eq!(count_t2(&client).await, C1_ROWS as i64);
    elapsed
}

async fn run_insert_select(cluster: &PgCluster, database: &TestDatabase) -> Duration {
    let client = empty_t2(cluster, database).await;
    let started = Instant::now();
    or_panic(client.batch_execute("INSERT INTO t2 SELECT * FROM t1").await, "INSERT … SELECT");
    let elapsed = started.elapsed();
    assert_eq!(count_t2(&client).await, C1_ROWS as i64);
    elapsed
}

fn c1_pg_source_sink(c: &mut Criterion) {
    let Some(cluster) = batch_testkit::own_or_skip("c1_pg_source_sink") else { return };
    let cluster = &cluster;
    let rt = runtime();
    let database = &rt.block_on(prepare(cluster));
    let dir = or_panic(tempfile::tempdir(), "creating a temporary directory");
    let dead_letters = &dir.path().join("dead.jsonl");
    let mut group = c.benchmark_group("c1_pg_source_sink");
    group.throughput(Throughput::Elements(C1_ROWS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    for (name, mode) in [("batch_process_task", "auto"), ("batch_process_task_upsert", "upsert")] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_task(cluster, database, dead_letters, mode).await;
                }
                total
            })
        });
    }
    group.bench_function("insert_select", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += run_insert_select(cluster, database).await;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, c1_pg_source_sink);
criterion_main!(benches);
