//! Window and keyed operators: exact emission instants on paused time, and properties (partition,
//! coverage, session splits, lateness, key bounds) checked against small reference models.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use pump_core::RunControls;
use pump_core::flow::window::{
    KeyedConfig, LateElement, Lateness, SessionTime, TumblingCount, TumblingTime, Window, WindowConfig,
    WindowOverflow,
};
use pump_core::prelude::*;
use tokio::time::Instant;

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn nz64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A source yielding each `(at_ms, item)` at `start + at_ms` (in order), then ending at `start + end_ms`.
fn arrivals<T: Send + 'static>(
    start: Instant,
    schedule: Vec<(u64, T)>,
    end_ms: u64,
) -> impl Source<Item = T> {
    source::unfold(schedule.into_iter(), move |mut rest| async move {
        match rest.next() {
            Some((at, item)) => {
                tokio::time::sleep_until(start + ms(at)).await;
                Some((item, rest))
            }
            None => {
                tokio::time::sleep_until(start + ms(end_ms)).await;
                None
            }
        }
    })
}

/// Milliseconds from `start` to `instant`.
fn since(start: Instant, instant: Instant) -> u64 {
    u64::try_from((instant - start).as_millis()).unwrap()
}

/// A processing-time window as the tests compare it: emitted at, start, end (ms from the start), items,
/// truncated.
type Seen<T> = (u64, u64, u64, Vec<T>, bool);

fn seen<T>(start: Instant, window: Window<T, Instant>) -> Seen<T> {
    (
        since(start, Instant::now()),
        since(start, window.start),
        since(start, window.end),
        window.items,
        window.truncated,
    )
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn paused_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Processing time, exact instants.

#[tokio::test(start_paused = true)]
async fn tumbling_time_emits_each_window_at_its_end() {
    let start = Instant::now();
    let schedule = vec![(0, 'a'), (400, 'b'), (999, 'c'), (1_000, 'd'), (3_100, 'e'), (3_200, 'f')];
    let out = arrivals(start, schedule, 5_000)
        .tumbling_time(Duration::from_secs(1), WindowConfig::default())
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.value,
        vec![
            (1_000, 0, 1_000, vec!['a', 'b', 'c'], false),
            // An element exactly at a window's end opens the next one.
            (2_000, 1_000, 2_000, vec!['d'], false),
            // The empty slot 2 000..3 000 emits nothing.
            (4_000, 3_000, 4_000, vec!['e', 'f'], false),
        ]
    );
    let stage = out.stats.metrics.stage("tumbling_time").unwrap().clone();
    assert_eq!((stage.elements_in, stage.elements_out, stage.buffer_depth), (6, 3, 0));
    assert_eq!(stage.buffer_capacity, WindowConfig::default().max_elements.get() as u64);
}

#[tokio::test(start_paused = true)]
async fn tumbling_time_flushes_the_partial_window_when_the_stream_ends() {
    let start = Instant::now();
    let out = arrivals(start, vec![(100, 1), (200, 2)], 500)
        .tumbling_time(Duration::from_secs(1), WindowConfig::default())
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(500, 0, 1_000, vec![1, 2], false)]);
}

#[tokio::test(start_paused = true)]
async fn tumbling_time_emit_early_splits_a_full_window_into_flagged_parts() {
    let start = Instant::now();
    let schedule = vec![(0, 1), (10, 2), (20, 3), (30, 4), (40, 5), (1_500, 6)];
    let config = WindowConfig::new(nz(2)).with_overflow(WindowOverflow::EmitEarly);
    let out = arrivals(start, schedule, 3_000)
        .tumbling_time(Duration::from_secs(1), config)
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.value,
        vec![
            (20, 0, 1_000, vec![1, 2], true),
            (40, 0, 1_000, vec![3, 4], true),
            (1_000, 0, 1_000, vec![5], true),
            // A window that fits is not flagged.
            (2_000, 1_000, 2_000, vec![6], false),
        ]
    );
    assert_eq!(out.stats.metrics.stage("tumbling_time").unwrap().dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn tumbling_time_drop_newest_keeps_the_first_elements_and_counts_the_rest() {
    let start = Instant::now();
    let schedule = vec![(0, 1), (10, 2), (20, 3), (30, 4), (40, 5)];
    let config = WindowConfig::new(nz(2)).with_overflow(WindowOverflow::DropNewest);
    let out = arrivals(start, schedule, 3_000)
        .tumbling_time(Duration::from_secs(1), config)
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(1_000, 0, 1_000, vec![1, 2], true)]);
    let stage = out.stats.metrics.stage("tumbling_time").unwrap().clone();
    assert_eq!((stage.dropped, stage.buffer_capacity), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn sliding_time_emits_overlapping_windows_at_their_ends() {
    let start = Instant::now();
    let schedule = vec![(100, 'a'), (700, 'b'), (1_200, 'c')];
    let out = arrivals(start, schedule, 5_000)
        .sliding_time(Duration::from_secs(1), ms(500), WindowConfig::default())
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.value,
        vec![
            (1_000, 0, 1_000, vec!['a', 'b'], false),
            (1_500, 500, 1_500, vec!['b', 'c'], false),
            (2_000, 1_000, 2_000, vec!['c'], false),
        ]
    );
    let stage = out.stats.metrics.stage("sliding_time").unwrap().clone();
    // Two windows overlap at any instant.
    assert_eq!(stage.buffer_capacity, 2 * WindowConfig::default().max_elements.get() as u64);
}

