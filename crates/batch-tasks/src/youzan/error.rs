//! The `youzan_order` kind's errors: [`YouzanIssue`] (why one record is invalid, code
//! `VALIDATION_ERROR`) and [`YouzanError`] (why the task cannot run, code `CONFIGURATION_ERROR`).

use std::path::PathBuf;

use batch_model::{ErrorCode, TaskError};
use serde::{Deserialize, Serialize};

/// The closed set of reasons a record is invalid. Each [`YouzanIssue`] carries one.
///
/// Serialised in `snake_case` (`"unknown_status"`), as it appears in dead-letter records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssueKind {
    /// The line is empty or holds only whitespace.
    BlankLine,
    /// The line is not valid JSON (or not valid UTF-8, or names a field twice).
    InvalidJson,
    /// The line is JSON but not an object.
    NotAnObject,
    /// A required field is absent or `null`.
    Missing,
    /// A field holds the wrong kind of JSON value (a money field written as a number, an object that
    /// is a string...).
    WrongType,
    /// `orders` is an empty array.
    EmptyOrders,
    /// A required text (`tid`, a line item's `title`) is empty or only whitespace.
    EmptyText,
    /// `status` is not one of the listed values (the comparison is case-sensitive).
    UnknownStatus,
    /// A date and time is not `YYYY-MM-DD HH:MM:SS`, or not a real one (30 February, 24:00:00).
    InvalidDateTime,
    /// A money field is not a decimal string (empty, a sign, an exponent, too large...).
    InvalidMoney,
    /// A money field is negative.
    NegativeMoney,
    /// A money field has more than two fraction digits.
    TooManyFractionDigits,
    /// A line item's `num` is below 1.
    InvalidQuantity,
}

impl IssueKind {
    /// Every kind, in declaration order.
    pub const ALL: [IssueKind; 13] = [
        IssueKind::BlankLine,
        IssueKind::InvalidJson,
        IssueKind::NotAnObject,
        IssueKind::Missing,
        IssueKind::WrongType,
        IssueKind::EmptyOrders,
        IssueKind::EmptyText,
        IssueKind::UnknownStatus,
        IssueKind::InvalidDateTime,
        IssueKind::InvalidMoney,
        IssueKind::NegativeMoney,
        IssueKind::TooManyFractionDigits,
        IssueKind::InvalidQuantity,
    ];
}

/// Why one record is invalid: it goes to the dead-letter output with this code, field and message.
///
/// `field` is the path of the offending field relative to the `full_order_info` object
/// (`order_info.created`, `orders[2].num`), or `record` when the line as a whole is wrong (blank,
/// not JSON, not an object). The message names the field too, so it reads on its own.
///
/// ```
/// use batch_model::ErrorCode;
/// use batch_tasks::youzan::{IssueKind, YouzanProcessor};
///
/// let processor = YouzanProcessor::with_defaults();
/// let line = r#"{"order_info": {"tid": "E1", "status": "TRADE_PAID", "created": "2023-02-29 10:00:00"},
///               "pay_info": {"payment": "9.90"}, "orders": [{"title": "牛奶", "num": 1, "payment": "9.90"}]}"#;
/// let issue = processor.process_line(line).unwrap_err();
/// assert_eq!(issue.code, ErrorCode::ValidationError);
/// assert_eq!(issue.kind, IssueKind::InvalidDateTime);
/// assert_eq!(issue.field, "order_info.created");
/// assert_eq!(issue.to_string(), r#"order_info.created is not a real date and time: "2023-02-29 10:00:00""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct YouzanIssue {
    /// Always [`ErrorCode::ValidationError`].
    pub code: ErrorCode,
    /// Why, as one of a closed set.
    pub kind: IssueKind,
    /// The offending field's path, or `record` for the line as a whole.
    pub field: String,
    /// What is wrong, for people; starts with the field's path.
    pub message: String,
}

impl YouzanIssue {
    /// An issue of `kind` on `field`; the message is the field followed by `complaint`.
    pub(crate) fn new(
        kind: IssueKind,
        field: impl std::fmt::Display,
        complaint: impl std::fmt::Display,
    ) -> Self {
        let field = field.to_string();
        let message = format!("{field} {complaint}");
        YouzanIssue { code: ErrorCode::ValidationError, kind, field, message }
    }

    /// An issue with the line as a whole (field `record`).
    pub(crate) fn record(kind: IssueKind, complaint: impl std::fmt::Display) -> Self {
        YouzanIssue::new(kind, "record", complaint)
    }
}

/// Records an invalid record as a task error (for item results and logs): its code, message, and the
/// kind and field as details; never retryable.
impl From<&YouzanIssue> for TaskError {
    fn from(issue: &YouzanIssue) -> TaskError {
        TaskError::new(issue.code, issue.message.clone())
            .with_details(serde_json::json!({ "kind": issue.kind, "field": issue.field }))
            .not_retryable()
    }
}

/// Why a `youzan_order` task cannot run: a bad parameter, or a rules or provinces file that cannot be
/// read or is not valid. Every variant has code `CONFIGURATION_ERROR` and names the parameter. (What
/// fails during a run, the chunk runner reports.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum YouzanError {
    /// A parameter is missing, of the wrong type, or not a known parameter.
    #[error("invalid parameter {param}: {reason}")]
    InvalidParam {
        /// The parameter's name (`input`, `rules`...), or `params` for the whole object.
        param: String,
        /// What is wrong, starting with a verb or an adjective (`is required`).
        reason: String,
    },
    /// A file named by a parameter cannot be read.
    #[error("cannot read the {param} file {}", path.display())]
    ReadFile {
        /// The parameter naming the file (`rules`, `provinces`).
        param: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The category rules are not valid (bad JSON, an empty keyword, an unknown match field...).
    #[error("invalid category rules{}: {reason}", path_suffix(path.as_ref()))]
    InvalidRules {
        /// The file, when the rules came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// The provinces table is not valid (bad CSV, a code that is not two digits, a duplicate name...).
    #[error("invalid provinces table{}: {reason}", path_suffix(path.as_ref()))]
    InvalidProvinces {
        /// The file, when the table came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
}

fn path_suffix(path: Option<&PathBuf>) -> String {
    path.map(|path| format!(" in {}", path.display())).unwrap_or_default()
}

impl YouzanError {
    /// The stable code of this error: always `CONFIGURATION_ERROR`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ConfigurationError
    }

    /// The parameter this error is about.
    pub fn param(&self) -> &str {
        match self {
            YouzanError::InvalidParam { param, .. } => param,
            YouzanError::ReadFile { param, .. } => param,
            YouzanError::InvalidRules { .. } => "rules",
            YouzanError::InvalidProvinces { .. } => "provinces",
        }
    }
}

/// Records the error on a task: its code, its message with its causes, and the parameter as details;
/// never retryable.
///
/// ```
/// use batch_model::{ErrorCode, TaskError};
/// use batch_tasks::youzan::YouzanParams;
///
/// let error = YouzanParams::from_json(&serde_json::json!({ "output": "out.jsonl" })).unwrap_err();
/// let recorded = TaskError::from(&error);
/// assert_eq!(recorded.code, ErrorCode::ConfigurationError);
/// assert_eq!(recorded.details["param"], "input");
/// ```
impl From<&YouzanError> for TaskError {
    fn from(error: &YouzanError) -> TaskError {
        TaskError::new(error.code(), batch_model::message_with_causes(error))
            .with_details(serde_json::json!({ "param": error.param() }))
            .not_retryable()
    }
}
