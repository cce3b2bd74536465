//! The batch process kind's errors: [`BatchProcessError`] (bad params, a bound passed, an unreadable
//! checkpoint state: the task fails), [`RecordIssue`] (one bad record: it goes to the dead letters)
//! and [`FilterError`] (a filter expression that does not parse, with the column of the bad token).

use std::fmt;

use batch_model::{ErrorCode, TaskError};
use serde_json::{Value, json};

use crate::batch_process::config::PARAMS;

/// Why a batch process task cannot start or go on. Every variant maps to a stable code
/// ([`BatchProcessError::code`]) and converts to a [`TaskError`] for recording.
///
/// ```
/// use batch_model::ErrorCode;
/// use batch_tasks::batch_process::BatchProcess;
/// use serde_json::json;
///
/// let params = json!({ "input": "in.jsonl", "output": "out.jsonl", "filter": "amount >= && region == \"华东\"" });
/// let error = BatchProcess::from_params(&params).unwrap_err();
/// assert_eq!(error.code(), ErrorCode::ConfigurationError);
/// assert_eq!(error.to_string(), "filter: expected a value after '>=', found '&&' at column 11");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchProcessError {
    /// The params are not a JSON object. Code `CONFIGURATION_ERROR`.
    #[error("params must be a JSON object, got {found}")]
    ParamsNotAnObject {
        /// What they are instead (`an array`, `null`...).
        found: &'static str,
    },
    /// A param this kind does not know (a typo, usually). Code `CONFIGURATION_ERROR`.
    #[error("unknown param `{name}`; the known params are {}", PARAMS.join(", "))]
    UnknownParam {
        /// The param's name.
        name: String,
    },
    /// A param is missing, has the wrong type or an invalid value. Code `CONFIGURATION_ERROR`.
    #[error("{param}: {reason}")]
    InvalidParam {
        /// The param's name, as in the params object.
        param: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The `filter` param does not parse. Code `CONFIGURATION_ERROR`. (The parse error is the
    /// message, shown in full rather than as a separate cause.)
    #[error("filter: {error}")]
    Filter {
        /// Where and why the expression does not parse.
        error: FilterError,
    },
    /// More distinct dedup keys than `dedup_max_keys`. Code `CONFIGURATION_ERROR`: the bound has to
    /// be raised.
    #[error("dedup_key: more than {max_keys} distinct keys; raise dedup_max_keys")]
    TooManyKeys {
        /// The bound.
        max_keys: usize,
    },
    /// More groups than `max_groups`. Code `CONFIGURATION_ERROR`: the bound has to be raised.
    #[error("group_by: more than {max_groups} groups; raise max_groups")]
    TooManyGroups {
        /// The bound.
        max_groups: usize,
    },
    /// A sum passed the exact decimal range (about ±7.9 × 10²⁸). Code `PROCESSING_ERROR`, not
    /// retryable.
    #[error("aggregate `{aggregate}` of group {group} exceeds the exact decimal range")]
    AggregateOverflow {
        /// The aggregate's output name (`sum_amount`).
        aggregate: String,
        /// The group's key, as canonical JSON (`["华东"]`).
        group: String,
    },
    /// The dedup or group-by state of a checkpoint cannot be read back, or does not fit the params.
    /// Code `STORAGE_ERROR`.
    #[error("checkpoint state cannot be restored: {reason}")]
    InvalidState {
        /// What is wrong with it.
        reason: String,
    },
}

impl BatchProcessError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BatchProcessError::ParamsNotAnObject { .. }
            | BatchProcessError::UnknownParam { .. }
            | BatchProcessError::InvalidParam { .. }
            | BatchProcessError::Filter { .. }
            | BatchProcessError::TooManyKeys { .. }
            | BatchProcessError::TooManyGroups { .. } => ErrorCode::ConfigurationError,
            BatchProcessError::AggregateOverflow { .. } => ErrorCode::ProcessingError,
            BatchProcessError::InvalidState { .. } => ErrorCode::StorageError,
        }
    }

    /// The param this error is about, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            BatchProcessError::ParamsNotAnObject { .. } | BatchProcessError::InvalidState { .. } => None,
            BatchProcessError::UnknownParam { name } => Some(name),
            BatchProcessError::InvalidParam { param, .. } => Some(param),
            BatchProcessError::Filter { .. } => Some("filter"),
            BatchProcessError::TooManyKeys { .. } => Some("dedup_max_keys"),
            BatchProcessError::TooManyGroups { .. } => Some("max_groups"),
            BatchProcessError::AggregateOverflow { .. } => Some("aggregates"),
        }
    }

    fn details(&self) -> Value {
        match self {
            BatchProcessError::ParamsNotAnObject { found } => json!({ "found": found }),
            BatchProcessError::UnknownParam { name } => json!({ "param": name, "known": PARAMS }),
            BatchProcessError::InvalidParam { param, reason } => json!({ "param": param, "reason": reason }),
            BatchProcessError::Filter { error } => json!({
                "param": "filter",
                "reason": error.kind.to_string(),
                "column": error.column,
                "offset": error.offset,
                "caret": error.caret(),
            }),
            BatchProcessError::TooManyKeys { max_keys } => {
                json!({ "param": "dedup_max_keys", "max_keys": max_keys })
            }
            BatchProcessError::TooManyGroups { max_groups } => {
                json!({ "param": "max_groups", "max_groups": max_groups })
            }
            BatchProcessError::AggregateOverflow { aggregate, group } => {
                json!({ "aggregate": aggregate, "group": group })
            }
            BatchProcessError::InvalidState { reason } => json!({ "reason": reason }),
        }
    }
}

