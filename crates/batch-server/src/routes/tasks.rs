//! `/api/v1/tasks`: create, list, show, status, stop, resume, result and checkpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ListTasksRequest, ListTasksResponse,
    StopTaskOptions, StopTaskRequest, StopTaskResponse, TaskResultResponse, TaskStatus, TaskStatusResponse,
    TaskType,
};
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::extract::{JsonBody, OptionalJsonBody, QueryParams, TaskIdPath};
use crate::state::AppState;

/// `POST /api/v1/tasks`: creates a pending task (201 with the task). Its path parameters must lie
/// inside the data roots; they are stored absolute.
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<BatchTask>), ServerError> {
    let mut request = parse_create(body)?;
    request.validate()?;
    confine_paths(&state, &mut request)?;
    let created = state.manager().create_task(request).await?;
    let task = state.manager().get_task(&created.id).await?;
    state.hub().observe(&task);
    Ok((StatusCode::CREATED, Json(task)))
}

/// The create body as a request: a bad `config` is a `CONFIGURATION_ERROR` naming the setting, any
/// other bad field a `VALIDATION_ERROR`.
fn parse_create(mut body: serde_json::Value) -> Result<CreateTaskRequest, ServerError> {
    let Some(object) = body.as_object_mut() else {
        return Err(ServerError::invalid(
            "body",
            format!("must be a JSON object, got {}", batch_model::json_kind(&body)),
        ));
    };
    if let Some(config) = object.get("config").filter(|config| !config.is_null()) {
        BatchConfig::from_json(config)?;
    }
    if let Some(task_type) = object.get("task_type") {
        match task_type {
            serde_json::Value::String(name) => {
                name.parse::<TaskType>()?;
            }
            other => {
                return Err(ServerError::invalid(
                    "task_type",
                    format!("must be a string, got {}", batch_model::json_kind(other)),
                ));
            }
        }
    }
    if let Some(unknown) =
        object.keys().find(|key| !["task_type", "config", "params", "metadata"].contains(&key.as_str()))
    {
        return Err(ServerError::invalid(
            unknown.clone(),
            "is not a field of a task (task_type, config, params, metadata)",
        ));
    }
    serde_json::from_value(body).map_err(|error| ServerError::invalid("body", error.to_string()))
}

/// Makes every path parameter of the request's kind absolute and checks it lies inside a data root.
fn confine_paths(state: &AppState, request: &mut CreateTaskRequest) -> Result<(), ServerError> {
    let names = state.kinds().path_params(&request.task_type);
    let Some(params) = request.params.as_object_mut() else {
        return Ok(());
    };
    for name in names {
        if let Some(serde_json::Value::String(value)) = params.get(&name) {
            if crate::paths::is_address(value) {
                continue;
            }
            let confined = state.roots().confine(&name, value)?;
            let Some(text) = confined.to_str() else {
                return Err(ServerError::invalid(format!("params.{name}"), "must be valid UTF-8"));
            };
            params.insert(name, serde_json::Value::String(text.to_owned()));
        }
    }
    Ok(())
}

/// The query of `GET /api/v1/tasks`, as text so that each error names its parameter.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    parent: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// The largest offset a listing takes (the stores count in signed 64-bit integers).
pub(crate) const OFFSET_MAX: u64 = i64::MAX as u64;

/// A query parameter as text; present but empty is an error (`?status=` is a mistake, not "any").
fn present<'a>(field: &str, text: Option<&'a str>) -> Result<Option<&'a str>, ServerError> {
    match text {
        Some("") => Err(ServerError::invalid(field, "must not be empty (leave it out instead)")),
        other => Ok(other),
    }
}

/// A whole number in `0..=max` from a query parameter.
pub(crate) fn whole_number(field: &str, text: Option<&str>, max: u64) -> Result<Option<u64>, ServerError> {
    let Some(text) = present(field, text)? else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(number) if number <= max => Ok(Some(number)),
        _ => {
            Err(ServerError::invalid(field, format!("must be a whole number from 0 to {max}, got {text:?}")))
        }
    }
}

