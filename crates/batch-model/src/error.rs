//! The model's error vocabulary: [`ErrorCode`] (the closed set of stable codes), [`TaskError`] (an error
//! as recorded on a task or an item result) and [`ModelError`] (what this crate's own checks return).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::TaskStatus;

/// A stable error code, as it appears in logs, progress, CLI output and stored task errors.
///
/// Serialised in `SCREAMING_SNAKE_CASE` (`"VALIDATION_ERROR"`), the spelling of the Go original. A code's
/// spelling never changes once released; the set may grow, hence `#[non_exhaustive]`.
///
/// ```
/// use batch_model::ErrorCode;
///
/// assert_eq!(ErrorCode::TimeoutError.as_str(), "TIMEOUT_ERROR");
/// assert_eq!(serde_json::to_string(&ErrorCode::NotFound).unwrap(), r#""NOT_FOUND""#);
/// assert!(ErrorCode::ProcessingError.is_retryable());
/// assert!(!ErrorCode::ValidationError.is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Bad input: a malformed record, request or identifier. Never retried.
    ValidationError,
    /// Processing an item failed in a way that may succeed on another attempt.
    ProcessingError,
    /// An attempt took longer than the task's `timeout`.
    TimeoutError,
    /// A task's configuration is invalid. Never retried.
    ConfigurationError,
    /// The task (or another named thing) does not exist.
    NotFound,
    /// The operation is not allowed in the task's current status (an illegal state transition).
    InvalidState,
    /// The task store or an output file failed.
    StorageError,
    /// The task was stopped before it finished.
    Cancelled,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::ValidationError,
        ErrorCode::ProcessingError,
        ErrorCode::TimeoutError,
        ErrorCode::ConfigurationError,
        ErrorCode::NotFound,
        ErrorCode::InvalidState,
        ErrorCode::StorageError,
        ErrorCode::Cancelled,
    ];

    /// The code's stable spelling, the same as its JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::ProcessingError => "PROCESSING_ERROR",
            ErrorCode::TimeoutError => "TIMEOUT_ERROR",
            ErrorCode::ConfigurationError => "CONFIGURATION_ERROR",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::StorageError => "STORAGE_ERROR",
            ErrorCode::Cancelled => "CANCELLED",
        }
    }

    /// Whether a failure with this code may succeed if tried again.
    ///
    /// True only for [`ProcessingError`](ErrorCode::ProcessingError) and
    /// [`TimeoutError`](ErrorCode::TimeoutError). Validation and configuration errors are never retried:
    /// the same input gives the same answer.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::ProcessingError | ErrorCode::TimeoutError)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// An error as recorded on a task ([`BatchTask::error`](crate::BatchTask::error)) or on an item's result.
///
/// `details` holds structured context (the field, the line, the offset...) as a JSON value; `null` when
/// there is none. `retryable` is what the recorder decided; [`TaskError::is_retryable`] also refuses
/// codes that are never retried, whatever a stored record says.
///
/// ```
/// use batch_model::{ErrorCode, TaskError};
///
/// let error = TaskError::new(ErrorCode::TimeoutError, "item 7 took longer than 30s")
///     .with_details(serde_json::json!({ "item": 7 }));
/// assert!(error.retryable);
/// assert_eq!(error.to_string(), "TIMEOUT_ERROR: item 7 took longer than 30s");
/// assert!(!error.not_retryable().is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// Structured context; `null` when there is none. May be omitted in JSON input.
    #[serde(default)]
    pub details: serde_json::Value,
    /// When the error happened.
    #[serde(with = "crate::timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

impl TaskError {
    /// An error with `code` and `message`, stamped now, with no details; retryable as
    /// [`ErrorCode::is_retryable`] says.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> TaskError {
        TaskError {
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            timestamp: Utc::now(),
            retryable: code.is_retryable(),
        }
    }

    /// The same error with structured `details`.
    #[must_use]
    pub fn with_details(self, details: serde_json::Value) -> TaskError {
        TaskError { details, ..self }
    }

    /// The same error stamped with `timestamp` instead of the time it was built.
    #[must_use]
    pub fn with_timestamp(self, timestamp: DateTime<Utc>) -> TaskError {
        TaskError { timestamp, ..self }
    }

    /// The same error, marked as not worth retrying (a processing failure known to be permanent).
    ///
    /// There is no way to mark an error retryable against its code.
    #[must_use]
    pub fn not_retryable(self) -> TaskError {
        TaskError { retryable: false, ..self }
    }

    /// Whether another attempt may succeed: the recorded flag, and only for a retryable code.
    pub fn is_retryable(&self) -> bool {
        self.retryable && self.code.is_retryable()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)
    }
}

