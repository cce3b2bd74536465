//! The router: the routes, one module per resource, and the layers around them.
//!
//! From the outside in, every request passes: a panic catcher (a last resort: no handler is meant to
//! need it), JSON bodies and security headers for every error answer, request metrics and logs, the
//! cross-site request forgery check (Origin / `Sec-Fetch-Site`, tower-http's `CsrfLayer`), the token
//! check ([`crate::auth`]), the request timeout, the body limit, and one concurrency limit shared by
//! all routes. There is no CORS layer: browsers may call the API from the dashboard's own origin only.

pub(crate) mod dashboard;
pub(crate) mod dead_letters;
pub(crate) mod events;
pub(crate) mod session;
pub(crate) mod system;
pub(crate) mod tasks;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::csrf::CsrfLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::{ErrorBody, ServerError};
use crate::state::AppState;

/// Every route, as `(method, path template)`: the OpenAPI document must describe each one (a test
/// checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/tasks"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/{id}"),
    ("get", "/api/v1/tasks/{id}/status"),
    ("post", "/api/v1/tasks/{id}/stop"),
    ("post", "/api/v1/tasks/{id}/resume"),
    ("get", "/api/v1/tasks/{id}/result"),
    ("get", "/api/v1/tasks/{id}/checkpoint"),
    ("get", "/api/v1/tasks/{id}/dead-letters"),
    ("get", "/api/v1/metrics"),
    ("get", "/api/v1/kinds"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/session"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
];

/// The server's router over `state`: the API, the probes, the metrics and the dashboard.
pub fn router(state: AppState) -> Router {
    let limits = state.limits().clone();
    let api = Router::new()
        .route("/tasks", get(tasks::list).post(tasks::create))
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/status", get(tasks::status))
        .route("/tasks/{id}/stop", post(tasks::stop))
        .route("/tasks/{id}/resume", post(tasks::resume))
        .route("/tasks/{id}/result", get(tasks::result))
        .route("/tasks/{id}/checkpoint", get(tasks::checkpoint))
        .route("/tasks/{id}/dead-letters", get(dead_letters::list))
        .route("/metrics", get(system::summary))
        .route("/kinds", get(system::kinds))
        .route("/events", get(events::stream))
        .route("/openapi.json", get(system::openapi))
        .route("/session", get(session::show).post(session::sign_in).delete(session::sign_out));
    let layers = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(state.clone(), finish_response))
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(CsrfLayer::new().with_rejection_response(cross_site))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::authenticate))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limits.request_timeout))
        .layer(RequestBodyLimitLayer::new(limits.body_bytes))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(GlobalConcurrencyLimitLayer::new(limits.concurrent_requests));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::prometheus))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .fallback(no_route)
        .layer(layers)
        .with_state(state)
}

async fn no_route(request: Request) -> ServerError {
    ServerError::NoRoute { method: request.method().to_string(), path: request.uri().path().to_owned() }
}

fn cross_site(error: tower_http::csrf::ProtectionError) -> Response<Body> {
    ServerError::Forbidden { reason: format!("cross-site request refused: {error}") }.into_response()
}

fn panicked(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    let body = ErrorBody {
        code: batch_model::ErrorCode::ProcessingError.as_str().to_owned(),
        message: "internal error: the request handler failed".to_owned(),
    };
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

/// Middleware: gives every error answer made by a layer (body limit, timeout, wrong method) the JSON
/// body of [`ServerError`], and every answer the security headers.
async fn finish_response(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let error = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ServerError::TooLarge { limit: state.limits().body_bytes },
            StatusCode::METHOD_NOT_ALLOWED => ServerError::MethodNotAllowed { method, path },
            StatusCode::NOT_FOUND => ServerError::NoRoute { method, path },
            StatusCode::FORBIDDEN => {
                ServerError::Forbidden { reason: "the request is not allowed".to_owned() }
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
                ServerError::Timeout { seconds: state.limits().request_timeout.as_secs() }
            }
            other => {
                ServerError::invalid("request", other.canonical_reason().unwrap_or("bad request").to_owned())
            }
        };
        let allow = response.headers().get(header::ALLOW).cloned();
        response = error.into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    response
}
