//! `restart_with_backoff`: restart a source or flow that fails as a whole.
//!
//! A connection to a broker or a socket does not fail per element; it breaks, and the fix is a
//! fresh connection after a pause. [`restart_source`] and [`restart_flow`] take a *factory* that
//! builds a fresh instance of the section, run it, and when it breaks drop it and build another
//! after an exponential backoff ([`RestartSettings`]). An instance breaks when
//!
//! - it emits an `Err` element (sections emit `Result`s, so a section can say "the connection
//!   broke" without failing the run), or
//! - one of its stages fails as a whole ([`Stage::fail`](crate::Stage::fail): a file that cannot be
//!   read, a `try_map` whose policy is `stop`, a panic in an async boundary).
//!
//! Each instance is built in a private [`StageContext`]: its stages report to a registry of their
//! own, which is dropped with the instance, so a section restarted a million times does not grow
//! the run's metrics. The section as a whole is one stage of the run (`restart_source` or
//! `restart_flow`) whose counters say what the rest of the pipeline saw: elements in and out, each
//! break in `errors`, each restart in `restarts`. A dropped instance's cancellation token is
//! cancelled, so its async work and tasks stop.
//!
//! When more than [`max_restarts`](RestartSettings::max_restarts) restarts come in a row, the run
//! fails with [`PipelineError::Stage`] whose cause is [`RestartsExhausted`], carrying the last
//! break. An instance that ends normally ends the section.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::error::{BoxError, PipelineError};
use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::policy::RetryPolicy;
use crate::source::{Source, SourceStage};
use crate::stage::{Stage, StageContext};

/// How a restartable section backs off, and when it gives up.
///
/// The wait before the `n`-th restart in a row is `min_backoff · 2^(n-1)`, at most `max_backoff`,
/// less a random part of up to `jitter` of it (as in [`RetryPolicy`]). Restarts count as "in a row"
/// while each instance breaks within `within` of being started; an instance that runs for `within`
/// before breaking starts the count (and the backoff) again from zero. More than `max_restarts`
/// restarts in a row fail the run.
///
/// ```
/// use pump_core::restart::RestartSettings;
/// use std::time::Duration;
/// let settings = RestartSettings::new(Duration::from_millis(100), Duration::from_secs(10))
///     .with_jitter(0.0)
///     .with_max_restarts(5, Duration::from_secs(60));
/// assert_eq!(settings.backoff(1), Duration::from_millis(100));
/// assert_eq!(settings.backoff(3), Duration::from_millis(400));
/// assert_eq!(settings.backoff(20), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RestartSettings {
    /// The wait before the first restart in a row.
    pub min_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// The fraction (0 to 1) of each wait that is random: the wait is drawn from
    /// `[base · (1 - jitter), base]`. Zero makes waits exact (tests).
    pub jitter: f64,
    /// Restarts allowed in a row before the run fails.
    pub max_restarts: u32,
    /// How long an instance must run before breaking for its break to start a new row.
    pub within: Duration,
}

impl RestartSettings {
    /// Backs off from `min_backoff` to `max_backoff` with 20% jitter, restarting without limit; an
    /// instance that runs for `min_backoff` resets the backoff.
    pub fn new(min_backoff: Duration, max_backoff: Duration) -> Self {
        RestartSettings { min_backoff, max_backoff, jitter: 0.2, max_restarts: u32::MAX, within: min_backoff }
    }

    /// The same settings with another jitter fraction (clamped to `0..=1`).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The same settings allowing at most `max_restarts` restarts in a row, a row being broken by
    /// an instance that runs for `within`.
    pub fn with_max_restarts(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// The wait before the `restart`-th restart in a row (1-based).
    pub fn backoff(&self, restart: u32) -> Duration {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            multiplier: 2.0,
            jitter: self.jitter,
        }
        .backoff(restart)
    }
}

/// A restartable section broke more often in a row than its [`RestartSettings`] allow. The cause
/// of the [`PipelineError::Stage`] that ends the run.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {restarts} restarts in a row")]
pub struct RestartsExhausted {
    /// The restarts made before giving up.
    pub restarts: u32,
    /// Why the last instance broke.
    #[source]
    pub last_failure: BoxError,
}

/// The bookkeeping of restarts in a row, shared by sources and flows.
#[derive(Debug)]
struct Backoff {
    settings: RestartSettings,
    in_a_row: u32,
    restart_due: bool,
    stage: Stage,
}

