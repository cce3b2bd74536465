//! Live-update fan-out of `batch serve`: clients follow one running task over server-sent events
//! (`/api/v1/events?task=ID`). Two rounds in one run — 1 client (the baseline), then N (default
//! 200) — each on a fresh `youzan_order` task over the same input; for each it prints the events
//! each client got, the delivery latency (the time from the progress record's `updated_at` stamp to
//! its arrival at the client; same machine, same clock) and the server's CPU time during the round
//! (from `/proc/PID/stat`).
//!
//! ```text
//! cargo run --release -p benches --bin sse_fanout -- --url http://127.0.0.1:8080 --token-file TOKEN \
//!     --data-root DIR --server-pid PID [--clients 200] [--trades 200000]
//! ```
//!
//! The server must run tasks (`--workers 1` or more) with `DIR` among its `--data-root`s; the tool
//! writes the generated trades there.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use benches::latency::Histogram;
use serde_json::{Value, json};

struct Settings {
    url: String,
    token: Option<String>,
    data_root: PathBuf,
    server_pid: u32,
    clients: usize,
    trades: u64,
}

fn settings() -> Result<Settings, String> {
    let mut settings = Settings {
        url: String::new(),
        token: None,
        data_root: PathBuf::new(),
        server_pid: 0,
        clients: 200,
        trades: 200_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => settings.url = value()?.trim_end_matches('/').to_owned(),
            "--token-file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
                settings.token = Some(text.trim().to_owned());
            }
            "--data-root" => settings.data_root = PathBuf::from(value()?),
            "--server-pid" => settings.server_pid = value()?.parse().map_err(|_| "--server-pid: a number")?,
            "--clients" => settings.clients = value()?.parse().map_err(|_| "--clients: a number")?,
            "--trades" => settings.trades = value()?.parse().map_err(|_| "--trades: a number")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !benches::latency::is_loopback_url(&settings.url) {
        return Err(format!("--url must name a loopback server, got {:?}", settings.url));
    }
    if settings.server_pid == 0 || !settings.data_root.is_dir() {
        return Err("--server-pid and an existing --data-root are required".to_owned());
    }
    Ok(settings)
}

/// User + system CPU time of process `pid` (`/proc/PID/stat` fields 14 and 15, in 10 ms ticks).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn request(
    client: &reqwest::Client,
    settings: &Settings,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    let request = client.request(method, format!("{}{path}", settings.url));
    match &settings.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Follows the task's event stream to its end: the events received and their latencies.
async fn follow(response: reqwest::Response) -> Result<(u64, Histogram), String> {
    let mut response = response;
    let mut histogram = Histogram::default();
    let mut events = 0;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| error.to_string())? {
        let arrived = chrono::Utc::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|line| line.strip_prefix("data:")) else {
                continue;
            };
            let Ok(summary) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            events += 1;
            let stamp = summary["progress"]["updated_at"].as_str().or(summary["updated_at"].as_str());
            if let Some(stamp) = stamp.and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok()) {
                let latency = (arrived - stamp.with_timezone(&chrono::Utc)).to_std().unwrap_or_default();
                histogram.record(latency);
            }
        }
    }
    Ok((events, histogram))
}

async fn round(client: &reqwest::Client, settings: &Settings, clients: usize) -> Result<(), String> {
    let body = json!({
        "task_type": "youzan_order",
        "config": { "batch_size": 1000 },
        "params": { "input": "sse-trades.jsonl", "output": "sse-orders.jsonl", "dead_letter": "sse-orders.dead.jsonl" },
    });
    let response = request(client, settings, reqwest::Method::POST, "/api/v1/tasks")
        .json(&body)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let task: Value = response.json().await.map_err(|error| error.to_string())?;
    let id = task["id"].as_str().ok_or(format!("the task was not created: {task}"))?.to_owned();
    let cpu_before = cpu_time(settings.server_pid).ok_or("cannot read the server's CPU time")?;
    let started = Instant::now();
    let mut followers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let response = request(client, settings, reqwest::Method::GET, &format!("/api/v1/events?task={id}"))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the event stream answered {}", response.status()));
        }
        followers.push(tokio::spawn(follow(response)));
    }
    let mut latency = Histogram::default();
    let mut events = Vec::with_capacity(clients);
    for follower in followers {
        let (count, histogram) = follower.await.map_err(|error| error.to_string())??;
        events.push(count);
        latency.merge(&histogram);
    }
    let wall = started.elapsed();
    let cpu =
        cpu_time(settings.server_pid).ok_or("cannot read the server's CPU time")?.saturating_sub(cpu_before);
    let fewest = events.iter().min().copied().unwrap_or(0);
    let most = events.iter().max().copied().unwrap_or(0);
    println!(
        "{clients:>4} clients: task ran {wall:.2?}; events per client {fewest}..{most}; delivery latency p50 {:.1?} p99 {:.1?} max {:.1?}; server CPU {cpu:.2?} ({:.0} % of one core)",
        latency.quantile(0.50),
        latency.quantile(0.99),
        latency.max(),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("sse_fanout: {error}");
            std::process::exit(2);
        }
    };
    let input = settings.data_root.join("sse-trades.jsonl");
    let generated = std::fs::File::create(&input).map(std::io::BufWriter::new).and_then(|file| {
        let config = batch_tasks::youzan::generator::GeneratorConfig {
            count: settings.trades,
            seed: 11,
            invalid_ratio: 0.05,
        };
        batch_tasks::youzan::generator::generate(&config, file)
    });
    if let Err(error) = generated {
        eprintln!("sse_fanout: cannot write {}: {error}", input.display());
        std::process::exit(1);
    }
    // With feature `youzan-api` anywhere in the build, reqwest is compiled with rustls and no crypto
    // provider of its own (ring is ours, not its aws-lc-rs): even a plain-HTTP client needs one.
    #[allow(deprecated, reason = "ring builds without cmake; plain HTTP here, no key exchange")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client =
        match reqwest::Client::builder().no_proxy().pool_max_idle_per_host(settings.clients + 1).build() {
            Ok(client) => client,
            Err(error) => {
                eprintln!("sse_fanout: {error}");
                std::process::exit(1);
            }
        };
    for clients in [1, settings.clients] {
        if let Err(error) = round(&client, &settings, clients).await {
            eprintln!("sse_fanout: {error}");
            std::process::exit(1);
        }
    }
}
