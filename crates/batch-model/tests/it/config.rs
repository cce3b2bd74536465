//! `BatchConfig` validation per setting and `BatchConfig::from_json` errors that name the setting.

use std::time::Duration;

use batch_model::{BatchConfig, Durability, ErrorCode, ModelError};
use serde_json::json;

/// Asserts that `result` is a configuration error about `field` with exactly `message`.
fn check_error(result: Result<BatchConfig, ModelError>, field: &str, message: &str) {
    let error = result.expect_err(message);
    assert_eq!(error.code(), ErrorCode::ConfigurationError, "{error}");
    assert!(matches!(&error, ModelError::InvalidConfig { field: named, .. } if named == field), "{error:?}");
    assert_eq!(error.to_string(), message);
}

fn check_json(json: serde_json::Value, field: &str, message: &str) {
    check_error(BatchConfig::from_json(&json), field, message);
    // Deserialising goes through the same checks and keeps the message.
    let serde_error = serde_json::from_value::<BatchConfig>(json).expect_err(message).to_string();
    assert!(serde_error.starts_with(message), "{serde_error}");
}

fn check_validate(config: BatchConfig, field: &str, message: &str) {
    check_error(config.validate().map(|()| config.clone()), field, message);
}

#[test]
fn validate_rejects_zero_and_too_large_per_setting() {
    let default = BatchConfig::default();
    check_validate(
        BatchConfig { batch_size: 0, ..default.clone() },
        "batch_size",
        "invalid configuration: batch_size must be at least 1, got 0",
    );
    check_validate(
        BatchConfig { batch_size: 1_000_001, ..default.clone() },
        "batch_size",
        "invalid configuration: batch_size must be at most 1000000, got 1000001",
    );
    check_validate(
        BatchConfig { max_retries: 101, ..default.clone() },
        "max_retries",
        "invalid configuration: max_retries must be at most 100, got 101",
    );
    check_validate(
        BatchConfig { timeout: Duration::ZERO, ..default.clone() },
        "timeout",
        "invalid configuration: timeout must be at least 1ms, got 0s",
    );
    check_validate(
        BatchConfig { timeout: Duration::from_micros(999), ..default.clone() },
        "timeout",
        "invalid configuration: timeout must be at least 1ms, got 999us",
    );
    check_validate(
        BatchConfig { timeout: Duration::from_secs(24 * 3600 + 1), ..default.clone() },
        "timeout",
        "invalid configuration: timeout must be at most 1day, got 1day 1s",
    );
    check_validate(
        BatchConfig { concurrency: 0, ..default.clone() },
        "concurrency",
        "invalid configuration: concurrency must be at least 1, got 0",
    );
    check_validate(
        BatchConfig { concurrency: 1025, ..default },
        "concurrency",
        "invalid configuration: concurrency must be at most 1024, got 1025",
    );
}

