//! A task's run settings ([`BatchConfig`], [`Durability`]), their bounds, and reading them from JSON with
//! errors that name the offending setting.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
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
/// rejected, so a misspelt one is not silently ignored. Deserialising applies the checks of
/// [`BatchConfig::from_json`], with the same results and errors, and so validates: a `BatchConfig`
/// read from JSON is always within bounds. (Each setting is read as a `serde_json::Value` on its own,
/// so only self-describing formats can carry a config.)
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
            other => return Err(not_an_object(json_kind(other))),
        };
        if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(unknown_setting(unknown));
        }
        let mut settings = Settings::default();
        for (key, value) in object {
            settings.set(key, value.clone());
        }
        settings.config()
    }
}

/// The known settings of a config object as given (`None` when missing), before they are checked.
#[derive(Default)]
struct Settings {
    batch_size: Option<Value>,
    max_retries: Option<Value>,
    timeout: Option<Value>,
    concurrency: Option<Value>,
    skip_limit: Option<Value>,
    durability: Option<Value>,
    partitions: Option<Value>,
}

impl Settings {
    /// The slot of a known setting.
    fn slot(&mut self, field: &str) -> Option<&mut Option<Value>> {
        Some(match field {
            "batch_size" => &mut self.batch_size,
            "max_retries" => &mut self.max_retries,
            "timeout" => &mut self.timeout,
            "concurrency" => &mut self.concurrency,
            "skip_limit" => &mut self.skip_limit,
            "durability" => &mut self.durability,
            "partitions" => &mut self.partitions,
            _ => return None,
        })
    }

    /// Keeps a known setting's value (the last one given, as a JSON object keeps it).
    fn set(&mut self, field: &str, value: Value) {
        if let Some(slot) = self.slot(field) {
            *slot = Some(value);
        }
    }

    /// The config the settings describe, checked as [`BatchConfig::from_json`] documents.
    fn config(&self) -> Result<BatchConfig, ModelError> {
        let defaults = BatchConfig::default();
        let config = BatchConfig {
            batch_size: read_u32(self.batch_size.as_ref(), "batch_size", 1, BatchConfig::BATCH_SIZE_MAX)?
                .unwrap_or(defaults.batch_size),
            max_retries: read_u32(self.max_retries.as_ref(), "max_retries", 0, BatchConfig::MAX_RETRIES_MAX)?
                .unwrap_or(defaults.max_retries),
            timeout: read_timeout(self.timeout.as_ref())?.unwrap_or(defaults.timeout),
            concurrency: read_u32(self.concurrency.as_ref(), "concurrency", 1, BatchConfig::CONCURRENCY_MAX)?
                .unwrap_or(defaults.concurrency),
            skip_limit: read_whole_number(self.skip_limit.as_ref(), "skip_limit")?,
            durability: read_durability(self.durability.as_ref())?.unwrap_or(defaults.durability),
            partitions: read_u32(self.partitions.as_ref(), "partitions", 1, BatchConfig::PARTITIONS_MAX)?
                .unwrap_or(defaults.partitions),
        };
        config.validate()?;
        Ok(config)
    }
}

/// Reads a config as [`BatchConfig::from_json`] reads its JSON value, with the same results and the
/// same errors, without building the value: each known setting is read on its own, an unknown key is
/// only remembered (the first, in a JSON object's key order, is the error).
impl<'de> Deserialize<'de> for BatchConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BatchConfig, D::Error> {
        // A bad setting is raised here, once the value is read, as it was after reading a whole
        // value: a JSON reader then gives it no position of its own.
        deserializer.deserialize_any(ConfigVisitor)?.map_err(de::Error::custom)
    }
}

/// Reads a config; a value that is read but is not a valid config is the inner error.
struct ConfigVisitor;

/// A config object's key: one of [`FIELDS`] (no allocation), or the unknown key itself.
struct Key(Result<&'static str, String>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(Key(FIELDS.iter().find(|field| **field == key).copied().ok_or_else(|| key.to_owned())))
    }
}

/// The error for a config that is not an object (`kind` as [`json_kind`] names it).
fn not_an_object(kind: &str) -> ModelError {
    invalid("config", format!("must be a JSON object, got {kind}"))
}

