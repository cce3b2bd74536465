//! The params of `youzan_order` when its input is the YouZan open API ([`ApiParams`]): the base
//! URL, the access token's source, the closed time window, paging and the request rate.

use std::path::PathBuf;

use chrono::{FixedOffset, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::youzan::error::YouzanError;
use crate::youzan::validate::TradeStatus;

/// The params that only apply to the API input, in the order they are checked.
pub(crate) const API_PARAMS: [&str; 8] = [
    "token_file",
    "token_env",
    "start_created",
    "end_created",
    "page_size",
    "requests_per_second",
    "api_version",
    "trade_status",
];

/// Where the access token is read when a run starts (never stored in the task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file holding the token (surrounding whitespace ignored): param `token_file`.
    File(PathBuf),
    /// An environment variable of the worker's process: param `token_env`.
    Env(String),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::File(path) => write!(f, "the token file {}", path.display()),
            TokenSource::Env(name) => write!(f, "the environment variable {name}"),
        }
    }
}

/// The YouZan open API as a `youzan_order` input: `input` is the API's base URL and these params
/// say what to list.
///
/// ```
/// use batch_tasks::youzan::{TokenSource, YouzanParams};
///
/// let params = YouzanParams::from_json(&serde_json::json!({
///     "input": "https://open.youzan.com",
///     "output": "orders.jsonl",
///     "token_env": "YOUZAN_TOKEN",
///     "start_created": "2024-11-01 00:00:00",
///     "end_created": "2024-11-02 00:00:00",
/// }))
/// .unwrap();
/// let api = params.api.unwrap();
/// assert_eq!(api.token, TokenSource::Env("YOUZAN_TOKEN".to_owned()));
/// assert_eq!((api.page_size, api.api_version.as_str()), (100, "4.0.4"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiParams {
    /// The API's base URL, e.g. `https://open.youzan.com` (the call is
    /// `<base>/api/youzan.trades.sold.get/<version>`).
    pub base_url: String,
    /// Where the access token comes from.
    pub token: TokenSource,
    /// The window's start, `yyyy-MM-dd HH:mm:ss` in Beijing time (`start_created`).
    pub start_created: String,
    /// The window's end, in the past (`end_created`).
    pub end_created: String,
    /// Trades per page, 1 to 100 (`page_size`, default 100).
    pub page_size: u32,
    /// The most page requests started per second (`requests_per_second`, default 5).
    pub requests_per_second: u32,
    /// The API version in the call's path (`api_version`, default `4.0.4`).
    pub api_version: String,
    /// Only trades of this status (`trade_status`), all when absent.
    pub trade_status: Option<TradeStatus>,
}

impl ApiParams {
    /// `page_size` when not set, and its largest value.
    pub const PAGE_SIZE: u32 = 100;
    /// `requests_per_second` when not set.
    pub const REQUESTS_PER_SECOND: u32 = 5;
    /// `api_version` when not set.
    pub const API_VERSION: &'static str = "4.0.4";
    /// The time format of the window's ends.
    pub const TIME_FORMAT: &'static str = "%Y-%m-%d %H:%M:%S";

    /// Whether `input` names the API rather than a file: an `http://` or `https://` URL.
    pub fn is_api(input: &str) -> bool {
        let lower = input.trim_start().to_ascii_lowercase();
        lower.starts_with("https://") || lower.starts_with("http://")
    }

    /// Reads the API params of `object`, whose `input` is the URL `base_url`.
    pub(crate) fn from_params(base_url: &str, object: &Map<String, Value>) -> Result<ApiParams, YouzanError> {
        let text = |name: &str| -> Result<Option<String>, YouzanError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if text.trim().is_empty() => {
                    Err(invalid(name, "must not be empty"))
                }
                Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
                Some(_) => Err(invalid(name, "must be a string")),
            }
        };
        let integer = |name: &str, default: u32, max: u32| -> Result<u32, YouzanError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(value) => value
                    .as_u64()
                    .and_then(|value| u32::try_from(value).ok())
                    .filter(|value| (1..=max).contains(value))
                    .ok_or_else(|| {
                        invalid(name, format!("must be a whole number from 1 to {max}, got {value}"))
                    }),
            }
        };
        let token = match (text("token_file")?, text("token_env")?) {
            (Some(_), Some(_)) => return Err(invalid("token_file", "is also given as token_env; give one")),
            (Some(path), None) => TokenSource::File(PathBuf::from(path)),
            (None, Some(name)) => TokenSource::Env(name),
            (None, None) => {
                return Err(invalid(
                    "token_file",
                    "is required to read the YouZan API (or token_env, the environment variable holding the token)",
                ));
            }
        };
        let start_created = text("start_created")?.ok_or_else(|| {
            invalid("start_created", "is required to read the YouZan API (yyyy-MM-dd HH:mm:ss)")
        })?;
        let end_created = text("end_created")?.ok_or_else(|| {
            invalid("end_created", "is required to read the YouZan API (yyyy-MM-dd HH:mm:ss)")
        })?;
        let start = parse_time("start_created", &start_created)?;
        let end = parse_time("end_created", &end_created)?;
        if end <= start {
            return Err(invalid("end_created", format!("must be after start_created ({start_created})")));
        }
        let beijing =
            FixedOffset::east_opt(8 * 3600).map(|offset| Utc::now().with_timezone(&offset).naive_local());
        if beijing.is_some_and(|now| end > now) {
            return Err(invalid(
                "end_created",
                "must be in the past (Beijing time): paging over a window still open can skip or repeat trades",
            ));
        }
        let trade_status = match text("trade_status")? {
            None => None,
            Some(name) => Some(
                TradeStatus::ALL.into_iter().find(|status| status.as_str() == name).ok_or_else(|| {
                    let known: Vec<&str> = TradeStatus::ALL.iter().map(|status| status.as_str()).collect();
                    invalid("trade_status", format!("must be one of {}, got {name}", known.join(", ")))
                })?,
            ),
        };
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        if base_url.contains(['?', '#']) {
            return Err(invalid("input", "the API's base URL takes no query or fragment"));
        }
        Ok(ApiParams {
            base_url,
            token,
            start_created,
            end_created,
            page_size: integer("page_size", ApiParams::PAGE_SIZE, ApiParams::PAGE_SIZE)?,
            requests_per_second: integer("requests_per_second", ApiParams::REQUESTS_PER_SECOND, 10_000)?,
            api_version: text("api_version")?.unwrap_or_else(|| ApiParams::API_VERSION.to_owned()),
            trade_status,
        })
    }

    /// The call's URL without its token: `<base>/api/youzan.trades.sold.get/<version>`.
    pub fn endpoint(&self) -> String {
        format!("{}/api/youzan.trades.sold.get/{}", self.base_url, self.api_version)
    }

    /// Reads the access token from its source; a missing or empty one is a `CONFIGURATION_ERROR`
    /// naming its param.
    pub fn read_token(&self) -> Result<String, YouzanError> {
        let (param, token) = match &self.token {
            TokenSource::File(path) => (
                "token_file",
                std::fs::read_to_string(path).map_err(|source| YouzanError::ReadFile {
                    param: "token_file",
                    path: path.clone(),
                    source,
                })?,
            ),
            TokenSource::Env(name) => (
                "token_env",
                std::env::var(name).map_err(|_| {
                    invalid("token_env", format!("the environment variable {name} is not set"))
                })?,
            ),
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid(param, format!("{} holds an empty token", self.token)));
        }
        Ok(token.to_owned())
    }
}