#[tokio::test(start_paused = true)]
async fn sliding_time_drops_elements_between_hopping_windows() {
    let start = Instant::now();
    // Windows 0..100, 300..400, 600..700: 150 and 500 fall between them.
    let schedule = vec![(50, 1), (150, 2), (350, 3), (500, 4)];
    let out = arrivals(start, schedule, 1_000)
        .sliding_time(ms(100), ms(300), WindowConfig::default())
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(100, 0, 100, vec![1], false), (400, 300, 400, vec![3], false)]);
    assert_eq!(out.stats.metrics.stage("sliding_time").unwrap().dropped, 2);
}

#[tokio::test(start_paused = true)]
async fn sliding_time_closes_the_oldest_window_early_beyond_max_open_windows() {
    let start = Instant::now();
    // Four windows overlap (size 400, slide 100), but only two may be open.
    let config = WindowConfig::default().with_max_open_windows(nz(2));
    let schedule = vec![(50, 1), (150, 2), (250, 3), (350, 4)];
    let out = arrivals(start, schedule, 2_000)
        .sliding_time(ms(400), ms(100), config)
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.value,
        vec![
            // Opening 200..600 at 250 closes 0..400 early; opening 300..700 at 350 closes 100..500.
            (250, 0, 400, vec![1, 2], true),
            (350, 100, 500, vec![2, 3], true),
            (600, 200, 600, vec![3, 4], false),
            (700, 300, 700, vec![4], false),
        ]
    );
    let stage = out.stats.metrics.stage("sliding_time").unwrap().clone();
    assert_eq!(stage.buffer_capacity, 2 * WindowConfig::default().max_elements.get() as u64);
}

#[tokio::test(start_paused = true)]
async fn session_time_emits_a_gap_after_the_last_element() {
    let start = Instant::now();
    let schedule = vec![(0, 1), (60, 2), (160, 3), (260, 4), (600, 5)];
    let out = arrivals(start, schedule, 2_000)
        .session_time(ms(100), WindowConfig::default())
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.value,
        vec![
            // 160 is exactly a gap after 60: a new session.
            (160, 0, 160, vec![1, 2], false),
            (260, 160, 260, vec![3], false),
            (360, 260, 360, vec![4], false),
            (700, 600, 700, vec![5], false),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn session_time_emits_early_parts_with_the_end_known_then() {
    let start = Instant::now();
    let schedule = vec![(0, 1), (10, 2), (20, 3)];
    let out = arrivals(start, schedule, 1_000)
        .session_time(ms(100), WindowConfig::new(nz(2)))
        .map(move |window| seen(start, window))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(20, 0, 120, vec![1, 2], true), (120, 0, 120, vec![3], true)]);
}

// ---------------------------------------------------------------------------------------------
// Count windows.

#[tokio::test]
async fn count_windows_report_their_buffer() {
    let out = source::iter(0..10u32).tumbling_count(nz(4)).to(sink::count()).run().await.unwrap();
    assert_eq!(out.value, 3);
    let stage = out.stats.metrics.stage("tumbling_count").unwrap().clone();
    assert_eq!(
        (stage.elements_in, stage.elements_out, stage.buffer_capacity, stage.buffer_depth),
        (10, 3, 4, 0)
    );
}

