//! A task's progress as reported while it runs: counts, percentage, throughput and estimated time left.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration;

/// How far a task has got.
///
/// `processed`, `failed` and `skipped` count items by outcome; their sum is the number of items *done*.
/// `total` is `None` until the task knows how many items there are. `percentage` is in `0.0..=100.0`.
/// `throughput` is items done per second since the task started. `eta` is the estimated time left,
/// serialised like every model duration as a humantime string (`"1m 30s"`; integer milliseconds are
/// accepted on input) and kept to whole milliseconds by [`Progress::compute`].
///
/// ```
/// use std::time::Duration;
/// use batch_model::Progress;
///
/// let progress = Progress::compute(Some(1000), 230, 15, 5, Duration::from_secs(10));
/// assert_eq!(progress.percentage, Some(25.0));
/// assert_eq!(progress.throughput, Some(25.0));
/// assert_eq!(progress.eta, Some(Duration::from_secs(30)));
///
/// let json = serde_json::to_value(&progress).unwrap();
/// assert_eq!(json["eta"], "30s");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Items in the task, once known.
    pub total: Option<u64>,
    /// Items processed successfully.
    pub processed: u64,
    /// Items that failed after their retries (they are in the dead-letter output).
    pub failed: u64,
    /// Items deliberately not processed (filtered out, or already done before a resume).
    pub skipped: u64,
    /// Share of `total` done, `0.0..=100.0`; `None` while `total` is unknown.
    pub percentage: Option<f64>,
    /// A short human-readable note (the current epoch, phase...).
    pub message: Option<String>,
    /// Items done per second since the start; `None` before any time has passed.
    pub throughput: Option<f64>,
    /// Estimated time left; `None` when it cannot be estimated yet.
    #[serde(with = "duration::option", default)]
    pub eta: Option<Duration>,
    /// When this progress was computed.
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl Progress {
    /// No items done, nothing known yet, stamped `updated_at`: the progress of a new task.
    pub fn zero(updated_at: DateTime<Utc>) -> Progress {
        Progress {
            total: None,
            processed: 0,
            failed: 0,
            skipped: 0,
            percentage: None,
            message: None,
            throughput: None,
            eta: None,
            updated_at,
        }
    }

    /// Progress from the counts and the time since the task started, stamped now.
    ///
    /// With `done = processed + failed + skipped` (saturating):
    ///
    /// - `percentage = done / total × 100`, capped at 100 (a `total` can be an estimate that the task
    ///   overruns); a known `total` of 0 is 100 % done. `None` while `total` is unknown.
    /// - `throughput = done / elapsed` in items per second; `None` when `elapsed` is zero.
    /// - `eta = (total − done) / throughput`, rounded to whole milliseconds: the remaining items at the
    ///   average rate so far. Zero once `done ≥ total`; `None` while `total` is unknown or nothing has
    ///   been done yet (no rate to extrapolate).
    ///
    /// The arithmetic is pure; only `updated_at` reads the clock (set the field to pin it). `message` is
    /// `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use batch_model::Progress;
    ///
    /// let unknown_total = Progress::compute(None, 500, 0, 0, Duration::from_secs(2));
    /// assert_eq!((unknown_total.percentage, unknown_total.eta), (None, None));
    /// assert_eq!(unknown_total.throughput, Some(250.0));
    ///
    /// let done = Progress::compute(Some(10), 9, 1, 0, Duration::from_millis(500));
    /// assert_eq!((done.percentage, done.eta), (Some(100.0), Some(Duration::ZERO)));
    /// ```
    pub fn compute(
        total: Option<u64>,
        processed: u64,
        failed: u64,
        skipped: u64,
        elapsed: Duration,
    ) -> Progress {
        let done = processed.saturating_add(failed).saturating_add(skipped);
        let percentage = total
            .map(|total| if total == 0 { 100.0 } else { (done as f64 / total as f64 * 100.0).min(100.0) });
        let seconds = elapsed.as_secs_f64();
        let throughput = (seconds > 0.0).then(|| done as f64 / seconds);
        let eta = match (total, throughput) {
            (Some(total), _) if done >= total => Some(Duration::ZERO),
            (Some(total), Some(rate)) if rate > 0.0 => {
                let millis = ((total - done) as f64 / rate * 1000.0).round();
                // `as` saturates; a finite estimate beyond u64 milliseconds (584 million years) is capped.
                millis.is_finite().then(|| Duration::from_millis(millis as u64))
            }
            _ => None,
        };
        Progress {
            total,
            processed,
            failed,
            skipped,
            percentage,
            message: None,
            throughput,
            eta,
            updated_at: Utc::now(),
        }
    }

    /// Items done: `processed + failed + skipped` (saturating).
    pub fn done(&self) -> u64 {
        self.processed.saturating_add(self.failed).saturating_add(self.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_elapsed_has_no_throughput_and_no_eta() {
        let progress = Progress::compute(Some(100), 10, 0, 0, Duration::ZERO);
        assert_eq!(progress.percentage, Some(10.0));
        assert_eq!((progress.throughput, progress.eta), (None, None));
    }

    #[test]
    fn nothing_done_yet_has_zero_throughput_and_no_eta() {
        let progress = Progress::compute(Some(100), 0, 0, 0, Duration::from_secs(5));
        assert_eq!(progress.percentage, Some(0.0));
        assert_eq!((progress.throughput, progress.eta), (Some(0.0), None));
    }

    #[test]
    fn zero_total_is_complete() {
        let progress = Progress::compute(Some(0), 0, 0, 0, Duration::ZERO);
        assert_eq!((progress.percentage, progress.eta), (Some(100.0), Some(Duration::ZERO)));
    }

    #[test]
    fn overrunning_an_estimated_total_caps_at_one_hundred_percent() {
        let progress = Progress::compute(Some(100), 120, 0, 0, Duration::from_secs(1));
        assert_eq!((progress.percentage, progress.eta), (Some(100.0), Some(Duration::ZERO)));
        assert_eq!(progress.done(), 120);
    }

    #[test]
    fn eta_is_rounded_to_milliseconds() {
        // 1 item in 3 s; 2 left -> 6 s. 1 item in 7 ms; 2 left -> 14 ms. 3 items in 1 s; 1 left -> 333 ms.
        assert_eq!(
            Progress::compute(Some(3), 1, 0, 0, Duration::from_secs(3)).eta,
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            Progress::compute(Some(3), 1, 0, 0, Duration::from_millis(7)).eta,
            Some(Duration::from_millis(14))
        );
        assert_eq!(
            Progress::compute(Some(4), 3, 0, 0, Duration::from_secs(1)).eta,
            Some(Duration::from_millis(333))
        );
    }

    #[test]
    fn saturating_counts_do_not_panic() {
        let progress =
            Progress::compute(Some(u64::MAX), u64::MAX, u64::MAX, u64::MAX, Duration::from_nanos(1));
        assert_eq!(progress.done(), u64::MAX);
        assert_eq!(progress.percentage, Some(100.0));
    }

    #[test]
    fn an_extreme_estimate_is_capped_not_a_panic() {
        let progress = Progress::compute(Some(u64::MAX), 1, 0, 0, Duration::from_secs(u64::MAX / 2));
        assert!(progress.eta.is_some());
    }
}