impl Backoff {
    fn new(settings: RestartSettings, stage: Stage) -> Self {
        Backoff { settings, in_a_row: 0, restart_due: false, stage }
    }

    /// Records that the instance started at `started` broke with `cause`. Returns the wait before
    /// the next instance, or `None` after failing the run.
    fn after_break(&mut self, started: Instant, cause: BoxError) -> Option<Duration> {
        self.stage.metrics().record_error();
        if started.elapsed() >= self.settings.within {
            self.in_a_row = 0;
        }
        if self.in_a_row >= self.settings.max_restarts {
            let restarts = self.in_a_row;
            tracing::warn!(parent: self.stage.span(), error = %cause, restarts, "giving up restarting");
            let exhausted = RestartsExhausted { restarts, last_failure: cause };
            self.stage.fail(PipelineError::Stage { stage: self.stage.name(), source: Box::new(exhausted) });
            return None;
        }
        self.in_a_row += 1;
        self.restart_due = true;
        let wait = self.settings.backoff(self.in_a_row);
        tracing::warn!(
            parent: self.stage.span(),
            error = %cause,
            restart = self.in_a_row,
            backoff = ?wait,
            "section broke; restarting after backoff"
        );
        Some(wait)
    }

    /// Called when an instance starts: counts the restart, if it is one.
    fn on_start(&mut self) {
        if std::mem::take(&mut self.restart_due) {
            self.stage.metrics().record_restart();
        }
    }
}

/// One running instance of a section, with the private context its stages registered in.
struct Instance<St> {
    stream: Pin<Box<St>>,
    ctx: StageContext,
    started: Instant,
}

impl<St> Drop for Instance<St> {
    fn drop(&mut self) {
        // Stops the instance's own tasks and async work, which watch this token.
        self.ctx.cancellation_token().cancel();
    }
}

/// Where a section is in its life.
enum Phase<R> {
    /// No instance yet (the first is built when downstream first asks), or the backoff is over.
    Idle,
    Running(R),
    BackingOff(Pin<Box<Sleep>>),
    Done,
}

impl<R> Phase<R> {
    fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running(_) => "running",
            Phase::BackingOff(_) => "backing off",
            Phase::Done => "done",
        }
    }

    /// The phase after a break: a backoff, the next instance at once, or the end.
    fn after_break(wait: Option<Duration>) -> Self {
        match wait {
            None => Phase::Done,
            Some(wait) if wait.is_zero() => Phase::Idle,
            Some(wait) => Phase::BackingOff(Box::pin(tokio::time::sleep(wait))),
        }
    }

    /// After a break without backoff, the section yields to the executor before it builds the next
    /// instance, so instances that break at once cannot keep the task busy forever.
    fn yield_if_restarting_at_once(&self, cx: &mut Context<'_>) -> Poll<()> {
        if matches!(self, Phase::Idle) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

/// A source that is rebuilt after a backoff whenever it breaks. Built by [`restart_source`].
#[must_use = "sources do nothing unless run"]
pub struct RestartSource<F> {
    settings: RestartSettings,
    factory: F,
}

impl<F> fmt::Debug for RestartSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestartSource").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A source built by `factory`, rebuilt after a backoff whenever it breaks.
///
/// `factory` builds a fresh source of `Result<T, E>`; `Ok` values are emitted, an `Err` (or a stage
/// of the instance failing the run) drops the instance and, after the backoff of `settings`, a
/// new one is built and read from its start. The first instance is built when downstream first
/// asks for an element. Draining the run stops the section, also during a backoff.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::restart::{RestartSettings, restart_source};
/// use std::time::Duration;
///
/// // A "connection" that breaks after two elements the first time, and then ends cleanly.
/// let mut connections = 0;
/// let settings = RestartSettings::new(Duration::from_millis(100), Duration::from_secs(5));
/// let out = restart_source(settings, move || {
///     connections += 1;
///     let elements = if connections == 1 { vec![Ok(1), Ok(2), Err("connection reset")] } else { vec![Ok(3)] };
///     source::iter(elements)
/// })
/// .to(sink::collect())
/// .run()
/// .await
/// .unwrap();
/// assert_eq!(out.value, vec![1, 2, 3]);
/// assert_eq!(out.stats.metrics.stage("restart_source").unwrap().restarts, 1);
/// # }
/// ```
pub fn restart_source<S, F>(settings: RestartSettings, factory: F) -> RestartSource<F>
where
    F: FnMut() -> S + Send + 'static,
    S: Source,
{
    RestartSource { settings, factory }
}

/// The stream of a [`RestartSource`] (inside its [`SourceStage`]).
#[must_use = "streams do nothing unless polled"]
pub struct RestartSourceStream<F, St> {
    factory: F,
    phase: Phase<Instance<St>>,
    backoff: Backoff,
}

// The instance stream is boxed and the factory is never pinned, so moving the stream is fine.
impl<F, St> Unpin for RestartSourceStream<F, St> {}

impl<F, St> fmt::Debug for RestartSourceStream<F, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestartSourceStream")
            .field("phase", &self.phase.name())
            .field("restarts_in_a_row", &self.backoff.in_a_row)
            .finish_non_exhaustive()
    }
}

