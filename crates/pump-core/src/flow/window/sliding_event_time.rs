//! `sliding_event_time`: overlapping windows of event time, one starting every `slide`.

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

/// The `sliding_event_time` flow: windows `[k * slide, k * slide + size)` of the elements' own
/// timestamps. Built by `sliding_event_time` on sources and flows, or by [`SlidingEventTime::new`] for
/// [`KeyBy::window`](super::KeyBy::window).
///
/// An element is cloned into every window that contains its timestamp and is still open. It is late
/// (counted as `dropped`, handed to the [`Lateness`] side output) only when all of those windows were
/// already emitted. With `slide > size`, elements between windows belong to none and are counted as
/// `dropped` (not late). See the [module docs](super) for units and bounds.
#[must_use = "flows do nothing unless run"]
pub struct SlidingEventTime<T, F> {
    size: NonZeroU64,
    slide: NonZeroU64,
    timestamp: Arc<F>,
    lateness: Lateness<T>,
    config: WindowConfig,
}

impl<T, F> SlidingEventTime<T, F>
where
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    /// Windows of `size`, one starting every `slide` (in the timestamps' unit), of the timestamps
    /// `timestamp` reads, closed `lateness` after the largest timestamp seen passes their end, bounded
    /// by `config`.
    pub fn new(
        size: NonZeroU64,
        slide: NonZeroU64,
        timestamp: F,
        lateness: Lateness<T>,
        config: WindowConfig,
    ) -> Self {
        SlidingEventTime { size, slide, timestamp: Arc::new(timestamp), lateness, config }
    }
}

impl<T, F> std::fmt::Debug for SlidingEventTime<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingEventTime")
            .field("size", &self.size)
            .field("slide", &self.slide)
            .field("lateness", &self.lateness)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The state of a `sliding_event_time` operator: the watermark and the open windows.
pub struct SlidingEventTimeState<T, F> {
    timestamp: Arc<F>,
    lateness: Lateness<T>,
    windows: EventWindows<T>,
}

impl<T, F> std::fmt::Debug for SlidingEventTimeState<T, F>
where
    T: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingEventTimeState").field("windows", &self.windows).finish_non_exhaustive()
    }
}

impl<T, F> Sealed for SlidingEventTimeState<T, F> {}

impl<T, F> WindowSpec<T> for SlidingEventTime<T, F>
where
    T: Clone + Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Bound = u64;
    type State = SlidingEventTimeState<T, F>;

    fn new_state(&self) -> Self::State {
        SlidingEventTimeState {
            timestamp: self.timestamp.clone(),
            lateness: self.lateness.clone(),
            windows: EventWindows::new(
                self.size.get(),
                self.slide.get(),
                self.lateness.allowed_lateness(),
                self.config,
            ),
        }
    }
}

impl<T, F> WindowState<T> for SlidingEventTimeState<T, F>
where
    T: Clone + Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Bound = u64;
    const USES_CLOCK: bool = false;

    fn on_element(&mut self, item: T, _clock: &mut Clock, out: &mut impl Emit<T, u64>) {
        let timestamp = (self.timestamp)(&item);
        self.windows.advance(timestamp, out);
        let indices = self.windows.indices(timestamp);
        if indices.is_empty() {
            // Between two windows (slide > size).
            out.dropped(1);
            return;
        }
        let (first, last) = ((*indices.start()).max(self.windows.first_open_index()), *indices.end());
        if first > last {
            self.windows.watermark.late(item, timestamp, &self.lateness, out);
            return;
        }
        let config = self.windows.config;
        let mut accepted = false;
        for index in first..last {
            if let Some(window) = self.windows.window(index, out) {
                window.push(item.clone(), &config, out);
                accepted = true;
            }
        }
        match self.windows.window(last, out) {
            Some(window) => window.push(item, &config, out),
            None if !accepted => self.windows.watermark.late(item, timestamp, &self.lateness, out),
            None => {}
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

impl<T, F> Flow<T> for SlidingEventTime<T, F>
where
    T: Clone + Send + 'static,
    F: Fn(&T) -> u64 + Send + Sync + 'static,
{
    type Out = Window<T, u64>;
    type Stream<S>
        = WindowStream<S, SlidingEventTimeState<T, F>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("sliding_event_time"))
    }
}
