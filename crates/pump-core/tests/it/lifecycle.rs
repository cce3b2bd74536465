//! The life of a run: drain versus abort, the run's cancellation token, live metrics, and how a stage
//! failure ends a run.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use pump_core::prelude::*;
use pump_core::{CancellationToken, RunHandle};
use tokio::time::Instant;

/// Long enough that only a hang reaches it (on paused time it is virtual, so it costs nothing).
const HANG_LIMIT: Duration = Duration::from_secs(600);

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn stage_of<R>(handle: &RunHandle<R>, operator: &str) -> pump_core::metrics::StageSnapshot {
    handle.metrics().stage(operator).cloned().unwrap_or_default()
}

/// Drain stops the source (within one yield budget of 256 elements, as documented), lets the
/// elements in flight finish, and ends with `Ok`: every element the source handed out reached the sink.
#[tokio::test(start_paused = true)]
async fn drain_finishes_in_flight_work_and_delivers_every_pulled_element() {
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&delivered);
    let handle = source::iter(0u64..)
        .map_async(nz(4), |x| async move {
            tokio::time::sleep(Duration::from_millis(1 + x % 3)).await;
            x
        })
        .to(sink::for_each_async(nz(2), move |_x: u64| {
            let counter = Arc::clone(&counter);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }))
        .spawn();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pulled_at_drain = stage_of(&handle, "iter").elements_out;
    assert!(pulled_at_drain > 0, "the pipeline made no progress before the drain");
    handle.drain();
    let outcome = tokio::time::timeout(HANG_LIMIT, handle).await.expect("drain never ended the run").unwrap();

    let pulled = outcome.stats.metrics.stage("iter").unwrap().elements_out;
    let sunk = outcome.stats.metrics.stage("for_each_async").unwrap().elements_in;
    assert_eq!(pulled, sunk, "elements pulled from the source were lost on drain");
    assert_eq!(delivered.load(Ordering::SeqCst), pulled);
    assert!(
        pulled <= pulled_at_drain + 256,
        "the source went on for {} elements after the drain",
        pulled - pulled_at_drain
    );
}

/// Draining a source that has nothing ready ends the run at once, with what was produced.
#[tokio::test(start_paused = true)]
async fn drain_of_an_idle_source_ends_the_run_at_once() {
    let handle = source::interval(Duration::from_secs(1)).to(sink::collect()).spawn();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let drained_at = Instant::now();
    handle.drain();
    let outcome = tokio::time::timeout(HANG_LIMIT, handle).await.unwrap().unwrap();
    assert_eq!(outcome.value, vec![0, 1, 2]);
    assert_eq!(drained_at.elapsed(), Duration::ZERO);
}

/// Abort stops the run now: with a sink that would take an hour per element, the result is
/// `Aborted` without any (virtual) time passing.
#[tokio::test(start_paused = true)]
async fn abort_ends_the_run_promptly_with_aborted() {
    let handle = source::iter(0u64..)
        .map_async(nz(4), |x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .to(sink::for_each_async(nz(2), |_x: u64| tokio::time::sleep(Duration::from_secs(3600))))
        .spawn();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let aborted_at = Instant::now();
    handle.abort();
    let result = tokio::time::timeout(HANG_LIMIT, handle).await.expect("abort never ended the run");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
    assert_eq!(aborted_at.elapsed(), Duration::ZERO, "abort waited for in-flight work");
}

/// Abort of a pipeline that could finish quickly once its source stops must still report `Aborted`,
/// never a value computed from a truncated stream.
#[tokio::test]
async fn abort_of_a_fast_pipeline_is_never_reported_as_success() {
    let runs: Vec<RunHandle<u64>> = vec![
        source::iter(0u64..).map(|x| x + 1).to(sink::count()).spawn(),
        source::iter(0u64..).map_async(nz(1), |x| async move { x }).to(sink::count()).spawn(),
        source::iter(0u64..).map_async(nz(4), |x| async move { x }).to(sink::count()).spawn(),
        source::iter(0u64..).async_boundary(nz(16)).to(sink::count()).spawn(),
    ];
    for handle in runs {
        while stage_of(&handle, "count").elements_in < 1000 {
            tokio::task::yield_now().await;
        }
        handle.abort();
        let result =
            tokio::time::timeout(Duration::from_secs(10), handle).await.expect("abort never ended the run");
        assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
    }
}

/// Runs `future` to completion on `runtime` on a thread of its own, then drops the runtime there, and
/// returns the output; fails with `hang` when that takes more than 30 s of real time (a deadline
/// inside the runtime could be frozen by the very hang it should catch).
fn on_own_runtime<F>(mut runtime: tokio::runtime::Builder, future: F, hang: &str) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = runtime.build().unwrap();
        let output = runtime.block_on(future);
        drop(runtime);
        let _ = done.send(output);
    });
    finished.recv_timeout(Duration::from_secs(30)).expect(hang)
}

