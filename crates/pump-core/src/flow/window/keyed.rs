//! The stream every keyed operator shares: per-key state machines in a table bounded by `max_keys`,
//! with least-recently-used and idle eviction, and per-key timers.

use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::engine::{Outputs, poll_timer};
use crate::flow::window::keyed_table::KeyedTable;
use crate::flow::window::{Clock, KeyedConfig};
use crate::metrics::StageProbe;
use crate::stage::Stage;

/// What a keyed operator does with each key's state: the per-key half of [`KeyedStream`]. Implemented
/// by this module's keyed flows (sealed).
pub trait KeyedLogic<K, T>: Sealed + Send + 'static {
    /// One key's state.
    type State: Send + 'static;
    /// What the operator emits.
    type Out: Send + 'static;
    /// Whether states set processing-time timers.
    const USES_CLOCK: bool;

    /// The state of a key seen for the first time (or again after its eviction).
    fn new_state(&self) -> Self::State;

    /// Takes one element of `key`.
    fn on_element(
        &mut self,
        key: &K,
        state: &mut Self::State,
        item: T,
        clock: &mut Clock,
        out: &mut Outputs<Self::Out>,
    );

    /// The key's timer fired.
    fn on_timer(
        &mut self,
        key: &K,
        state: &mut Self::State,
        clock: &mut Clock,
        out: &mut Outputs<Self::Out>,
    ) {
        let _ = (key, state, clock, out);
    }

    /// When the key's state wants [`on_timer`](Self::on_timer).
    fn timer(state: &Self::State) -> Option<Instant> {
        let _ = state;
        None
    }

    /// The key leaves the table (evicted, idle, or the stream ended): emit what it holds.
    fn evict(&mut self, key: K, state: Self::State, out: &mut Outputs<Self::Out>);
}

pin_project! {
    /// The stream of every keyed flow: a [`KeyedLogic`] applied per key, at most `max_keys` keys held.
    ///
    /// Per element: the key is computed, keys idle past the timeout are evicted, a new key at
    /// `max_keys` evicts the least recently used one (its pending state is emitted first), then the
    /// element goes to its key's state. When the stream ends every key is evicted, least recently used
    /// first.
    #[must_use = "streams do nothing unless polled"]
    pub struct KeyedStream<S: Stream, K, KF, L: KeyedLogic<K, S::Item>> {
        #[pin]
        upstream: S,
        key_fn: KF,
        logic: L,
        config: KeyedConfig,
        table: KeyedTable<K, L::State>,
        outputs: Outputs<L::Out>,
        clock: Clock,
        sleep: Option<Pin<Box<Sleep>>>,
        upstream_done: bool,
        probe: StageProbe,
        marker: PhantomData<fn() -> K>,
    }
}

impl<S, K, KF, L> KeyedStream<S, K, KF, L>
where
    S: Stream,
    L: KeyedLogic<K, S::Item>,
{
    /// Applies `logic` per key of `key_fn` over `upstream` as the stage `stage`.
    pub(crate) fn new(upstream: S, key_fn: KF, logic: L, config: KeyedConfig, stage: &Stage) -> Self {
        stage.metrics().set_buffer_capacity(config.max_keys.get());
        KeyedStream {
            upstream,
            key_fn,
            logic,
            config,
            table: KeyedTable::default(),
            outputs: Outputs::default(),
            clock: Clock::default(),
            sleep: None,
            upstream_done: false,
            probe: stage.probe(),
            marker: PhantomData,
        }
    }
}

impl<S, K, KF, L> std::fmt::Debug for KeyedStream<S, K, KF, L>
where
    S: Stream,
    K: Hash + Eq + Clone,
    L: KeyedLogic<K, S::Item>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedStream")
            .field("config", &self.config)
            .field("keys", &self.table.len())
            .field("queued", &self.outputs.queue.len())
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}

impl<S, K, KF, L> Stream for KeyedStream<S, K, KF, L>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    L: KeyedLogic<K, S::Item>,
{
    type Item = L::Out;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<L::Out>> {
        let mut this = self.project();
        let idle_timeout = this.config.idle_timeout;
        let uses_clock = L::USES_CLOCK || idle_timeout.is_some();
        if uses_clock {
            this.clock.start();
        }
        loop {
            if let Some(output) = this.outputs.queue.pop_front() {
                this.probe.record_out();
                return Poll::Ready(Some(output));
            }
            if *this.upstream_done {
                return Poll::Ready(None);
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    let key = (this.key_fn)(&item);
                    let now = if uses_clock {
                        this.clock.next_event();
                        Some(this.clock.now())
                    } else {
                        None
                    };
                    if let (Some(idle_timeout), Some(now)) = (idle_timeout, now) {
                        while let Some((key, state)) = this.table.pop_idle(now, idle_timeout) {
                            this.logic.evict(key, state, this.outputs);
                        }
                    }
                    let seen = if idle_timeout.is_some() { now } else { None };
                    let timer = if let Some(state) = this.table.touch(&key, seen) {
                        this.logic.on_element(&key, state, item, this.clock, this.outputs);
                        L::timer(state)
                    } else {
                        if this.table.len() >= this.config.max_keys.get()
                            && let Some((evicted, state)) = this.table.pop_least_recent()
                        {
                            this.logic.evict(evicted, state, this.outputs);
                        }
                        let state = this.table.insert(key.clone(), this.logic.new_state(), seen);
                        this.logic.on_element(&key, state, item, this.clock, this.outputs);
                        L::timer(state)
                    };
                    if L::USES_CLOCK {
                        this.table.set_timer(&key, timer);
                    }
                }
                Poll::Ready(None) => {
                    *this.upstream_done = true;
                    while let Some((key, state)) = this.table.pop_least_recent() {
                        this.logic.evict(key, state, this.outputs);
                    }
                }
                Poll::Pending => {
                    if !uses_clock {
                        return Poll::Pending;
                    }
                    let idle = idle_timeout.and_then(|idle_timeout| this.table.next_idle(idle_timeout));
                    let deadline = match (this.table.next_timer(), idle) {
                        (Some(timer), Some(idle)) => timer.min(idle),
                        (timer, idle) => match timer.or(idle) {
                            Some(deadline) => deadline,
                            None => return Poll::Pending,
                        },
                    };
                    if !poll_timer(this.sleep, deadline, cx) {
                        return Poll::Pending;
                    }
                    this.clock.timer_fired(deadline);
                    let now = this.clock.now();
                    if let Some(idle_timeout) = idle_timeout {
                        while let Some((key, state)) = this.table.pop_idle(now, idle_timeout) {
                            this.logic.evict(key, state, this.outputs);
                        }
                    }
                    while let Some(key) = this.table.pop_due_timer(now) {
                        if let Some(state) = this.table.get_mut(&key) {
                            this.logic.on_timer(&key, state, this.clock, this.outputs);
                            let timer = L::timer(state);
                            this.table.set_timer(&key, timer);
                        }
                    }
                }
            }
            this.outputs.publish_dropped(this.probe);
            this.probe.metrics().set_buffer_depth(this.table.len());
        }
    }
}
