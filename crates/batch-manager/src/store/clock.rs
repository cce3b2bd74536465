//! The clock of the in-memory and SQLite stores: the system clock in production, a [`ManualClock`]
//! that tests move by hand. (The PostgreSQL store uses the database server's clock.)

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Where a store reads the time that judges leases and stamps task records.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock (`Utc::now()`): what a store uses unless told otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: tests drive lease expiry with it.
///
/// ```
/// use std::time::Duration;
/// use batch_manager::store::{Clock, ManualClock};
/// use chrono::DateTime;
///
/// let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let clock = ManualClock::new(start);
/// clock.advance(Duration::from_secs(30));
/// assert_eq!((clock.now() - start).num_seconds(), 30);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock { now: Mutex::new(start) }
    }

    /// Sets the time (it may go backwards: tests of clock trouble need that).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the time forward by `by` (saturating at the latest representable time).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        *now = now.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
