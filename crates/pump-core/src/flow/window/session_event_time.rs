//! `session_event_time`: windows of elements whose timestamps are less than a gap apart.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::OpenWindow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::event_windows::Watermark;
use crate::flow::window::{
    Clock, Emit, Lateness, Window, WindowConfig, WindowSpec, WindowState, WindowStream,
};
use crate::stage::StageContext;

/// The `session_event_time` flow: sessions of the elements' own timestamps. Built by
/// `session_event_time` on sources and flows, or by [`SessionEventTime::new`] for
/// [`KeyBy::window`](super::KeyBy::window).
///
/// Each element stands for the span `[timestamp, timestamp + gap)`; overlapping spans merge into one
/// session `[smallest timestamp, largest timestamp + gap)`, so two elements share a session exactly when
/// a chain of elements less than `gap` apart links them. A session is emitted when the watermark reaches
/// its end. An element that would start a session the watermark already passed is late (counted as
/// `dropped`, handed to the [`Lateness`] side output); one that falls into an open session joins it.
/// See the [module docs](super) for units and bounds.
#[must_use = "flows do nothing unless run"]
pub struct SessionEventTime<T, F> {
    gap: NonZeroU64,
    timestamp: Arc<F>,
    lateness: Lateness<T>,
    config: WindowConfig,
}

impl<T, F> SessionEventTime<T, F>
where
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    /// Sessions separated by `gap` (in the timestamps' unit) of the timestamps `timestamp` reads,
    /// closed `lateness` after the largest timestamp seen passes their end, bounded by `config`.
    pub fn new(gap: NonZeroU64, timestamp: F, lateness: Lateness<T>, config: WindowConfig) -> Self {
        SessionEventTime { gap, timestamp: Arc::new(timestamp), lateness, config }
    }
}

impl<T, F> std::fmt::Debug for SessionEventTime<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEventTime")
            .field("gap", &self.gap)
            .field("lateness", &self.lateness)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The state of a `session_event_time` operator: the watermark and the open sessions by start.
pub struct SessionEventTimeState<T, F> {
    gap: u64,
    timestamp: Arc<F>,
    lateness: Lateness<T>,
    config: WindowConfig,
    watermark: Watermark,
    /// Disjoint sessions by start, so also in the order of their ends.
    open: BTreeMap<u64, OpenWindow<T, u64>>,
}

impl<T, F> std::fmt::Debug for SessionEventTimeState<T, F>
where
    T: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEventTimeState")
            .field("watermark", &self.watermark)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl<T, F> SessionEventTimeState<T, F> {
    fn close_up_to(&mut self, closed_up_to: u64, out: &mut impl Emit<T, u64>) {
        while let Some(entry) = self.open.first_entry() {
            if entry.get().end > closed_up_to {
                break;
            }
            entry.remove().close(out);
        }
    }

    /// Removes the open sessions that overlap `[timestamp, end)` and merges them into one.
    fn take_overlapping(&mut self, timestamp: u64, end: u64) -> Option<OpenWindow<T, u64>> {
        let mut merged: Option<OpenWindow<T, u64>> = None;
        // Sessions are disjoint: walking back from the last one starting before `end`, the overlapping
        // ones come first, newest to oldest.
        while let Some((&start, session)) = self.open.range(..end).next_back() {
            if session.end <= timestamp {
                break;
            }
            let Some(mut older) = self.open.remove(&start) else {
                break;
            };
            if let Some(mut newer) = merged.take() {
                older.items.append(&mut newer.items);
                older.end = older.end.max(newer.end);
                older.truncated |= newer.truncated;
            }
            merged = Some(older);
        }
        merged
    }
}

impl<T, F> Sealed for SessionEventTimeState<T, F> {}

impl<T, F> WindowSpec<T> for SessionEventTime<T, F>
where
    T: Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Bound = u64;
    type State = SessionEventTimeState<T, F>;

    fn new_state(&self) -> Self::State {
        SessionEventTimeState {
            gap: self.gap.get(),
            timestamp: self.timestamp.clone(),
            lateness: self.lateness.clone(),
            config: self.config,
            watermark: Watermark::new(self.lateness.allowed_lateness()),
            open: BTreeMap::new(),
        }
    }
}

impl<T, F> WindowState<T> for SessionEventTimeState<T, F>
where
    T: Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Bound = u64;
    const USES_CLOCK: bool = false;

    fn on_element(&mut self, item: T, _clock: &mut Clock, out: &mut impl Emit<T, u64>) {
        let timestamp = (self.timestamp)(&item);
        if let Some(closed_up_to) = self.watermark.observe(timestamp) {
            self.close_up_to(closed_up_to, out);
        }
        let end = timestamp.saturating_add(self.gap);
        let mut session = match self.take_overlapping(timestamp, end) {
            Some(mut session) => {
                // Open sessions end after the watermark, so the merged one does too.
                session.start = session.start.min(timestamp);
                session.end = session.end.max(end);
                session.enforce(&self.config, out);
                session
            }
            None => {
                if end <= self.watermark.closed_up_to() {
                    self.watermark.late(item, timestamp, &self.lateness, out);
                    return;
                }
                if self.open.len() >= self.config.max_open_windows.get() {
                    let oldest_end = self.open.first_key_value().map_or(u64::MAX, |(_, session)| session.end);
                    if end <= oldest_end {
                        // The new session would be the oldest: it is the one closed at once.
                        self.watermark.close_up_to(end);
                        self.watermark.late(item, timestamp, &self.lateness, out);
                        return;
                    }
                    if let Some((_, oldest)) = self.open.pop_first() {
                        oldest.close_early(out);
                        if let Some(closed_up_to) = self.watermark.close_up_to(oldest_end) {
                            self.close_up_to(closed_up_to, out);
                        }
                    }
                }
                OpenWindow::new(timestamp, end)
            }
        };
        session.push(item, &self.config, out);
        self.open.insert(session.start, session);
    }

    fn flush(&mut self, out: &mut impl Emit<T, u64>) {
        while let Some((_, session)) = self.open.pop_first() {
            session.close(out);
        }
    }

    fn held(&self) -> usize {
        self.open.values().map(|session| session.items.len()).sum()
    }

    fn capacity(&self) -> usize {
        self.config.max_held()
    }
}

impl<T, F> Flow<T> for SessionEventTime<T, F>
where
    T: Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Out = Window<T, u64>;
    type Stream<S>
        = WindowStream<S, SessionEventTimeState<T, F>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("session_event_time"))
    }
}
