//! `session_time`: windows of elements that arrive less than a gap apart (processing time).

use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;

use crate::flow::Flow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::engine::{MIN_LENGTH, OpenWindow, instant_after};
use crate::flow::window::{Clock, Emit, Window, WindowConfig, WindowSpec, WindowState, WindowStream};
use crate::stage::StageContext;

/// The `session_time` flow: a session starts with an element and lasts while elements keep arriving
/// less than `gap` apart. Built by `session_time` on sources and flows, or by [`SessionTime::new`] for
/// [`KeyBy::window`](super::KeyBy::window).
///
/// The session `[first arrival, last arrival + gap)` is emitted `gap` after its last element (or when
/// the next element arrives later than that). Its timer is re-armed lazily: an element only records its
/// arrival, and a timer that fires early moves itself to the session's current end.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct SessionTime {
    gap: Duration,
    config: WindowConfig,
}

impl SessionTime {
    /// Sessions closed by `gap` of silence (at least 1 ms; shorter gaps are raised to it), bounded by
    /// `config` (`max_open_windows` does not apply: one session is open at a time).
    pub fn new(gap: Duration, config: WindowConfig) -> Self {
        SessionTime { gap: gap.max(MIN_LENGTH), config }
    }
}

#[derive(Debug)]
struct Session<T> {
    window: OpenWindow<T, Instant>,
    /// When the timer is set for: at or before `window.end`.
    armed: Instant,
}

/// The state of a `session_time` operator: the current session, if any.
#[derive(Debug)]
pub struct SessionTimeState<T> {
    gap: Duration,
    config: WindowConfig,
    session: Option<Session<T>>,
}

impl<T> Sealed for SessionTimeState<T> {}

impl<T: Send + 'static> WindowSpec<T> for SessionTime {
    type Bound = Instant;
    type State = SessionTimeState<T>;

    fn new_state(&self) -> Self::State {
        SessionTimeState { gap: self.gap, config: self.config, session: None }
    }
}

impl<T: Send + 'static> WindowState<T> for SessionTimeState<T> {
    type Bound = Instant;
    const USES_CLOCK: bool = true;

    fn on_element(&mut self, item: T, clock: &mut Clock, out: &mut impl Emit<T, Instant>) {
        let now = clock.now();
        if self.session.as_ref().is_some_and(|session| session.window.end <= now)
            && let Some(session) = self.session.take()
        {
            session.window.close(out);
        }
        let end = instant_after(now, self.gap);
        let session =
            self.session.get_or_insert_with(|| Session { window: OpenWindow::new(now, end), armed: end });
        session.window.end = end;
        session.window.push(item, &self.config, out);
    }

    fn on_timer(&mut self, clock: &mut Clock, out: &mut impl Emit<T, Instant>) {
        let now = clock.now();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if session.window.end <= now {
            if let Some(session) = self.session.take() {
                session.window.close(out);
            }
        } else {
            session.armed = session.window.end;
        }
    }

    fn timer(&self) -> Option<Instant> {
        self.session.as_ref().map(|session| session.armed)
    }

    fn flush(&mut self, out: &mut impl Emit<T, Instant>) {
        if let Some(session) = self.session.take() {
            session.window.close(out);
        }
    }

    fn held(&self) -> usize {
        self.session.as_ref().map_or(0, |session| session.window.items.len())
    }

    fn capacity(&self) -> usize {
        self.config.max_elements.get()
    }
}

impl<T: Send + 'static> Flow<T> for SessionTime {
    type Out = Window<T, Instant>;
    type Stream<S>
        = WindowStream<S, SessionTimeState<T>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("session_time"))
    }
}
