//! Peak-memory probe: 10,000,000 items through a pipeline with every kind of buffer, then the peak RSS.
//!
//! Run: `cargo run --release -p benches --bin rss_10m`. The pipeline's memory is bounded by its
//! buffers, so the peak stays flat whatever the item count.

#![allow(clippy::print_stdout)]

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use pump_core::prelude::*;

const N: u64 = 10_000_000;

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let started = Instant::now();
    let outcome = runtime.block_on(
        source::iter(0..N)
            .map(|x| x.wrapping_mul(2_654_435_761))
            .filter(|x| x % 7 != 0)
            .map_async(nz(8), |x| async move { x >> 3 })
            .batch(nz(1000), Duration::from_millis(100))
            .async_boundary(nz(64))
            .unbatch()
            .to(sink::count())
            .run(),
    )?;
    let elapsed = started.elapsed();
    println!("items out: {}", outcome.value);
    println!("elapsed: {elapsed:.2?} ({:.1} M items/s)", N as f64 / elapsed.as_secs_f64() / 1e6);
    match benches::peak_rss_kib() {
        Some(kib) => println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS: unavailable on this platform"),
    }
    Ok(())
}
