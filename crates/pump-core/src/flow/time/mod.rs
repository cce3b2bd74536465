//! Time operators: `throttle`, `timeout`, `idle_timeout`, `debounce`, `delay`.
//!
//! Each operator reads the clock through `tokio::time`, so tests drive them on paused time
//! (`#[tokio::test(start_paused = true)]`) and see exact instants. Timers are armed lazily and reset
//! in place (one `Sleep` per stage, never one per element), and every operator holds a bounded
//! number of elements: `throttle` and `timeout` none, `debounce` one, `delay` its `max_in_flight`.
//!
//! Like every flow, these operators only pull from upstream when downstream asks for an element,
//! so time is measured from the moment a stage is polled: a `timeout`'s clock starts when
//! downstream asks, a `delay` counts from when the element was pulled.

mod debounce;
mod delay;
mod idle_timeout;
mod throttle;
mod timeout;

pub use debounce::{Debounce, DebounceStream};
pub use delay::{Delay, DelayStream};
pub use idle_timeout::{IdleTimeout, IdleTimeoutStream};
pub use throttle::{Throttle, ThrottleMode, ThrottleStream};
pub use timeout::{Elapsed, Timeout, TimeoutStream};

use std::time::Duration;

use tokio::time::Instant;

/// `now + after`, or about thirty years from now when that is not representable (a duration of
/// `Duration::MAX` means "never"), as tokio does for its own sleeps.
fn deadline_after(now: Instant, after: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(after).unwrap_or_else(|| now + FAR_FUTURE)
}
