//! The OpenAPI 3.1 document of the server (`GET /api/v1/openapi.json`).

/// The document.
pub fn document() -> serde_json::Value {
    serde_json::json!({ "openapi": "3.1.0" })
}
