//! A source ticking at a fixed period.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::time::{Interval as TokioInterval, MissedTickBehavior};

use crate::source::{Source, SourceStage};
use crate::stage::StageContext;

/// A source of tick numbers, one per period. Built by [`interval`].
#[derive(Debug, Clone)]
#[must_use = "sources do nothing unless run"]
pub struct Interval {
    period: Duration,
}

/// Yields `0, 1, 2, ...`, the first at once and one per `period` after it. A slow consumer delays
/// ticks rather than receiving a burst of missed ones. Combine with `take` to end it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use pump_core::prelude::*;
/// let started = tokio::time::Instant::now();
/// let out = source::interval(std::time::Duration::from_secs(1)).take(3).to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![0, 1, 2]);
/// assert_eq!(started.elapsed(), std::time::Duration::from_secs(2));
/// # }
/// ```
///
/// # Panics
///
/// Panics if `period` is zero, as `tokio::time::interval` does.
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval { period }
}

/// The stream behind [`Interval`].
#[derive(Debug)]
pub struct IntervalStream {
    interval: TokioInterval,
    ticks: u64,
}

impl Stream for IntervalStream {
    type Item = u64;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        match self.interval.poll_tick(cx) {
            Poll::Ready(_) => {
                let tick = self.ticks;
                self.ticks += 1;
                Poll::Ready(Some(tick))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Source for Interval {
    type Item = u64;
    type Stream = SourceStage<IntervalStream>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("interval");
        let mut interval = tokio::time::interval(self.period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        SourceStage::new(IntervalStream { interval, ticks: 0 }, &stage, ctx)
    }
}
