//! A task's run settings ([`BatchConfig`], [`Durability`]), their bounds, and reading them from JSON with
//! errors that name the offending setting.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::duration;
use crate::error::ModelError;

/// How hard a task works to keep its checkpoints across failures. Serialised `"process"` or
/// `"power_loss"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Survives a killed process (`kill -9`): a chunk is written, then its checkpoint committed; the
    /// operating system's page cache is trusted, nothing is fsynced. The default.
    #[default]
    Process,
    /// Survives power loss: output and store are fsynced at each checkpoint. Slower.
    PowerLoss,
}

impl Durability {
    /// The spelling, the same as the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::PowerLoss => "power_loss",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How a task runs: chunk size, retries, per-attempt timeout, parallelism, failure tolerance, durability.
///
/// The default is `{ batch_size: 10, max_retries: 3, timeout: 30s, concurrency: 2, skip_limit: None,
/// durability: process, partitions: 1 }`, the Go original's defaults (task kinds may have their own).
///
/// # Bounds
///
/// [`BatchConfig::validate`] enforces (a violation is a `CONFIGURATION_ERROR` naming the setting):
///
/// | setting       | bounds                     |
/// |---------------|----------------------------|
/// | `batch_size`  | 1 ..= 1,000,000            |
/// | `max_retries` | 0 ..= 100                  |
/// | `timeout`     | 1 ms ..= 24 h              |
/// | `concurrency` | 1 ..= 1024                 |
/// | `skip_limit`  | any; `None` means no limit |
/// | `partitions`  | 1 ..= 256                  |
///
/// The bounds are also constants: [`BATCH_SIZE_MAX`](Self::BATCH_SIZE_MAX),
/// [`MAX_RETRIES_MAX`](Self::MAX_RETRIES_MAX), [`TIMEOUT_MIN`](Self::TIMEOUT_MIN),
/// [`TIMEOUT_MAX`](Self::TIMEOUT_MAX), [`CONCURRENCY_MAX`](Self::CONCURRENCY_MAX),
/// [`PARTITIONS_MAX`](Self::PARTITIONS_MAX).
///
/// A chunk of `batch_size` items is held in memory and committed as one checkpoint, which bounds the
/// size; more than 1024 parallel attempts per task is a mistake on a machine of any size.
///
/// # JSON
///
/// ```json
/// { "batch_size": 10, "max_retries": 3, "timeout": "30s", "concurrency": 2, "skip_limit": null,
///   "durability": "process", "partitions": 1 }
/// ```
///
/// `timeout` is a humantime string (`"30s"`, `"1m 30s"`, `"500ms"`); an integer number of milliseconds is
/// accepted on input. Missing settings (and `null` ones) take their defaults; unknown settings are
/// rejected, so a misspelt one is not silently ignored. Deserialising goes through
/// [`BatchConfig::from_json`] and so validates: a `BatchConfig` read from JSON is always within bounds.
/// (It also means the config is read through a `serde_json::Value`, so only self-describing formats
/// can carry it.)
///
/// ```
/// use std::time::Duration;
/// use batch_model::{BatchConfig, Durability};
///
/// let config: BatchConfig = serde_json::from_str(r#"{ "batch_size": 500, "timeout": "1m 30s" }"#)?;
/// assert_eq!(config.batch_size, 500);
/// assert_eq!(config.timeout, Duration::from_secs(90));
/// assert_eq!(config.concurrency, 2);
/// assert_eq!(config.durability, Durability::Process);
///
/// let error = serde_json::from_str::<BatchConfig>(r#"{ "concurrency": -4 }"#).unwrap_err();
/// assert!(error.to_string().starts_with("invalid configuration: concurrency must not be negative, got -4"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchConfig {
    /// Items per chunk: the unit of writing and checkpointing (and a train mini-batch).
    pub batch_size: u32,
    /// Further attempts after a retryable failure of an item (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Bound on one processing attempt of an item or mini-batch (`TIMEOUT_ERROR` past it).
    #[serde(serialize_with = "duration::serialize")]
    pub timeout: Duration,
    /// Items processed in parallel within the task (order is kept).
    pub concurrency: u32,
    /// Failed items tolerated before the task itself fails; `None` lets the task complete and report
    /// its failures.
    pub skip_limit: Option<u64>,
    /// What a checkpoint survives.
    pub durability: Durability,
    /// Split the task's input into this many partitions, each run as its own child task by any worker
    /// and merged into one result when the last one completes (1: no split). Only kinds that can split
    /// their input accept more than 1.
    pub partitions: u32,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig {
            batch_size: 10,
            max_retries: 3,
            timeout: Duration::from_secs(30),
            concurrency: 2,
            skip_limit: None,
            durability: Durability::Process,
            partitions: 1,
        }
    }
}

/// The settings `from_json` knows, in the order it checks them.
const FIELDS: [&str; 7] =
    ["batch_size", "max_retries", "timeout", "concurrency", "skip_limit", "durability", "partitions"];

