//! `/api/v1/session`: the dashboard's sign-in. `POST` with `{"token": "..."}` checks the token and
//! sets it as an HttpOnly, SameSite=Strict cookie (so page scripts never hold it); `GET` says who the
//! request is; `DELETE` signs out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use crate::auth::{COOKIE, Role, role_of};
use crate::error::ServerError;
use crate::extract::JsonBody;
use crate::state::AppState;

/// The sign-in body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    token: String,
}

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResponse {
    /// What it may do.
    pub role: Role,
    /// Whether this server asks for tokens at all.
    pub auth_required: bool,
}

/// `GET /api/v1/session`.
pub(crate) async fn show(
    State(state): State<AppState>,
    role: Option<axum::Extension<Role>>,
) -> Json<SessionResponse> {
    let role = role.map_or(Role::Admin, |axum::Extension(role)| role);
    Json(SessionResponse { role, auth_required: state.tokens().required() })
}

/// `POST /api/v1/session`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<impl IntoResponse, ServerError> {
    let tokens = state.tokens();
    if !tokens.required() {
        return Ok((HeaderMap::new(), Json(SessionResponse { role: Role::Admin, auth_required: false })));
    }
    let token = body.token.trim();
    let role = role_of(tokens, token)
        .ok_or_else(|| ServerError::Unauthorized { reason: "the token is not valid".to_owned() })?;
    let cookie = HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"))
        .map_err(|_| ServerError::invalid("token", "must be visible ASCII"))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie);
    Ok((headers, Json(SessionResponse { role, auth_required: true })))
}

/// `DELETE /api/v1/session`.
pub(crate) async fn sign_out() -> impl IntoResponse {
    (
        [(header::SET_COOKIE, format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))],
        axum::http::StatusCode::NO_CONTENT,
    )
}
