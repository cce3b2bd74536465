//! A loopback HTTP load generator for `batch serve`: `C` connections each send `GET PATH` back to
//! back for `D` seconds (after a 2 s warm-up), and it prints requests per second and latency
//! percentiles. Every answer must be 200, or the run fails.
//!
//! Run against a server started on a filled store (see `docs/BENCHMARKS.md`):
//!
//! ```text
//! cargo run --release -p benches --bin http_load -- \
//!     --url 'http://127.0.0.1:8080/api/v1/tasks?limit=50' --token-file TOKEN [--connections 32] [--seconds 10]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use benches::latency::Histogram;

struct Settings {
    url: String,
    token: Option<String>,
    connections: usize,
    seconds: u64,
}

fn settings() -> Result<Settings, String> {
    let mut settings = Settings { url: String::new(), token: None, connections: 32, seconds: 10 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => settings.url = value()?,
            "--token-file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
                settings.token = Some(text.trim().to_owned());
            }
            "--connections" => {
                settings.connections = value()?.parse().map_err(|_| "--connections: a number")?
            }
            "--seconds" => settings.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !benches::latency::is_loopback_url(&settings.url) {
        return Err(format!(
            "--url must name a loopback server (127.0.0.1, localhost, [::1]), got {:?}",
            settings.url
        ));
    }
    Ok(settings)
}

async fn worker(
    client: reqwest::Client,
    settings: &Settings,
    warm_until: Instant,
    until: Instant,
) -> Result<Histogram, String> {
    let mut histogram = Histogram::default();
    loop {
        let started = Instant::now();
        if started >= until {
            return Ok(histogram);
        }
        let mut request = client.get(&settings.url);
        if let Some(token) = &settings.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| error.to_string())?;
        let status = response.status();
        response.bytes().await.map_err(|error| error.to_string())?;
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        if started >= warm_until {
            histogram.record(started.elapsed());
        }
    }
}

#[tokio::main]
async fn main() {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("http_load: {error}");
            std::process::exit(2);
        }
    };
    // With feature `youzan-api` anywhere in the build, reqwest is compiled with rustls and no crypto
    // provider of its own (ring is ours, not its aws-lc-rs): even a plain-HTTP client needs one.
    #[allow(deprecated, reason = "ring builds without cmake; plain HTTP here, no key exchange")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(settings.connections)
        .build()
        .unwrap_or_else(|error| {
            eprintln!("http_load: cannot build the client: {error}");
            std::process::exit(1)
        });
    let warm_until = Instant::now() + Duration::from_secs(2);
    let until = warm_until + Duration::from_secs(settings.seconds);
    let settings = std::sync::Arc::new(settings);
    let handles: Vec<_> = (0..settings.connections)
        .map(|_| {
            let client = client.clone();
            let settings = std::sync::Arc::clone(&settings);
            tokio::spawn(async move { worker(client, &settings, warm_until, until).await })
        })
        .collect();
    let mut total = Histogram::default();
    for handle in handles {
        match handle.await {
            Ok(Ok(histogram)) => total.merge(&histogram),
            Ok(Err(error)) => {
                eprintln!("http_load: {error}");
                std::process::exit(1);
            }
            Err(error) => {
                eprintln!("http_load: a worker failed: {error}");
                std::process::exit(1);
            }
        }
    }
    let rate = total.count() as f64 / settings.seconds as f64;
    println!(
        "{} connections, {} s: {} requests, {rate:.0} requests/s; latency p50 {:.2?} p90 {:.2?} p99 {:.2?} max {:.2?}",
        settings.connections,
        settings.seconds,
        total.count(),
        total.quantile(0.50),
        total.quantile(0.90),
        total.quantile(0.99),
        total.max(),
    );
}
