//! JSON golden tests: snake_case field names and the exact spellings of every enum value.

use std::collections::BTreeMap;
use std::time::Duration;

use batch_model::{
    AttemptRecord, BatchConfig, BatchMetrics, BatchTask, CreateTaskResponse, Durability, ErrorCode,
    ListTasksResponse, Partition, Progress, StopTaskResponse, TaskError, TaskId, TaskStatus,
    TaskStatusResponse, TaskType,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

fn at(seconds_after: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_564_800, 0).unwrap() + TimeDelta::seconds(seconds_after)
}

fn task_id() -> TaskId {
    "018f3a2b-4c5d-7e6f-8a9b-0c1d2e3f4a5b".parse().unwrap()
}

/// A failed train task with every field set.
fn failed_task() -> BatchTask {
    BatchTask {
        id: task_id(),
        task_type: TaskType::Train,
        status: TaskStatus::Failed,
        config: BatchConfig {
            batch_size: 64,
            max_retries: 2,
            timeout: Duration::from_millis(90_500),
            concurrency: 4,
            skip_limit: Some(10),
            durability: Durability::PowerLoss,
            partitions: 1,
        },
        params: json!({ "input": "data/iris.csv", "epochs": 20 }),
        progress: Progress {
            total: Some(150),
            processed: 100,
            failed: 11,
            skipped: 0,
            percentage: Some(74.0),
            message: Some("epoch 3 of 20".to_owned()),
            throughput: Some(11.1),
            eta: Some(Duration::from_millis(3500)),
            updated_at: at(12),
        },
        error: Some(TaskError {
            code: ErrorCode::ProcessingError,
            message: "11 items failed, more than the skip limit of 10".to_owned(),
            details: json!({ "failed_items": 11 }),
            timestamp: at(12),
            retryable: false,
        }),
        created_at: at(0),
        updated_at: at(12),
        started_at: Some(at(2)),
        completed_at: Some(at(12)),
        metadata: BTreeMap::from([("owner".to_owned(), "ml-team".to_owned())]),
        attempt: 2,
        attempts: vec![AttemptRecord {
            attempt: 1,
            status: TaskStatus::Cancelled,
            error: Some(TaskError {
                code: ErrorCode::Cancelled,
                message: "stopped by request".to_owned(),
                details: serde_json::Value::Null,
                timestamp: at(1),
                retryable: false,
            }),
            started_at: Some(at(0)),
            ended_at: Some(at(1)),
            progress: Progress::zero(at(1)),
        }],
        parent_id: Some("018f3a2b-4c5d-7e6f-8a9b-0c1d2e3f4a00".parse().unwrap()),
        partition: Some(Partition { index: 1, count: 4 }),
    }
}

fn failed_task_json() -> serde_json::Value {
    json!({
        "id": "018f3a2b-4c5d-7e6f-8a9b-0c1d2e3f4a5b",
        "task_type": "train",
        "status": "failed",
        "config": {
            "batch_size": 64,
            "max_retries": 2,
            "timeout": "1m 30s 500ms",
            "concurrency": 4,
            "skip_limit": 10,
            "durability": "power_loss",
            "partitions": 1,
        },
        "params": { "input": "data/iris.csv", "epochs": 20 },
        "progress": {
            "total": 150,
            "processed": 100,
            "failed": 11,
            "skipped": 0,
            "percentage": 74.0,
            "message": "epoch 3 of 20",
            "throughput": 11.1,
            "eta": "3s 500ms",
            "updated_at": "2024-05-01T12:00:12Z",
        },
        "error": {
            "code": "PROCESSING_ERROR",
            "message": "11 items failed, more than the skip limit of 10",
            "details": { "failed_items": 11 },
            "timestamp": "2024-05-01T12:00:12Z",
            "retryable": false,
        },
        "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:00:12Z",
        "started_at": "2024-05-01T12:00:02Z",
        "completed_at": "2024-05-01T12:00:12Z",
        "metadata": { "owner": "ml-team" },
        "attempt": 2,
        "attempts": [{
            "attempt": 1,
            "status": "cancelled",
            "error": {
                "code": "CANCELLED",
                "message": "stopped by request",
                "details": null,
                "timestamp": "2024-05-01T12:00:01Z",
                "retryable": false,
            },
            "started_at": "2024-05-01T12:00:00Z",
            "ended_at": "2024-05-01T12:00:01Z",
            "progress": {
                "total": null, "processed": 0, "failed": 0, "skipped": 0, "percentage": null,
                "message": null, "throughput": null, "eta": null, "updated_at": "2024-05-01T12:00:01Z",
            },
        }],
        "parent_id": "018f3a2b-4c5d-7e6f-8a9b-0c1d2e3f4a00",
        "partition": { "index": 1, "count": 4 },
    })
}

#[test]
fn a_record_written_before_attempts_and_partitions_reads_with_their_defaults() {
    let mut old = failed_task_json();
    let object = old.as_object_mut().unwrap();
    for field in ["attempt", "attempts", "parent_id", "partition"] {
        object.remove(field);
    }
    object["config"].as_object_mut().unwrap().remove("partitions");
    let task: BatchTask = serde_json::from_value(old).unwrap();
    assert_eq!((task.attempt, task.attempts.len()), (1, 0));
    assert_eq!((task.parent_id, task.partition, task.config.partitions), (None, None, 1));
}

