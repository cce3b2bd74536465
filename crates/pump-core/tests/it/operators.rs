//! Properties of every operator and sink, each checked against the equivalent `std` iterator computation.
//!
//! Each case builds its own two-worker tokio runtime. Async operators get futures that yield a
//! pseudo-random number of times before finishing, so they complete out of input order and the
//! ordering promises are really exercised.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use pump_core::flow::BoxFlow;
use pump_core::prelude::*;
use pump_core::{BatchProcessor, Failure, FlowExt};

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// A pseudo-random number of yields in `0..8`, derived from the element and a per-case salt, so that
/// futures started in input order finish in another order.
fn yields_for(x: u64, salt: u64) -> u64 {
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt).rotate_left(17) % 8
}

async fn yield_times(n: u64) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

fn stage_counts(stats: &pump_core::RunStats, operator: &str) -> (u64, u64) {
    let stage = stats.metrics.stage(operator).unwrap_or_else(|| panic!("no stage {operator}"));
    (stage.elements_in, stage.elements_out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn map_equals_iterator_map(input in vec(any::<u32>(), 0..300)) {
        let expected: Vec<u32> = input.iter().map(|x| x.wrapping_mul(3) ^ 5).collect();
        let outcome = block_on(source::iter(input.clone()).map(|x| x.wrapping_mul(3) ^ 5).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
        prop_assert_eq!(stage_counts(&outcome.stats, "map"), (input.len() as u64, input.len() as u64));
    }

    #[test]
    fn filter_equals_iterator_filter(input in vec(any::<u32>(), 0..300), divisor in 1u32..5) {
        let expected: Vec<u32> = input.iter().copied().filter(|x| x % divisor == 0).collect();
        let outcome = block_on(source::iter(input.clone()).filter(move |x| x % divisor == 0).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(stage_counts(&outcome.stats, "filter"), (input.len() as u64, expected.len() as u64));
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn filter_map_equals_iterator_filter_map(input in vec(any::<u8>(), 0..300), threshold in any::<u8>()) {
        let expected: Vec<u8> = input.iter().filter_map(|x| x.checked_sub(threshold)).collect();
        let outcome =
            block_on(source::iter(input).filter_map(move |x| x.checked_sub(threshold)).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn flat_map_equals_iterator_flat_map(input in vec(any::<u16>(), 0..200)) {
        let expand = |x: u16| vec![x; usize::from(x % 4)];
        let expected: Vec<u16> = input.iter().copied().flat_map(expand).collect();
        let outcome = block_on(source::iter(input).flat_map(expand).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn inspect_sees_every_element_in_order_and_changes_nothing(input in vec(any::<i64>(), 0..300)) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let outcome = block_on(
            source::iter(input.clone()).inspect(move |x| log.lock().unwrap().push(*x)).to(sink::collect()).run(),
        )
        .unwrap();
        prop_assert_eq!(&outcome.value, &input);
        prop_assert_eq!(&*seen.lock().unwrap(), &input);
    }

    #[test]
    fn scan_equals_iterator_scan(input in vec(0u32..1000, 0..300), limit in 0u64..100_000) {
        let step = move |total: &mut u64, x: u32| {
            *total += u64::from(x);
            (*total <= limit).then_some(*total)
        };
        let expected: Vec<u64> = input.iter().copied().scan(0u64, |total, x| step(total, x)).collect();
        let outcome = block_on(source::iter(input).scan(0u64, step).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn take_equals_iterator_take(input in vec(any::<u32>(), 0..300), n in 0u64..400) {
        let expected: Vec<u32> = input.iter().copied().take(n as usize).collect();
        let outcome = block_on(source::iter(input).take(n).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn skip_equals_iterator_skip(input in vec(any::<u32>(), 0..300), n in 0u64..400) {
        let expected: Vec<u32> = input.iter().copied().skip(n as usize).collect();
        let outcome = block_on(source::iter(input).skip(n).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn take_while_equals_iterator_take_while(input in vec(0u32..100, 0..300), bound in 0u32..100) {
        let expected: Vec<u32> = input.iter().copied().take_while(|x| *x < bound).collect();
        let outcome = block_on(source::iter(input).take_while(move |x| *x < bound).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn skip_while_equals_iterator_skip_while(input in vec(0u32..100, 0..300), bound in 0u32..100) {
        let expected: Vec<u32> = input.iter().copied().skip_while(|x| *x < bound).collect();
        let outcome = block_on(source::iter(input).skip_while(move |x| *x < bound).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn dedup_by_key_equals_vec_dedup_by_key(input in vec(0u32..16, 0..300)) {
        let mut expected = input.clone();
        expected.dedup_by_key(|x| *x / 4);
        let outcome = block_on(source::iter(input).dedup_by_key(|x| *x / 4).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn map_async_keeps_input_order(input in vec(any::<u64>(), 0..200), parallelism in 1usize..9, salt in any::<u64>()) {
        let expected: Vec<u64> = input.iter().map(|x| x.wrapping_add(1)).collect();
        let outcome = block_on(
            source::iter(input)
                .map_async(nz(parallelism), move |x| async move {
                    yield_times(yields_for(x, salt)).await;
                    x.wrapping_add(1)
                })
                .to(sink::collect())
                .run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn map_async_unordered_emits_the_same_multiset(
        input in vec(any::<u64>(), 0..200),
        parallelism in 1usize..9,
        salt in any::<u64>(),
    ) {
        let mut expected: Vec<u64> = input.iter().map(|x| x.wrapping_add(1)).collect();
        let outcome = block_on(
            source::iter(input)
                .map_async_unordered(nz(parallelism), move |x| async move {
                    yield_times(yields_for(x, salt)).await;
                    x.wrapping_add(1)
                })
                .to(sink::collect())
                .run(),
        )
        .unwrap();
        let mut actual = outcome.value;
        actual.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn map_async_partitioned_keeps_order_per_key(
        keys in vec(0u8..6, 0..200),
        parallelism in 1usize..6,
        salt in any::<u64>(),
    ) {
        // Each element is (key, position in the input), so per-key order is visible in the output.
        let input: Vec<(u8, u64)> = keys.iter().copied().zip(0u64..).collect();
        let outcome = block_on(
            source::iter(input.clone())
                .map_async_partitioned(nz(parallelism), |pair: &(u8, u64)| pair.0, move |pair| async move {
                    yield_times(yields_for(pair.1, salt)).await;
                    pair
                })
                .to(sink::collect())
                .run(),
        )
        .unwrap();
        let per_key = |pairs: &[(u8, u64)]| {
            let mut by_key: HashMap<u8, Vec<u64>> = HashMap::new();
            for (key, position) in pairs {
                by_key.entry(*key).or_default().push(*position);
            }
            by_key
        };
        prop_assert_eq!(per_key(&outcome.value), per_key(&input));
        let mut actual = outcome.value;
        let mut expected = input;
        actual.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn map_blocking_keeps_input_order(input in vec(any::<u32>(), 0..2000), parallelism in 1usize..4) {
        let expected: Vec<u64> = input.iter().map(|x| u64::from(*x) * 3 + 1).collect();
        let outcome =
            block_on(source::iter(input).map_blocking(nz(parallelism), |x| u64::from(x) * 3 + 1).to(sink::collect()).run())
                .unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    /// Uneven work per element makes chunks finish out of order on the workers; the output order
    /// must still be the input order.
    #[test]
    fn map_blocking_keeps_input_order_when_chunks_finish_out_of_order(
        input in vec(0u32..64, 0..3000),
        parallelism in 2usize..5,
    ) {
        fn uneven(x: u32) -> u64 {
            (0..u64::from(x) * 200).fold(u64::from(x), |acc, i| acc.rotate_left(5) ^ i)
        }
        let expected: Vec<u64> = input.iter().map(|x| uneven(*x)).collect();
        let outcome =
            block_on(source::iter(input).map_blocking(nz(parallelism), uneven).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn batch_of_a_ready_source_is_exactly_the_chunks(input in vec(any::<u32>(), 0..600), max_size in 1usize..40) {
        // A source that is always ready never lets the (long) timer fire: every batch but the last is full.
        let expected: Vec<Vec<u32>> = input.chunks(max_size).map(<[u32]>::to_vec).collect();
        let outcome = block_on(
            source::iter(input).batch(nz(max_size), Duration::from_secs(3600)).to(sink::collect()).run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn batch_under_timer_pressure_loses_nothing_and_respects_its_bound(
        input in vec(any::<u64>(), 0..300),
        max_size in 1usize..20,
        salt in any::<u64>(),
    ) {
        // An upstream that stalls at random and a zero wait: batches are cut by the timer, at any size.
        let outcome = block_on(
            source::iter(input.clone())
                .map_async(nz(4), move |x| async move {
                    yield_times(yields_for(x, salt)).await;
                    x
                })
                .batch(nz(max_size), Duration::ZERO)
                .to(sink::collect())
                .run(),
        )
        .unwrap();
        let batches: Vec<Vec<u64>> = outcome.value;
        for batch in &batches {
            prop_assert!(!batch.is_empty(), "an empty batch was emitted");
            prop_assert!(batch.len() <= max_size, "a batch of {} exceeds {}", batch.len(), max_size);
        }
        prop_assert_eq!(batches.concat(), input);
    }

    #[test]
    fn unbatch_equals_iterator_flatten(input in vec(vec(any::<u16>(), 0..10), 0..60)) {
        let expected: Vec<u16> = input.iter().flatten().copied().collect();
        let outcome = block_on(source::iter(input).unbatch().to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn batch_then_unbatch_is_the_identity(input in vec(any::<u32>(), 0..600), max_size in 1usize..40) {
        let outcome = block_on(
            source::iter(input.clone()).batch(nz(max_size), Duration::from_millis(1)).unbatch().to(sink::collect()).run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, input);
    }

    #[test]
    fn try_map_with_resume_splits_oks_and_dead_letters(input in vec(any::<u32>(), 0..300), divisor in 1u32..6) {
        let fallible = move |x: &u32| if x.is_multiple_of(divisor) { Err(format!("{x} is divisible")) } else { Ok(u64::from(*x) * 2) };
        let expected_ok: Vec<u64> = input.iter().filter_map(|x| fallible(x).ok()).collect();
        let expected_failed: Vec<u32> = input.iter().copied().filter(|x| fallible(x).is_err()).collect();
        let letters = Arc::new(Mutex::new(Vec::new()));
        let sink_of_letters = Arc::clone(&letters);
        let dead_letters = DeadLetters::callback(move |letter: DeadLetter<u32, String>| {
            sink_of_letters.lock().unwrap().push(letter);
        });
        let outcome =
            block_on(source::iter(input).try_map(fallible, ErrorPolicy::resume(dead_letters)).to(sink::collect()).run())
                .unwrap();
        prop_assert_eq!(outcome.value, expected_ok);
        let letters = std::mem::take(&mut *letters.lock().unwrap());
        let failed: Vec<u32> = letters.iter().map(|letter| letter.element).collect();
        prop_assert_eq!(&failed, &expected_failed);
        for letter in &letters {
            prop_assert!(
                matches!(&letter.error, Failure::Error(message) if *message == format!("{} is divisible", letter.element)),
                "wrong error {:?}", letter.error
            );
            prop_assert_eq!(letter.attempts, 1);
        }
        let stage = outcome.stats.metrics.stage("try_map").unwrap();
        prop_assert_eq!(stage.errors, expected_failed.len() as u64);
        prop_assert_eq!(stage.dropped, expected_failed.len() as u64);
    }

    #[test]
    fn try_map_async_with_resume_splits_oks_and_dead_letters(
        input in vec(any::<u32>(), 0..200),
        divisor in 1u32..6,
        parallelism in 1usize..9,
        salt in any::<u64>(),
    ) {
        let expected_ok: Vec<u32> = input.iter().copied().filter(|x| x % divisor != 0).collect();
        let expected_failed: Vec<u32> = input.iter().copied().filter(|x| x % divisor == 0).collect();
        let letters = Arc::new(Mutex::new(Vec::new()));
        let sink_of_letters = Arc::clone(&letters);
        let dead_letters = DeadLetters::callback(move |letter: DeadLetter<u32, String>| {
            sink_of_letters.lock().unwrap().push(letter.element);
        });
        let outcome = block_on(
            source::iter(input)
                .try_map_async(
                    nz(parallelism),
                    move |x| async move {
                        yield_times(yields_for(u64::from(x), salt)).await;
                        if x % divisor == 0 { Err(format!("{x} is divisible")) } else { Ok(x) }
                    },
                    ErrorPolicy::resume(dead_letters),
                )
                .to(sink::collect())
                .run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, expected_ok);
        prop_assert_eq!(&*letters.lock().unwrap(), &expected_failed);
        let stage = outcome.stats.metrics.stage("try_map_async").unwrap();
        prop_assert_eq!(stage.errors, expected_failed.len() as u64);
        prop_assert_eq!(stage.dropped, expected_failed.len() as u64);
    }

    #[test]
    fn async_boundary_loses_nothing_and_keeps_order(
        input in vec(any::<u32>(), 0..2000),
        capacity in 1usize..16,
        salt in any::<u64>(),
    ) {
        // The consumer after the boundary stalls at random, so the buffer fills and backpressure acts.
        let outcome = block_on(
            source::iter(input.clone())
                .map(|x| x ^ 0xABCD)
                .async_boundary(nz(capacity))
                .map_async(nz(2), move |x| async move {
                    yield_times(yields_for(u64::from(x), salt)).await;
                    x ^ 0xABCD
                })
                .to(sink::collect())
                .run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, input);
        let boundary = outcome.stats.metrics.stage("async_boundary").unwrap();
        prop_assert_eq!(boundary.dropped, 0);
    }

    #[test]
    fn buffer_with_backpressure_loses_nothing_and_keeps_order(input in vec(any::<u32>(), 0..2000), capacity in 1usize..16) {
        let outcome = block_on(
            source::iter(input.clone()).buffer(nz(capacity), OverflowStrategy::Backpressure).to(sink::collect()).run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, input);
    }

    #[test]
    fn fold_sees_every_element_in_order(input in vec(any::<u32>(), 0..300)) {
        let outcome = block_on(
            source::iter(input.clone())
                .to(sink::fold(Vec::new(), |mut seen: Vec<u32>, x| {
                    seen.push(x);
                    seen
                }))
                .run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, input);
    }

    #[test]
    fn reduce_equals_iterator_reduce(input in vec(any::<u64>(), 0..300)) {
        // Not commutative, so the order of the reduction shows.
        let combine = |a: u64, b: u64| a.wrapping_mul(31).wrapping_add(b);
        let expected = input.iter().copied().reduce(combine);
        let outcome = block_on(source::iter(input).to(sink::reduce(combine)).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn collect_and_count_agree_with_the_input(input in vec(any::<u8>(), 0..500)) {
        let collected = block_on(source::iter(input.clone()).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(&collected.value, &input);
        let counted = block_on(source::iter(input.clone()).to(sink::count()).run()).unwrap();
        prop_assert_eq!(counted.value, input.len() as u64);
        prop_assert_eq!(stage_counts(&counted.stats, "count").0, input.len() as u64);
    }

    #[test]
    fn for_each_sees_every_element_in_order(input in vec(any::<u32>(), 0..300)) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        block_on(source::iter(input.clone()).to(sink::for_each(move |x| log.lock().unwrap().push(x))).run()).unwrap();
        prop_assert_eq!(&*seen.lock().unwrap(), &input);
    }

    #[test]
    fn for_each_async_sees_every_element_once(
        input in vec(any::<u64>(), 0..200),
        parallelism in 1usize..9,
        salt in any::<u64>(),
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        block_on(
            source::iter(input.clone())
                .to(sink::for_each_async(nz(parallelism), move |x| {
                    let log = Arc::clone(&log);
                    async move {
                        yield_times(yields_for(x, salt)).await;
                        log.lock().unwrap().push(x);
                    }
                }))
                .run(),
        )
        .unwrap();
        let mut actual = std::mem::take(&mut *seen.lock().unwrap());
        let mut expected = input;
        actual.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn composed_flows_equal_the_composed_iterator(input in vec(any::<i32>(), 0..300), modulus in 1i32..7) {
        let expected: Vec<i64> = input
            .iter()
            .filter(|x| *x % modulus == 0)
            .map(|x| i64::from(*x) * 2)
            .flat_map(|x| [x, -x])
            .collect();
        let keep = flow::identity::<i32>().filter(move |x| x % modulus == 0);
        let widen = flow::identity::<i32>().map(|x| i64::from(x) * 2);
        let mirror = flow::identity::<i64>().flat_map(|x| [x, -x]);
        let outcome = block_on(source::iter(input).via(keep.via(widen).via(mirror)).to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn flow_to_sink_equals_the_iterator(input in vec(0u64..1000, 0..300)) {
        let expected: u64 = input.iter().map(|x| x * x).sum();
        let sum_of_squares = flow::identity::<u64>().map(|x| x * x).to(sink::fold(0u64, |sum, x| sum + x));
        let outcome = block_on(source::iter(input).to(sum_of_squares).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn boxed_flows_chosen_at_run_time_equal_the_iterator(
        input in vec(any::<i32>(), 0..300),
        steps in vec(0u8..4, 0..6),
    ) {
        // Each step number picks a flow, as a configuration file would.
        let apply = |values: Vec<i32>, step: u8| -> Vec<i32> {
            match step {
                0 => values.into_iter().map(|x| x.wrapping_add(7)).collect(),
                1 => values.into_iter().filter(|x| x % 3 != 0).collect(),
                2 => values.into_iter().flat_map(|x| [x, x / 2]).collect(),
                _ => values.into_iter().skip(1).collect(),
            }
        };
        let expected = steps.iter().fold(input.clone(), |values, step| apply(values, *step));
        let flows: Vec<BoxFlow<i32, i32>> = steps
            .iter()
            .map(|step| match step {
                0 => flow::identity::<i32>().map(|x| x.wrapping_add(7)).boxed(),
                1 => flow::identity::<i32>().filter(|x| x % 3 != 0).boxed(),
                2 => flow::identity::<i32>().flat_map(|x| [x, x / 2]).boxed(),
                _ => flow::identity::<i32>().skip(1).boxed(),
            })
            .collect();
        let mut source = source::iter(input).boxed();
        for step in flows {
            source = source.via(step).boxed();
        }
        let outcome = block_on(source.to(sink::collect()).run()).unwrap();
        prop_assert_eq!(outcome.value, expected);
    }

    #[test]
    fn batch_processor_equals_the_iterator(input in vec(any::<i64>(), 0..300), parallelism in 1usize..5) {
        let expected: Vec<i64> = input.iter().filter(|x| **x >= 0).map(|x| x / 2).collect();
        let validate = flow::identity::<i64>().filter(|x| *x >= 0).boxed();
        let process = flow::identity::<i64>().map_async(nz(parallelism), |x| async move { x / 2 });
        let outcome = block_on(
            BatchProcessor::named("property")
                .with_source(source::iter(input))
                .with_flow(validate)
                .with_flow(process)
                .with_sink(sink::collect())
                .run(),
        )
        .unwrap();
        prop_assert_eq!(outcome.value, expected);
    }
}

/// `MapBlocking::max_chunk` bounds what the stage hands out: at most 2 × parallelism chunks of at
/// most `max_chunk` elements are pulled and not yet processed, even when upstream is always ready
/// and the work is cheap (which alone would make chunks of thousands).
#[test]
fn map_blocking_max_chunk_bounds_the_elements_in_flight() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let pulled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let most_in_flight = Arc::new(AtomicU64::new(0));
    let (counter, processed, most) = (Arc::clone(&pulled), Arc::clone(&done), Arc::clone(&most_in_flight));
    let outcome = block_on(
        source::iter(0..20_000u64)
            .map(move |x| {
                counter.fetch_add(1, Ordering::SeqCst);
                x
            })
            .via(
                pump_core::flow::MapBlocking::new(nz(2), move |x: u64| {
                    let in_flight = pulled.load(Ordering::SeqCst) - processed.fetch_add(1, Ordering::SeqCst);
                    most.fetch_max(in_flight, Ordering::SeqCst);
                    x + 1
                })
                .max_chunk(nz(5)),
            )
            .to(sink::fold(0u64, |sum, x| sum + x))
            .run(),
    )
    .unwrap();
    assert_eq!(outcome.value, (1..=20_000u64).sum::<u64>());
    assert_eq!(done.load(Ordering::SeqCst), 20_000);
    let most = most_in_flight.load(Ordering::SeqCst);
    assert!((1..=2 * 2 * 5).contains(&most), "{most} elements in flight, bound 20");
}
