//! Requests and responses of the manager's calls (create, get, status, update status, list, stop),
//! serde-ready for an HTTP API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{BatchConfig, json_kind};
use crate::error::{ModelError, TaskError};
use crate::id::TaskId;
use crate::progress::Progress;
use crate::status::TaskStatus;
use crate::task::{BatchTask, TaskType};

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn invalid(field: &str, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidRequest { field: field.to_owned(), reason: reason.into() }
}

/// Create a task. `config` defaults to [`BatchConfig::default`]; `params` (the kind's own settings) to
/// `{}`; `metadata` to none. Only `task_type` is required in JSON.
///
/// ```
/// use batch_model::{CreateTaskRequest, TaskType};
///
/// let request: CreateTaskRequest = serde_json::from_str(
///     r#"{ "task_type": "youzan_order", "config": { "batch_size": 200 },
///          "params": { "input": "trades.jsonl" } }"#,
/// )?;
/// assert_eq!(request.task_type, TaskType::YouzanOrder);
/// assert_eq!(request.config_or_default().batch_size, 200);
/// assert!(request.validate().is_ok());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTaskRequest {
    /// Which kind runs the task.
    pub task_type: TaskType,
    /// How it runs; `None` for the default.
    #[serde(default)]
    pub config: Option<BatchConfig>,
    /// The kind's own settings; must be a JSON object.
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// Free-form labels; keys must not be empty.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl CreateTaskRequest {
    /// A request for `task_type` with the default config, empty params and no metadata.
    pub fn new(task_type: TaskType) -> CreateTaskRequest {
        CreateTaskRequest { task_type, config: None, params: empty_object(), metadata: BTreeMap::new() }
    }

    /// The same request with `config`.
    #[must_use]
    pub fn with_config(self, config: BatchConfig) -> CreateTaskRequest {
        CreateTaskRequest { config: Some(config), ..self }
    }

    /// The same request with `params`.
    #[must_use]
    pub fn with_params(self, params: serde_json::Value) -> CreateTaskRequest {
        CreateTaskRequest { params, ..self }
    }

    /// The config the task will run with: the given one or the default.
    pub fn config_or_default(&self) -> BatchConfig {
        self.config.clone().unwrap_or_default()
    }

    /// Checks the task type ([`TaskType::validate`]), the config ([`BatchConfig::validate`],
    /// `CONFIGURATION_ERROR`), that `params` is a JSON object and that no metadata key is empty
    /// ([`ModelError::InvalidRequest`], `VALIDATION_ERROR`).
    ///
    /// ```
    /// use batch_model::{CreateTaskRequest, TaskType};
    ///
    /// let request = CreateTaskRequest::new(TaskType::Train).with_params(serde_json::json!("iris.csv"));
    /// assert_eq!(
    ///     request.validate().unwrap_err().to_string(),
    ///     "invalid request: params must be a JSON object, got a string",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ModelError> {
        self.task_type.validate()?;
        if let Some(config) = &self.config {
            config.validate()?;
        }
        if !self.params.is_object() {
            return Err(invalid("params", format!("must be a JSON object, got {}", json_kind(&self.params))));
        }
        if self.metadata.contains_key("") {
            return Err(invalid("metadata", "keys must not be empty"));
        }
        Ok(())
    }
}

/// The answer to a create: the new task's id, status (`pending`) and creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTaskResponse {
    /// The new task's id.
    pub id: TaskId,
    /// Its status.
    pub status: TaskStatus,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

impl From<&BatchTask> for CreateTaskResponse {
    fn from(task: &BatchTask) -> CreateTaskResponse {
        CreateTaskResponse { id: task.id, status: task.status, created_at: task.created_at }
    }
}

/// Fetch one task (also the request of a status call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTaskRequest {
    /// The task's id.
    pub id: TaskId,
}

/// The answer to a get: the whole task record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetTaskResponse {
    /// The task.
    pub task: BatchTask,
}

impl From<BatchTask> for GetTaskResponse {
    fn from(task: BatchTask) -> GetTaskResponse {
        GetTaskResponse { task }
    }
}

/// The answer to a status call: the parts of a task that change while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatusResponse {
    /// The task's id.
    pub id: TaskId,
    /// Its status.
    pub status: TaskStatus,
    /// Its progress.
    pub progress: Progress,
    /// Its error, if it failed or was cancelled with one.
    pub error: Option<TaskError>,
}

impl From<&BatchTask> for TaskStatusResponse {
    fn from(task: &BatchTask) -> TaskStatusResponse {
        TaskStatusResponse {
            id: task.id,
            status: task.status,
            progress: task.progress.clone(),
            error: task.error.clone(),
        }
    }
}

/// Change a task's status (subject to the state machine), optionally recording an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateTaskStatusRequest {
    /// The task's id.
    pub id: TaskId,
    /// The status to move to.
    pub status: TaskStatus,
    /// Why, for `failed` or `cancelled`. May be omitted in JSON.
    #[serde(default)]
    pub error: Option<TaskError>,
}

