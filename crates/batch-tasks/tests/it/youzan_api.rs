//! `youzan_order` reading the YouZan open API (feature `youzan-api`) from a stand-in started by each
//! test on 127.0.0.1 (axum): generated trades served page by page as `youzan.trades.sold.get` does,
//! with injected HTTP 429s, 500s, slow pages and dropped connections; the output and summary against
//! the same trades read from a file; a stop that resumes at its checkpoint's page; a refused token.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ErrorCode, TaskError, TaskId, TaskType,
};
use batch_tasks::records::{DeadLetterRecord, RunnerOptions};
use batch_tasks::testing::MemoryControl;
use batch_tasks::youzan::generator::{GeneratorConfig, generate};
use batch_tasks::youzan::{ApiCursor, YouzanOrderKind};
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The token the stand-in accepts.
const TOKEN: &str = "test-token-5f3a";

/// What the stand-in does to one request for a page, instead of answering it.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// HTTP 429, with `Retry-After` in seconds when given.
    TooManyRequests(Option<u64>),
    /// HTTP 500.
    ServerError,
    /// The answer, after this long.
    Slow(Duration),
    /// Half the answer, then the connection is cut.
    Drop,
}

/// The stand-in's state: the trades, the faults still to inject, and what it was asked.
#[derive(Debug, Default)]
struct Api {
    /// The list items, `{"full_order_info": ...}`, in listing order.
    trades: Vec<String>,
    /// Faults to inject, per page, in order.
    faults: Mutex<BTreeMap<u64, VecDeque<Fault>>>,
    /// Each request: the page asked for and when.
    requests: Mutex<Vec<(u64, Instant)>>,
    answered: AtomicUsize,
}

/// A running stand-in; stopped when dropped.
struct TestApi {
    api: Arc<Api>,
    url: String,
    stop: CancellationToken,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApi {
    async fn start(trades: Vec<String>) -> TestApi {
        let api = Arc::new(Api { trades, ..Api::default() });
        let app = Router::new()
            .route("/api/youzan.trades.sold.get/{version}", post(list))
            .with_state(Arc::clone(&api));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await.unwrap();
        });
        TestApi { api, url, stop }
    }

    fn inject(&self, page: u64, faults: &[Fault]) {
        self.api.faults.lock().unwrap().entry(page).or_default().extend(faults.iter().copied());
    }

    fn requests(&self) -> Vec<(u64, Instant)> {
        self.api.requests.lock().unwrap().clone()
    }

    fn pages_asked(&self) -> Vec<u64> {
        self.requests().into_iter().map(|(page, _)| page).collect()
    }
}

/// `youzan.trades.sold.get`: the page of `page_no` and `page_size`, or the fault due.
async fn list(State(api): State<Arc<Api>>, uri: Uri, body: Bytes) -> Response {
    let query: Value = serde_json::from_slice(&body).unwrap();
    assert!(query["start_created"].is_string() && query["end_created"].is_string(), "{query}");
    let page = query["page_no"].as_u64().unwrap();
    let size = usize::try_from(query["page_size"].as_u64().unwrap()).unwrap();
    api.requests.lock().unwrap().push((page, Instant::now()));
    let token =
        uri.query().unwrap_or_default().split('&').find_map(|pair| pair.strip_prefix("access_token="));
    if token != Some(TOKEN) {
        // As the real API answers an expired or wrong token: HTTP 200 and a refusal.
        return answer(
            StatusCode::OK,
            r#"{"success":false,"code":4201,"message":"invalid access_token"}"#.to_owned(),
        );
    }
    let fault = api.faults.lock().unwrap().get_mut(&page).and_then(VecDeque::pop_front);
    let start = (usize::try_from(page).unwrap() - 1) * size;
    let items = api.trades.iter().skip(start).take(size).cloned().collect::<Vec<_>>().join(",");
    let text = format!(
        r#"{{"success":true,"code":200,"message":"successful","data":{{"full_order_info_list":[{items}],"total_results":{}}}}}"#,
        api.trades.len()
    );
    match fault {
        None => {}
        Some(Fault::TooManyRequests(after)) => {
            let mut response = answer(StatusCode::TOO_MANY_REQUESTS, "slow down".to_owned());
            if let Some(after) = after {
                response.headers_mut().insert("retry-after", after.into());
            }
            return response;
        }
        Some(Fault::ServerError) => {
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "gateway broke".to_owned());
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Drop) => {
            let half = Bytes::from(text.into_bytes()).slice(..20);
            let parts: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))];
            return Response::new(Body::from_stream(futures::stream::iter(parts)));
        }
    }
    api.answered.fetch_add(1, Ordering::SeqCst);
    answer(StatusCode::OK, text)
}

