//! Task-kind benchmarks: each kind run end to end through its `TaskKind` contract, one group per
//! kind (t1, t2, ...), each against a named baseline.
//!
//! Run: `cargo bench -p benches --bench tasks`. Figures and ratios go to docs/BENCHMARKS.md.

// `pub mod`: each group's `pub fn` is then reachable, which the workspace's `unreachable_pub` lint
// asks of a `pub` item.
pub mod t2_train;

criterion::criterion_group!(benches, t2_train::t2_train);
criterion::criterion_main!(benches);