impl<F, S, St, T, E> Stream for RestartSourceStream<F, St>
where
    F: FnMut() -> S,
    S: Source<Stream = St>,
    St: Stream<Item = Result<T, E>>,
    E: Into<BoxError>,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Idle => {
                    this.backoff.on_start();
                    let ctx = StageContext::new(this.backoff.stage.span().clone());
                    let stream = Box::pin((this.factory)().open(&ctx));
                    this.phase = Phase::Running(Instance { stream, ctx, started: Instant::now() });
                }
                Phase::BackingOff(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.phase = Phase::Idle;
                }
                Phase::Done => return Poll::Ready(None),
                Phase::Running(instance) => {
                    let cause = match ready!(instance.stream.as_mut().poll_next(cx)) {
                        Some(Ok(item)) => return Poll::Ready(Some(item)),
                        Some(Err(error)) => error.into(),
                        None => match instance.ctx.failure().take() {
                            Some(error) => Box::new(error) as BoxError,
                            None => {
                                this.phase = Phase::Done;
                                return Poll::Ready(None);
                            }
                        },
                    };
                    let started = instance.started;
                    // Drop the broken instance before backing off.
                    this.phase = Phase::Done;
                    this.phase = Phase::after_break(this.backoff.after_break(started, cause));
                    ready!(this.phase.yield_if_restarting_at_once(cx));
                }
            }
        }
    }
}

impl<F, S, T, E> Source for RestartSource<F>
where
    F: FnMut() -> S + Send + 'static,
    S: Source<Item = Result<T, E>>,
    T: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    type Item = T;
    type Stream = SourceStage<RestartSourceStream<F, S::Stream>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("restart_source");
        let stream = RestartSourceStream {
            factory: self.factory,
            phase: Phase::Idle,
            backoff: Backoff::new(self.settings, stage.clone()),
        };
        SourceStage::new(stream, &stage, ctx)
    }
}

/// A flow that is rebuilt after a backoff whenever it breaks, keeping its upstream. Built by
/// [`restart_flow`].
#[must_use = "flows do nothing unless run"]
pub struct RestartFlow<F> {
    settings: RestartSettings,
    factory: F,
}

impl<F> fmt::Debug for RestartFlow<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestartFlow").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A flow built by `factory`, rebuilt after a backoff whenever it breaks; upstream stays connected.
///
/// `factory` builds a fresh flow whose output is `Result<U, E>`; `Ok` values are emitted, an `Err`
/// (or a stage of the instance failing the run) drops the instance and, after the backoff of
/// `settings`, a new one continues with the next upstream element. The instance reads upstream
/// through a hand-off of one element, pulled only when the instance asks, so backpressure reaches
/// upstream unchanged and nothing is pulled during a backoff.
///
/// What a break loses: the element whose output was the `Err` (counted in the stage's `dropped`)
/// and whatever the broken instance held in buffers of its own (none for a flow of element-wise
/// operators). An element in the hand-off that the instance had not taken yet is given to the next
/// instance.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::restart::{RestartSettings, restart_flow};
/// use std::time::Duration;
///
/// // A "client" that breaks on its third request; a fresh one serves the rest.
/// let settings = RestartSettings::new(Duration::from_millis(100), Duration::from_secs(5));
/// let client = restart_flow(settings, || {
///     let mut requests = 0;
///     flow::identity::<u32>().map(move |x| {
///         requests += 1;
///         if requests == 3 { Err("broken pipe") } else { Ok(x * 10) }
///     })
/// });
/// let out = source::iter(1..=5).via(client).to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![10, 20, 40, 50]);
/// let stage = out.stats.metrics.stage("restart_flow").unwrap();
/// assert_eq!((stage.restarts, stage.dropped), (1, 1));
/// # }
/// ```
pub fn restart_flow<Fl, F>(settings: RestartSettings, factory: F) -> RestartFlow<F>
where
    F: FnMut() -> Fl + Send + 'static,
{
    RestartFlow { settings, factory }
}

