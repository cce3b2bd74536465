//! `broadcast` and `broadcast2`: every element to every consumer, at the slowest consumer's pace.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use futures::future::Either;
use futures::{FutureExt, Stream};

use crate::error::PipelineError;
use crate::fan::config::FanOutConfig;
use crate::fan::driver::{
    Delivery, Distribute, FILL_LIMIT, FanOut, FillError, Filled, Lanes, Upstream, pull,
};
use crate::sink::Sink;
use crate::stage::StageContext;

/// The `broadcast` sink. Built by [`broadcast`].
#[derive(Debug)]
#[must_use = "sinks do nothing unless run"]
pub struct Broadcast<K> {
    consumers: Vec<K>,
    config: FanOutConfig,
}

/// A sink that hands every element to every consumer (a clone to all but the last), at the pace of
/// the slowest: the input is pulled only while every live consumer has room in its buffer of
/// `config.capacity()` elements. So no consumer is ever more than the capacity ahead of another,
/// and at most `capacity` elements per consumer are buffered.
///
/// The output holds each consumer's result, in order. Under
/// [`FanOutPolicy::FailPipeline`](crate::fan::FanOutPolicy::FailPipeline) (the default) every entry
/// is `Ok` or the run fails; under `ContinueWithout` a failed consumer's entry is its error, and
/// each element it missed is counted as `dropped` on the `fan_broadcast` stage. The consumers are
/// polled on the task that runs the fan-out (see the [module docs](crate::fan)); with no consumers
/// the sink completes at once without pulling its input.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::fan::{self, FanOutConfig};
/// use pump_core::prelude::*;
/// use pump_core::sink::SinkExt as _;
/// // Consumers of one type; box them when they differ.
/// let out = source::iter(1..=4u64)
///     .to(fan::broadcast(
///         vec![sink::fold(0, |sum, x| sum + x).boxed(), sink::fold(1, |product, x| product * x).boxed()],
///         FanOutConfig::default(),
///     ))
///     .run()
///     .await
///     .unwrap();
/// let results: Vec<u64> = out.value.into_iter().map(Result::unwrap).collect();
/// assert_eq!(results, vec![10, 24]);
/// # }
/// ```
pub fn broadcast<K>(consumers: Vec<K>, config: FanOutConfig) -> Broadcast<K> {
    Broadcast { consumers, config }
}

impl<T, K> Sink<T> for Broadcast<K>
where
    T: Clone + Send + 'static,
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
        let mut fan = FanOut::new("fan_broadcast", ctx, self.config, self.consumers.len());
        let futures = self.consumers.into_iter().map(|consumer| fan.open(consumer)).collect();
        fan.run(input, BroadcastDistribution::default(), futures)
    }
}

/// The `broadcast2` sink. Built by [`broadcast2`].
#[derive(Debug)]
#[must_use = "sinks do nothing unless run"]
pub struct Broadcast2<A, B> {
    first: A,
    second: B,
    config: FanOutConfig,
}

/// [`broadcast`] to two consumers of different types; the output is the pair of their results.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::fan::{self, FanOutConfig};
/// use pump_core::prelude::*;
/// let out = source::iter(1..=3u32)
///     .to(fan::broadcast2(sink::count(), sink::collect(), FanOutConfig::default()))
///     .run()
///     .await
///     .unwrap();
/// let (count, items) = out.value;
/// assert_eq!(count.unwrap(), 3);
/// assert_eq!(items.unwrap(), vec![1, 2, 3]);
/// # }
/// ```
pub fn broadcast2<A, B>(first: A, second: B, config: FanOutConfig) -> Broadcast2<A, B> {
    Broadcast2 { first, second, config }
}

impl<T, A, B> Sink<T> for Broadcast2<A, B>
where
    T: Clone + Send + 'static,
    A: Sink<T>,
    B: Sink<T>,
{
    type Output = (Result<A::Output, PipelineError>, Result<B::Output, PipelineError>);

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Self::Output, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let mut fan = FanOut::new("fan_broadcast", ctx, self.config, 2);
        // One future type for both consumers, so one driver polls them.
        let first = fan.open(self.first).map(|future| future.map(|result| result.map(Either::Left)).boxed());
        let second =
            fan.open(self.second).map(|future| future.map(|result| result.map(Either::Right)).boxed());
        let driver = fan.run(input, BroadcastDistribution::default(), vec![first, second]);
        async move {
            let mut results = driver.await?.into_iter();
            let first = match results.next() {
                Some(Ok(Either::Left(value))) => Ok(value),
                Some(Err(error)) => Err(error),
                // The driver returns one result per consumer, in order: not reached.
                Some(Ok(Either::Right(_))) | None => Err(PipelineError::Aborted),
            };
            let second = match results.next() {
                Some(Ok(Either::Right(value))) => Ok(value),
                Some(Err(error)) => Err(error),
                Some(Ok(Either::Left(_))) | None => Err(PipelineError::Aborted),
            };
            Ok((first, second))
        }
    }
}

/// Pulls as many elements as the fullest live lane has room for, and hands a copy to every live
/// lane (the original to the last).
pub(crate) struct BroadcastDistribution<T> {
    staging: Vec<T>,
    live: Vec<usize>,
}

impl<T> Default for BroadcastDistribution<T> {
    fn default() -> Self {
        BroadcastDistribution { staging: Vec::new(), live: Vec::new() }
    }
}

impl<T: Clone + Send + 'static> Distribute<T> for BroadcastDistribution<T> {
    fn fill<S: Stream<Item = T>>(
        &mut self,
        upstream: Option<Pin<&mut S>>,
        cx: &mut Context<'_>,
        lanes: &mut Lanes<T>,
    ) -> Result<Filled, FillError> {
        let Some(upstream) = upstream else {
            return Ok(Filled { moved: 0, upstream: Upstream::Open });
        };
        self.live.clear();
        self.live.extend((0..lanes.len()).filter(|&index| lanes.delivery(index) == Delivery::Live));
        // With only stopped consumers left (under `FailPipeline`), pull one element to learn
        // whether anything was still meant for them.
        let limit = self.live.iter().map(|&index| lanes.room(index)).min().unwrap_or(1).min(FILL_LIMIT);
        if limit == 0 {
            return Ok(Filled { moved: 0, upstream: Upstream::Open });
        }
        let state = pull(upstream, cx, &mut self.staging, limit);
        let count = self.staging.len();
        if count > 0 {
            lanes.probe().record_in_n(count as u64);
            for index in 0..lanes.len() {
                if lanes.delivery(index) != Delivery::Live {
                    lanes.undelivered(index, count)?;
                }
            }
            match self.live.split_last() {
                Some((&last, others)) => {
                    for &index in others {
                        lanes.deliver(index, self.staging.iter().cloned());
                    }
                    lanes.deliver(last, self.staging.drain(..));
                }
                None => self.staging.clear(),
            }
        }
        Ok(Filled { moved: count, upstream: state })
    }
}
