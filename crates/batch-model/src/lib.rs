//! `batch-model`: the data model of the pump batch system — tasks, their configs, statuses, progress,
//! metrics and error codes, and the requests and responses of the manager's calls.
//!
//! Types, serde and validation only: no async, no I/O, no storage (checked by `cargo xtask deps`). The
//! other batch crates, the CLI and a future HTTP API all speak these types.
//!
//! ```
//! use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskStatus, TransitionCause};
//! use chrono::Utc;
//!
//! let request: CreateTaskRequest = serde_json::from_str(
//!     r#"{ "task_type": "batch_process", "config": { "batch_size": 1000, "timeout": "5s" },
//!          "params": { "input": "sales.csv", "filter": "amount >= 100" } }"#,
//! )?;
//! let mut task = BatchTask::new(TaskId::new(), request, Utc::now())?;
//! task.transition(TaskStatus::Processing, TransitionCause::Requested, Utc::now())?;
//!
//! let json = serde_json::to_value(&task)?;
//! assert_eq!(json["task_type"], "batch_process");
//! assert_eq!(json["status"], "processing");
//! assert_eq!(json["config"]["timeout"], "5s");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Key design decisions
//!
//! - **The Go original's JSON.** Field names and enum values are snake_case (`task_type`,
//!   `"youzan_order"`, `"processing"`); error codes are SCREAMING_SNAKE_CASE (`"VALIDATION_ERROR"`).
//!   Every field is always written (`null` when absent); optional fields may be omitted on input.
//! - **An explicit state machine.** [`TaskStatus::can_transition`] is the one place that says which
//!   status changes are legal; a change needs a [`TransitionCause`], so `processing -> pending` is legal
//!   only when a worker's lease expired. An illegal change is an `INVALID_STATE` error, never an
//!   overwrite; a same-status change is illegal too.
//! - **Validated at the edge.** A [`BatchConfig`] read from JSON is within documented bounds, and a
//!   bad one is a `CONFIGURATION_ERROR` naming the setting, including for negative numbers
//!   ([`BatchConfig::from_json`]). Task type names, ids and requests have `validate`/`FromStr`.
//! - **Time-ordered ids.** [`TaskId`] is a UUID v7, so ids sort by creation.
//! - **One duration format.** Every `Duration` is written as a humantime string (`"30s"`,
//!   `"1m 30s 500ms"`), readable and exact; input may also be an integer number of milliseconds.
//!   Timestamps are `chrono::DateTime<Utc>`, written in RFC 3339.
//! - **Callers own the clock.** Functions that record a time take it as an argument
//!   ([`BatchTask::new`], [`BatchTask::transition`], [`BatchItem::new`]), so the manager can use an
//!   injected clock. The two conveniences that stamp "now", [`TaskError::new`] and
//!   [`Progress::compute`], leave the time in a public field to override.
//! - **Plain public fields.** The records are data, as in the original; the invariants live in
//!   constructors, `validate` methods and [`BatchTask::transition`].
//! - **A closed vocabulary of codes.** Every error maps to an [`ErrorCode`]; only `PROCESSING_ERROR` and
//!   `TIMEOUT_ERROR` are retryable.

mod api;
mod attached;
mod checkpoint;
mod config;
mod duration;
mod error;
mod id;
mod item;
mod metrics;
mod progress;
mod status;
mod task;
mod timestamp;

pub use api::{
    CreateTaskRequest, CreateTaskResponse, GetTaskRequest, GetTaskResponse, ListTasksRequest,
    ListTasksResponse, StopTaskOptions, StopTaskRequest, StopTaskResponse, TaskResultResponse,
    TaskStatusResponse, TaskSummary, UpdateTaskStatusRequest,
};
pub use attached::{AttachedInput, AttachedWrite, CheckpointCommit, DatabaseIdentity};
pub use checkpoint::{Checkpoint, Counters};
pub use config::{BatchConfig, Durability, json_kind};
pub use duration::DurationText;
pub use error::{ErrorCode, ModelError, TaskError, message_with_causes};
pub use id::TaskId;
pub use item::{BatchItem, BatchResult};
pub use metrics::{BatchMetrics, ProcessingMetrics, StatusCount};
pub use progress::Progress;
pub use status::{TaskStatus, TransitionCause};
pub use task::{AttemptRecord, BatchTask, Partition, TaskType};
pub use timestamp::TimestampText;
