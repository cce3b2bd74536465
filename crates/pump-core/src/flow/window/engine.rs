//! What every window operator shares: processing time as an event sees it, the output side, the
//! state-machine trait, the stream that drives one state machine, and a window being filled.
//!
//! A window operator is written as a synchronous state machine ([`WindowState`]) that reacts to three
//! events: an element, a timer, the end of the stream. [`WindowStream`] drives one machine over an
//! upstream; the keyed operators drive one per key. Keeping the machines free of polling is what lets
//! the same tumbling window run alone or per key.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::flow::window::{Window, WindowConfig, WindowOverflow};
use crate::metrics::StageProbe;
use crate::stage::Stage;
use crate::timer::timer_at;

/// Processing time as one event (an element, a timer) sees it: read at most once per event, and only
/// by operators that need it (count and event-time windows never read the clock).
#[derive(Debug, Default)]
pub struct Clock {
    origin: Option<Instant>,
    now: Option<Instant>,
}

impl Clock {
    /// The current instant, read once per event.
    pub fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }

    /// Where processing-time grids start: the instant the stage was first polled.
    pub fn origin(&mut self) -> Instant {
        match self.origin {
            Some(origin) => origin,
            None => {
                let now = self.now();
                *self.origin.insert(now)
            }
        }
    }

    /// Fixes the origin at the first poll.
    pub(crate) fn start(&mut self) {
        if self.origin.is_none() {
            self.origin = Some(Instant::now());
        }
    }

    /// Forgets the instant read for the previous event.
    pub(crate) fn next_event(&mut self) {
        self.now = None;
    }

    /// A timer for `deadline` fired: the event happens no earlier than the deadline. Tokio guarantees
    /// this already; the `max` keeps a state machine from looping on a timer it cannot act on.
    pub(crate) fn timer_fired(&mut self, deadline: Instant) {
        self.now = Some(Instant::now().max(deadline));
    }
}

/// Where a window state machine sends the windows it closes and counts the elements it drops.
pub trait Emit<T, B> {
    /// Hands on a window.
    fn emit(&mut self, window: Window<T, B>);
    /// Counts `n` dropped elements (late, in a gap between windows, or over a full window).
    fn dropped(&mut self, n: u64);
}

/// What an operator produced and has not yet handed downstream, and what it dropped meanwhile.
///
/// The queue is bounded by what one event can close: at most the open windows plus one part emitted
/// early (or, keyed, one evicted key's windows besides).
#[derive(Debug)]
pub struct Outputs<O> {
    pub(crate) queue: VecDeque<O>,
    pub(crate) dropped: u64,
}

impl<O> Default for Outputs<O> {
    fn default() -> Self {
        Outputs { queue: VecDeque::new(), dropped: 0 }
    }
}

impl<O> Outputs<O> {
    /// Queues one output.
    pub(crate) fn push(&mut self, output: O) {
        self.queue.push_back(output);
    }

    /// Moves the drop count to the stage's metrics.
    pub(crate) fn publish_dropped(&mut self, stage: &StageProbe) {
        if self.dropped > 0 {
            stage.metrics().record_dropped(self.dropped);
            self.dropped = 0;
        }
    }
}

impl<T, B> Emit<T, B> for Outputs<Window<T, B>> {
    fn emit(&mut self, window: Window<T, B>) {
        self.queue.push_back(window);
    }

    fn dropped(&mut self, n: u64) {
        self.dropped += n;
    }
}

/// Seals the state-machine traits: their methods are this crate's business and may change.
pub(crate) mod sealed {
    /// Implemented only inside this crate.
    pub trait Sealed {}
}

