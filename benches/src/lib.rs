//! Shared workloads and baselines for the criterion benchmarks (`benches/`) and the memory probe
//! (`src/bin/rss_10m.rs`).
//!
//! Each workload exists once here, in every flavour a benchmark compares, so the flavours do the same
//! work and a ratio between them means something.

use std::hint::black_box;

/// Roughly 2 µs of integer work on this machine (xorshift rounds), for the CPU-parallelism benchmark.
pub fn cpu_work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..1_400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// The w1 workload as a hand-written loop: `x * 2`, keep multiples of 3, sum.
pub fn w1_hand_loop(n: u64) -> u64 {
    let mut sum = 0u64;
    for x in 0..n {
        let doubled = black_box(x) * 2;
        if doubled % 3 == 0 {
            sum = sum.wrapping_add(doubled);
        }
    }
    sum
}

/// Peak resident set size of this process in KiB (`VmHWM` from `/proc/self/status`), where available.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
