//! The JSON API: every route, a task's whole life, and the error answers.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Options, TestServer, assert_error, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_only_with_documented_statuses() {
    let server = TestServer::start(Options::default()).await;
    let (status, document) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let id = batch_model::TaskId::new().to_string();
    for (method, template) in batch_server::ROUTES {
        let path = template.replace("{id}", &id);
        let path = if path == "/api/v1/events" { format!("{path}?task={id}") } else { path };
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let request = server.admin(method.clone(), &path);
        let request = if method == Method::POST { request.json(&json!({})) } else { request };
        let (status, body) = send(request).await;
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.starts_with("no route for"), "{method} {path}: {body}");
        let documented = &document["paths"][template][method.as_str().to_lowercase()]["responses"];
        assert!(
            documented[status.to_string()].is_object(),
            "{method} {path} answered {status}, not documented: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_youzan_task_runs_to_its_result_through_the_api() {
    let server = TestServer::start(Options::default()).await;
    server.trades("trades.jsonl", 2000);
    let task = server.youzan_task("trades.jsonl", 200).await;
    let id = task["id"].as_str().unwrap().to_owned();
    // The server's own worker may have claimed it before the answer was written.
    assert!(task["status"] == "pending" || task["status"] == "processing", "{task}");
    assert_eq!(
        task["params"]["input"],
        server.path("trades.jsonl").to_str().unwrap(),
        "paths are stored absolute"
    );

    let done = server.wait_task(&id, Duration::from_secs(60), |task| task["status"] == "completed").await;
    assert_eq!(done["progress"]["processed"], 1900);
    assert_eq!(done["progress"]["failed"], 100);

    let (status, result) = server.get(&format!("/api/v1/tasks/{id}/result")).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["result"]["valid"], 1900);
    assert!(result["result"]["regions"].as_object().is_some_and(|regions| !regions.is_empty()));
    assert_eq!(result["metrics"]["processed_items"], 1900);

    let (status, state) = server.get(&format!("/api/v1/tasks/{id}/status")).await;
    assert_eq!((status, &state["status"]), (200, &json!("completed")));

    let (status, checkpoint) = server.get(&format!("/api/v1/tasks/{id}/checkpoint")).await;
    assert_eq!(status, 200);
    assert!(
        checkpoint["checkpoint"]["sequence"].as_u64().is_some_and(|sequence| sequence >= 10),
        "{checkpoint}"
    );

    let (status, page) = server.get(&format!("/api/v1/tasks/{id}/dead-letters?limit=30&offset=60")).await;
    assert_eq!(status, 200, "{page}");
    let records = page["dead_letters"].as_array().unwrap();
    assert_eq!(records.len(), 30);
    assert_eq!(page["has_more"], true);
    assert!(records.iter().all(|record| record["line"].as_u64().is_some_and(|line| line > 0)));
    assert!(
        records.iter().all(|record| record["code"] == "VALIDATION_ERROR" && record["message"].is_string())
    );
    let (_, last) = server.get(&format!("/api/v1/tasks/{id}/dead-letters?limit=50&offset=90")).await;
    assert_eq!((last["dead_letters"].as_array().unwrap().len(), &last["has_more"]), (10, &json!(false)));

    let (status, page) = server.get("/api/v1/tasks?status=completed&type=youzan_order&limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1);
    assert_eq!(page["tasks"][0]["id"], id.as_str());
    let (_, none) = server.get("/api/v1/tasks?status=failed").await;
    assert_eq!(none["total"], 0);

    let (_, metrics) = server.get("/api/v1/metrics").await;
    assert_eq!((metrics["completed_tasks"].as_u64(), metrics["success_rate"].as_f64()), (Some(1), Some(1.0)));

    // The item counters come from the change feed, which may be a moment behind the store: scrape
    // until the task's end has reached them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let response = server.admin(Method::GET, "/metrics").send().await.unwrap();
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = response.text().await.unwrap();
        if text.contains("batch_task_duration_seconds_count{kind=\"youzan_order\",status=\"completed\"} 1")
            || tokio::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("batch_tasks{status=\"completed\"} 1"), "{text}");
    assert!(text.contains("batch_items_processed_total{kind=\"youzan_order\"} 1900"), "{text}");
    assert!(text.contains("batch_items_failed_total{kind=\"youzan_order\"} 100"), "{text}");
    assert!(
        text.contains("batch_task_duration_seconds_count{kind=\"youzan_order\",status=\"completed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "http_requests_total{method=\"GET\",route=\"/api/v1/tasks/{id}/result\",status=\"200\"}"
        ),
        "{text}"
    );

    let (status, kinds) = server.get("/api/v1/kinds").await;
    assert_eq!(status, 200);
    let youzan =
        kinds["kinds"].as_array().unwrap().iter().find(|kind| kind["task_type"] == "youzan_order").unwrap();
    assert!(
        youzan["params"]
            .as_array()
            .unwrap()
            .iter()
            .any(|param| param["name"] == "input" && param["role"] == "input")
    );

    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_coded_errors_never_a_500() {
    let server = TestServer::start(Options { workers: 0, ..Options::default() }).await;
    let unknown = batch_model::TaskId::new();
    assert_error(&server.get(&format!("/api/v1/tasks/{unknown}")).await, 404, "NOT_FOUND");
    assert_error(&server.get(&format!("/api/v1/tasks/{unknown}/result")).await, 404, "NOT_FOUND");
    assert_error(&server.get(&format!("/api/v1/tasks/{unknown}/dead-letters")).await, 404, "NOT_FOUND");
    assert_error(&server.post(&format!("/api/v1/tasks/{unknown}/stop"), json!({})).await, 404, "NOT_FOUND");
    assert_error(&server.get("/api/v1/tasks/not-an-id").await, 400, "VALIDATION_ERROR");
    assert_error(&server.get("/api/v1/events?task=nope").await, 400, "VALIDATION_ERROR");
    assert_error(&server.get("/nowhere").await, 404, "NOT_FOUND");
    assert_error(&send(server.admin(Method::PUT, "/api/v1/tasks")).await, 405, "VALIDATION_ERROR");

    // Malformed bodies.
    let raw = |body: &'static str| {
        server.admin(Method::POST, "/api/v1/tasks").header("content-type", "application/json").body(body)
    };
    assert_error(&send(raw("{\"task_type\": ")).await, 400, "VALIDATION_ERROR");
    assert_error(&send(raw("[1, 2]")).await, 400, "VALIDATION_ERROR");
    assert_error(&send(raw("{\"task_type\": 7}")).await, 400, "VALIDATION_ERROR");
    assert_error(
        &send(server.admin(Method::POST, "/api/v1/tasks").body("{}")).await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &server.post("/api/v1/tasks", json!({ "task_type": "youzan_order", "surprise": 1 })).await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &server.post("/api/v1/tasks", json!({ "task_type": "no_such_kind" })).await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &server.post("/api/v1/tasks", json!({ "task_type": "Bad-Name" })).await,
        400,
        "VALIDATION_ERROR",
    );
    let bad_config =
        server.post("/api/v1/tasks", json!({ "task_type": "train", "config": { "batch_size": 0 } })).await;
    assert_error(&bad_config, 400, "CONFIGURATION_ERROR");
    assert!(bad_config.1["message"].as_str().unwrap().contains("batch_size"));
    assert_error(
        &server.post("/api/v1/tasks", json!({ "task_type": "youzan_order", "params": {} })).await,
        400,
        "CONFIGURATION_ERROR",
    );
    assert_error(
        &server.post("/api/v1/tasks", json!({ "task_type": "train", "params": [] })).await,
        400,
        "VALIDATION_ERROR",
    );

    // A 10 MB body, announced and streamed without a length.
    let (status, body) = post_big_body(&server, true).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("VALIDATION_ERROR") && body.contains("larger than"), "{body}");
    let (status, body) = post_big_body(&server, false).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("VALIDATION_ERROR"), "{body}");

    // Query parameters.
    for query in ["limit=0", "limit=1001", "limit=abc", "offset=-1", "status=done", "type=Bad-Name"] {
        assert_error(&server.get(&format!("/api/v1/tasks?{query}")).await, 400, "VALIDATION_ERROR");
    }
    // States: a pending task has no result; a cancelled one cannot be stopped again.
    server.trades("t.jsonl", 10);
    let task = server.youzan_task("t.jsonl", 10).await;
    let id = task["id"].as_str().unwrap();
    assert_error(&server.get(&format!("/api/v1/tasks/{id}/result")).await, 409, "INVALID_STATE");
    assert_error(
        &server.get(&format!("/api/v1/tasks/{id}/dead-letters?limit=0")).await,
        400,
        "VALIDATION_ERROR",
    );
    let (status, stopped) =
        server.post(&format!("/api/v1/tasks/{id}/stop"), json!({ "reason": "test" })).await;
    assert_eq!((status, &stopped["status"]), (200, &json!("cancelled")));
    let task = server.get(&format!("/api/v1/tasks/{id}")).await.1;
    assert_eq!(task["error"]["code"], "CANCELLED", "{task}");
    assert_error(&server.post(&format!("/api/v1/tasks/{id}/stop"), json!({})).await, 409, "INVALID_STATE");
    assert_error(
        &send(server.admin(Method::POST, &format!("/api/v1/tasks/{id}/stop")).body("{x")).await,
        400,
        "VALIDATION_ERROR",
    );
    // Resume continues a cancelled task as a new attempt (pending again, for any worker).
    let (status, resumed) = server.post(&format!("/api/v1/tasks/{id}/resume"), Value::Null).await;
    assert_eq!(
        (status, &resumed["status"], &resumed["attempt"]),
        (200, &json!("pending"), &json!(2)),
        "{resumed}"
    );
    assert_eq!(resumed["attempts"][0]["status"], "cancelled", "{resumed}");
    assert_error(
        &server.post(&format!("/api/v1/tasks/{id}/resume"), Value::Null).await,
        409,
        "INVALID_STATE",
    );
    server.stop().await;
}

/// Posts a 10 MB JSON-ish body over a raw connection (with a `Content-Length`, or chunked), reading
/// the answer while still writing: the server answers before it has read the body and closes the
/// connection, which an ordinary client reports as a broken pipe instead of the answer.
async fn post_big_body(server: &TestServer, with_length: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let framing = if with_length {
        format!("content-length: {}\r\n", 10 * 1024 * 1024)
    } else {
        "transfer-encoding: chunked\r\n".to_owned()
    };
    let head = format!(
        "POST /api/v1/tasks HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n{framing}connection: close\r\n\r\n",
        server.addr,
        crate::support::ADMIN
    );
    let write = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..160 {
            if with_length {
                writer.write_all(&chunk).await?;
            } else {
                writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                writer.write_all(&chunk).await?;
                writer.write_all(b"\r\n").await?;
            }
        }
        if !with_length {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), reader.read(&mut buffer)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let _ = write.await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, text)
}
