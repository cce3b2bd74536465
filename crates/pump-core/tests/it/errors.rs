//! Failures: panics become errors (never hangs), retries with backoff, dead letters, and what a full
//! buffer does under each overflow strategy.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pump_core::prelude::*;
use pump_core::{Failure, RunOutcome};
use tokio::time::Instant;

/// A panic that hangs the pipeline fails the test here instead of hanging the test binary.
const HANG_LIMIT: Duration = Duration::from_secs(10);

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

async fn within_limit<T>(run: impl Future<Output = Result<T, PipelineError>>) -> Result<T, PipelineError> {
    tokio::time::timeout(HANG_LIMIT, run).await.expect("the pipeline hung instead of failing")
}

/// Checks that `result` is a panic error whose stage name ends with `stage_suffix` and whose message
/// is the user's panic message.
fn assert_panicked<T: fmt::Debug>(result: Result<T, PipelineError>, stage_suffix: &str, message_part: &str) {
    match result {
        Err(PipelineError::Panicked { stage, message }) => {
            assert!(stage.ends_with(stage_suffix), "panic attributed to {stage}, expected *{stage_suffix}");
            assert!(message.contains(message_part), "panic message {message:?} lacks {message_part:?}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
}

// ----- Panics ----------------------------------------------------------------------------------

#[tokio::test]
async fn panic_in_map_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..100)
            .map(|x| if x == 42 { panic!("map gave up at {x}") } else { x })
            .to(sink::collect())
            .run(),
    )
    .await;
    // A fused stage runs on the driver, which catches the panic for the whole pipeline.
    assert_panicked(result, "pipeline", "map gave up at 42");
}

#[tokio::test]
async fn panic_in_a_map_async_future_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..100)
            .map_async(nz(4), |x| async move {
                tokio::task::yield_now().await;
                assert!(x != 42, "future gave up at {x}");
                x
            })
            .to(sink::collect())
            .run(),
    )
    .await;
    assert_panicked(result, "1:map_async", "future gave up at 42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_map_blocking_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..10_000)
            .map_blocking(nz(2), |x| {
                assert!(x != 4321, "blocking work gave up at {x}");
                x
            })
            .to(sink::count())
            .run(),
    )
    .await;
    assert_panicked(result, "1:map_blocking", "blocking work gave up at 4321");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_upstream_of_an_async_boundary_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..)
            .map(|x| {
                assert!(x != 5000, "upstream gave up at {x}");
                x
            })
            .async_boundary(nz(8))
            .to(sink::count())
            .run(),
    )
    .await;
    assert_panicked(result, "2:async_boundary", "upstream gave up at 5000");
}

#[tokio::test]
async fn panic_in_for_each_async_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..100)
            .to(sink::for_each_async(nz(3), |x| async move {
                tokio::task::yield_now().await;
                assert!(x != 42, "sink gave up at {x}");
            }))
            .run(),
    )
    .await;
    assert_panicked(result, "for_each_async", "sink gave up at 42");
}

#[tokio::test]
async fn panic_in_a_fold_sink_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..100)
            .to(sink::fold(0u32, |sum, x| {
                assert!(x != 42, "fold gave up at {x}");
                sum + x
            }))
            .run(),
    )
    .await;
    assert_panicked(result, "pipeline", "fold gave up at 42");
}