fn parse_time(param: &str, text: &str) -> Result<NaiveDateTime, YouzanError> {
    NaiveDateTime::parse_from_str(text, ApiParams::TIME_FORMAT)
        .map_err(|error| invalid(param, format!("must be yyyy-MM-dd HH:mm:ss, got {text:?}: {error}")))
}

fn invalid(param: &str, reason: impl Into<String>) -> YouzanError {
    YouzanError::InvalidParam { param: param.to_owned(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(extra: Value) -> Result<ApiParams, YouzanError> {
        let mut object = json!({
            "token_env": "TOKEN", "start_created": "2024-01-01 00:00:00", "end_created": "2024-02-01 00:00:00",
        });
        object.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        ApiParams::from_params("https://open.youzan.com/", object.as_object().unwrap())
    }

    #[test]
    fn each_bad_api_param_is_named() {
        for (extra, param, reason) in [
            (json!({ "token_env": null }), "token_file", "is required"),
            (json!({ "token_file": "t.txt" }), "token_file", "is also given as token_env"),
            (json!({ "start_created": "2024-01-01" }), "start_created", "must be yyyy-MM-dd HH:mm:ss"),
            (json!({ "end_created": "2023-12-31 23:59:59" }), "end_created", "must be after start_created"),
            (json!({ "end_created": "2999-01-01 00:00:00" }), "end_created", "must be in the past"),
            (json!({ "page_size": 101 }), "page_size", "from 1 to 100"),
            (json!({ "page_size": 0 }), "page_size", "from 1 to 100"),
            (json!({ "requests_per_second": "fast" }), "requests_per_second", "whole number"),
            (json!({ "trade_status": "PAID" }), "trade_status", "must be one of WAIT_BUYER_PAY"),
            (json!({ "api_version": "" }), "api_version", "must not be empty"),
        ] {
            let error = parse(extra.clone()).unwrap_err();
            assert_eq!(error.param(), param, "{extra}: {error}");
            assert!(error.to_string().contains(reason), "{extra}: {error}");
        }
    }

    #[test]
    fn defaults_and_the_endpoint() {
        let params = parse(json!({ "trade_status": "TRADE_SUCCESS" })).unwrap();
        assert_eq!(params.endpoint(), "https://open.youzan.com/api/youzan.trades.sold.get/4.0.4");
        assert_eq!((params.page_size, params.requests_per_second), (100, 5));
        assert_eq!(params.trade_status, Some(TradeStatus::TradeSuccess));
        assert!(ApiParams::is_api("HTTPS://open.youzan.com") && ApiParams::is_api("http://127.0.0.1:8080"));
        assert!(!ApiParams::is_api("/data/https.jsonl") && !ApiParams::is_api("trades.jsonl"));
    }

    #[test]
    fn the_token_is_read_from_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.txt");
        std::fs::write(&path, "  secret\n").unwrap();
        let params = parse(json!({ "token_env": null, "token_file": path })).unwrap();
        assert_eq!(params.read_token().unwrap(), "secret");
        std::fs::write(&path, "\n").unwrap();
        assert!(params.read_token().unwrap_err().to_string().contains("holds an empty token"));
        let missing = parse(json!({ "token_env": "BATCH_TASKS_TEST_NO_SUCH_VARIABLE" })).unwrap();
        assert_eq!(missing.read_token().unwrap_err().param(), "token_env");
    }
}
