//! The one deadline timer a time-aware stage keeps and re-arms (batch, delay, throttle, timeouts,
//! windows).

use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// The timer in `slot`, due at `deadline`: made on first use, and reset only when its deadline
/// differs, so a stage polled again for the same deadline keeps its registration with the timer
/// wheel (and a timer that has fired stays fired).
pub(crate) fn timer_at(slot: &mut Option<Pin<Box<Sleep>>>, deadline: Instant) -> &mut Pin<Box<Sleep>> {
    let timer = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer
}
