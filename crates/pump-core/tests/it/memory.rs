//! Bounded memory: however long the input, the elements held inside a pipeline never exceed what its
//! configured buffers can hold.
//!
//! One test per operator that holds elements, each with its bound computed from the operator's
//! configuration (the comment above each test derives it from the operator's code) and asserted, and
//! with a check that the run really reached (or came close to) the bound, so that the assertion is put
//! to the test: a bound smaller than the one computed would fail. Most tests count live elements
//! with [`Tracked`], a value that counts itself when created or cloned and uncounts itself when
//! dropped, so a window's copies and a fan-out's clones count too.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use pump_core::fan::{self, FanOutConfig};
use pump_core::flow::window::{KeyedConfig, Lateness, TumblingCount, Window, WindowConfig};
use pump_core::prelude::*;

const ELEMENTS: u64 = 10_000_000;
const MAP_ASYNC_PARALLELISM: usize = 8;
const BATCH_SIZE: usize = 1000;
const BOUNDARY_CAPACITY: usize = 64;

/// Ten million elements through every kind of buffer, with a consumer slower than the producer, so
/// that every buffer fills. The source counts what it produces, the sink (and the filter, for the
/// elements it discards) counts what it has finished with; at each new element the source records
/// how many are alive inside the pipeline.
///
/// Where an element can be, between being produced and being consumed, and how many can be there
/// when the source produces one more (read from the operators' code):
///
/// - `map` and `filter` are fused and hold nothing; a filtered-out element is consumed on the spot.
/// - `map_async(8)` holds at most 8 elements, running or finished but not yet emitted, and it pulls
///   only when it holds fewer than 8: the new element is one of those 8.
/// - `batch(1000, _)` holds at most 999 elements: it emits as soon as it has 1000.
/// - `async_boundary(64)` holds 64 batches in its queue. Its producer task holds one more batch
///   while it waits for room, but then it is not pulling from upstream, so no element is produced
///   meanwhile.
/// - Downstream of the boundary, the slow `map_async(1)` and the fold between them hold one batch:
///   the fold counts a batch in one call, and `map_async(1)` takes the next only after that.
///
/// The source's yield every 256 elements holds nothing. Hence the bound below.
#[tokio::test(start_paused = true)]
async fn ten_million_elements_stay_within_the_configured_buffers() {
    let bound = MAP_ASYNC_PARALLELISM as u64
        + (BATCH_SIZE as u64 - 1)
        + (BOUNDARY_CAPACITY * BATCH_SIZE) as u64
        + BATCH_SIZE as u64;

    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let most_alive = Arc::new(AtomicU64::new(0));
    let instrumented = {
        let (produced, consumed, most_alive) =
            (Arc::clone(&produced), Arc::clone(&consumed), Arc::clone(&most_alive));
        futures::stream::iter(0..ELEMENTS).map(move |x| {
            let produced = produced.fetch_add(1, Ordering::SeqCst) + 1;
            let alive = produced.saturating_sub(consumed.load(Ordering::SeqCst));
            most_alive.fetch_max(alive, Ordering::SeqCst);
            x
        })
    };
    let filtered_out = Arc::clone(&consumed);
    let counted = Arc::clone(&consumed);

    let outcome = source::from_stream(instrumented)
        .map(|x| x * 3)
        .filter(move |x| {
            let keep = x % 5 != 0;
            if !keep {
                filtered_out.fetch_add(1, Ordering::SeqCst);
            }
            keep
        })
        .map_async(NonZeroUsize::new(MAP_ASYNC_PARALLELISM).unwrap(), |x| async move { x + 1 })
        .batch(NonZeroUsize::new(BATCH_SIZE).unwrap(), Duration::from_millis(100))
        .async_boundary(NonZeroUsize::new(BOUNDARY_CAPACITY).unwrap())
        // The slow consumer: a (paused-time) millisecond per batch, during which the producer runs
        // until the boundary is full.
        .map_async(NonZeroUsize::MIN, |batch: Vec<u64>| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            batch
        })
        .to(sink::fold(0u64, move |sum, batch: Vec<u64>| {
            let mut sum = sum;
            for x in batch {
                sum = sum.wrapping_add(x);
                counted.fetch_add(1, Ordering::SeqCst);
            }
            sum
        }))
        .run()
        .await
        .unwrap();

    let expected_sum =
        (0..ELEMENTS).map(|x| x * 3).filter(|x| x % 5 != 0).map(|x| x + 1).fold(0u64, u64::wrapping_add);
    assert_eq!(outcome.value, expected_sum);
    assert_eq!(produced.load(Ordering::SeqCst), ELEMENTS);
    assert_eq!(consumed.load(Ordering::SeqCst), ELEMENTS);

    let most_alive = most_alive.load(Ordering::SeqCst);
    assert!(most_alive <= bound, "{most_alive} elements were alive at once, more than the buffers' {bound}");
    // The slow consumer kept the boundary full, so the bound was really put to the test.
    assert!(
        most_alive >= (BOUNDARY_CAPACITY * BATCH_SIZE) as u64,
        "only {most_alive} elements were ever alive: the buffers never filled"
    );
}

