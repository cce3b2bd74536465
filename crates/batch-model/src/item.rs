//! Items flowing through a task ([`BatchItem`]) and the outcome of processing one ([`BatchResult`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::TaskError;

/// One input item with its identity and labels.
///
/// `id` identifies the item within its task (an order number, a line number...), so a failed item can be
/// found again in the dead-letter output.
///
/// ```
/// use batch_model::BatchItem;
/// use chrono::Utc;
///
/// let item = BatchItem::new("order-17", serde_json::json!({ "amount": "12.50" }), Utc::now());
/// let json = serde_json::to_value(&item).unwrap();
/// assert_eq!(json["id"], "order-17");
/// assert_eq!(json["data"]["amount"], "12.50");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem<T> {
    /// The item's identity within its task.
    pub id: String,
    /// The payload.
    pub data: T,
    /// When the item was read or created.
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// Free-form labels (source file, offset...). May be omitted in JSON input.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl<T> BatchItem<T> {
    /// An item with no metadata.
    pub fn new(id: impl Into<String>, data: T, created_at: DateTime<Utc>) -> BatchItem<T> {
        BatchItem { id: id.into(), data, created_at, metadata: BTreeMap::new() }
    }
}

/// The outcome of processing one item: its output on success, its error on failure.
///
/// Build it with [`BatchResult::succeeded`] or [`BatchResult::failed`], which keep `success`, `data`
/// and `error` consistent.
///
/// ```
/// use batch_model::{BatchResult, ErrorCode, TaskError};
/// use chrono::Utc;
///
/// let ok = BatchResult::succeeded("order-17", 1250u64, Utc::now());
/// assert!(ok.success && ok.error.is_none());
///
/// let error = TaskError::new(ErrorCode::ValidationError, "amount is missing");
/// let bad: BatchResult<u64> = BatchResult::failed("order-18", error, Utc::now());
/// assert!(!bad.success && bad.data.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult<T> {
    /// The id of the item this is the result of.
    pub id: String,
    /// The output, on success.
    pub data: Option<T>,
    /// When processing ended.
    #[serde(with = "crate::timestamp")]
    pub processed_at: DateTime<Utc>,
    /// Whether processing succeeded.
    pub success: bool,
    /// Why processing failed, on failure.
    pub error: Option<TaskError>,
}

impl<T> BatchResult<T> {
    /// A successful result carrying `data`.
    pub fn succeeded(id: impl Into<String>, data: T, processed_at: DateTime<Utc>) -> BatchResult<T> {
        BatchResult { id: id.into(), data: Some(data), processed_at, success: true, error: None }
    }

    /// A failed result carrying `error`.
    pub fn failed(id: impl Into<String>, error: TaskError, processed_at: DateTime<Utc>) -> BatchResult<T> {
        BatchResult { id: id.into(), data: None, processed_at, success: false, error: Some(error) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn item_metadata_may_be_omitted() {
        let json = serde_json::json!({ "id": "1", "data": 5, "created_at": "2023-11-14T22:13:20Z" });
        let item: BatchItem<u32> = serde_json::from_value(json).unwrap();
        assert_eq!(item, BatchItem::new("1", 5, at()));
    }

    #[test]
    fn a_failed_result_serialises_its_error() {
        let error = TaskError::new(ErrorCode::TimeoutError, "took too long").with_timestamp(at());
        let result: BatchResult<String> = BatchResult::failed("7", error, at());
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({
                "id": "7",
                "data": null,
                "processed_at": "2023-11-14T22:13:20Z",
                "success": false,
                "error": {
                    "code": "TIMEOUT_ERROR",
                    "message": "took too long",
                    "details": null,
                    "timestamp": "2023-11-14T22:13:20Z",
                    "retryable": true,
                },
            })
        );
    }
}
