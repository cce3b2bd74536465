//! What a task kind supplies to the chunk runner: the [`RecordJob`] (its files, the work on one record,
//! its summary), the [`Summary`] accumulator and the per-record error [`ItemError`].

use std::path::Path;

use async_trait::async_trait;
use batch_model::{Counters, ErrorCode, TaskError};
use pump_core::source::Record;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where a kind's per-record work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// CPU work: [`RecordJob::process`] runs on tokio's blocking pool (pump-core's `map_blocking`),
    /// `concurrency` chunks of records at a time. A blocking call cannot be interrupted, so an attempt
    /// that ran longer than the task's `timeout` is discarded and counted as `TIMEOUT_ERROR` when it
    /// returns.
    #[default]
    Blocking,
    /// I/O-bound work: [`RecordJob::attempt`] runs as a future (pump-core's ordered `map_async`),
    /// `concurrency` records at a time, and an attempt is cancelled when it passes the task's `timeout`.
    Async,
}

/// One kind's per-record job, run by the [`ChunkRunner`](super::ChunkRunner): read the input's lines,
/// turn each into an output record (or skip it, or reject it), write the outputs as JSON lines, send
/// rejected records to a dead-letter JSON-lines file, and accumulate a [`Summary`].
///
/// The job must be deterministic: resuming after a crash processes again the records after the last
/// checkpoint, and the output is byte-identical to an uninterrupted run only if the same record gives
/// the same output.
///
/// ```
/// use std::path::{Path, PathBuf};
///
/// use batch_model::ErrorCode;
/// use batch_tasks::records::{ItemError, RecordJob};
/// use pump_core::source::Record;
///
/// /// Upper-cases each line; rejects lines that contain digits.
/// struct Shout {
///     input: PathBuf,
///     output: PathBuf,
///     dead_letters: PathBuf,
/// }
///
/// impl RecordJob for Shout {
///     type Output = String;
///     type Summary = ();
///
///     fn input(&self) -> &Path { &self.input }
///     fn output(&self) -> &Path { &self.output }
///     fn dead_letters(&self) -> &Path { &self.dead_letters }
///
///     fn process(&self, record: &Record<String>) -> Result<Option<String>, ItemError> {
///         if record.value.chars().any(|c| c.is_ascii_digit()) {
///             return Err(ItemError::validation("digits are not allowed").with_field("text"));
///         }
///         Ok(Some(record.value.to_uppercase()))
///     }
/// }
///
/// let job = Shout { input: "in.txt".into(), output: "out.jsonl".into(), dead_letters: "bad.jsonl".into() };
/// let record = Record { value: "a1".to_owned(), line: 1, offset: 0, end: Default::default() };
/// assert_eq!(job.process(&record).unwrap_err().code, ErrorCode::ValidationError);
/// ```
#[async_trait]
pub trait RecordJob: Send + Sync + 'static {
    /// One output record, written as one JSON line.
    type Output: Serialize + Send + 'static;

    /// The accumulated result of the task, kept in each checkpoint.
    type Summary: Summary<Self::Output>;

    /// The input file: text, one record per line (blank lines are skipped, unless
    /// [`keep_blank_lines`](RecordJob::keep_blank_lines) says otherwise). Read by
    /// [`ChunkRunner::run`](super::ChunkRunner::run); a job run with explicit endpoints
    /// ([`ChunkRunner::run_with`](super::ChunkRunner::run_with)) need not name one (the default is
    /// empty, which `run` refuses).
    fn input(&self) -> &Path {
        Path::new("")
    }

    /// Whether a blank line is a record too, handed to [`process`](RecordJob::process) as empty
    /// text with its line number and offset (for formats where a blank line is an invalid record
    /// that must be reported); `false` (skip them) unless overridden.
    fn keep_blank_lines(&self) -> bool {
        false
    }

    /// The output file (JSON lines), created or resumed by [`ChunkRunner::run`](super::ChunkRunner::run)
    /// (empty by default, like [`input`](RecordJob::input)).
    fn output(&self) -> &Path {
        Path::new("")
    }

    /// The dead-letter file (JSON lines of [`DeadLetterRecord`](super::DeadLetterRecord)), for
    /// [`ChunkRunner::run`](super::ChunkRunner::run) (empty by default, like [`input`](RecordJob::input)).
    fn dead_letters(&self) -> &Path {
        Path::new("")
    }

    /// A file for the summary's state log ([`Summary::admit`] appends to it, [`Summary::replay`] reads
    /// it back on resume), staged and committed like the output; `None` (the default) keeps no log.
    fn state_log(&self) -> Option<&Path> {
        None
    }

    /// Processes one record: `Ok(Some(output))` writes it, `Ok(None)` skips it (filtered, counted
    /// as skipped), `Err` rejects it. A retryable error (`PROCESSING_ERROR`, `TIMEOUT_ERROR`) is tried
    /// again up to the task's `max_retries`; any other error, or one that persists, sends the record to
    /// the dead letters.
    ///
    /// Pure CPU work; it runs on the blocking pool unless [`execution`](RecordJob::execution) says
    /// [`Execution::Async`].
    fn process(&self, record: &Record<String>) -> Result<Option<Self::Output>, ItemError>;

    /// Where the work runs; [`Execution::Blocking`] unless overridden.
    fn execution(&self) -> Execution {
        Execution::Blocking
    }

    /// One attempt at a record, for [`Execution::Async`] kinds (an HTTP call, a lookup). Bounded by the
    /// task's `timeout`; cancelled when the task is aborted. The default calls
    /// [`process`](RecordJob::process).
    async fn attempt(&self, record: &Record<String>) -> Result<Option<Self::Output>, ItemError> {
        self.process(record)
    }
}

