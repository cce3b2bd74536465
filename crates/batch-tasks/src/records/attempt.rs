//! Trying records: the first attempts of a chunk on a worker thread, retries with backoff,
//! per-attempt timeouts, and the settled [`Chunk`] that travels to the chunk writer.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use pump_core::Ctx;
use pump_core::source::{Record, RecordError};

use super::config::RetrySchedule;
use super::dead_letter::DeadLetterRecord;
use super::job::{ItemError, RecordJob, Summary};
use super::sink::CommitSink;
use super::source::{RecordSource, SourceElement};

/// A record of an async kind after every attempt it gets, with the source position right after it.
pub(crate) type Settled<O, P> = Ctx<P, Item<O>>;

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

/// A chunk of records on its way to the writer, in input order.
#[derive(Debug)]
pub(crate) struct Chunk<O, P> {
    /// Each record's result.
    pub(crate) items: Vec<Item<O>>,
    /// The source position right after the chunk's last record: its checkpoint's position.
    pub(crate) end: P,
    /// The outputs as the output sink renders them, rendered on the worker thread, when every
    /// output of the chunk rendered there (the writer then only copies bytes); `None` makes the
    /// writer write them one by one.
    pub(crate) rendered: Option<Vec<u8>>,
    /// When the summary selects outputs ([`Summary::SELECTS`]) and `rendered` is set: where each
    /// output's rendering ends in `rendered`, so that the writer can leave some out.
    pub(crate) rendered_ends: Vec<usize>,
    /// The failures as dead-letter JSON lines, rendered on the worker thread when no record of the
    /// chunk is due a retry (their items then keep only their outcome, not their text).
    pub(crate) dead_letters: Option<Vec<u8>>,
    /// Records whose first attempt failed with a retryable error while retries are allowed; their
    /// items hold a placeholder until [`settle_chunk`] replaces them.
    pub(crate) retries: Vec<Retry>,
}

/// A record due for a retry.
#[derive(Debug)]
pub(crate) struct Retry {
    /// Its place in the chunk's items.
    index: usize,
    record: Record<String>,
    /// The error of the last attempt.
    error: ItemError,
}