/// The state machine of one window operator (or of one key of a keyed window operator).
///
/// Implemented by the states of this module's window kinds (sealed); [`WindowStream`] and the keyed
/// operators drive it. Elements and timers arrive in processing-time order.
pub trait WindowState<T>: sealed::Sealed + Send + 'static {
    /// The type of the windows' bounds.
    type Bound: Send + 'static;
    /// Whether the machine reads processing time (and so may set timers).
    const USES_CLOCK: bool;

    /// Takes one element; may close windows.
    fn on_element(&mut self, item: T, clock: &mut Clock, out: &mut impl Emit<T, Self::Bound>);

    /// The timer set by [`timer`](Self::timer) fired: close what is due at `clock.now()`. Afterwards
    /// `timer` must return a later instant, or none.
    fn on_timer(&mut self, clock: &mut Clock, out: &mut impl Emit<T, Self::Bound>) {
        let _ = (clock, out);
    }

    /// When the machine wants [`on_timer`](Self::on_timer) called (it may be early; the machine then
    /// sets a later one).
    fn timer(&self) -> Option<Instant> {
        None
    }

    /// The stream ended, or the key is evicted: emit every window still open.
    fn flush(&mut self, out: &mut impl Emit<T, Self::Bound>);

    /// Elements held.
    fn held(&self) -> usize;

    /// The most elements the machine can hold.
    fn capacity(&self) -> usize;
}

pin_project! {
    /// The stream of every unkeyed window flow: one [`WindowState`] driven over the upstream.
    ///
    /// Elements are pulled only when downstream asks for a window; a timer (one `Sleep`, re-armed only
    /// when the earliest deadline changes) is polled when upstream has nothing ready.
    #[must_use = "streams do nothing unless polled"]
    pub struct WindowStream<S: Stream, W: WindowState<S::Item>> {
        #[pin]
        upstream: S,
        state: W,
        outputs: Outputs<Window<S::Item, W::Bound>>,
        clock: Clock,
        sleep: Option<Pin<Box<Sleep>>>,
        upstream_done: bool,
        probe: StageProbe,
    }
}

impl<S: Stream, W: WindowState<S::Item>> WindowStream<S, W> {
    /// Drives `state` over `upstream` as the stage `stage`.
    pub(crate) fn new(upstream: S, state: W, stage: &Stage) -> Self {
        stage.metrics().set_buffer_capacity(state.capacity());
        WindowStream {
            upstream,
            state,
            outputs: Outputs::default(),
            clock: Clock::default(),
            sleep: None,
            upstream_done: false,
            probe: stage.probe(),
        }
    }
}

impl<S: Stream, W: WindowState<S::Item>> std::fmt::Debug for WindowStream<S, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStream")
            .field("held", &self.state.held())
            .field("queued", &self.outputs.queue.len())
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}

impl<S: Stream, W: WindowState<S::Item>> Stream for WindowStream<S, W> {
    type Item = Window<S::Item, W::Bound>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if W::USES_CLOCK {
            this.clock.start();
        }
        loop {
            if let Some(window) = this.outputs.queue.pop_front() {
                // Gauges and drop counts are published when the stage hands something out or waits,
                // not per element (a store per element would cost as much as the windowing).
                this.outputs.publish_dropped(this.probe);
                this.probe.metrics().set_buffer_depth(this.state.held());
                this.probe.record_out();
                return Poll::Ready(Some(window));
            }
            if *this.upstream_done {
                this.outputs.publish_dropped(this.probe);
                this.probe.metrics().set_buffer_depth(this.state.held());
                return Poll::Ready(None);
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    if W::USES_CLOCK {
                        this.clock.next_event();
                    }
                    this.state.on_element(item, this.clock, this.outputs);
                }
                Poll::Ready(None) => {
                    *this.upstream_done = true;
                    this.state.flush(this.outputs);
                }
                Poll::Pending => {
                    this.outputs.publish_dropped(this.probe);
                    this.probe.metrics().set_buffer_depth(this.state.held());
                    if !W::USES_CLOCK {
                        return Poll::Pending;
                    }
                    let Some(deadline) = this.state.timer() else {
                        return Poll::Pending;
                    };
                    if !poll_timer(this.sleep, deadline, cx) {
                        return Poll::Pending;
                    }
                    this.clock.timer_fired(deadline);
                    this.state.on_timer(this.clock, this.outputs);
                    debug_assert!(
                        this.state.timer().is_none_or(|next| next > deadline),
                        "timer did not move"
                    );
                }
            }
        }
    }
}

