//! The engine shared by the fan-out sinks: one future that pulls the input, hands elements to the
//! consumers' lanes, and polls the consumers' own futures, all on the task that polls it.
//!
//! Why inline: a fan-out's consumers are usually cheap (a fold, a writer behind its own buffer), and
//! running them on their own tasks costs a cross-thread wake-up and a channel operation per
//! element. Here the distributor and the consumers share one task: elements move in chunks (as many
//! as every lane has room for), a consumer is polled only when its lane got elements or something
//! it waits on woke it (a per-consumer flag set by its own waker), and a lane only wakes a real task
//! when the consumer's stream is polled elsewhere (e.g. behind an `async_boundary` inside the
//! consumer, which is how a CPU-heavy consumer gets a thread of its own).
//!
//! Every consumer runs in a child [`StageContext`]: its stages appear in the run's metrics and see
//! the run's abort and drain, but a failure inside it cancels only it. The driver then applies the
//! [`FanOutPolicy`]: fail the run with the consumer's error, or detach the consumer and go on.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use futures::future::BoxFuture;
use futures::task::{ArcWake, AtomicWaker};
use futures::{FutureExt, Stream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::PipelineError;
use crate::fan::config::{FanOutConfig, FanOutPolicy};
use crate::fan::error::FanOutError;
use crate::fan::lane::{Lane, LaneStream, Leftovers, Room};
use crate::metrics::StageProbe;
use crate::sink::Sink;
use crate::stage::{Stage, StageContext, scope_token};

/// Rounds of "poll consumers, fill lanes" in one poll of the driver before it yields to the
/// executor, so a fan-out over an input that is never pending cannot monopolise its thread.
const ROUNDS_PER_POLL: usize = 64;

/// Most elements one fill pulls from the input, whatever the room.
pub(crate) const FILL_LIMIT: usize = 1024;

/// A consumer's waker: marks the consumer as due for a poll and wakes the driver's task.
struct ConsumerWake {
    due: AtomicBool,
    driver: Arc<AtomicWaker>,
}

impl ArcWake for ConsumerWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.due.store(true, Ordering::Release);
        arc_self.driver.wake();
    }
}

/// Whether a lane still takes elements, and what happens to elements meant for it when not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The consumer reads its lane.
    Live,
    /// Detached under `ContinueWithout`: its elements are counted as dropped.
    Dropping,
    /// Stopped under `FailPipeline`: an element for it fails the run.
    Failing,
}

struct LaneSlot<T> {
    lane: Arc<Lane<T>>,
    delivery: Delivery,
    waker: Waker,
    wake: Arc<ConsumerWake>,
}

/// Why a fill or a reclaim fails the run.
#[derive(Debug, Clone)]
pub(crate) enum FillError {
    /// The fan-out's own finding.
    Fan(FanOutError),
    /// User code of the fan-out (a partition function) panicked.
    Panicked(String),
}

/// The lanes as the distribution strategies see them: room, delivery, accounting.
pub(crate) struct Lanes<T> {
    slots: Vec<LaneSlot<T>>,
    rooms: Vec<usize>,
    capacity: usize,
    policy: FanOutPolicy,
    probe: StageProbe,
    /// Lanes whose consumer dropped its stream, found by [`Lanes::refresh`], still to reclaim.
    gone: Vec<(usize, Leftovers<T>)>,
}

impl<T> Lanes<T> {
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn delivery(&self, index: usize) -> Delivery {
        self.slots[index].delivery
    }

    pub(crate) fn room(&self, index: usize) -> usize {
        self.rooms[index]
    }

    pub(crate) fn any_live(&self) -> bool {
        self.slots.iter().any(|slot| slot.delivery == Delivery::Live)
    }

    /// The first lane whose consumer stopped under `FailPipeline`, if any.
    pub(crate) fn failing(&self) -> Option<usize> {
        self.slots.iter().position(|slot| slot.delivery == Delivery::Failing)
    }

    pub(crate) fn probe(&mut self) -> &mut StageProbe {
        &mut self.probe
    }

    /// The delivery a consumer gets when it stops, by policy.
    fn stopped_delivery(&self) -> Delivery {
        match self.policy {
            FanOutPolicy::FailPipeline => Delivery::Failing,
            FanOutPolicy::ContinueWithout => Delivery::Dropping,
        }
    }

