//! Manager benchmarks: what the task lifecycle costs over the bare pipeline, and how many tasks per
//! second it turns over, each beside its baseline or peers in the same run.
//!
//! - `m1_overhead` (wall time), `m1_overhead_cpu` (process CPU time) and `m1_overhead_ratio`
//!   (interleaved rounds): 1,000,000 orders (~200 bytes each, JSON lines) read, parsed, totalled and
//!   written as JSON lines. `bare` is the same pipeline directly on pump-core (`text_lines` +
//!   `map_blocking` + `JsonLinesWriter`); `managed` runs it as a registered chunk-runner kind through
//!   a `BatchManager` on SQLite (batch_size 1000: a checkpoint per 1000 records); `managed_durable`
//!   adds `durability: power_loss` (fsync of output and store at each checkpoint). The ratio group
//!   runs a bare run and a managed run back to back in every round and reports the rounds' mean
//!   managed / bare ratio, which a noisy machine moves far less than either time. Target: managed
//!   within 10% of bare.
//! - `m2_task_throughput`: create, process and complete 10,000 empty tasks: `batch_manager` on
//!   SQLite, `apalis_sqlite/fetch_100` (apalis-sqlite, an embedded job queue on SQLite, in its best
//!   configuration found: 100 jobs per fetch; its default of 10 takes about 100 s an iteration), and
//!   `rusqlite_one_transaction_each` (our store's statements run one transaction each with plain
//!   rusqlite: the limit without grouping). Target: ahead of the peer's best configuration.
//!
//! - `r1_record_json`: serialising one completed task's record (about 680 bytes), the model's
//!   `BatchTask` beside a mirror of it whose timestamps use chrono's serde (same bytes): what the
//!   stores pay at every change they write.
//!
//! Run: `cargo bench -p benches --bench manager` (`-- m1`, `-- m2` or `-- r1` for one family). Figures go to
//! docs/BENCHMARKS.md.

mod m1_overhead;
mod m2_task_throughput;
mod measure;
mod r1_record_json;

use criterion::{Criterion, criterion_group, criterion_main};

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
    }
}

criterion_group!(
    wall,
    m1_overhead::wall,
    m2_task_throughput::m2_task_throughput,
    r1_record_json::r1_record_json
);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(measure::ProcessCpuTime);
    targets = m1_overhead::cpu
}
criterion_group! {
    name = ratio;
    config = Criterion::default().with_measurement(measure::Ratio);
    targets = m1_overhead::interleaved
}
criterion_main!(wall, cpu, ratio);
