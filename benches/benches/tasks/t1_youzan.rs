//! t1_youzan: 200,000 generated YouZan trades end to end (read the file, parse, validate, enrich,
//! write enriched JSON lines and dead letters), against a plain serde loop.
//!
//! - `serde_baseline`: one thread, `BufRead::lines` → `serde_json::Value` → written back (bad lines
//!   to the dead-letter file). It neither validates nor enriches: the floor of "parse and write".
//! - `pump_c1`, `pump_c2`: the `youzan_order` kind itself, with `concurrency` 1 or 2, through the chunk
//!   runner: `text_lines` → `map_blocking` (parse, validate, enrich, serialise) → chunks of 1,000 →
//!   `JsonLinesWriter`s, a checkpoint committed per chunk (to a job control that accepts every
//!   commit for free: the kind's own cost; a store's is m1's), and the summary.
//!
//! Targets: `pump_c1` within 2× of `serde_baseline`; `pump_c2` at least 1.6× faster than `pump_c1`.

use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, Progress, TaskError, TaskId, TaskType,
};
use batch_tasks::youzan::generator::{GeneratorConfig, generate};
use batch_tasks::youzan::{YouzanOrderKind, YouzanSummary};
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use criterion::{Criterion, SamplingMode, Throughput};

/// Trades per run.
const TRADES: u64 = 200_000;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
    }
}

fn or_panic<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error}"),
    }
}

/// A job control that accepts every commit at no cost and never stops. (The test kit's
/// `MemoryControl` round-trips and keeps every checkpoint, which a benchmark of the kind should not
/// pay for.)
#[derive(Default)]
struct FreeControl {
    token: pump_core::CancellationToken,
}

#[async_trait::async_trait]
impl JobControl for FreeControl {
    async fn commit(&self, _checkpoint: Checkpoint, _progress: Progress) -> Result<(), TaskError> {
        Ok(())
    }

    async fn report_progress(&self, _progress: Progress) {}

    fn stop_requested(&self) -> bool {
        false
    }

    fn cancellation_token(&self) -> pump_core::CancellationToken {
        self.token.clone()
    }
}

/// A `youzan_order` task over these files with this concurrency.
fn task(input: &Path, dir: &Path, concurrency: u32) -> BatchTask {
    let params = serde_json::json!({
        "input": input,
        "output": dir.join(format!("enriched-c{concurrency}.jsonl")),
        "dead_letter": dir.join(format!("invalid-c{concurrency}.jsonl")),
    });
    let config = BatchConfig { concurrency, batch_size: 1_000, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::YouzanOrder).with_config(config).with_params(params);
    or_panic(BatchTask::new(TaskId::new(), request, chrono::Utc::now()), "build the task")
}

/// Runs the kind on `task` to completion and returns its summary.
async fn run_kind(kind: &YouzanOrderKind, task: &BatchTask) -> YouzanSummary {
    let control: Arc<dyn JobControl> = Arc::new(FreeControl::default());
    match or_panic(kind.run(JobContext::new(task.clone(), None, control)).await, "run the task") {
        JobOutcome::Completed { summary, .. } => {
            or_panic(serde_json::from_value(summary), "read the summary")
        }
        other => panic!("the task did not complete: {other:?}"),
    }
}

/// The baseline: parse each line into a `serde_json::Value` and write it back; returns the number
/// of lines that parsed.
fn serde_baseline(input: &Path, output: &Path, dead_letter: &Path) -> u64 {
    let reader = BufReader::with_capacity(256 * 1024, or_panic(File::open(input), "open input"));
    let mut output = BufWriter::with_capacity(256 * 1024, or_panic(File::create(output), "create output"));
    let mut dead =
        BufWriter::with_capacity(256 * 1024, or_panic(File::create(dead_letter), "create dead letters"));
    let mut valid = 0;
    for line in reader.lines() {
        let line = or_panic(line, "read input");
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(value) => {
                or_panic(serde_json::to_writer(&mut output, &value), "write output");
                or_panic(output.write_all(b"\n"), "write output");
                valid += 1;
            }
            Err(_) => {
                or_panic(dead.write_all(line.as_bytes()), "write dead letters");
                or_panic(dead.write_all(b"\n"), "write dead letters");
            }
        }
    }
    or_panic(output.flush(), "flush output");
    or_panic(dead.flush(), "flush dead letters");
    valid
}

/// The t1 group: `serde_baseline`, `pump_c1`, `pump_c2` over the same generated file.
pub fn t1_youzan(c: &mut Criterion) {
    let dir = or_panic(tempfile::tempdir(), "create a temporary directory");
    let input = dir.path().join("trades.jsonl");
    let config = GeneratorConfig { count: TRADES, seed: 2024, invalid_ratio: 0.05 };
    let stats = or_panic(generate(&config, or_panic(File::create(&input), "create input")), "generate");
    let kind = YouzanOrderKind::default();
    let rt = runtime();

    let mut group = c.benchmark_group("t1_youzan");
    group.throughput(Throughput::Elements(TRADES));
    // One pass takes about a second: flat sampling, 10 passes per function.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("serde_baseline", |b| {
        b.iter(|| {
            let parsed = serde_baseline(
                &input,
                &dir.path().join("baseline.jsonl"),
                &dir.path().join("baseline-dead.jsonl"),
            );
            // Invalid records that are still JSON (missing fields, bad values) parse here.
            assert!(parsed >= stats.expected.valid);
        })
    });
    for concurrency in [1u32, 2] {
        let task = task(&input, dir.path(), concurrency);
        group.bench_function(format!("pump_c{concurrency}"), |b| {
            b.to_async(&rt).iter(|| async { assert_eq!(run_kind(&kind, &task).await, stats.expected) })
        });
    }
    group.finish();
}