/// In `try_map` a panic is a failure of that element: under `resume` it is a dead letter
/// (`Failure::Panicked`) and the other elements go on.
#[tokio::test]
async fn panic_in_try_map_is_a_dead_letter_under_resume() {
    let (dead_letters, mut rejected) = DeadLetters::channel(8);
    let outcome = within_limit(
        source::iter(0u32..10)
            .try_map(
                |x| {
                    assert!(*x != 3, "cannot parse {x}");
                    Ok::<u32, String>(*x * 10)
                },
                ErrorPolicy::resume(dead_letters),
            )
            .to(sink::collect())
            .run(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.value, vec![0, 10, 20, 40, 50, 60, 70, 80, 90]);
    let letter = rejected.recv().await.unwrap();
    assert_eq!(letter.element, 3);
    assert!(
        matches!(&letter.error, Failure::Panicked(message) if message.contains("cannot parse 3")),
        "{:?}",
        letter.error
    );
    assert_eq!(letter.attempts, 1);
    assert!(rejected.recv().await.is_none(), "only one element failed");
    let stage = outcome.stats.metrics.stage("try_map").unwrap();
    assert_eq!((stage.errors, stage.dropped), (1, 1));
}

#[tokio::test]
async fn panic_in_try_map_async_is_a_dead_letter_under_resume() {
    let (dead_letters, mut rejected) = DeadLetters::channel(8);
    let outcome = within_limit(
        source::iter(0u32..10)
            .try_map_async(
                nz(3),
                |x| async move {
                    tokio::task::yield_now().await;
                    assert!(x != 3, "cannot fetch {x}");
                    Ok::<u32, String>(x)
                },
                ErrorPolicy::resume(dead_letters),
            )
            .to(sink::collect())
            .run(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.value, vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
    let letter = rejected.recv().await.unwrap();
    assert_eq!(letter.element, 3);
    assert!(
        matches!(&letter.error, Failure::Panicked(message) if message.contains("cannot fetch 3")),
        "{:?}",
        letter.error
    );
    let stage = outcome.stats.metrics.stage("try_map_async").unwrap();
    assert_eq!((stage.errors, stage.dropped), (1, 1));
}

/// Under `stop`, a panic in `try_map` fails the run naming the stage.
#[tokio::test]
async fn panic_in_try_map_under_stop_fails_the_run() {
    let result = within_limit(
        source::iter(0u32..10)
            .try_map(
                |x| {
                    assert!(*x != 3, "cannot parse {x}");
                    Ok::<u32, String>(*x)
                },
                ErrorPolicy::stop(),
            )
            .to(sink::collect())
            .run(),
    )
    .await;
    assert_panicked(result, "1:try_map", "cannot parse 3");
}

// ----- Retries ---------------------------------------------------------------------------------

/// Counts calls per element; `fail_first` calls of each element fail.
#[derive(Clone, Default)]
struct Flaky {
    calls: Arc<Mutex<HashMap<u32, u32>>>,
}

impl Flaky {
    fn call(&self, x: u32, fail_first: u32) -> Result<u32, String> {
        let mut calls = self.calls.lock().unwrap();
        let attempt = calls.entry(x).or_insert(0);
        *attempt += 1;
        if *attempt <= fail_first { Err(format!("attempt {attempt} on {x} failed")) } else { Ok(x) }
    }

    fn calls_per_element(&self) -> HashMap<u32, u32> {
        self.calls.lock().unwrap().clone()
    }
}

fn every_element_called(n_elements: u32, times: u32) -> HashMap<u32, u32> {
    (0..n_elements).map(|x| (x, times)).collect()
}

const FAILURES: u32 = 3;
const ELEMENTS: u32 = 20;

fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::exponential(max_attempts, Duration::from_millis(10)).with_jitter(0.0)
}

#[tokio::test(start_paused = true)]
async fn flaky_try_map_async_is_called_failures_plus_one_times() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let outcome = source::iter(0..ELEMENTS)
        .try_map_async(
            nz(4),
            move |x| {
                let result = calls.call(x, FAILURES);
                async move {
                    tokio::task::yield_now().await;
                    result
                }
            },
            ErrorPolicy::stop().with_retry(quick_retries(FAILURES + 1)),
        )
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.value, (0..ELEMENTS).collect::<Vec<_>>());
    assert_eq!(flaky.calls_per_element(), every_element_called(ELEMENTS, FAILURES + 1));
    let stage = outcome.stats.metrics.stage("try_map_async").unwrap();
    assert_eq!(stage.retried, u64::from(FAILURES * ELEMENTS));
    assert_eq!((stage.errors, stage.dropped), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn flaky_try_map_is_called_failures_plus_one_times() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let outcome = source::iter(0..ELEMENTS)
        .try_map(
            move |x| calls.call(*x, FAILURES),
            ErrorPolicy::stop().with_retry(quick_retries(FAILURES + 1)),
        )
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.value, (0..ELEMENTS).collect::<Vec<_>>());
    assert_eq!(flaky.calls_per_element(), every_element_called(ELEMENTS, FAILURES + 1));
    let stage = outcome.stats.metrics.stage("try_map").unwrap();
    assert_eq!(stage.retried, u64::from(FAILURES * ELEMENTS));
    assert_eq!((stage.errors, stage.dropped), (0, 0));
}