#[test]
fn zero_retries_and_a_zero_skip_limit_are_valid() {
    let config = BatchConfig { max_retries: 0, skip_limit: Some(0), ..BatchConfig::default() };
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn from_json_rejects_negative_numbers_naming_the_setting() {
    for field in ["batch_size", "max_retries", "timeout", "concurrency", "skip_limit"] {
        check_json(
            json!({ field: -3 }),
            field,
            &format!("invalid configuration: {field} must not be negative, got -3"),
        );
    }
    check_json(
        json!({ "batch_size": -2.5 }),
        "batch_size",
        "invalid configuration: batch_size must not be negative, got -2.5",
    );
}

#[test]
fn from_json_rejects_zero_naming_the_setting() {
    check_json(
        json!({ "batch_size": 0 }),
        "batch_size",
        "invalid configuration: batch_size must be at least 1, got 0",
    );
    check_json(
        json!({ "concurrency": 0 }),
        "concurrency",
        "invalid configuration: concurrency must be at least 1, got 0",
    );
    check_json(
        json!({ "timeout": 0 }),
        "timeout",
        "invalid configuration: timeout must be at least 1ms, got 0s",
    );
    check_json(
        json!({ "timeout": "0s" }),
        "timeout",
        "invalid configuration: timeout must be at least 1ms, got 0s",
    );
}

#[test]
fn from_json_rejects_too_large_values_naming_the_setting() {
    check_json(
        json!({ "batch_size": 2_000_000 }),
        "batch_size",
        "invalid configuration: batch_size must be at most 1000000, got 2000000",
    );
    check_json(
        json!({ "max_retries": 4_294_967_296u64 }),
        "max_retries",
        "invalid configuration: max_retries must be at most 100, got 4294967296",
    );
    check_json(
        json!({ "concurrency": 1025 }),
        "concurrency",
        "invalid configuration: concurrency must be at most 1024, got 1025",
    );
    check_json(
        json!({ "timeout": "2days" }),
        "timeout",
        "invalid configuration: timeout must be at most 1day, got 2days",
    );
}

#[test]
fn from_json_rejects_wrong_types_naming_the_setting() {
    check_json(
        json!({ "batch_size": "10" }),
        "batch_size",
        "invalid configuration: batch_size must be a whole number, got a string",
    );
    check_json(
        json!({ "concurrency": 1.5 }),
        "concurrency",
        "invalid configuration: concurrency must be a whole number, got 1.5",
    );
    check_json(
        json!({ "skip_limit": true }),
        "skip_limit",
        "invalid configuration: skip_limit must be a whole number, got a boolean",
    );
    check_json(
        json!({ "timeout": [30] }),
        "timeout",
        "invalid configuration: timeout must be a duration such as \"30s\" or a number of milliseconds, got an array",
    );
    check_json(
        json!({ "timeout": 2.5 }),
        "timeout",
        "invalid configuration: timeout must be a whole number of milliseconds or a duration such as \"30s\", got 2.5",
    );
    check_json(
        json!({ "durability": "fsync" }),
        "durability",
        "invalid configuration: durability must be \"process\" or \"power_loss\", got \"fsync\"",
    );
    check_json(json!([1, 2]), "config", "invalid configuration: config must be a JSON object, got an array");
}

#[test]
fn from_json_rejects_unparsable_durations_naming_the_setting() {
    let error = BatchConfig::from_json(&json!({ "timeout": "thirty seconds" })).unwrap_err();
    assert!(matches!(&error, ModelError::InvalidConfig { field, .. } if field == "timeout"));
    assert!(
        error
            .to_string()
            .starts_with("invalid configuration: timeout is not a duration (\"thirty seconds\": "),
        "{error}"
    );
}

#[test]
fn from_json_rejects_unknown_settings_by_name() {
    check_json(
        json!({ "batchsize": 10 }),
        "batchsize",
        "invalid configuration: batchsize is not a known setting \
         (expected one of batch_size, max_retries, timeout, concurrency, skip_limit, durability, partitions)",
    );
}

#[test]
fn from_json_fills_missing_settings_with_defaults() {
    let config = BatchConfig::from_json(&json!({ "max_retries": 0, "durability": "power_loss" })).unwrap();
    assert_eq!(
        config,
        BatchConfig { max_retries: 0, durability: Durability::PowerLoss, ..BatchConfig::default() }
    );
}

#[test]
fn from_json_reads_every_setting() {
    let config = BatchConfig::from_json(&json!({
        "batch_size": 1000,
        "max_retries": 5,
        "timeout": "1m 30s",
        "concurrency": 8,
        "skip_limit": 25,
        "durability": "power_loss",
        "partitions": 4,
    }))
    .unwrap();
    assert_eq!(
        config,
        BatchConfig {
            batch_size: 1000,
            max_retries: 5,
            timeout: Duration::from_secs(90),
            concurrency: 8,
            skip_limit: Some(25),
            durability: Durability::PowerLoss,
            partitions: 4,
        }
    );
}

#[test]
fn timeout_accepts_strings_and_integer_milliseconds() {
    for (timeout, expected) in [
        (json!("30s"), Duration::from_secs(30)),
        (json!("1m 30s"), Duration::from_secs(90)),
        (json!("500ms"), Duration::from_millis(500)),
        (json!("2h"), Duration::from_secs(7200)),
        (json!(1500), Duration::from_millis(1500)),
        (json!(1), Duration::from_millis(1)),
    ] {
        let config = BatchConfig::from_json(&json!({ "timeout": timeout })).unwrap();
        assert_eq!(config.timeout, expected, "{timeout}");
    }
}