fn answer(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

/// Generated trades as the API lists them (each line that is JSON, wrapped as a list item), and the
/// same items written one per line to `file`.
fn trades(count: u64, seed: u64, file: &Path) -> Vec<String> {
    let mut bytes = Vec::new();
    generate(&GeneratorConfig { count, seed, invalid_ratio: 0.08 }, &mut bytes).unwrap();
    let items: Vec<String> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            Some(if value.get("full_order_info").is_some() {
                line.to_owned()
            } else {
                format!(r#"{{"full_order_info":{line}}}"#)
            })
        })
        .collect();
    std::fs::write(file, items.iter().map(|item| format!("{item}\n")).collect::<String>()).unwrap();
    items
}

struct Setup {
    dir: tempfile::TempDir,
    file: PathBuf,
    token_file: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    Setup { file: dir.path().join("trades.jsonl"), token_file, dir }
}

fn api_params(setup: &Setup, url: &str, name: &str, page_size: u32, rate: u32) -> Value {
    json!({
        "input": url,
        "output": setup.dir.path().join(format!("{name}.jsonl")),
        "dead_letter": setup.dir.path().join(format!("{name}.dead.jsonl")),
        "token_file": setup.token_file,
        "start_created": "2024-01-01 00:00:00",
        "end_created": "2025-01-01 00:00:00",
        "page_size": page_size,
        "requests_per_second": rate,
    })
}

fn task(params: Value, batch_size: u32, timeout: Duration) -> BatchTask {
    let config =
        BatchConfig { batch_size, concurrency: 2, max_retries: 3, timeout, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::YouzanOrder).with_config(config).with_params(params);
    BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap()
}

fn kind() -> YouzanOrderKind {
    YouzanOrderKind::with_runner_options(
        RunnerOptions::default().with_initial_backoff(Duration::from_millis(20)).with_jitter(0.0),
    )
}

async fn run(
    task: &BatchTask,
    checkpoint: Option<Checkpoint>,
    control: Arc<MemoryControl>,
) -> Result<JobOutcome, TaskError> {
    let kind = kind();
    kind.validate(&task.params, &task.config)?;
    kind.run(JobContext::new(task.clone(), checkpoint, control as Arc<dyn JobControl>)).await
}

fn summary_of(outcome: JobOutcome) -> Value {
    match outcome {
        JobOutcome::Completed { summary, .. } => summary,
        other => panic!("the run did not complete: {other:?}"),
    }
}