    /// Reads every live lane's room (registering `producer` on full ones) and notices consumers
    /// whose stream is gone.
    pub(crate) fn refresh(&mut self, producer: &Waker) {
        for index in 0..self.slots.len() {
            self.rooms[index] = 0;
            if self.slots[index].delivery != Delivery::Live {
                continue;
            }
            match self.slots[index].lane.room(producer) {
                Room::Free(room) => self.rooms[index] = room,
                Room::Gone => {
                    self.slots[index].delivery = self.stopped_delivery();
                    let leftovers = self.slots[index].lane.detach();
                    self.gone.push((index, leftovers));
                }
            }
        }
    }

    /// Registers `producer` to be woken when lane `index` frees room.
    pub(crate) fn watch(&self, index: usize, producer: &Waker) {
        self.slots[index].lane.watch(producer);
    }

    /// Hands `items` to lane `index` (within its room) and makes sure its consumer is polled.
    pub(crate) fn deliver(&mut self, index: usize, items: impl Iterator<Item = T>) {
        let slot = &self.slots[index];
        let before = self.rooms[index];
        let mut count = 0usize;
        let waiting = slot.lane.push(items.inspect(|_| count += 1));
        self.rooms[index] = before.saturating_sub(count);
        self.probe.record_out_n(count as u64);
        if let Some(waker) = waiting {
            wake_consumer(slot, waker);
        }
    }

    /// Accounts for `count` elements meant for the stopped consumer `index`.
    pub(crate) fn undelivered(&mut self, index: usize, count: usize) -> Result<(), FillError> {
        if count == 0 {
            return Ok(());
        }
        match self.slots[index].delivery {
            Delivery::Failing => {
                Err(FillError::Fan(FanOutError::ConsumerStopped { consumer: index, undelivered: count }))
            }
            Delivery::Live | Delivery::Dropping => {
                self.probe.metrics().record_dropped(count as u64);
                Ok(())
            }
        }
    }

    /// Counts elements the fan-out itself drops (nobody left to take them).
    pub(crate) fn dropped(&mut self, count: usize) {
        if count > 0 {
            self.probe.metrics().record_dropped(count as u64);
        }
    }

    /// Publishes the elements buffered across live lanes, as of the last refresh and deliveries.
    pub(crate) fn publish_depth(&self) {
        let depth: usize = self
            .slots
            .iter()
            .zip(&self.rooms)
            .filter(|(slot, _)| slot.delivery == Delivery::Live)
            .map(|(_, room)| self.capacity.saturating_sub(*room))
            .sum();
        self.probe.metrics().set_buffer_depth(depth);
    }

    fn close_all(&mut self) {
        for slot in &self.slots {
            if let Some(waker) = slot.lane.close() {
                wake_consumer(slot, waker);
            }
        }
    }
}

/// Wakes the consumer of `slot`, which registered `waker` on its lane. When that is the
/// consumer's own inline waker, setting its flag is enough: the driver polls it this round.
fn wake_consumer<T>(slot: &LaneSlot<T>, waker: Waker) {
    if waker.will_wake(&slot.waker) {
        slot.wake.due.store(true, Ordering::Release);
    } else {
        waker.wake();
    }
}

/// The state of the input after a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// It may have more now; the fill stopped for lack of room or at its limit.
    Open,
    /// It returned `Pending`; it is not polled again in this poll of the driver (it may have
    /// yielded on purpose).
    Pending,
    /// It ended just now.
    Ended,
}

/// What a fill did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filled {
    pub(crate) moved: usize,
    pub(crate) upstream: Upstream,
}

/// How a fan-out sink hands elements to its lanes.
pub(crate) trait Distribute<T>: Send + 'static {
    /// Pulls from `upstream` while the lanes have room, and delivers. Called with fresh rooms
    /// (after [`Lanes::refresh`]); `upstream` is `None` once it has ended, when only what the
    /// strategy holds is left to deliver. Reports [`Upstream::Ended`] once, when it sees the end.
    fn fill<S: Stream<Item = T>>(
        &mut self,
        upstream: Option<Pin<&mut S>>,
        cx: &mut Context<'_>,
        lanes: &mut Lanes<T>,
    ) -> Result<Filled, FillError>;

    /// Takes back what stopped consumer `index` did not receive.
    fn reclaim(
        &mut self,
        index: usize,
        leftovers: Leftovers<T>,
        lanes: &mut Lanes<T>,
    ) -> Result<(), FillError> {
        lanes.undelivered(index, leftovers.queued.len() + leftovers.in_hand)
    }

    /// Elements the strategy holds besides the input (a backlog, an element waiting for room).
    fn holds_elements(&self) -> bool {
        false
    }

    /// No consumer is left: drops whatever the strategy holds, counting it.
    fn abandon(&mut self, _lanes: &mut Lanes<T>) {}
}