/// With fewer attempts than the element needs, it goes to the dead letters after exactly
/// `max_attempts` calls.
#[tokio::test(start_paused = true)]
async fn exhausted_retries_send_the_element_to_dead_letters_under_resume() {
    let max_attempts = FAILURES - 1;
    for asynchronous in [false, true] {
        let flaky = Flaky::default();
        let calls = flaky.clone();
        let (dead_letters, mut rejected) = DeadLetters::channel(ELEMENTS as usize);
        let policy = ErrorPolicy::resume(dead_letters).with_retry(quick_retries(max_attempts));
        let source = source::iter(0..ELEMENTS);
        let outcome: RunOutcome<Vec<u32>> = if asynchronous {
            source
                .try_map_async(nz(4), move |x| std::future::ready(calls.call(x, FAILURES)), policy)
                .to(sink::collect())
                .run()
                .await
                .unwrap()
        } else {
            source.try_map(move |x| calls.call(*x, FAILURES), policy).to(sink::collect()).run().await.unwrap()
        };
        assert!(outcome.value.is_empty());
        assert_eq!(flaky.calls_per_element(), every_element_called(ELEMENTS, max_attempts));
        let mut letters = Vec::new();
        while let Ok(letter) = rejected.try_recv() {
            letters.push(letter);
        }
        assert_eq!(
            letters.iter().map(|letter| letter.element).collect::<Vec<_>>(),
            (0..ELEMENTS).collect::<Vec<_>>()
        );
        for letter in &letters {
            assert_eq!(letter.attempts, max_attempts);
            assert_eq!(
                letter.error.to_string(),
                format!("attempt {max_attempts} on {} failed", letter.element)
            );
        }
        let operator = if asynchronous { "try_map_async" } else { "try_map" };
        let stage = outcome.stats.metrics.stage(operator).unwrap();
        assert_eq!(stage.retried, u64::from((max_attempts - 1) * ELEMENTS));
        assert_eq!((stage.errors, stage.dropped), (u64::from(ELEMENTS), u64::from(ELEMENTS)));
    }
}

/// With fewer attempts than the element needs, `stop` fails the run with the last error.
#[tokio::test(start_paused = true)]
async fn exhausted_retries_fail_the_run_under_stop() {
    let max_attempts = FAILURES - 1;
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let result = source::iter(0..ELEMENTS)
        .try_map_async(
            nz(1),
            move |x| std::future::ready(calls.call(x, FAILURES)),
            ErrorPolicy::stop().with_retry(quick_retries(max_attempts)),
        )
        .to(sink::collect())
        .run()
        .await;
    let Err(PipelineError::Stage { stage, source }) = result else {
        panic!("expected a stage error, got {result:?}");
    };
    assert_eq!(&*stage, "1:try_map_async");
    assert_eq!(source.to_string(), format!("attempt {max_attempts} on 0 failed"));
    assert_eq!(flaky.calls_per_element().get(&0), Some(&max_attempts));
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FetchError {
    Timeout,
    NotFound,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FetchError::Timeout => "timed out",
            FetchError::NotFound => "not found",
        })
    }
}

impl std::error::Error for FetchError {}

/// `retry_if` retries only the errors it accepts: a `NotFound` is given up at once, a `Timeout` is
/// retried.
#[tokio::test(start_paused = true)]
async fn retry_if_prevents_retries_of_non_retryable_errors() {
    let calls: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let counter = Arc::clone(&calls);
    let fetch = move |x: &u32| {
        let mut calls = counter.lock().unwrap();
        let attempt = calls.entry(*x).or_insert(0);
        *attempt += 1;
        match (x % 2, *attempt) {
            (1, _) => Err(FetchError::NotFound),
            (_, 1) => Err(FetchError::Timeout),
            _ => Ok(*x),
        }
    };
    let letters = Arc::new(Mutex::new(Vec::new()));
    let letter_log = Arc::clone(&letters);
    let policy = ErrorPolicy::resume(DeadLetters::callback(move |letter: DeadLetter<u32, FetchError>| {
        letter_log.lock().unwrap().push(letter);
    }))
    .with_retry(quick_retries(5))
    .retry_if(|error| *error == FetchError::Timeout);
    let outcome = source::iter(0u32..10).try_map(fetch, policy).to(sink::collect()).run().await.unwrap();

    assert_eq!(outcome.value, vec![0, 2, 4, 6, 8]);
    let calls = calls.lock().unwrap().clone();
    let expected_calls: HashMap<u32, u32> = (0..10).map(|x| (x, if x % 2 == 1 { 1 } else { 2 })).collect();
    assert_eq!(calls, expected_calls);
    let letters = std::mem::take(&mut *letters.lock().unwrap());
    assert_eq!(letters.iter().map(|letter| letter.element).collect::<Vec<_>>(), vec![1, 3, 5, 7, 9]);
    assert!(
        letters.iter().all(
            |letter| letter.attempts == 1 && matches!(letter.error, Failure::Error(FetchError::NotFound))
        )
    );
    let stage = outcome.stats.metrics.stage("try_map").unwrap();
    assert_eq!(stage.retried, 5);
    assert_eq!((stage.errors, stage.dropped), (5, 5));
}