/// Arms `sleep` for `deadline` (resetting it only when the deadline changed) and polls it; `true` when
/// it fired, after which the caller must act so that the next deadline is a different one.
pub(crate) fn poll_timer(
    sleep: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    timer_at(sleep, deadline).as_mut().poll(cx).is_ready()
}

/// The shortest window length processing-time windows accept (the timer's resolution).
pub(crate) const MIN_LENGTH: Duration = Duration::from_millis(1);

/// `instant + duration`, or a point far in the future when that does not fit in an `Instant`.
pub(crate) fn instant_after(instant: Instant, duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 30);
    instant.checked_add(duration).unwrap_or_else(|| instant + FAR)
}

/// Nanoseconds from `origin` to `now` (zero if `now` is earlier).
pub(crate) fn elapsed_nanos(origin: Instant, now: Instant) -> u128 {
    now.saturating_duration_since(origin).as_nanos()
}

/// `origin + nanos`.
pub(crate) fn instant_at(origin: Instant, nanos: u128) -> Instant {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below one second, so it fits in a u32.
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    instant_after(origin, Duration::new(secs, subsec))
}

/// A window being filled, bounded by a [`WindowConfig`].
#[derive(Debug)]
pub(crate) struct OpenWindow<T, B> {
    pub(crate) start: B,
    pub(crate) end: B,
    pub(crate) items: Vec<T>,
    pub(crate) truncated: bool,
}

impl<T, B: Copy> OpenWindow<T, B> {
    pub(crate) fn new(start: B, end: B) -> Self {
        OpenWindow { start, end, items: Vec::new(), truncated: false }
    }

    /// Adds `item`, applying the overflow policy when the window already holds `max_elements`.
    pub(crate) fn push(&mut self, item: T, config: &WindowConfig, out: &mut impl Emit<T, B>) {
        if self.items.len() >= config.max_elements.get() {
            self.truncated = true;
            match config.overflow {
                WindowOverflow::EmitEarly => {
                    let items = std::mem::take(&mut self.items);
                    out.emit(Window { start: self.start, end: self.end, items, truncated: true });
                }
                WindowOverflow::DropNewest => {
                    out.dropped(1);
                    return;
                }
            }
        }
        self.items.push(item);
    }

    /// Brings the window back under `max_elements` after a merge: emits full parts early, or drops
    /// the excess (the later session's elements), according to the overflow policy.
    pub(crate) fn enforce(&mut self, config: &WindowConfig, out: &mut impl Emit<T, B>) {
        let max = config.max_elements.get();
        if self.items.len() <= max {
            return;
        }
        self.truncated = true;
        match config.overflow {
            WindowOverflow::EmitEarly => {
                while self.items.len() > max {
                    let rest = self.items.split_off(max);
                    let part = std::mem::replace(&mut self.items, rest);
                    out.emit(Window { start: self.start, end: self.end, items: part, truncated: true });
                }
            }
            WindowOverflow::DropNewest => {
                let excess = self.items.len() - max;
                self.items.truncate(max);
                out.dropped(excess as u64);
            }
        }
    }

    /// Emits the window (unless nothing is left of it).
    pub(crate) fn close(self, out: &mut impl Emit<T, B>) {
        if !self.items.is_empty() {
            out.emit(Window {
                start: self.start,
                end: self.end,
                items: self.items,
                truncated: self.truncated,
            });
        }
    }

    /// Emits the window before its time, to respect `max_open_windows`.
    pub(crate) fn close_early(mut self, out: &mut impl Emit<T, B>) {
        self.truncated = true;
        self.close(out);
    }
}
