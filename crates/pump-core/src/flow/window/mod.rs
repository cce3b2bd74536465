//! Windows (tumbling, sliding, session; by count, processing time or event time) and keyed state.
//!
//! A window operator groups elements into [`Window`]s: the window's bounds, its elements in arrival
//! order, and a `truncated` flag. The operators are methods of [`SourceExt`](crate::SourceExt) and
//! [`FlowExt`](crate::FlowExt); the types here are their flows and configuration.
//!
//! | method | a window is | `start`/`end` | emitted when |
//! |---|---|---|---|
//! | `tumbling_count(size)` | `size` consecutive elements | element sequence numbers | full, or the stream ends |
//! | `sliding_count(size, step)` | `size` elements, a new one every `step` | element sequence numbers | full, or the stream ends |
//! | `tumbling_time(size, config)` | a `size` slot of a grid of processing time | [`tokio::time::Instant`] | its end passes |
//! | `sliding_time(size, slide, config)` | a `size` span starting every `slide` | [`tokio::time::Instant`] | its end passes |
//! | `session_time(gap, config)` | elements less than `gap` apart | first arrival, last arrival + `gap` | `gap` passes without an element |
//! | `tumbling_event_time(size, ts, lateness, config)` | a `size` slot of event time | the user's `u64` timestamps | the watermark passes its end |
//! | `sliding_event_time(size, slide, ts, lateness, config)` | a `size` span starting every `slide` | `u64` timestamps | the watermark passes its end |
//! | `session_event_time(gap, ts, lateness, config)` | timestamps less than `gap` apart | first timestamp, last + `gap` | the watermark passes its end |
//!
//! Every window operator flushes what it holds when the stream ends (a partial count window, the open
//! time windows). Windows are never emitted empty: a time window that received nothing does not exist.
//! Ranges are half-open: a window holds the elements with `start <= position < end`.
//!
//! # Processing time
//!
//! Processing-time windows read [`tokio::time::Instant::now`] when an element arrives. Tumbling and
//! sliding windows lie on a grid that starts when the stage is first polled (when the run starts), so
//! `tumbling_time(1 s)` windows are `[t0, t0 + 1 s)`, `[t0 + 1 s, t0 + 2 s)`, ... A window is emitted at its
//! end by a timer (armed only while a window holds elements), or earlier if an element of a later
//! window arrives first. Tests run them on paused time.
//!
//! # Event time
//!
//! Event-time windows take each element's timestamp from a user function returning `u64`. Timestamps and
//! every length (`size`, `slide`, `gap`, the allowed lateness) are in the same unit, which is yours:
//! milliseconds since the Unix epoch is the usual choice. The *watermark* is the largest timestamp seen
//! so far minus the allowed lateness; a window is emitted as soon as the watermark reaches its end.
//! An element is *late* when every window it belongs to has already been emitted: it is counted as
//! `dropped` in the stage's metrics and handed to the [`Lateness`] side output, if one is set. The
//! watermark only moves with elements (there is no idle timeout in event time): the windows still open
//! when the stream ends are flushed then.
//!
//! # Bounded memory
//!
//! - Count windows hold at most `size` elements (one window for tumbling, the last `size` elements for
//!   sliding).
//! - Time and session windows follow a [`WindowConfig`]: at most `max_elements` elements per window, with
//!   a stated [`WindowOverflow`] policy (emit the full part early, or drop new elements), and at most
//!   `max_open_windows` windows open at once. When one more window would open, the oldest open one is
//!   closed early (emitted with `truncated: true`); in event time the watermark moves to its end, so its
//!   stragglers become late. An operator therefore holds at most `max_elements * max_open_windows`
//!   elements, reported as its `buffer_depth` against that `buffer_capacity`.
//! - Keyed operators ([`KeyBy`]) hold at most `max_keys` keys: a new key beyond that evicts the least
//!   recently used key, whose pending state is emitted first (its open windows, its fold). Keys idle for
//!   `idle_timeout` (processing time) are evicted the same way. Their `buffer_depth` is the number of keys
//!   held, against a `buffer_capacity` of `max_keys`.
//!
//! Sliding windows copy each element into every window that contains it, so they need `T: Clone`.
//!
//! # Keyed state
//!
//! [`key_by`](crate::SourceExt::key_by) splits the stream by key, in the manner of Flink's `keyBy` or
//! Akka's `groupBy`, without substreams: the result is a [`KeyBy`] builder whose methods give per-key
//! windows ([`KeyBy::window`], emitting `(key, window)`), a per-key fold emitted when the key is evicted or
//! the stream ends ([`KeyBy::fold`]), and a per-key running state emitting on every element
//! ([`KeyBy::scan`]).

