//! Configuration of window and keyed operators: element bounds, overflow policy, lateness, key bounds.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

/// What a time or session window does with an element when it already holds `max_elements`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WindowOverflow {
    /// Emit the `max_elements` already held as a part of the window (with `truncated: true`), then
    /// keep collecting the window from the new element on. Every later part of that window is flagged
    /// too. Nothing is lost.
    #[default]
    EmitEarly,
    /// Drop the new element (counted as `dropped`); the window is emitted at its end with
    /// `truncated: true`.
    DropNewest,
}

/// Bounds of a time or session window operator.
///
/// ```
/// use pump_core::flow::window::{WindowConfig, WindowOverflow};
/// use std::num::NonZeroUsize;
/// let config = WindowConfig::new(NonZeroUsize::new(1_000).unwrap())
///     .with_overflow(WindowOverflow::DropNewest)
///     .with_max_open_windows(NonZeroUsize::new(8).unwrap());
/// assert_eq!(config.max_elements.get(), 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// The most elements one window holds before [`overflow`](Self::overflow) applies.
    pub max_elements: NonZeroUsize,
    /// What happens to an element that arrives at a full window.
    pub overflow: WindowOverflow,
    /// The most windows open at once (sliding windows overlap; event-time windows stay open until the
    /// watermark passes them). When one more would open, the oldest is closed early and emitted with
    /// `truncated: true`; in event time the watermark moves to its end, so its stragglers become late.
    pub max_open_windows: NonZeroUsize,
}

impl WindowConfig {
    /// At most `max_elements` per window, emitting full parts early ([`WindowOverflow::EmitEarly`]),
    /// at most 64 windows open.
    pub fn new(max_elements: NonZeroUsize) -> Self {
        WindowConfig {
            max_elements,
            overflow: WindowOverflow::EmitEarly,
            max_open_windows: Self::DEFAULT_OPEN,
        }
    }

    /// The same bounds with another overflow policy.
    pub fn with_overflow(mut self, overflow: WindowOverflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The same bounds with another limit on open windows.
    pub fn with_max_open_windows(mut self, max_open_windows: NonZeroUsize) -> Self {
        self.max_open_windows = max_open_windows;
        self
    }

    /// The most elements an operator with this configuration holds.
    pub fn max_held(&self) -> usize {
        self.max_elements.get().saturating_mul(self.max_open_windows.get())
    }

    const DEFAULT_OPEN: NonZeroUsize = non_zero(64);
    const DEFAULT_ELEMENTS: NonZeroUsize = non_zero(10_000);
}

const fn non_zero(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

impl Default for WindowConfig {
    /// 10 000 elements per window, [`WindowOverflow::EmitEarly`], 64 open windows.
    fn default() -> Self {
        WindowConfig::new(Self::DEFAULT_ELEMENTS)
    }
}

/// An element that arrived after every window it belongs to was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateElement<T> {
    /// The element.
    pub element: T,
    /// Its event timestamp.
    pub timestamp: u64,
    /// The watermark when it arrived (windows ending at or before it were closed).
    pub watermark: u64,
}

type LateCallback<T> = Arc<dyn Fn(LateElement<T>) + Send + Sync>;

/// How late an event-time element may be, and where late elements go.
///
/// Late elements are always counted as `dropped` in the stage's metrics; with a side output they are
/// also handed to it (to log them, count them per source, or `try_send` them on a channel).
///
/// ```
/// use pump_core::flow::window::Lateness;
/// use std::sync::{Arc, Mutex};
/// let late = Arc::new(Mutex::new(Vec::new()));
/// let sink = late.clone();
/// let lateness: Lateness<u64> = Lateness::allowed(5_000)
///     .with_side_output(move |element| sink.lock().unwrap().push(element.element));
/// assert_eq!(lateness.allowed_lateness(), 5_000);
/// ```
pub struct Lateness<T> {
    allowed: u64,
    side_output: Option<LateCallback<T>>,
}

impl<T> Lateness<T> {
    /// Windows stay open until the largest timestamp seen passes their end by `allowed` (in the
    /// timestamps' unit); later elements are dropped and counted.
    pub fn allowed(allowed: u64) -> Self {
        Lateness { allowed, side_output: None }
    }

    /// The same lateness, handing each late element to `f` as well.
    pub fn with_side_output(mut self, f: impl Fn(LateElement<T>) + Send + Sync + 'static) -> Self {
        self.side_output = Some(Arc::new(f));
        self
    }

    /// The allowed lateness, in the timestamps' unit.
    pub fn allowed_lateness(&self) -> u64 {
        self.allowed
    }

    /// Hands a late element to the side output, if any.
    pub(crate) fn send(&self, late: LateElement<T>) {
        if let Some(side_output) = &self.side_output {
            side_output(late);
        }
    }
}

impl<T> Clone for Lateness<T> {
    fn clone(&self) -> Self {
        Lateness { allowed: self.allowed, side_output: self.side_output.clone() }
    }
}

impl<T> fmt::Debug for Lateness<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lateness")
            .field("allowed", &self.allowed)
            .field("side_output", &self.side_output.is_some())
            .finish()
    }
}

/// Bounds of a keyed operator's state.
///
/// ```
/// use pump_core::flow::window::KeyedConfig;
/// use std::{num::NonZeroUsize, time::Duration};
/// let config =
///     KeyedConfig::new(NonZeroUsize::new(10_000).unwrap()).with_idle_timeout(Duration::from_secs(60));
/// assert_eq!(config.idle_timeout, Some(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedConfig {
    /// The most keys held at once. A new key beyond that evicts the least recently used key, whose
    /// pending state is emitted first.
    pub max_keys: NonZeroUsize,
    /// Keys that saw no element for this long (processing time) are evicted, their pending state
    /// emitted. `None`: keys leave only by the `max_keys` bound or at the end of the stream.
    pub idle_timeout: Option<Duration>,
}

impl KeyedConfig {
    /// At most `max_keys` keys, no idle timeout.
    pub fn new(max_keys: NonZeroUsize) -> Self {
        KeyedConfig { max_keys, idle_timeout: None }
    }

    /// The same bound, evicting keys idle for `idle_timeout`.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = Some(idle_timeout);
        self
    }
}
