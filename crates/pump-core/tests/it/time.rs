//! Time-driven behaviour on paused tokio time: batch deadlines, interval ticks, polling periods and
//! concurrent async work. Every instant is exact because the clock only moves when the runtime idles.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pump_core::prelude::*;
use pump_core::source::Polled;
use tokio::time::Instant;

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A source emitting `items[i]` at `started + at[i]`, then ending at `started + end`.
fn scheduled(started: Instant, schedule: Vec<(u64, u32)>, end: u64) -> impl Source<Item = u32> {
    source::unfold(schedule.into_iter(), move |mut schedule| async move {
        match schedule.next() {
            Some((at, item)) => {
                tokio::time::sleep_until(started + ms(at)).await;
                Some((item, schedule))
            }
            None => {
                tokio::time::sleep_until(started + ms(end)).await;
                None
            }
        }
    })
}

/// What the sink saw: each element with the instant it arrived, relative to `started`.
type Arrivals<T> = Arc<Mutex<Vec<(Duration, T)>>>;

fn recording_sink<T: Send + 'static>(started: Instant, arrivals: &Arrivals<T>) -> impl Sink<T, Output = ()> {
    let arrivals = Arc::clone(arrivals);
    sink::for_each(move |element: T| arrivals.lock().unwrap().push((started.elapsed(), element)))
}

/// A partial batch is emitted exactly `max_wait` after its first element arrived, and an idle source
/// never causes an empty batch (not while idle, not at the end).
#[tokio::test(start_paused = true)]
async fn batch_emits_a_partial_batch_exactly_max_wait_after_its_first_element() {
    let started = Instant::now();
    let schedule = vec![(0, 1), (30, 2), (60, 3), (1000, 4), (1010, 5), (1200, 6)];
    let arrivals: Arrivals<Vec<u32>> = Arrivals::default();
    scheduled(started, schedule, 5000)
        .batch(nz(10), ms(100))
        .to(recording_sink(started, &arrivals))
        .run()
        .await
        .unwrap();
    assert_eq!(started.elapsed(), ms(5000));
    assert_eq!(
        *arrivals.lock().unwrap(),
        vec![(ms(100), vec![1, 2, 3]), (ms(1100), vec![4, 5]), (ms(1300), vec![6])]
    );
}

/// A batch that fills before its deadline is emitted when its last element arrives, and the next
/// batch's deadline counts from its own first element.
#[tokio::test(start_paused = true)]
async fn batch_emits_a_full_batch_at_once_and_restarts_the_deadline() {
    let started = Instant::now();
    let schedule = vec![(0, 1), (10, 2), (20, 3), (50, 4), (90, 5)];
    let arrivals: Arrivals<Vec<u32>> = Arrivals::default();
    scheduled(started, schedule, 1000)
        .batch(nz(3), ms(100))
        .to(recording_sink(started, &arrivals))
        .run()
        .await
        .unwrap();
    assert_eq!(*arrivals.lock().unwrap(), vec![(ms(20), vec![1, 2, 3]), (ms(150), vec![4, 5])]);
}

/// `interval` ticks at exactly 0, period, 2 * period, ...
#[tokio::test(start_paused = true)]
async fn interval_ticks_at_exact_times() {
    let started = Instant::now();
    let arrivals: Arrivals<u64> = Arrivals::default();
    source::interval(ms(100)).take(5).to(recording_sink(started, &arrivals)).run().await.unwrap();
    assert_eq!(
        *arrivals.lock().unwrap(),
        vec![(ms(0), 0), (ms(100), 1), (ms(200), 2), (ms(300), 3), (ms(400), 4)]
    );
}

/// A consumer slower than the period gets one tick each time it asks, never a burst of missed ones.
#[tokio::test(start_paused = true)]
async fn interval_with_a_slow_consumer_delays_ticks_instead_of_bursting() {
    let started = Instant::now();
    let pulled_at = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&pulled_at);
    source::interval(ms(100))
        .take(4)
        .map_async(nz(1), move |tick| {
            log.lock().unwrap().push((started.elapsed(), tick));
            tokio::time::sleep(ms(250))
        })
        .to(sink::ignore())
        .run()
        .await
        .unwrap();
    assert_eq!(*pulled_at.lock().unwrap(), vec![(ms(0), 0), (ms(250), 1), (ms(500), 2), (ms(750), 3)]);
}

/// `polling` polls again at once after an item, and waits one full period after `Empty`, also when
/// the `Empty` comes long after the source was opened (a slow consumer).
#[tokio::test(start_paused = true)]
async fn polling_waits_one_period_after_empty() {
    let started = Instant::now();
    let polls = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&polls);
    let mut answers = vec![
        Polled::Item("a"),
        Polled::Empty,
        Polled::Item("b"),
        Polled::Item("c"),
        Polled::Empty,
        Polled::Empty,
        Polled::Item("d"),
        Polled::Done,
    ]
    .into_iter();
    let source = source::polling(ms(1000), move || {
        log.lock().unwrap().push(started.elapsed());
        std::future::ready(answers.next().unwrap_or(Polled::Done))
    });
    let arrivals: Arrivals<&str> = Arrivals::default();
    source
        .map_async(nz(1), |item| async move {
            // Each element takes 2.5 periods downstream: the next poll comes long after a tick was due.
            tokio::time::sleep(ms(2500)).await;
            item
        })
        .to(recording_sink(started, &arrivals))
        .run()
        .await
        .unwrap();
    let polls = polls.lock().unwrap().clone();
    assert_eq!(polls, [0, 2500, 3500, 6000, 8500, 9500, 10500, 13000].map(ms));
    assert_eq!(
        *arrivals.lock().unwrap(),
        vec![(ms(2500), "a"), (ms(6000), "b"), (ms(8500), "c"), (ms(13000), "d")]
    );
}

/// With room for every element at once, async work takes as long as its slowest element, and the
/// results still come in input order.
#[tokio::test(start_paused = true)]
async fn map_async_completes_in_the_longest_sleep_when_parallelism_covers_all() {
    let sleeps = vec![50u64, 10, 30, 20, 40, 5];
    let started = Instant::now();
    let outcome = source::iter(sleeps.clone())
        .map_async(nz(sleeps.len()), |millis| async move {
            tokio::time::sleep(ms(millis)).await;
            millis
        })
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(started.elapsed(), ms(50));
    assert_eq!(outcome.value, sleeps);

    // With half the parallelism it takes longer: the bound is real.
    let started = Instant::now();
    source::iter(sleeps.clone())
        .map_async(nz(sleeps.len() / 2), |millis| tokio::time::sleep(ms(millis)))
        .to(sink::ignore())
        .run()
        .await
        .unwrap();
    assert!(started.elapsed() > ms(50), "parallelism 3 finished as fast as parallelism 6");
}
