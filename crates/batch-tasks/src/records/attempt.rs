//! Trying one record: the first attempt, retries with backoff, per-attempt timeouts, and the settled
//! result that travels to the chunk writer with the record's position.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use pump_core::Ctx;
use pump_core::source::{FilePosition, Record, RecordError};

use super::config::RetrySchedule;
use super::job::{ItemError, RecordJob};

/// A record after every attempt it gets, with the source position right after it (the context the
/// chunk's checkpoint stores).
pub(crate) type Settled<O> = Ctx<FilePosition, Item<O>>;

/// What became of one input record.
#[derive(Debug)]
pub(crate) struct Item<O> {
    /// The record's 1-based line.
    pub(crate) line: u64,
    /// The record's byte offset.
    pub(crate) offset: u64,
    /// Attempts made after the first.
    pub(crate) retries: u32,
    /// The result.
    pub(crate) outcome: Outcome<O>,
}

/// The result of a record.
#[derive(Debug)]
pub(crate) enum Outcome<O> {
    /// Write this output.
    Output(O),
    /// The kind filtered the record out.
    Skipped,
    /// The record goes to the dead letters with its text.
    Failed {
        /// The last error.
        error: ItemError,
        /// The record's text.
        raw: String,
    },
}

/// A record after its first attempt on the blocking pool: settled already (the common case), or due
/// for a retry.
#[derive(Debug)]
pub(crate) enum Attempted<O> {
    /// No retry is due: the record's final result.
    Settled(Settled<O>),
    /// The first attempt failed with a retryable error and retries are allowed.
    Retry { record: Record<String>, error: ItemError },
}

/// The error of an attempt that took longer than `timeout`.
pub(crate) fn timeout_error(timeout: Duration) -> ItemError {
    ItemError::timeout(format!("the attempt took longer than the task's timeout of {timeout:?}"))
}

/// One blocking attempt, measured: an attempt that returns after `timeout` is a timeout, whatever
/// its result (a blocking call cannot be interrupted).
///
/// Measured on the coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux: a few nanoseconds a
/// read instead of about 25, and every record is measured), so the verdict is exact to a scheduler
/// tick (1 to 10 ms), well inside any sensible timeout.
pub(crate) fn timed_process<J: RecordJob>(
    job: &J,
    record: &Record<String>,
    timeout: Duration,
) -> Result<Option<J::Output>, ItemError> {
    let started = coarsetime::Instant::now();
    let result = job.process(record);
    if Duration::from(started.elapsed()) > timeout { Err(timeout_error(timeout)) } else { result }
}

/// The first attempt at an element of the source, on the blocking pool: settled there unless a
/// retry is due, so that a chunk without retries never needs the async retry path.
pub(crate) fn first_attempt<J: RecordJob>(
    job: &J,
    element: Result<Record<String>, RecordError>,
    schedule: &RetrySchedule,
) -> Attempted<J::Output> {
    let record = match element {
        Err(error) => return Attempted::Settled(malformed(error)),
        Ok(record) => record,
    };
    match timed_process(job, &record, schedule.timeout) {
        Err(error) if error.is_retryable() && schedule.max_retries > 0 => Attempted::Retry { record, error },
        result => Attempted::Settled(settled(record, result, 0)),
    }
}

/// A line that could not be read as a record: a `VALIDATION_ERROR` dead letter.
fn malformed<O>(error: RecordError) -> Settled<O> {
    let item = Item {
        line: error.line,
        offset: error.offset,
        retries: 0,
        outcome: Outcome::Failed { error: ItemError::validation(error.reason), raw: error.raw },
    };
    Ctx::new(error.end, item)
}

/// The final result of `record` after `retries` retries.
fn settled<O>(record: Record<String>, result: Result<Option<O>, ItemError>, retries: u32) -> Settled<O> {
    let outcome = match result {
        Ok(Some(output)) => Outcome::Output(output),
        Ok(None) => Outcome::Skipped,
        Err(error) => Outcome::Failed { error, raw: record.value },
    };
    Ctx::new(record.end, Item { line: record.line, offset: record.offset, retries, outcome })
}

/// Whether a failed attempt gets another try after `retries` retries.
fn retry_due(result: &Result<impl Sized, ItemError>, retries: u32, schedule: &RetrySchedule) -> bool {
    matches!(result, Err(error) if error.is_retryable() && retries < schedule.max_retries)
}

/// Settles a chunk of first attempts, in order: as it is when no record in it is due for a retry;
/// otherwise its retries run on the blocking pool, at most `concurrency` at a time, each after its
/// backoff, while its error is retryable and retries remain.
pub(crate) async fn settle_chunk<J: RecordJob>(
    job: Arc<J>,
    schedule: Arc<RetrySchedule>,
    concurrency: usize,
    chunk: Vec<Attempted<J::Output>>,
) -> Vec<Settled<J::Output>> {
    if chunk.iter().all(|attempted| matches!(attempted, Attempted::Settled(_))) {
        return chunk
            .into_iter()
            .filter_map(|attempted| match attempted {
                Attempted::Settled(settled) => Some(settled),
                Attempted::Retry { .. } => None,
            })
            .collect();
    }
    futures::stream::iter(chunk)
        .map(|attempted| {
            let (job, schedule) = (Arc::clone(&job), Arc::clone(&schedule));
            async move {
                match attempted {
                    Attempted::Settled(settled) => settled,
                    Attempted::Retry { record, error } => retry_blocking(job, schedule, record, error).await,
                }
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Retries a record whose first attempt failed with `error` on the blocking pool, after each
/// backoff, while its error is retryable and retries remain.
async fn retry_blocking<J: RecordJob>(
    job: Arc<J>,
    schedule: Arc<RetrySchedule>,
    mut record: Record<String>,
    error: ItemError,
) -> Settled<J::Output> {
    let mut result = Err(error);
    let mut retries = 0;
    while retry_due(&result, retries, &schedule) {
        retries += 1;
        tokio::time::sleep(schedule.backoff(record.offset, retries)).await;
        let job = Arc::clone(&job);
        let timeout = schedule.timeout;
        let attempt = tokio::task::spawn_blocking(move || {
            let result = timed_process(&*job, &record, timeout);
            (record, result)
        });
        match attempt.await {
            Ok((tried, outcome)) => {
                record = tried;
                result = outcome;
            }
            // The kind panicked: let the stage report it, as it does for a first attempt.
            Err(join_error) => match join_error.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                // Only a runtime shutting down cancels a blocking task; this future is dropped with it.
                Err(_cancelled) => match std::future::pending::<std::convert::Infallible>().await {},
            },
        }
    }
    settled(record, result, retries)
}

/// Settles a record of an [`Execution::Async`](super::Execution::Async) kind: every attempt bounded
/// by the task's timeout (and cancelled past it), retried after its backoff while its error is
/// retryable and retries remain.
pub(crate) async fn settle_async<J: RecordJob>(
    job: Arc<J>,
    schedule: Arc<RetrySchedule>,
    element: Result<Record<String>, RecordError>,
) -> Settled<J::Output> {
    let record = match element {
        Err(error) => return malformed(error),
        Ok(record) => record,
    };
    let mut retries = 0;
    loop {
        let result = match tokio::time::timeout(schedule.timeout, job.attempt(&record)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(timeout_error(schedule.timeout)),
        };
        if !retry_due(&result, retries, &schedule) {
            return settled(record, result, retries);
        }
        retries += 1;
        tokio::time::sleep(schedule.backoff(record.offset, retries)).await;
    }
}