/// An error's message followed by its causes', `a: b: c`, for a [`TaskError`]'s message: each cause
/// once. A cause whose text is already there (an error that prints its source in its own message
/// and also returns it as its source) is left out.
///
/// ```
/// use std::fmt;
///
/// #[derive(Debug)]
/// struct Read(std::io::Error);
/// impl fmt::Display for Read {
///     fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(formatter, "cannot read in.jsonl: {}", self.0) // prints its source...
///     }
/// }
/// impl std::error::Error for Read {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0) // ...and returns it
///     }
/// }
///
/// let error = Read(std::io::Error::other("disk on fire"));
/// assert_eq!(batch_model::message_with_causes(&error), "cannot read in.jsonl: disk on fire");
/// ```
pub fn message_with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        let text = source.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = source.source();
    }
    message
}

impl std::error::Error for TaskError {}

/// What this crate's checks return: a bad configuration, an illegal status change, a malformed name,
/// identifier or request.
///
/// Every variant maps to a stable [`ErrorCode`] through [`ModelError::code`], and converts to a
/// [`TaskError`] for recording.
///
/// ```
/// use batch_model::{BatchConfig, ErrorCode, ModelError};
///
/// let config = BatchConfig { batch_size: 0, ..BatchConfig::default() };
/// let error = config.validate().unwrap_err();
/// assert_eq!(error.code(), ErrorCode::ConfigurationError);
/// assert_eq!(error.to_string(), "invalid configuration: batch_size must be at least 1, got 0");
/// assert!(matches!(error, ModelError::InvalidConfig { ref field, .. } if field == "batch_size"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A configuration setting is out of bounds, has the wrong type, or is not a known setting.
    /// Code `CONFIGURATION_ERROR`.
    #[error("invalid configuration: {field} {reason}")]
    InvalidConfig {
        /// The setting's name as in JSON (`batch_size`), or `config` for the whole value.
        field: String,
        /// What is wrong, starting with a verb (`must be at least 1, got 0`).
        reason: String,
    },
    /// A status change the state machine does not allow. Code `INVALID_STATE`.
    #[error("invalid state transition from {from} to {to}")]
    InvalidTransition {
        /// The current status.
        from: TaskStatus,
        /// The requested status.
        to: TaskStatus,
    },
    /// A task type name that is empty, too long, not `[a-z0-9_]+`, or a built-in name given as a custom
    /// one. Code `VALIDATION_ERROR`.
    #[error("invalid task type {name:?}: {reason}")]
    InvalidTaskType {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A string that is not a task id (a UUID). Code `VALIDATION_ERROR`.
    #[error("invalid task id {value:?}")]
    InvalidTaskId {
        /// The rejected text.
        value: String,
        /// Why it is not a UUID.
        #[source]
        source: uuid::Error,
    },
    /// A string that is not one of the task statuses. Code `VALIDATION_ERROR`.
    #[error(
        "invalid task status {value:?}, expected one of pending, processing, completed, failed, cancelled"
    )]
    InvalidStatus {
        /// The rejected text.
        value: String,
    },
    /// A request field is out of bounds or inconsistent with another. Code `VALIDATION_ERROR`.
    #[error("invalid request: {field} {reason}")]
    InvalidRequest {
        /// The field's name as in JSON (`limit`).
        field: String,
        /// What is wrong, starting with a verb (`must be at most 1000, got 5000`).
        reason: String,
    },
}