/// `map_blocking`'s workers are tasks of tokio's blocking pool, which a runtime waits for when it is
/// dropped: after an abort (and whenever the stage is idle) they must leave, or the drop would hang.
#[test]
fn abort_releases_the_blocking_workers_so_the_runtime_can_shut_down() {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(2);
    let run = async {
        // The source then stays silent, so the workers sit idle waiting for a chunk.
        let input = futures::stream::iter(0u64..1000).chain(futures::stream::pending());
        let handle = source::from_stream(input)
            .map_blocking(nz(2), |x| (0..200u64).fold(x, |acc, i| acc.rotate_left(3) ^ i))
            .to(sink::count())
            .spawn();
        while stage_of(&handle, "count").elements_in < 1000 {
            tokio::task::yield_now().await;
        }
        handle.abort();
        handle.await.map(|_| ())
    };
    let result = on_own_runtime(runtime, run, "the runtime never shut down");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
}

/// Tokio's paused clock does not advance while a blocking task runs. `map_blocking`'s workers leave
/// once idle, so timers elsewhere in the pipeline (here `throttle` and `batch`'s deadline) still fire
/// in a paused-time test instead of waiting forever.
#[test]
fn map_blocking_leaves_the_paused_clock_free_to_advance() {
    let mut runtime = tokio::runtime::Builder::new_current_thread();
    runtime.enable_time().start_paused(true);
    let run = async {
        let started = Instant::now();
        let outcome = source::iter(0u64..20)
            .map_blocking(nz(2), |x| x * 2)
            .throttle(pump_core::flow::time::Throttle::per_second(std::num::NonZeroU32::MIN))
            .batch(nz(100), Duration::from_secs(5))
            .to(sink::collect())
            .run()
            .await;
        (outcome.map(|outcome| outcome.value.concat()), started.elapsed())
    };
    let (result, elapsed) = on_own_runtime(runtime, run, "the run hung on a paused clock");
    assert_eq!(result.unwrap(), (0u64..20).map(|x| x * 2).collect::<Vec<_>>());
    assert!(elapsed >= Duration::from_secs(19), "throttled for only {elapsed:?}");
}

/// The run's cancellation token is visible inside `map_async` futures through
/// `current_cancellation_token`, abort cancels it, and a future waiting on it observes that.
#[tokio::test(start_paused = true)]
async fn abort_cancels_the_token_seen_inside_map_async() {
    let tokens: Arc<Mutex<Vec<CancellationToken>>> = Arc::new(Mutex::new(Vec::new()));
    let observed_cancellation = Arc::new(AtomicBool::new(false));
    let (token_log, observed) = (Arc::clone(&tokens), Arc::clone(&observed_cancellation));
    let handle = source::iter(0u64..)
        .map_async(nz(2), move |x| {
            let token_log = Arc::clone(&token_log);
            let observed = Arc::clone(&observed);
            async move {
                let token =
                    pump_core::current_cancellation_token().expect("a map_async future runs inside its run");
                token_log.lock().unwrap().push(token.clone());
                tokio::select! {
                    () = token.cancelled() => observed.store(true, Ordering::SeqCst),
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
                x
            }
        })
        .to(sink::count())
        .spawn();
    tokio::time::sleep(Duration::from_millis(10)).await;
    {
        let tokens = tokens.lock().unwrap();
        assert_eq!(tokens.len(), 2, "two futures in flight");
        assert!(tokens.iter().all(|token| !token.is_cancelled()));
    }
    let run_token = handle.controls().cancellation_token().clone();
    handle.abort();
    let result = tokio::time::timeout(HANG_LIMIT, handle).await.expect("abort never ended the run");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
    assert!(run_token.is_cancelled());
    assert!(tokens.lock().unwrap().iter().all(CancellationToken::is_cancelled));
    assert!(observed_cancellation.load(Ordering::SeqCst), "no future observed the cancellation");
}

/// Outside a run there is no current cancellation token.
#[tokio::test]
async fn there_is_no_cancellation_token_outside_a_run() {
    assert!(pump_core::current_cancellation_token().is_none());
}

/// `RunHandle::metrics` can be read while the run goes on, and its counts grow with the run.
#[tokio::test(start_paused = true)]
async fn metrics_are_readable_while_running_and_increase() {
    let handle = source::interval(Duration::from_millis(10)).map(|tick| tick * 2).to(sink::count()).spawn();
    tokio::time::sleep(Duration::from_millis(55)).await;
    let early = handle.metrics();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = handle.metrics();

    // Ticks at 0, 10, ..., 50 ms, then up to 100 ms.
    assert_eq!(early.stage("interval").unwrap().elements_out, 6);
    assert_eq!(early.stage("map").unwrap().elements_out, 6);
    assert_eq!(early.stage("count").unwrap().elements_in, 6);
    assert_eq!(later.stage("interval").unwrap().elements_out, 11);
    assert_eq!(later.stage("count").unwrap().elements_in, 11);

    handle.abort();
    let result = handle.await;
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
}

/// A user error, as a stage function would return it.
#[derive(Debug, PartialEq, Eq)]
struct BadRecord {
    line: u64,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad record on line {}", self.line)
    }
}