#[test]
fn batch_task_has_the_expected_json_shape() {
    assert_eq!(serde_json::to_value(failed_task()).unwrap(), failed_task_json());
}

#[test]
fn batch_task_reads_back_from_the_golden_json() {
    let task: BatchTask = serde_json::from_value(failed_task_json()).unwrap();
    assert_eq!(task, failed_task());
}

#[test]
fn a_pending_task_writes_absent_values_as_null() {
    let task = BatchTask {
        status: TaskStatus::Pending,
        config: BatchConfig::default(),
        progress: Progress::zero(at(0)),
        error: None,
        updated_at: at(0),
        started_at: None,
        completed_at: None,
        metadata: BTreeMap::new(),
        ..failed_task()
    };
    let json = serde_json::to_value(task).unwrap();
    assert_eq!(
        json["config"],
        json!({
            "batch_size": 10, "max_retries": 3, "timeout": "30s", "concurrency": 2,
            "skip_limit": null, "durability": "process", "partitions": 1,
        })
    );
    assert_eq!(
        json["progress"],
        json!({
            "total": null, "processed": 0, "failed": 0, "skipped": 0, "percentage": null,
            "message": null, "throughput": null, "eta": null, "updated_at": "2024-05-01T12:00:00Z",
        })
    );
    assert_eq!(
        (&json["error"], &json["started_at"], &json["completed_at"]),
        (&json!(null), &json!(null), &json!(null))
    );
    assert_eq!(json["metadata"], json!({}));
}

#[test]
fn task_type_spellings() {
    for (task_type, spelling) in [
        (TaskType::Train, "train"),
        (TaskType::YouzanOrder, "youzan_order"),
        (TaskType::BatchProcess, "batch_process"),
        (TaskType::Custom("geo_enrich_v2".to_owned()), "geo_enrich_v2"),
    ] {
        assert_eq!(serde_json::to_value(&task_type).unwrap(), json!(spelling));
        assert_eq!(task_type.as_str(), spelling);
        assert_eq!(serde_json::from_value::<TaskType>(json!(spelling)).unwrap(), task_type);
    }
}

#[test]
fn task_status_spellings() {
    let spellings: Vec<serde_json::Value> =
        TaskStatus::ALL.iter().map(|status| serde_json::to_value(status).unwrap()).collect();
    assert_eq!(
        spellings,
        [json!("pending"), json!("processing"), json!("completed"), json!("failed"), json!("cancelled")]
    );
}

#[test]
fn error_code_spellings() {
    let spellings: Vec<serde_json::Value> =
        ErrorCode::ALL.iter().map(|code| serde_json::to_value(code).unwrap()).collect();
    assert_eq!(
        spellings,
        [
            json!("VALIDATION_ERROR"),
            json!("PROCESSING_ERROR"),
            json!("TIMEOUT_ERROR"),
            json!("CONFIGURATION_ERROR"),
            json!("NOT_FOUND"),
            json!("INVALID_STATE"),
            json!("STORAGE_ERROR"),
            json!("CANCELLED"),
        ]
    );
}

#[test]
fn durability_spellings() {
    assert_eq!(serde_json::to_value(Durability::Process).unwrap(), json!("process"));
    assert_eq!(serde_json::to_value(Durability::PowerLoss).unwrap(), json!("power_loss"));
}

#[test]
fn batch_metrics_shape() {
    let metrics = BatchMetrics {
        total_tasks: 5,
        pending_tasks: 1,
        processing_tasks: 1,
        completed_tasks: 2,
        failed_tasks: 1,
        cancelled_tasks: 0,
        success_rate: 2.0 / 3.0,
        avg_duration: Duration::from_secs(45),
        total_duration: Duration::from_secs(135),
    };
    assert_eq!(
        serde_json::to_value(&metrics).unwrap(),
        json!({
            "total_tasks": 5, "pending_tasks": 1, "processing_tasks": 1, "completed_tasks": 2,
            "failed_tasks": 1, "cancelled_tasks": 0, "success_rate": 2.0 / 3.0,
            "avg_duration": "45s", "total_duration": "2m 15s",
        })
    );
}

#[test]
fn response_shapes() {
    let task = failed_task();
    assert_eq!(
        serde_json::to_value(CreateTaskResponse::from(&task)).unwrap(),
        json!({ "id": task_id(), "status": "failed", "created_at": "2024-05-01T12:00:00Z" })
    );
    let status = serde_json::to_value(TaskStatusResponse::from(&task)).unwrap();
    let expected = failed_task_json();
    assert_eq!(
        status,
        json!({ "id": task_id(), "status": "failed", "progress": expected["progress"], "error": expected["error"] })
    );
    let stop = StopTaskResponse { id: task_id(), status: TaskStatus::Processing };
    assert_eq!(serde_json::to_value(stop).unwrap(), json!({ "id": task_id(), "status": "processing" }));
    let page = ListTasksResponse { tasks: vec![task], total: 7, limit: 1, offset: 3 };
    assert_eq!(
        serde_json::to_value(page).unwrap(),
        json!({ "tasks": [expected], "total": 7, "limit": 1, "offset": 3 })
    );
}
