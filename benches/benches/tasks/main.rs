//! Task-kind benchmarks: each kind's real pipeline over generated data against a named baseline, one
//! group per kind (t1, t2, ...), and p1: a task split into partitions across workers.
//!
//! Run: `cargo bench -p benches --bench tasks`. Figures and ratios go to docs/BENCHMARKS.md.

// `pub mod`: each group's `pub fn` is then reachable, which the workspace's `unreachable_pub` lint
// asks of a `pub` item.
pub mod p1_partitioned_youzan;
pub mod t1_youzan;
pub mod t2_train;

criterion::criterion_group!(
    benches,
    t1_youzan::t1_youzan,
    t2_train::t2_train,
    p1_partitioned_youzan::p1_partitioned_youzan
);
criterion::criterion_main!(benches);