impl std::error::Error for BadRecord {}

fn assert_stage_error(
    result: Result<impl fmt::Debug, PipelineError>,
    expected_stage: &str,
    expected_line: u64,
) {
    let error = result.expect_err("the run should fail");
    assert_eq!(error.to_string(), format!("stage {expected_stage} failed"));
    let PipelineError::Stage { stage, .. } = &error else {
        panic!("expected a stage error, got {error:?}");
    };
    assert_eq!(&**stage, expected_stage);
    let cause = std::error::Error::source(&error).expect("a stage error carries its cause");
    assert_eq!(cause.downcast_ref::<BadRecord>(), Some(&BadRecord { line: expected_line }));
}

/// A stage whose policy is `stop` ends the run with `PipelineError::Stage`, naming the stage, with the
/// user's error as its source.
#[tokio::test]
async fn a_stage_failure_ends_the_run_naming_the_stage_with_the_user_error_as_source() {
    let result = source::iter(1..=10u64)
        .map(|x| x + 1)
        .try_map(
            |x| {
                if *x == 5 { Err(BadRecord { line: *x }) } else { Ok(*x) }
            },
            ErrorPolicy::stop(),
        )
        .to(sink::collect())
        .run()
        .await;
    assert_stage_error(result, "2:try_map", 5);

    let result = source::iter(1..=10u64)
        .try_map_async(
            nz(3),
            |x| async move { if x == 7 { Err(BadRecord { line: x }) } else { Ok(x) } },
            ErrorPolicy::stop(),
        )
        .async_boundary(nz(2))
        .to(sink::count())
        .run()
        .await;
    assert_stage_error(result, "1:try_map_async", 7);
}

/// Every kind of user function of a run sees the run's token: fused stages on the driver, async
/// futures, the upstream of an async boundary (its own task), blocking workers, and the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_function_of_a_run_sees_its_cancellation_token() {
    fn current() -> CancellationToken {
        pump_core::current_cancellation_token().expect("user code runs inside its run")
    }
    let seen: Arc<Mutex<Vec<(&'static str, CancellationToken)>>> = Arc::default();
    let log = |place: &'static str, seen: &Arc<Mutex<Vec<(&'static str, CancellationToken)>>>| {
        let seen = Arc::clone(seen);
        move || {
            let token = current();
            seen.lock().unwrap().push((place, token));
        }
    };
    let (upstream_map, blocking, future, fused, sink) = (
        log("upstream map", &seen),
        log("map_blocking", &seen),
        log("map_async", &seen),
        log("map", &seen),
        log("sink", &seen),
    );
    let graph = source::iter(0u32..3)
        .map(move |x| {
            upstream_map();
            x
        })
        .async_boundary(nz(2))
        .map_blocking(nz(2), move |x| {
            blocking();
            x
        })
        .map_async(nz(2), move |x| {
            let future = future.clone();
            async move {
                future();
                x
            }
        })
        .map(move |x| {
            fused();
            x
        })
        .to(sink::for_each_async(nz(2), move |_x| {
            let sink = sink.clone();
            async move { sink() }
        }));
    let run_token = graph.controls().cancellation_token().clone();
    tokio::time::timeout(Duration::from_secs(10), graph.run()).await.unwrap().unwrap();
    let seen = seen.lock().unwrap();
    for place in ["upstream map", "map_blocking", "map_async", "map", "sink"] {
        let tokens: Vec<&CancellationToken> =
            seen.iter().filter(|(p, _)| *p == place).map(|(_, t)| t).collect();
        assert_eq!(tokens.len(), 3, "{place} ran {} times", tokens.len());
        // The token is the run's own: cancelling the run's token cancels it.
        assert!(tokens.iter().all(|token| !token.is_cancelled()));
    }
    run_token.cancel();
    assert!(
        seen.iter().all(|(_, token)| token.is_cancelled()),
        "a user function saw a token that is not the run's"
    );
}
