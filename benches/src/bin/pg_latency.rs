//! Two latencies of the PostgreSQL store, written down in docs/BENCHMARKS.md (issue 11):
//!
//! 1. **Checkpoint commit latency** (p50, p99, max): `commit_checkpoint` calls under a held lease,
//!    from 1 and from 8 tasks committing at once, on a throwaway PostgreSQL server (default
//!    settings: fsync and synchronous_commit on) and, as the in-run baseline, on a SQLite file.
//! 2. **Takeover time after SIGKILL**: a real `batch worker` process running a `youzan_order` task is
//!    killed; the time until an idle second worker logs its claim of the task (`resumed: true`), over
//!    several rounds, with the command line's lease (3 s, renewed every second).
//!
//! Run (release builds of both): `cargo build --release -p batch-cli && cargo run --release -p
//! benches --bin pg_latency -- [ROUNDS]` (default 10 takeover rounds; `BATCH_BIN` names the `batch`
//! binary, default `target/release/batch`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::postgres::{PgOptions, PgStore};
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{Holder, LeaseRequest, TaskStore, WorkerId};
use batch_model::{BatchTask, Checkpoint, Counters, CreateTaskRequest, TaskId, TaskType};
use batch_testkit::PgCluster;

type Failure = Box<dyn std::error::Error>;

const COMMITS_PER_TASK: usize = 500;

/// The store's options: the defaults, with `PG_WRITERS` (if set) as its writer lanes.
fn pg_options() -> PgOptions {
    let defaults = PgOptions::default();
    PgOptions { writers: benches::number_from_env("PG_WRITERS", defaults.writers), ..defaults }
}