#[tokio::test]
async fn an_empty_stream_emits_no_window() {
    let out = source::iter(Vec::<u32>::new()).tumbling_count(nz(4)).to(sink::count()).run().await.unwrap();
    assert_eq!(out.value, 0);
    let out =
        source::iter(Vec::<u32>::new()).sliding_count(nz(4), nz(1)).to(sink::count()).run().await.unwrap();
    assert_eq!(out.value, 0);
}

#[tokio::test]
async fn sliding_count_counts_the_elements_between_hopping_windows_as_dropped() {
    let out = source::iter(0..8u32)
        .sliding_count(nz(2), nz(3))
        .map(|window| (window.start, window.end, window.items))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(0, 2, vec![0, 1]), (3, 5, vec![3, 4]), (6, 8, vec![6, 7])]);
    assert_eq!(out.stats.metrics.stage("sliding_count").unwrap().dropped, 2);
}

#[tokio::test]
async fn windows_work_inside_a_reusable_flow() {
    let sums = flow::identity::<u32>().tumbling_count(nz(2)).map(|window| window.items.iter().sum::<u32>());
    let out = source::iter(1..=5).via(sums).to(sink::collect()).run().await.unwrap();
    assert_eq!(out.value, vec![3, 7, 5]);
}

// ---------------------------------------------------------------------------------------------
// Event time.

#[tokio::test]
async fn event_time_closes_the_oldest_window_early_beyond_max_open_windows() {
    let late = Arc::new(Mutex::new(Vec::new()));
    let late_sink = late.clone();
    let lateness = Lateness::allowed(1_000).with_side_output(move |late: LateElement<u64>| {
        late_sink.lock().unwrap().push((late.element, late.watermark))
    });
    let config = WindowConfig::default().with_max_open_windows(nz(2));
    let out = source::iter([5u64, 15, 25, 7, 16])
        .tumbling_event_time(nz64(10), |t| *t, lateness, config)
        .map(|window| (window.start, window.items, window.truncated))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(0, vec![5], true), (10, vec![15, 16], false), (20, vec![25], false)]);
    // Closing 0..10 early moved the watermark to 10: 7 is late.
    assert_eq!(*late.lock().unwrap(), vec![(7, 10)]);
    assert_eq!(out.stats.metrics.stage("tumbling_event_time").unwrap().dropped, 1);
}

#[tokio::test]
async fn event_time_sessions_merge_and_split_their_overflow() {
    // Two sessions of two elements, bridged by a third, with at most three elements per window.
    let config = WindowConfig::new(nz(3));
    let out = source::iter([0u64, 5, 20, 25, 12])
        .session_event_time(nz64(10), |t| *t, Lateness::allowed(100), config)
        .map(|window| (window.start, window.end, window.items, window.truncated))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(0, 35, vec![0, 5, 20], true), (0, 35, vec![25, 12], true)]);
}

#[tokio::test]
async fn keyed_event_time_windows_keep_a_watermark_per_key() {
    use pump_core::flow::window::TumblingEventTime;
    let spec = TumblingEventTime::new(
        nz64(10),
        |(_, t): &(char, u64)| *t,
        Lateness::allowed(0),
        WindowConfig::default(),
    );
    let out = source::iter([('a', 1), ('b', 50), ('a', 5), ('a', 12), ('b', 3)])
        .key_by(|(key, _)| *key, KeyedConfig::new(nz(8)))
        .window(spec)
        .map(|(key, window)| (key, window.start, window.items.len()))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    // b's watermark (50) does not close a's window 0..10; a's own 12 does. b's 3 is late for b.
    assert_eq!(out.value, vec![('a', 0, 2), ('a', 10, 1), ('b', 50, 1)]);
    assert_eq!(out.stats.metrics.stage("keyed_windows").unwrap().dropped, 1);
}

// ---------------------------------------------------------------------------------------------
// Keyed.