impl ListQuery {
    fn request(self) -> Result<ListTasksRequest, ServerError> {
        let status = match present("status", self.status.as_deref())? {
            Some(text) => Some(
                text.parse::<TaskStatus>()
                    .map_err(|error| ServerError::invalid("status", error.to_string()))?,
            ),
            None => None,
        };
        let task_type = match present("type", self.task_type.as_deref())? {
            Some(text) => Some(
                text.parse::<TaskType>().map_err(|error| ServerError::invalid("type", error.to_string()))?,
            ),
            None => None,
        };
        let parent_id = match present("parent", self.parent.as_deref())? {
            Some(text) => Some(crate::extract::parse_task_id("parent", text)?),
            None => None,
        };
        let limit =
            match whole_number("limit", self.limit.as_deref(), u64::from(ListTasksRequest::LIMIT_MAX))? {
                Some(limit) => u32::try_from(limit).unwrap_or(u32::MAX),
                None => ListTasksRequest::DEFAULT_LIMIT,
            };
        let offset = whole_number("offset", self.offset.as_deref(), OFFSET_MAX)?.unwrap_or(0);
        let request = ListTasksRequest { status, task_type, parent_id, limit, offset };
        request.validate()?;
        Ok(request)
    }
}

/// `GET /api/v1/tasks?status&type&parent&limit&offset`: a page of tasks, newest first, and the total.
pub(crate) async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<ListTasksResponse>, ServerError> {
    let request = query.request()?;
    Ok(Json(state.manager().list_tasks(request).await?))
}

/// `GET /api/v1/tasks/{id}`: the task.
pub(crate) async fn show(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<BatchTask>, ServerError> {
    Ok(Json(state.manager().get_task(&id).await?))
}

/// `GET /api/v1/tasks/{id}/status`: status, progress and error.
pub(crate) async fn status(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<TaskStatusResponse>, ServerError> {
    Ok(Json(state.manager().get_task_status(&id).await?))
}

/// `POST /api/v1/tasks/{id}/stop` (body optional: `{"reason": "..."}`): a pending task is cancelled
/// at once; a running one stops at its next chunk boundary.
pub(crate) async fn stop(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    OptionalJsonBody(options): OptionalJsonBody<StopTaskOptions>,
) -> Result<Json<StopTaskResponse>, ServerError> {
    let stopped = state.manager().stop_task(StopTaskRequest { id, reason: options.reason }).await?;
    if let Ok(task) = state.manager().get_task(&id).await {
        state.hub().observe(&task);
    }
    Ok(Json(stopped))
}

/// `POST /api/v1/tasks/{id}/resume`: continues a task from its last checkpoint. A cancelled or failed
/// task is restarted as a new attempt (`pending`, its earlier attempts kept; any worker runs it); a
/// processing task whose worker is gone (its lease lapsed, or it was handed back at a shutdown) is
/// taken over and run here. `INVALID_STATE` for a pending or completed task, or one whose worker is
/// alive.
pub(crate) async fn resume(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<BatchTask>, ServerError> {
    let current = state.manager().get_task(&id).await?;
    let task = match current.status {
        TaskStatus::Processing => state.manager().resume_task(&id).await?,
        _ => state.manager().restart_task(&id).await?,
    };
    state.hub().observe(&task);
    Ok(Json(task))
}

/// `GET /api/v1/tasks/{id}/result`: the kind's result summary and the final metrics of a finished
/// task; `INVALID_STATE` before it has one.
pub(crate) async fn result(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<TaskResultResponse>, ServerError> {
    match state.manager().task_result(&id).await? {
        Some(record) => Ok(Json(TaskResultResponse { id, result: record.result, metrics: record.metrics })),
        None => {
            let task = state.manager().get_task(&id).await?;
            Err(ServerError::Manager(batch_manager::ManagerError::NotRunnable {
                id,
                status: task.status,
                reason: "it has no result: only a completed task has one".to_owned(),
            }))
        }
    }
}

/// The answer of `GET /api/v1/tasks/{id}/checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointResponse {
    /// The task's id.
    pub id: batch_model::TaskId,
    /// Its last committed checkpoint; `null` before the first.
    pub checkpoint: Option<Checkpoint>,
}

/// `GET /api/v1/tasks/{id}/checkpoint`: the last committed checkpoint.
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<CheckpointResponse>, ServerError> {
    state.manager().get_task(&id).await?;
    let checkpoint = state.manager().store().checkpoint(&id).await?;
    Ok(Json(CheckpointResponse { id, checkpoint }))
}