/// Records the error on a task: its code, message and context as details; never retryable (the
/// same params and data fail the same way).
///
/// ```
/// use batch_model::{ErrorCode, TaskError};
/// use batch_tasks::batch_process::BatchProcess;
/// use serde_json::json;
///
/// let params = json!({ "input": "in.csv", "output": "out.csv", "filter": "amount >= 100 &&" });
/// let error = TaskError::from(&BatchProcess::from_params(&params).unwrap_err());
/// assert_eq!(error.code, ErrorCode::ConfigurationError);
/// assert_eq!(error.details["column"], 17);
/// assert_eq!(error.details["caret"], "amount >= 100 &&\n                ^");
/// ```
impl From<&BatchProcessError> for TaskError {
    fn from(error: &BatchProcessError) -> TaskError {
        TaskError::new(error.code(), error.to_string()).with_details(error.details()).not_retryable()
    }
}

/// Why one record cannot be processed. The record goes to the dead letters with code
/// `VALIDATION_ERROR`; the task goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordIssue {
    /// The record is not a JSON object (a JSON-lines file may hold any JSON value per line).
    #[error("record is {found}, not a JSON object")]
    NotAnObject {
        /// What it is (`an array`, `a number`...).
        found: &'static str,
    },
    /// An aggregated field holds something that is not a number.
    #[error("field `{field}` is not a number: {value}")]
    NotANumber {
        /// The field's path.
        field: String,
        /// The value, as JSON, cut to 64 characters.
        value: String,
    },
    /// An aggregated field holds a number too large or too precise to add up exactly.
    #[error("field `{field}` is outside the exact decimal range: {value}")]
    OutOfRange {
        /// The field's path.
        field: String,
        /// The value, as JSON, cut to 64 characters.
        value: String,
    },
    /// A field of the dedup key has no value (missing, `null` or blank).
    #[error("dedup key field `{field}` has no value")]
    MissingKey {
        /// The field's path.
        field: String,
    },
    /// A rename target cannot be written: a value on its way is not an object.
    #[error("rename: cannot put `{from}` at `{to}`: a field on the way is not an object")]
    RenameConflict {
        /// The renamed field.
        from: String,
        /// Where it was to go.
        to: String,
    },
}

impl RecordIssue {
    /// The stable code of a record issue: always `VALIDATION_ERROR` (the same record fails the
    /// same way on every try).
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ValidationError
    }

    /// The field the issue is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            RecordIssue::NotAnObject { .. } => None,
            RecordIssue::NotANumber { field, .. }
            | RecordIssue::OutOfRange { field, .. }
            | RecordIssue::MissingKey { field } => Some(field),
            RecordIssue::RenameConflict { from, .. } => Some(from),
        }
    }

    fn details(&self) -> Value {
        match self {
            RecordIssue::NotAnObject { found } => json!({ "found": found }),
            RecordIssue::NotANumber { field, value } | RecordIssue::OutOfRange { field, value } => {
                json!({ "field": field, "value": value })
            }
            RecordIssue::MissingKey { field } => json!({ "field": field }),
            RecordIssue::RenameConflict { from, to } => json!({ "field": from, "to": to }),
        }
    }
}

/// Records the issue for a dead letter.
///
/// ```
/// use batch_model::{ErrorCode, TaskError};
/// use batch_tasks::batch_process::RecordIssue;
///
/// let issue = RecordIssue::MissingKey { field: "id".to_owned() };
/// let error = TaskError::from(&issue);
/// assert_eq!((error.code, error.message.as_str()), (ErrorCode::ValidationError, "dedup key field `id` has no value"));
/// assert_eq!(error.details["field"], "id");
/// ```
impl From<&RecordIssue> for TaskError {
    fn from(issue: &RecordIssue) -> TaskError {
        TaskError::new(issue.code(), issue.to_string()).with_details(issue.details())
    }
}