fn dead_letters(path: &Path) -> Vec<DeadLetterRecord> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_through_faults_gives_the_output_and_summary_of_the_same_trades_in_a_file() {
    let setup = setup();
    let items = trades(1_000, 17, &setup.file);
    let pages = items.len().div_ceil(50) as u64;
    let api = TestApi::start(items.clone()).await;
    api.inject(2, &[Fault::TooManyRequests(Some(1))]);
    api.inject(3, &[Fault::ServerError, Fault::ServerError]);
    api.inject(5, &[Fault::Slow(Duration::from_millis(1_500))]);
    api.inject(7, &[Fault::Drop]);
    api.inject(pages, &[Fault::TooManyRequests(None), Fault::ServerError]);

    let from_api = task(api_params(&setup, &api.url, "api", 50, 1_000), 64, Duration::from_millis(500));
    let api_summary = summary_of(run(&from_api, None, Arc::default()).await.unwrap());
    let file_params = json!({
        "input": setup.file,
        "output": setup.dir.path().join("file.jsonl"),
        "dead_letter": setup.dir.path().join("file.dead.jsonl"),
    });
    let from_file = task(file_params, 64, Duration::from_secs(30));
    let file_summary = summary_of(run(&from_file, None, Arc::default()).await.unwrap());

    assert_eq!(api_summary, file_summary);
    assert_eq!(
        api_summary["valid"].as_u64().unwrap() + api_summary["invalid"].as_u64().unwrap(),
        items.len() as u64
    );
    assert!(api_summary["invalid"].as_u64().unwrap() > 10, "{api_summary}");
    let (api_output, file_output) = (
        std::fs::read(setup.dir.path().join("api.jsonl")).unwrap(),
        std::fs::read(setup.dir.path().join("file.jsonl")).unwrap(),
    );
    assert!(api_output == file_output, "the enriched orders differ");
    // A dead letter from the API names the trade's ordinal where a file names its line: the same
    // numbers, one item a line. Only the offset differs (an ordinal, not a byte).
    let strip = |records: Vec<DeadLetterRecord>| -> Vec<DeadLetterRecord> {
        records.into_iter().map(|record| DeadLetterRecord { offset: record.line - 1, ..record }).collect()
    };
    assert_eq!(
        strip(dead_letters(&setup.dir.path().join("api.dead.jsonl"))),
        strip(dead_letters(&setup.dir.path().join("file.dead.jsonl")))
    );

    // Every fault was met and retried; every page answered once.
    let asked = api.pages_asked();
    let count = |page: u64| asked.iter().filter(|asked| **asked == page).count();
    assert_eq!(
        (count(1), count(2), count(3), count(5), count(7), count(pages)),
        (1, 2, 3, 2, 2, 3),
        "{asked:?}"
    );
    assert_eq!(api.api.answered.load(Ordering::SeqCst), pages as usize, "{asked:?}");
    assert!(!asked.contains(&(pages + 1)), "the last page is known without asking past it");
    // The 429 on page 2 said to retry after a second.
    let requests = api.requests();
    let times: Vec<Instant> = requests.iter().filter(|(page, _)| *page == 2).map(|(_, at)| *at).collect();
    assert!(times[1] - times[0] >= Duration::from_secs(1), "{:?}", times[1] - times[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_requests_keep_to_the_rate() {
    let setup = setup();
    let items = trades(200, 5, &setup.file);
    let pages = items.len().div_ceil(10);
    let api = TestApi::start(items).await;
    // At 25 requests a second, one every 40 ms at the most.
    let params = api_params(&setup, &api.url, "rated", 10, 25);
    summary_of(run(&task(params, 30, Duration::from_secs(5)), None, Arc::default()).await.unwrap());
    let requests = api.requests();
    assert_eq!(requests.len(), pages);
    let span = requests[pages - 1].1 - requests[0].1;
    let least = Duration::from_millis(40) * u32::try_from(pages - 1).unwrap() - Duration::from_millis(5);
    assert!(span >= least, "{pages} requests within {span:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_run_resumes_at_the_page_of_its_checkpoint() {
    let setup = setup();
    let items = trades(500, 23, &setup.file);
    let (count, pages) = (items.len() as u64, items.len().div_ceil(40) as u64);
    let api = TestApi::start(items.clone()).await;
    let whole = task(api_params(&setup, &api.url, "whole", 40, 1_000), 25, Duration::from_secs(5));
    summary_of(run(&whole, None, Arc::default()).await.unwrap());

    // Chunks of 25 trades, pages of 40: a stop after the third or fourth chunk is inside a page.
    let stopped = task(api_params(&setup, &api.url, "stopped", 40, 1_000), 25, Duration::from_secs(5));
    let control = Arc::new(MemoryControl::stopping_after(3));
    let outcome = run(&stopped, None, Arc::clone(&control)).await.unwrap();
    assert_eq!(outcome, JobOutcome::Stopped);
    let checkpoint = control.last_checkpoint().unwrap();
    let cursor: ApiCursor = serde_json::from_value(checkpoint.source.clone()).unwrap();
    assert_eq!(cursor, ApiCursor::after(checkpoint.counters.processed + checkpoint.counters.failed, 40));
    assert!(cursor.page >= 2 && cursor.index > 0, "stopped inside a page: {cursor}");

    // The resume asks a stand-in of its own: a read-ahead request of the stopped run, sent before
    // the stop, may reach the first one after the stopped run returned.
    let resume_api = TestApi::start(items).await;
    let resume = task(api_params(&setup, &resume_api.url, "stopped", 40, 1_000), 25, Duration::from_secs(5));
    let summary = summary_of(run(&resume, Some(checkpoint), Arc::default()).await.unwrap());
    let resumed = resume_api.pages_asked();
    assert_eq!(resumed[0], cursor.page, "the resume asks first for the checkpoint's page: {resumed:?}");
    assert_eq!(resumed, (cursor.page..=pages).collect::<Vec<_>>(), "then each later page once");
    let whole_output = std::fs::read(setup.dir.path().join("whole.jsonl")).unwrap();
    assert!(whole_output == std::fs::read(setup.dir.path().join("stopped.jsonl")).unwrap());
    assert_eq!(summary["valid"].as_u64().unwrap() + summary["invalid"].as_u64().unwrap(), count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_task_with_a_clear_processing_error() {
    let setup = setup();
    let items = trades(50, 1, &setup.file);
    let api = TestApi::start(items).await;
    std::fs::write(&setup.token_file, "expired-token\n").unwrap();
    let params = api_params(&setup, &api.url, "refused", 20, 1_000);
    let error = run(&task(params, 10, Duration::from_secs(5)), None, Arc::default()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProcessingError);
    assert!(
        error.message.contains(&format!(
            "the YouZan API at {} refused the access token from the token file {} (code 4201: invalid access_token)",
            api.url,
            setup.token_file.display()
        )),
        "{}",
        error.message
    );
    assert!(!error.message.contains("expired-token"), "the token is never shown: {}", error.message);
    assert_eq!(api.pages_asked(), [1], "a refusal is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_keeps_failing_fails_the_task_once_its_retries_are_spent() {
    let setup = setup();
    let api = TestApi::start(trades(100, 2, &setup.file)).await;
    api.inject(2, &[Fault::ServerError; 4]);
    let params = api_params(&setup, &api.url, "broken", 30, 1_000);
    let error = run(&task(params, 10, Duration::from_secs(5)), None, Arc::default()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProcessingError);
    assert!(error.message.contains("page 2 failed 4 times, the last time: HTTP 500"), "{}", error.message);

    let slow = TestApi::start(trades(100, 2, &setup.file)).await;
    slow.inject(1, &[Fault::Slow(Duration::from_secs(2)); 4]);
    let params = api_params(&setup, &slow.url, "slow", 30, 1_000);
    let error = run(&task(params, 10, Duration::from_millis(200)), None, Arc::default()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::TimeoutError, "{error}");
    assert!(error.message.contains("page 1 failed 4 times"), "{}", error.message);
}

#[tokio::test]
async fn api_params_are_checked_at_creation() {
    let setup = setup();
    let kind = kind();
    let mut params = api_params(&setup, "https://open.youzan.com", "checked", 100, 5);
    kind.validate(&params, &BatchConfig::default()).unwrap();
    let error = kind.validate(&params, &BatchConfig { partitions: 2, ..BatchConfig::default() }).unwrap_err();
    assert_eq!((error.code, &error.details["param"]), (ErrorCode::ConfigurationError, &json!("partitions")));
    params["token_file"] = json!(setup.dir.path().join("missing.txt"));
    let error = kind.validate(&params, &BatchConfig::default()).unwrap_err();
    assert_eq!(error.details["param"], "token_file", "{error}");
    let error = kind
        .validate(
            &json!({ "input": setup.file, "output": "o.jsonl", "page_size": 10 }),
            &BatchConfig::default(),
        )
        .unwrap_err();
    assert_eq!(error.details["param"], "page_size", "{error}");
    assert!(error.message.contains("applies only when input is the YouZan open API"), "{error}");
}
