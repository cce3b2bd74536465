//! Fan-in (`merge`, `zip`, `concat`, `interleave`) and fan-out (`broadcast`, `balance`, `partition`):
//! their invariants as properties, and their pacing, failure and fairness behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use proptest::prelude::*;
use pump_core::fan::{self, FanOutConfig, FanOutError, FanOutPolicy};
use pump_core::prelude::*;
use pump_core::sink::SinkExt as _;
use pump_core::{StageContext, metrics::MetricsSnapshot};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn config(capacity: usize, policy: FanOutPolicy) -> FanOutConfig {
    FanOutConfig::new(nz(capacity)).with_policy(policy)
}

/// A source over `items` that yields to the executor before the elements `pauses` marks (cycled),
/// so inputs become ready in varied interleavings.
fn jittery<T: Send + 'static>(items: Vec<T>, pauses: Vec<bool>) -> impl Source<Item = T> {
    let pauses = if pauses.is_empty() { vec![false] } else { pauses };
    let stream = futures::stream::iter(items.into_iter().zip(pauses.into_iter().cycle())).then(
        |(item, pause)| async move {
            if pause {
                tokio::task::yield_now().await;
            }
            item
        },
    );
    source::from_stream(stream)
}

/// A consumer that collects, yielding to the executor on every element divisible by `modulus`, so
/// consumers run at different paces.
fn jittery_collector(modulus: u32) -> impl Sink<u32, Output = Vec<u32>> {
    flow::identity::<u32>()
        .map_async(NonZeroUsize::MIN, move |x| async move {
            if x % modulus == 0 {
                tokio::task::yield_now().await;
            }
            x
        })
        .to(sink::collect())
}

/// The fan-out's own error behind a run's error, if it is one.
fn fan_error(error: &PipelineError) -> Option<&FanOutError> {
    match error {
        PipelineError::Stage { source, .. } => source.downcast_ref::<FanOutError>(),
        _ => None,
    }
}

fn unwrap_all<R>(results: Vec<Result<R, PipelineError>>) -> Vec<R> {
    results.into_iter().map(|result| result.unwrap()).collect()
}

/// The reference for `interleave`: segments of each input in turn, an exhausted input skipped.
fn interleave_reference<T: Clone>(inputs: &[Vec<T>], segment: usize) -> Vec<T> {
    let chunks: Vec<Vec<&[T]>> = inputs.iter().map(|input| input.chunks(segment).collect()).collect();
    let rounds = chunks.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for round in 0..rounds {
        for input in &chunks {
            if let Some(chunk) = input.get(round) {
                out.extend_from_slice(chunk);
            }
        }
    }
    out
}