impl UpdateTaskStatusRequest {
    /// Checks that an error comes only with `failed` or `cancelled`: a task that is pending, processing
    /// or completed has no error to record. Whether the status change itself is legal depends on the
    /// task's current status, which the manager checks.
    ///
    /// ```
    /// use batch_model::{ErrorCode, TaskError, TaskId, TaskStatus, UpdateTaskStatusRequest};
    ///
    /// let error = TaskError::new(ErrorCode::ProcessingError, "boom");
    /// let request =
    ///     UpdateTaskStatusRequest { id: TaskId::new(), status: TaskStatus::Completed, error: Some(error) };
    /// assert_eq!(
    ///     request.validate().unwrap_err().to_string(),
    ///     "invalid request: error is only allowed with status failed or cancelled, not completed",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ModelError> {
        let error_allowed = matches!(self.status, TaskStatus::Failed | TaskStatus::Cancelled);
        if self.error.is_some() && !error_allowed {
            return Err(invalid(
                "error",
                format!("is only allowed with status failed or cancelled, not {}", self.status),
            ));
        }
        Ok(())
    }
}

/// List tasks, filtered by status and type, newest first (as the issue and the stores order them), a page at a time.
///
/// In JSON every field may be omitted: no filter, `limit` 50, `offset` 0.
///
/// ```
/// use batch_model::{ListTasksRequest, TaskStatus};
///
/// let request: ListTasksRequest = serde_json::from_str(r#"{ "status": "failed" }"#)?;
/// assert_eq!(request.status, Some(TaskStatus::Failed));
/// assert_eq!((request.limit, request.offset), (50, 0));
/// assert!(request.validate().is_ok());
///
/// let too_many = ListTasksRequest { limit: 5000, ..ListTasksRequest::default() };
/// assert_eq!(
///     too_many.validate().unwrap_err().to_string(),
///     "invalid request: limit must be at most 1000, got 5000",
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTasksRequest {
    /// Only tasks in this status.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Only tasks of this kind.
    #[serde(default)]
    pub task_type: Option<TaskType>,
    /// Only the partitions (child tasks) of this task.
    #[serde(default)]
    pub parent_id: Option<TaskId>,
    /// Page size, 1 ..= [`LIMIT_MAX`](ListTasksRequest::LIMIT_MAX).
    #[serde(default = "ListTasksRequest::default_limit")]
    pub limit: u32,
    /// Matching tasks to skip before the page.
    #[serde(default)]
    pub offset: u64,
}

impl ListTasksRequest {
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const LIMIT_MAX: u32 = 1000;

    fn default_limit() -> u32 {
        Self::DEFAULT_LIMIT
    }

    /// Checks `limit` against `1 ..= 1000` and the type filter's name.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.limit == 0 {
            return Err(invalid("limit", "must be at least 1, got 0"));
        }
        if self.limit > Self::LIMIT_MAX {
            return Err(invalid("limit", format!("must be at most {}, got {}", Self::LIMIT_MAX, self.limit)));
        }
        if let Some(task_type) = &self.task_type {
            task_type.validate()?;
        }
        Ok(())
    }

    /// Whether `task` passes the status, type and parent filters (paging aside).
    pub fn matches(&self, task: &BatchTask) -> bool {
        self.status.is_none_or(|status| task.status == status)
            && self.task_type.as_ref().is_none_or(|task_type| &task.task_type == task_type)
            && self.parent_id.is_none_or(|parent_id| task.parent_id == Some(parent_id))
    }
}

impl Default for ListTasksRequest {
    fn default() -> ListTasksRequest {
        ListTasksRequest {
            status: None,
            task_type: None,
            parent_id: None,
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// A page of tasks and the number of tasks matching the filters across all pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListTasksResponse {
    /// The page, newest first.
    pub tasks: Vec<BatchTask>,
    /// Matching tasks in all pages.
    pub total: u64,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

/// Stop a task. Stopping is cooperative: a running task stops at its next chunk boundary, saves its
/// checkpoint and ends `cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTaskRequest {
    /// The task's id.
    pub id: TaskId,
    /// Why, recorded in the task's `CANCELLED` error. May be omitted in JSON.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to a stop: the task's status when the stop was accepted.
///
/// `cancelled` when the task had not started (it is cancelled at once); `processing` when the task is
/// running and will end `cancelled` at its next chunk boundary (follow it with a status call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTaskResponse {
    /// The task's id.
    pub id: TaskId,
    /// Its status when the stop was accepted.
    pub status: TaskStatus,
}

/// The body of a stop over HTTP (`POST /api/v1/tasks/{id}/stop`): the id is in the path. May be empty.
///
/// ```
/// use batch_model::StopTaskOptions;
///
/// let options: StopTaskOptions = serde_json::from_str("{}")?;
/// assert_eq!(options.reason, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopTaskOptions {
    /// Why, recorded in the task's `CANCELLED` error.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A finished task's result: the kind's summary (per-region totals, model accuracy, groups...) and
/// its final item counters and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResultResponse {
    /// The task's id.
    pub id: TaskId,
    /// The kind's result summary (JSON, shaped by the kind).
    pub result: serde_json::Value,
    /// Final counters and timings.
    pub metrics: crate::metrics::ProcessingMetrics,
}

/// A task as a live view shows it: everything but its config, params and metadata. The payload of
/// the server's task-change events.
///
/// ```
/// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskSummary, TaskType};
///
/// let task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), chrono::Utc::now())?;
/// let summary = TaskSummary::from(&task);
/// assert_eq!(summary.id, task.id);
/// assert_eq!(serde_json::to_value(&summary).unwrap()["task_type"], "train");
/// # Ok::<(), batch_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// The task's id.
    pub id: TaskId,
    /// Which kind runs it.
    pub task_type: TaskType,
    /// Its status.
    pub status: TaskStatus,
    /// Its progress.
    pub progress: Progress,
    /// Its error, if it failed or was cancelled with one.
    pub error: Option<TaskError>,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    /// When a worker first started it.
    #[serde(default, with = "crate::timestamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    #[serde(default, with = "crate::timestamp::option")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Its attempt: 1, then one more per restart.
    pub attempt: u32,
    /// The partitioned task it is a partition of, if any.
    pub parent_id: Option<TaskId>,
}

