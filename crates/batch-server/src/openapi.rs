//! The OpenAPI 3.1 document of the server (`GET /api/v1/openapi.json`), written by hand.
//!
//! Why by hand: a generator (utoipa) would put its derives and macros on every batch-model type,
//! which must stay a plain data crate, and would still need hand-written parts for the event stream,
//! the metrics text and the error statuses. Two checks keep the document true: a unit test that every
//! route of [`ROUTES`](crate::ROUTES) is described, and the schemathesis run in `cargo xtask ci`, which
//! sends the server requests generated from this document and checks every answer against it.

use serde_json::{Value, json};

use crate::kinds::KindsResponse;

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": json_content(reference("Error")) })
}

/// The error answers every authenticated route may give, plus `extra` statuses.
fn responses(ok_status: &str, ok: Value, extra: &[(&str, &str)]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok_status.to_owned(), ok);
    responses
        .insert("400".to_owned(), error("Malformed request (`VALIDATION_ERROR`, `CONFIGURATION_ERROR`)"));
    responses.insert("401".to_owned(), error("No valid token (`UNAUTHORIZED`)"));
    responses.insert(
        "403".to_owned(),
        error("Not allowed: read-only token acting, cross-site request (`FORBIDDEN`)"),
    );
    responses.insert(
        "503".to_owned(),
        error("Store failure, timeout or shutdown (`STORAGE_ERROR`, `TIMEOUT_ERROR`)"),
    );
    for (status, description) in extra {
        responses.insert((*status).to_owned(), error(description));
    }
    Value::Object(responses)
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

