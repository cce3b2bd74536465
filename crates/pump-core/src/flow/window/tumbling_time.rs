//! `tumbling_time`: consecutive, non-overlapping windows of processing time.

use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;

use crate::flow::Flow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::engine::{MIN_LENGTH, OpenWindow, elapsed_nanos, instant_after, instant_at};
use crate::flow::window::{Clock, Emit, Window, WindowConfig, WindowSpec, WindowState, WindowStream};
use crate::stage::StageContext;

/// The `tumbling_time` flow: the elements that arrive in each `size` slot of a processing-time grid
/// starting when the stage is first polled. Built by `tumbling_time` on sources and flows, or by
/// [`TumblingTime::new`] for [`KeyBy::window`](super::KeyBy::window).
///
/// A window is emitted when its end passes (by a timer, armed only while a window holds elements), or
/// as soon as an element of a later window arrives. Slots without elements emit nothing.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct TumblingTime {
    size: Duration,
    config: WindowConfig,
}

impl TumblingTime {
    /// Windows of `size` (at least 1 ms; shorter sizes are raised to it), bounded by `config`.
    pub fn new(size: Duration, config: WindowConfig) -> Self {
        TumblingTime { size: size.max(MIN_LENGTH), config }
    }
}

/// The state of a `tumbling_time` operator: the current window, if it holds anything.
#[derive(Debug)]
pub struct TumblingTimeState<T> {
    size: Duration,
    config: WindowConfig,
    current: Option<OpenWindow<T, Instant>>,
}

impl<T> Sealed for TumblingTimeState<T> {}

impl<T: Send + 'static> WindowSpec<T> for TumblingTime {
    type Bound = Instant;
    type State = TumblingTimeState<T>;

    fn new_state(&self) -> Self::State {
        TumblingTimeState { size: self.size, config: self.config, current: None }
    }
}

impl<T: Send + 'static> WindowState<T> for TumblingTimeState<T> {
    type Bound = Instant;
    const USES_CLOCK: bool = true;

    fn on_element(&mut self, item: T, clock: &mut Clock, out: &mut impl Emit<T, Instant>) {
        let now = clock.now();
        if self.current.as_ref().is_some_and(|window| window.end <= now)
            && let Some(window) = self.current.take()
        {
            window.close(out);
        }
        let size = self.size;
        let window = self.current.get_or_insert_with(|| {
            let origin = clock.origin();
            let size_nanos = size.as_nanos();
            let slot = elapsed_nanos(origin, now) / size_nanos;
            let start = instant_at(origin, slot * size_nanos);
            OpenWindow::new(start, instant_after(start, size))
        });
        window.push(item, &self.config, out);
    }

    fn on_timer(&mut self, clock: &mut Clock, out: &mut impl Emit<T, Instant>) {
        let now = clock.now();
        if self.current.as_ref().is_some_and(|window| window.end <= now)
            && let Some(window) = self.current.take()
        {
            window.close(out);
        }
    }

    fn timer(&self) -> Option<Instant> {
        self.current.as_ref().map(|window| window.end)
    }

    fn flush(&mut self, out: &mut impl Emit<T, Instant>) {
        if let Some(window) = self.current.take() {
            window.close(out);
        }
    }

    fn held(&self) -> usize {
        self.current.as_ref().map_or(0, |window| window.items.len())
    }

    fn capacity(&self) -> usize {
        self.config.max_elements.get()
    }
}

impl<T: Send + 'static> Flow<T> for TumblingTime {
    type Out = Window<T, Instant>;
    type Stream<S>
        = WindowStream<S, TumblingTimeState<T>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("tumbling_time"))
    }
}
