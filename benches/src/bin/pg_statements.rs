//! Where the PostgreSQL store's server time goes in m3's flow (issue 11): 10,000 empty tasks
//! created in batches of 1,000 and worked by one `BatchManager` worker (1,024 slots, m3's) on a
//! `PgStore`, on a throwaway server started with `pg_stat_statements`; then, per statement, its
//! calls, rows, total execution time and that time per task, heaviest first, with its planning time
//! and the WAL it wrote per task beside (server CPU too); and the tables' row counters (inserts,
//! updates, HOT updates).
//!
//! Execution time is the server's own (planning, parsing, commit and WAL flush are outside it), so
//! it moves far less with the machine's load than a wall time: it says which statements a faster
//! store must cut, not how fast the store is (that is `cargo bench -p benches --bench pg`).
//!
//! Run: `cargo run --release -p benches --bin pg_statements -- [TASKS]` (default 10,000, a multiple
//! of 1,000). `PG_WORKERS=N` runs N workers, each on its own store, as m3's four-worker flavours
//! do, and `PG_CLAIMS=N` gives each N claims in flight (default 2); `PG_SLOTS` and `PG_WRITERS` set
//! each worker's slots and its store's writer lanes; `PG_THREADS=N` runs the process on N runtime
//! threads (default 2, as m3 does; 0: tokio's current-thread runtime). With
//! `PG_STATEMENTS_EXPLAIN=FILE` the server also logs every statement's plan as it ran
//! (`auto_explain`, with row counts and buffers, without timing) and the log is copied to `FILE`.
//! With `PG_STATEMENTS_PAUSE` set it waits for a line on stdin before the run (to attach a profiler).
//! With `PG_STATEMENTS_SQL` set, its statements (separated by `;`) run one by one on the migrated
//! database before the run, for experiments (`DROP INDEX batch.tasks_by_created`; `ALTER SYSTEM SET
//! synchronous_commit = off; SELECT pg_reload_conf()`). After the run it prints the average widths of
//! a task's record, a task row and an audit event, and with `PG_STATEMENTS_SHOW` set one stored
//! task's record, result and metrics.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::ManagerConfig;
use batch_manager::store::TaskStore;
use batch_manager::store::postgres::{Heard, PgOptions, PgStore};
use batch_testkit::PgCluster;
use benches::m3::{self, CREATE_BATCH, SLOTS_PER_WORKER};
use benches::manager_workloads::{empty_tasks_manager, wait_completed};
use benches::number_from_env;
use benches::pg_probe::{CpuProbe, statement_stats};
use benches::river_sql;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let tasks: u64 = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let explain = std::env::var_os("PG_STATEMENTS_EXPLAIN");
    let settings: &[&str] = if explain.is_some() {
        &[
            "shared_preload_libraries=pg_stat_statements,auto_explain",
            "pg_stat_statements.track_planning=on",
            "auto_explain.log_min_duration=0",
            "auto_explain.log_analyze=on",
            "auto_explain.log_timing=off",
            "auto_explain.log_buffers=on",
            "auto_explain.log_nested_statements=on",
        ]
    } else {
        &["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track_planning=on"]
    };
    let cluster = PgCluster::start_with(settings)?;
    // `PG_THREADS=N`: N runtime threads (2 by default, as m3's); 0: tokio's current-thread runtime.
    let runtime = match number_from_env("PG_THREADS", 2) {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        threads => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
        }
    };
    runtime.block_on(measure(&cluster, tasks))?;
    if let (Some(target), Some(log)) = (explain, cluster.log_path()) {
        std::fs::copy(log, &target)?;
        println!();
        println!("the server log with every plan: {}", target.to_string_lossy());
    }
    Ok(())
}

