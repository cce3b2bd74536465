//! The store's view of the database clock ([`DbClock`]): the database's own time, shifted by an
//! offset (zero unless a test sets one), or pinned at a time (tests only).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// How a [`PgStore`](super::PgStore) reads the time it judges leases by and stamps tasks with.
///
/// Every time the store uses is read from the database in the transaction that uses it (`now()`, the
/// transaction's start, at microsecond resolution), never from the calling process, so workers on
/// machines whose clocks disagree still agree on when a lease expires. Tests shift that view:
/// [`advance`](DbClock::advance) adds to an offset (default zero) so that a lease expires without
/// waiting for it, and [`pin`](DbClock::pin) fixes the time (plus the offset) for exact assertions.
/// The handle is shared: a clone changes the same store's clock.
///
/// ```
/// use batch_manager::store::postgres::DbClock;
/// use chrono::TimeDelta;
///
/// let clock = DbClock::default();
/// clock.advance(TimeDelta::seconds(31));
/// assert_eq!(clock.offset(), TimeDelta::seconds(31));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DbClock {
    state: Arc<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    offset_micros: AtomicI64,
    pinned: Mutex<Option<DateTime<Utc>>>,
}

impl DbClock {
    /// The offset added to the database's time (microsecond resolution).
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::microseconds(self.state.offset_micros.load(Ordering::SeqCst))
    }

    /// Sets the offset added to the database's time (truncated to microseconds).
    pub fn set_offset(&self, offset: TimeDelta) {
        let micros =
            offset.num_microseconds().unwrap_or(if offset < TimeDelta::zero() { i64::MIN } else { i64::MAX });
        self.state.offset_micros.store(micros, Ordering::SeqCst);
    }

    /// Adds `by` to the offset: the store's time jumps ahead (or back, for a negative `by`).
    pub fn advance(&self, by: TimeDelta) {
        let micros = by.num_microseconds().unwrap_or(0);
        let _ = self
            .state
            .offset_micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| Some(offset.saturating_add(micros)));
    }

    /// Pins the store's time at `at` (plus the offset) instead of the database's `now()`, or unpins it
    /// with `None`. For tests that assert exact times; the time is still handed to the database, which
    /// keeps it at microsecond resolution.
    pub fn pin(&self, at: Option<DateTime<Utc>>) {
        *self.state.pinned.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// The statement parameters of the time: the pinned time or NULL, and the offset in µs.
    pub(super) fn params(&self) -> (Option<DateTime<Utc>>, i64) {
        let pinned = *self.state.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        (pinned, self.state.offset_micros.load(Ordering::SeqCst))
    }
}
