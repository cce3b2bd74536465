//! Extractors that refuse bad input with the server's JSON errors instead of axum's plain-text
//! rejections: a JSON body ([`JsonBody`]), an optional JSON body ([`OptionalJsonBody`]), the query
//! string ([`QueryParams`]), and a task id in the path ([`TaskIdPath`]).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use batch_model::TaskId;
use serde::de::DeserializeOwned;

use crate::error::ServerError;
use crate::state::AppState;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

fn body_error(status: StatusCode, text: String, state: &AppState) -> ServerError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ServerError::TooLarge { limit: state.limits().body_bytes }
    } else {
        ServerError::invalid("body", text)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ServerError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ServerError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection, state)),
        }
    }
}

fn json_rejection(rejection: JsonRejection, state: &AppState) -> ServerError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ServerError::invalid(
            "content-type",
            "the body must be JSON, sent as `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(error) => {
            ServerError::invalid("body", format!("malformed JSON: {}", error.body_text()))
        }
        JsonRejection::JsonDataError(error) => ServerError::invalid("body", error.body_text()),
        other => body_error(other.status(), other.body_text(), state),
    }
}

/// An optional JSON body: an empty body (or `null`) gives `T::default()`.
#[derive(Debug)]
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ServerError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ServerError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection: BytesRejection| {
            body_error(rejection.status(), rejection.body_text(), state)
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        serde_json::from_slice::<Option<T>>(&bytes)
            .map(|value| OptionalJsonBody(value.unwrap_or_default()))
            .map_err(|error| ServerError::invalid("body", format!("malformed JSON: {error}")))
    }
}

/// The query string, as `T`.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ServerError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ServerError {
    ServerError::invalid("query", rejection.body_text())
}

/// The task id of a `/tasks/{id}...` route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskIdPath(pub(crate) TaskId);

impl FromRequestParts<AppState> for TaskIdPath {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ServerError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ServerError::invalid("id", rejection.body_text()))?;
        parse_task_id("id", &text).map(TaskIdPath)
    }
}

/// `text` as a task id; a `VALIDATION_ERROR` naming `field` otherwise.
pub(crate) fn parse_task_id(field: &str, text: &str) -> Result<TaskId, ServerError> {
    text.parse::<TaskId>().map_err(|_| {
        ServerError::invalid(field, format!("{text:?} is not a task id (a UUID such as 0190a2b3-...)"))
    })
}
