//! What the server fails with ([`ServerError`]): at start (a bad address, token file or data root) and
//! per request, where each error becomes a JSON body `{"code": "...", "message": "..."}` with the
//! status that fits it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use batch_manager::ManagerError;
use batch_manager::store::StoreError;
use batch_model::{ErrorCode, ModelError};
use serde::{Deserialize, Serialize};

/// The JSON body of every error answer.
///
/// ```
/// use batch_server::ErrorBody;
///
/// let body: ErrorBody = serde_json::from_str(r#"{"code":"NOT_FOUND","message":"task x not found"}"#)?;
/// assert_eq!(body.code, "NOT_FOUND");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code: one of the model's codes (`VALIDATION_ERROR`, `CONFIGURATION_ERROR`,
    /// `NOT_FOUND`, `INVALID_STATE`, `STORAGE_ERROR`, ...) or the server's own `UNAUTHORIZED`,
    /// `FORBIDDEN`.
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
}

/// The code of a request without valid credentials (401).
pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
/// The code of a request whose credentials do not allow it (403).
pub const FORBIDDEN: &str = "FORBIDDEN";

/// Why the server could not start, or why it refused a request.
///
/// Every variant has a stable [`code`](ServerError::code) and an HTTP [`status`](ServerError::status).
///
/// ```
/// use axum::http::StatusCode;
/// use batch_server::ServerError;
///
/// let error = ServerError::Forbidden { reason: "the read-only token cannot change tasks".into() };
/// assert_eq!((error.code(), error.status()), ("FORBIDDEN", StatusCode::FORBIDDEN));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A server setting is wrong (`CONFIGURATION_ERROR`, 400): a missing or short token file, a data
    /// root that does not exist, a non-loopback address without a token.
    #[error("invalid server configuration: {setting}: {reason}")]
    Config {
        /// The setting (`--token-file`, `--addr`, ...).
        setting: String,
        /// What is wrong.
        reason: String,
    },
    /// The listening socket could not be opened (`CONFIGURATION_ERROR`).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped on an I/O error while serving (`STORAGE_ERROR`).
    #[error("the server failed: {source}")]
    Serve {
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The request is malformed: bad JSON, a bad query or path parameter, a path outside the data
    /// roots (`VALIDATION_ERROR`, 400). `field` names the parameter.
    #[error("{field}: {reason}")]
    Invalid {
        /// The parameter, field or part of the request at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body is larger than the server accepts (`VALIDATION_ERROR`, 413).
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No route for the method and path (`NOT_FOUND`, 404).
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// The route exists, not with this method (`VALIDATION_ERROR`, 405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// No credentials, or credentials that match no token (`UNAUTHORIZED`, 401).
    #[error("{reason}")]
    Unauthorized {
        /// What was missing or wrong.
        reason: String,
    },
    /// The credentials do not allow this request (`FORBIDDEN`, 403): a read-only token acting, a
    /// cross-site request, a request for a host that is not this server.
    #[error("{reason}")]
    Forbidden {
        /// Why.
        reason: String,
    },
    /// The request took longer than the server allows (`TIMEOUT_ERROR`, 503).
    #[error("the request took longer than {seconds} s")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
    /// The server is busy or shutting down (`INVALID_STATE`, 503).
    #[error("{reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// A dead-letter or result file could not be read (`STORAGE_ERROR`, 503).
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The manager refused or failed (its code; status by code).
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The store failed (its code; status by code).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model rejected a value (its code; status by code).
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl ServerError {
    /// A `VALIDATION_ERROR` naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ServerError {
        ServerError::Invalid { field: field.into(), reason: reason.into() }
    }

    /// A `CONFIGURATION_ERROR` naming `setting`.
    pub fn config(setting: impl Into<String>, reason: impl Into<String>) -> ServerError {
        ServerError::Config { setting: setting.into(), reason: reason.into() }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ServerError::Config { .. } | ServerError::Bind { .. } => ErrorCode::ConfigurationError.as_str(),
            ServerError::Serve { .. } | ServerError::File { .. } => ErrorCode::StorageError.as_str(),
            ServerError::Invalid { .. }
            | ServerError::TooLarge { .. }
            | ServerError::MethodNotAllowed { .. } => ErrorCode::ValidationError.as_str(),
            ServerError::NoRoute { .. } => ErrorCode::NotFound.as_str(),
            ServerError::Unauthorized { .. } => UNAUTHORIZED,
            ServerError::Forbidden { .. } => FORBIDDEN,
            ServerError::Timeout { .. } => ErrorCode::TimeoutError.as_str(),
            ServerError::Unavailable { .. } => ErrorCode::InvalidState.as_str(),
            ServerError::Manager(error) => error.code().as_str(),
            ServerError::Store(error) => error.code().as_str(),
            ServerError::Model(error) => error.code().as_str(),
        }
    }

    /// The HTTP status of this error: 400 validation and configuration, 401/403 auth, 404 not found,
    /// 405 wrong method, 409 invalid state, 413 too large, 503 storage, timeouts and shutdown.
    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ServerError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ServerError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ServerError::Timeout { .. } | ServerError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Manager(ManagerError::ShuttingDown) => StatusCode::SERVICE_UNAVAILABLE,
            other => status_of_code(other.code()),
        }
    }

    /// The error as its JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code().to_owned(), message: self.to_string() }
    }
}

/// The status of a model code.
fn status_of_code(code: &str) -> StatusCode {
    match code {
        "VALIDATION_ERROR" | "CONFIGURATION_ERROR" => StatusCode::BAD_REQUEST,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "INVALID_STATE" | "CANCELLED" => StatusCode::CONFLICT,
        UNAUTHORIZED => StatusCode::UNAUTHORIZED,
        FORBIDDEN => StatusCode::FORBIDDEN,
        // STORAGE_ERROR, and PROCESSING_ERROR / TIMEOUT_ERROR should a kind's check answer with one:
        // the request may succeed later.
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
        (status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use batch_model::{TaskId, TaskStatus};

    use super::*;

    #[test]
    fn statuses_follow_codes() {
        let id = TaskId::new();
        let cases: Vec<(ServerError, &str, u16)> = vec![
            (ServerError::invalid("limit", "must be at least 1"), "VALIDATION_ERROR", 400),
            (ServerError::config("--addr", "needs a token"), "CONFIGURATION_ERROR", 400),
            (ServerError::TooLarge { limit: 10 }, "VALIDATION_ERROR", 413),
            (ServerError::Unauthorized { reason: "no token".into() }, UNAUTHORIZED, 401),
            (ServerError::Forbidden { reason: "read-only".into() }, FORBIDDEN, 403),
            (ServerError::Store(StoreError::NotFound { id }), "NOT_FOUND", 404),
            (
                ServerError::Store(StoreError::Conflict {
                    id,
                    expected: TaskStatus::Pending,
                    actual: TaskStatus::Completed,
                    to: TaskStatus::Cancelled,
                }),
                "INVALID_STATE",
                409,
            ),
            (
                ServerError::Store(StoreError::Storage {
                    location: "db".into(),
                    message: "locked".into(),
                    source: None,
                }),
                "STORAGE_ERROR",
                503,
            ),
            (ServerError::Manager(ManagerError::ShuttingDown), "INVALID_STATE", 503),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.body().message, error.to_string());
        }
    }
}
