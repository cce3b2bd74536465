//! Security on by default: tokens and roles, the session cookie, cross-site refusals, data-root
//! confinement, and the loopback-only mode without a token.

use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN, Options, READER, TestServer, assert_error, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_needs_a_valid_token() {
    let server = TestServer::start(Options { workers: 0, ..Options::default() }).await;
    let id = batch_model::TaskId::new().to_string();
    for (method, template) in batch_server::ROUTES {
        let path = template.replace("{id}", &id);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let public = path == "/healthz" || (path == "/api/v1/session" && method != Method::GET);
        let none = send(server.client.request(method.clone(), server.url(&path))).await;
        let wrong = send(
            server.client.request(method.clone(), server.url(&path)).bearer_auth("not-the-token-0123456789"),
        )
        .await;
        if public {
            assert_ne!(none.0, 401, "{method} {path}");
            continue;
        }
        assert_error(&none, 401, "UNAUTHORIZED");
        assert_error(&wrong, 401, "UNAUTHORIZED");
        let malformed = send(
            server
                .client
                .request(method.clone(), server.url(&path))
                .header("authorization", format!("Basic {ADMIN}")),
        )
        .await;
        assert_error(&malformed, 401, "UNAUTHORIZED");
    }
    assert_eq!(send(server.client.get(server.url("/healthz"))).await.0, 200);
    // The dashboard's files hold no data and need no token.
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    assert_eq!(server.client.get(server.url("/assets/app.js")).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_token_reads_and_may_not_act() {
    let server = TestServer::start(Options { workers: 0, ..Options::default() }).await;
    server.trades("t.jsonl", 10);
    let task = server.youzan_task("t.jsonl", 10).await;
    let id = task["id"].as_str().unwrap();
    let reader =
        |method: Method, path: &str| server.client.request(method, server.url(path)).bearer_auth(READER);
    assert_eq!(send(reader(Method::GET, &format!("/api/v1/tasks/{id}"))).await.0, 200);
    assert_eq!(send(reader(Method::GET, "/api/v1/tasks")).await.0, 200);
    assert_eq!(send(reader(Method::GET, "/metrics")).await.0, 200);
    let (_, session) = send(reader(Method::GET, "/api/v1/session")).await;
    assert_eq!(session, json!({ "role": "read", "auth_required": true }));
    let create = json!({ "task_type": "youzan_order", "params": { "input": "t.jsonl", "output": "o", "dead_letter": "d" } });
    assert_error(&send(reader(Method::POST, "/api/v1/tasks").json(&create)).await, 403, "FORBIDDEN");
    assert_error(&send(reader(Method::POST, &format!("/api/v1/tasks/{id}/stop"))).await, 403, "FORBIDDEN");
    assert_error(&send(reader(Method::POST, &format!("/api/v1/tasks/{id}/resume"))).await, 403, "FORBIDDEN");
    // Nothing changed.
    let (_, after) = server.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(after["status"], "pending");
    assert_eq!(server.get("/api/v1/tasks").await.1["total"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_signs_in_and_cross_site_changes_are_refused() {
    let server = TestServer::start(Options { workers: 0, ..Options::default() }).await;
    let wrong = send(
        server.client.post(server.url("/api/v1/session")).json(&json!({ "token": "nope-nope-nope-nope" })),
    )
    .await;
    assert_error(&wrong, 401, "UNAUTHORIZED");
    let response = server
        .client
        .post(server.url("/api/v1/session"))
        .json(&json!({ "token": ADMIN }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |method: Method, path: &str| {
        server.client.request(method, server.url(path)).header("cookie", pair.clone())
    };
    let (status, session) = send(with_cookie(Method::GET, "/api/v1/session")).await;
    assert_eq!((status, session["role"].as_str()), (200, Some("admin")));

    server.trades("t.jsonl", 10);
    let create = json!({ "task_type": "youzan_order", "params": { "input": "t.jsonl", "output": "o.jsonl", "dead_letter": "d.jsonl" } });
    // Same origin: accepted.
    let same = send(
        with_cookie(Method::POST, "/api/v1/tasks").header("sec-fetch-site", "same-origin").json(&create),
    )
    .await;
    assert_eq!(same.0, 201, "{}", same.1);
    // Another site, by Fetch Metadata or by Origin: refused, and nothing is created.
    let cross =
        send(with_cookie(Method::POST, "/api/v1/tasks").header("sec-fetch-site", "cross-site").json(&create))
            .await;
    assert_error(&cross, 403, "FORBIDDEN");
    let origin = send(
        with_cookie(Method::POST, "/api/v1/tasks").header("origin", "http://evil.example").json(&create),
    )
    .await;
    assert_error(&origin, 403, "FORBIDDEN");
    assert_eq!(server.get("/api/v1/tasks").await.1["total"], 1);
    // No permissive CORS: a preflight gets no allow-origin.
    let preflight = server
        .client
        .request(Method::OPTIONS, server.url("/api/v1/tasks"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_data_roots_are_refused_naming_the_parameter() {
    let server = TestServer::start(Options { workers: 0, ..Options::default() }).await;
    server.trades("t.jsonl", 10);
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), server.path("escape")).unwrap();
    let cases = [
        ("input", "../secret.jsonl"),
        ("input", "/etc/passwd"),
        ("output", "escape/out.jsonl"),
        ("dead_letter", "sub/../../d.jsonl"),
        ("rules", outside.path().to_str().unwrap()),
    ];
    for (param, value) in cases {
        let mut params = json!({ "input": "t.jsonl", "output": "o.jsonl", "dead_letter": "d.jsonl" });
        params[param] = json!(value);
        let answer =
            server.post("/api/v1/tasks", json!({ "task_type": "youzan_order", "params": params })).await;
        assert_error(&answer, 400, "VALIDATION_ERROR");
        let message = answer.1["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("params.{param}: ")), "{param}={value}: {message}");
    }
    assert_eq!(server.get("/api/v1/tasks").await.1["total"], 0);
    assert!(!outside.path().join("out.jsonl").exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_left_to_the_kind_while_files_are_confined() {
    let server = TestServer::start(Options { workers: 0, ..Options::default() }).await;
    let url = "postgres://app@db.example:5432/sales";
    let params = json!({
        "input": url, "input_table": "orders", "output": url, "output_table": "big", "dead_letter": "d.jsonl",
    });
    let (status, task) =
        server.post("/api/v1/tasks", json!({ "task_type": "batch_process", "params": params })).await;
    assert_eq!(status, 201, "{task}");
    assert_eq!((&task["params"]["input"], &task["params"]["output"]), (&json!(url), &json!(url)));
    assert_eq!(
        task["params"]["dead_letter"],
        server.path("d.jsonl").to_str().unwrap(),
        "files are still confined"
    );
    // An address is no way around the data roots for the files beside it.
    let params = json!({ "input": url, "input_table": "orders", "output": "../out.jsonl" });
    let answer =
        server.post("/api/v1/tasks", json!({ "task_type": "batch_process", "params": params })).await;
    assert_error(&answer, 400, "VALIDATION_ERROR");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_host_names_are_served() {
    let server = TestServer::start(Options { tokens: false, workers: 0 }).await;
    let (status, session) = send(server.client.get(server.url("/api/v1/session"))).await;
    assert_eq!((status, session["auth_required"].as_bool()), (200, Some(false)));
    let rebound =
        send(server.client.get(server.url("/api/v1/tasks")).header("host", "evil.example:8080")).await;
    assert_error(&rebound, 403, "FORBIDDEN");
    server.stop().await;

    let config = batch_server::ServeConfig { addr: "0.0.0.0:0".parse().unwrap(), ..Default::default() };
    let store = std::sync::Arc::new(batch_manager::store::memory::MemoryStore::new());
    let refused = batch_server::Server::bind(config, store).await.unwrap_err();
    assert_eq!(refused.code(), "CONFIGURATION_ERROR");
    assert!(refused.to_string().contains("--token-file"), "{refused}");
}
