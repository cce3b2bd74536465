//! A server started for a test: a temporary store and data root, token files, a loopback port, and
//! helpers to call it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use batch_server::{ServeConfig, Server, ServerError};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ADMIN: &str = "admin-token-0123456789abcdef";
pub(crate) const READER: &str = "read-token-0123456789abcdef";

/// How a test server is started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Token files (admin and read-only), or no authentication.
    pub(crate) tokens: bool,
    /// Task slots.
    pub(crate) workers: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { tokens: true, workers: 1 }
    }
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) client: reqwest::Client,
    pub(crate) data: PathBuf,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    pub(crate) async fn start(options: Options) -> TestServer {
        TestServer::start_in(options, tempfile::tempdir().unwrap()).await
    }

    /// A server on the store and data root in `dir` (made by an earlier server, or new).
    pub(crate) async fn start_in(options: Options, dir: tempfile::TempDir) -> TestServer {
        let data = dir.path().join("data");
        if !data.exists() {
            std::fs::create_dir(&data).unwrap();
        }
        let data = data.canonicalize().unwrap();
        let mut config = ServeConfig::default();
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.workers = options.workers;
        config.data_roots = vec![data.clone()];
        config.event_window = Duration::from_millis(50);
        config.manager = config.manager.with_poll_interval(Duration::from_millis(50));
        if options.tokens {
            let admin = dir.path().join("token");
            let reader = dir.path().join("read-token");
            std::fs::write(&admin, format!("{ADMIN}\n")).unwrap();
            std::fs::write(&reader, READER).unwrap();
            config.token_file = Some(admin);
            config.read_token_file = Some(reader);
        }
        let store = batch_manager::store::sqlite::SqliteStore::open(
            dir.path().join("batch.db"),
            batch_manager::store::sqlite::SqliteOptions::default(),
        )
        .unwrap();
        let server = Server::bind(config, std::sync::Arc::new(store)).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        // With feature `youzan-api` anywhere in the build, reqwest is compiled with rustls and no crypto
        // provider of its own (ring is ours, not its aws-lc-rs): even a plain-HTTP client needs one.
        #[allow(deprecated, reason = "ring builds without cmake; plain HTTP here, no key exchange")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        TestServer { addr, client, data, dir, stop: Some(stop), handle: Some(handle) }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the admin token.
    pub(crate) fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        send(self.admin(reqwest::Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.admin(reqwest::Method::POST, path).json(&body)).await
    }

    /// Writes `count` generated YouZan trades to `name` in the data root.
    pub(crate) fn trades(&self, name: &str, count: u64) -> PathBuf {
        let path = self.data.join(name);
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let config = batch_tasks::youzan::generator::GeneratorConfig { count, seed: 7, invalid_ratio: 0.05 };
        batch_tasks::youzan::generator::generate(&config, file).unwrap();
        path
    }

    /// Creates a youzan_order task over `input` (in the data root).
    pub(crate) async fn youzan_task(&self, input: &str, batch_size: u32) -> Value {
        let stem = input.trim_end_matches(".jsonl");
        let (status, task) = self
            .post(
                "/api/v1/tasks",
                json!({
                    "task_type": "youzan_order",
                    "config": { "batch_size": batch_size },
                    "params": {
                        "input": input,
                        "output": format!("{stem}.out.jsonl"),
                        "dead_letter": format!("{stem}.dead.jsonl"),
                    },
                }),
            )
            .await;
        assert_eq!(status, 201, "{task}");
        task
    }

    /// Waits (up to `limit`) until `check` accepts the task's JSON.
    pub(crate) async fn wait_task(&self, id: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (_, task) = self.get(&format!("/api/v1/tasks/{id}")).await;
            if check(&task) {
                return task;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} did not get there in {limit:?}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.data.join(name)
    }

    /// Shuts the server down (as SIGTERM does) and waits for it.
    pub(crate) async fn stop(self) {
        self.stop_keeping_files().await;
    }

    /// Shuts the server down and hands back its folder (store and data), for a next server.
    pub(crate) async fn stop_keeping_files(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), handle).await.unwrap().unwrap().unwrap();
        }
        let TestServer { dir, .. } = self;
        dir
    }
}

pub(crate) async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts an error answer: its status and code.
pub(crate) fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|message| !message.is_empty()), "{}", answer.1);
}