impl<O, P> Chunk<O, P> {
    /// The chunk of an async kind's settled records (`None` for no records).
    pub(crate) fn from_settled(mut settled: Vec<Settled<O, P>>) -> Option<Chunk<O, P>> {
        let end = settled.pop()?;
        let mut items: Vec<Item<O>> = settled.into_iter().map(|settled| settled.value).collect();
        items.push(end.value);
        Some(Chunk {
            items,
            end: end.context,
            rendered: None,
            rendered_ends: Vec::new(),
            dead_letters: None,
            retries: Vec::new(),
        })
    }
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

/// The first attempts at a batch of source elements, on a worker thread: each record is settled
/// there unless a retry is due, and the outputs are rendered (by the output sink's `O::render`, JSON
/// lines for files) while the chunk is still in one thread's cache, so that the writer only copies
/// bytes. `batch` is never empty (pump-core's `batch` emits no empty batch).
pub(crate) fn attempt_chunk<J, S, O, D>(
    job: &J,
    source: &S,
    schedule: &RetrySchedule,
    batch: Vec<SourceElement>,
) -> Chunk<J::Output, S::Position>
where
    J: RecordJob,
    S: RecordSource,
    O: CommitSink<J::Output>,
    D: CommitSink<DeadLetterRecord>,
{
    // Batches are never empty; an empty one would be a chunk of nothing, which the writer skips.
    let end = batch.last().map(|last| source.position_after(last)).unwrap_or_default();
    let mut items = Vec::with_capacity(batch.len());
    let mut retries = Vec::new();
    // Outputs are usually about as long as their input lines: start there, to grow rarely.
    let input_bytes: usize =
        batch.iter().map(|element| element.as_ref().map_or(0, |record| record.value.len() + 1)).sum();
    let mut rendered = O::RENDERS.then(|| Vec::with_capacity(input_bytes));
    let selects = <J::Summary as Summary<J::Output>>::SELECTS;
    let mut rendered_ends = Vec::new();
    for element in batch {
        let record = match element {
            Err(error) => {
                items.push(malformed(error));
                continue;
            }
            Ok(record) => record,
        };
        match timed_process(job, &record, schedule.timeout) {
            Err(error) if error.is_retryable() && schedule.max_retries > 0 => {
                // A retried output would land in the middle of the rendered lines: the writer renders.
                rendered = None;
                let placeholder =
                    Item { line: record.line, offset: record.offset, retries: 0, outcome: Outcome::Skipped };
                retries.push(Retry { index: items.len(), record, error });
                items.push(placeholder);
            }
            result => {
                let item = settled(record, result, 0);
                if let (Some(lines), Outcome::Output(output)) = (&mut rendered, &item.outcome) {
                    if O::render(output, lines).is_err() {
                        // The writer meets the same error and reports it with the record's number.
                        rendered = None;
                    } else if selects {
                        rendered_ends.push(lines.len());
                    }
                }
                items.push(item);
            }
        }
    }
    let dead_letters = if retries.is_empty() { render_dead_letters::<_, D>(&mut items) } else { None };
    if rendered.is_none() {
        rendered_ends = Vec::new();
    }
    Chunk { items, end, rendered, rendered_ends, dead_letters, retries }
}

/// Renders the failures of `items` as the dead-letter sink renders them, moving their texts into
/// the rendering (so they are freed on this thread, not the writer's); `None` when the sink does not
/// render apart (the writer then writes each dead letter).
fn render_dead_letters<O, D: CommitSink<DeadLetterRecord>>(items: &mut [Item<O>]) -> Option<Vec<u8>> {
    if !D::RENDERS {
        return None;
    }
    let mut lines = Vec::new();
    for item in items {
        if let Outcome::Failed { error, raw } = &mut item.outcome {
            let error = std::mem::replace(error, ItemError::new(error.code, String::new()));
            let record = DeadLetterRecord::new(item.line, item.offset, error, std::mem::take(raw));
            // A dead letter is strings and numbers: a sink that renders, renders it.
            let _ = D::render(&record, &mut lines);
        }
    }
    Some(lines)
}

/// A line that could not be read as a record: a `VALIDATION_ERROR` dead letter.
fn malformed<O>(error: RecordError) -> Item<O> {
    Item {
        line: error.line,
        offset: error.offset,
        retries: 0,
        outcome: Outcome::Failed { error: ItemError::validation(error.reason), raw: error.raw },
    }
}

/// The final result of `record` after `retries` retries.
fn settled<O>(record: Record<String>, result: Result<Option<O>, ItemError>, retries: u32) -> Item<O> {
    let outcome = match result {
        Ok(Some(output)) => Outcome::Output(output),
        Ok(None) => Outcome::Skipped,
        Err(error) => Outcome::Failed { error, raw: record.value },
    };
    Item { line: record.line, offset: record.offset, retries, outcome }
}

/// Whether a failed attempt gets another try after `retries` retries.
fn retry_due(result: &Result<impl Sized, ItemError>, retries: u32, schedule: &RetrySchedule) -> bool {
    matches!(result, Err(error) if error.is_retryable() && retries < schedule.max_retries)
}

/// Settles a chunk after its first attempts: as it is when no record in it is due for a retry;
/// otherwise the retries run on the blocking pool, at most `concurrency` at a time, each after its
/// backoff, while its error is retryable and retries remain.
pub(crate) async fn settle_chunk<J: RecordJob, P>(
    job: Arc<J>,
    schedule: Arc<RetrySchedule>,
    concurrency: usize,
    mut chunk: Chunk<J::Output, P>,
) -> Chunk<J::Output, P> {
    if chunk.retries.is_empty() {
        return chunk;
    }
    let retries = std::mem::take(&mut chunk.retries);
    let mut settled = futures::stream::iter(retries)
        .map(|retry| {
            let (job, schedule) = (Arc::clone(&job), Arc::clone(&schedule));
            async move { (retry.index, retry_blocking(job, schedule, retry.record, retry.error).await) }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((index, item)) = settled.next().await {
        if let Some(slot) = chunk.items.get_mut(index) {
            *slot = item;
        }
    }
    chunk
}

/// Retries a record whose first attempt failed with `error` on the blocking pool, after each
/// backoff, while its error is retryable and retries remain.
async fn retry_blocking<J: RecordJob>(
    job: Arc<J>,
    schedule: Arc<RetrySchedule>,
    mut record: Record<String>,
    error: ItemError,
) -> Item<J::Output> {
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
pub(crate) async fn settle_async<J: RecordJob, S: RecordSource>(
    job: Arc<J>,
    source: Arc<S>,
    schedule: Arc<RetrySchedule>,
    element: SourceElement,
) -> Settled<J::Output, S::Position> {
    let end = source.position_after(&element);
    let record = match element {
        Err(error) => return Ctx::new(end, malformed(error)),
        Ok(record) => record,
    };
    let mut retries = 0;
    loop {
        let result = match tokio::time::timeout(schedule.timeout, job.attempt(&record)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(timeout_error(schedule.timeout)),
        };
        if !retry_due(&result, retries, &schedule) {
            return Ctx::new(end, settled(record, result, retries));
        }
        retries += 1;
        tokio::time::sleep(schedule.backoff(record.offset, retries)).await;
    }
}
