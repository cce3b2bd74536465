//! A source that polls an external resource on a period.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::time::MissedTickBehavior;

use crate::source::{Source, SourceStage};
use crate::stage::StageContext;

/// What one poll of the resource found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled<T> {
    /// An element: it is emitted and the resource is polled again at once.
    Item(T),
    /// Nothing now: poll again at the next tick.
    Empty,
    /// The resource is finished: the source ends.
    Done,
}

/// A source polling a resource. Built by [`polling`].
#[derive(Debug)]
#[must_use = "sources do nothing unless run"]
pub struct Polling<F> {
    every: Duration,
    poll: F,
}

/// Calls `poll` when downstream wants an element: an [`Polled::Item`] is emitted, [`Polled::Empty`]
/// waits for the next tick of `every`, [`Polled::Done`] ends the source. A queue drained in bursts and
/// watched on a period is the typical use.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::source::Polled;
/// let mut calls = 0;
/// let source = source::polling(std::time::Duration::from_secs(1), move || {
///     calls += 1;
///     let answer = match calls { 1 => Polled::Item("a"), 2 => Polled::Empty, 3 => Polled::Item("b"), _ => Polled::Done };
///     async move { answer }
/// });
/// let out = source.to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec!["a", "b"]);
/// # }
/// ```
///
/// # Panics
///
/// Panics if `every` is zero.
pub fn polling<F, Fut, T>(every: Duration, poll: F) -> Polling<F>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Polled<T>> + Send + 'static,
    T: Send + 'static,
{
    assert!(!every.is_zero(), "polling period must be non-zero");
    Polling { every, poll }
}

impl<F, Fut, T> Source for Polling<F>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Polled<T>> + Send + 'static,
    T: Send + 'static,
{
    type Item = T;
    type Stream = SourceStage<BoxStream<'static, T>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("polling");
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stream = stream::unfold((self.poll, ticker), |(mut poll, mut ticker)| async move {
            loop {
                match poll().await {
                    Polled::Item(item) => return Some((item, (poll, ticker))),
                    Polled::Empty => {
                        // Wait a whole period from now. Without the reset, an `Empty` that comes
                        // more than a period after the previous tick (a slow consumer) would find a
                        // missed tick and poll the empty resource again at once.
                        ticker.reset();
                        ticker.tick().await;
                    }
                    Polled::Done => return None,
                }
            }
        });
        SourceStage::new(stream.boxed(), &stage, ctx)
    }
}
