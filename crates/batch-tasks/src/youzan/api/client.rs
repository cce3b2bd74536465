//! The HTTP side of the YouZan API input: one page of `youzan.trades.sold.get` per call, retried
//! with backoff on what may pass (HTTP 429 and 5xx, timeouts, refused or dropped connections), and
//! a clear failure on what will not (a refused token, another refusal, an answer of the wrong shape).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use batch_model::{BatchConfig, ErrorCode};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use rustls_platform_verifier::BuilderVerifierExt as _;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::config::{ApiParams, TokenSource};
use crate::records::{RunnerOptions, SourceFailure};

/// The largest answer read for one page (a page of 100 trades is well under a megabyte).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Calls `youzan.trades.sold.get` for one page at a time.
#[derive(Debug)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    /// `<base>/api/youzan.trades.sold.get/<version>?access_token=…` (never logged).
    url: String,
    /// What messages call the API: `the YouZan API at https://open.youzan.com`.
    name: String,
    token_source: TokenSource,
    params: ApiParams,
    /// Further attempts at a page after a failure that may pass.
    retries: u32,
    /// Bound on one attempt.
    timeout: Duration,
    backoff: Backoff,
    /// The trades the window holds, as the API last said (0: not said).
    total: Arc<AtomicU64>,
}

/// One page as the API returned it.
#[derive(Debug)]
pub(crate) struct Page {
    /// Each listed trade's JSON, exactly as sent (`{"full_order_info": {...}}`).
    pub(crate) records: Vec<String>,
    /// No page follows: this one is short, or the API said so.
    pub(crate) last: bool,
}

/// The exponential backoff between attempts at a page, with jitter.
#[derive(Debug, Clone)]
struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    seed: u64,
}

impl Backoff {
    /// The wait before retry `retry` (1-based) of `page`.
    fn wait(&self, page: u64, retry: u32) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let base = doubled.min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        let fraction = fastrand::Rng::with_seed(self.seed ^ page.rotate_left(17) ^ u64::from(retry)).f64();
        base.mul_f64(1.0 - self.jitter * fraction)
    }
}

/// Why one attempt failed.
enum Failed {
    /// It may pass on another attempt, after `wait` if the API said how long.
    Retry { reason: String, timed_out: bool, wait: Option<Duration> },
    /// It will not: the run fails.
    Fatal(SourceFailure),
}

