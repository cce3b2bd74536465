//! Task-kind benchmarks: each kind's real pipeline over generated data against a named baseline.
//!
//! Run: `cargo bench -p benches --bench tasks`. Figures and ratios go to docs/BENCHMARKS.md.

use criterion::{criterion_group, criterion_main};

pub mod t1_youzan;

criterion_group!(benches, t1_youzan::t1_youzan);
criterion_main!(benches);
