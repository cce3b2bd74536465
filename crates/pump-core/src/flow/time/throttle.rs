//! `throttle`: limit the rate of elements with a token bucket, waiting for tokens or dropping.

use std::num::NonZeroU32;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::flow::Flow;
use crate::flow::time::deadline_after;
use crate::metrics::StageProbe;
use crate::stage::StageContext;
use crate::timer::timer_at;

/// What [`throttle`](crate::SourceExt::throttle) does with an element when no token is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottleMode {
    /// Wait for the next token before pulling the next element, so upstream is slowed to the rate.
    /// Nothing is lost and nothing is held: upstream is not pulled while the stage waits.
    #[default]
    Backpressure,
    /// Keep pulling at upstream's pace; an element that arrives without a token is dropped and
    /// counted in the stage's `dropped` counter.
    Drop,
}

/// The `throttle` flow and its configuration: a token bucket.
///
/// The bucket holds at most `burst` tokens and starts full; it gains `elements` tokens per `per`,
/// spread evenly (one every `per / elements`). Each element passed downstream takes one token. Time
/// is kept in exact integer arithmetic, so a long run does not drift from the configured rate.
///
/// ```
/// use pump_core::flow::time::{Throttle, ThrottleMode};
/// use std::num::NonZeroU32;
/// use std::time::Duration;
///
/// // 100 per second, in bursts of up to 10, dropping what exceeds the rate.
/// let throttle = Throttle::per_second(NonZeroU32::new(100).unwrap())
///     .with_burst(NonZeroU32::new(10).unwrap())
///     .with_mode(ThrottleMode::Drop);
/// // 3 per 2 seconds, one at a time, waiting for tokens (the defaults).
/// let smooth = Throttle::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(2));
/// # let _ = (throttle, smooth);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "flows do nothing unless run"]
pub struct Throttle {
    elements: NonZeroU32,
    per: Duration,
    burst: NonZeroU32,
    mode: ThrottleMode,
}

impl Throttle {
    /// `elements` per `per`, a burst of one (elements evenly spaced), in
    /// [`Backpressure`](ThrottleMode::Backpressure) mode.
    pub fn new(elements: NonZeroU32, per: Duration) -> Self {
        Throttle { elements, per, burst: NonZeroU32::MIN, mode: ThrottleMode::Backpressure }
    }

    /// `elements` per second; see [`new`](Self::new).
    pub fn per_second(elements: NonZeroU32) -> Self {
        Throttle::new(elements, Duration::from_secs(1))
    }

    /// The same throttle with a bucket of `burst` tokens: after a quiet period up to `burst`
    /// elements pass at once.
    pub fn with_burst(mut self, burst: NonZeroU32) -> Self {
        self.burst = burst;
        self
    }

    /// The same throttle with another [`ThrottleMode`].
    pub fn with_mode(mut self, mode: ThrottleMode) -> Self {
        self.mode = mode;
        self
    }
}

/// The granularity of tokio's timers: a sleep may end up to this much after its deadline.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// A token bucket in its "generic cell rate" form: instead of counting tokens, it keeps the
/// theoretical time at which the bucket would be empty again.
///
/// Time is measured in units of `1 / elements` nanosecond, so one token costs exactly `per` (in
/// nanoseconds) units and no rounding accumulates.
#[derive(Debug)]
struct TokenBucket {
    elements: u128,
    /// What one token costs, in units.
    token_cost: u128,
    /// How far ahead of the clock the bucket may run: `(burst - 1)` tokens.
    tolerance: u128,
    /// The clock's zero, set on first use.
    origin: Option<Instant>,
    /// The theoretical arrival time of the next element in a steady stream, in units.
    theoretical_arrival: u128,
}

impl TokenBucket {
    fn new(throttle: &Throttle) -> Self {
        let token_cost = throttle.per.as_nanos();
        TokenBucket {
            elements: u128::from(throttle.elements.get()),
            token_cost,
            tolerance: token_cost.saturating_mul(u128::from(throttle.burst.get() - 1)),
            origin: None,
            theoretical_arrival: 0,
        }
    }

    fn units_at(&mut self, now: Instant) -> u128 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_nanos().saturating_mul(self.elements)
    }

    /// How long until a token is available; zero when one is available at `now`.
    fn wait(&mut self, now: Instant) -> Duration {
        let now_units = self.units_at(now);
        let allowed_from = self.theoretical_arrival.saturating_sub(self.tolerance);
        if now_units >= allowed_from {
            return Duration::ZERO;
        }
        let nanos = (allowed_from - now_units).div_ceil(self.elements);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Takes a token at `now` (the caller checked that one is available).
    ///
    /// `on_schedule` says the stage slept until this very token became available. If the element
    /// then comes within [`TIMER_RESOLUTION`] of that instant (and within one token interval), it is
    /// booked at the instant its token became available rather than at the wake-up: tokio's timers
    /// fire on whole milliseconds, and that lateness must not add up into a slower rate. An element
    /// that comes later is booked when it comes, as it would be without a wait, so a slow upstream
    /// earns no credit and the burst stays as configured.
    fn take(&mut self, now: Instant, on_schedule: bool) {
        let now_units = self.units_at(now);
        let slot = self.theoretical_arrival.saturating_sub(self.tolerance);
        let late_by = now_units.saturating_sub(slot);
        let forgiven = TIMER_RESOLUTION.as_nanos().saturating_mul(self.elements);
        let arrival =
            if on_schedule && late_by <= forgiven && late_by < self.token_cost { slot } else { now_units };
        self.theoretical_arrival = self.theoretical_arrival.max(arrival).saturating_add(self.token_cost);
    }
}

