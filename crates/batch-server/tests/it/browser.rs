//! The dashboard in the system's headless Chromium, driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`; nothing is downloaded): sign in, submit a `youzan_order` task
//! through the form, watch its bar reach 100 % and its GMV chart appear, stop a second running task
//! and see it turn cancelled, resume it as a second attempt and stop it again. Screenshots go to
//! `target/tmp/dashboard/`.
//!
//! Without Chromium the test says so in one line and passes, unless `PUMP_REQUIRE_TOOLS=1` (CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::{ADMIN, Options, TestServer};

const CHROMIUM: [&str; 2] = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"];
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Kills chromedriver when the test ends, however it ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = CHROMIUM.iter().map(PathBuf::from).find(|path| path.exists())?;
    let driver = PathBuf::from(CHROMEDRIVER);
    driver.exists().then_some((chromium, driver))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn shot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// Clicks `css`, finding it again if the page redrew it between the find and the click.
async fn click(client: &Client, css: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let element = wait_for(client, css, limit).await;
        match element.click().await {
            Ok(()) => return,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "cannot click `{css}`: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn wait_for(client: &Client, css: &str, limit: Duration) -> fantoccini::elements::Element {
    match client.wait().at_most(limit).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(error) => {
            let source = client.source().await.unwrap_or_default();
            panic!("no `{css}` after {limit:?}: {error}\n{source}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_submits_follows_and_stops_tasks() {
    let Some((chromium, chromedriver)) = tools() else {
        let required = std::env::var("PUMP_REQUIRE_TOOLS").is_ok_and(|value| value == "1");
        assert!(
            !required,
            "PUMP_REQUIRE_TOOLS=1 but Chromium is missing: apt-get install chromium chromium-driver"
        );
        #[allow(clippy::print_stderr, reason = "the one line that says the test was skipped")]
        {
            eprintln!(
                "browser test skipped: chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
            );
        }
        return;
    };
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&screenshots).unwrap();
    let profile = tempfile::tempdir().unwrap();

    let server = TestServer::start(Options { workers: 2, ..Options::default() }).await;
    server.trades("trades.jsonl", 3000);
    server.trades("big.jsonl", 100_000);

    let port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1100", format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let driver_url = format!("http://127.0.0.1:{port}");
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&driver_url)
            .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(tokio::time::Instant::now() < deadline, "chromedriver did not start: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // Sign in.
    client.goto(&server.url("/")).await.unwrap();
    wait_for(&client, "#signin[open] #token", Duration::from_secs(10)).await.send_keys(ADMIN).await.unwrap();
    shot(&client, &screenshots, "01-sign-in.png").await;
    click(&client, "#signin-submit", Duration::from_secs(10)).await;
    wait_for(&client, "#task-rows", Duration::from_secs(10)).await;

    // Submit a youzan_order task through the form.
    client.goto(&server.url("/#/submit?kind=youzan_order")).await.unwrap();
    wait_for(&client, "input[name=param-input]", Duration::from_secs(10))
        .await
        .send_keys("trades.jsonl")
        .await
        .unwrap();
    for (name, value) in [
        ("param-output", "trades.out.jsonl"),
        ("param-dead_letter", "trades.dead.jsonl"),
        ("config-batch_size", "100"),
    ] {
        client
            .find(Locator::Css(&format!("input[name={name}]")))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    shot(&client, &screenshots, "02-submit-form.png").await;
    click(&client, "#submit-task", Duration::from_secs(10)).await;

    // Its bar reaches 100 % and its GMV chart appears.
    wait_for(&client, "#task-progress .bar[data-percent='100']", Duration::from_secs(90)).await;
    wait_for(&client, "#chart-gmv-region rect", Duration::from_secs(30)).await;
    let url = client.current_url().await.unwrap();
    let id = url.fragment().unwrap().trim_start_matches("/tasks/").to_owned();
    let (_, task) = server.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "completed", "{task}");
    wait_for(&client, "#task-status .status.completed", Duration::from_secs(10)).await;
    shot(&client, &screenshots, "03-task-completed.png").await;

    // A second, long task: stop it from its page, with confirmation.
    let long = server.youzan_task("big.jsonl", 10).await;
    let long_id = long["id"].as_str().unwrap().to_owned();
    server.wait_task(&long_id, Duration::from_secs(60), |task| task["status"] == "processing").await;
    client.goto(&server.url(&format!("/#/tasks/{long_id}"))).await.unwrap();
    wait_for(&client, "#task-status .status.processing", Duration::from_secs(10)).await;
    click(&client, "#stop-task", Duration::from_secs(10)).await;
    wait_for(&client, "#confirm[open] #confirm-yes", Duration::from_secs(10)).await;
    shot(&client, &screenshots, "04-confirm-stop.png").await;
    click(&client, "#confirm-yes", Duration::from_secs(10)).await;
    wait_for(&client, "#task-status .status.cancelled", Duration::from_secs(60)).await;
    let (_, stopped) = server.get(&format!("/api/v1/tasks/{long_id}")).await;
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    shot(&client, &screenshots, "05-task-cancelled.png").await;
    // Resume it: a new attempt from its last checkpoint; then stop it again.
    click(&client, "#resume-task", Duration::from_secs(10)).await;
    click(&client, "#confirm[open] #confirm-yes", Duration::from_secs(10)).await;
    wait_for(&client, "#task-status .status.processing", Duration::from_secs(30)).await;
    let (_, resumed) = server.get(&format!("/api/v1/tasks/{long_id}")).await;
    assert_eq!(resumed["attempt"], 2, "{resumed}");
    shot(&client, &screenshots, "06-task-resumed.png").await;
    click(&client, "#stop-task", Duration::from_secs(10)).await;
    click(&client, "#confirm[open] #confirm-yes", Duration::from_secs(10)).await;
    wait_for(&client, "#task-status .status.cancelled", Duration::from_secs(60)).await;

    // The list shows both, with their statuses.
    client.goto(&server.url("/#/")).await.unwrap();
    wait_for(
        &client,
        &format!("#task-rows tr[data-id='{long_id}'][data-status='cancelled']"),
        Duration::from_secs(10),
    )
    .await;
    wait_for(
        &client,
        &format!("#task-rows tr[data-id='{id}'][data-status='completed']"),
        Duration::from_secs(10),
    )
    .await;
    shot(&client, &screenshots, "07-task-list.png").await;

    client.close().await.unwrap();
    server.stop().await;
}
