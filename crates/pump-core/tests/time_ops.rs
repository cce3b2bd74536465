//! Time operators (`throttle`, `timeout`, `idle_timeout`, `debounce`, `delay`) and restartable
//! sections (`restart_source`, `restart_flow`), on paused tokio time with exact instants.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use pump_core::flow::time::{Elapsed, Throttle, ThrottleMode};
use pump_core::prelude::*;
use pump_core::restart::{RestartSettings, RestartsExhausted, restart_flow, restart_source};
use tokio::time::{Instant, sleep};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// A source yielding each item `gap` milliseconds after it is asked for, and ending `end_after`
/// milliseconds after the last item.
fn gapped<T: Send + 'static>(items: Vec<(u64, T)>, end_after: u64) -> impl Source<Item = T> {
    source::unfold((items.into_iter(), end_after), |(mut items, end_after)| async move {
        match items.next() {
            Some((gap, item)) => {
                if gap > 0 {
                    sleep(ms(gap)).await;
                }
                Some((item, (items, end_after)))
            }
            None => {
                if end_after > 0 {
                    sleep(ms(end_after)).await;
                }
                None
            }
        }
    })
}

/// Milliseconds since `start`.
fn millis_since(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

/// A current-thread runtime on paused time, for property tests.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime")
}

/// A shared log of the instants something happened, in milliseconds since `start`.
#[derive(Clone)]
struct Clock {
    start: Instant,
    log: Arc<Mutex<Vec<u128>>>,
}

impl Clock {
    fn new() -> Self {
        Clock { start: Instant::now(), log: Arc::default() }
    }

    fn tick(&self) {
        self.log.lock().unwrap().push(millis_since(self.start));
    }

    fn ticks(&self) -> Vec<u128> {
        self.log.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// throttle

#[tokio::test(start_paused = true)]
async fn throttle_in_backpressure_mode_emits_at_the_token_times() {
    let start = Instant::now();
    let out = source::iter(0..5)
        .throttle(Throttle::per_second(non_zero(2)))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(0, 0), (1, 500), (2, 1000), (3, 1500), (4, 2000)]);
    let stage = out.stats.metrics.stage("throttle").unwrap();
    assert_eq!((stage.elements_in, stage.elements_out, stage.dropped), (5, 5, 0));
}

#[tokio::test(start_paused = true)]
async fn throttle_in_backpressure_mode_does_not_pull_upstream_while_waiting() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let pulled_at_emission = source::iter(0..6)
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .throttle(Throttle::new(non_zero(1), ms(100)))
        .map(move |_| pulled.load(Ordering::SeqCst))
        .to(sink::collect())
        .run()
        .await
        .unwrap()
        .value;
    // When the n-th element is emitted exactly n elements have been pulled: none is held early.
    assert_eq!(pulled_at_emission, vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn throttle_burst_lets_an_initial_burst_through_then_keeps_the_rate() {
    let start = Instant::now();
    let out = source::iter(0..6)
        .throttle(Throttle::per_second(non_zero(2)).with_burst(non_zero(3)))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(0, 0), (1, 0), (2, 0), (3, 500), (4, 1000), (5, 1500)]);
}

#[tokio::test(start_paused = true)]
async fn throttle_bucket_refills_to_its_burst_during_a_quiet_period_and_no_further() {
    let start = Instant::now();
    let items = vec![(0, 'a'), (0, 'b'), (0, 'c'), (0, 'd'), (3000, 'e'), (0, 'f'), (0, 'g'), (0, 'h')];
    let out = gapped(items, 0)
        .throttle(Throttle::per_second(non_zero(2)).with_burst(non_zero(3)))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    // `e` is asked for once its token is there (1 s) and takes 3 s to come; by then the bucket is
    // full again: three at once, then the rate.
    let expected =
        vec![('a', 0), ('b', 0), ('c', 0), ('d', 500), ('e', 4000), ('f', 4000), ('g', 4000), ('h', 4500)];
    assert_eq!(out.value, expected);
}

#[tokio::test(start_paused = true)]
async fn throttle_keeps_an_uneven_rate_without_drift() {
    let start = Instant::now();
    let out = source::iter(0..301)
        .throttle(Throttle::per_second(non_zero(3)))
        .map(move |_| millis_since(start))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    // One token every 333.33 ms; timers fire on whole milliseconds, and that lateness does not add
    // up: the 301st element is due at exactly 100 s.
    assert_eq!(out.value[1], 334);
    assert_eq!(out.value[3], 1000);
    assert_eq!(out.value[300], 100_000);
}