pin_project! {
    /// The stream of the `throttle` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct ThrottleStream<S> {
        #[pin]
        upstream: S,
        bucket: TokenBucket,
        mode: ThrottleMode,
        sleep: Option<Pin<Box<Sleep>>>,
        waiting_for_token: bool,
        done: bool,
        probe: StageProbe,
    }
}

impl<S> std::fmt::Debug for ThrottleStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrottleStream").field("mode", &self.mode).field("done", &self.done).finish()
    }
}

impl<S: Stream> Stream for ThrottleStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            if *this.mode == ThrottleMode::Backpressure {
                let now = Instant::now();
                let wait = this.bucket.wait(now);
                if !wait.is_zero() {
                    // No token: wait for one without pulling upstream.
                    let deadline = deadline_after(now, wait);
                    *this.waiting_for_token = true;
                    ready!(timer_at(this.sleep, deadline).as_mut().poll(cx));
                    continue;
                }
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    let now = Instant::now();
                    let on_schedule = std::mem::take(this.waiting_for_token);
                    // In backpressure mode the token was available before the pull, and it stays
                    // available: tokens only accumulate as time passes.
                    if this.bucket.wait(now).is_zero() {
                        this.bucket.take(now, on_schedule);
                        this.probe.record_out();
                        return Poll::Ready(Some(item));
                    }
                    this.probe.metrics().record_dropped(1);
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.mode {
            ThrottleMode::Backpressure => self.upstream.size_hint(),
            ThrottleMode::Drop => (0, self.upstream.size_hint().1),
        }
    }
}

impl<In: Send + 'static> Flow<In> for Throttle {
    type Out = In;
    type Stream<S>
        = ThrottleStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("throttle");
        ThrottleStream {
            upstream,
            bucket: TokenBucket::new(&self),
            mode: self.mode,
            sleep: None,
            waiting_for_token: false,
            done: false,
            probe: stage.probe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(elements: u32, per_millis: u64, burst: u32) -> TokenBucket {
        let throttle = Throttle::new(
            NonZeroU32::new(elements).unwrap_or(NonZeroU32::MIN),
            Duration::from_millis(per_millis),
        )
        .with_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        TokenBucket::new(&throttle)
    }

    #[test]
    fn a_full_bucket_serves_its_burst_then_one_token_per_interval() {
        let start = Instant::now();
        let mut bucket = bucket(2, 1000, 3);
        for _ in 0..3 {
            assert_eq!(bucket.wait(start), Duration::ZERO);
            bucket.take(start, false);
        }
        assert_eq!(bucket.wait(start), Duration::from_millis(500));
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.wait(later), Duration::ZERO);
        bucket.take(later, false);
        assert_eq!(bucket.wait(later), Duration::from_millis(500));
    }

    /// A timer that fires on whole milliseconds, like tokio's.
    fn wake_after(start: Instant, now: Instant, wait: Duration) -> Instant {
        let since_start = (now + wait - start).as_nanos();
        let millis = since_start.div_ceil(1_000_000);
        start + Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    #[test]
    fn a_rate_that_does_not_divide_evenly_does_not_drift_with_timer_granularity() {
        let start = Instant::now();
        let mut bucket = bucket(3, 1000, 1);
        let mut now = start;
        for _ in 0..3000 {
            let wait = bucket.wait(now);
            let on_schedule = !wait.is_zero();
            now = wake_after(start, now, wait);
            bucket.take(now, on_schedule);
        }
        // 3000 tokens at 3 per second: the last is due at 999.667 s; every wake-up was up to a
        // millisecond late, and none of that lateness added up.
        assert_eq!(now - start, Duration::from_millis(999_667));
    }

    #[test]
    fn an_element_arriving_late_is_booked_when_it_arrives() {
        let start = Instant::now();
        let mut bucket = bucket(1, 100, 1);
        bucket.take(start, false);
        let late = start + Duration::from_millis(250);
        bucket.take(late, false);
        assert_eq!(bucket.wait(late), Duration::from_millis(100));
        // A stage that slept for its token but whose element came 2 ms late gets no credit either.
        let stalled = late + Duration::from_millis(102);
        bucket.take(stalled, true);
        assert_eq!(bucket.wait(stalled), Duration::from_millis(100));
    }

    #[test]
    fn timer_lateness_after_a_wait_is_forgiven() {
        let start = Instant::now();
        let mut bucket = bucket(1, 100, 1);
        bucket.take(start, false);
        let woken = start + Duration::from_micros(100_900);
        bucket.take(woken, true);
        assert_eq!(bucket.wait(woken), Duration::from_micros(99_100));
    }

    #[test]
    fn an_idle_bucket_refills_to_its_burst_and_no_further() {
        let start = Instant::now();
        let mut bucket = bucket(1, 100, 2);
        bucket.take(start, false);
        bucket.take(start, false);
        let later = start + Duration::from_secs(10);
        bucket.take(later, false);
        bucket.take(later, false);
        assert_eq!(bucket.wait(later), Duration::from_millis(100));
    }
}