impl BatchConfig {
    /// Largest `batch_size`.
    pub const BATCH_SIZE_MAX: u32 = 1_000_000;
    /// Largest `max_retries`.
    pub const MAX_RETRIES_MAX: u32 = 100;
    /// Shortest `timeout`.
    pub const TIMEOUT_MIN: Duration = Duration::from_millis(1);
    /// Longest `timeout`.
    pub const TIMEOUT_MAX: Duration = Duration::from_secs(24 * 60 * 60);
    /// Largest `concurrency`.
    pub const CONCURRENCY_MAX: u32 = 1024;
    /// Largest `partitions`.
    pub const PARTITIONS_MAX: u32 = 256;

    /// Checks every setting against its bounds (see [Bounds](BatchConfig#bounds)), in declaration order,
    /// and reports the first violation as [`ModelError::InvalidConfig`] naming the setting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use batch_model::BatchConfig;
    ///
    /// assert!(BatchConfig::default().validate().is_ok());
    /// let config = BatchConfig { timeout: Duration::ZERO, ..BatchConfig::default() };
    /// assert_eq!(
    ///     config.validate().unwrap_err().to_string(),
    ///     "invalid configuration: timeout must be at least 1ms, got 0s",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ModelError> {
        check_range("batch_size", u64::from(self.batch_size), 1, Self::BATCH_SIZE_MAX)?;
        check_range("max_retries", u64::from(self.max_retries), 0, Self::MAX_RETRIES_MAX)?;
        check_timeout(self.timeout)?;
        check_range("concurrency", u64::from(self.concurrency), 1, Self::CONCURRENCY_MAX)?;
        check_range("partitions", u64::from(self.partitions), 1, Self::PARTITIONS_MAX)?;
        Ok(())
    }

    /// Reads a config from a JSON object, reporting the offending setting by name.
    ///
    /// Missing or `null` settings take their defaults. Each error is a [`ModelError::InvalidConfig`]
    /// (`CONFIGURATION_ERROR`): a value that is not an object, an unknown setting, a value of the wrong
    /// type, a negative or fractional number, an unparsable duration, a value out of bounds.
    ///
    /// ```
    /// use batch_model::{BatchConfig, ModelError};
    ///
    /// let config = BatchConfig::from_json(&serde_json::json!({ "batch_size": 100, "timeout": 2500 }))?;
    /// assert_eq!(config.batch_size, 100);
    /// assert_eq!(config.timeout.as_millis(), 2500);
    ///
    /// let error = BatchConfig::from_json(&serde_json::json!({ "batch_size": -1 })).unwrap_err();
    /// assert_eq!(error.to_string(), "invalid configuration: batch_size must not be negative, got -1");
    /// assert!(matches!(error, ModelError::InvalidConfig { ref field, .. } if field == "batch_size"));
    /// # Ok::<(), ModelError>(())
    /// ```
    pub fn from_json(value: &Value) -> Result<BatchConfig, ModelError> {
        let object = match value {
            Value::Object(object) => object,
            other => {
                return Err(invalid("config", format!("must be a JSON object, got {}", json_kind(other))));
            }
        };
        if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(invalid(
                unknown,
                format!("is not a known setting (expected one of {})", FIELDS.join(", ")),
            ));
        }
        let defaults = BatchConfig::default();
        let config = BatchConfig {
            batch_size: read_u32(object, "batch_size", 1, Self::BATCH_SIZE_MAX)?
                .unwrap_or(defaults.batch_size),
            max_retries: read_u32(object, "max_retries", 0, Self::MAX_RETRIES_MAX)?
                .unwrap_or(defaults.max_retries),
            timeout: read_timeout(object)?.unwrap_or(defaults.timeout),
            concurrency: read_u32(object, "concurrency", 1, Self::CONCURRENCY_MAX)?
                .unwrap_or(defaults.concurrency),
            skip_limit: read_whole_number(object, "skip_limit")?,
            durability: read_durability(object)?.unwrap_or(defaults.durability),
            partitions: read_u32(object, "partitions", 1, Self::PARTITIONS_MAX)?
                .unwrap_or(defaults.partitions),
        };
        config.validate()?;
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for BatchConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BatchConfig, D::Error> {
        let value = Value::deserialize(deserializer)?;
        BatchConfig::from_json(&value).map_err(serde::de::Error::custom)
    }
}

fn invalid(field: &str, reason: String) -> ModelError {
    ModelError::InvalidConfig { field: field.to_owned(), reason }
}

fn check_range(field: &str, value: u64, min: u32, max: u32) -> Result<(), ModelError> {
    if value < u64::from(min) {
        Err(invalid(field, format!("must be at least {min}, got {value}")))
    } else if value > u64::from(max) {
        Err(invalid(field, format!("must be at most {max}, got {value}")))
    } else {
        Ok(())
    }
}

fn check_timeout(timeout: Duration) -> Result<(), ModelError> {
    let (min, max) = (BatchConfig::TIMEOUT_MIN, BatchConfig::TIMEOUT_MAX);
    let shown = |duration| humantime::format_duration(duration);
    if timeout < min {
        Err(invalid("timeout", format!("must be at least {}, got {}", shown(min), shown(timeout))))
    } else if timeout > max {
        Err(invalid("timeout", format!("must be at most {}, got {}", shown(max), shown(timeout))))
    } else {
        Ok(())
    }
}