/// With `exponential(4, 100ms)` and no jitter the attempts happen at 0, 100, 300 and 700 ms.
#[tokio::test(start_paused = true)]
async fn retry_backoff_is_exponential() {
    let expected: Vec<Duration> = [0, 100, 300, 700].into_iter().map(Duration::from_millis).collect();
    let policy = || {
        ErrorPolicy::resume(DeadLetters::discard())
            .with_retry(RetryPolicy::exponential(4, Duration::from_millis(100)).with_jitter(0.0))
    };

    let started = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&attempts);
    let outcome = source::iter([1u32])
        .try_map_async(
            nz(1),
            move |_x| {
                log.lock().unwrap().push(started.elapsed());
                std::future::ready(Err::<u32, _>("still down"))
            },
            policy(),
        )
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert!(outcome.value.is_empty());
    assert_eq!(*attempts.lock().unwrap(), expected, "try_map_async attempt times");

    let started = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&attempts);
    source::iter([1u32])
        .try_map(
            move |_x| {
                log.lock().unwrap().push(started.elapsed());
                Err::<u32, _>("still down")
            },
            policy(),
        )
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(*attempts.lock().unwrap(), expected, "try_map attempt times");
}

// ----- Dead letters ----------------------------------------------------------------------------

fn reject_multiples_of_three(x: &u32) -> Result<u32, String> {
    if x.is_multiple_of(3) { Err(format!("{x} is a multiple of three")) } else { Ok(*x) }
}

fn expected_split() -> (Vec<u32>, Vec<u32>) {
    (0u32..100).partition(|x| x % 3 != 0)
}

/// A channel of two slots and a reader running beside the pipeline: the stage waits for room, so
/// every failed element arrives, in order, with its error and stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_channel_delivers_every_failed_element() {
    let (dead_letters, mut rejected) = DeadLetters::channel(2);
    let reader = tokio::spawn(async move {
        let mut letters = Vec::new();
        while let Some(letter) = rejected.recv().await {
            letters.push(letter);
        }
        letters
    });
    let outcome = within_limit(
        source::iter(0u32..100)
            .try_map(reject_multiples_of_three, ErrorPolicy::resume(dead_letters))
            .to(sink::collect())
            .run(),
    )
    .await
    .unwrap();
    let letters = tokio::time::timeout(HANG_LIMIT, reader).await.unwrap().unwrap();

    let (expected_ok, expected_failed) = expected_split();
    assert_eq!(outcome.value, expected_ok);
    assert_eq!(letters.iter().map(|letter| letter.element).collect::<Vec<_>>(), expected_failed);
    for letter in &letters {
        assert_eq!(&*letter.stage, "1:try_map");
        assert_eq!(letter.error.to_string(), format!("{} is a multiple of three", letter.element));
    }
    let stage = outcome.stats.metrics.stage("try_map").unwrap();
    let failures = expected_failed.len() as u64;
    assert_eq!((stage.errors, stage.dropped), (failures, failures));
}

/// A dropped receiver does not stop the run: further dead letters are only counted.
#[tokio::test]
async fn dead_letters_channel_with_its_receiver_dropped_still_counts() {
    let (dead_letters, rejected) = DeadLetters::channel(1);
    drop(rejected);
    let outcome = within_limit(
        source::iter(0u32..100)
            .try_map(reject_multiples_of_three, ErrorPolicy::resume(dead_letters))
            .to(sink::collect())
            .run(),
    )
    .await
    .unwrap();
    let (expected_ok, expected_failed) = expected_split();
    assert_eq!(outcome.value, expected_ok);
    let stage = outcome.stats.metrics.stage("try_map").unwrap();
    assert_eq!(stage.errors, expected_failed.len() as u64);
}