impl ApiClient {
    /// A client for `params` with `token`, whose attempts are bounded by the task's `timeout` and
    /// retried up to its `max_retries` times after the runner's backoff.
    pub(crate) fn new(
        params: &ApiParams,
        token: &str,
        config: &BatchConfig,
        options: &RunnerOptions,
    ) -> Result<ApiClient, SourceFailure> {
        let name = format!("the YouZan API at {}", params.base_url);
        // ring, not aws-lc-rs (which needs cmake to build). rustls 0.23.48 deprecates ring's
        // provider for lacking post-quantum key exchange; classical TLS 1.3/1.2 is what it offers.
        #[allow(deprecated, reason = "ring is the provider that builds without cmake")]
        let provider = rustls::crypto::ring::default_provider();
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_platform_verifier())
            .map_err(|error| {
                SourceFailure::new(
                    ErrorCode::ConfigurationError,
                    format!("cannot set up TLS for {name}: {error}"),
                )
            })?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(config.timeout)
            .user_agent(concat!("pump-batch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                SourceFailure::new(
                    ErrorCode::ConfigurationError,
                    format!("cannot build the HTTP client for {name}: {}", error.without_url()),
                )
            })?;
        let jitter = if options.jitter.is_nan() { 0.0 } else { options.jitter.clamp(0.0, 1.0) };
        Ok(ApiClient {
            http,
            url: format!("{}?access_token={}", params.endpoint(), percent_encode(token)),
            name,
            token_source: params.token.clone(),
            params: params.clone(),
            retries: config.max_retries,
            timeout: config.timeout,
            backoff: Backoff {
                initial: options.initial_backoff,
                max: options.max_backoff,
                jitter,
                seed: options.jitter_seed.unwrap_or_else(|| fastrand::u64(..)),
            },
            total: Arc::new(AtomicU64::new(0)),
        })
    }

    /// What messages call the API.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The trades the window holds, when the API said.
    pub(crate) fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|total| *total > 0)
    }

    /// Page `page` (from 1), retried as need be. Cancel safe: dropping the future abandons the
    /// request.
    pub(crate) async fn page(&self, page: u64) -> Result<Page, SourceFailure> {
        let mut retry = 0u32;
        loop {
            match self.attempt(page).await {
                Ok(answer) => return Ok(answer),
                Err(Failed::Fatal(failure)) => return Err(failure),
                Err(Failed::Retry { reason, timed_out, wait }) => {
                    if retry >= self.retries {
                        let code =
                            if timed_out { ErrorCode::TimeoutError } else { ErrorCode::ProcessingError };
                        return Err(SourceFailure::new(
                            code,
                            format!(
                                "{}: page {page} failed {} times, the last time: {reason}",
                                self.name,
                                retry + 1
                            ),
                        ));
                    }
                    retry += 1;
                    let wait = wait.unwrap_or_else(|| self.backoff.wait(page, retry)).min(self.backoff.max);
                    tracing::warn!(page, retry, ?wait, %reason, "YouZan API page request failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One request for `page`.
    async fn attempt(&self, page: u64) -> Result<Page, Failed> {
        let mut body = serde_json::json!({
            "page_no": page,
            "page_size": self.params.page_size,
            "start_created": self.params.start_created,
            "end_created": self.params.end_created,
        });
        if let (Some(status), Some(object)) = (self.params.trade_status, body.as_object_mut()) {
            object.insert("status".to_owned(), Value::from(status.as_str()));
        }
        let request = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failed::Retry {
                reason: "HTTP 429 Too Many Requests".to_owned(),
                timed_out: false,
                wait,
            });
        }
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failed::Fatal(self.failure(format!(
                    "page {page}: the answer is longer than {} MiB",
                    MAX_ANSWER_BYTES >> 20
                ))));
            }
            answer.extend_from_slice(&chunk);
        }
        if status.is_server_error() {
            let reason = format!("HTTP {status}: {}", snippet(&answer));
            return Err(Failed::Retry { reason, timed_out: false, wait: None });
        }
        if !status.is_success() {
            return Err(Failed::Fatal(
                self.failure(format!("page {page}: HTTP {status}: {}", snippet(&answer))),
            ));
        }
        self.read_page(page, &answer).map_err(Failed::Fatal)
    }

    /// Reads the envelope of a 200 answer.
    fn read_page(&self, page: u64, answer: &[u8]) -> Result<Page, SourceFailure> {
        let envelope: Envelope<'_> = serde_json::from_slice(answer).map_err(|error| {
            self.failure(format!(
                "page {page}: the answer is not the API's envelope ({error}): {}",
                snippet(answer)
            ))
        })?;
        let code = envelope.code.as_ref().map(code_text);
        let refused = envelope.success == Some(false)
            || code.as_deref().is_some_and(|code| code != "200" && code != "0" && envelope.data.is_none());
        if refused {
            let code = code.unwrap_or_else(|| "none".to_owned());
            let message = envelope.message.unwrap_or_default();
            if is_token_refusal(&code, &message) {
                return Err(self.failure(format!(
                    "refused the access token from {} (code {code}: {message}); check or renew the token",
                    self.token_source
                )));
            }
            return Err(self.failure(format!("page {page}: refused (code {code}: {message})")));
        }
        let Some(data) = envelope.data else {
            return Err(self.failure(format!("page {page}: the answer has no data: {}", snippet(answer))));
        };
        let total =
            data.total_results.or(data.paginator.as_ref().and_then(|paginator| paginator.total_count));
        if let Some(total) = total {
            self.total.store(total, Ordering::Relaxed);
        }
        let records: Vec<String> = data.full_order_info_list.iter().map(|raw| raw.get().to_owned()).collect();
        let page_size = u64::from(self.params.page_size);
        let listed = (page - 1) * page_size + records.len() as u64;
        let last = (records.len() as u64) < page_size
            || data.has_next == Some(false)
            || total.is_some_and(|total| listed >= total);
        Ok(Page { records, last })
    }

    fn failure(&self, what: String) -> SourceFailure {
        SourceFailure::new(ErrorCode::ProcessingError, format!("{} {what}", self.name))
    }
}

/// The API's answer: `{"success", "code", "message", "data": {...}}` (some versions call `data`
/// `response`).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, borrow, alias = "response")]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(default, borrow)]
    full_order_info_list: Vec<&'a RawValue>,
    #[serde(default)]
    total_results: Option<u64>,
    #[serde(default)]
    has_next: Option<bool>,
    #[serde(default)]
    paginator: Option<Paginator>,
}

#[derive(Deserialize)]
struct Paginator {
    #[serde(default)]
    total_count: Option<u64>,
}

/// A code as text, whether the API sent a number or a string.
fn code_text(code: &Value) -> String {
    match code {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether a refusal is about the access token: YouZan's 42xx codes, or a message naming it.
fn is_token_refusal(code: &str, message: &str) -> bool {
    code.len() == 4 && code.starts_with("42") || message.to_ascii_lowercase().contains("token")
}

/// A transport failure (connection refused or dropped, timeout) as a retryable one; the URL (with
/// its token) is left out of the message.
fn transport(error: reqwest::Error) -> Failed {
    let timed_out = error.is_timeout();
    let reason = batch_model::message_with_causes(&error.without_url());
    Failed::Retry { reason, timed_out, wait: None }
}

/// The beginning of an answer, for messages.
fn snippet(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
    if answer.len() > 200 { format!("{text}…") } else { text }
}

/// `text` percent-encoded for a query string (everything but unreserved characters).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_encoded_for_the_query_string() {
        assert_eq!(percent_encode("a1-b_c.d~"), "a1-b_c.d~");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn token_refusals_are_told_apart() {
        assert!(is_token_refusal("4201", "invalid"));
        assert!(is_token_refusal("135000", "access_token expired"));
        assert!(!is_token_refusal("50000", "system busy"));
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            jitter: 0.0,
            seed: 1,
        };
        let waits: Vec<u64> =
            (1..=5).map(|retry| u64::try_from(backoff.wait(3, retry).as_millis()).unwrap_or(0)).collect();
        assert_eq!(waits, [10, 20, 40, 50, 50]);
    }
}
