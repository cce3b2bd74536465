//! The standard chunk model: a reusable runner for kinds that turn the lines of an input file into
//! JSON-lines output records, one record at a time, resumably.
//!
//! A kind supplies a [`RecordJob`] (its input, output and dead-letter paths, the work on one record,
//! a [`Summary`] accumulator) and hands it to a [`ChunkRunner`] from its `TaskKind::run`. The runner
//! does the rest, the same way for every kind:
//!
//! 1. **Read** the input with pump-core's `text_lines`, from the checkpoint's source position (the `end`
//!    of the last record it covers) or from the start. A line that is not text is a
//!    `VALIDATION_ERROR` dead letter; a blank line is no record (unless the job's
//!    [`RecordJob::keep_blank_lines`] says it is).
//! 2. **Chunk** the records into chunks of `batch_size` (pump-core's `batch`; a partly filled chunk
//!    waits at most [`RunnerOptions::chunk_max_wait`]).
//! 3. **Process** them in order. [`RecordJob::process`] runs on `concurrency` worker threads
//!    (pump-core's `map_blocking`, whole chunks per hand-off), which also render the outputs as JSON
//!    lines; for [`Execution::Async`] kinds [`RecordJob::attempt`] runs as a future (`map_async`),
//!    `concurrency` records at a time, before chunking. Each attempt is bounded by the task's
//!    `timeout` (`TIMEOUT_ERROR`); retryable failures (`PROCESSING_ERROR`, `TIMEOUT_ERROR`) are tried
//!    again up to `max_retries` times after an exponential backoff with jitter ([`RunnerOptions`]); a
//!    record that still fails, or is invalid, goes to the dead-letter file as a [`DeadLetterRecord`]
//!    `{line, offset, code, message, field, raw}`. `Ok(None)` skips a record.
//! 4. **Write** each chunk: outputs to the output file and failures to the dead-letter file
//!    (`JsonLinesWriter`), then **flush** both (durability `process`) or **fsync** both
//!    (`power_loss`), then **commit** one checkpoint through `JobControl::commit` — sequence + 1, the
//!    source position after the chunk's last record, both files' committed lengths, the
//!    [`Counters`](batch_model::Counters), the summary as the checkpoint's state — with the progress,
//!    in one store transaction. The commit runs while the pipeline brings the next chunk; one is in
//!    flight at a time, in sequence order.
//! 5. After each commit: fail with `PROCESSING_ERROR` once more records failed than the task's
//!    `skip_limit` allows; end with `JobOutcome::Stopped` if a stop was requested.
//! 6. At the end of the input: `JobOutcome::Completed` with the finished summary and the final progress.
//!
//! Abort: when the job's cancellation token is cancelled (a stop's grace period ran out, the lease
//! was lost), the pipeline is aborted (`RunControls::abort`) and the run ends with `CANCELLED`; the
//! last checkpoint stays as it was.
//!
//! # Crash safety
//!
//! Both files are written and flushed *before* the checkpoint that covers them is committed, so after a
//! crash at any point each file is at least as long as the last checkpoint says. A resume truncates
//! them back to the checkpoint's lengths (`JsonLinesWriter::resume`) and reads the input from the
//! checkpoint's position, so the records after the checkpoint are processed and written exactly once
//! more: the final files are byte-identical to an uninterrupted run's, and the counters exact, provided
//! the job is deterministic.
//!
//! Durability `process` (the default) needs no fsync for this: a killed process loses nothing the
//! operating system has accepted. Durability `power_loss` fsyncs both files at each checkpoint (and
//! their directory when the run starts); the store must be opened for power loss too (SQLite's
//! `synchronous=FULL`). If a resume finds a file *shorter* than its checkpoint (power loss in the
//! default mode, a file truncated or replaced by hand), the run stops with `STORAGE_ERROR` naming the
//! file and both lengths, and leaves both files untouched: appending would corrupt them.
//!
//! # Progress
//!
//! Progress is committed with every checkpoint. Its `total` is an estimate: the records done so far,
//! scaled by the input's length over the bytes they cover (so it is exact for records of even length,
//! and it adapts as the run goes). Counting the lines instead would read the whole input a second
//! time, beside the run. The final progress has the exact total.

mod attempt;
mod config;
mod dead_letter;
mod error;
mod job;
mod position;
mod runner;
mod sink;
mod source;
#[cfg(test)]
mod tests;

pub use config::RunnerOptions;
pub use dead_letter::DeadLetterRecord;
pub use error::RunError;
pub use job::{Admission, Execution, ItemError, RecordJob, Summary};
/// The record a [`RecordJob`] processes (a line with its position), re-exported from pump-core.
pub use pump_core::source::{FilePosition, Record, RecordError};
pub use runner::{ChunkRunner, Endpoints};
pub use sink::{CommitSink, CsvFile, CsvSink, JsonLinesFile, JsonLinesSink, Resume, SinkTarget, staged_path};
pub use source::{CsvRowsInput, RecordSource, RowJson, SourceElement, SourceFailure, TextLinesInput};
