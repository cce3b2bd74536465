//! `balance`: each element to exactly one consumer, the next one with room.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use futures::Stream;

use crate::error::PipelineError;
use crate::fan::config::FanOutConfig;
use crate::fan::driver::{
    Delivery, Distribute, FILL_LIMIT, FanOut, FillError, Filled, Lanes, Upstream, pull,
};
use crate::fan::error::FanOutError;
use crate::fan::lane::Leftovers;
use crate::sink::Sink;
use crate::stage::StageContext;

/// The `balance` sink. Built by [`balance`].
#[derive(Debug)]
#[must_use = "sinks do nothing unless run"]
pub struct Balance<K> {
    consumers: Vec<K>,
    config: FanOutConfig,
}

/// A sink that hands each element to exactly one consumer: the first with room in its buffer of
/// `config.capacity()` elements, searching from a starting consumer that moves on round-robin with
/// each chunk of elements. A slow consumer's buffer fills and it is skipped, so it gets fewer
/// elements; a fast one gets more. Each consumer sees its elements in input order. The input is
/// pulled only while some consumer has room.
///
/// The output holds each consumer's result, in order. Under
/// [`FanOutPolicy::ContinueWithout`](crate::fan::FanOutPolicy::ContinueWithout) a consumer that
/// fails or stops is detached and the elements still buffered for it go to the others (only
/// elements it had already taken out of its buffer are lost, counted as `dropped`). Under
/// `FailPipeline` its failure fails the run, and so does an element arriving after a consumer
/// stopped. With no consumers the sink completes at once without pulling its input.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::fan::{self, FanOutConfig};
/// use pump_core::prelude::*;
/// let out = source::iter(1..=100u64)
///     .to(fan::balance(vec![sink::collect(), sink::collect()], FanOutConfig::default()))
///     .run()
///     .await
///     .unwrap();
/// let mut all: Vec<u64> = out.value.into_iter().flat_map(Result::unwrap).collect();
/// all.sort();
/// assert_eq!(all, (1..=100).collect::<Vec<_>>());
/// # }
/// ```
pub fn balance<K>(consumers: Vec<K>, config: FanOutConfig) -> Balance<K> {
    Balance { consumers, config }
}

impl<T, K> Sink<T> for Balance<K>
where
    T: Send + 'static,
    K: Sink<T>,
{
    type Output = Vec<Result<K::Output, PipelineError>>;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Self::Output, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let mut fan = FanOut::new("fan_balance", ctx, self.config, self.consumers.len());
        let futures = self.consumers.into_iter().map(|consumer| fan.open(consumer)).collect();
        let distribution = BalanceDistribution { staging: Vec::new(), backlog: VecDeque::new(), next: 0 };
        fan.run(input, distribution, futures)
    }
}

/// Pulls as many elements as all live lanes together have room for and deals them out, lane by
/// lane, from a starting lane that rotates.
struct BalanceDistribution<T> {
    staging: Vec<T>,
    /// Elements taken back from detached consumers, delivered before new input.
    backlog: VecDeque<T>,
    next: usize,
}

impl<T: Send + 'static> Distribute<T> for BalanceDistribution<T> {
    fn fill<S: Stream<Item = T>>(
        &mut self,
        upstream: Option<Pin<&mut S>>,
        cx: &mut Context<'_>,
        lanes: &mut Lanes<T>,
    ) -> Result<Filled, FillError> {
        let live_room: usize = (0..lanes.len())
            .filter(|&index| lanes.delivery(index) == Delivery::Live)
            .map(|index| lanes.room(index))
            .sum();
        let failing = lanes.failing();
        // A stopped consumer under `FailPipeline` fails the run if anything else arrives; pull one
        // element to find out even when the others are full.
        let limit = if failing.is_some() { live_room.max(1) } else { live_room }.min(FILL_LIMIT);
        let from_backlog = limit.min(self.backlog.len());
        self.staging.extend(self.backlog.drain(..from_backlog));
        let mut state = Upstream::Open;
        if let Some(upstream) = upstream {
            let before = self.staging.len();
            state = pull(upstream, cx, &mut self.staging, limit);
            lanes.probe().record_in_n((self.staging.len() - before) as u64);
        }
        let count = self.staging.len();
        if count == 0 {
            return Ok(Filled { moved: 0, upstream: state });
        }
        if let Some(consumer) = failing {
            return Err(FillError::Fan(FanOutError::ConsumerStopped { consumer, undelivered: count }));
        }
        let lane_count = lanes.len();
        let mut remaining = count;
        let mut items = self.staging.drain(..);
        for offset in 0..lane_count {
            let index = (self.next + offset) % lane_count;
            if remaining == 0 {
                break;
            }
            if lanes.delivery(index) != Delivery::Live {
                continue;
            }
            let share = lanes.room(index).min(remaining);
            if share > 0 {
                lanes.deliver(index, items.by_ref().take(share));
                remaining -= share;
            }
        }
        drop(items);
        self.next = (self.next + 1) % lane_count.max(1);
        Ok(Filled { moved: count, upstream: state })
    }

    fn reclaim(
        &mut self,
        index: usize,
        leftovers: Leftovers<T>,
        lanes: &mut Lanes<T>,
    ) -> Result<(), FillError> {
        // Taken out of the buffer by the consumer, so beyond reach.
        lanes.undelivered(index, leftovers.in_hand)?;
        match lanes.delivery(index) {
            Delivery::Failing => lanes.undelivered(index, leftovers.queued.len()),
            Delivery::Live | Delivery::Dropping => {
                self.backlog.extend(leftovers.queued);
                Ok(())
            }
        }
    }

    fn holds_elements(&self) -> bool {
        !self.backlog.is_empty()
    }

    fn abandon(&mut self, lanes: &mut Lanes<T>) {
        lanes.dropped(self.backlog.len());
        self.backlog.clear();
    }
}