/// Pulls up to `limit` elements from `upstream` into `staging`.
pub(crate) fn pull<T, S: Stream<Item = T>>(
    mut upstream: Pin<&mut S>,
    cx: &mut Context<'_>,
    staging: &mut Vec<T>,
    limit: usize,
) -> Upstream {
    while staging.len() < limit {
        match upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => staging.push(item),
            Poll::Ready(None) => return Upstream::Ended,
            Poll::Pending => return Upstream::Pending,
        }
    }
    Upstream::Open
}

/// A started consumer: its future (or why it could not start), its cancellation and its context.
struct ConsumerTask<R> {
    future: Option<BoxFuture<'static, Result<R, PipelineError>>>,
    start_failure: Option<PipelineError>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    child: StageContext,
    result: Option<Result<R, PipelineError>>,
}

/// Builds a fan-out: registers its stage, opens a lane and a child context per consumer.
pub(crate) struct FanOut<T> {
    stage: Stage,
    config: FanOutConfig,
    parent: StageContext,
    driver_waker: Arc<AtomicWaker>,
    slots: Vec<LaneSlot<T>>,
    children: Vec<StageContext>,
    start_failures: Vec<Option<PipelineError>>,
}

impl<T: Send + 'static> FanOut<T> {
    pub(crate) fn new(operator: &str, ctx: &StageContext, config: FanOutConfig, consumers: usize) -> Self {
        let stage = ctx.register(operator);
        stage.metrics().set_buffer_capacity(config.capacity().get().saturating_mul(consumers));
        FanOut {
            stage,
            config,
            parent: ctx.clone(),
            driver_waker: Arc::new(AtomicWaker::new()),
            slots: Vec::with_capacity(consumers),
            children: Vec::with_capacity(consumers),
            start_failures: Vec::with_capacity(consumers),
        }
    }

    /// Opens consumer `sink` on a new lane. `None` when building it panicked (recorded, reported
    /// as that consumer's failure when the driver starts).
    pub(crate) fn open<K: Sink<T>>(
        &mut self,
        sink: K,
    ) -> Option<BoxFuture<'static, Result<K::Output, PipelineError>>> {
        let index = self.slots.len();
        let lane = Lane::new(self.config.capacity().get());
        let wake = Arc::new(ConsumerWake { due: AtomicBool::new(true), driver: self.driver_waker.clone() });
        let waker = futures::task::waker(wake.clone());
        self.slots.push(LaneSlot { lane: lane.clone(), delivery: Delivery::Live, waker, wake });
        let child = self.parent.child();
        let built = catch_unwind(AssertUnwindSafe(|| sink.consume(LaneStream::new(lane), &child)));
        let token = child.cancellation_token().clone();
        self.children.push(child);
        match built {
            Ok(future) => {
                self.start_failures.push(None);
                Some(scope_token(token, future).boxed())
            }
            Err(payload) => {
                self.start_failures.push(Some(PipelineError::from_panic(
                    consumer_name(&self.stage, index),
                    payload.as_ref(),
                )));
                None
            }
        }
    }

    /// The driver over `upstream`, with the consumers' futures in the order they were opened.
    pub(crate) fn run<S, D, R>(
        self,
        upstream: S,
        distribute: D,
        futures: Vec<Option<BoxFuture<'static, Result<R, PipelineError>>>>,
    ) -> Driver<T, S, D, R>
    where
        S: Stream<Item = T> + Send + 'static,
        D: Distribute<T>,
    {
        let FanOut { stage, config, parent, driver_waker, slots, children, start_failures } = self;
        let consumers = futures
            .into_iter()
            .zip(children)
            .zip(start_failures)
            .map(|((future, child), start_failure)| ConsumerTask {
                future,
                start_failure,
                cancelled: Box::pin(child.cancellation_token().clone().cancelled_owned()),
                child,
                result: None,
            })
            .collect::<Vec<_>>();
        let lanes = Lanes {
            rooms: vec![0; slots.len()],
            slots,
            capacity: config.capacity().get(),
            policy: config.policy(),
            probe: stage.probe(),
            gone: Vec::new(),
        };
        Driver {
            upstream: Some(Box::pin(upstream)),
            closed: false,
            distribute,
            lanes,
            consumers,
            stage,
            parent_cancel: parent.cancellation_token().clone(),
            driver_waker,
            finished: false,
        }
    }
}