fn id_parameter() -> Value {
    json!({
        "name": "id", "in": "path", "required": true, "description": "The task's id (a UUID v7).",
        "schema": { "type": "string", "format": "uuid" }
    })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

const NOT_FOUND: (&str, &str) = ("404", "No such task (`NOT_FOUND`)");
const CONFLICT: (&str, &str) = ("409", "Not possible in the task's status (`INVALID_STATE`)");
const TOO_LARGE: (&str, &str) = ("413", "The body is larger than the server accepts");

fn timestamp() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn nullable_timestamp() -> Value {
    json!({ "type": ["string", "null"], "format": "date-time" })
}

fn duration() -> Value {
    json!({ "type": "string", "description": "A humantime duration, e.g. `30s`, `1m 30s 500ms`." })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn schemas(kinds: &KindsResponse) -> Value {
    let registered: Vec<&str> = kinds.kinds.iter().map(|kind| kind.task_type.as_str()).collect();
    let error_code = json!({
        "type": "string",
        "enum": ["VALIDATION_ERROR", "PROCESSING_ERROR", "TIMEOUT_ERROR", "CONFIGURATION_ERROR", "NOT_FOUND",
                 "INVALID_STATE", "STORAGE_ERROR", "CANCELLED"]
    });
    json!({
        "Error": object(&["code", "message"], json!({
            "code": { "type": "string", "description": "A stable code: one of ErrorCode's, or UNAUTHORIZED, FORBIDDEN." },
            "message": { "type": "string" }
        })),
        "ErrorCode": error_code,
        "TaskStatus": { "type": "string", "enum": ["pending", "processing", "completed", "failed", "cancelled"] },
        "TaskType": {
            "type": "string", "pattern": "^[a-z0-9_]{1,64}$",
            "description": "`train`, `youzan_order`, `batch_process`, or a registered custom kind."
        },
        "TaskId": { "type": "string", "format": "uuid" },
        "BatchConfig": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "batch_size": { "type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000 },
                "max_retries": { "type": ["integer", "null"], "minimum": 0, "maximum": 100 },
                "timeout": {
                    "description": "1 ms to 24 h: a humantime string, or whole milliseconds.",
                    "oneOf": [{ "type": "string" }, { "type": "integer", "minimum": 1, "maximum": 86_400_000 }, { "type": "null" }]
                },
                "concurrency": { "type": ["integer", "null"], "minimum": 1, "maximum": 1024 },
                "skip_limit": { "type": ["integer", "null"], "minimum": 0 },
                "durability": { "type": ["string", "null"], "enum": ["process", "power_loss", null] },
                "partitions": { "type": ["integer", "null"], "minimum": 1, "maximum": 256 }
            }
        },
        "StoredConfig": object(&["batch_size", "max_retries", "timeout", "concurrency", "skip_limit", "durability"], json!({
            "batch_size": { "type": "integer" }, "max_retries": { "type": "integer" }, "timeout": duration(),
            "concurrency": { "type": "integer" }, "skip_limit": { "type": ["integer", "null"] },
            "durability": { "type": "string", "enum": ["process", "power_loss"] },
            "partitions": { "type": "integer", "minimum": 1 }
        })),
        "AttemptRecord": object(&["attempt", "status", "error", "started_at", "ended_at", "progress"], json!({
            "attempt": { "type": "integer", "minimum": 1 },
            "status": reference("TaskStatus"),
            "error": { "oneOf": [reference("TaskError"), { "type": "null" }] },
            "started_at": nullable_timestamp(),
            "ended_at": nullable_timestamp(),
            "progress": reference("Progress")
        })),
        "TaskError": object(&["code", "message", "details", "timestamp", "retryable"], json!({
            "code": reference("ErrorCode"),
            "message": { "type": "string" },
            "details": { "description": "Structured context (field, line, ...); null when none." },
            "timestamp": timestamp(),
            "retryable": { "type": "boolean" }
        })),
        "Progress": object(&["total", "processed", "failed", "skipped", "percentage", "message", "throughput", "eta", "updated_at"], json!({
            "total": { "type": ["integer", "null"], "minimum": 0 },
            "processed": { "type": "integer", "minimum": 0 },
            "failed": { "type": "integer", "minimum": 0 },
            "skipped": { "type": "integer", "minimum": 0 },
            "percentage": { "type": ["number", "null"], "minimum": 0, "maximum": 100 },
            "message": { "type": ["string", "null"] },
            "throughput": { "type": ["number", "null"], "description": "Items per second." },
            "eta": { "type": ["string", "null"], "description": "A humantime duration." },
            "updated_at": timestamp()
        })),
        "BatchTask": object(&["id", "task_type", "status", "config", "params", "progress", "error", "created_at", "updated_at", "started_at", "completed_at", "metadata"], json!({
            "id": reference("TaskId"),
            "task_type": reference("TaskType"),
            "status": reference("TaskStatus"),
            "config": reference("StoredConfig"),
            "params": { "type": "object", "description": "The kind's own settings." },
            "progress": reference("Progress"),
            "error": { "oneOf": [reference("TaskError"), { "type": "null" }] },
            "created_at": timestamp(),
            "updated_at": timestamp(),
            "started_at": nullable_timestamp(),
            "completed_at": nullable_timestamp(),
            "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
            "attempt": { "type": "integer", "minimum": 1, "description": "1, then one more per restart." },
            "attempts": { "type": "array", "items": reference("AttemptRecord"), "description": "Earlier attempts, oldest first." },
            "parent_id": { "oneOf": [reference("TaskId"), { "type": "null" }] },
            "partition": { "oneOf": [object(&["index", "count"], json!({
                "index": { "type": "integer", "minimum": 0 }, "count": { "type": "integer", "minimum": 1 }
            })), { "type": "null" }] }
        })),
        "TaskSummary": object(&["id", "task_type", "status", "progress", "error", "created_at", "updated_at", "started_at", "completed_at", "attempt", "parent_id"], json!({
            "attempt": { "type": "integer", "minimum": 1 },
            "parent_id": { "oneOf": [reference("TaskId"), { "type": "null" }] },
            "id": reference("TaskId"),
            "task_type": reference("TaskType"),
            "status": reference("TaskStatus"),
            "progress": reference("Progress"),
            "error": { "oneOf": [reference("TaskError"), { "type": "null" }] },
            "created_at": timestamp(),
            "updated_at": timestamp(),
            "started_at": nullable_timestamp(),
            "completed_at": nullable_timestamp()
        })),
        "CreateTaskRequest": {
            "type": "object", "required": ["task_type"], "additionalProperties": false,
            "example": {
                "task_type": "youzan_order",
                "config": { "batch_size": 500 },
                "params": { "input": "trades.jsonl", "output": "orders.jsonl", "dead_letter": "orders.dead.jsonl" }
            },
            "properties": {
                "task_type": { "type": "string", "enum": registered, "description": "A registered kind (see GET /api/v1/kinds)." },
                "config": { "oneOf": [reference("BatchConfig"), { "type": "null" }] },
                "params": {
                    "type": "object",
                    "description": "The kind's parameters (see GET /api/v1/kinds). Path parameters must lie inside a data root."
                },
                "metadata": { "type": "object", "additionalProperties": { "type": "string" }, "propertyNames": { "minLength": 1 } }
            }
        },
        "ListTasksResponse": object(&["tasks", "total", "limit", "offset"], json!({
            "tasks": { "type": "array", "items": reference("BatchTask") },
            "total": { "type": "integer", "minimum": 0 },
            "limit": { "type": "integer", "minimum": 1, "maximum": 1000 },
            "offset": { "type": "integer", "minimum": 0 }
        })),
        "TaskStatusResponse": object(&["id", "status", "progress", "error"], json!({
            "id": reference("TaskId"),
            "status": reference("TaskStatus"),
            "progress": reference("Progress"),
            "error": { "oneOf": [reference("TaskError"), { "type": "null" }] }
        })),
        "StopTaskOptions": {
            "type": "object", "additionalProperties": false,
            "properties": { "reason": { "type": ["string", "null"] } }
        },
        "StopTaskResponse": object(&["id", "status"], json!({
            "id": reference("TaskId"), "status": reference("TaskStatus")
        })),
        "ProcessingMetrics": object(&["total_items", "processed_items", "failed_items", "retried_items", "skipped_items", "start_time", "end_time", "duration"], json!({
            "total_items": { "type": "integer" }, "processed_items": { "type": "integer" },
            "failed_items": { "type": "integer" }, "retried_items": { "type": "integer" },
            "skipped_items": { "type": "integer" }, "start_time": nullable_timestamp(),
            "end_time": nullable_timestamp(), "duration": duration()
        })),
        "TaskResultResponse": object(&["id", "result", "metrics"], json!({
            "id": reference("TaskId"),
            "result": { "description": "The kind's summary: YouZan totals per region and category, train accuracies, batch_process groups." },
            "metrics": reference("ProcessingMetrics")
        })),
        "Checkpoint": object(&["sequence", "source", "sink", "counters", "state", "committed_at"], json!({
            "sequence": { "type": "integer", "minimum": 1 },
            "source": {}, "sink": {}, "state": {},
            "counters": object(&["processed", "failed", "skipped", "retried"], json!({
                "processed": { "type": "integer" }, "failed": { "type": "integer" },
                "skipped": { "type": "integer" }, "retried": { "type": "integer" }
            })),
            "committed_at": timestamp()
        })),
        "CheckpointResponse": object(&["id", "checkpoint"], json!({
            "id": reference("TaskId"),
            "checkpoint": { "oneOf": [reference("Checkpoint"), { "type": "null" }] }
        })),
        "DeadLetterRecord": object(&["line", "offset", "code", "message", "field", "raw"], json!({
            "line": { "type": "integer", "minimum": 0 },
            "offset": { "type": "integer", "minimum": 0 },
            "code": reference("ErrorCode"),
            "message": { "type": "string" },
            "field": { "type": ["string", "null"] },
            "raw": { "type": "string" }
        })),
        "DeadLettersResponse": object(&["dead_letters", "limit", "offset", "has_more"], json!({
            "dead_letters": { "type": "array", "items": reference("DeadLetterRecord") },
            "limit": { "type": "integer" }, "offset": { "type": "integer" }, "has_more": { "type": "boolean" }
        })),
        "BatchMetrics": object(&["total_tasks", "pending_tasks", "processing_tasks", "completed_tasks", "failed_tasks", "cancelled_tasks", "success_rate", "avg_duration", "total_duration"], json!({
            "total_tasks": { "type": "integer" }, "pending_tasks": { "type": "integer" },
            "processing_tasks": { "type": "integer" }, "completed_tasks": { "type": "integer" },
            "failed_tasks": { "type": "integer" }, "cancelled_tasks": { "type": "integer" },
            "success_rate": { "type": "number", "minimum": 0, "maximum": 1 },
            "avg_duration": duration(), "total_duration": duration()
        })),
        "ParamSpec": object(&["name", "type", "required", "help", "default", "aliases", "role", "choices"], json!({
            "name": { "type": "string" },
            "type": { "type": "string", "enum": ["string", "path", "integer", "number", "boolean", "string_list", "duration", "choice"] },
            "required": { "type": "boolean" },
            "help": { "type": "string" },
            "default": { "description": "The value used when the param is absent; null when none or derived." },
            "aliases": { "type": "array", "items": { "type": "string" } },
            "role": { "type": "string", "enum": ["input", "output", "setting"] },
            "choices": { "type": "array", "items": { "type": "string" } }
        })),
        "KindDescription": object(&["task_type", "description", "params", "settings", "default_config"], json!({
            "task_type": reference("TaskType"),
            "description": { "type": "string" },
            "params": { "type": "array", "items": reference("ParamSpec") },
            "settings": { "type": "array", "items": reference("ParamSpec"), "description": "The config settings the kind honours." },
            "default_config": reference("StoredConfig")
        })),
        "KindsResponse": object(&["kinds"], json!({
            "kinds": { "type": "array", "items": reference("KindDescription") }
        })),
        "SessionResponse": object(&["role", "auth_required"], json!({
            "role": { "type": "string", "enum": ["admin", "read"] },
            "auth_required": { "type": "boolean" }
        })),
        "SignIn": {
            "type": "object", "required": ["token"], "additionalProperties": false,
            "properties": { "token": { "type": "string" } }
        },
        "Status": object(&["status"], json!({ "status": { "type": "string" } }))
    })
}

fn paths() -> Value {
    let task_id = || vec![id_parameter()];
    let json_body = |schema: &str, required: bool| json!({ "required": required, "content": json_content(reference(schema)) });
    json!({
        "/healthz": { "get": {
            "operationId": "healthz", "summary": "Liveness: the process answers (no token needed).",
            "security": [],
            "responses": { "200": ok("Alive", reference("Status")) }
        }},
        "/readyz": { "get": {
            "operationId": "readyz", "summary": "Readiness: the store answers.",
            "responses": responses("200", ok("Ready", reference("Status")), &[])
        }},
        "/metrics": { "get": {
            "operationId": "prometheusMetrics",
            "summary": "Prometheus metrics: tasks by status, items by kind, task durations, HTTP requests.",
            "responses": responses("200", json!({
                "description": "Prometheus text format",
                "content": { "text/plain": { "schema": { "type": "string" } } }
            }), &[])
        }},
        "/api/v1/tasks": {
            "post": {
                "operationId": "createTask", "summary": "Create a pending task.",
                "requestBody": json_body("CreateTaskRequest", true),
                "responses": responses("201", ok("The task", reference("BatchTask")), &[TOO_LARGE])
            },
            "get": {
                "operationId": "listTasks", "summary": "A page of tasks, newest first, with the total.",
                "parameters": [
                    query("status", "Only tasks in this status.", reference("TaskStatus")),
                    query("type", "Only tasks of this kind.", reference("TaskType")),
                    query("parent", "Only the partitions of this task.", reference("TaskId")),
                    query("limit", "Page size (default 50).", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
                    query("offset", "Tasks skipped before the page.", json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX }))
                ],
                "responses": responses("200", ok("A page", reference("ListTasksResponse")), &[])
            }
        },
        "/api/v1/tasks/{id}": { "get": {
            "operationId": "getTask", "summary": "One task.", "parameters": task_id(),
            "responses": responses("200", ok("The task", reference("BatchTask")), &[NOT_FOUND])
        }},
        "/api/v1/tasks/{id}/status": { "get": {
            "operationId": "getTaskStatus", "summary": "A task's status, progress and error.", "parameters": task_id(),
            "responses": responses("200", ok("The status", reference("TaskStatusResponse")), &[NOT_FOUND])
        }},
        "/api/v1/tasks/{id}/stop": { "post": {
            "operationId": "stopTask",
            "summary": "Stop a task: a pending one at once, a running one at its next chunk boundary.",
            "parameters": task_id(),
            "requestBody": json_body("StopTaskOptions", false),
            "responses": responses("200", ok("Stop accepted", reference("StopTaskResponse")), &[NOT_FOUND, CONFLICT, TOO_LARGE])
        }},
        "/api/v1/tasks/{id}/resume": { "post": {
            "operationId": "resumeTask",
            "summary": "Continue a task from its last checkpoint: a cancelled or failed one as a new attempt, a processing one whose worker is gone taken over.",
            "parameters": task_id(),
            "responses": responses("200", ok("The task, claimed", reference("BatchTask")), &[NOT_FOUND, CONFLICT])
        }},
        "/api/v1/tasks/{id}/result": { "get": {
            "operationId": "getTaskResult", "summary": "A completed task's result and metrics.", "parameters": task_id(),
            "responses": responses("200", ok("The result", reference("TaskResultResponse")), &[NOT_FOUND, CONFLICT])
        }},
        "/api/v1/tasks/{id}/checkpoint": { "get": {
            "operationId": "getTaskCheckpoint", "summary": "A task's last committed checkpoint.", "parameters": task_id(),
            "responses": responses("200", ok("The checkpoint", reference("CheckpointResponse")), &[NOT_FOUND])
        }},
        "/api/v1/tasks/{id}/dead-letters": { "get": {
            "operationId": "getTaskDeadLetters", "summary": "A page of a task's dead letters.",
            "parameters": [
                id_parameter(),
                query("limit", "Page size (default 50).", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
                query("offset", "Records skipped before the page.", json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX }))
            ],
            "responses": responses("200", ok("A page", reference("DeadLettersResponse")), &[NOT_FOUND])
        }},
        "/api/v1/metrics": { "get": {
            "operationId": "getMetrics", "summary": "Counts by status, success rate and durations (at most a second old).",
            "responses": responses("200", ok("The metrics", reference("BatchMetrics")), &[])
        }},
        "/api/v1/kinds": { "get": {
            "operationId": "listKinds", "summary": "The task kinds and their parameters.",
            "responses": responses("200", ok("The kinds", reference("KindsResponse")), &[])
        }},
        "/api/v1/events": { "get": {
            "operationId": "streamEvents",
            "summary": "Server-sent events of task changes (`event: task`, data a TaskSummary; `event: lagged`).",
            "parameters": [query("task", "Only this task's changes; the stream ends when it finishes.", reference("TaskId"))],
            "responses": responses("200", json!({
                "description": "An event stream",
                "content": { "text/event-stream": { "schema": { "type": "string" } } }
            }), &[NOT_FOUND])
        }},
        "/api/v1/openapi.json": { "get": {
            "operationId": "openapi", "summary": "This document.",
            "responses": responses("200", ok("OpenAPI 3.1", json!({ "type": "object" })), &[])
        }},
        "/api/v1/session": {
            "get": {
                "operationId": "getSession", "summary": "Who the request is.",
                "responses": responses("200", ok("The session", reference("SessionResponse")), &[])
            },
            "post": {
                "operationId": "signIn", "summary": "Sign in with a token: sets an HttpOnly, SameSite=Strict cookie.",
                "security": [],
                "requestBody": json_body("SignIn", true),
                "responses": responses("200", ok("Signed in", reference("SessionResponse")), &[TOO_LARGE])
            },
            "delete": {
                "operationId": "signOut", "summary": "Sign out: clears the cookie.", "security": [],
                "responses": { "204": { "description": "Signed out" }, "403": error("Cross-site request") }
            }
        }
    })
}

/// The document, for a server running `kinds`.
pub fn document(kinds: &KindsResponse) -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pump batch server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The batch manager over HTTP: tasks, live events, metrics. Errors are `{code, message}`."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "The admin or the read-only token." }
            },
            "schemas": schemas(kinds)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let document = document(&crate::kinds::describe_all(&batch_tasks::builtin_registry()));
        for (method, path) in crate::ROUTES {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path} is missing from the document"
            );
        }
        let described: usize = document["paths"]
            .as_object()
            .map(|paths| paths.values().filter_map(Value::as_object).map(serde_json::Map::len).sum())
            .unwrap_or(0);
        assert_eq!(described, crate::ROUTES.len(), "the document describes a route the router does not have");
    }

    #[test]
    fn every_reference_resolves() {
        let document = document(&crate::kinds::describe_all(&batch_tasks::builtin_registry()));
        let text = document.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String =
                piece.chars().take_while(|character| character.is_ascii_alphanumeric()).collect();
            assert!(document["components"]["schemas"][&name].is_object(), "unresolved schema {name}");
        }
    }
}
