//! The standard chunk model: a reusable runner for kinds that turn the records of an input into
//! output records, one record at a time, resumably.
//!
//! A kind supplies a [`RecordJob`] (the work on one record, a [`Summary`] accumulator and in-order
//! step) and hands it to a [`ChunkRunner`] from its `TaskKind::run`, with its [`Endpoints`]: the
//! runner's two seams.
//!
//! - A [`RecordSource`] yields records, each with a serialisable position after it, and reopens at
//!   such a position: [`TextLinesInput`] (a text file, a line a record), [`CsvRowsInput`] (a CSV
//!   file through pump-core's quote-aware scanner, a row a record), `YouzanApiInput` (the YouZan
//!   API, feature `youzan-api`), `postgres::PgTableInput` (a PostgreSQL table read in key order,
//!   feature `postgres`).
//! - A [`SinkTarget`] opens a [`CommitSink`], which writes a chunk, makes it durable, reports the
//!   position that goes into the same checkpoint, and on resume returns to the committed position:
//!   [`JsonLinesFile`] and [`CsvFile`], and `postgres::PgTableOutput` (feature `postgres`: rows
//!   committed in the checkpoint's own store transaction when the store is the table's database —
//!   [`CommitSink::attached`] hands them to [`JobControl::commit_with`](crate::JobControl::commit_with)
//!   —, else upserted by key, exactly once by idempotence).
//!
//! [`ChunkRunner::run`] uses the job's own paths ([`RecordJob::input`], a text file; `output` and
//! `dead_letters`, JSON lines); [`ChunkRunner::run_with`] takes any endpoints. The runner does the
//! rest, the same way for every kind:
//!
//! 1. **Read** the source from the checkpoint's source position or from the start. A record that
//!    cannot be read (a line that is not text, a CSV row of the wrong width) is a
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
//! 4. **Select, in order**: each output goes through [`Summary::admit`] in input order (when the
//!    summary [`SELECTS`](Summary::SELECTS)): written, absorbed (aggregated), or skipped (a
//!    duplicate); entries for the job's state log are collected meanwhile.
//! 5. **Write** each chunk: outputs to the output sink and failures to the dead-letter sink (and the
//!    state-log entries to the log), then **flush** them (durability `process`) or **fsync** them
//!    (`power_loss`), then **commit** one checkpoint through `JobControl::commit` — sequence + 1, the
//!    source position after the chunk's last record, the sinks' committed positions (and the claim's
//!    epoch), the [`Counters`](batch_model::Counters), the summary as the checkpoint's state — with
//!    the progress, in one store transaction. The commit runs while the pipeline brings the next
//!    chunk; one is in flight at a time, in sequence order.
//! 6. After each commit: fail with `PROCESSING_ERROR` once more records failed than the task's
//!    `skip_limit` allows; end with `JobOutcome::Stopped` if a stop was requested.
//! 7. At the end of the input: the summary's [`tail`](Summary::tail) rows are written (one per group),
//!    a **final checkpoint** is committed when the claim is fenced or a tail was written, the sinks
//!    are **published** (staged files renamed to their final names), and the run ends
//!    `JobOutcome::Completed` with the finished summary and the final progress.
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
//! # Fencing: nothing a stale holder writes reaches the output
//!
//! Every claim of a task carries an epoch (`JobContext::epoch`, bumped by the store at each claim;
//! a commit under an older epoch is refused). File sinks never write the final name while a task
//! runs; a claim of epoch `e` writes `out.jsonl.e<e>.part` ([`staged_path`]), and each checkpoint
//! records, beside the committed lengths, the epoch whose staged files hold those bytes
//! (`"sink": {"output": 1234, "dead_letters": 56, "epoch": 7}`).
//!
//! - **Resume under the same epoch** (only an unfenced claim, epoch 0): the file is truncated to the
//!   committed length, as always.
//! - **Resume under a new epoch**: the committed prefix of the previous epoch's staged file is
//!   *copied* into this epoch's own file (in the kernel, `copy_file_range`), after checking it is at
//!   least that long. The previous file is never renamed, truncated or written: a paused holder of
//!   that epoch may still have it open and append to it, but only after the committed prefix,
//!   which is all that is copied. Once this claim's first checkpoint is committed (so no checkpoint
//!   refers to the old file any more), the adopted file is removed; a stale holder writing into it
//!   then writes into a file no name refers to.
//! - **The end**: after the last chunk, the runner commits a *final* checkpoint (`"final": true`)
//!   under its epoch; only once the store accepted it are the staged files renamed to their final
//!   names, and the staged files of older epochs removed. A stale holder's final commit is refused,
//!   so it never renames anything. If the holder dies between its final commit and its renames,
//!   the next claim finds the final checkpoint, reads no record, and finishes the publication
//!   (copying the staged file into its own and renaming that; a file already renamed is left as it
//!   is): publishing is idempotent.
//! - **Epoch 0** (a manager that does not fence) writes in place, as before: the files are their
//!   final names from the start and there is nothing to publish.
//!
//! So whatever a stale holder writes lands in its own staged file past the committed prefix, or in
//! an unlinked file, and never in the final output: the final files are byte-identical to an
//! uninterrupted run's. A cancelled or failed fenced task keeps its committed output in the staged
//! files its last checkpoint names, until a restart finishes it.
//!
//! # Partitions
//!
//! A kind whose input is a file can split one task into partitions ([`TaskKind::split`](crate::TaskKind::split)):
//! [`split_lines`] and [`split_csv`] cut a file at record boundaries into [`InputRange`]s (the
//! byte where a range starts, its line number there, and where the next starts); a source reads one
//! range with `range` ([`TextLinesInput::range`], [`CsvRowsInput::range`]: pump-core's `end_at`
//! stops the reader thread at the range's end), numbering lines as in the whole file, so a
//! partition's dead letters name the lines of the whole input. Each partition writes its own files
//! beside the task's, named by [`partition_path`]. When every partition completed,
//! [`merge_partitions`] writes the task's own files from theirs (the kind says how: concatenated,
//! the first output adopted by a rename rather than copied, or lines selected), commits a *final*
//! checkpoint under the parent claim's epoch, publishes the files as a run does, and removes the
//! partitions' files; a merge whose holder died after that checkpoint is finished from it by the
//! next claim. An adoption is recorded by a checkpoint of its own before the rename, and a later
//! claim copies only the recorded bytes (see [`MergeFile::adopt_file`]).
//!
//! # Progress
//!
//! Progress is committed with every checkpoint. Its `total` is an estimate: the records done so far,
//! scaled by the input's length over the bytes they cover (so it is exact for records of even length,
//! and it adapts as the run goes). Counting the lines instead would read the whole input a second
//! time, beside the run. The final progress has the exact total.

mod attempt;
mod check;
mod config;
mod dead_letter;
mod error;
mod job;
mod merge;
mod partition;
mod position;
pub mod postgres;
mod runner;
mod sink;
mod source;
#[cfg(test)]
mod tests;

pub use check::{check_input_file, check_output_folder, check_splittable, dead_letters_beside};
pub use config::RunnerOptions;
pub use dead_letter::DeadLetterRecord;
pub use error::{AdoptFailure, RunError};
pub use job::{Admission, Execution, ItemError, RecordJob, Summary};
pub use merge::{MergeFile, MergeTargets, Merged, merge_partitions};
pub use partition::{InputRange, partition_path, split_csv, split_lines};
/// The record a [`RecordJob`] processes (a line with its position), re-exported from pump-core.
pub use pump_core::source::{FilePosition, Record, RecordError};
pub use runner::{ChunkRunner, Endpoints};
pub use sink::{
    CommitSink, CsvFile, CsvSink, JsonLinesFile, JsonLinesSink, Resume, SinkFailure, SinkTarget, staged_path,
};
pub use source::{CsvRowsInput, RecordSource, RowJson, SourceElement, SourceFailure, TextLinesInput};