async fn measure(cluster: &PgCluster, tasks: u64) -> Result<(), Failure> {
    let database = cluster.create_database().await?;
    let admin = cluster.connect(&database.name).await?;
    admin.batch_execute("CREATE EXTENSION pg_stat_statements").await?;
    if std::env::var("PG_STATEMENTS_PEER").is_ok_and(|peer| peer == "river") {
        return measure_river(cluster, &database.name, &admin, tasks).await;
    }
    // As `batch tasks wait` connects (hearing only tasks' ends); `PG_SUBMITTER_HEARS_ALL` set:
    // every change, as before.
    let hear = if std::env::var_os("PG_SUBMITTER_HEARS_ALL").is_none() { Heard::Ended } else { Heard::Every };
    let submitter_store =
        Arc::new(PgStore::connect(&database.url, PgOptions { hear, ..PgOptions::default() }).await?);
    let writers = number_from_env("PG_WRITERS", PgOptions::default().writers);
    let slots = number_from_env("PG_SLOTS", SLOTS_PER_WORKER);
    let claims = number_from_env("PG_CLAIMS", ManagerConfig::default().claims_in_flight);
    let mut worker_stores = Vec::new();
    let mut workers = Vec::new();
    for index in 0..number_from_env("PG_WORKERS", 1).max(1) {
        let store = Arc::new(PgStore::connect(&database.url, worker_options(writers)).await?);
        let name = format!("worker-{index}");
        workers.push(empty_tasks_manager(Arc::clone(&store) as Arc<dyn TaskStore>, &name, slots, claims)?);
        worker_stores.push((name, store));
    }
    // The submitter only creates tasks: its slots and claims are never used.
    let submitter =
        empty_tasks_manager(Arc::clone(&submitter_store) as Arc<dyn TaskStore>, "submitter", 256, 1)?;
    if let Ok(sql) = std::env::var("PG_STATEMENTS_SQL") {
        for statement in sql.split(';').filter(|statement| !statement.trim().is_empty()) {
            admin.batch_execute(statement).await?;
        }
    }
    admin.batch_execute("SELECT pg_stat_statements_reset()").await?;
    let cpu = CpuProbe::start(&admin, "PG_STATEMENTS_PAUSE").await?;

    let running: Vec<_> = workers
        .iter()
        .map(|worker| {
            let worker = worker.clone();
            tokio::spawn(async move { worker.run_worker().await })
        })
        .collect();
    let mut events = submitter_store.subscribe();
    let started = Instant::now();
    // The feed is read while the tasks are created, as a client waiting for them would.
    let create = async {
        for _ in 0..tasks / CREATE_BATCH as u64 {
            submitter.create_tasks(m3::empty_requests()).await?;
        }
        Ok::<Duration, batch_manager::ManagerError>(started.elapsed())
    };
    let wait = wait_completed(submitter_store.as_ref(), &mut events, tasks, Duration::from_secs(300));
    let (created, waited) = tokio::join!(create, wait);
    let created = created?;
    waited?;
    let elapsed = started.elapsed();
    let (server, own) = cpu.used();
    for worker in &workers {
        worker.shutdown().await;
    }
    for run in running {
        run.await??;
    }

    println!(
        "{tasks} tasks in {:.2} s, all created after {:.2} s (wall time, this run; not a benchmark)",
        elapsed.as_secs_f64(),
        created.as_secs_f64()
    );
    print_cpu(elapsed, server, own);
    let stores = std::iter::once(("submitter".to_owned(), &submitter_store))
        .chain(worker_stores.iter().map(|(name, store)| (name.clone(), store)));
    for (name, store) in stores {
        let stats = store.stats();
        println!(
            "{name}'s store: {} groups committed, {} calls, largest group {}, {} retried",
            stats.transactions_committed, stats.requests, stats.largest_group, stats.transactions_retried
        );
    }
    print_statements(&admin, tasks).await?;
    let widths = admin
        .query_one(
            "SELECT avg(length(record))::float8, avg(pg_column_size(t.*))::float8, \
             (SELECT avg(pg_column_size(e.*))::float8 FROM batch.task_events e) FROM batch.tasks t",
            &[],
        )
        .await?;
    let (record, row, event): (f64, f64, f64) = (widths.try_get(0)?, widths.try_get(1)?, widths.try_get(2)?);
    println!();
    println!(
        "row widths (bytes, averages): a task's record {record:.0}, its row {row:.0}, an audit event {event:.0}"
    );
    if std::env::var_os("PG_STATEMENTS_SHOW").is_some() {
        let stored = admin.query_one("SELECT record, result, metrics FROM batch.tasks LIMIT 1", &[]).await?;
        let (record, result, metrics): (String, Option<String>, Option<String>) =
            (stored.try_get(0)?, stored.try_get(1)?, stored.try_get(2)?);
        println!("one task's record: {record}\nits result: {result:?}\nits metrics: {metrics:?}");
    }
    // A backend reports its table counters when it goes idle, at most once a second, and when it
    // exits: the stores' connections are closed, and the counters read once every task's insert and
    // its two updates at least (its claim and its end) have arrived (or after 10 s, with what did).
    drop((workers, submitter, worker_stores, submitter_store));
    let deadline = Instant::now() + Duration::from_secs(10);
    let counters = loop {
        admin.batch_execute("SELECT pg_stat_clear_snapshot()").await?;
        let mut counters = Vec::new();
        for row in admin
            .query(
                "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
                 WHERE schemaname = 'batch' ORDER BY relname",
                &[],
            )
            .await?
        {
            let counted: (String, i64, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            counters.push(counted);
        }
        let arrived = counters.iter().any(|(name, inserts, updates, _)| {
            name == "tasks" && *inserts >= tasks as i64 && *updates >= 2 * tasks as i64
        });
        if arrived || Instant::now() >= deadline {
            break counters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!();
    println!("| table | inserts | updates | HOT updates |");
    println!("|---|---|---|---|");
    for (name, inserts, updates, hot) in counters {
        println!("| {name} | {inserts} | {updates} | {hot} |");
    }
    Ok(())
}

/// A worker's store as `batch worker` connects it (hearing only the changes that make tasks
/// claimable), with `writers` lanes; `PG_HEAR_ALL` set: hearing every change, as before.
fn worker_options(writers: usize) -> PgOptions {
    let hear = if std::env::var_os("PG_HEAR_ALL").is_none() { Heard::Claimable } else { Heard::Every };
    PgOptions { writers, hear, ..PgOptions::default() }
}

/// The CPU seconds the server and this process used during a run of `elapsed`.
fn print_cpu(elapsed: Duration, server: f64, own: f64) {
    println!(
        "CPU: the server {server:.2} s, this process {own:.2} s (of {:.2} s on two cores)",
        elapsed.as_secs_f64() * 2.0
    );
}

/// The heaviest statements since the reset, per task, with their sum.
async fn print_statements(admin: &tokio_postgres::Client, tasks: u64) -> Result<(), Failure> {
    println!();
    println!(
        "| statement | calls | rows | total ms | µs per task | planning µs per task | WAL bytes per task |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut total, mut total_planning, mut total_wal) = (0.0, 0.0, 0.0);
    for statement in statement_stats(admin, 12).await? {
        total += statement.total_ms;
        total_planning += statement.planning_ms;
        total_wal += statement.wal_bytes;
        let wal = statement.wal_bytes / tasks as f64;
        let per_task = statement.total_ms * 1000.0 / tasks as f64;
        let planning = statement.planning_ms * 1000.0 / tasks as f64;
        println!(
            "| {} | {} | {} | {:.1} | {per_task:.1} | {planning:.1} | {wal:.0} |",
            statement.cell(),
            statement.calls,
            statement.rows,
            statement.total_ms
        );
    }
    println!(
        "| all of the above | | | {total:.1} | {:.1} | {:.1} | {:.0} |",
        total * 1000.0 / tasks as f64,
        total_planning * 1000.0 / tasks as f64,
        total_wal / tasks as f64
    );
    Ok(())
}

/// `PG_STATEMENTS_PEER=river`: River's statements (`benches::river_sql`, m3's `sql_river_statements`)
/// instead of the store, measured the same way.
async fn measure_river(
    cluster: &PgCluster,
    database: &str,
    admin: &tokio_postgres::Client,
    tasks: u64,
) -> Result<(), Failure> {
    // As many slots as a worker of the store's flow (`PG_SLOTS`).
    let slots = number_from_env("PG_SLOTS", SLOTS_PER_WORKER);
    let inserter = cluster.connect(database).await?;
    let fetcher = cluster.connect(database).await?;
    let completer = cluster.connect(database).await?;
    // The table first, so that its creation is not counted.
    river_sql::create_table(&inserter).await?;
    admin.batch_execute("SELECT pg_stat_statements_reset()").await?;
    let cpu = CpuProbe::start(admin, "PG_STATEMENTS_PAUSE").await?;
    let elapsed =
        river_sql::run(&inserter, &fetcher, &completer, usize::try_from(tasks)?, CREATE_BATCH, slots)
            .await
            .map_err(Failure::from)?;
    let (server, own) = cpu.used();
    println!("{tasks} River jobs in {:.2} s (wall time, this run; not a benchmark)", elapsed.as_secs_f64());
    print_cpu(elapsed, server, own);
    print_statements(admin, tasks).await?;
    Ok(())
}
