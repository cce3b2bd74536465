//! Server-sent events: a task's progress delivered to its end, one hub for many clients, streams
//! closed and tasks handed back at shutdown, and a handed-back task resumed by the next server.

use std::time::Duration;

use serde_json::Value;

use crate::support::{ADMIN, Options, TestServer};

/// Reads server-sent events from `response` until the stream ends or `limit` passes; returns the
/// `(event, data)` pairs and whether the server ended the stream.
async fn read_events(mut response: reqwest::Response, limit: Duration) -> (Vec<(String, Value)>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut events = Vec::new();
    let mut buffer = String::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_elapsed) => return (events, false),
            Ok(chunk) => chunk.unwrap(),
        };
        let Some(chunk) = chunk else {
            return (events, true);
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            if !data.is_empty() {
                events.push((name, serde_json::from_str(&data).unwrap()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_delivers_a_tasks_progress_to_its_end() {
    let server = TestServer::start(Options::default()).await;
    server.trades("trades.jsonl", 5000);
    let all = server.client.get(server.url("/api/v1/events")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(all.headers()["content-type"], "text/event-stream");
    let task = server.youzan_task("trades.jsonl", 100).await;
    let id = task["id"].as_str().unwrap().to_owned();
    // Two clients on the same task: the same events from the one hub.
    let url = server.url(&format!("/api/v1/events?task={id}"));
    let first = server.client.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    let second = server.client.get(&url).bearer_auth(ADMIN).send().await.unwrap();

    let (events, ended) = read_events(first, Duration::from_secs(60)).await;
    assert!(ended, "the stream ends after the task finishes: {events:?}");
    let (events_second, _) = read_events(second, Duration::from_secs(60)).await;
    assert_eq!(events.last(), events_second.last());
    assert!(events.len() >= 3, "{events:?}");
    assert!(events.iter().all(|(name, data)| name == "task" && data["id"] == id.as_str()));
    let last = &events.last().unwrap().1;
    assert_eq!(last["status"], "completed");
    assert_eq!(
        last["progress"]["processed"].as_u64().unwrap() + last["progress"]["failed"].as_u64().unwrap(),
        5000
    );
    let done: Vec<u64> = events
        .iter()
        .map(|(_, data)| {
            data["progress"]["processed"].as_u64().unwrap() + data["progress"]["failed"].as_u64().unwrap()
        })
        .collect();
    assert!(done.windows(2).all(|pair| pair[0] <= pair[1]), "progress goes forward: {done:?}");
    assert!(done.iter().any(|count| *count > 0 && *count < 5000), "progress between start and end: {done:?}");

    let (all_events, ended) = read_events(all, Duration::from_millis(300)).await;
    assert!(!ended, "the stream of every task stays open");
    let statuses: Vec<&str> = all_events.iter().filter_map(|(_, data)| data["status"].as_str()).collect();
    // The hub gathers changes for a window before it reads a task, so a creation and a claim in the
    // same window arrive as one event.
    assert!(matches!(statuses.first(), Some(&"pending" | &"processing")), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"completed"), "{statuses:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_streams_and_hands_tasks_back_for_the_next_server() {
    let server = TestServer::start(Options::default()).await;
    server.trades("big.jsonl", 100_000);
    let task = server.youzan_task("big.jsonl", 10).await;
    let id = task["id"].as_str().unwrap().to_owned();
    server
        .wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64().unwrap_or(0) > 100
        })
        .await;
    let stream = server.client.get(server.url("/api/v1/events")).bearer_auth(ADMIN).send().await.unwrap();
    let dir = server.stop_keeping_files().await;
    let (_, ended) = read_events(stream, Duration::from_secs(5)).await;
    assert!(ended, "shutdown ends the event streams");

    // The task was handed back at a checkpoint: the next server resumes it and finishes it.
    let next = TestServer::start_in(Options { workers: 0, ..Options::default() }, dir).await;
    let (_, handed_back) = next.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(handed_back["status"], "processing", "{handed_back}");
    let (_, checkpoint) = next.get(&format!("/api/v1/tasks/{id}/checkpoint")).await;
    let committed = checkpoint["checkpoint"]["counters"]["processed"].as_u64().unwrap();
    assert!(committed > 0, "{checkpoint}");
    let (status, resumed) =
        crate::support::send(next.admin(reqwest::Method::POST, &format!("/api/v1/tasks/{id}/resume"))).await;
    assert_eq!(status, 200, "{resumed}");
    let (status, _) = next.post(&format!("/api/v1/tasks/{id}/stop"), Value::Null).await;
    assert_eq!(status, 200);
    let stopped = next.wait_task(&id, Duration::from_secs(60), |task| task["status"] == "cancelled").await;
    assert!(stopped["progress"]["processed"].as_u64().unwrap() >= committed, "{stopped}");
    next.stop().await;
}
