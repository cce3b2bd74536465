//! `partition`: each element to the consumer a function chooses.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::{PipelineError, panic_message};
use crate::fan::config::FanOutConfig;
use crate::fan::driver::{Delivery, Distribute, FILL_LIMIT, FanOut, FillError, Filled, Lanes, Upstream};
use crate::fan::error::FanOutError;
use crate::sink::Sink;
use crate::stage::StageContext;

/// The `partition` sink. Built by [`partition`].
#[must_use = "sinks do nothing unless run"]
pub struct Partition<K, F> {
    consumers: Vec<K>,
    config: FanOutConfig,
    route: F,
}

impl<K, F> std::fmt::Debug for Partition<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("consumers", &self.consumers.len())
            .field("config", &self.config)
            .finish()
    }
}

/// A sink that hands each element to consumer `route(&element)`, keeping input order per consumer.
///
/// Each consumer has a buffer of `config.capacity()` elements. When the chosen consumer's buffer
/// is full the element waits (one element, held by the fan-out) and the input is not pulled until
/// there is room; the other consumers go on with what they have.
///
/// An index out of range (`>= consumers.len()`) fails the run with
/// [`FanOutError::PartitionOutOfRange`](crate::fan::FanOutError::PartitionOutOfRange), whatever the
/// policy: it is a bug in `route`. A panic in `route` fails the run too. Under `ContinueWithout`,
/// elements routed to a detached consumer are counted as `dropped` on the `fan_partition` stage.
/// With no consumers the sink completes at once without pulling its input.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::fan::{self, FanOutConfig};
/// use pump_core::prelude::*;
/// let out = source::iter(1..=6u32)
///     .to(fan::partition(vec![sink::collect(), sink::collect()], FanOutConfig::default(), |x: &u32| {
///         (*x % 2) as usize
///     }))
///     .run()
///     .await
///     .unwrap();
/// let [even, odd]: [Vec<u32>; 2] = out.value.into_iter().map(Result::unwrap).collect::<Vec<_>>().try_into().unwrap();
/// assert_eq!(even, vec![2, 4, 6]);
/// assert_eq!(odd, vec![1, 3, 5]);
/// # }
/// ```
pub fn partition<T, K, F>(consumers: Vec<K>, config: FanOutConfig, route: F) -> Partition<K, F>
where
    F: FnMut(&T) -> usize,
{
    Partition { consumers, config, route }
}

impl<T, K, F> Sink<T> for Partition<K, F>
where
    T: Send + 'static,
    K: Sink<T>,
    F: FnMut(&T) -> usize + Send + 'static,
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
        let consumers = self.consumers.len();
        let mut fan = FanOut::new("fan_partition", ctx, self.config, consumers);
        let futures = self.consumers.into_iter().map(|consumer| fan.open(consumer)).collect();
        let distribution = PartitionDistribution {
            route: self.route,
            staged: (0..consumers).map(|_| Vec::new()).collect(),
            held: None,
        };
        fan.run(input, distribution, futures)
    }
}

/// Routes element by element into per-lane chunks, delivered at the end of the fill.
struct PartitionDistribution<T, F> {
    route: F,
    staged: Vec<Vec<T>>,
    /// An element whose lane was full.
    held: Option<(usize, T)>,
}

impl<T, F> PartitionDistribution<T, F>
where
    F: FnMut(&T) -> usize,
{
    fn route(&mut self, item: &T) -> Result<usize, FillError> {
        let route = &mut self.route;
        let index = catch_unwind(AssertUnwindSafe(|| route(item)))
            .map_err(|payload| FillError::Panicked(panic_message(payload.as_ref())))?;
        let consumers = self.staged.len();
        if index >= consumers {
            return Err(FillError::Fan(FanOutError::PartitionOutOfRange { index, consumers }));
        }
        Ok(index)
    }
}

impl<T, F> Distribute<T> for PartitionDistribution<T, F>
where
    T: Send + 'static,
    F: FnMut(&T) -> usize + Send + 'static,
{
    fn fill<S: Stream<Item = T>>(
        &mut self,
        mut upstream: Option<Pin<&mut S>>,
        cx: &mut Context<'_>,
        lanes: &mut Lanes<T>,
    ) -> Result<Filled, FillError> {
        let mut pulled = 0usize;
        let mut staged_total = 0usize;
        let mut state = Upstream::Open;
        loop {
            let (index, item) = match self.held.take() {
                Some(held) => held,
                None => {
                    let Some(upstream) = upstream.as_mut() else { break };
                    if pulled >= FILL_LIMIT {
                        break;
                    }
                    match upstream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(item)) => {
                            pulled += 1;
                            (self.route(&item)?, item)
                        }
                        Poll::Ready(None) => {
                            state = Upstream::Ended;
                            break;
                        }
                        Poll::Pending => {
                            state = Upstream::Pending;
                            break;
                        }
                    }
                }
            };
            if lanes.delivery(index) != Delivery::Live {
                lanes.undelivered(index, 1)?;
                continue;
            }
            if self.staged[index].len() < lanes.room(index) {
                self.staged[index].push(item);
                staged_total += 1;
            } else {
                lanes.watch(index, cx.waker());
                self.held = Some((index, item));
                break;
            }
        }
        lanes.probe().record_in_n(pulled as u64);
        for (index, staged) in self.staged.iter_mut().enumerate() {
            if !staged.is_empty() {
                lanes.deliver(index, staged.drain(..));
            }
        }
        Ok(Filled { moved: pulled + staged_total, upstream: state })
    }

    fn holds_elements(&self) -> bool {
        self.held.is_some()
    }

    fn abandon(&mut self, lanes: &mut Lanes<T>) {
        if self.held.take().is_some() {
            lanes.dropped(1);
        }
    }
}
