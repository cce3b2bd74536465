//! What can make a `train` task fail ([`TrainError`]), the stable code of each failure, and the
//! problems that make one row bad ([`RowProblem`]) without failing the task.

use std::io;
use std::path::PathBuf;

use batch_model::{ErrorCode, TaskError};
use pump_core::sink::WriteError;

/// Why a `train` task failed (or was refused at creation).
///
/// Every variant maps to a stable [`ErrorCode`] through [`TrainError::code`] and converts into the
/// [`TaskError`] the manager records, with the variant's context as structured details. Bad rows
/// are not errors of the task: they go to the dead-letter file (see [`RowProblem`]).
///
/// ```
/// use batch_model::ErrorCode;
/// use batch_tasks::train::TrainError;
///
/// let error = TrainError::InvalidParam { param: "epochs".into(), reason: "must be at least 1, got 0".into() };
/// assert_eq!(error.code(), ErrorCode::ConfigurationError);
/// assert_eq!(error.to_string(), "invalid train param: epochs must be at least 1, got 0");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A param is missing, has the wrong type, is out of bounds or unknown. `CONFIGURATION_ERROR`.
    #[error("invalid train param: {param} {reason}")]
    InvalidParam {
        /// The param's name as in the task's params (`learning_rate`).
        param: String,
        /// What is wrong, starting with a verb (`must be greater than 0, got -1`).
        reason: String,
    },
    /// A column the params name (the label, a feature) is not in a file's header, or appears in it
    /// twice. `CONFIGURATION_ERROR`.
    #[error("{param}: column `{column}` {reason} of {}", path.display())]
    Column {
        /// The param that names the column (`label`, `features`, `eval_input`).
        param: String,
        /// The column.
        column: String,
        /// `is not in the header`, `appears twice in the header`, `is not in the first rows`.
        reason: String,
        /// The file whose header was read.
        path: PathBuf,
    },
    /// No feature column: none named, and no numeric column besides the label. `CONFIGURATION_ERROR`.
    #[error("features: no numeric column besides the label `{label}` in {}", path.display())]
    NoFeatures {
        /// The label column.
        label: String,
        /// The input file.
        path: PathBuf,
    },
    /// A CSV file's header row cannot be read (empty file, too long, not UTF-8). `VALIDATION_ERROR`.
    #[error("the header row of {} cannot be read: {reason}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The input has fewer than two classes among its good rows: there is nothing to learn.
    /// `VALIDATION_ERROR`.
    #[error("{} has {classes} class(es) in column `{label}`; training needs at least 2", path.display())]
    TooFewClasses {
        /// The input file.
        path: PathBuf,
        /// The label column.
        label: String,
        /// How many distinct labels the good rows had.
        classes: usize,
    },
    /// The label column has more distinct values than a classifier's classes may number: it is
    /// probably not a class label. `VALIDATION_ERROR`.
    #[error("{} has more than {limit} distinct values in column `{label}`; is it a class label?", path.display())]
    TooManyClasses {
        /// The input file.
        path: PathBuf,
        /// The label column.
        label: String,
        /// The most classes allowed.
        limit: usize,
    },
    /// No good row is left for training once bad and held-out rows are set aside. `VALIDATION_ERROR`.
    #[error("{} has no rows to train on ({bad_rows} bad, {holdout_rows} held out)", path.display())]
    NoTrainingRows {
        /// The input file.
        path: PathBuf,
        /// Rows sent to the dead-letter file.
        bad_rows: u64,
        /// Rows held out for evaluation.
        holdout_rows: u64,
    },
    /// Too few usable rows are left to learn from, or to measure accuracy on, for the result to mean
    /// anything (see [`MIN_TRAINING_ROWS`](crate::train::MIN_TRAINING_ROWS) and
    /// [`MIN_EVALUATION_ROWS`](crate::train::MIN_EVALUATION_ROWS)). `VALIDATION_ERROR`.
    #[error("{} has {rows} usable row(s) to {purpose} ({bad_rows} bad); at least {needed} are needed{hint}", path.display())]
    TooFewRows {
        /// The file (`input` or `eval_input`).
        path: PathBuf,
        /// `train on`, `hold out`, `evaluate on`.
        purpose: String,
        /// Usable rows for that purpose.
        rows: u64,
        /// The least that makes sense.
        needed: u64,
        /// Bad rows of that file (in the dead-letter file).
        bad_rows: u64,
        /// What to change, starting with `: ` (or empty).
        hint: String,
    },
    /// More bad rows than the task's `skip_limit` allows. `VALIDATION_ERROR`.
    #[error("{failed} bad rows exceed the skip limit of {limit} (see {})", dead_letters.display())]
    SkipLimit {
        /// Bad rows so far.
        failed: u64,
        /// The task's `skip_limit`.
        limit: u64,
        /// The dead-letter file listing them.
        dead_letters: PathBuf,
    },
    /// An input file cannot be opened or read. `NOT_FOUND` when it does not exist, `STORAGE_ERROR`
    /// otherwise.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The model file cannot be written. `STORAGE_ERROR`.
    #[error("cannot write the model to {}", path.display())]
    WriteModel {
        /// The model file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A model file's content is not a model this kind wrote. `VALIDATION_ERROR`. (A file that cannot
    /// be read at all is [`TrainError::Read`].)
    #[error("cannot load a model from {}: {reason}", path.display())]
    LoadModel {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The dead-letter file cannot be written or resumed. `STORAGE_ERROR`.
    #[error("cannot write the dead-letter file")]
    DeadLetters(#[source] WriteError),
    /// Training diverged: the loss or the weights stopped being finite numbers, usually because the
    /// learning rate is too large for the data. `PROCESSING_ERROR`, not retryable (the same seed
    /// diverges the same way).
    #[error(
        "training diverged in epoch {epoch} (the loss is no longer a finite number); lower learning_rate \
         (now {learning_rate})"
    )]
    Diverged {
        /// The 1-based epoch.
        epoch: u32,
        /// The learning rate in use.
        learning_rate: f64,
    },
    /// The checkpoint handed to a resumed run was not written by this kind with these params and
    /// config, so resuming from it could not reproduce the run. `INVALID_STATE`.
    #[error("the checkpoint cannot resume this task: {reason}")]
    Checkpoint {
        /// What does not match.
        reason: String,
    },
    /// A mini-batch — reading its rows, or its step — took longer than the task's `timeout`, in
    /// every one of its attempts (the first, then `max_retries` more, each from the last
    /// checkpoint). `TIMEOUT_ERROR`.
    #[error(
        "a mini-batch of the {pass} took longer than the timeout of {timeout:?}, {attempts} time(s){}",
        if *unstoppable { "; the overrunning work did not stop, so it was not retried" } else { "" }
    )]
    TimedOut {
        /// The pass (`scan`, `epoch 3`, `hold-out`, `eval`).
        pass: String,
        /// The task's `timeout`.
        timeout: std::time::Duration,
        /// Attempts made.
        attempts: u32,
        /// The overrunning work did not stop when told to, so no retry was safe.
        unstoppable: bool,
    },
    /// The async side gave up on a run whose mini-batch overran the timeout, and told it to stop.
    /// Internal: never the task's outcome (the task fails with [`TrainError::TimedOut`] or retries).
    #[error("the run was abandoned after a timeout")]
    Abandoned,
    /// The run was cancelled (the stop's grace period ran out, or the lease was lost). `CANCELLED`.
    #[error("training was cancelled")]
    Cancelled,
    /// A training thread panicked: a bug. `PROCESSING_ERROR`, not retryable.
    #[error("a training thread failed: {reason}")]
    Internal {
        /// The panic or join failure.
        reason: String,
    },
}

