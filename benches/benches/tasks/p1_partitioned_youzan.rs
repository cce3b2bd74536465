//! p1_partitioned_youzan: one `youzan_order` task over 200,000 generated trades through two
//! workers (`BatchManager`s with one task slot each, on one SQLite store, woken by its change feed),
//! run whole or split in two partitions.
//!
//! - `unpartitioned_c2`, the baseline: one task at `concurrency` 2 (one worker runs it on both
//!   cores).
//! - `partitions_2_c1`: the same task with `partitions: 2` at `concurrency` 1: the first claim
//!   splits the input (one pass counting newlines), each worker runs a partition, and the last
//!   claim merges them (the first partition's output adopted by a rename after a checkpoint
//!   recording it, the rest concatenated in the kernel, the summaries added).
//!
//! Both end with the same files and summary (asserted). Target: `partitions_2_c1` within 1.15× of
//! `unpartitioned_c2`'s time: the split, the merge and the extra claims must cost little.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::TaskStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, CreateTaskRequest, TaskStatus, TaskType};
use batch_tasks::youzan::YouzanSummary;
use batch_tasks::youzan::generator::{GeneratorConfig, generate};
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

/// A worker with the built-in kinds and one task slot.
fn worker(store: &Arc<dyn TaskStore>, name: &str) -> BatchManager {
    let config = ManagerConfig::default()
        .with_worker_id(name)
        .with_max_concurrent_tasks(1)
        .with_poll_interval(Duration::from_millis(10));
    or_panic(BatchManager::new(Arc::clone(store), batch_tasks::builtin_registry(), config), "build a worker")
}

/// Runs one task over `input` with `concurrency` and `partitions` to its end; checks its summary.
async fn run_task(
    manager: &BatchManager,
    input: &Path,
    dir: &Path,
    concurrency: u32,
    partitions: u32,
    expected: &YouzanSummary,
) {
    let config = BatchConfig { batch_size: 1_000, concurrency, partitions, ..BatchConfig::default() };
    let params = serde_json::json!({
        "input": input,
        "output": dir.join(format!("enriched-p{partitions}.jsonl")),
        "dead_letter": dir.join(format!("invalid-p{partitions}.jsonl")),
    });
    let request = CreateTaskRequest::new(TaskType::YouzanOrder).with_config(config).with_params(params);
    let id = or_panic(manager.create_task(request).await, "create the task").id;
    let task = or_panic(manager.wait(&id).await, "wait for the task");
    assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
    let result = or_panic(manager.task_result(&id).await, "read the result").map(|record| record.result);
    let summary: YouzanSummary =
        or_panic(serde_json::from_value(result.unwrap_or_default()), "read the summary");
    assert_eq!(&summary, expected);
}

/// The p1 group: `unpartitioned_c2` and `partitions_2_c1` over the same generated file.
pub fn p1_partitioned_youzan(c: &mut Criterion) {
    let dir = or_panic(tempfile::tempdir(), "create a temporary directory");
    let input = dir.path().join("trades.jsonl");
    let config = GeneratorConfig { count: TRADES, seed: 2024, invalid_ratio: 0.05 };
    let stats = or_panic(generate(&config, or_panic(File::create(&input), "create input")), "generate");
    let rt = runtime();
    let store: Arc<dyn TaskStore> = Arc::new(or_panic(
        SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default()),
        "open the store",
    ));
    let workers = [worker(&store, "w1"), worker(&store, "w2")];
    let loops: Vec<_> = workers
        .iter()
        .map(|manager| {
            let manager = manager.clone();
            rt.spawn(async move { manager.run_worker().await })
        })
        .collect();

    let mut group = c.benchmark_group("p1_partitioned_youzan");
    group.throughput(Throughput::Elements(TRADES));
    // One pass takes about a second: flat sampling, 10 passes per function.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(15));
    for (name, concurrency, partitions) in [("unpartitioned_c2", 2, 1), ("partitions_2_c1", 1, 2)] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| run_task(&workers[0], &input, dir.path(), concurrency, partitions, &stats.expected))
        });
    }
    group.finish();

    rt.block_on(async {
        for manager in &workers {
            manager.shutdown().await;
        }
        for handle in loops {
            or_panic(or_panic(handle.await, "join a worker"), "run a worker");
        }
    });
}