// ---------------------------------------------------------------------------------------------------
// Every other operator that holds elements, counted with `Tracked`.

/// The live [`Tracked`] values of one test, and the most that were alive at once.
struct Gauge {
    alive: AtomicU64,
    most: AtomicU64,
}

impl Gauge {
    const fn new() -> Gauge {
        Gauge { alive: AtomicU64::new(0), most: AtomicU64::new(0) }
    }

    fn enter(&self) {
        let alive = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(alive, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }

    fn alive(&self) -> u64 {
        self.alive.load(Ordering::SeqCst)
    }

    fn most(&self) -> u64 {
        self.most.load(Ordering::SeqCst)
    }
}

/// An element that is counted on its test's [`Gauge`] from its creation (or clone) to its drop, so the
/// gauge sees every copy held anywhere in the pipeline: in a buffer, a window, a lane, a consumer.
struct Tracked {
    value: u64,
    gauge: &'static Gauge,
}

impl Tracked {
    fn new(value: u64, gauge: &'static Gauge) -> Tracked {
        gauge.enter();
        Tracked { value, gauge }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Tracked {
        Tracked::new(self.value, self.gauge)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.gauge.leave();
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// The sum of `0..n`, what every test's sink must see (each element exactly once).
fn sum_below(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// Checks the gauge after a run: nothing left alive, at most `bound` alive at once, and at least
/// `filled` (the run did fill the buffers, so the bound was put to the test).
fn assert_within(gauge: &Gauge, bound: u64, filled: u64) {
    assert_eq!(gauge.alive(), 0, "elements outlived the run");
    let most = gauge.most();
    assert!(most <= bound, "{most} elements were alive at once, more than the bound of {bound}");
    assert!(
        most >= filled,
        "only {most} elements were ever alive at once: the buffers never filled to {filled}"
    );
}

/// A fan-out consumer slower than the source: a (paused-time) millisecond per element in a
/// `map_async(1)`, which holds the one element it works on; the sink keeps the sum.
fn slow_consumer() -> impl Sink<Tracked, Output = u64> {
    flow::identity::<Tracked>()
        .map_async(NonZeroUsize::MIN, |element: Tracked| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            element.value
        })
        .to(sink::fold(0u64, |sum, x: u64| sum + x))
}

const MAP_BLOCKING_PARALLELISM: usize = 2;
const MAP_BLOCKING_CHUNK: usize = 64;

/// `map_blocking(p)` with chunks of at most `c` (here `c` = 64, the size of the first chunks too, so
/// every chunk has `c` elements): it pulls from upstream only while fewer than `2p` chunks are in
/// flight (queued, running, finished out of order), and takes results only once the outputs of the
/// chunks already put back in order (`ready`) have all been taken downstream. Results come back in
/// order, so at most the `2p` chunks in flight become ready at once. When the source produces an
/// element: at most `2p - 1` chunks in flight plus the chunk being gathered, and at most `2p` chunks
/// of ready outputs: `4 p c` elements. An element taken downstream leaves `ready` first, and the
/// consumer (fused here) drops it before the stage is polled again.
///
/// Filled: before it hands out the first output of a chunk it refills the `2p` chunks in flight from
/// the always-ready source, so `(2p + 1) c` elements are alive at once whatever the threads do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_blocking_holds_at_most_four_chunks_per_worker() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 200_000;
    let (parallelism, chunk) = (MAP_BLOCKING_PARALLELISM, MAP_BLOCKING_CHUNK);
    let bound = (4 * parallelism * chunk) as u64;
    let filled = ((2 * parallelism + 1) * chunk) as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .via(
            pump_core::flow::MapBlocking::new(nz(parallelism), |element: Tracked| element)
                .max_chunk(nz(chunk)),
        )
        .to(sink::fold(0u64, |sum, element: Tracked| sum + element.value))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&GAUGE, bound, filled);
}

/// Waits until at least `target` tracked elements are alive, for at most ten seconds (real time): a
/// consumer that pauses here lets the buffers upstream of it fill, as a slow consumer would.
async fn hold_until_alive(gauge: &Gauge, target: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gauge.alive() < target && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(feature = "json")]
static FILE_GAUGE: Gauge = Gauge::new();

/// A JSON-lines record (a number) counted on [`FILE_GAUGE`] from the moment the reader thread parses
/// it.
#[cfg(feature = "json")]
struct FileElement(Tracked);

#[cfg(feature = "json")]
impl<'de> serde::Deserialize<'de> for FileElement {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FileElement, D::Error> {
        u64::deserialize(deserializer).map(|value| FileElement(Tracked::new(value, &FILE_GAUGE)))
    }
}

/// A file source (`json_lines`, `csv` and `text_lines` share the reader): the reader thread takes a
/// slot of a channel of capacity 2 before it parses the records of a chunk of `CHUNK_LEN`, and the
/// async side hands out the records of the chunk it received last. So at most two chunks are queued
/// or being filled while a third is handed out: `3 × CHUNK_LEN` parsed records, the one a consumer
/// holds included (a `map_async(1)` takes the next only when it is done with one).
///
/// Filled: the consumer holds the first record until the reader has filled both slots; the bound is
/// then reached exactly.
#[cfg(feature = "json")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_holds_at_most_three_chunks_of_records() {
    use pump_core::source::file::CHUNK_LEN;
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numbers.jsonl");
    let lines: String = (0..N).map(|x| format!("{x}\n")).collect();
    std::fs::write(&path, lines).unwrap();
    let bound = 3 * CHUNK_LEN as u64;