#[tokio::test(start_paused = true)]
async fn throttle_in_drop_mode_drops_elements_without_a_token_and_counts_them() {
    let start = Instant::now();
    let items = (0..10).map(|i| (100, i)).collect();
    let out = gapped(items, 0)
        .throttle(Throttle::per_second(non_zero(2)).with_mode(ThrottleMode::Drop))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    // Elements arrive every 100 ms from 100 ms on; one token per 500 ms.
    assert_eq!(out.value, vec![(0, 100), (5, 600)]);
    let stage = out.stats.metrics.stage("throttle").unwrap();
    assert_eq!((stage.elements_in, stage.elements_out, stage.dropped), (10, 2, 8));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn throttle_in_drop_mode_delivers_or_counts_every_element_within_the_rate(
        gaps in proptest::collection::vec(0u64..300, 0..40),
        elements in 1u32..5,
        per_millis in 50u64..1000,
        burst in 1u32..4,
    ) {
        let n_items = gaps.len();
        let (delivered, dropped) = paused_runtime().block_on(async move {
            let start = Instant::now();
            let items = gaps.into_iter().enumerate().map(|(idx, gap)| (gap, idx)).collect();
            let throttle = Throttle::new(non_zero(elements), ms(per_millis))
                .with_burst(non_zero(burst))
                .with_mode(ThrottleMode::Drop);
            let out = gapped(items, 0)
                .throttle(throttle)
                .map(move |idx| (idx, start.elapsed()))
                .to(sink::collect())
                .run()
                .await
                .unwrap();
            let dropped = out.stats.metrics.stage("throttle").unwrap().dropped;
            (out.value, dropped)
        });
        // Nothing lost silently, nothing duplicated, order kept.
        prop_assert_eq!(delivered.len() as u64 + dropped, n_items as u64);
        prop_assert!(delivered.windows(2).all(|pair| pair[0].0 < pair[1].0));
        // The token bucket's bound: over a span `d` from the first delivery, at most
        // `burst + d · elements / per` elements.
        if let Some(&(_, first)) = delivered.first() {
            let (_, last) = delivered[delivered.len() - 1];
            let span_nanos = (last - first).as_nanos();
            let allowed = u128::from(burst) + span_nanos * u128::from(elements) / ms(per_millis).as_nanos();
            prop_assert!(delivered.len() as u128 <= allowed, "{} delivered, {} allowed", delivered.len(), allowed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// timeout and idle_timeout

#[tokio::test(start_paused = true)]
async fn timeout_yields_elapsed_exactly_at_the_deadline_and_resumes() {
    let start = Instant::now();
    let items = vec![(100, 0), (300, 1), (50, 2), (500, 3)];
    let out = gapped(items, 0)
        .timeout(ms(200))
        .map(move |result| (result, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    let elapsed = Err(Elapsed { after: ms(200) });
    let expected = vec![
        (Ok(0), 100),
        (elapsed, 300),
        (Ok(1), 400),
        (Ok(2), 450),
        (elapsed, 650),
        (elapsed, 850),
        (Ok(3), 950),
    ];
    assert_eq!(out.value, expected);
    let stage = out.stats.metrics.stage("timeout").unwrap();
    assert_eq!((stage.elements_in, stage.elements_out, stage.errors), (4, 7, 3));
}

#[tokio::test(start_paused = true)]
async fn timeout_results_combine_with_an_error_policy() {
    let items = vec![(100, 0), (300, 1), (50, 2)];
    let out = gapped(items, 0)
        .timeout(ms(200))
        .try_map(|result: &Result<u32, Elapsed>| *result, ErrorPolicy::resume(DeadLetters::discard()))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![0, 1, 2]);
    assert_eq!(out.stats.metrics.stage("try_map").unwrap().dropped, 1);
}

#[test]
fn elapsed_says_what_limit_passed() {
    assert_eq!(Elapsed { after: ms(1500) }.to_string(), "upstream produced no element within 1.5s");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_fails_the_run_exactly_at_the_deadline() {
    let start = Instant::now();
    let clock = Clock::new();
    let seen = clock.clone();
    let error = gapped(vec![(100, 0), (300, 1)], 0)
        .idle_timeout(ms(200))
        .to(sink::for_each(move |_| seen.tick()))
        .run()
        .await
        .unwrap_err();
    assert_eq!(millis_since(start), 300);
    assert_eq!(clock.ticks(), vec![100]);
    let PipelineError::Io { stage, source } = error else { panic!("expected an Io error, got {error:?}") };
    assert_eq!(&*stage, "1:idle_timeout");
    assert_eq!(source.downcast_ref::<Elapsed>(), Some(&Elapsed { after: ms(200) }));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_lets_a_steady_stream_through() {
    let items = (0..5).map(|i| (150, i)).collect();
    let out = gapped(items, 150).idle_timeout(ms(200)).to(sink::collect()).run().await.unwrap();
    assert_eq!(out.value, vec![0, 1, 2, 3, 4]);
}

// ---------------------------------------------------------------------------------------------
// debounce

#[tokio::test(start_paused = true)]
async fn debounce_emits_only_after_quiet_periods_and_flushes_at_the_end() {
    let start = Instant::now();
    let items = vec![(0, 'a'), (50, 'b'), (50, 'c'), (300, 'd'), (50, 'e')];
    let out = gapped(items, 0)
        .debounce(ms(200))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    // `c` (at 100 ms) has 200 ms of quiet before `d` comes at 400 ms; `e` is flushed at the end.
    assert_eq!(out.value, vec![('c', 300), ('e', 450)]);
    let stage = out.stats.metrics.stage("debounce").unwrap();
    assert_eq!((stage.elements_in, stage.elements_out, stage.dropped), (5, 2, 3));
    assert_eq!((stage.buffer_depth, stage.buffer_capacity), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn debounce_emits_the_last_element_after_its_quiet_period_when_upstream_ends_later() {
    let start = Instant::now();
    let out = gapped(vec![(0, 'a'), (500, 'b')], 1000)
        .debounce(ms(200))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![('a', 200), ('b', 700)]);
    assert_eq!(millis_since(start), 1500);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn debounce_emits_exactly_the_elements_followed_by_a_quiet_period(
        gaps in proptest::collection::vec(0u64..30, 1..30),
        quiet_steps in 1u64..10,
        end_after in 0u64..30,
    ) {
        // Gaps are whole multiples of 10 ms and the quiet period is not, so no tie is possible.
        let gaps: Vec<u64> = gaps.into_iter().map(|gap| gap * 10).collect();
        let end_after = end_after * 10;
        let quiet = quiet_steps * 10 + 5;
        let mut expected = Vec::new();
        let mut arrival = 0;
        for (idx, gap) in gaps.iter().enumerate() {
            arrival += gap;
            let next_gap = gaps.get(idx + 1).copied().unwrap_or(end_after);
            if next_gap > quiet {
                expected.push((idx, u128::from(arrival + quiet)));
            } else if idx + 1 == gaps.len() {
                expected.push((idx, u128::from(arrival + end_after)));
            }
        }
        let items = gaps.iter().copied().enumerate().map(|(idx, gap)| (gap, idx)).collect();
        let out = paused_runtime().block_on(async move {
            let start = Instant::now();
            gapped(items, end_after)
                .debounce(ms(quiet))
                .map(move |idx| (idx, millis_since(start)))
                .to(sink::collect())
                .run()
                .await
                .unwrap()
        });
        prop_assert_eq!(&out.value, &expected);
        let stage = out.stats.metrics.stage("debounce").unwrap();
        prop_assert_eq!(stage.elements_out + stage.dropped, stage.elements_in);
    }
}

// ---------------------------------------------------------------------------------------------
// delay

#[tokio::test(start_paused = true)]
async fn delay_shifts_each_element_by_exactly_its_duration_in_order() {
    let start = Instant::now();
    let items = vec![(0, 0), (30, 1), (200, 2), (10, 3)];
    let out = gapped(items, 0)
        .delay(ms(100), capacity(8))
        .map(move |x| (x, millis_since(start)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(0, 100), (1, 130), (2, 330), (3, 340)]);
}

#[tokio::test(start_paused = true)]
async fn delay_stops_pulling_when_it_holds_max_in_flight_elements() {
    let start = Instant::now();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let out = source::iter(0..5)
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .delay(ms(100), capacity(2))
        .map(move |x| (x, millis_since(start), pulled.load(Ordering::SeqCst)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    let times: Vec<_> = out.value.iter().map(|(x, at, _)| (*x, *at)).collect();
    // Two at a time: the third element is only pulled (and stamped) once the first has left.
    assert_eq!(times, vec![(0, 100), (1, 100), (2, 200), (3, 200), (4, 300)]);
    for (emitted_before, (_, _, pulled)) in out.value.iter().enumerate() {
        let held = pulled - emitted_before;
        assert!(held <= 2, "held {held} elements");
    }
    assert_eq!(out.stats.metrics.stage("delay").unwrap().buffer_capacity, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn delay_keeps_order_and_content_shifts_exactly_and_stays_bounded(
        items in proptest::collection::vec((0u64..50, any::<u16>()), 0..40),
        by in 0u64..300,
        max_in_flight in 1usize..5,
    ) {
        let values: Vec<u16> = items.iter().map(|(_, value)| *value).collect();
        let (out, pulled_log) = paused_runtime().block_on(async move {
            let start = Instant::now();
            let pulled = Arc::new(Mutex::new(Vec::new()));
            let pull_log = pulled.clone();
            let out = gapped(items, 0)
                .inspect(move |_| pull_log.lock().unwrap().push(millis_since(start)))
                .delay(ms(by), capacity(max_in_flight))
                .map({
                    let pulled = pulled.clone();
                    move |value| (value, millis_since(start), pulled.lock().unwrap().len())
                })
                .to(sink::collect())
                .run()
                .await
                .unwrap();
            let log = pulled.lock().unwrap().clone();
            (out.value, log)
        });
        let emitted: Vec<u16> = out.iter().map(|(value, _, _)| *value).collect();
        prop_assert_eq!(emitted, values);
        for (idx, (_, at, pulled)) in out.iter().enumerate() {
            prop_assert_eq!(*at, pulled_log[idx] + u128::from(by), "element {} not shifted exactly", idx);
            prop_assert!(pulled - idx <= max_in_flight, "held {} > {}", pulled - idx, max_in_flight);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// restart_source

fn exact_settings(max_restarts: u32) -> RestartSettings {
    RestartSettings::new(ms(100), ms(10_000)).with_jitter(0.0).with_max_restarts(max_restarts, ms(1000))
}

#[tokio::test(start_paused = true)]
async fn restart_source_backs_off_min_then_doubling_and_counts_restarts() {
    let clock = Clock::new();
    let connections = clock.clone();
    let mut instances = 0;
    let out = restart_source(exact_settings(5), move || {
        connections.tick();
        instances += 1;
        let mut elements = vec![Ok(instances * 10), Ok(instances * 10 + 1)];
        if instances < 4 {
            elements.push(Err("connection reset"));
        }
        source::iter(elements)
    })
    .to(sink::collect())
    .run()
    .await
    .unwrap();
    assert_eq!(clock.ticks(), vec![0, 100, 300, 700]);
    assert_eq!(out.value, vec![10, 11, 20, 21, 30, 31, 40, 41]);
    let stage = out.stats.metrics.stage("restart_source").unwrap();
    assert_eq!((stage.restarts, stage.errors, stage.elements_out), (3, 3, 8));
}

#[tokio::test(start_paused = true)]
async fn restart_source_fails_the_run_beyond_max_restarts() {
    let start = Instant::now();
    let clock = Clock::new();
    let connections = clock.clone();
    let error = restart_source(exact_settings(3), move || {
        connections.tick();
        source::iter([Ok(1), Err("connection refused")])
    })
    .to(sink::collect())
    .run()
    .await
    .unwrap_err();
    assert_eq!(clock.ticks(), vec![0, 100, 300, 700]);
    assert_eq!(millis_since(start), 700);
    let PipelineError::Stage { stage, source } = error else {
        panic!("expected a Stage error, got {error:?}")
    };
    assert_eq!(&*stage, "0:restart_source");
    let exhausted = source.downcast_ref::<RestartsExhausted>().unwrap();
    assert_eq!(exhausted.restarts, 3);
    assert_eq!(exhausted.last_failure.to_string(), "connection refused");
    assert_eq!(exhausted.to_string(), "gave up after 3 restarts in a row");
}

#[tokio::test(start_paused = true)]
async fn restart_source_restarts_an_instance_that_fails_as_a_whole() {
    let mut instances = 0;
    let out = restart_source(exact_settings(5), move || {
        instances += 1;
        let first = instances == 1;
        source::iter([1u32, 2, 3]).try_map(
            move |x: &u32| {
                if first && *x == 3 { Err("read failed") } else { Ok(Ok::<u32, &str>(*x + instances * 10)) }
            },
            ErrorPolicy::stop(),
        )
    })
    .to(sink::collect())
    .run()
    .await
    .unwrap();
    assert_eq!(out.value, vec![11, 12, 21, 22, 23]);
    let stage = out.stats.metrics.stage("restart_source").unwrap();
    assert_eq!((stage.restarts, stage.errors), (1, 1));
    // The instances' stages report to private registries, dropped with each instance.
    assert!(out.stats.metrics.stage("try_map").is_none());
}

#[tokio::test(start_paused = true)]
async fn restart_source_starts_a_new_row_after_an_instance_ran_for_within() {
    let clock = Clock::new();
    let connections = clock.clone();
    let mut instances = 0;
    let out = restart_source(exact_settings(5), move || {
        connections.tick();
        instances += 1;
        // The second instance runs for 1.5 s (longer than `within`, 1 s) before breaking.
        let items = match instances {
            1 => vec![(0, Err("reset"))],
            2 => vec![(1500, Ok(2)), (0, Err("reset"))],
            3 => vec![(0, Err("reset"))],
            _ => vec![(0, Ok(4))],
        };
        gapped(items, 0)
    })
    .to(sink::collect())
    .run()
    .await
    .unwrap();
    // Backoffs: 100 ms; then 100 ms again (a new row) instead of 200 ms; then 200 ms.
    assert_eq!(clock.ticks(), vec![0, 100, 1700, 1900]);
    assert_eq!(out.value, vec![2, 4]);
}

#[tokio::test(start_paused = true)]
async fn restart_source_stops_on_drain_during_a_backoff() {
    let start = Instant::now();
    let graph =
        restart_source(exact_settings(5), || source::iter([Ok(1), Ok(2), Err("reset")])).to(sink::collect());
    let controls = graph.controls();
    tokio::spawn(async move {
        sleep(ms(50)).await;
        controls.drain();
    });
    let out = graph.run().await.unwrap();
    assert_eq!(out.value, vec![1, 2]);
    assert_eq!(millis_since(start), 50);
    assert_eq!(out.stats.metrics.stage("restart_source").unwrap().restarts, 0);
}

// ---------------------------------------------------------------------------------------------
// restart_flow

/// A flow that breaks on every `nth` element it sees; each instance counts afresh.
fn breaking_every(nth: u32) -> impl Flow<u32, Out = Result<u32, &'static str>> {
    let mut seen = 0;
    flow::identity::<u32>().map(move |x| {
        seen += 1;
        if seen == nth { Err("broken pipe") } else { Ok(x) }
    })
}

#[tokio::test(start_paused = true)]
async fn restart_flow_backs_off_drops_the_failing_element_and_keeps_upstream() {
    let clock = Clock::new();
    let instances = clock.clone();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let pulled_at_start = Arc::new(Mutex::new(Vec::new()));
    let starts = pulled_at_start.clone();
    let out = source::iter(1..=10u32)
        .inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .via(restart_flow(exact_settings(5), move || {
            instances.tick();
            starts.lock().unwrap().push(pulled.load(Ordering::SeqCst));
            breaking_every(3)
        }))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(clock.ticks(), vec![0, 100, 300, 700]);
    assert_eq!(out.value, vec![1, 2, 4, 5, 7, 8, 10]);
    // Nothing is pulled during a backoff, and nothing is pulled ahead of the instance.
    assert_eq!(*pulled_at_start.lock().unwrap(), vec![0, 3, 6, 9]);
    let stage = out.stats.metrics.stage("restart_flow").unwrap();
    assert_eq!((stage.restarts, stage.errors, stage.dropped), (3, 3, 3));
    assert_eq!((stage.elements_in, stage.elements_out), (10, 7));
}

#[tokio::test(start_paused = true)]
async fn restart_flow_fails_the_run_beyond_max_restarts() {
    let start = Instant::now();
    let error = source::iter(1..=100u32)
        .via(restart_flow(exact_settings(2), || breaking_every(1)))
        .to(sink::collect())
        .run()
        .await
        .unwrap_err();
    assert_eq!(millis_since(start), 300);
    let PipelineError::Stage { stage, source } = error else {
        panic!("expected a Stage error, got {error:?}")
    };
    assert_eq!(&*stage, "1:restart_flow");
    assert_eq!(source.downcast_ref::<RestartsExhausted>().unwrap().restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn restart_flow_restarts_an_instance_that_fails_as_a_whole() {
    let out = source::iter(1..=4u32)
        .via(restart_flow(exact_settings(5), || {
            flow::identity::<u32>().try_map(
                |x: &u32| {
                    if *x == 2 { Err("write failed") } else { Ok(Ok::<u32, &str>(*x)) }
                },
                ErrorPolicy::stop(),
            )
        }))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    // Element 2 failed inside the instance (its stage stopped it); the next instance goes on with 3.
    assert_eq!(out.value, vec![1, 3, 4]);
    let stage = out.stats.metrics.stage("restart_flow").unwrap();
    assert_eq!((stage.restarts, stage.errors, stage.dropped), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn restart_flow_feeds_an_instance_that_reads_on_another_task() {
    let broke = Arc::new(AtomicUsize::new(0));
    let run = source::iter(1..=20u32)
        .via(restart_flow(exact_settings(10), move || {
            let broke = broke.clone();
            // The async boundary polls the feed from its own task. The first instance breaks on the
            // 4th element it sees; the next one runs to the end.
            let mut seen = 0;
            flow::identity::<u32>().async_boundary(capacity(1)).map(move |x| {
                seen += 1;
                if seen == 4 && broke.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("broken pipe")
                } else {
                    Ok(x)
                }
            })
        }))
        .to(sink::collect())
        .run();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the section hung").unwrap();
    assert!(out.value.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", out.value);
    assert_eq!(&out.value[..3], &[1, 2, 3]);
    assert_eq!(out.value.last(), Some(&20));
    // Besides the failing element, a break loses at most what the boundary held: its one buffered
    // element and the one its task was offering.
    assert!(out.value.len() >= 20 - 1 - 2, "{:?}", out.value);
    let stage = out.stats.metrics.stage("restart_flow").unwrap();
    assert_eq!((stage.restarts, stage.dropped, stage.elements_in), (1, 1, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_flow_with_an_async_boundary_survives_many_restarts_across_threads() {
    let seen_overall = Arc::new(AtomicUsize::new(0));
    let settings = RestartSettings::new(Duration::ZERO, Duration::ZERO).with_jitter(0.0);
    let run = source::iter(1..=2000u32)
        .via(restart_flow(settings, move || {
            let seen_overall = seen_overall.clone();
            flow::identity::<u32>().async_boundary(capacity(2)).map(move |x| {
                if seen_overall.fetch_add(1, Ordering::SeqCst) % 97 == 96 {
                    Err("broken pipe")
                } else {
                    Ok(x)
                }
            })
        }))
        .to(sink::collect())
        .run();
    // A guard against a lost wake-up, which would hang the run.
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the section hung").unwrap();
    assert!(out.value.windows(2).all(|pair| pair[0] < pair[1]));
    let stage = out.stats.metrics.stage("restart_flow").unwrap();
    assert!(stage.restarts >= 10, "{stage:?}");
    assert_eq!(stage.dropped, stage.restarts);
    assert_eq!(stage.elements_in, 2000);
}

#[tokio::test(start_paused = true)]
async fn time_operators_accept_durations_too_long_to_ever_pass() {
    let never = Duration::MAX;
    let out = source::iter(1..=3)
        .timeout(never)
        .filter_map(Result::ok)
        .idle_timeout(never)
        .throttle(Throttle::new(non_zero(1), Duration::ZERO))
        .delay(Duration::ZERO, capacity(1))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![1, 2, 3]);
    let out = source::iter(1..=3).debounce(never).to(sink::collect()).run().await.unwrap();
    assert_eq!(out.value, vec![3]);
}

#[tokio::test]
async fn restart_without_backoff_yields_to_the_executor_between_instances() {
    use futures::StreamExt;
    let settings = RestartSettings::new(Duration::ZERO, Duration::ZERO)
        .with_jitter(0.0)
        .with_max_restarts(1000, Duration::from_secs(1));
    let built = Arc::new(AtomicUsize::new(0));
    let counter = built.clone();
    let mut stream = restart_source(settings, move || {
        counter.fetch_add(1, Ordering::SeqCst);
        source::iter([Err::<u32, _>("refused")])
    })
    .into_stream();
    // Each poll builds one instance, sees it break, and hands the thread back before the next; a
    // section that did not would run all 1000 restarts in the first poll.
    assert!(futures::poll!(stream.next()).is_pending());
    assert_eq!(built.load(Ordering::SeqCst), 1);
    assert!(futures::poll!(stream.next()).is_pending());
    assert_eq!(built.load(Ordering::SeqCst), 2);
}