impl TrainError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TrainError::InvalidParam { .. } | TrainError::Column { .. } | TrainError::NoFeatures { .. } => {
                ErrorCode::ConfigurationError
            }
            TrainError::Header { .. }
            | TrainError::TooFewClasses { .. }
            | TrainError::TooManyClasses { .. }
            | TrainError::NoTrainingRows { .. }
            | TrainError::TooFewRows { .. }
            | TrainError::SkipLimit { .. } => ErrorCode::ValidationError,
            TrainError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorCode::NotFound
            }
            TrainError::LoadModel { .. } => ErrorCode::ValidationError,
            TrainError::Read { .. } | TrainError::WriteModel { .. } | TrainError::DeadLetters(_) => {
                ErrorCode::StorageError
            }
            TrainError::Diverged { .. } | TrainError::Internal { .. } => ErrorCode::ProcessingError,
            TrainError::Checkpoint { .. } => ErrorCode::InvalidState,
            TrainError::TimedOut { .. } | TrainError::Abandoned => ErrorCode::TimeoutError,
            TrainError::Cancelled => ErrorCode::Cancelled,
        }
    }

    /// The variant's context as a JSON object, for [`TaskError::details`].
    fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            TrainError::InvalidParam { param, reason } => json!({ "param": param, "reason": reason }),
            TrainError::Column { param, column, reason, path } => {
                json!({ "param": param, "column": column, "reason": reason, "path": path })
            }
            TrainError::NoFeatures { label, path } => {
                json!({ "param": "features", "label": label, "path": path })
            }
            TrainError::Header { path, reason } => json!({ "path": path, "reason": reason }),
            TrainError::TooFewClasses { path, label, classes } => {
                json!({ "path": path, "label": label, "classes": classes })
            }
            TrainError::TooManyClasses { path, label, limit } => {
                json!({ "path": path, "label": label, "limit": limit })
            }
            TrainError::NoTrainingRows { path, bad_rows, holdout_rows } => {
                json!({ "path": path, "bad_rows": bad_rows, "holdout_rows": holdout_rows })
            }
            TrainError::TooFewRows { path, purpose, rows, needed, bad_rows, .. } => {
                json!({ "path": path, "purpose": purpose, "rows": rows, "needed": needed, "bad_rows": bad_rows })
            }
            TrainError::SkipLimit { failed, limit, dead_letters } => {
                json!({ "failed": failed, "skip_limit": limit, "dead_letters": dead_letters })
            }
            TrainError::Read { path, source } | TrainError::WriteModel { path, source } => {
                json!({ "path": path, "reason": source.to_string() })
            }
            TrainError::LoadModel { path, reason } => json!({ "path": path, "reason": reason }),
            TrainError::DeadLetters(source) => json!({ "reason": source.to_string() }),
            TrainError::Diverged { epoch, learning_rate } => {
                json!({ "epoch": epoch, "learning_rate": learning_rate })
            }
            TrainError::Checkpoint { reason } | TrainError::Internal { reason } => {
                json!({ "reason": reason })
            }
            TrainError::TimedOut { pass, timeout, attempts, unstoppable } => json!({
                "pass": pass,
                "timeout_ms": timeout.as_millis(),
                "attempts": attempts,
                "unstoppable": unstoppable,
            }),
            TrainError::Cancelled | TrainError::Abandoned => serde_json::Value::Null,
        }
    }
}

