//! Pipeline benchmarks: pump-core against named baselines on the same work.
//!
//! Run: `cargo bench -p benches --bench pipeline`. Figures and ratios go to docs/BENCHMARKS.md.

use std::num::NonZeroUsize;
use std::time::Duration;

use benches::{cpu_work, w1_hand_loop};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use futures::future::ready;
use pump_core::prelude::*;
use tokio::sync::mpsc;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

const W1_N: u64 = 1_000_000;

/// The w1 workload with each stage a task, joined by bounded channels of `capacity`.
async fn w1_channel_per_stage(capacity: usize) -> u64 {
    let (source_tx, mut map_rx) = mpsc::channel::<u64>(capacity);
    let (map_tx, mut filter_rx) = mpsc::channel::<u64>(capacity);
    let (filter_tx, mut fold_rx) = mpsc::channel::<u64>(capacity);
    tokio::spawn(async move {
        for x in 0..W1_N {
            if source_tx.send(x).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(x) = map_rx.recv().await {
            if map_tx.send(std::hint::black_box(x) * 2).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(x) = filter_rx.recv().await {
            if x % 3 == 0 && filter_tx.send(x).await.is_err() {
                return;
            }
        }
    });
    let mut sum = 0u64;
    while let Some(x) = fold_rx.recv().await {
        sum = sum.wrapping_add(x);
    }
    sum
}

fn w1_map_filter_fold(c: &mut Criterion) {
    let rt = runtime();
    let expected = w1_hand_loop(W1_N);
    let mut group = c.benchmark_group("w1_map_filter_fold");
    group.throughput(Throughput::Elements(W1_N));
    group.sample_size(20);
    group.bench_function("hand_loop", |b| b.iter(|| assert_eq!(w1_hand_loop(W1_N), expected)));
    group.bench_function("futures", |b| {
        b.to_async(&rt).iter(|| async {
            let sum = futures::stream::iter(0..W1_N)
                .map(|x| std::hint::black_box(x) * 2)
                .filter(|x| ready(x % 3 == 0))
                .fold(0u64, |sum, x| ready(sum.wrapping_add(x)))
                .await;
            assert_eq!(sum, expected);
        })
    });
    group.bench_function("pump", |b| {
        b.to_async(&rt).iter(|| async {
            let out = source::iter(0..W1_N)
                .map(|x| std::hint::black_box(x) * 2)
                .filter(|x| x % 3 == 0)
                .to(sink::fold(0u64, |sum, x: u64| sum.wrapping_add(x)))
                .run()
                .await;
            assert_eq!(out.map(|out| out.value).ok(), Some(expected));
        })
    });
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // The same pipeline as one task per stage joined by bounded channels: with capacity-1 channels
    // (a hand-off per element) and with capacity-1024 channels (stages run ahead in bursts, the
    // kindest setting for this design).
    for capacity in [1, 1024] {
        group.bench_function(BenchmarkId::new("channel_per_stage", format!("capacity_{capacity}")), |b| {
            b.to_async(&rt).iter(|| async {
                assert_eq!(w1_channel_per_stage(capacity).await, expected);
            })
        });
    }
    group.finish();
}

const W2_N: u64 = 1_000_000;

fn w2_batch(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("w2_batch");
    group.throughput(Throughput::Elements(W2_N));
    group.sample_size(20);
    group.bench_function("futures_chunks", |b| {
        b.to_async(&rt).iter(|| async {
            let items = futures::stream::iter(0..W2_N)
                .chunks(1000)
                .fold(0usize, |n, batch| ready(n + batch.len()))
                .await;
            assert_eq!(items as u64, W2_N);
        })
    });
    group.bench_function("pump", |b| {
        b.to_async(&rt).iter(|| async {
            let out = source::iter(0..W2_N)
                .batch(nz(1000), Duration::from_millis(100))
                .to(sink::fold(0usize, |n, batch: Vec<u64>| n + batch.len()))
                .run()
                .await;
            assert_eq!(out.map(|out| out.value as u64).ok(), Some(W2_N));
        })
    });
    group.finish();
}

const W3_N: u64 = 10_000;
const W3_PARALLELISM: usize = 100;

async fn w3_io(x: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    x
}

fn w3_map_async_io(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("w3_map_async_io");
    group.throughput(Throughput::Elements(W3_N));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("futures_buffer_unordered", |b| {
        b.to_async(&rt).iter(|| async {
            let n = futures::stream::iter(0..W3_N).map(w3_io).buffer_unordered(W3_PARALLELISM).count().await;
            assert_eq!(n as u64, W3_N);
        })
    });
    group.bench_function("pump_ordered", |b| {
        b.to_async(&rt).iter(|| async {
            let out =
                source::iter(0..W3_N).map_async(nz(W3_PARALLELISM), w3_io).to(sink::count()).run().await;
            assert_eq!(out.map(|out| out.value).ok(), Some(W3_N));
        })
    });
    group.bench_function("pump_unordered", |b| {
        b.to_async(&rt).iter(|| async {
            let out = source::iter(0..W3_N)
                .map_async_unordered(nz(W3_PARALLELISM), w3_io)
                .to(sink::count())
                .run()
                .await;
            assert_eq!(out.map(|out| out.value).ok(), Some(W3_N));
        })
    });
    group.finish();
}

const W4_N: u64 = 100_000;

fn w4_map_parallel_cpu(c: &mut Criterion) {
    let rt = runtime();
    let expected = (0..W4_N).fold(0u64, |sum, x| sum.wrapping_add(cpu_work(x)));
    let mut group = c.benchmark_group("w4_map_parallel_cpu");
    group.throughput(Throughput::Elements(W4_N));
    group.sample_size(10);
    group.bench_function("serial", |b| {
        b.iter(|| assert_eq!((0..W4_N).fold(0u64, |sum, x| sum.wrapping_add(cpu_work(x))), expected))
    });
    group.bench_with_input(BenchmarkId::new("pump", 2), &2usize, |b, &parallelism| {
        b.to_async(&rt).iter(|| async move {
            let out = source::iter(0..W4_N)
                .map_blocking(nz(parallelism), cpu_work)
                .to(sink::fold(0u64, |sum, x: u64| sum.wrapping_add(x)))
                .run()
                .await;
            assert_eq!(out.map(|out| out.value).ok(), Some(expected));
        })
    });
    group.finish();
}

const W6_N: u64 = 1_000_000;
const W6_WINDOW: usize = 1_000;

fn w6_tumbling_window(c: &mut Criterion) {
    let rt = runtime();
    let expected = benches::w6_hand_loop(W6_N, W6_WINDOW);
    let mut group = c.benchmark_group("w6_tumbling_window");
    group.throughput(Throughput::Elements(W6_N));
    group.sample_size(20);
    group.bench_function("hand_loop", |b| {
        b.iter(|| assert_eq!(benches::w6_hand_loop(W6_N, W6_WINDOW), expected))
    });
    group.bench_function("pump", |b| {
        b.to_async(&rt).iter(|| async {
            let out = source::iter(0..W6_N)
                .tumbling_count(nz(W6_WINDOW))
                .to(sink::fold(0u64, |total, window: pump_core::flow::window::Window<u64>| {
                    total.wrapping_add(benches::w6_window_sum(&window.items))
                }))
                .run()
                .await;
            assert_eq!(out.map(|out| out.value).ok(), Some(expected));
        })
    });
    group.finish();
}

const W5_N: u64 = 1_000_000;
/// Buffer per consumer, the same for both flavours: the mpsc channels' capacity and pump's
/// `FanOutConfig::capacity`.
const W5_CAPACITY: usize = 1024;

async fn w5_channel_sum(mut input: mpsc::Receiver<u64>) -> u64 {
    let mut sum = 0u64;
    while let Some(x) = input.recv().await {
        sum = sum.wrapping_add(x);
    }
    sum
}

fn w5_broadcast(c: &mut Criterion) {
    let rt = runtime();
    let expected = (0..W5_N).fold(0u64, u64::wrapping_add);
    let mut group = c.benchmark_group("w5_broadcast");
    group.throughput(Throughput::Elements(W5_N));
    group.sample_size(10);
    group.bench_function("channel_fanout", |b| {
        b.to_async(&rt).iter(|| async {
            // Baseline: a task per consumer, each fed by a bounded mpsc channel from a producer loop.
            let (first_tx, first_rx) = mpsc::channel::<u64>(W5_CAPACITY);
            let (second_tx, second_rx) = mpsc::channel::<u64>(W5_CAPACITY);
            let first = tokio::spawn(w5_channel_sum(first_rx));
            let second = tokio::spawn(w5_channel_sum(second_rx));
            for x in 0..W5_N {
                if first_tx.send(x).await.is_err() || second_tx.send(x).await.is_err() {
                    break;
                }
            }
            drop((first_tx, second_tx));
            assert_eq!((first.await.ok(), second.await.ok()), (Some(expected), Some(expected)));
        })
    });
    group.bench_function("pump", |b| {
        b.to_async(&rt).iter(|| async {
            let consumers = (0..2).map(|_| sink::fold(0u64, |sum, x: u64| sum.wrapping_add(x))).collect();
            let config = pump_core::fan::FanOutConfig::new(nz(W5_CAPACITY));
            let out = source::iter(0..W5_N).to(pump_core::fan::broadcast(consumers, config)).run().await;
            let sums = out.map(|out| out.value.into_iter().map(Result::ok).collect::<Vec<_>>()).ok();
            assert_eq!(sums, Some(vec![Some(expected); 2]));
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    w1_map_filter_fold,
    w2_batch,
    w3_map_async_io,
    w4_map_parallel_cpu,
    w5_broadcast,
    w6_tumbling_window
);
criterion_main!(benches);
