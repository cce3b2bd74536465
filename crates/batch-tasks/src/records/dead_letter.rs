//! The dead-letter file's record: a rejected input record with where it was and why.

use batch_model::ErrorCode;
use serde::{Deserialize, Serialize};

use super::job::ItemError;

/// One line of a task's dead-letter file (JSON lines): an input record that was malformed, rejected by
/// the kind, or failed every attempt.
///
/// ```
/// use batch_model::ErrorCode;
/// use batch_tasks::records::DeadLetterRecord;
///
/// let line = r#"{"line":3,"offset":52,"code":"VALIDATION_ERROR","message":"expected value at column 1","field":null,"raw":"oops"}"#;
/// let record: DeadLetterRecord = serde_json::from_str(line)?;
/// assert_eq!((record.line, record.code), (3, ErrorCode::ValidationError));
/// assert_eq!(serde_json::to_string(&record)?, line);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// The record's 1-based line in the input.
    pub line: u64,
    /// The record's byte offset in the input.
    pub offset: u64,
    /// Why it was rejected: `VALIDATION_ERROR` for a malformed or invalid record, the last attempt's
    /// code (`PROCESSING_ERROR`, `TIMEOUT_ERROR`) for one that kept failing.
    pub code: ErrorCode,
    /// What was wrong, for people.
    pub message: String,
    /// The offending field, when the kind named one.
    pub field: Option<String>,
    /// The record's text (for a line that could not be read as text, its first KiB with invalid
    /// UTF-8 replaced).
    pub raw: String,
}

impl DeadLetterRecord {
    /// The dead letter of the record at `line` and `offset`, rejected with `error`.
    pub(crate) fn new(line: u64, offset: u64, error: ItemError, raw: String) -> DeadLetterRecord {
        DeadLetterRecord { line, offset, code: error.code, message: error.message, field: error.field, raw }
    }
}