    let outcome = source::json_lines::<FileElement>(&path)
        .map_async(NonZeroUsize::MIN, move |record| async move {
            let element = record.unwrap().value.0;
            if element.value == 0 {
                hold_until_alive(&FILE_GAUGE, bound).await;
            }
            element.value
        })
        .to(sink::fold(0u64, |sum, x: u64| sum + x))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&FILE_GAUGE, bound, bound);
}

/// `delay(by, max_in_flight)` pulls only while it holds fewer than `max_in_flight` elements, so the
/// element the source produces is at most the `max_in_flight`-th; the sink drops each element it is
/// handed before the stage is polled again. Filled: the source is always ready, so the stage fills.
#[tokio::test(start_paused = true)]
async fn delay_holds_at_most_max_in_flight() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 20_000;
    const MAX_IN_FLIGHT: usize = 100;
    let bound = MAX_IN_FLIGHT as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .delay(Duration::from_millis(1), nz(MAX_IN_FLIGHT))
        .to(sink::fold(0u64, |sum, element: Tracked| sum + element.value))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}

/// `tumbling_count(size)` moves its `size` elements into the window it emits (no copy), and the sink
/// drops the window before the stage pulls again: `size` alive at most, reached by every window.
#[tokio::test]
async fn tumbling_count_holds_at_most_one_window() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 100_000;
    const SIZE: usize = 100;
    let bound = SIZE as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .tumbling_count(nz(SIZE))
        .to(sink::fold(0u64, window_sum))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}

/// `sliding_count(size, step)` keeps the last `size` elements; when they are `size`, it clones them into
/// the window it emits, then drops the oldest `step`. Copies alive: the `size` kept plus the `size`
/// copies of the window on its way to the sink, `2 × size`, reached at every window.
#[tokio::test]
async fn sliding_count_holds_its_last_elements_and_the_window_it_emits() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 100_000;
    const SIZE: usize = 100;
    const STEP: usize = 25;
    let bound = 2 * SIZE as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .sliding_count(nz(SIZE), nz(STEP))
        .to(sink::fold(0u64, |windows, _window| windows + 1))
        .run()
        .await
        .unwrap();

    // Windows start every STEP elements; the last full one ends at N; no partial window is left
    // with an element no emitted window held.
    assert_eq!(outcome.value, (N - SIZE as u64) / STEP as u64 + 1);
    assert_within(&GAUGE, bound, bound);
}