/// The hand-off between a restartable flow's upstream and its current instance.
struct HandOff<T> {
    /// An element pulled for the instance and not yet taken by it.
    slot: Option<T>,
    /// The instance is waiting for an element.
    wanted: bool,
    upstream_done: bool,
    /// The instance was dropped; its feed ends.
    detached: bool,
    /// Wakes whoever polls the feed (another task if the instance has an async boundary).
    feed_waker: Option<Waker>,
    /// Wakes the section when the instance asks for an element while the section waits on it.
    section_waker: Option<Waker>,
}

type SharedHandOff<T> = Arc<Mutex<HandOff<T>>>;

fn lock<T>(shared: &SharedHandOff<T>) -> MutexGuard<'_, HandOff<T>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The input stream of a restartable flow's instance: upstream's elements, one at a time, through
/// the section's hand-off.
#[must_use = "streams do nothing unless polled"]
pub struct Feed<T> {
    shared: SharedHandOff<T>,
}

impl<T> fmt::Debug for Feed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Feed")
    }
}

impl<T> Stream for Feed<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut hand_off = lock(&self.shared);
        if let Some(item) = hand_off.slot.take() {
            return Poll::Ready(Some(item));
        }
        if hand_off.upstream_done || hand_off.detached {
            return Poll::Ready(None);
        }
        hand_off.wanted = true;
        match &mut hand_off.feed_waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => hand_off.feed_waker = Some(cx.waker().clone()),
        }
        let section = hand_off.section_waker.take();
        drop(hand_off);
        if let Some(section) = section {
            section.wake();
        }
        Poll::Pending
    }
}

/// A running instance of a restartable flow and its hand-off.
struct FlowInstance<St, In> {
    instance: Instance<St>,
    hand_off: SharedHandOff<In>,
}

impl<St, In> Drop for FlowInstance<St, In> {
    fn drop(&mut self) {
        lock(&self.hand_off).detached = true;
    }
}

pin_project! {
    /// The stream of a [`RestartFlow`].
    #[must_use = "streams do nothing unless polled"]
    pub struct RestartFlowStream<S, F, St, In> {
        #[pin]
        upstream: S,
        factory: F,
        phase: Phase<FlowInstance<St, In>>,
        // An element the last instance had not taken, for the next one.
        carried: Option<In>,
        upstream_done: bool,
        backoff: Backoff,
        probe: StageProbe,
    }
}

impl<S, F, St, In> fmt::Debug for RestartFlowStream<S, F, St, In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestartFlowStream")
            .field("phase", &self.phase.name())
            .field("restarts_in_a_row", &self.backoff.in_a_row)
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}