/// The error for a key that is not one of [`FIELDS`].
fn unknown_setting(key: &str) -> ModelError {
    invalid(key, format!("is not a known setting (expected one of {})", FIELDS.join(", ")))
}

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = Result<BatchConfig, ModelError>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut settings = Settings::default();
        // Unknown keys in a JSON object's order (sorted, or as written with serde_json's
        // `preserve_order`), so that the one named is the one `from_json` names.
        let mut unknown = Map::new();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            match key {
                Ok(field) => settings.set(field, map.next_value()?),
                Err(key) => {
                    map.next_value::<de::IgnoredAny>()?;
                    unknown.insert(key, Value::Null);
                }
            }
        }
        if let Some(key) = unknown.keys().next() {
            return Ok(Err(unknown_setting(key)));
        }
        Ok(settings.config())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Read to its end, as a value would be.
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Err(not_an_object("an array")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a number")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("a string")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("null")))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(not_an_object("null")))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
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
fn setting(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}

/// A non-negative integer setting; `None` when missing or null.
fn read_whole_number(value: Option<&Value>, field: &str) -> Result<Option<u64>, ModelError> {
    let Some(value) = setting(value) else {
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
fn read_u32(value: Option<&Value>, field: &str, min: u32, max: u32) -> Result<Option<u32>, ModelError> {
    let Some(whole) = read_whole_number(value, field)? else {
        return Ok(None);
    };
    check_range(field, whole, min, max)?;
    // In range, so it fits; the fallback is unreachable but keeps this free of panics.
    Ok(Some(u32::try_from(whole).unwrap_or(max)))
}

fn read_timeout(value: Option<&Value>) -> Result<Option<Duration>, ModelError> {
    let field = "timeout";
    let Some(value) = setting(value) else {
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

fn read_durability(value: Option<&Value>) -> Result<Option<Durability>, ModelError> {
    let field = "durability";
    let Some(value) = setting(value) else {
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
    use proptest::prelude::*;

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

    /// The reading this crate did before its visitor: the whole value first, then `from_json`.
    struct ThroughValue(BatchConfig);

    impl<'de> Deserialize<'de> for ThroughValue {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ThroughValue, D::Error> {
            let value = Value::deserialize(deserializer)?;
            BatchConfig::from_json(&value).map(ThroughValue).map_err(de::Error::custom)
        }
    }

    fn both(text: &str) -> (Result<BatchConfig, String>, Result<BatchConfig, String>) {
        let read = serde_json::from_str::<BatchConfig>(text).map_err(|error| error.to_string());
        let through = serde_json::from_str::<ThroughValue>(text)
            .map(|config| config.0)
            .map_err(|error| error.to_string());
        (read, through)
    }

    #[test]
    fn reading_gives_what_the_value_and_from_json_give_results_and_errors() {
        for text in [
            r#"{}"#,
            r#"{"batch_size": 100, "timeout": "2s", "durability": "power_loss", "skip_limit": 5}"#,
            r#"{"timeout": 2500, "partitions": 4, "concurrency": 3, "max_retries": 0}"#,
            r#"{"batch_size": 1, "batch_size": 7}"#,
            r#"{"batch_size": -1}"#,
            r#"{"batch_size": 1.5}"#,
            r#"{"batch_size": "10"}"#,
            r#"{"batch_size": 0}"#,
            r#"{"zebra": 1, "apple": 2, "batch_size": -1}"#,
            r#"{"timeout": "soon"}"#,
            r#"{"timeout": -5}"#,
            r#"{"timeout": [1]}"#,
            r#"{"durability": "disk"}"#,
            r#"{"skip_limit": null, "timeout": null}"#,
            r#"{"params": {"nested": [1, 2, {"a": null}]}}"#,
            r#"[1, 2, 3]"#,
            r#""a string""#,
            r#"42"#,
            r#"-1.5"#,
            r#"true"#,
            r#"null"#,
            r#"{"batch_size": 10"#,
            r#"{"batch_size": 10,}"#,
            r#"{"timeout": "1m 30s", "durability": "process", "partitions": 256}"#,
            r#"{"timeout": "25h"}"#,
            r#"{"timeout": "0s"}"#,
            r#"{"timeout": "process"}"#,
            r#"{"timeout": 0}"#,
            r#"{"timeout": 2500.0}"#,
            r#"{"durability": "30s"}"#,
            r#"{"durability": 5}"#,
            r#"{"durability": ["process"]}"#,
            r#"{"batch_size": "process"}"#,
            r#"{"skip_limit": "30s", "batch_size": 1}"#,
            r#"{"skip_limit": 18446744073709551615}"#,
            r#"{"partitions": 257}"#,
            r#"{"concurrency": {"a": 1}}"#,
        ] {
            let (read, through) = both(text);
            assert_eq!(read, through, "{text}");
            // Inside another record, where the error takes the outer reader's position.
            let nested = format!(r#"{{"config": {text}, "after": 1}}"#);
            let read = serde_json::from_str::<Outer<BatchConfig>>(&nested).map(|outer| outer.config);
            let through = serde_json::from_str::<Outer<ThroughValue>>(&nested).map(|outer| outer.config.0);
            assert_eq!(
                read.map_err(|error| error.to_string()),
                through.map_err(|error| error.to_string()),
                "{nested}"
            );
        }
    }

    /// A record holding a config (its other keys ignored).
    #[derive(Deserialize)]
    struct Outer<C> {
        config: C,
    }

    fn setting_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            (-5i64..5_000_000).prop_map(|n| n.to_string()),
            (0u64..u64::MAX).prop_map(|n| n.to_string()),
            (-1e6f64..1e6).prop_map(|n| format!("{n:?}")),
            prop::sample::select(vec![
                "\"30s\"",
                "\"0s\"",
                "\"2h\"",
                "\"soon\"",
                "\"process\"",
                "\"power_loss\""
            ])
            .prop_map(str::to_owned),
            Just("[1, \"x\"]".to_owned()),
            Just("{\"a\": {}}".to_owned()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_object_reads_as_through_a_value(
            entries in proptest::collection::vec(
                (prop::sample::select(vec![
                    "batch_size", "max_retries", "timeout", "concurrency", "skip_limit", "durability",
                    "partitions", "bogus", "aardvark", "zz_top",
                ]), setting_value()),
                0..9,
            )
        ) {
            let text = format!(
                "{{{}}}",
                entries.iter().map(|(key, value)| format!("\"{key}\": {value}")).collect::<Vec<_>>().join(", ")
            );
            let (read, through) = both(&text);
            proptest::prop_assert_eq!(read, through, "{}", text);
        }
    }
}
