//! [`DeadLetterRecord`]: an invalid record as written to the dead-letter output.

use batch_model::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::youzan::error::{IssueKind, YouzanIssue};

/// One invalid record in the dead-letter output (one JSON line each): where it was, why it is
/// invalid, and the original line.
///
/// ```
/// use batch_tasks::youzan::{DeadLetterRecord, YouzanProcessor};
///
/// let processor = YouzanProcessor::with_defaults();
/// let issue = processor.process_line("[1, 2]").unwrap_err();
/// let record = DeadLetterRecord::new(7, 512, "[1, 2]", &issue);
/// assert_eq!(
///     serde_json::to_string(&record).unwrap(),
///     r#"{"line":7,"offset":512,"code":"VALIDATION_ERROR","kind":"not_an_object","field":"record","message":"record is not a JSON object, got an array","raw":"[1, 2]"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// The 1-based line number of the record.
    pub line: u64,
    /// The byte offset where the line starts.
    pub offset: u64,
    /// The error code (`VALIDATION_ERROR`).
    pub code: ErrorCode,
    /// Why, as one of a closed set.
    pub kind: IssueKind,
    /// The offending field's path, or `record`.
    pub field: String,
    /// What is wrong, naming the field.
    pub message: String,
    /// The original line, without its newline.
    pub raw: String,
}

impl DeadLetterRecord {
    /// The dead letter for the line `raw`, found at `line` and `offset`, rejected with `issue`.
    pub fn new(line: u64, offset: u64, raw: impl Into<String>, issue: &YouzanIssue) -> DeadLetterRecord {
        DeadLetterRecord {
            line,
            offset,
            code: issue.code,
            kind: issue.kind,
            field: issue.field.clone(),
            message: issue.message.clone(),
            raw: raw.into(),
        }
    }
}
