//! The manager benchmarks' workloads (`benches/manager.rs`, `src/bin/m1_cpu.rs`): the m1 orders job as
//! a chunk-runner kind, the empty m2 kind, a manager on SQLite, and the bare pump-core pipeline m1
//! compares against; m3's worker of empty tasks on any store and its wait for their completion
//! (`benches/pg.rs`, `src/bin/pg_statements.rs`).

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{TaskChange, TaskChanges, TaskStore};
use batch_manager::{BatchManager, ManagerConfig, ManagerError};
use batch_model::{BatchConfig, CreateTaskRequest, Durability, ErrorCode, TaskError, TaskStatus, TaskType};
use batch_tasks::records::{ChunkRunner, ItemError, Record, RecordJob, RunnerOptions};
use batch_tasks::{JobContext, JobOutcome, Registry, TaskKind};
use pump_core::prelude::*;
use pump_core::sink::JsonLinesWriter;
use serde::{Deserialize, Serialize};

use crate::{OrderTotal, total_order};

/// Orders in the m1 input.
pub const M1_N: u64 = 1_000_000;

/// The m1 kind's params.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrdersParams {
    /// The orders, JSON lines.
    pub input: PathBuf,
    /// The totals, JSON lines.
    pub output: PathBuf,
    /// Rejected lines.
    pub dead_letters: PathBuf,
}

/// The m1 workload as a chunk-runner kind.
pub struct OrdersKind;

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
pub struct EmptyKind;

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

/// A manager on a SQLite store at `db` with both kinds registered.
pub fn manager(db: &Path, durability: Durability, max_concurrent_tasks: usize) -> BatchManager {
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

/// An m3 worker: a manager named `name` on `store` with the empty kind alone, `slots` tasks at a
/// time and `claims_in_flight` claim calls at once, polling every 10 ms when its change feed is quiet.
pub fn empty_tasks_manager(
    store: Arc<dyn TaskStore>,
    name: &str,
    slots: usize,
    claims_in_flight: usize,
) -> Result<BatchManager, ManagerError> {
    let mut registry = Registry::new();
    registry.register(EmptyKind);
    let config = ManagerConfig::default()
        .with_worker_id(name)
        .with_max_concurrent_tasks(slots)
        .with_claims_in_flight(claims_in_flight)
        .with_poll_interval(Duration::from_millis(10));
    BatchManager::new(store, registry, config)
}

/// Waits until `tasks` tasks of `store` have completed, for at most `within`: the completions heard
/// on `events` (the store's change feed, subscribed before the tasks were created, and read while
/// they are created), and the metrics when the feed was quiet for a quarter second or lagged. A feed
/// that lagged dropped changes, so some completions will never be heard: from then on the metrics
/// are read on completions heard at most every 20 ms and after 20 ms of quiet, so that the wait ends
/// within about 20 ms of the last completion either way (reading them on every change would compete
/// with the workers for the store).
pub async fn wait_completed(
    store: &dyn TaskStore,
    events: &mut TaskChanges,
    tasks: u64,
    within: Duration,
) -> Result<(), String> {
    const AFTER_LAG: Duration = Duration::from_millis(20);
    let deadline = Instant::now() + within;
    let mut heard = HashSet::new();
    // Whether the feed dropped changes, and when the metrics were last read.
    let mut lagged = false;
    let mut read_at = Instant::now();
    while (heard.len() as u64) < tasks {
        if Instant::now() > deadline {
            return Err(format!("the tasks did not complete within {within:?} ({} heard)", heard.len()));
        }
        let quiet = if lagged { AFTER_LAG } else { Duration::from_millis(250) };
        let look = match tokio::time::timeout(quiet, events.recv()).await {
            Ok(Ok(TaskChange::Task { id, status: TaskStatus::Completed, .. })) => {
                heard.insert(id);
                lagged && read_at.elapsed() >= AFTER_LAG
            }
            Ok(Ok(_)) => false,
            // Changes were dropped.
            Ok(Err(_)) => {
                lagged = true;
                true
            }
            // Quiet.
            Err(_) => true,
        };
        if look {
            read_at = Instant::now();
            let metrics = store.metrics().await.map_err(|error| format!("reading metrics: {error}"))?;
            if metrics.completed_tasks >= tasks {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Runs one m1 task through `manager` and checks that every order was written.
pub async fn run_managed(manager: &BatchManager, params: &OrdersParams, durability: Durability) {
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

/// The m1 pipeline run bare on pump-core: `text_lines`, `map_blocking` (parallelism 2) parsing and
/// totalling each order, and a `JsonLinesWriter`.
pub async fn run_bare(input: &Path, output: &Path) {
    let writer = match JsonLinesWriter::create(output) {
        Ok(writer) => writer,
        Err(error) => panic!("cannot create the output: {error}"),
    };
    let parallelism = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN);
    let outcome = source::text_lines(input)
        .map_blocking(parallelism, |record| record.ok().and_then(|record| total_order(&record.value).ok()))
        .filter_map(|total| total)
        .to(sink::write(writer))
        .run()
        .await;
    match outcome {
        Ok(outcome) => assert_eq!(outcome.value.records, M1_N),
        Err(error) => panic!("the bare run failed: {error}"),
    }
}
