//! Manager benchmarks: what the task lifecycle costs over the bare pipeline, and how many tasks per
//! second it turns over.
//!
//! - `m1_overhead`: 1,000,000 orders (~200 bytes each, JSON lines) read, parsed, totalled and written
//!   as JSON lines. `bare` is the same pipeline directly on pump-core (`text_lines` + `map_blocking` +
//!   `JsonLinesWriter`); `managed` runs it as a registered chunk-runner kind through a `BatchManager`
//!   on SQLite (batch_size 1000: a checkpoint per 1000 records); `managed_durable` adds
//!   `durability: power_loss` (fsync of output and store at each checkpoint). Target: managed within
//!   10% of bare.
//! - `m2_task_throughput`: create, process and complete 10,000 empty tasks on SQLite. Target:
//!   ≥ 12,000 tasks/s.
//!
//! Run: `cargo bench -p benches --bench manager`. Figures go to docs/BENCHMARKS.md.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batch_manager::store::TaskStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, CreateTaskRequest, Durability, ErrorCode, TaskError, TaskStatus, TaskType};
use batch_tasks::records::{ChunkRunner, ItemError, Record, RecordJob, RunnerOptions};
use batch_tasks::{JobContext, JobOutcome, Registry, TaskKind};
use benches::{OrderTotal, total_order, write_orders};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pump_core::prelude::*;
use pump_core::sink::JsonLinesWriter;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

const M1_N: u64 = 1_000_000;
const M2_TASKS: u64 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// The m1 kind's params.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrdersParams {
    input: PathBuf,
    output: PathBuf,
    dead_letters: PathBuf,
}

/// The m1 workload as a chunk-runner kind.
struct OrdersKind;

struct OrdersJob(OrdersParams);

impl RecordJob for OrdersJob {
    type Output = OrderTotal;
    type Summary = ();

    fn input(&self) -> &Path {
        &self.0.input
    }

    fn output(&self) -> &Path {
        &self.0.output
    }

    fn dead_letters(&self) -> &Path {
        &self.0.dead_letters
    }

    fn process(&self, record: &Record<String>) -> Result<Option<OrderTotal>, ItemError> {
        total_order(&record.value).map(Some).map_err(|error| ItemError::validation(error.to_string()))
    }
}

#[async_trait]
impl TaskKind for OrdersKind {
    fn task_type(&self) -> TaskType {
        TaskType::Custom("bench_orders".to_owned())
    }

    fn validate(&self, params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
        serde_json::from_value::<OrdersParams>(params.clone())
            .map(drop)
            .map_err(|error| TaskError::new(ErrorCode::ConfigurationError, error.to_string()))
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        let params: OrdersParams = serde_json::from_value(job.params().clone())
            .map_err(|error| TaskError::new(ErrorCode::ConfigurationError, error.to_string()))?;
        ChunkRunner::new(RunnerOptions::default()).run(Arc::new(OrdersJob(params)), &job).await
    }
}

/// An m2 task: nothing to do.
struct EmptyKind;

#[async_trait]
impl TaskKind for EmptyKind {
    fn task_type(&self) -> TaskType {
        TaskType::Custom("bench_empty".to_owned())
    }

    fn validate(&self, _params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
        Ok(())
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        Ok(JobOutcome::Completed { summary: serde_json::Value::Null, progress: job.task().progress.clone() })
    }
}

fn manager(db: &Path, durability: Durability, max_concurrent_tasks: usize) -> BatchManager {
    let options = SqliteOptions { durability, ..SqliteOptions::default() };
    let store: Arc<dyn TaskStore> = match SqliteStore::open(db, options) {
        Ok(store) => Arc::new(store),
        Err(error) => panic!("cannot open {}: {error}", db.display()),
    };
    let mut registry = Registry::new();
    registry.register(OrdersKind).register(EmptyKind);
    let config = ManagerConfig::default().with_max_concurrent_tasks(max_concurrent_tasks);
    match BatchManager::new(store, registry, config) {
        Ok(manager) => manager,
        Err(error) => panic!("cannot build the manager: {error}"),
    }
}

