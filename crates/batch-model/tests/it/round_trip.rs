//! Serde round trips: properties for `BatchConfig` and `Progress`, and whole records.

use std::time::Duration;

use batch_model::{
    BatchConfig, BatchItem, BatchResult, CreateTaskRequest, Durability, ErrorCode, ListTasksRequest,
    Progress, TaskError, TaskId, TaskStatus, TaskType, UpdateTaskStatusRequest,
};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

fn valid_config() -> impl Strategy<Value = BatchConfig> {
    let timeout_nanos =
        BatchConfig::TIMEOUT_MIN.as_nanos() as u64..=BatchConfig::TIMEOUT_MAX.as_nanos() as u64;
    (
        1..=BatchConfig::BATCH_SIZE_MAX,
        0..=BatchConfig::MAX_RETRIES_MAX,
        prop_oneof![
            timeout_nanos.prop_map(Duration::from_nanos),
            (1u64..=86_400_000).prop_map(Duration::from_millis),
        ],
        1..=BatchConfig::CONCURRENCY_MAX,
        proptest::option::of(any::<u64>()),
        prop_oneof![Just(Durability::Process), Just(Durability::PowerLoss)],
        1..=BatchConfig::PARTITIONS_MAX,
    )
        .prop_map(
            |(batch_size, max_retries, timeout, concurrency, skip_limit, durability, partitions)| {
                BatchConfig {
                    batch_size,
                    max_retries,
                    timeout,
                    concurrency,
                    skip_limit,
                    durability,
                    partitions,
                }
            },
        )
}

fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    // Years 1970 to 2200, any nanosecond.
    (0i64..7_258_118_400, 0u32..1_000_000_000)
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![0.0..=100.0, any::<f64>().prop_filter("finite", |value| value.is_finite())]
}

fn progress() -> impl Strategy<Value = Progress> {
    (
        (proptest::option::of(any::<u64>()), any::<u64>(), any::<u64>(), any::<u64>()),
        (proptest::option::of(finite()), proptest::option::of(".{0,40}"), proptest::option::of(finite())),
        // Up to about 100 years, any nanosecond.
        proptest::option::of(
            (0u64..3_155_760_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        ),
        timestamp(),
    )
        .prop_map(
            |((total, processed, failed, skipped), (percentage, message, throughput), eta, updated_at)| {
                Progress {
                    total,
                    processed,
                    failed,
                    skipped,
                    percentage,
                    message,
                    throughput,
                    eta,
                    updated_at,
                }
            },
        )
}

proptest! {
    #[test]
    fn batch_config_round_trips(config in valid_config()) {
        let json = serde_json::to_string(&config).unwrap();
        let read: BatchConfig = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&read, &config);
        prop_assert_eq!(BatchConfig::from_json(&serde_json::from_str(&json).unwrap()).unwrap(), config);
    }

    #[test]
    fn batch_config_timeout_in_milliseconds_reads_the_same(config in valid_config()) {
        let millis = Duration::from_millis(config.timeout.as_millis().max(1) as u64);
        let mut json = serde_json::to_value(&config).unwrap();
        json["timeout"] = serde_json::json!(millis.as_millis() as u64);
        let read = BatchConfig::from_json(&json).unwrap();
        prop_assert_eq!(read, BatchConfig { timeout: millis, ..config });
    }

    #[test]
    fn progress_round_trips(progress in progress()) {
        let json = serde_json::to_string(&progress).unwrap();
        let read: Progress = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(read, progress);
    }

    #[test]
    fn computed_progress_is_in_range_and_round_trips(
        total in proptest::option::of(0u64..1_000_000_000),
        processed in 0u64..1_000_000_000,
        failed in 0u64..1_000_000,
        skipped in 0u64..1_000_000,
        elapsed_millis in 0u64..100_000_000,
    ) {
        let progress = Progress::compute(total, processed, failed, skipped, Duration::from_millis(elapsed_millis));
        if let Some(percentage) = progress.percentage {
            prop_assert!((0.0..=100.0).contains(&percentage));
        }
        if let Some(throughput) = progress.throughput {
            prop_assert!(throughput.is_finite() && throughput >= 0.0);
        }
        if let Some(eta) = progress.eta {
            prop_assert_eq!(eta.subsec_nanos() % 1_000_000, 0);
        }
        let read: Progress = serde_json::from_str(&serde_json::to_string(&progress).unwrap()).unwrap();
        prop_assert_eq!(read, progress);
    }
}

#[test]
fn item_and_result_round_trip() {
    let now = Utc::now();
    let mut item = BatchItem::new("line-3", vec![1.5, -2.0], now);
    item.metadata.insert("offset".to_owned(), "1024".to_owned());
    let read: BatchItem<Vec<f64>> = serde_json::from_str(&serde_json::to_string(&item).unwrap()).unwrap();
    assert_eq!(read, item);

    let failed: BatchResult<String> =
        BatchResult::failed("line-4", TaskError::new(ErrorCode::ValidationError, "no amount"), now);
    let read: BatchResult<String> = serde_json::from_str(&serde_json::to_string(&failed).unwrap()).unwrap();
    assert_eq!(read, failed);
}

#[test]
fn requests_round_trip() {
    let create = CreateTaskRequest::new(TaskType::Custom("geo".to_owned()))
        .with_config(BatchConfig { batch_size: 7, ..BatchConfig::default() })
        .with_params(serde_json::json!({ "input": "a.jsonl" }));
    let read: CreateTaskRequest = serde_json::from_str(&serde_json::to_string(&create).unwrap()).unwrap();
    assert_eq!(read, create);

    let update = UpdateTaskStatusRequest {
        id: TaskId::new(),
        status: TaskStatus::Failed,
        error: Some(
            TaskError::new(ErrorCode::StorageError, "disk full").with_details(serde_json::json!([1])),
        ),
    };
    let read: UpdateTaskStatusRequest =
        serde_json::from_str(&serde_json::to_string(&update).unwrap()).unwrap();
    assert_eq!(read, update);

    let list = ListTasksRequest { status: Some(TaskStatus::Pending), ..ListTasksRequest::default() };
    let read: ListTasksRequest = serde_json::from_str(&serde_json::to_string(&list).unwrap()).unwrap();
    assert_eq!(read, list);
}