impl From<&BatchTask> for TaskSummary {
    fn from(task: &BatchTask) -> TaskSummary {
        TaskSummary {
            id: task.id,
            task_type: task.task_type.clone(),
            status: task.status,
            progress: task.progress.clone(),
            error: task.error.clone(),
            created_at: task.created_at,
            updated_at: task.updated_at,
            started_at: task.started_at,
            completed_at: task.completed_at,
            attempt: task.attempt,
            parent_id: task.parent_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_needs_only_a_task_type() {
        let request: CreateTaskRequest = serde_json::from_str(r#"{ "task_type": "train" }"#).unwrap();
        assert_eq!(request, CreateTaskRequest::new(TaskType::Train));
        assert_eq!(request.config_or_default(), BatchConfig::default());
    }

    #[test]
    fn create_request_rejects_a_bad_config_while_deserialising() {
        let json = r#"{ "task_type": "train", "config": { "timeout": -1 } }"#;
        let error = serde_json::from_str::<CreateTaskRequest>(json).unwrap_err().to_string();
        assert!(error.starts_with("invalid configuration: timeout must not be negative, got -1"), "{error}");
    }

    #[test]
    fn create_request_validation_names_the_field() {
        let bad_config = CreateTaskRequest::new(TaskType::Train)
            .with_config(BatchConfig { concurrency: 0, ..BatchConfig::default() });
        let error = bad_config.validate().unwrap_err();
        assert_eq!(error.to_string(), "invalid configuration: concurrency must be at least 1, got 0");

        let mut empty_key = CreateTaskRequest::new(TaskType::Train);
        empty_key.metadata.insert(String::new(), "x".to_owned());
        assert_eq!(
            empty_key.validate().unwrap_err().to_string(),
            "invalid request: metadata keys must not be empty"
        );

        let bad_type = CreateTaskRequest::new(TaskType::Custom("Nope".to_owned()));
        assert!(matches!(bad_type.validate(), Err(ModelError::InvalidTaskType { .. })));
    }

    #[test]
    fn list_request_limit_bounds() {
        let zero = ListTasksRequest { limit: 0, ..ListTasksRequest::default() };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "invalid request: limit must be at least 1, got 0"
        );
        for limit in [1, 50, 1000] {
            assert_eq!(ListTasksRequest { limit, ..ListTasksRequest::default() }.validate(), Ok(()));
        }
    }

    #[test]
    fn list_request_round_trips_with_filters() {
        let parent: TaskId = "018f3a2b-4c5d-7e6f-8a9b-0c1d2e3f4a5b".parse().unwrap();
        let request = ListTasksRequest {
            status: Some(TaskStatus::Processing),
            task_type: Some(TaskType::Custom("geo".to_owned())),
            parent_id: Some(parent),
            limit: 10,
            offset: 20,
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "status": "processing", "task_type": "geo", "parent_id": "018f3a2b-4c5d-7e6f-8a9b-0c1d2e3f4a5b",
                "limit": 10, "offset": 20,
            })
        );
        assert_eq!(serde_json::from_value::<ListTasksRequest>(json).unwrap(), request);
    }

    #[test]
    fn update_request_allows_errors_only_when_failing_or_cancelling() {
        let error = TaskError::new(crate::ErrorCode::Cancelled, "stopped by user");
        for status in TaskStatus::ALL {
            let request = UpdateTaskStatusRequest { id: TaskId::new(), status, error: Some(error.clone()) };
            let expected_ok = matches!(status, TaskStatus::Failed | TaskStatus::Cancelled);
            assert_eq!(request.validate().is_ok(), expected_ok, "{status}");
            let without_error = UpdateTaskStatusRequest { error: None, ..request };
            assert_eq!(without_error.validate(), Ok(()));
        }
    }

    #[test]
    fn stop_request_reason_may_be_omitted() {
        let id = TaskId::new();
        let request: StopTaskRequest = serde_json::from_value(serde_json::json!({ "id": id })).unwrap();
        assert_eq!(request, StopTaskRequest { id, reason: None });
    }
}