#[tokio::test]
async fn dead_letters_callback_receives_every_failed_element() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&letters);
    let dead_letters =
        DeadLetters::callback(move |letter: DeadLetter<u32, String>| log.lock().unwrap().push(letter));
    let outcome = within_limit(
        source::iter(0u32..100)
            .try_map_async(
                nz(4),
                |x| std::future::ready(reject_multiples_of_three(&x)),
                ErrorPolicy::resume(dead_letters),
            )
            .to(sink::collect())
            .run(),
    )
    .await
    .unwrap();

    let (expected_ok, expected_failed) = expected_split();
    assert_eq!(outcome.value, expected_ok);
    let letters = std::mem::take(&mut *letters.lock().unwrap());
    assert_eq!(letters.iter().map(|letter| letter.element).collect::<Vec<_>>(), expected_failed);
    for letter in &letters {
        assert_eq!(&*letter.stage, "1:try_map_async");
        assert!(
            matches!(&letter.error, Failure::Error(message) if *message == format!("{} is a multiple of three", letter.element)),
            "{:?}",
            letter.error
        );
    }
    let stage = outcome.stats.metrics.stage("try_map_async").unwrap();
    let failures = expected_failed.len() as u64;
    assert_eq!((stage.errors, stage.dropped), (failures, failures));
}

#[tokio::test]
async fn dead_letters_discard_counts_every_failed_element() {
    let outcome = within_limit(
        source::iter(0u32..100)
            .try_map(reject_multiples_of_three, ErrorPolicy::resume(DeadLetters::discard()))
            .to(sink::collect())
            .run(),
    )
    .await
    .unwrap();
    let (expected_ok, expected_failed) = expected_split();
    assert_eq!(outcome.value, expected_ok);
    let stage = outcome.stats.metrics.stage("try_map").unwrap();
    let failures = expected_failed.len() as u64;
    assert_eq!((stage.errors, stage.dropped), (failures, failures));
    assert_eq!(outcome.stats.metrics.total_errors(), failures);
    assert_eq!(outcome.stats.metrics.total_dropped(), failures);
}

// ----- Overflow --------------------------------------------------------------------------------

const OFFERED: u32 = 1000;
const CAPACITY: usize = 4;

/// A buffer of four in front of a consumer taking 10 ms (paused time) per element: the buffer really
/// fills, and the strategy decides what happens then.
async fn through_full_buffer(strategy: OverflowStrategy) -> Result<RunOutcome<Vec<u32>>, PipelineError> {
    source::iter(0..OFFERED)
        .buffer(nz(CAPACITY), strategy)
        .map_async(nz(1), |x| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            x
        })
        .to(sink::collect())
        .run()
        .await
}

fn assert_increasing(delivered: &[u32]) {
    assert!(
        delivered.windows(2).all(|pair| pair[0] < pair[1]),
        "order lost or element duplicated: {delivered:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn buffer_drop_newest_drops_and_counts_what_does_not_fit() {
    let outcome = through_full_buffer(OverflowStrategy::DropNewest).await.unwrap();
    let delivered = outcome.value;
    let dropped = outcome.stats.metrics.stage("async_boundary").unwrap().dropped;
    assert!(dropped > 0, "the buffer never overflowed");
    assert_eq!(delivered.len() as u64 + dropped, u64::from(OFFERED));
    assert_increasing(&delivered);
    // The first elements find an empty buffer, so they are never the ones dropped.
    assert_eq!(delivered[..CAPACITY], [0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn buffer_drop_oldest_drops_and_counts_what_is_pushed_out() {
    let outcome = through_full_buffer(OverflowStrategy::DropOldest).await.unwrap();
    let delivered = outcome.value;
    let dropped = outcome.stats.metrics.stage("async_boundary").unwrap().dropped;
    assert!(dropped > 0, "the buffer never overflowed");
    assert_eq!(delivered.len() as u64 + dropped, u64::from(OFFERED));
    assert_increasing(&delivered);
    // The newest element is never pushed out.
    assert_eq!(delivered.last(), Some(&(OFFERED - 1)));
}

#[tokio::test(start_paused = true)]
async fn buffer_fail_ends_the_run_with_overflow() {
    let result = through_full_buffer(OverflowStrategy::Fail).await;
    match result {
        Err(PipelineError::Overflow { stage, capacity }) => {
            assert_eq!(&*stage, "1:async_boundary");
            assert_eq!(capacity, CAPACITY);
        }
        other => panic!("expected an overflow error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn buffer_backpressure_slows_the_producer_and_loses_nothing() {
    let outcome = through_full_buffer(OverflowStrategy::Backpressure).await.unwrap();
    assert_eq!(outcome.value, (0..OFFERED).collect::<Vec<_>>());
    assert_eq!(outcome.stats.metrics.stage("async_boundary").unwrap().dropped, 0);
}
