//! The chunk runner's own settings ([`RunnerOptions`]: backoff, jitter and its seed, the longest wait
//! for a chunk) and the retry schedule built from them and a task's config.

use std::time::Duration;

use batch_model::BatchConfig;
use pump_core::RetryPolicy;

/// How the [`ChunkRunner`](super::ChunkRunner) retries and cuts chunks, beyond what the task's
/// [`BatchConfig`] says (chunk size, retries, timeout, concurrency, skip limit, durability).
///
/// The backoff before retry `n` (1-based) is `min(initial_backoff * 2^(n-1), max_backoff)`, reduced by a
/// random fraction of at most `jitter` (so `jitter: 0.0` gives exact, testable timings). The random
/// numbers come from a generator seeded with `jitter_seed` and the record's byte offset, so a run with a
/// fixed seed waits exactly the same times again, whatever the concurrency.
///
/// ```
/// use std::time::Duration;
/// use batch_tasks::records::RunnerOptions;
///
/// let options = RunnerOptions::default().with_jitter(0.0).with_initial_backoff(Duration::from_millis(50));
/// assert_eq!(options.jitter, 0.0);
/// assert_eq!(options.max_backoff, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerOptions {
    /// The wait before the first retry of a record (default 100 ms); doubled for each further retry.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (default 30 s).
    pub max_backoff: Duration,
    /// The largest fraction of a backoff taken off at random, `0.0 ..= 1.0` (default 0.2).
    pub jitter: f64,
    /// Seeds the jitter; `None` (the default) picks a seed per run.
    pub jitter_seed: Option<u64>,
    /// The longest a partly filled chunk waits for more records before it is written and checkpointed
    /// (default 1 s): a slow source still makes progress visible.
    pub chunk_max_wait: Duration,
}

impl Default for RunnerOptions {
    fn default() -> RunnerOptions {
        RunnerOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
            jitter_seed: None,
            chunk_max_wait: Duration::from_secs(1),
        }
    }
}

impl RunnerOptions {
    /// The same options with `initial_backoff`.
    #[must_use]
    pub fn with_initial_backoff(self, initial_backoff: Duration) -> RunnerOptions {
        RunnerOptions { initial_backoff, ..self }
    }

    /// The same options with `max_backoff`.
    #[must_use]
    pub fn with_max_backoff(self, max_backoff: Duration) -> RunnerOptions {
        RunnerOptions { max_backoff, ..self }
    }

    /// The same options with `jitter`, clamped to `0.0 ..= 1.0` (a NaN counts as 0).
    #[must_use]
    pub fn with_jitter(self, jitter: f64) -> RunnerOptions {
        let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) };
        RunnerOptions { jitter, ..self }
    }

    /// The same options with a fixed jitter seed.
    #[must_use]
    pub fn with_jitter_seed(self, seed: u64) -> RunnerOptions {
        RunnerOptions { jitter_seed: Some(seed), ..self }
    }

    /// The same options with `chunk_max_wait`.
    #[must_use]
    pub fn with_chunk_max_wait(self, chunk_max_wait: Duration) -> RunnerOptions {
        RunnerOptions { chunk_max_wait, ..self }
    }
}

/// When and how often one record is tried: the task's retries and timeout with the runner's backoff.
#[derive(Debug, Clone)]
pub(crate) struct RetrySchedule {
    /// Further attempts after a retryable failure.
    pub(crate) max_retries: u32,
    /// Bound on one attempt.
    pub(crate) timeout: Duration,
    /// The exponential part of the backoff, without jitter.
    policy: RetryPolicy,
    jitter: f64,
    seed: u64,
}

impl RetrySchedule {
    pub(crate) fn new(config: &BatchConfig, options: &RunnerOptions) -> RetrySchedule {
        let policy = RetryPolicy::exponential(config.max_retries.saturating_add(1), options.initial_backoff)
            .with_max_backoff(options.max_backoff)
            .with_jitter(0.0);
        RetrySchedule {
            max_retries: config.max_retries,
            timeout: config.timeout,
            policy,
            jitter: if options.jitter.is_nan() { 0.0 } else { options.jitter.clamp(0.0, 1.0) },
            seed: options.jitter_seed.unwrap_or_else(|| fastrand::u64(..)),
        }
    }

    /// The wait before retry number `retry` (1-based) of the record at byte `offset`.
    pub(crate) fn backoff(&self, offset: u64, retry: u32) -> Duration {
        let base = self.policy.backoff(retry);
        if self.jitter == 0.0 {
            return base;
        }
        // A generator per (seed, record, retry): the same seed waits the same times, in any order.
        let mixed = self.seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(retry).rotate_left(32);
        let fraction = fastrand::Rng::with_seed(mixed).f64();
        base.mul_f64(1.0 - self.jitter * fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(jitter: f64, seed: u64) -> RetrySchedule {
        let config = BatchConfig { max_retries: 5, ..BatchConfig::default() };
        let options = RunnerOptions::default().with_jitter(jitter).with_jitter_seed(seed);
        RetrySchedule::new(&config, &options)
    }

    #[test]
    fn without_jitter_backoff_doubles_up_to_the_maximum() {
        let schedule = RetrySchedule::new(
            &BatchConfig::default(),
            &RunnerOptions::default().with_jitter(0.0).with_max_backoff(Duration::from_millis(500)),
        );
        let waits: Vec<Duration> = (1..=5).map(|retry| schedule.backoff(7, retry)).collect();
        let millis = [100, 200, 400, 500, 500].map(Duration::from_millis);
        assert_eq!(waits, millis);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_repeats_with_the_seed() {
        let first = schedule(0.5, 42);
        let again = schedule(0.5, 42);
        let other = schedule(0.5, 43);
        let mut differs = false;
        for offset in 0..200u64 {
            for retry in 1..=3 {
                let wait = first.backoff(offset, retry);
                let base = Duration::from_millis(100 * (1 << (retry - 1)));
                assert!(wait <= base && wait >= base / 2, "{wait:?} outside [{:?}, {base:?}]", base / 2);
                assert_eq!(wait, again.backoff(offset, retry));
                differs |= wait != other.backoff(offset, retry);
            }
        }
        assert!(differs, "another seed should give other waits");
    }

    #[test]
    fn jitter_is_clamped() {
        assert_eq!(RunnerOptions::default().with_jitter(7.0).jitter, 1.0);
        assert_eq!(RunnerOptions::default().with_jitter(-1.0).jitter, 0.0);
        assert_eq!(RunnerOptions::default().with_jitter(f64::NAN).jitter, 0.0);
    }
}