/// Runs one m1 task through `manager` and checks that every order was written.
async fn run_managed(manager: &BatchManager, params: &OrdersParams, durability: Durability) {
    let config = BatchConfig { batch_size: 1000, concurrency: 2, durability, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::Custom("bench_orders".to_owned()))
        .with_config(config)
        .with_params(serde_json::to_value(params).unwrap_or_default());
    let outcome = async {
        let id = manager.create_task(request).await?.id;
        manager.process_task(&id).await?;
        manager.wait(&id).await
    };
    match outcome.await {
        Ok(task) => {
            assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
            assert_eq!(task.progress.processed, M1_N);
        }
        Err(error) => panic!("the managed run failed: {error}"),
    }
}

fn m1_overhead(c: &mut Criterion) {
    let rt = runtime();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    let input = dir.path().join("orders.jsonl");
    if let Err(error) = write_orders(&input, M1_N) {
        panic!("cannot write the input: {error}");
    }
    let params = OrdersParams {
        input: input.clone(),
        output: dir.path().join("managed.jsonl"),
        dead_letters: dir.path().join("managed.dead.jsonl"),
    };
    let bare_output = dir.path().join("bare.jsonl");
    let managed = rt.block_on(async { manager(&dir.path().join("tasks.db"), Durability::Process, 4) });
    let durable = rt.block_on(async { manager(&dir.path().join("durable.db"), Durability::PowerLoss, 4) });

    let mut group = c.benchmark_group("m1_overhead");
    group.throughput(Throughput::Elements(M1_N));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async {
            let writer = match JsonLinesWriter::create(&bare_output) {
                Ok(writer) => writer,
                Err(error) => panic!("cannot create the output: {error}"),
            };
            let outcome = source::text_lines(&input)
                .map_blocking(nz(2), |record| record.ok().and_then(|record| total_order(&record.value).ok()))
                .filter_map(|total| total)
                .to(sink::write(writer))
                .run()
                .await;
            match outcome {
                Ok(outcome) => assert_eq!(outcome.value.records, M1_N),
                Err(error) => panic!("the bare run failed: {error}"),
            }
        })
    });
    group.bench_function("bare_spawned", |b| {
        b.to_async(&rt).iter(|| {
            let (input, bare_output) = (input.clone(), bare_output.clone());
            async move {
                tokio::spawn(async move {
                    let writer = JsonLinesWriter::create(&bare_output).unwrap();
                    source::text_lines(&input)
                        .map_blocking(nz(2), |record| record.ok().and_then(|record| total_order(&record.value).ok()))
                        .filter_map(|total| total)
                        .to(sink::write(writer))
                        .run()
                        .await
                        .unwrap()
                })
                .await
                .unwrap()
            }
        })
    });
    group.bench_function("managed", |b| {
        b.to_async(&rt).iter(|| run_managed(&managed, &params, Durability::Process))
    });
    group.bench_function("managed_durable", |b| {
        b.to_async(&rt).iter(|| run_managed(&durable, &params, Durability::PowerLoss))
    });
    group.finish();
    rt.block_on(async {
        managed.shutdown().await;
        durable.shutdown().await;
    });
}

fn m2_task_throughput(c: &mut Criterion) {
    let rt = runtime();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    let manager = rt.block_on(async { manager(&dir.path().join("tasks.db"), Durability::Process, 256) });
    let mut group = c.benchmark_group("m2_task_throughput");
    group.throughput(Throughput::Elements(M2_TASKS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("empty_tasks", |b| {
        b.to_async(&rt).iter(|| async {
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
        })
    });
    group.finish();
    rt.block_on(manager.shutdown());
}

criterion_group!(benches, m1_overhead, m2_task_throughput);
criterion_main!(benches);
