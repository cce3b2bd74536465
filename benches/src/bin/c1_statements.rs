//! Where the time of c1's table-to-table task goes (issue 10): `t1` (the rows of
//! `c1_pg_source_sink`) copied into `t2` by one `batch_process` task on the PostgreSQL store in the
//! same database (`output_mode` auto: each chunk's `COPY` in its checkpoint's transaction), on a
//! throwaway server started with `pg_stat_statements`; then the task's wall time, the store's group
//! counters, and per statement its calls, rows, total execution time and that time per 1,000 rows,
//! heaviest first.
//!
//! Execution time is the server's own (parsing, commit and WAL flush are outside it): it says which
//! statements a faster run must cut, not how fast the run is (that is `cargo bench -p benches
//! --bench pg_tables`).
//!
//! Run: `cargo run --release -p benches --bin c1_statements -- [ROWS]` (default 1,000,000).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::TaskStore;
use batch_manager::store::postgres::{PgOptions, PgStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, CreateTaskRequest, TaskStatus, TaskType};
use batch_testkit::PgCluster;
use benches::pg_probe::{CpuProbe, c1_tables_sql, statement_stats};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let rows: u64 = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(1_000_000);
    let cluster = PgCluster::start_with(&[
        "shared_preload_libraries=pg_stat_statements",
        "pg_stat_statements.track_planning=on",
    ])?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(measure(&cluster, rows))
}

async fn measure(cluster: &PgCluster, rows: u64) -> Result<(), Failure> {
    let database = cluster.create_database().await?;
    let admin = cluster.connect(&database.name).await?;
    admin.batch_execute("CREATE EXTENSION pg_stat_statements").await?;
    admin.batch_execute(&c1_tables_sql(rows)).await?;
    admin.batch_execute("VACUUM ANALYZE t1").await?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(PgStore::connect(&database.url, PgOptions::default()).await?);
    let config = ManagerConfig::default().with_worker_id("c1").with_poll_interval(Duration::from_millis(10));
    let manager =
        BatchManager::new(Arc::clone(&store) as Arc<dyn TaskStore>, batch_tasks::builtin_registry(), config)?;
    let params = serde_json::json!({
        "input": database.url, "input_table": "t1",
        "output": database.url, "output_table": "t2",
        "dead_letter": dir.path().join("dead.jsonl"), "output_mode": "auto",
    });
    let batch_size = benches::number_from_env("C1_BATCH_SIZE", 1000);
    let task_config = BatchConfig { batch_size, concurrency: 2, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::BatchProcess).with_config(task_config).with_params(params);
    admin.batch_execute("SELECT pg_stat_statements_reset()").await?;

    let cpu = CpuProbe::start(&admin, "C1_PAUSE").await?;
    let started = Instant::now();
    let id = manager.create_task(request).await?.id;
    manager.process_task(&id).await?;
    let task = manager.wait(&id).await?;
    let elapsed = started.elapsed();
    let (server, own) = cpu.used();
    manager.shutdown().await;
    if task.status != TaskStatus::Completed {
        return Err(format!("the task ended {:?}: {:?}", task.status, task.error).into());
    }
    let copied: i64 = admin.query_one("SELECT count(*) FROM t2", &[]).await?.get(0);
    let stats = store.stats();
    println!(
        "{rows} rows ({copied} in t2) in {:.2} s (wall time, this run; not a benchmark)",
        elapsed.as_secs_f64()
    );
    println!(
        "CPU: the server {server:.2} s, this process {own:.2} s (of {:.2} s on two cores)",
        elapsed.as_secs_f64() * 2.0
    );
    println!(
        "store: {} groups committed, {} calls, largest group {}, {} retried",
        stats.transactions_committed, stats.requests, stats.largest_group, stats.transactions_retried
    );
    println!();
    println!("| statement | calls | rows | total ms | µs per 1,000 rows | planning ms |");
    println!("|---|---|---|---|---|---|");
    let mut total = 0.0;
    for statement in statement_stats(&admin, 14).await? {
        total += statement.total_ms;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            statement.cell(),
            statement.calls,
            statement.rows,
            statement.total_ms,
            statement.total_ms * 1000.0 * 1000.0 / rows as f64,
            statement.planning_ms
        );
    }
    println!("| all of the above | | | {total:.1} | {:.1} | |", total * 1000.0 * 1000.0 / rows as f64);
    Ok(())
}