mod config;
mod engine;
mod event_windows;
mod key_by;
mod keyed;
mod keyed_fold;
mod keyed_scan;
mod keyed_table;
mod keyed_windows;
mod session_event_time;
mod session_time;
mod sliding_count;
mod sliding_event_time;
mod sliding_time;
mod tumbling_count;
mod tumbling_event_time;
mod tumbling_time;

pub use config::{KeyedConfig, LateElement, Lateness, WindowConfig, WindowOverflow};
pub use engine::{Clock, Emit, WindowState, WindowStream};
pub use key_by::KeyBy;
pub use keyed::{KeyedLogic, KeyedStream};
pub use keyed_fold::{KeyedFold, KeyedFoldLogic};
pub use keyed_scan::{KeyedScan, KeyedScanLogic};
pub use keyed_windows::{KeyedWindowLogic, KeyedWindows};
pub use session_event_time::{SessionEventTime, SessionEventTimeState};
pub use session_time::{SessionTime, SessionTimeState};
pub use sliding_count::{SlidingCount, SlidingCountState};
pub use sliding_event_time::{SlidingEventTime, SlidingEventTimeState};
pub use sliding_time::{SlidingTime, SlidingTimeState};
pub use tumbling_count::{TumblingCount, TumblingCountState};
pub use tumbling_event_time::{TumblingEventTime, TumblingEventTimeState};
pub use tumbling_time::{TumblingTime, TumblingTimeState};

/// One window as emitted: its bounds, its elements, and whether they are all of it.
///
/// `B` is the type of the bounds: element sequence numbers (`u64`, from 0) for count windows,
/// [`tokio::time::Instant`] for processing-time windows, the user's `u64` timestamps for event-time
/// windows. The window covers `start <= position < end`; for count windows `end - start` is the number
/// of elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<T, B = u64> {
    /// Where the window starts (inclusive).
    pub start: B,
    /// Where the window ends (exclusive). For a session emitted early (see [`WindowOverflow`]), the
    /// end as known at that moment.
    pub end: B,
    /// The elements, in arrival order (merged event-time sessions: the older session's first).
    pub items: Vec<T>,
    /// `true` when `items` is not the whole window: the window hit `max_elements` and was emitted in
    /// parts ([`WindowOverflow::EmitEarly`], every part is flagged), lost elements
    /// ([`WindowOverflow::DropNewest`]), or was closed early to respect `max_open_windows`.
    pub truncated: bool,
}

/// A kind of window, usable per key with [`KeyBy::window`].
///
/// Implemented by the flows of the window methods ([`TumblingCount`], [`SessionTime`],
/// [`TumblingEventTime`], ...), which are built with their `new` functions for keyed use. It cannot be
/// implemented outside this crate: its state machine, [`WindowState`], is sealed.
pub trait WindowSpec<T>: Send + 'static {
    /// The type of the windows' bounds.
    type Bound: Send + 'static;
    /// The state machine one stream (or one key) runs.
    type State: WindowState<T, Bound = Self::Bound>;

    /// A fresh state machine (for the stream, or for a new key).
    fn new_state(&self) -> Self::State;
}
