//! `sliding_time`: overlapping windows of processing time, one starting every `slide`.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;

use crate::flow::Flow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::engine::{MIN_LENGTH, OpenWindow, elapsed_nanos, instant_after, instant_at};
use crate::flow::window::{Clock, Emit, Window, WindowConfig, WindowSpec, WindowState, WindowStream};
use crate::stage::StageContext;

/// The `sliding_time` flow: windows `[t0 + k * slide, t0 + k * slide + size)` of processing time, where
/// `t0` is when the stage is first polled. Built by `sliding_time` on sources and flows, or by
/// [`SlidingTime::new`] for [`KeyBy::window`](super::KeyBy::window).
///
/// An element belongs to every window that contains its arrival instant (`size / slide` of them, rounded
/// up or down) and is cloned into each. With `slide > size` the elements arriving between windows belong
/// to none and are counted as `dropped`. At most `ceil(size / slide)` windows are open at once, and at
/// most `max_open_windows` of the config: beyond that the oldest is emitted early, truncated.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct SlidingTime {
    size: Duration,
    slide: Duration,
    config: WindowConfig,
}

impl SlidingTime {
    /// Windows of `size`, one starting every `slide` (both at least 1 ms; shorter ones are raised to
    /// it), bounded by `config`.
    pub fn new(size: Duration, slide: Duration, config: WindowConfig) -> Self {
        SlidingTime { size: size.max(MIN_LENGTH), slide: slide.max(MIN_LENGTH), config }
    }
}

/// The state of a `sliding_time` operator: the open windows, oldest first, with their grid index.
#[derive(Debug)]
pub struct SlidingTimeState<T> {
    size: Duration,
    slide: Duration,
    config: WindowConfig,
    open: VecDeque<(u128, OpenWindow<T, Instant>)>,
}

impl<T> SlidingTimeState<T> {
    fn close_due(&mut self, now: Instant, out: &mut impl Emit<T, Instant>) {
        while self.open.front().is_some_and(|(_, window)| window.end <= now) {
            if let Some((_, window)) = self.open.pop_front() {
                window.close(out);
            }
        }
    }
}

impl<T> Sealed for SlidingTimeState<T> {}

impl<T: Clone + Send + 'static> WindowSpec<T> for SlidingTime {
    type Bound = Instant;
    type State = SlidingTimeState<T>;

    fn new_state(&self) -> Self::State {
        SlidingTimeState { size: self.size, slide: self.slide, config: self.config, open: VecDeque::new() }
    }
}

impl<T: Clone + Send + 'static> WindowState<T> for SlidingTimeState<T> {
    type Bound = Instant;
    const USES_CLOCK: bool = true;

    fn on_element(&mut self, item: T, clock: &mut Clock, out: &mut impl Emit<T, Instant>) {
        let now = clock.now();
        self.close_due(now, out);
        let origin = clock.origin();
        let elapsed = elapsed_nanos(origin, now);
        let (size, slide) = (self.size.as_nanos(), self.slide.as_nanos());
        let last = elapsed / slide;
        let first = if elapsed >= size { (elapsed - size) / slide + 1 } else { 0 };
        if first > last {
            // Between two windows (slide > size).
            out.dropped(1);
            return;
        }
        // The windows still open contain `now` (they started before it and end after it); open the
        // later ones that contain it too.
        let next_new = self.open.back().map_or(first, |(index, _)| index + 1).max(first);
        for index in next_new..=last {
            if self.open.len() >= self.config.max_open_windows.get()
                && let Some((_, oldest)) = self.open.pop_front()
            {
                oldest.close_early(out);
            }
            let start = instant_at(origin, index * slide);
            self.open.push_back((index, OpenWindow::new(start, instant_after(start, self.size))));
        }
        let newest = self.open.len().saturating_sub(1);
        for (_, window) in self.open.range_mut(..newest) {
            window.push(item.clone(), &self.config, out);
        }
        if let Some((_, window)) = self.open.back_mut() {
            window.push(item, &self.config, out);
        }
    }

    fn on_timer(&mut self, clock: &mut Clock, out: &mut impl Emit<T, Instant>) {
        let now = clock.now();
        self.close_due(now, out);
    }

    fn timer(&self) -> Option<Instant> {
        self.open.front().map(|(_, window)| window.end)
    }

    fn flush(&mut self, out: &mut impl Emit<T, Instant>) {
        while let Some((_, window)) = self.open.pop_front() {
            window.close(out);
        }
    }

    fn held(&self) -> usize {
        self.open.iter().map(|(_, window)| window.items.len()).sum()
    }

    fn capacity(&self) -> usize {
        let overlapping = self.size.as_nanos().div_ceil(self.slide.as_nanos());
        let open = usize::try_from(overlapping).unwrap_or(usize::MAX).min(self.config.max_open_windows.get());
        self.config.max_elements.get().saturating_mul(open)
    }
}

impl<T: Clone + Send + 'static> Flow<T> for SlidingTime {
    type Out = Window<T, Instant>;
    type Stream<S>
        = WindowStream<S, SlidingTimeState<T>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("sliding_time"))
    }
}