fn consumer_name(stage: &Stage, index: usize) -> String {
    format!("{}/consumer-{index}", stage.name())
}

/// The future of a fan-out sink. See the module docs.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Driver<T, S, D, R> {
    upstream: Option<Pin<Box<S>>>,
    /// The lanes are closed: no element will be delivered any more.
    closed: bool,
    distribute: D,
    lanes: Lanes<T>,
    consumers: Vec<ConsumerTask<R>>,
    stage: Stage,
    parent_cancel: CancellationToken,
    driver_waker: Arc<AtomicWaker>,
    finished: bool,
}

/// How one poll of the driver ends early.
enum Stop {
    /// The run fails: this error goes to `Stage::fail`, the other is what the sink returns.
    Fail { run_error: PipelineError, returned: PipelineError },
}

impl<T, S, D, R> Driver<T, S, D, R>
where
    T: Send + 'static,
    S: Stream<Item = T> + Send + 'static,
    D: Distribute<T>,
{
    fn fill_error(&self, error: FillError) -> Stop {
        match error {
            FillError::Fan(fan) => Stop::Fail {
                run_error: PipelineError::Stage { stage: self.stage.name(), source: Box::new(fan.clone()) },
                returned: PipelineError::Stage { stage: self.stage.name(), source: Box::new(fan) },
            },
            FillError::Panicked(message) => Stop::Fail {
                run_error: PipelineError::Panicked { stage: self.stage.name(), message: message.clone() },
                returned: PipelineError::Panicked { stage: self.stage.name(), message },
            },
        }
    }

    /// Polls every consumer that is due. Returns whether one of them finished.
    fn poll_consumers(&mut self) -> Result<bool, Stop> {
        let mut finished_any = false;
        for index in 0..self.consumers.len() {
            if let Some(error) = self.consumers[index].start_failure.take() {
                self.on_exit(index, Err(error))?;
                finished_any = true;
                continue;
            }
            if self.consumers[index].future.is_none() {
                continue;
            }
            let slot = &self.lanes.slots[index];
            if !slot.wake.due.swap(false, Ordering::AcqRel) {
                continue;
            }
            let mut cx = Context::from_waker(&slot.waker);
            let task = &mut self.consumers[index];
            let Some(future) = task.future.as_mut() else {
                continue;
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            let exit = match outcome {
                Ok(Poll::Pending) => {
                    if task.cancelled.as_mut().poll(&mut cx).is_ready() {
                        // Something inside the consumer failed it (the run itself is not cancelled:
                        // that was checked before).
                        Some(Err(task.child.failure().take().unwrap_or(PipelineError::Aborted)))
                    } else {
                        None
                    }
                }
                Ok(Poll::Ready(result)) => match task.child.failure().take() {
                    // A stage inside the consumer failed; the consumer's value is of a truncated input.
                    Some(error) => Some(Err(error)),
                    None => Some(result),
                },
                Err(payload) => {
                    Some(Err(PipelineError::from_panic(consumer_name(&self.stage, index), payload.as_ref())))
                }
            };
            if let Some(result) = exit {
                self.on_exit(index, result)?;
                finished_any = true;
            }
        }
        Ok(finished_any)
    }

    /// A consumer finished with `result`: store it and apply the policy.
    fn on_exit(&mut self, index: usize, result: Result<R, PipelineError>) -> Result<(), Stop> {
        let span = self.stage.span().clone();
        let task = &mut self.consumers[index];
        task.future = None;
        let leftovers = self.lanes.slots[index].lane.detach();
        let stopped = self.lanes.stopped_delivery();
        if self.lanes.slots[index].delivery == Delivery::Live {
            self.lanes.slots[index].delivery = stopped;
        }
        match result {
            Ok(value) => {
                task.result = Some(Ok(value));
            }
            Err(error) => {
                self.stage.metrics().record_error();
                match self.lanes.policy {
                    FanOutPolicy::FailPipeline => {
                        return Err(Stop::Fail {
                            run_error: error,
                            returned: PipelineError::Stage {
                                stage: self.stage.name(),
                                source: Box::new(FanOutError::ConsumerFailed { consumer: index }),
                            },
                        });
                    }
                    FanOutPolicy::ContinueWithout => {
                        tracing::warn!(parent: &span, consumer = index, %error, "fan-out consumer failed; continuing without it");
                        task.result = Some(Err(error));
                    }
                }
            }
        }
        if let Err(error) = self.distribute.reclaim(index, leftovers, &mut self.lanes) {
            return Err(self.fill_error(error));
        }
        Ok(())
    }

    /// Reclaims lanes whose consumer dropped its stream.
    fn reclaim_gone(&mut self) -> Result<(), Stop> {
        while let Some((index, leftovers)) = self.lanes.gone.pop() {
            if let Err(error) = self.distribute.reclaim(index, leftovers, &mut self.lanes) {
                return Err(self.fill_error(error));
            }
        }
        Ok(())
    }

    /// Stops taking input (it ended, or nobody is left to take it) and tells the lanes.
    fn close(&mut self) {
        self.upstream = None;
        self.closed = true;
        self.lanes.close_all();
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Result<Poll<()>, Stop> {
        let mut upstream_pending = false;
        for _ in 0..ROUNDS_PER_POLL {
            let mut progressed = self.poll_consumers()?;
            if !self.closed && !upstream_pending {
                self.lanes.refresh(cx.waker());
                self.reclaim_gone()?;
                if !self.lanes.any_live() && self.lanes.failing().is_none() {
                    // Everybody detached under `ContinueWithout`: stop pulling.
                    self.distribute.abandon(&mut self.lanes);
                    self.close();
                    progressed = true;
                } else {
                    let upstream = self.upstream.as_mut().map(|upstream| upstream.as_mut());
                    let filled = match self.distribute.fill(upstream, cx, &mut self.lanes) {
                        Ok(filled) => filled,
                        Err(error) => return Err(self.fill_error(error)),
                    };
                    self.lanes.publish_depth();
                    progressed |= filled.moved > 0;
                    match filled.upstream {
                        Upstream::Open => {}
                        Upstream::Pending => upstream_pending = true,
                        Upstream::Ended => {
                            self.upstream = None;
                            progressed = true;
                        }
                    }
                    if self.upstream.is_none() && !self.distribute.holds_elements() {
                        self.close();
                        progressed = true;
                    }
                }
                self.reclaim_gone()?;
            }
            if self.closed
                && self.consumers.iter().all(|task| task.future.is_none() && task.start_failure.is_none())
            {
                return Ok(Poll::Ready(()));
            }
            if !progressed {
                return Ok(Poll::Pending);
            }
        }
        cx.waker().wake_by_ref();
        Ok(Poll::Pending)
    }
}

impl<T, S, D, R> Future for Driver<T, S, D, R>
where
    T: Send + 'static,
    S: Stream<Item = T> + Send + 'static,
    D: Distribute<T>,
{
    type Output = Result<Vec<Result<R, PipelineError>>, PipelineError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(PipelineError::Aborted));
        }
        if this.parent_cancel.is_cancelled() {
            this.finished = true;
            this.upstream = None;
            this.consumers.clear();
            return Poll::Ready(Err(PipelineError::Aborted));
        }
        this.driver_waker.register(cx.waker());
        match this.step(cx) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                this.finished = true;
                this.lanes.publish_depth();
                let results = this
                    .consumers
                    .iter_mut()
                    .map(|task| task.result.take().unwrap_or(Err(PipelineError::Aborted)))
                    .collect();
                Poll::Ready(Ok(results))
            }
            Err(Stop::Fail { run_error, returned }) => {
                this.finished = true;
                this.stage.fail(run_error);
                // Drop everything now: the consumers' futures, their lanes, the input.
                this.upstream = None;
                this.consumers.clear();
                Poll::Ready(Err(returned))
            }
        }
    }
}

// The driver holds only boxed futures and streams, so it is `Unpin` whatever they are.
impl<T, S, D, R> Unpin for Driver<T, S, D, R> {}
