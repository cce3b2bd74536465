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

use std::time::Duration;

use batch_model::{CreateTaskRequest, Durability, TaskStatus, TaskType};
use benches::manager_workloads::{M1_N, OrdersParams, manager, run_bare, run_managed};
use benches::write_orders;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::task::JoinSet;

const M2_TASKS: u64 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
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
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| run_bare(&input, &bare_output)));
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