/// A task's accumulated result and in-order state: updated with each output in input order, stored
/// (as JSON) in each checkpoint and restored on resume, finalised into the task's result summary.
///
/// Beside accumulating ([`add`](Summary::add)), a summary is the runner's **in-order step**: the
/// workers process records in any order, but [`admit`](Summary::admit) sees every output in input
/// order and decides whether it is written, skipped (a duplicate) or absorbed (into an aggregate);
/// at the end of the input [`tail`](Summary::tail) gives the rows to write last (one per group).
/// State that only grows (a set of keys seen) can go to a state log instead of the checkpoint:
/// `admit` appends entries, the runner commits the log's length with each checkpoint, and
/// [`replay`](Summary::replay) rebuilds the state from the committed entries on resume.
///
/// `()` is the summary of a kind that keeps none.
pub trait Summary<Output>: Serialize + DeserializeOwned + Default + Send + 'static {
    /// Whether [`admit`](Summary::admit) may hold outputs back; `false` (the default) lets the runner
    /// write each chunk's rendered lines whole.
    const SELECTS: bool = false;

    /// Accounts for one written output.
    fn add(&mut self, output: &Output);

    /// Decides, in input order, what becomes of a processed output; `log` collects state-log
    /// entries (kept when the job has a [`state_log`](RecordJob::state_log)). An error fails the
    /// task (a bound passed). Called only when [`SELECTS`](Summary::SELECTS) is `true`; the
    /// default writes everything.
    fn admit(&mut self, output: &Output, log: &mut Vec<u8>) -> Result<Admission, TaskError> {
        let _ = (output, log);
        Ok(Admission::Write)
    }

    /// Rebuilds state from the committed part of the state log, read once on resume before any
    /// record (the checkpoint's own state is already restored).
    fn replay(&mut self, log: &mut dyn std::io::BufRead) -> Result<(), TaskError> {
        let _ = log;
        Ok(())
    }

    /// At the end of the input: rows to write after every record (e.g. one per group), with their
    /// state-log entries in `log`. Called once; a resume after the final checkpoint does not call it
    /// again.
    fn tail(&mut self, log: &mut Vec<u8>) -> Result<Vec<Output>, TaskError> {
        let _ = log;
        Ok(Vec::new())
    }

    /// The task's result summary, once every record is done; `counters` are the task's final counts.
    /// The default is the summary itself as JSON.
    fn finish(self, counters: &Counters) -> Result<serde_json::Value, serde_json::Error> {
        let _ = counters;
        serde_json::to_value(self)
    }
}

/// What [`Summary::admit`] decided for one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Write it (and [`add`](Summary::add) it); counted as processed.
    Write,
    /// Taken into the summary's state, not written (a row aggregated into its group); counted as
    /// processed.
    Absorb,
    /// Dropped (a later duplicate); counted as skipped.
    Skip,
}

impl<Output> Summary<Output> for () {
    fn add(&mut self, _output: &Output) {}
}

/// Why one record was not processed. Its code decides whether it is retried
/// ([`ErrorCode::is_retryable`]: `PROCESSING_ERROR` and `TIMEOUT_ERROR` are, `VALIDATION_ERROR` never).
///
/// ```
/// use batch_model::ErrorCode;
/// use batch_tasks::records::ItemError;
///
/// let error = ItemError::validation("amount must be a number").with_field("amount");
/// assert_eq!(error.code, ErrorCode::ValidationError);
/// assert!(!error.is_retryable());
/// assert_eq!(error.to_string(), "VALIDATION_ERROR: amount must be a number (field amount)");
/// assert!(ItemError::processing("upstream busy").is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}{}", field.as_ref().map(|field| format!(" (field {field})")).unwrap_or_default())]
pub struct ItemError {
    /// The stable code.
    pub code: ErrorCode,
    /// What is wrong, for people.
    pub message: String,
    /// The offending field of the record, when there is one.
    pub field: Option<String>,
}

impl ItemError {
    /// An error with `code` and `message`, naming no field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ItemError {
        ItemError { code, message: message.into(), field: None }
    }

    /// A bad record (`VALIDATION_ERROR`): never retried.
    pub fn validation(message: impl Into<String>) -> ItemError {
        ItemError::new(ErrorCode::ValidationError, message)
    }

    /// A failure that may pass on another attempt (`PROCESSING_ERROR`).
    pub fn processing(message: impl Into<String>) -> ItemError {
        ItemError::new(ErrorCode::ProcessingError, message)
    }

    /// An attempt that took too long (`TIMEOUT_ERROR`).
    pub fn timeout(message: impl Into<String>) -> ItemError {
        ItemError::new(ErrorCode::TimeoutError, message)
    }

    /// The same error, naming the offending field.
    #[must_use]
    pub fn with_field(self, field: impl Into<String>) -> ItemError {
        ItemError { field: Some(field.into()), ..self }
    }

    /// Whether another attempt may succeed (the code's rule).
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }
}