/// A source of one tracked element per (paused-time) millisecond, created as it arrives.
fn one_per_millisecond(n: u64, gauge: &'static Gauge) -> impl Source<Item = Tracked> {
    source::iter(0..n).map_async(NonZeroUsize::MIN, move |x| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Tracked::new(x, gauge)
    })
}

/// The sum of every element of every window (each element once per window that holds it).
fn window_sum<B>(sum: u64, window: Window<Tracked, B>) -> u64 {
    sum + window.items.iter().map(|element| element.value).sum::<u64>()
}

/// `sliding_time` with a `WindowConfig` of `max_elements` per window and `max_open_windows`: between
/// two elements every open window holds at most `max_elements`, and at most `max_open_windows` are
/// open (a window beyond that closes the oldest early, moving its elements out). An arriving element
/// is cloned into each open window; a full window first moves its elements into an emitted part. So
/// at most `max_elements × max_open_windows` held, plus one copy of the new element per open window:
/// `(max_elements + 1) × max_open_windows`.
///
/// Here windows of 400 ms start every 100 ms (four would overlap) but only two may be open; elements
/// arrive every millisecond, so both open windows receive the same elements and fill together.
#[tokio::test(start_paused = true)]
async fn sliding_time_holds_at_most_its_configured_windows() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 3_000;
    const MAX_ELEMENTS: usize = 50;
    const MAX_OPEN: usize = 2;
    let config = WindowConfig::new(nz(MAX_ELEMENTS)).with_max_open_windows(nz(MAX_OPEN));
    assert_eq!(config.max_held(), MAX_ELEMENTS * MAX_OPEN);
    let bound = ((MAX_ELEMENTS + 1) * MAX_OPEN) as u64;

    let outcome = one_per_millisecond(N, &GAUGE)
        .sliding_time(Duration::from_millis(400), Duration::from_millis(100), config)
        .to(sink::fold(0u64, window_sum))
        .run()
        .await
        .unwrap();

    assert!(outcome.value >= sum_below(N), "every element is in at least one window");
    assert_within(&GAUGE, bound, bound);
}

/// `session_time` has one session open at a time; a full session emits its `max_elements` as an early
/// part when the next element arrives: `max_elements + 1` alive at most, reached at every part.
#[tokio::test(start_paused = true)]
async fn session_time_holds_at_most_one_session() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 2_000;
    const MAX_ELEMENTS: usize = 50;
    let bound = MAX_ELEMENTS as u64 + 1;

    let outcome = one_per_millisecond(N, &GAUGE)
        .session_time(Duration::from_millis(10), WindowConfig::new(nz(MAX_ELEMENTS)))
        .to(sink::fold(0u64, window_sum))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}

/// Event time with a large allowed lateness keeps windows open long after their end; the
/// `max_open_windows` bound closes the oldest early instead. Timestamps 0, 1, 2, ... in windows of 10:
/// when an element opens a new window, the open ones hold `max_elements` each (a window holds exactly
/// its 10 timestamps) and the oldest is moved out: `max_elements × max_open_windows + 1`.
#[tokio::test]
async fn event_time_windows_hold_at_most_their_configured_windows() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 100_000;
    const SIZE: u64 = 10;
    const MAX_OPEN: usize = 8;
    let config = WindowConfig::new(nz(SIZE as usize)).with_max_open_windows(nz(MAX_OPEN));
    let bound = config.max_held() as u64 + 1;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .tumbling_event_time(
            std::num::NonZeroU64::new(SIZE).unwrap(),
            |element: &Tracked| element.value,
            Lateness::allowed(1_000),
            config,
        )
        .to(sink::fold(0u64, window_sum))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}

/// Keyed windows: `max_keys` keys, each with its own `tumbling_count(size)`, which holds at most
/// `size - 1` elements between two elements (it emits when full). So at most `max_keys × (size - 1)`
/// held when an element arrives, plus that element. Filled: the keys take turns, so every key holds
/// `size - 1` just before the element that completes the first key's window.
#[tokio::test]
async fn keyed_windows_hold_at_most_max_keys_windows() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 100_000;
    const KEYS: usize = 16;
    const SIZE: usize = 32;
    let bound = (KEYS * (SIZE - 1) + 1) as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .key_by(|element: &Tracked| element.value % KEYS as u64, KeyedConfig::new(nz(KEYS)))
        .window(TumblingCount::new(nz(SIZE)))
        .to(sink::fold(0u64, |sum, (_key, window)| window_sum(sum, window)))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}

