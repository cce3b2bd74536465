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

/// The sum of one w6 window (wrapping, as the pipeline's fold does).
pub fn w6_window_sum(items: &[u64]) -> u64 {
    items.iter().fold(0u64, |sum, x| sum.wrapping_add(*x))
}

/// The w6 workload as a hand-written loop: `0..n` cut into consecutive windows of `window` items (the
/// last may be shorter), each collected into a buffer and summed, the sums added up.
pub fn w6_hand_loop(n: u64, window: usize) -> u64 {
    let mut buffer = Vec::with_capacity(window);
    let mut total = 0u64;
    for x in 0..n {
        buffer.push(black_box(x));
        if buffer.len() == window {
            total = total.wrapping_add(w6_window_sum(&buffer));
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        total = total.wrapping_add(w6_window_sum(&buffer));
    }
    total
}