fn dropped(metrics: &MetricsSnapshot, stage: &str) -> u64 {
    metrics.stage(stage).unwrap().dropped
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_loses_nothing_and_keeps_each_inputs_order(
        a in prop::collection::vec(any::<u16>(), 0..60),
        b in prop::collection::vec(any::<u16>(), 0..60),
        c in prop::collection::vec(any::<u16>(), 0..60),
        pauses_a in prop::collection::vec(any::<bool>(), 1..6),
        pauses_b in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let tag = |input: u8, items: &[u16]| items.iter().map(|x| (input, *x)).collect::<Vec<_>>();
        let (ta, tb, tc) = (tag(0, &a), tag(1, &b), tag(2, &c));
        let (two, three) = runtime().block_on(async {
            let two = jittery(ta.clone(), pauses_a.clone())
                .merge(jittery(tb.clone(), pauses_b.clone()))
                .to(sink::collect())
                .run()
                .await
                .unwrap()
                .value;
            let three = fan::merge_all(vec![
                jittery(ta.clone(), pauses_a.clone()),
                jittery(tb.clone(), pauses_b.clone()),
                jittery(tc.clone(), pauses_a.clone()),
            ])
            .to(sink::collect())
            .run()
            .await
            .unwrap()
            .value;
            (two, three)
        });
        prop_assert_eq!(two.len(), a.len() + b.len());
        prop_assert_eq!(three.len(), a.len() + b.len() + c.len());
        for (input, expected) in [(0u8, &a), (1, &b), (2, &c)] {
            let own = |merged: &[(u8, u16)]| merged.iter().filter(|(tag, _)| *tag == input).map(|(_, x)| *x).collect::<Vec<_>>();
            if input < 2 {
                prop_assert_eq!(&own(&two), expected);
            }
            prop_assert_eq!(&own(&three), expected);
        }
    }

    #[test]
    fn zip_pairs_in_order_and_stops_at_the_shorter(
        a in prop::collection::vec(any::<u8>(), 0..50),
        b in prop::collection::vec(any::<i32>(), 0..50),
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let out = runtime().block_on(
            jittery(a.clone(), pauses.clone()).zip(jittery(b.clone(), pauses)).to(sink::collect()).run(),
        ).unwrap().value;
        let expected: Vec<(u8, i32)> = a.into_iter().zip(b).collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn concat_is_a_then_b(
        a in prop::collection::vec(any::<u8>(), 0..50),
        b in prop::collection::vec(any::<u8>(), 0..50),
        c in prop::collection::vec(any::<u8>(), 0..50),
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let (two, three) = runtime().block_on(async {
            let two = jittery(a.clone(), pauses.clone())
                .concat(jittery(b.clone(), pauses.clone()))
                .to(sink::collect())
                .run()
                .await
                .unwrap()
                .value;
            let three = fan::concat_all(vec![source::iter(a.clone()), source::iter(b.clone()), source::iter(c.clone())])
                .to(sink::collect())
                .run()
                .await
                .unwrap()
                .value;
            (two, three)
        });
        prop_assert_eq!(two, [a.clone(), b.clone()].concat());
        prop_assert_eq!(three, [a, b, c].concat());
    }

    #[test]
    fn interleave_matches_the_reference(
        a in prop::collection::vec(any::<u8>(), 0..50),
        b in prop::collection::vec(any::<u8>(), 0..50),
        c in prop::collection::vec(any::<u8>(), 0..50),
        segment in 1usize..6,
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let (two, three) = runtime().block_on(async {
            let two = jittery(a.clone(), pauses.clone())
                .interleave(jittery(b.clone(), pauses.clone()), nz(segment))
                .to(sink::collect())
                .run()
                .await
                .unwrap()
                .value;
            let three = fan::interleave_all(
                vec![jittery(a.clone(), pauses.clone()), jittery(b.clone(), pauses.clone()), jittery(c.clone(), pauses)],
                nz(segment),
            )
            .to(sink::collect())
            .run()
            .await
            .unwrap()
            .value;
            (two, three)
        });
        prop_assert_eq!(two, interleave_reference(&[a.clone(), b.clone()], segment));
        prop_assert_eq!(three, interleave_reference(&[a, b, c], segment));
    }

    #[test]
    fn broadcast_delivers_every_element_to_every_consumer_in_order(
        items in prop::collection::vec(any::<u32>(), 0..300),
        consumers in 1usize..5,
        capacity in 1usize..9,
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let sinks = (0..consumers).map(|index| jittery_collector(index as u32 + 2)).collect();
        let out = runtime().block_on(
            jittery(items.clone(), pauses).to(fan::broadcast(sinks, config(capacity, FanOutPolicy::FailPipeline))).run(),
        ).unwrap();
        for received in unwrap_all(out.value) {
            prop_assert_eq!(&received, &items);
        }
        let stage = out.stats.metrics.stage("fan_broadcast").unwrap();
        prop_assert_eq!(stage.elements_in, items.len() as u64);
        prop_assert_eq!(stage.elements_out, (items.len() * consumers) as u64);
        prop_assert_eq!(stage.buffer_capacity, (capacity * consumers) as u64);
    }

    #[test]
    fn broadcast_continues_without_a_consumer_that_stops_early(
        items in prop::collection::vec(any::<u32>(), 0..300),
        wanted in 0u64..40,
        capacity in 1usize..9,
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let sinks = vec![
            flow::identity::<u32>().take(wanted).to(sink::collect()).boxed(),
            jittery_collector(3).boxed(),
            sink::collect().boxed(),
        ];
        let out = runtime().block_on(
            jittery(items.clone(), pauses).to(fan::broadcast(sinks, config(capacity, FanOutPolicy::ContinueWithout))).run(),
        ).unwrap();
        let received = unwrap_all(out.value);
        let wanted = (wanted as usize).min(items.len());
        prop_assert_eq!(&received[0], &items[..wanted].to_vec());
        prop_assert_eq!(&received[1], &items);
        prop_assert_eq!(&received[2], &items);
        // Every element the early consumer did not take is accounted for.
        prop_assert_eq!(dropped(&out.stats.metrics, "fan_broadcast"), (items.len() - wanted) as u64);
    }

    #[test]
    fn balance_delivers_each_element_exactly_once(
        n_items in 0u32..400,
        consumers in 1usize..5,
        capacity in 1usize..9,
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let items: Vec<u32> = (0..n_items).collect();
        let sinks = (0..consumers).map(|index| jittery_collector(index as u32 + 2)).collect();
        let out = runtime().block_on(
            jittery(items.clone(), pauses).to(fan::balance(sinks, config(capacity, FanOutPolicy::FailPipeline))).run(),
        ).unwrap();
        let received = unwrap_all(out.value);
        for own in &received {
            // Each consumer sees its elements in input order (the items are increasing).
            prop_assert!(own.windows(2).all(|pair| pair[0] < pair[1]));
        }
        let mut all: Vec<u32> = received.into_iter().flatten().collect();
        all.sort_unstable();
        prop_assert_eq!(all, items);
    }

    #[test]
    fn partition_respects_its_function(
        items in prop::collection::vec(any::<u8>(), 0..300),
        consumers in 1usize..5,
        capacity in 1usize..9,
        pauses in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let route = move |x: &u32| *x as usize % consumers;
        let items: Vec<u32> = items.into_iter().map(u32::from).collect();
        let sinks = (0..consumers).map(|index| jittery_collector(index as u32 + 2)).collect();
        let out = runtime().block_on(
            jittery(items.clone(), pauses)
                .to(fan::partition(sinks, config(capacity, FanOutPolicy::FailPipeline), route))
                .run(),
        ).unwrap();
        for (index, own) in unwrap_all(out.value).into_iter().enumerate() {
            let expected: Vec<u32> = items.iter().copied().filter(|x| route(x) == index).collect();
            prop_assert_eq!(own, expected);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn broadcast_runs_at_the_slowest_consumers_pace() {
    const CAPACITY: u64 = 4;
    const N: u64 = 50;
    const PAUSE: Duration = Duration::from_millis(10);
    let produced = Arc::new(AtomicU64::new(0));
    let slow_taken = Arc::new(AtomicU64::new(0));
    let max_slow_lag = Arc::new(AtomicU64::new(0));
    let max_fast_lead = Arc::new(AtomicU64::new(0));

    let counter = produced.clone();
    let source = source::iter(0..N).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let (produced_seen, taken, lag) = (produced.clone(), slow_taken.clone(), max_slow_lag.clone());
    let slow = flow::identity::<u64>()
        .inspect(move |_| {
            // Produced but not yet handed to the slow consumer (this element included).
            let taken_before = taken.fetch_add(1, Ordering::SeqCst);
            lag.fetch_max(produced_seen.load(Ordering::SeqCst) - taken_before, Ordering::SeqCst);
        })
        .map_async(NonZeroUsize::MIN, |x| async move {
            tokio::time::sleep(PAUSE).await;
            x
        })
        .to(sink::count());
    let fast_taken = Arc::new(AtomicU64::new(0));
    let (slow_seen, lead) = (slow_taken.clone(), max_fast_lead.clone());
    let fast = flow::identity::<u64>()
        .inspect(move |_| {
            let fast = fast_taken.fetch_add(1, Ordering::SeqCst) + 1;
            lead.fetch_max(fast.saturating_sub(slow_seen.load(Ordering::SeqCst)), Ordering::SeqCst);
        })
        .to(sink::count());

    let started = tokio::time::Instant::now();
    let out =
        source.to(fan::broadcast2(slow, fast, FanOutConfig::new(nz(CAPACITY as usize)))).run().await.unwrap();
    let (slow_count, fast_count) = out.value;
    assert_eq!((slow_count.unwrap(), fast_count.unwrap()), (N, N));
    assert_eq!(produced.load(Ordering::SeqCst), N);
    // The source ran ahead of the slow consumer by exactly the buffer, never more.
    assert_eq!(max_slow_lag.load(Ordering::SeqCst), CAPACITY);
    assert!(max_fast_lead.load(Ordering::SeqCst) <= CAPACITY);
    assert!(started.elapsed() >= PAUSE * N as u32, "the run took the slow consumer's time");
}

#[tokio::test]
async fn a_failing_consumer_fails_the_run_under_fail_pipeline_without_hanging() {
    let failing = flow::identity::<u64>()
        .try_map(
            |x: &u64| {
                if *x == 100 { Err("consumer rejected 100") } else { Ok(*x) }
            },
            ErrorPolicy::stop(),
        )
        .to(sink::count())
        .boxed();
    // A consumer that would never finish on its own.
    let stuck = flow::identity::<u64>()
        .map_async(NonZeroUsize::MIN, |x| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            x
        })
        .to(sink::count())
        .boxed();
    let run = source::iter(0u64..).to(fan::broadcast(vec![failing, stuck], FanOutConfig::default())).run();
    let error = tokio::time::timeout(Duration::from_secs(20), run).await.expect("no hang").unwrap_err();
    match &error {
        PipelineError::Stage { stage, source } => {
            assert!(stage.ends_with("try_map"), "the consumer's own error: {error}");
            assert_eq!(source.to_string(), "consumer rejected 100");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn the_others_receive_everything_under_continue_without() {
    const N: u64 = 1000;
    let failing = flow::identity::<u64>()
        .try_map(|x: &u64| if *x == 10 { Err("bad element") } else { Ok(*x) }, ErrorPolicy::stop())
        .to(sink::collect())
        .boxed();
    let sinks = vec![failing, sink::collect().boxed(), jittery_u64_collector().boxed()];
    let out = source::iter(0..N)
        .to(fan::broadcast(sinks, config(8, FanOutPolicy::ContinueWithout)))
        .run()
        .await
        .unwrap();
    let mut results = out.value.into_iter();
    assert!(matches!(results.next(), Some(Err(PipelineError::Stage { .. }))));
    let expected: Vec<u64> = (0..N).collect();
    assert_eq!(results.next().unwrap().unwrap(), expected);
    assert_eq!(results.next().unwrap().unwrap(), expected);
    let stage = out.stats.metrics.stage("fan_broadcast").unwrap();
    assert_eq!(stage.errors, 1);
    assert!(stage.dropped > 0 && stage.dropped <= N - 10, "{stage:?}");
}

fn jittery_u64_collector() -> impl Sink<u64, Output = Vec<u64>> {
    flow::identity::<u64>()
        .map_async(NonZeroUsize::MIN, |x| async move {
            if x % 7 == 0 {
                tokio::task::yield_now().await;
            }
            x
        })
        .to(sink::collect())
}

fn exploding_consumer() -> impl Sink<u64, Output = u64> {
    flow::identity::<u64>()
        .map(|x| {
            if x == 5 {
                panic!("consumer exploded");
            }
            x
        })
        .to(sink::count())
}

#[tokio::test]
async fn a_panicking_consumer_becomes_an_error() {
    let run = source::iter(0u64..100)
        .to(fan::broadcast(vec![exploding_consumer(), exploding_consumer()], FanOutConfig::default()))
        .run();
    let error = tokio::time::timeout(Duration::from_secs(20), run).await.expect("no hang").unwrap_err();
    match error {
        PipelineError::Panicked { stage, message } => {
            assert!(stage.contains("fan_broadcast/consumer-0"), "{stage}");
            assert_eq!(message, "consumer exploded");
        }
        other => panic!("unexpected error {other:?}"),
    }

    let out = source::iter(0u64..100)
        .to(fan::broadcast2(exploding_consumer(), sink::count(), config(4, FanOutPolicy::ContinueWithout)))
        .run()
        .await
        .unwrap();
    let (exploded, counted) = out.value;
    assert!(matches!(exploded, Err(PipelineError::Panicked { .. })));
    assert_eq!(counted.unwrap(), 100);
}

#[tokio::test]
async fn a_consumer_that_stops_early_fails_the_run_under_fail_pipeline() {
    let sinks = vec![flow::identity::<u32>().take(5).to(sink::collect()).boxed(), sink::collect().boxed()];
    let error =
        source::iter(0..100u32).to(fan::broadcast(sinks, FanOutConfig::new(nz(16)))).run().await.unwrap_err();
    assert!(
        matches!(fan_error(&error), Some(FanOutError::ConsumerStopped { consumer: 0, undelivered }) if *undelivered > 0),
        "{error:?}"
    );

    // Taking exactly what there is loses nothing, so it is not stopping early.
    let sinks = vec![flow::identity::<u32>().take(5).to(sink::collect()).boxed(), sink::collect().boxed()];
    let out = source::iter(0..5u32).to(fan::broadcast(sinks, FanOutConfig::new(nz(16)))).run().await.unwrap();
    assert_eq!(unwrap_all(out.value), vec![vec![0, 1, 2, 3, 4], vec![0, 1, 2, 3, 4]]);
}

#[tokio::test]
async fn partition_out_of_range_fails_the_run_whatever_the_policy() {
    for policy in [FanOutPolicy::FailPipeline, FanOutPolicy::ContinueWithout] {
        let error = source::iter(0..10u32)
            .to(fan::partition(vec![sink::collect(), sink::collect()], config(4, policy), |x: &u32| {
                *x as usize
            }))
            .run()
            .await
            .unwrap_err();
        assert_eq!(fan_error(&error), Some(&FanOutError::PartitionOutOfRange { index: 2, consumers: 2 }));
        assert!(error.to_string().contains("fan_partition"), "the error names the fan-out's stage: {error}");
    }
}

#[tokio::test]
async fn balance_continues_without_a_failed_consumer_and_loses_nothing_it_buffered() {
    const N: u32 = 500;
    let taken = Arc::new(AtomicU64::new(0));
    let counter = taken.clone();
    let failing = flow::identity::<u32>()
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .try_map(|x: &u32| if *x == 3 { Err("no threes") } else { Ok(*x) }, ErrorPolicy::stop())
        .to(sink::collect())
        .boxed();
    let sinks = vec![failing, jittery_collector(5).boxed(), jittery_collector(7).boxed()];
    let out = source::iter(0..N)
        .to(fan::balance(sinks, config(4, FanOutPolicy::ContinueWithout)))
        .run()
        .await
        .unwrap();
    let dropped = out.stats.metrics.stage("fan_balance").unwrap().dropped;
    let mut results = out.value.into_iter();
    assert!(results.next().unwrap().is_err());
    let mut delivered: Vec<u32> = results.flat_map(Result::unwrap).collect();
    let total = delivered.len();
    delivered.sort_unstable();
    delivered.dedup();
    assert_eq!(delivered.len(), total, "no element delivered twice");
    // What the failed consumer had not taken went to the others; nothing else is missing.
    assert_eq!(delivered.len() as u64 + dropped + taken.load(Ordering::SeqCst), u64::from(N));
    assert_eq!(dropped, 0, "its buffer was handed back when it stopped");
}

#[tokio::test]
async fn merge_is_fair_between_always_ready_inputs() {
    let out = source::iter(std::iter::repeat(1u8))
        .merge(source::iter(std::iter::repeat(2u8)))
        .take(100)
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    let ones = out.value.iter().filter(|x| **x == 1).count();
    assert!((40..=60).contains(&ones), "{ones} of 100 from the first input");

    let out = fan::merge_all(vec![
        source::iter(std::iter::repeat(0u8)),
        source::iter(std::iter::repeat(1u8)),
        source::iter(std::iter::repeat(2u8)),
    ])
    .take(99)
    .to(sink::collect())
    .run()
    .await
    .unwrap();
    for input in 0..3u8 {
        assert_eq!(out.value.iter().filter(|x| **x == input).count(), 33);
    }
}

/// A source that records when it is opened.
struct Flagged {
    opened: Arc<AtomicBool>,
    items: Vec<u32>,
}

impl Source for Flagged {
    type Item = u32;
    type Stream = <source::Iter<std::vec::IntoIter<u32>> as Source>::Stream;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        self.opened.store(true, Ordering::SeqCst);
        source::iter(self.items).open(ctx)
    }
}

#[tokio::test]
async fn concat_opens_the_second_source_only_after_the_first_ended() {
    let opened = Arc::new(AtomicBool::new(false));
    let seen_open = opened.clone();
    let out = source::iter(vec![1u32, 2, 3])
        .inspect(move |_| assert!(!seen_open.load(Ordering::SeqCst), "second source opened early"))
        .concat(Flagged { opened: opened.clone(), items: vec![4, 5] })
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![1, 2, 3, 4, 5]);
    assert!(opened.load(Ordering::SeqCst));

    // A run that ends inside the first input never opens the second.
    let opened = Arc::new(AtomicBool::new(false));
    let out = source::iter(0u32..)
        .concat(Flagged { opened: opened.clone(), items: vec![1] })
        .take(10)
        .to(sink::count())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, 10);
    assert!(!opened.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_behind_an_async_boundary_run_on_their_own_tasks() {
    const N: u64 = 100_000;
    let expected: u64 = (0..N).sum();
    let threaded = flow::identity::<u64>().async_boundary(nz(16)).to(sink::fold(0u64, |sum, x| sum + x));
    let inline = sink::fold(0u64, |sum, x: u64| sum + x);
    let run = source::iter(0..N).to(fan::broadcast2(threaded, inline, FanOutConfig::new(nz(64)))).run();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("no hang").unwrap();
    let (threaded, inline) = out.value;
    assert_eq!((threaded.unwrap(), inline.unwrap()), (expected, expected));

    let sinks = (0..3)
        .map(|_| flow::identity::<u64>().async_boundary(nz(8)).to(sink::fold(0u64, |sum, x| sum + x)))
        .collect();
    let run = source::iter(0..N).to(fan::balance(sinks, FanOutConfig::new(nz(32)))).run();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("no hang").unwrap();
    assert_eq!(unwrap_all(out.value).into_iter().sum::<u64>(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_drained_broadcast_completes_with_every_consumer_equal() {
    let slow = || {
        flow::identity::<u64>()
            .map_async(NonZeroUsize::MIN, |x| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x
            })
            .to(sink::count())
    };
    let graph = source::iter(0u64..).to(fan::broadcast(vec![slow(), slow()], FanOutConfig::new(nz(8))));
    let controls = graph.controls();
    let handle = graph.spawn();
    tokio::time::sleep(Duration::from_millis(200)).await;
    controls.drain();
    let out = handle.await.unwrap();
    let counts = unwrap_all(out.value);
    assert!(counts[0] > 0);
    assert_eq!(counts[0], counts[1], "every element went to every consumer");
}

#[tokio::test(start_paused = true)]
async fn an_aborted_fan_out_ends_with_aborted() {
    let slow = || {
        flow::identity::<u64>()
            .map_async(NonZeroUsize::MIN, |x| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x
            })
            .to(sink::count())
    };
    let graph = source::iter(0u64..).to(fan::balance(vec![slow(), slow()], FanOutConfig::new(nz(8))));
    let handle = graph.spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.abort();
    assert!(matches!(handle.await, Err(PipelineError::Aborted)));
}

fn mapped_counter() -> impl Sink<u32, Output = u64> {
    flow::identity::<u32>().map(|x| x + 1).to(sink::count())
}

#[tokio::test]
async fn fan_out_stages_and_consumers_appear_in_the_metrics() {
    let out = source::iter(0..1000u32)
        .to(fan::partition(vec![mapped_counter(), mapped_counter()], FanOutConfig::new(nz(8)), |x: &u32| {
            usize::from(x.is_multiple_of(4))
        }))
        .run()
        .await
        .unwrap();
    assert_eq!(unwrap_all(out.value), vec![750, 250]);
    let metrics = &out.stats.metrics;
    let stage = metrics.stage("fan_partition").unwrap();
    assert_eq!(
        (stage.elements_in, stage.elements_out, stage.buffer_capacity, stage.dropped),
        (1000, 1000, 16, 0)
    );
    assert_eq!(metrics.stages.iter().filter(|stage| stage.name.ends_with(":count")).count(), 2);
    assert_eq!(metrics.stages.iter().filter(|stage| stage.name.ends_with(":map")).count(), 2);
}

#[tokio::test]
async fn fan_in_works_inside_a_flow() {
    let section = flow::identity::<u32>().map(|x| x * 10).concat(source::iter(vec![7u32]));
    let out = source::iter(1..=2u32).via(section).to(sink::collect()).run().await.unwrap();
    assert_eq!(out.value, vec![10, 20, 7]);

    let section = flow::identity::<u32>().zip(source::iter(["a", "b", "c"]));
    let out = source::iter(1..=2u32).via(section).to(sink::collect()).run().await.unwrap();
    assert_eq!(out.value, vec![(1, "a"), (2, "b")]);
}