impl<S, F, Fl, In, U, E> Stream for RestartFlowStream<S, F, Fl::Stream<Feed<In>>, In>
where
    S: Stream<Item = In>,
    F: FnMut() -> Fl,
    Fl: Flow<In, Out = Result<U, E>>,
    In: Send + 'static,
    E: Into<BoxError>,
{
    type Item = U;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let mut this = self.project();
        loop {
            match this.phase {
                Phase::Idle => {
                    this.backoff.on_start();
                    let hand_off = Arc::new(Mutex::new(HandOff {
                        slot: this.carried.take(),
                        wanted: false,
                        upstream_done: *this.upstream_done,
                        detached: false,
                        feed_waker: None,
                        section_waker: None,
                    }));
                    let ctx = StageContext::new(this.backoff.stage.span().clone());
                    let feed = Feed { shared: hand_off.clone() };
                    let stream = Box::pin((this.factory)().apply(feed, &ctx));
                    let instance = Instance { stream, ctx, started: Instant::now() };
                    *this.phase = Phase::Running(FlowInstance { instance, hand_off });
                }
                Phase::BackingOff(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    *this.phase = Phase::Idle;
                }
                Phase::Done => return Poll::Ready(None),
                Phase::Running(running) => {
                    let cause = match running.instance.stream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(item))) => {
                            this.probe.record_out();
                            return Poll::Ready(Some(item));
                        }
                        Poll::Ready(Some(Err(error))) => {
                            this.probe.metrics().record_dropped(1);
                            error.into()
                        }
                        Poll::Ready(None) => match running.instance.ctx.failure().take() {
                            Some(error) => Box::new(error) as BoxError,
                            None => {
                                *this.phase = Phase::Done;
                                return Poll::Ready(None);
                            }
                        },
                        Poll::Pending => {
                            let mut hand_off = lock(&running.hand_off);
                            if !hand_off.wanted || hand_off.slot.is_some() || hand_off.upstream_done {
                                // The instance waits on something else; if it asks for an element
                                // from another task, the feed wakes us.
                                match &mut hand_off.section_waker {
                                    Some(waker) => waker.clone_from(cx.waker()),
                                    None => hand_off.section_waker = Some(cx.waker().clone()),
                                }
                                return Poll::Pending;
                            }
                            hand_off.section_waker = None;
                            // Upstream code must not run under the lock the feed takes.
                            drop(hand_off);
                            let next = crate::metrics::ready_or_publish!(
                                this.probe,
                                this.upstream.as_mut().poll_next(cx)
                            );
                            let mut hand_off = lock(&running.hand_off);
                            match next {
                                Some(item) => {
                                    this.probe.record_in();
                                    hand_off.slot = Some(item);
                                }
                                None => {
                                    *this.upstream_done = true;
                                    hand_off.upstream_done = true;
                                }
                            }
                            hand_off.wanted = false;
                            let feed_waker = hand_off.feed_waker.take();
                            drop(hand_off);
                            // When the feed is polled by this very task, polling the instance again
                            // (next turn of the loop) is the wake-up.
                            if let Some(waker) = feed_waker
                                && !waker.will_wake(cx.waker())
                            {
                                waker.wake();
                            }
                            continue;
                        }
                    };
                    let started = running.instance.started;
                    *this.carried = lock(&running.hand_off).slot.take();
                    // Drop the broken instance before backing off.
                    *this.phase = Phase::Done;
                    *this.phase = Phase::after_break(this.backoff.after_break(started, cause));
                    ready!(this.phase.yield_if_restarting_at_once(cx));
                }
            }
        }
    }
}

impl<In, F, Fl, U, E> Flow<In> for RestartFlow<F>
where
    In: Send + 'static,
    F: FnMut() -> Fl + Send + 'static,
    Fl: Flow<In, Out = Result<U, E>>,
    U: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    type Out = U;
    type Stream<S>
        = RestartFlowStream<S, F, Fl::Stream<Feed<In>>, In>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("restart_flow");
        RestartFlowStream {
            upstream,
            factory: self.factory,
            phase: Phase::Idle,
            carried: None,
            upstream_done: false,
            probe: stage.probe(),
            backoff: Backoff::new(self.settings, stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_to_max() {
        let settings =
            RestartSettings::new(Duration::from_millis(100), Duration::from_millis(500)).with_jitter(0.0);
        let waits: Vec<_> = (1..=5).map(|restart| settings.backoff(restart)).collect();
        let millis = [100, 200, 400, 500, 500].map(Duration::from_millis);
        assert_eq!(waits, millis);
    }

    #[test]
    fn jitter_only_shortens_the_wait_by_at_most_its_fraction() {
        let settings =
            RestartSettings::new(Duration::from_millis(1000), Duration::from_secs(60)).with_jitter(0.25);
        for restart in 1..=4 {
            let base = Duration::from_millis(1000 * 2u64.pow(restart - 1));
            for _ in 0..100 {
                let wait = settings.backoff(restart);
                assert!(wait <= base && wait >= base.mul_f64(0.75), "restart {restart}: {wait:?}");
            }
        }
    }

    #[test]
    fn jitter_is_clamped() {
        let settings = RestartSettings::new(Duration::ZERO, Duration::ZERO).with_jitter(3.0);
        assert!((settings.jitter - 1.0).abs() < f64::EPSILON);
    }
}
