//! `m1_overhead`: what the task lifecycle costs over the bare pipeline, in three groups: wall time
//! (`m1_overhead`), process CPU time (`m1_overhead_cpu`) and the per-round ratio of interleaved runs
//! (`m1_overhead_ratio`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use batch_manager::BatchManager;
use batch_model::Durability;
use benches::manager_workloads::{M1_N, OrdersParams, manager, run_bare, run_managed};
use benches::write_orders;
use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, Criterion, Throughput};

use crate::measure::{ProcessCpuTime, Ratio};
use crate::runtime;

/// The m1 input, written once for the three groups, in a folder that lives as long as the process.
struct Fixture {
    dir: tempfile::TempDir,
    input: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot create a temporary directory: {error}"),
        };
        let input = dir.path().join("orders.jsonl");
        if let Err(error) = write_orders(&input, M1_N) {
            panic!("cannot write the input: {error}");
        }
        Fixture { dir, input }
    })
}

/// The three flavours' outputs and managers, for one group (one runtime).
struct Flavours {
    bare_output: PathBuf,
    params: OrdersParams,
    managed: BatchManager,
    durable: BatchManager,
}

impl Flavours {
    /// Managers on fresh stores named after `group`, so groups do not share a store.
    fn new(rt: &tokio::runtime::Runtime, group: &str) -> Flavours {
        let fixture = fixture();
        let dir = fixture.dir.path();
        let params = OrdersParams {
            input: fixture.input.clone(),
            output: dir.join(format!("{group}.managed.jsonl")),
            dead_letters: dir.join(format!("{group}.managed.dead.jsonl")),
        };
        let (managed, durable) = rt.block_on(async {
            (
                manager(&dir.join(format!("{group}.tasks.db")), Durability::Process, 4),
                manager(&dir.join(format!("{group}.durable.db")), Durability::PowerLoss, 4),
            )
        });
        Flavours { bare_output: dir.join(format!("{group}.bare.jsonl")), params, managed, durable }
    }

    fn shutdown(self, rt: &tokio::runtime::Runtime) {
        rt.block_on(async {
            self.managed.shutdown().await;
            self.durable.shutdown().await;
        });
    }
}

fn configure<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
}

/// Bare, managed and managed-durable in the group's measurement (wall or CPU time), each function's
/// iterations back to back, as criterion runs them.
fn flavours_in<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let rt = runtime();
    let flavours = Flavours::new(&rt, name);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(M1_N));
    configure(&mut group);
    let input = &fixture().input;
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| run_bare(input, &flavours.bare_output)));
    group.bench_function("managed", |b| {
        b.to_async(&rt).iter(|| run_managed(&flavours.managed, &flavours.params, Durability::Process))
    });
    group.bench_function("managed_durable", |b| {
        b.to_async(&rt).iter(|| run_managed(&flavours.durable, &flavours.params, Durability::PowerLoss))
    });
    group.finish();
    flavours.shutdown(&rt);
}

/// `m1_overhead`: wall time per run.
pub(crate) fn wall(c: &mut Criterion) {
    flavours_in(c, "m1_overhead");
}

/// `m1_overhead_cpu`: the process's CPU time per run (every thread), which time given to other
/// tenants of the machine does not inflate.
pub(crate) fn cpu(c: &mut Criterion<ProcessCpuTime>) {
    flavours_in(c, "m1_overhead_cpu");
}

/// `m1_overhead_ratio`: rounds of one bare run then one managed run, back to back; each round's
/// managed / bare wall-time ratio, averaged over the rounds of a sample (`× 1.07` = 7% overhead).
pub(crate) fn interleaved(c: &mut Criterion<Ratio>) {
    let rt = runtime();
    let owned = Flavours::new(&rt, "m1_overhead_ratio");
    let mut group = c.benchmark_group("m1_overhead_ratio");
    configure(&mut group);
    let input = &fixture().input;
    let flavours = &owned;
    for (name, durability) in
        [("managed_over_bare", Durability::Process), ("managed_durable_over_bare", Durability::PowerLoss)]
    {
        let manager = if durability == Durability::Process { &flavours.managed } else { &flavours.durable };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|rounds| async move {
                let mut ratios = 0.0;
                for _ in 0..rounds {
                    let started = Instant::now();
                    run_bare(input, &flavours.bare_output).await;
                    let bare = started.elapsed();
                    let started = Instant::now();
                    run_managed(manager, &flavours.params, durability).await;
                    ratios += started.elapsed().as_secs_f64() / bare.as_secs_f64();
                }
                ratios
            })
        });
    }
    group.finish();
    owned.shutdown(&rt);
}
