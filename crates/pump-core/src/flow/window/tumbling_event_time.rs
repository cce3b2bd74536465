//! `tumbling_event_time`: consecutive, non-overlapping windows of event time, closed by the watermark.

use std::num::NonZeroU64;
use std::sync::Arc;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::event_windows::EventWindows;
use crate::flow::window::{
    Clock, Emit, Lateness, Window, WindowConfig, WindowSpec, WindowState, WindowStream,
};
use crate::stage::StageContext;

/// The `tumbling_event_time` flow: windows `[k * size, (k + 1) * size)` of the elements' own
/// timestamps. Built by `tumbling_event_time` on sources and flows, or by [`TumblingEventTime::new`] for
/// [`KeyBy::window`](super::KeyBy::window).
///
/// A window is emitted when the watermark (the largest timestamp seen minus the allowed lateness)
/// reaches its end. An element whose window was already emitted is late: counted as `dropped` and
/// handed to the [`Lateness`] side output. See the [module docs](super) for units and bounds.
#[must_use = "flows do nothing unless run"]
pub struct TumblingEventTime<T, F> {
    size: NonZeroU64,
    timestamp: Arc<F>,
    lateness: Lateness<T>,
    config: WindowConfig,
}

impl<T, F> TumblingEventTime<T, F>
where
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    /// Windows of `size` (in the timestamps' unit) of the timestamps `timestamp` reads, closed
    /// `lateness` after the largest timestamp seen passes their end, bounded by `config`.
    pub fn new(size: NonZeroU64, timestamp: F, lateness: Lateness<T>, config: WindowConfig) -> Self {
        TumblingEventTime { size, timestamp: Arc::new(timestamp), lateness, config }
    }
}

impl<T, F> std::fmt::Debug for TumblingEventTime<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TumblingEventTime")
            .field("size", &self.size)
            .field("lateness", &self.lateness)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The state of a `tumbling_event_time` operator: the watermark and the open windows.
pub struct TumblingEventTimeState<T, F> {
    timestamp: Arc<F>,
    lateness: Lateness<T>,
    windows: EventWindows<T>,
}

impl<T, F> std::fmt::Debug for TumblingEventTimeState<T, F>
where
    T: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TumblingEventTimeState").field("windows", &self.windows).finish_non_exhaustive()
    }
}

impl<T, F> Sealed for TumblingEventTimeState<T, F> {}

impl<T, F> WindowSpec<T> for TumblingEventTime<T, F>
where
    T: Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Bound = u64;
    type State = TumblingEventTimeState<T, F>;

    fn new_state(&self) -> Self::State {
        let size = self.size.get();
        TumblingEventTimeState {
            timestamp: self.timestamp.clone(),
            lateness: self.lateness.clone(),
            windows: EventWindows::new(size, size, self.lateness.allowed_lateness(), self.config),
        }
    }
}

impl<T, F> WindowState<T> for TumblingEventTimeState<T, F>
where
    T: Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Bound = u64;
    const USES_CLOCK: bool = false;

    fn on_element(&mut self, item: T, _clock: &mut Clock, out: &mut impl Emit<T, u64>) {
        let timestamp = (self.timestamp)(&item);
        self.windows.advance(timestamp, out);
        let index = timestamp / self.windows.size;
        if index < self.windows.first_open_index() {
            self.windows.watermark.late(item, timestamp, &self.lateness, out);
            return;
        }
        let config = self.windows.config;
        match self.windows.window(index, out) {
            Some(window) => window.push(item, &config, out),
            None => self.windows.watermark.late(item, timestamp, &self.lateness, out),
        }
    }

    fn flush(&mut self, out: &mut impl Emit<T, u64>) {
        self.windows.flush(out);
    }

    fn held(&self) -> usize {
        self.windows.held()
    }

    fn capacity(&self) -> usize {
        self.windows.config.max_held()
    }
}

impl<T, F> Flow<T> for TumblingEventTime<T, F>
where
    T: Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Out = Window<T, u64>;
    type Stream<S>
        = WindowStream<S, TumblingEventTimeState<T, F>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("tumbling_event_time"))
    }
}
