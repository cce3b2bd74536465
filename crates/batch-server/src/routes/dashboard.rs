//! The dashboard's files, compiled into the binary: `/` (the page), `/assets/app.js`,
//! `/assets/app.css`. They hold no data (the page loads everything from the JSON API with the
//! visitor's token), so they are served without one.

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::ServerError;

const INDEX: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// `GET /`.
pub(crate) async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX)
}

/// `GET /assets/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Result<impl IntoResponse, ServerError> {
    let (content_type, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        _ => return Err(ServerError::NoRoute { method: "GET".to_owned(), path: format!("/assets/{file}") }),
    };
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body))
}