/// How a JSON value is named in messages ("got a string"): its kind with its article.
///
/// ```
/// assert_eq!(batch_model::json_kind(&serde_json::json!("x")), "a string");
/// assert_eq!(batch_model::json_kind(&serde_json::Value::Null), "null");
/// ```
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A present, non-null setting.
fn setting<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

/// A non-negative integer setting; `None` when missing or null.
fn read_whole_number(object: &Map<String, Value>, field: &str) -> Result<Option<u64>, ModelError> {
    let Some(value) = setting(object, field) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(invalid(field, format!("must be a whole number, got {}", json_kind(value))));
    };
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    let negative = number.as_i64().is_some() || number.as_f64().is_some_and(|float| float < 0.0);
    if negative {
        Err(invalid(field, format!("must not be negative, got {number}")))
    } else {
        Err(invalid(field, format!("must be a whole number, got {number}")))
    }
}

/// A `u32` setting checked against its bounds before narrowing, so the message shows the real bound and
/// the number as given.
fn read_u32(object: &Map<String, Value>, field: &str, min: u32, max: u32) -> Result<Option<u32>, ModelError> {
    let Some(whole) = read_whole_number(object, field)? else {
        return Ok(None);
    };
    check_range(field, whole, min, max)?;
    // In range, so it fits; the fallback is unreachable but keeps this free of panics.
    Ok(Some(u32::try_from(whole).unwrap_or(max)))
}

fn read_timeout(object: &Map<String, Value>) -> Result<Option<Duration>, ModelError> {
    let field = "timeout";
    let Some(value) = setting(object, field) else {
        return Ok(None);
    };
    let timeout = match value {
        Value::String(text) => duration::parse(text).map_err(|reason| invalid(field, reason))?,
        Value::Number(number) => match number.as_i64().map(i128::from).or(number.as_u64().map(i128::from)) {
            Some(millis) => duration::from_millis(millis)
                .ok_or_else(|| invalid(field, format!("must not be negative, got {number}")))?,
            None => {
                return Err(invalid(
                    field,
                    format!(
                        "must be a whole number of milliseconds or a duration such as \"30s\", got {number}"
                    ),
                ));
            }
        },
        other => {
            return Err(invalid(
                field,
                format!(
                    "must be a duration such as \"30s\" or a number of milliseconds, got {}",
                    json_kind(other)
                ),
            ));
        }
    };
    check_timeout(timeout)?;
    Ok(Some(timeout))
}

fn read_durability(object: &Map<String, Value>) -> Result<Option<Durability>, ModelError> {
    let field = "durability";
    let Some(value) = setting(object, field) else {
        return Ok(None);
    };
    match value.as_str() {
        Some("process") => Ok(Some(Durability::Process)),
        Some("power_loss") => Ok(Some(Durability::PowerLoss)),
        _ => Err(invalid(field, format!("must be \"process\" or \"power_loss\", got {value}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_original_defaults_and_valid() {
        let config = BatchConfig::default();
        assert_eq!(
            (config.batch_size, config.max_retries, config.timeout, config.concurrency),
            (10, 3, Duration::from_secs(30), 2)
        );
        assert_eq!((config.skip_limit, config.durability), (None, Durability::Process));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn empty_object_gives_the_default() {
        assert_eq!(BatchConfig::from_json(&serde_json::json!({})).unwrap(), BatchConfig::default());
    }

    #[test]
    fn null_settings_take_their_defaults() {
        let json = serde_json::json!({
            "batch_size": null, "max_retries": null, "timeout": null, "concurrency": null,
            "skip_limit": null, "durability": null, "partitions": null,
        });
        assert_eq!(BatchConfig::from_json(&json).unwrap(), BatchConfig::default());
    }

    #[test]
    fn bounds_are_inclusive() {
        let largest = BatchConfig {
            batch_size: BatchConfig::BATCH_SIZE_MAX,
            max_retries: BatchConfig::MAX_RETRIES_MAX,
            timeout: BatchConfig::TIMEOUT_MAX,
            concurrency: BatchConfig::CONCURRENCY_MAX,
            skip_limit: Some(u64::MAX),
            durability: Durability::PowerLoss,
            partitions: BatchConfig::PARTITIONS_MAX,
        };
        assert_eq!(largest.validate(), Ok(()));
        let smallest = BatchConfig {
            batch_size: 1,
            max_retries: 0,
            timeout: BatchConfig::TIMEOUT_MIN,
            concurrency: 1,
            skip_limit: Some(0),
            durability: Durability::Process,
            partitions: 1,
        };
        assert_eq!(smallest.validate(), Ok(()));
    }

    #[test]
    fn u32_overflow_reports_the_number_as_given() {
        let error =
            BatchConfig::from_json(&serde_json::json!({ "concurrency": 5_000_000_000u64 })).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: concurrency must be at most 1024, got 5000000000"
        );
    }

    #[test]
    fn durability_spellings() {
        assert_eq!(serde_json::to_value(Durability::PowerLoss).unwrap(), "power_loss");
        assert_eq!(Durability::Process.to_string(), "process");
    }
}