impl ModelError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ModelError::InvalidConfig { .. } => ErrorCode::ConfigurationError,
            ModelError::InvalidTransition { .. } => ErrorCode::InvalidState,
            ModelError::InvalidTaskType { .. }
            | ModelError::InvalidTaskId { .. }
            | ModelError::InvalidStatus { .. }
            | ModelError::InvalidRequest { .. } => ErrorCode::ValidationError,
        }
    }

    /// The variant's context as a JSON object, for [`TaskError::details`].
    fn details(&self) -> serde_json::Value {
        match self {
            ModelError::InvalidConfig { field, reason } | ModelError::InvalidRequest { field, reason } => {
                serde_json::json!({ "field": field, "reason": reason })
            }
            ModelError::InvalidTransition { from, to } => serde_json::json!({ "from": from, "to": to }),
            ModelError::InvalidTaskType { name, reason } => {
                serde_json::json!({ "name": name, "reason": reason })
            }
            ModelError::InvalidTaskId { value, source } => {
                serde_json::json!({ "value": value, "reason": source.to_string() })
            }
            ModelError::InvalidStatus { value } => serde_json::json!({ "value": value }),
        }
    }
}

/// Records a model error on a task: its code, its message, its context as details, never retryable
/// (none of the model's errors goes away on a second try).
///
/// ```
/// use batch_model::{ErrorCode, ModelError, TaskError, TaskStatus};
///
/// let error = ModelError::InvalidTransition { from: TaskStatus::Completed, to: TaskStatus::Pending };
/// let recorded = TaskError::from(&error);
/// assert_eq!(recorded.code, ErrorCode::InvalidState);
/// assert_eq!(recorded.message, "invalid state transition from completed to pending");
/// assert_eq!(recorded.details, serde_json::json!({ "from": "completed", "to": "pending" }));
/// assert!(!recorded.retryable);
/// ```
impl From<&ModelError> for TaskError {
    fn from(error: &ModelError) -> TaskError {
        TaskError::new(error.code(), error.to_string()).with_details(error.details()).not_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serialises_as_its_spelling() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
            assert_eq!(code.to_string(), code.as_str());
        }
    }

    #[test]
    fn only_processing_and_timeout_errors_are_retryable() {
        let retryable: Vec<ErrorCode> =
            ErrorCode::ALL.into_iter().filter(|code| code.is_retryable()).collect();
        assert_eq!(retryable, [ErrorCode::ProcessingError, ErrorCode::TimeoutError]);
    }

    #[test]
    fn a_stored_retryable_flag_cannot_make_a_validation_error_retryable() {
        let mut error = TaskError::new(ErrorCode::ValidationError, "bad record");
        assert!(!error.retryable);
        error.retryable = true;
        assert!(!error.is_retryable());
    }

    #[test]
    fn every_model_error_has_the_code_of_its_kind() {
        let config =
            ModelError::InvalidConfig { field: "batch_size".into(), reason: "must be at least 1".into() };
        let transition = ModelError::InvalidTransition { from: TaskStatus::Failed, to: TaskStatus::Pending };
        let task_type = ModelError::InvalidTaskType { name: "X".into(), reason: "bad".into() };
        let status = ModelError::InvalidStatus { value: "done".into() };
        let request =
            ModelError::InvalidRequest { field: "limit".into(), reason: "must be at least 1".into() };
        assert_eq!(config.code(), ErrorCode::ConfigurationError);
        assert_eq!(transition.code(), ErrorCode::InvalidState);
        assert_eq!(task_type.code(), ErrorCode::ValidationError);
        assert_eq!(status.code(), ErrorCode::ValidationError);
        assert_eq!(request.code(), ErrorCode::ValidationError);
        let task_id = "nope".parse::<crate::TaskId>().unwrap_err();
        assert_eq!(task_id.code(), ErrorCode::ValidationError);
        assert!(std::error::Error::source(&task_id).is_some());
    }

    #[test]
    fn displays_are_lowercase_without_trailing_period() {
        let errors = [
            ModelError::InvalidConfig {
                field: "timeout".into(),
                reason: "must be at least 1ms, got 0s".into(),
            },
            ModelError::InvalidTransition { from: TaskStatus::Pending, to: TaskStatus::Completed },
            ModelError::InvalidRequest {
                field: "limit".into(),
                reason: "must be at most 1000, got 5000".into(),
            },
            ModelError::InvalidStatus { value: "done".into() },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.starts_with(char::is_lowercase), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }

    #[test]
    fn a_task_error_without_details_reads_back_from_json() {
        let json = serde_json::json!({
            "code": "PROCESSING_ERROR",
            "message": "upstream refused",
            "timestamp": "2024-05-01T12:00:00Z",
            "retryable": true,
        });
        let error: TaskError = serde_json::from_value(json).unwrap();
        assert_eq!(error.details, serde_json::Value::Null);
        assert!(error.is_retryable());
    }
}