/// A filter expression that does not parse: why, and where (the bad token's byte offset and
/// 1-based character column). Its `Display` is `{kind} at column {column}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at column {column}")]
pub struct FilterError {
    /// What is wrong.
    pub kind: FilterErrorKind,
    /// The byte offset of the bad token (the expression's length at its end).
    pub offset: usize,
    /// The 1-based column of the bad token, counting characters (`华东` is two columns).
    pub column: usize,
    /// The whole expression.
    pub expression: String,
}

impl FilterError {
    /// An error of `kind` at byte `offset` of `expression`.
    pub(crate) fn new(kind: FilterErrorKind, offset: usize, expression: &str) -> FilterError {
        let offset = expression.floor_char_boundary(offset);
        let column = expression[..offset].chars().count() + 1;
        FilterError { kind, offset, column, expression: expression.to_owned() }
    }

    /// The expression on one line (line breaks and tabs as spaces) and a caret under the bad token
    /// on the next, one column per character.
    ///
    /// ```
    /// use batch_tasks::batch_process::FilterExpr;
    ///
    /// let error = FilterExpr::parse("region = \"华东\"").unwrap_err();
    /// assert_eq!(error.to_string(), "unexpected character '=' (did you mean '=='?) at column 8");
    /// assert_eq!(error.caret(), "region = \"华东\"\n       ^");
    /// ```
    pub fn caret(&self) -> String {
        let line: String = self
            .expression
            .chars()
            .map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c })
            .collect();
        format!("{line}\n{}^", " ".repeat(self.column - 1))
    }
}

/// Why a filter expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// A character that starts no token; `suggestion` is the operator probably meant (`==` for `=`).
    UnexpectedCharacter {
        /// The character.
        character: char,
        /// The operator probably meant.
        suggestion: Option<&'static str>,
    },
    /// A string literal without its closing quote (the column is the opening quote's).
    UnterminatedString,
    /// A backslash escape a string literal cannot hold (the column is the backslash's).
    InvalidEscape {
        /// The escape as written (`\q`, `\u12`).
        escape: String,
    },
    /// A token that starts like a number but is not one (`1.2.3`, `12abc`, `5.`).
    InvalidNumber {
        /// The token as written.
        text: String,
    },
    /// A dot not followed by a field name (`customer.`, `a..b`).
    ExpectedFieldName,
    /// A backquoted field name without its closing backquote.
    UnterminatedName,
    /// A backquoted field name with nothing inside.
    EmptyName,
    /// The parser expected something else here.
    Expected {
        /// What it expected (`a value after '>='`).
        expected: String,
        /// What it found (`'&&'`, `end of input`, `field `and` (use '&&')`).
        found: String,
    },
    /// A second comparison right after one (`a < b < c`).
    ChainedComparison {
        /// The second operator.
        operator: String,
    },
    /// Parentheses or `!` nested deeper than the parser allows.
    TooDeep {
        /// The deepest nesting allowed.
        limit: usize,
    },
}

impl fmt::Display for FilterErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterErrorKind::UnexpectedCharacter { character, suggestion } => {
                write!(f, "unexpected character {character:?}")?;
                match suggestion {
                    Some(operator) => write!(f, " (did you mean '{operator}'?)"),
                    None => Ok(()),
                }
            }
            FilterErrorKind::UnterminatedString => f.write_str("unterminated string"),
            FilterErrorKind::InvalidEscape { escape } => write!(f, "invalid escape '{escape}' in string"),
            FilterErrorKind::InvalidNumber { text } => write!(f, "invalid number '{text}'"),
            FilterErrorKind::ExpectedFieldName => f.write_str("expected a field name after '.'"),
            FilterErrorKind::UnterminatedName => f.write_str("unterminated quoted field name"),
            FilterErrorKind::EmptyName => f.write_str("empty quoted field name"),
            FilterErrorKind::Expected { expected, found } => write!(f, "expected {expected}, found {found}"),
            FilterErrorKind::ChainedComparison { operator } => {
                write!(
                    f,
                    "comparisons cannot be chained: '{operator}' follows a comparison (join them with '&&')"
                )
            }
            FilterErrorKind::TooDeep { limit } => {
                write!(f, "expression nested more than {limit} levels deep")
            }
        }
    }
}

/// `value` as JSON text, cut to 64 characters (with `…` when cut), for messages.
pub(crate) fn short_json(value: &Value) -> String {
    const LIMIT: usize = 64;
    let text = value.to_string();
    if text.chars().count() <= LIMIT {
        return text;
    }
    let mut cut: String = text.chars().take(LIMIT).collect();
    cut.push('…');
    cut
}