/// Keyed state under eviction: 1,000 keys in turn through a `key_by` that holds at most 64. Each key's
/// state is a tracked accumulator (the folded elements are dropped as they are folded). When a new key
/// arrives at a full table, the least recently used key's accumulator is moved out to be emitted, then
/// the new key's is cloned from `init`: `max_keys - 1` held, the evicted one, the new one and `init`
/// itself, `max_keys + 2` at most, reached at every eviction.
#[tokio::test]
async fn keyed_state_holds_at_most_max_keys_states() {
    static ELEMENTS: Gauge = Gauge::new();
    static STATES: Gauge = Gauge::new();
    const N: u64 = 100_000;
    const DISTINCT_KEYS: u64 = 1_000;
    const MAX_KEYS: usize = 64;
    let bound = MAX_KEYS as u64 + 2;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &ELEMENTS))
        .key_by(|element: &Tracked| element.value % DISTINCT_KEYS, KeyedConfig::new(nz(MAX_KEYS)))
        .fold(Tracked::new(0, &STATES), |mut state: Tracked, element: Tracked| {
            state.value += element.value;
            state
        })
        .to(sink::fold(0u64, |sum, (_key, state): (u64, Tracked)| sum + state.value))
        .run()
        .await
        .unwrap();

    assert_eq!(outcome.value, sum_below(N));
    assert_within(&STATES, bound, bound);
    // Folding keeps no element: each is dropped as soon as it is folded.
    assert_within(&ELEMENTS, 1, 1);
}

const LANE_CAPACITY: usize = 16;
const CONSUMERS: usize = 2;

/// `broadcast` to two slow consumers. A lane's room is its capacity less what is queued and what its
/// consumer took out at its last look (`in_hand`), and `in_hand` is given back only when the consumer
/// asks again with nothing left, that is once it is done with the last element it took: the element a
/// consumer's `map_async(1)` works on still counts against its lane. The distributor pulls no more than
/// the fullest lane has room for, clones them into every lane but the last and moves them into the
/// last. So `consumers × capacity` copies at most, reached while both consumers wait.
#[tokio::test(start_paused = true)]
async fn broadcast_holds_at_most_a_lane_per_consumer() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 2_000;
    let bound = (CONSUMERS * LANE_CAPACITY) as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .to(fan::broadcast(vec![slow_consumer(), slow_consumer()], FanOutConfig::new(nz(LANE_CAPACITY))))
        .run()
        .await
        .unwrap();

    let sums: Vec<u64> = outcome.value.into_iter().map(Result::unwrap).collect();
    assert_eq!(sums, vec![sum_below(N); CONSUMERS]);
    assert_within(&GAUGE, bound, bound);
}

/// `balance` moves each element into one lane with room: at most `capacity` per lane, the element a
/// consumer works on included (see the broadcast test), `consumers × capacity` in all.
#[tokio::test(start_paused = true)]
async fn balance_holds_at_most_a_lane_per_consumer() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 2_000;
    let bound = (CONSUMERS * LANE_CAPACITY) as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .to(fan::balance(vec![slow_consumer(), slow_consumer()], FanOutConfig::new(nz(LANE_CAPACITY))))
        .run()
        .await
        .unwrap();

    let total: u64 = outcome.value.into_iter().map(Result::unwrap).sum();
    assert_eq!(total, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}

/// `partition` moves each element into the lane its route picks: at most `capacity` per lane (the
/// element a consumer works on included, see the broadcast test), plus one element pulled for a lane
/// that is full, which waits for room: `consumers × capacity + 1`.
#[tokio::test(start_paused = true)]
async fn partition_holds_at_most_a_lane_per_consumer_and_one_waiting() {
    static GAUGE: Gauge = Gauge::new();
    const N: u64 = 2_000;
    let bound = (CONSUMERS * LANE_CAPACITY + 1) as u64;

    let outcome = source::iter(0..N)
        .map(|x| Tracked::new(x, &GAUGE))
        .to(fan::partition(
            vec![slow_consumer(), slow_consumer()],
            FanOutConfig::new(nz(LANE_CAPACITY)),
            |element: &Tracked| (element.value % CONSUMERS as u64) as usize,
        ))
        .run()
        .await
        .unwrap();

    let total: u64 = outcome.value.into_iter().map(Result::unwrap).sum();
    assert_eq!(total, sum_below(N));
    assert_within(&GAUGE, bound, bound);
}