/// Records a train error on a task: its code, message, context as details. None of these errors goes
/// away on a second attempt with the same input, so none is marked retryable.
///
/// ```
/// use batch_model::{ErrorCode, TaskError};
/// use batch_tasks::train::TrainError;
///
/// let error = TrainError::InvalidParam { param: "label".into(), reason: "is required".into() };
/// let recorded = TaskError::from(&error);
/// assert_eq!(recorded.code, ErrorCode::ConfigurationError);
/// assert_eq!(recorded.details["param"], "label");
/// ```
impl From<&TrainError> for TaskError {
    fn from(error: &TrainError) -> TaskError {
        TaskError::new(error.code(), error.to_string()).with_details(error.details()).not_retryable()
    }
}

impl From<TrainError> for TaskError {
    fn from(error: TrainError) -> TaskError {
        TaskError::from(&error)
    }
}

/// Why one row is bad. A bad row is written to the dead-letter file with its line, offset and
/// `VALIDATION_ERROR`, counted, and left out; it never fails the task (unless `skip_limit` says so).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowProblem {
    /// A feature's value is empty, `null` or absent.
    #[error("missing value for feature `{feature}`")]
    MissingFeature {
        /// The feature column.
        feature: String,
    },
    /// A feature's value is not a number.
    #[error("feature `{feature}` is not a number: {value:?}")]
    NotANumber {
        /// The feature column.
        feature: String,
        /// The value (its first 64 characters).
        value: String,
    },
    /// A feature's value is a number but not a finite one (`NaN`, `inf`).
    #[error("feature `{feature}` is not a finite number: {value:?}")]
    NotFinite {
        /// The feature column.
        feature: String,
        /// The value.
        value: String,
    },
    /// The label is empty, `null` or absent.
    #[error("missing label `{label}`")]
    MissingLabel {
        /// The label column.
        label: String,
    },
    /// An evaluation row's label is not one of the classes the model was trained on.
    #[error("label {value:?} is not one of the trained classes")]
    UnknownLabel {
        /// The label.
        value: String,
    },
    /// A CSV row has more or fewer fields than the header.
    #[error("found {found} fields, expected {expected}")]
    FieldCount {
        /// Fields in the row.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A record the scanner could not read as a record: longer than the reader holds in memory, or a
    /// CSV record whose quote is never closed (the message names the line the quote opened on).
    #[error("{reason}")]
    Malformed {
        /// What the scanner found.
        reason: String,
    },
    /// A JSON-lines record that is not a JSON object, or not valid JSON.
    #[error("not a JSON object: {reason}")]
    Json {
        /// The parser's message.
        reason: String,
    },
    /// The label or a value is not valid UTF-8.
    #[error("column `{column}` is not valid UTF-8")]
    NotUtf8 {
        /// The column.
        column: String,
    },
}

impl RowProblem {
    /// The code a dead letter records: every row problem is bad input.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ValidationError
    }
}