fn main() -> Result<(), Failure> {
    let rounds: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(10);
    let cluster = PgCluster::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = tempfile::tempdir()?;

    println!("checkpoint commit latency ({COMMITS_PER_TASK} commits per task)");
    println!("| store | tasks committing at once | p50 | p99 | max | commits/s |");
    println!("|---|---|---|---|---|---|");
    for tasks in [1, 8] {
        let database = runtime.block_on(cluster.create_database())?;
        let pg: Arc<dyn TaskStore> =
            Arc::new(runtime.block_on(PgStore::connect(&database.url, pg_options()))?);
        let sqlite: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(
            dir.path().join(format!("latency-{tasks}.db")),
            SqliteOptions::default(),
        )?);
        for (name, store) in [("PostgreSQL", pg), ("SQLite", sqlite)] {
            let (latencies, elapsed) = runtime.block_on(commit_latencies(store, tasks))?;
            let rate = latencies.len() as f64 / elapsed.as_secs_f64();
            println!(
                "| {name} | {tasks} | {} | {} | {} | {rate:.0} |",
                show(percentile(&latencies, 0.50)),
                show(percentile(&latencies, 0.99)),
                show(latencies.last().copied().unwrap_or_default()),
            );
        }
    }

    let batch =
        std::env::var_os("BATCH_BIN").map_or_else(|| PathBuf::from("target/release/batch"), PathBuf::from);
    if !batch.exists() {
        return Err(format!(
            "no batch binary at {} (build it: cargo build --release -p batch-cli)",
            batch.display()
        )
        .into());
    }
    let database = runtime.block_on(cluster.create_database())?;
    let takeovers = takeover_times(&batch, &database.url, dir.path(), rounds)?;
    let mut sorted = takeovers.clone();
    sorted.sort();
    println!();
    println!("takeover after SIGKILL, lease 3 s renewed every 1 s, {rounds} rounds");
    println!(
        "min {}, p50 {}, max {} (each: {})",
        show(sorted[0]),
        show(percentile(&sorted, 0.5)),
        show(sorted[sorted.len() - 1]),
        takeovers.iter().map(|t| show(*t)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn show(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.2} ms") }
}

/// The value at `fraction` of the sorted `values`.
fn percentile(values: &[Duration], fraction: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let index = ((values.len() as f64 - 1.0) * fraction).round() as usize;
    values[index.min(values.len() - 1)]
}

/// `tasks` tasks claimed on `store`, each committing [`COMMITS_PER_TASK`] checkpoints in turn, all
/// at once: every commit's latency (sorted) and the time all took.
async fn commit_latencies(
    store: Arc<dyn TaskStore>,
    tasks: usize,
) -> Result<(Vec<Duration>, Duration), Failure> {
    let worker = WorkerId("latency".to_owned());
    let lease = LeaseRequest { worker: worker.clone(), ttl: Duration::from_secs(600), max_lost_leases: 3 };
    let mut claimed = Vec::new();
    for _ in 0..tasks {
        let task = BatchTask::new(
            TaskId::new(),
            CreateTaskRequest::new(TaskType::BatchProcess),
            chrono::Utc::now(),
        )?;
        store.insert_task(&task).await?;
        let claim = store.claim_task(&task.id, &lease).await?.ok_or("a new task is claimable")?;
        claimed.push((task, Holder { worker: worker.clone(), epoch: claim.lease.epoch }));
    }
    let started = Instant::now();
    let mut runs = Vec::new();
    for (task, holder) in claimed {
        let store = Arc::clone(&store);
        runs.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(COMMITS_PER_TASK);
            let mut progress = task.progress.clone();
            for sequence in 1..=COMMITS_PER_TASK as u64 {
                progress.processed = sequence * 1000;
                let checkpoint = Checkpoint {
                    sequence,
                    source: serde_json::json!({ "offset": sequence * 65_536, "line": sequence * 1000 }),
                    sink: serde_json::json!({ "output": sequence * 131_072, "dead_letters": 0 }),
                    counters: Counters { processed: sequence * 1000, ..Counters::default() },
                    state: serde_json::json!({ "orders": sequence * 1000 }),
                    committed_at: chrono::Utc::now(),
                };
                let at = Instant::now();
                store.commit_checkpoint(&task.id, &holder, &checkpoint, &progress).await?;
                latencies.push(at.elapsed());
            }
            Ok::<_, batch_manager::store::StoreError>(latencies)
        }));
    }
    let mut all = Vec::new();
    for run in runs {
        all.extend(run.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((all, elapsed))
}

/// A `batch worker` whose JSON log lines arrive on a channel.
struct Worker {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Worker {
    fn start(batch: &Path, db: &str, name: &str) -> Result<Worker, Failure> {
        let mut child = Command::new(batch)
            .args(["worker", "--db", db, "--name", name, "--concurrency", "1", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr: ChildStderr = child.stderr.take().ok_or("a piped stderr")?;
        let (sender, lines) = std::sync::mpsc::sync_channel(1024);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        let worker = Worker { child, lines };
        worker.wait_for(|event| event["message"] == "worker started")?;
        Ok(worker)
    }

    fn wait_for(&self, matches: impl Fn(&serde_json::Value) -> bool) -> Result<serde_json::Value, Failure> {
        loop {
            let event = self.lines.recv_timeout(Duration::from_secs(60))?;
            if matches(&event) {
                return Ok(event);
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `batch args... [--db db]`: its stdout.
fn batch_command(batch: &Path, db: Option<&str>, args: &[&str]) -> Result<String, Failure> {
    let mut command = Command::new(batch);
    command.args(args);
    if let Some(db) = db {
        command.args(["--db", db]);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!("batch {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Rounds of: worker A runs a task, worker B idles; A is killed once the task has committed a
/// checkpoint; the time from the kill to B's claim.
fn takeover_times(batch: &Path, db: &str, dir: &Path, rounds: usize) -> Result<Vec<Duration>, Failure> {
    let input = dir.join("trades.jsonl");
    let input_text = input.display().to_string();
    batch_command(batch, None, &["gen", "youzan_order", "--count", "400000", "--output", &input_text])?;
    let mut times = Vec::new();
    for round in 0..rounds {
        let mut first = Worker::start(batch, db, &format!("a{round}"))?;
        let output = dir.join(format!("out-{round}.jsonl")).display().to_string();
        let id = batch_command(
            batch,
            Some(db),
            &["submit", "youzan_order", "--input", &input_text, "--output", &output, "--batch-size", "500"],
        )?
        .trim()
        .to_owned();
        first.wait_for(|event| {
            event["message"] == "task claimed" && event["span"]["task_id"] == id.as_str()
        })?;
        let second = Worker::start(batch, db, &format!("b{round}"))?;
        loop {
            let shown: serde_json::Value =
                serde_json::from_str(&batch_command(batch, Some(db), &["tasks", "show", &id, "--json"])?)?;
            if shown["progress"]["processed"].as_u64().unwrap_or(0) > 0 {
                break;
            }
        }
        // Killed at a random point of its heartbeat period, as a crash would be.
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..1000)));
        first.child.kill()?;
        let killed = Instant::now();
        first.child.wait()?;
        second.wait_for(|event| {
            event["message"] == "task claimed"
                && event["span"]["task_id"] == id.as_str()
                && event["resumed"] == true
        })?;
        times.push(killed.elapsed());
        batch_command(batch, Some(db), &["tasks", "stop", &id])?;
        drop(second);
        eprintln!("round {round}: {}", show(times[times.len() - 1]));
    }
    Ok(times)
}