#[tokio::test]
async fn an_evicted_key_emits_its_partial_window_first() {
    let out = source::iter([("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)])
        .key_by(|(key, _)| *key, KeyedConfig::new(nz(1)))
        .window(TumblingCount::new(nz(3)))
        .map(|(key, window)| (key, window.start, window.items.iter().map(|(_, x)| *x).collect::<Vec<_>>()))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.value,
        vec![("a", 0, vec![1, 2]), ("b", 0, vec![1]), ("a", 0, vec![3]), ("b", 0, vec![2])],
        "each eviction flushes, and a returning key starts afresh"
    );
    let stage = out.stats.metrics.stage("keyed_windows").unwrap().clone();
    assert_eq!((stage.buffer_capacity, stage.buffer_depth), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_after_the_timeout() {
    let start = Instant::now();
    let schedule = vec![(0, ("a", 1)), (500, ("b", 10)), (800, ("a", 2)), (3_000, ("b", 20))];
    let config = KeyedConfig::new(nz(16)).with_idle_timeout(Duration::from_secs(1));
    let out = arrivals(start, schedule, 5_000)
        .key_by(|(key, _)| *key, config)
        .fold(0, |sum, (_, x)| sum + x)
        .map(move |(key, sum)| (since(start, Instant::now()), key, sum))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![(1_500, "b", 10), (1_800, "a", 3), (4_000, "b", 20)]);
}

#[tokio::test(start_paused = true)]
async fn keyed_time_windows_fire_per_key_on_the_shared_grid() {
    let start = Instant::now();
    let schedule = vec![(100, ("a", 1)), (200, ("b", 1)), (1_100, ("b", 2)), (1_300, ("a", 2))];
    let out = arrivals(start, schedule, 5_000)
        .key_by(|(key, _)| *key, KeyedConfig::new(nz(16)))
        .window(TumblingTime::new(Duration::from_secs(1), WindowConfig::default()))
        .map(move |(key, window)| (key, seen(start, window)))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    let values = |items: &[(&str, i32)]| items.iter().map(|(_, x)| *x).collect::<Vec<_>>();
    let summary: Vec<_> = out
        .value
        .iter()
        .map(|(key, (at, from, to, items, _))| (*key, *at, *from, *to, values(items)))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a", 1_000, 0, 1_000, vec![1]),
            ("b", 1_000, 0, 1_000, vec![1]),
            // Timers due at the same instant fire in the order the keys arrived.
            ("a", 2_000, 1_000, 2_000, vec![2]),
            ("b", 2_000, 1_000, 2_000, vec![2]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn keyed_sessions_close_per_key_and_idle_keys_leave() {
    let start = Instant::now();
    let schedule = vec![(0, ("a", 1)), (50, ("b", 1)), (120, ("a", 2)), (400, ("a", 3))];
    let config = KeyedConfig::new(nz(16)).with_idle_timeout(ms(300));
    let out = arrivals(start, schedule, 2_000)
        .key_by(|(key, _)| *key, config)
        .window(SessionTime::new(ms(200), WindowConfig::default()))
        .map(move |(key, window)| (key, since(start, Instant::now()), window.items.len()))
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(out.value, vec![("b", 250, 1), ("a", 320, 2), ("a", 600, 1)]);
    let stage = out.stats.metrics.stage("keyed_windows").unwrap().clone();
    assert_eq!(stage.buffer_depth, 0);
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Runs a keyed fold through a reference LRU model: the live `buffer_depth` never exceeds `max_keys`
/// and the emitted `(key, sum)` sequence equals the model's.
fn check_keyed_fold(keys: Vec<u8>, max_keys: usize) -> Result<(), TestCaseError> {
    let mut model: Vec<(u8, u64)> = Vec::new();
    let mut expected = Vec::new();
    for &key in &keys {
        if let Some(position) = model.iter().position(|(k, _)| *k == key) {
            let (k, sum) = model.remove(position);
            model.push((k, sum + 1));
        } else {
            if model.len() == max_keys {
                expected.push(model.remove(0));
            }
            model.push((key, 1));
        }
    }
    expected.extend(model);

    let controls: Arc<OnceLock<RunControls>> = Arc::new(OnceLock::new());
    let peak = Arc::new(Mutex::new(0u64));
    let (observer, peak_seen) = (controls.clone(), peak.clone());
    let graph = source::iter(keys)
        .inspect(move |_| {
            // Runs before the keyed stage takes the element: the depth after the previous one.
            let depth = observer.get().unwrap().metrics().stage("keyed_fold").unwrap().buffer_depth;
            let mut peak = peak_seen.lock().unwrap();
            *peak = (*peak).max(depth);
        })
        .key_by(|key| *key, KeyedConfig::new(nz(max_keys)))
        .fold(0u64, |sum, _| sum + 1)
        .to(sink::collect());
    controls.set(graph.controls()).unwrap();
    let out = current_thread().block_on(graph.run()).unwrap();
    prop_assert_eq!(out.value, expected);
    prop_assert!(*peak.lock().unwrap() <= max_keys as u64);
    prop_assert_eq!(out.stats.metrics.stage("keyed_fold").unwrap().buffer_capacity, max_keys as u64);
    Ok(())
}

/// The number of emitted `sliding_count(size, step)` windows holding element `i` of `n`:
/// full windows `k` (`k * step + size <= n`) with `k * step <= i < k * step + size`, plus the trailing
/// partial window `j = full` (`[j * step, n)`), emitted only when `n` passes the last full window's end
/// (with no full window: when `n > 0`).
fn sliding_coverage(i: usize, n: usize, size: usize, step: usize) -> usize {
    let full = if n >= size { (n - size) / step + 1 } else { 0 };
    let in_full = (0..full).filter(|k| k * step <= i && i < k * step + size).count();
    let emitted_up_to = if full > 0 { (full - 1) * step + size } else { 0 };
    let partial = n > emitted_up_to && full * step < n && full * step <= i;
    in_full + usize::from(partial)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Tumbling count windows partition the input: concatenated they are the input, every window but
    /// the last has exactly `size` elements, the last 1..=size, and the bounds are sequence numbers.
    #[test]
    fn tumbling_count_partitions_the_input(
        input in proptest::collection::vec(any::<u16>(), 0..300),
        size in 1usize..20,
    ) {
        let windows = current_thread()
            .block_on(source::iter(input.clone()).tumbling_count(nz(size)).to(sink::collect()).run())
            .unwrap()
            .value;
        let concatenated: Vec<u16> = windows.iter().flat_map(|window| window.items.clone()).collect();
        prop_assert_eq!(&concatenated, &input);
        prop_assert_eq!(windows.len(), input.len().div_ceil(size));
        let mut next_start = 0u64;
        for (index, window) in windows.iter().enumerate() {
            if index + 1 < windows.len() {
                prop_assert_eq!(window.items.len(), size);
            } else {
                prop_assert!((1..=size).contains(&window.items.len()));
            }
            prop_assert_eq!(window.start, next_start);
            prop_assert_eq!(window.end - window.start, window.items.len() as u64);
            prop_assert!(!window.truncated);
            next_start = window.end;
        }
    }

    /// Sliding count windows cover the input as promised: window `k` is the slice
    /// `input[k * step .. k * step + size]` (cut at the end), and element `i` appears in exactly
    /// `sliding_coverage(i, n, size, step)` windows, which for `step <= size`, away from the edges, is
    /// `floor(size / step)` or `ceil(size / step)`. Elements in no window are counted as dropped.
    #[test]
    fn sliding_count_covers_each_element_as_promised(
        n in 0usize..120,
        size in 1usize..12,
        step in 1usize..12,
    ) {
        let input: Vec<usize> = (0..n).collect();
        let out = current_thread()
            .block_on(source::iter(input).sliding_count(nz(size), nz(step)).to(sink::collect()).run())
            .unwrap();
        let mut coverage = vec![0usize; n];
        for (k, window) in out.value.iter().enumerate() {
            let start = k * step;
            let end = (start + size).min(n);
            prop_assert_eq!(window.start, start as u64);
            prop_assert_eq!(window.end, end as u64);
            prop_assert_eq!(&window.items, &(start..end).collect::<Vec<_>>());
            for &i in &window.items {
                coverage[i] += 1;
            }
        }
        for (i, &count) in coverage.iter().enumerate() {
            prop_assert_eq!(count, sliding_coverage(i, n, size, step), "element {}", i);
            if step <= size && i + 1 >= size && i + size <= n {
                prop_assert!(count == size / step || count == size.div_ceil(step));
            }
        }
        let uncovered = coverage.iter().filter(|&&count| count == 0).count() as u64;
        prop_assert_eq!(out.stats.metrics.stage("sliding_count").unwrap().dropped, uncovered);
    }

    /// Event-time sessions split exactly at gaps >= `gap`, whatever the arrival order (with a lateness
    /// that drops nothing): each session holds the timestamps of one run of the sorted timestamps whose
    /// consecutive differences are below `gap`, and spans `[first, last + gap)`.
    #[test]
    fn event_time_sessions_split_exactly_at_gaps(
        steps in proptest::collection::vec(0u64..40, 1..80),
        gap in 1u64..30,
        order_seed in any::<u64>(),
    ) {
        let mut timestamps: Vec<u64> = steps.iter().scan(0u64, |t, step| { *t += step; Some(*t) }).collect();
        let mut expected: Vec<Vec<u64>> = Vec::new();
        for &t in &timestamps {
            match expected.last_mut() {
                Some(run) if t - run.last().copied().unwrap_or(t) < gap => run.push(t),
                _ => expected.push(vec![t]),
            }
        }
        fastrand::Rng::with_seed(order_seed).shuffle(&mut timestamps);
        let out = current_thread()
            .block_on(
                source::iter(timestamps)
                    .session_event_time(
                        nz64(gap),
                        |t| *t,
                        Lateness::allowed(u64::MAX),
                        WindowConfig::default().with_max_open_windows(nz(4_096)),
                    )
                    .to(sink::collect())
                    .run(),
            )
            .unwrap();
        let mut sessions: Vec<(u64, u64, Vec<u64>)> = out
            .value
            .into_iter()
            .map(|window| {
                let mut items = window.items;
                items.sort_unstable();
                (window.start, window.end, items)
            })
            .collect();
        sessions.sort();
        let expected: Vec<(u64, u64, Vec<u64>)> =
            expected.into_iter().map(|run| (run[0], run[run.len() - 1] + gap, run)).collect();
        prop_assert_eq!(sessions, expected);
    }

    /// Processing-time sessions (paused time, generated gaps) split exactly at gaps >= `gap` and are
    /// emitted exactly `gap` after their last element.
    #[test]
    fn processing_time_sessions_split_at_gaps_and_close_on_time(
        gaps in proptest::collection::vec(1u64..300, 1..40),
        gap in 1u64..200,
    ) {
        let times: Vec<u64> = gaps.iter().scan(0u64, |t, step| { *t += step; Some(*t) }).collect();
        let mut expected: Vec<(u64, Vec<u64>)> = Vec::new();
        for &t in &times {
            match expected.last_mut() {
                Some((_, run)) if t - run[run.len() - 1] < gap => run.push(t),
                _ => expected.push((0, vec![t])),
            }
        }
        for (emitted_at, run) in &mut expected {
            *emitted_at = run[run.len() - 1] + gap;
        }
        let end = times[times.len() - 1] + gap + 1;
        let out = paused_current_thread().block_on(async move {
            let start = Instant::now();
            let schedule = times.iter().map(|&t| (t, t)).collect();
            arrivals(start, schedule, end)
                .session_time(ms(gap), WindowConfig::default())
                .map(move |window| (since(start, Instant::now()), window.items))
                .to(sink::collect())
                .run()
                .await
                .unwrap()
        });
        prop_assert_eq!(out.value, expected);
    }

    /// Processing-time tumbling windows (paused time): each window holds exactly the elements that
    /// arrived in its slot and is emitted exactly at the slot's end.
    #[test]
    fn tumbling_time_windows_hold_their_slot_and_close_on_time(
        gaps in proptest::collection::vec(0u64..200, 1..50),
        size in 1u64..300,
    ) {
        let times: Vec<u64> = gaps.iter().scan(0u64, |t, step| { *t += step; Some(*t) }).collect();
        let mut expected: Vec<(u64, u64, Vec<u64>)> = Vec::new();
        for &t in &times {
            let slot_start = t / size * size;
            match expected.last_mut() {
                Some((start, _, items)) if *start == slot_start => items.push(t),
                _ => expected.push((slot_start, slot_start + size, vec![t])),
            }
        }
        let end = times[times.len() - 1] + size + 1;
        let out = paused_current_thread().block_on(async move {
            let start = Instant::now();
            let schedule = times.iter().map(|&t| (t, t)).collect();
            arrivals(start, schedule, end)
                .tumbling_time(ms(size), WindowConfig::default())
                .map(move |window| seen(start, window))
                .to(sink::collect())
                .run()
                .await
                .unwrap()
        });
        let expected: Vec<Seen<u64>> =
            expected.into_iter().map(|(from, to, items)| (to, from, to, items, false)).collect();
        prop_assert_eq!(out.value, expected);
    }

    /// Keyed state never holds more than `max_keys` keys, and eviction is least-recently-used with the
    /// pending fold emitted (compared with a reference model).
    #[test]
    fn keyed_state_never_exceeds_max_keys(
        keys in proptest::collection::vec(0u8..12, 0..200),
        max_keys in 1usize..8,
    ) {
        check_keyed_fold(keys, max_keys)?;
    }

    /// Event time with allowed lateness drops exactly the late elements: an element is late when its
    /// window's end is at or before the watermark (largest timestamp so far, itself included, minus the
    /// allowed lateness). Late elements reach the side output in arrival order and are counted as
    /// dropped; every other element is in exactly one window, the one containing its timestamp;
    /// windows come out in order.
    #[test]
    fn event_time_drops_exactly_the_late_elements(
        timestamps in proptest::collection::vec(0u64..2_000, 0..150),
        size in 1u64..200,
        allowed in 0u64..400,
    ) {
        let mut max_timestamp = 0u64;
        let mut expected_late = Vec::new();
        for (id, &t) in timestamps.iter().enumerate() {
            max_timestamp = max_timestamp.max(t);
            let watermark = max_timestamp.saturating_sub(allowed);
            if (t / size + 1) * size <= watermark {
                expected_late.push(id);
            }
        }
        let late = Arc::new(Mutex::new(Vec::new()));
        let late_sink = late.clone();
        let lateness = Lateness::allowed(allowed)
            .with_side_output(move |late: LateElement<(usize, u64)>| {
                late_sink.lock().unwrap().push(late.element.0);
            });
        let config = WindowConfig::default().with_max_open_windows(nz(4_096));
        let elements: Vec<(usize, u64)> = timestamps.iter().copied().enumerate().collect();
        let out = current_thread()
            .block_on(
                source::iter(elements)
                    .tumbling_event_time(nz64(size), |(_, t)| *t, lateness, config)
                    .to(sink::collect())
                    .run(),
            )
            .unwrap();
        prop_assert_eq!(&*late.lock().unwrap(), &expected_late);
        let dropped = out.stats.metrics.stage("tumbling_event_time").unwrap().dropped;
        prop_assert_eq!(dropped, expected_late.len() as u64);
        let mut windowed: Vec<usize> = Vec::new();
        let mut previous_start = None;
        for window in &out.value {
            prop_assert_eq!(window.start % size, 0);
            prop_assert_eq!(window.end - window.start, size);
            prop_assert!(previous_start < Some(window.start), "windows in order, each once");
            previous_start = Some(window.start);
            for &(id, t) in &window.items {
                prop_assert!(window.start <= t && t < window.end);
                windowed.push(id);
            }
        }
        windowed.sort_unstable();
        let on_time: Vec<usize> = (0..timestamps.len()).filter(|id| !expected_late.contains(id)).collect();
        prop_assert_eq!(windowed, on_time);
    }

    /// Sliding event-time windows: every on-time element is in exactly the windows that contain its
    /// timestamp (`size / slide` of them when `slide` divides `size`), windows are bounded by the grid.
    #[test]
    fn sliding_event_time_places_each_element_in_every_window_containing_it(
        timestamps in proptest::collection::vec(0u64..1_000, 0..100),
        slide in 1u64..20,
        factor in 1u64..5,
    ) {
        let size = slide * factor;
        let out = current_thread()
            .block_on(
                source::iter(timestamps.clone())
                    .sliding_event_time(
                        nz64(size),
                        nz64(slide),
                        |t| *t,
                        Lateness::allowed(u64::MAX),
                        WindowConfig::default().with_max_open_windows(nz(4_096)),
                    )
                    .to(sink::collect())
                    .run(),
            )
            .unwrap();
        let mut appearances = std::collections::HashMap::<u64, usize>::new();
        for window in &out.value {
            prop_assert_eq!(window.start % slide, 0);
            prop_assert_eq!(window.end - window.start, size);
            for &t in &window.items {
                prop_assert!(window.start <= t && t < window.end);
                *appearances.entry(t).or_default() += 1;
            }
        }
        for &t in &timestamps {
            let copies = timestamps.iter().filter(|&&other| other == t).count();
            let windows = (t / slide + 1).min(factor) as usize;
            prop_assert_eq!(appearances.get(&t).copied().unwrap_or(0), copies * windows, "timestamp {}", t);
        }
    }
}
