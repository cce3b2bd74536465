//! The routes about the server itself: `/healthz`, `/readyz`, Prometheus `/metrics`, and under
//! `/api/v1` the task counts (`/metrics`), the kinds (`/kinds`) and the OpenAPI document
//! (`/openapi.json`).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use batch_model::{BatchMetrics, TaskId};
use serde_json::json;

use crate::error::ServerError;
use crate::kinds::KindsResponse;
use crate::state::AppState;

/// `GET /healthz`: the process answers (no token needed, touches nothing).
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers (one primary-key lookup); `503 STORAGE_ERROR` otherwise.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ServerError> {
    state.manager().store().task(&TaskId::new()).await?;
    Ok(Json(json!({ "status": "ready" })))
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn prometheus(State(state): State<AppState>) -> Result<impl IntoResponse, ServerError> {
    let counts = state.task_counts().await?;
    let text = state.metrics().render(&counts);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// `GET /api/v1/metrics`: counts by status, success rate and durations across the store's tasks (at
/// most a second old).
pub(crate) async fn summary(State(state): State<AppState>) -> Result<Json<BatchMetrics>, ServerError> {
    Ok(Json(state.task_counts().await?))
}

/// `GET /api/v1/kinds`: each kind's parameters.
pub(crate) async fn kinds(State(state): State<AppState>) -> Json<KindsResponse> {
    Json(state.kinds().clone())
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route.
pub(crate) async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.openapi().clone())
}
