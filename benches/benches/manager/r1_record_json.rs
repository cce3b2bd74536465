//! `r1_record_json`: serialising a task's record, as the SQLite and PostgreSQL stores do at every
//! change they write (three times per task in m2 and m3) and as the HTTP API does for every answer,
//! and reading it back, as the stores do for every task they load (a claim, a listing). `batch_model`
//! is `BatchTask` itself; `chrono_serde` is a mirror of it whose own four timestamps use chrono's
//! serde and which reads its config through a `serde_json::Value` and `BatchConfig::from_json` (the
//! model's ways before this bench), checked to write the same bytes and read the same task. Its
//! other nested records are the model's in both.

use std::collections::BTreeMap;

use batch_model::{
    AttemptRecord, BatchConfig, BatchTask, CreateTaskRequest, Partition, Progress, TaskError, TaskId,
    TaskStatus, TaskType, TransitionCause,
};
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};

/// `BatchTask`'s fields in its order, its timestamps written and read by chrono, its config read
/// through a `serde_json::Value`.
#[derive(Serialize, Deserialize)]
struct ChronoRecord {
    id: TaskId,
    task_type: TaskType,
    status: TaskStatus,
    #[serde(deserialize_with = "config_through_value")]
    config: BatchConfig,
    params: serde_json::Value,
    progress: Progress,
    error: Option<TaskError>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    metadata: BTreeMap<String, String>,
    attempt: u32,
    attempts: Vec<AttemptRecord>,
    parent_id: Option<TaskId>,
    partition: Option<Partition>,
}

impl ChronoRecord {
    fn of(task: BatchTask) -> ChronoRecord {
        ChronoRecord {
            id: task.id,
            task_type: task.task_type,
            status: task.status,
            config: task.config,
            params: task.params,
            progress: task.progress,
            error: task.error,
            created_at: task.created_at,
            updated_at: task.updated_at,
            started_at: task.started_at,
            completed_at: task.completed_at,
            metadata: task.metadata,
            attempt: task.attempt,
            attempts: task.attempts,
            parent_id: task.parent_id,
            partition: task.partition,
        }
    }

    fn into_task(self) -> BatchTask {
        BatchTask {
            id: self.id,
            task_type: self.task_type,
            status: self.status,
            config: self.config,
            params: self.params,
            progress: self.progress,
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
            metadata: self.metadata,
            attempt: self.attempt,
            attempts: self.attempts,
            parent_id: self.parent_id,
            partition: self.partition,
        }
    }
}

/// The config as the model read it before: the whole value, then `from_json`.
fn config_through_value<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BatchConfig, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    BatchConfig::from_json(&value).map_err(serde::de::Error::custom)
}

fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> T {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(error) => panic!("cannot read the record: {error}"),
    }
}

/// A completed task like m3's, its times with 9, 6 and 3 fraction digits.
fn completed_task() -> BatchTask {
    let created = DateTime::from_timestamp(1_796_608_000, 325_558_621).unwrap_or_default();
    let request = CreateTaskRequest::new(TaskType::Custom("bench_empty".to_owned()));
    let mut task = match BatchTask::new(TaskId::new(), request, created) {
        Ok(task) => task,
        Err(error) => panic!("cannot build the task: {error}"),
    };
    for (status, after) in [(TaskStatus::Processing, 27_519_000), (TaskStatus::Completed, 68_420_000)] {
        if let Err(error) =
            task.transition(status, TransitionCause::Requested, created + TimeDelta::nanoseconds(after))
        {
            panic!("cannot move the task on: {error}");
        }
    }
    task
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        Err(error) => panic!("cannot serialise the record: {error}"),
    }
}

pub(crate) fn r1_record_json(c: &mut Criterion) {
    let task = completed_task();
    let mirror = ChronoRecord::of(task.clone());
    assert_eq!(to_vec(&task), to_vec(&mirror), "the mirror writes other bytes than the model");
    let bytes = to_vec(&task);
    assert_eq!(from_slice::<BatchTask>(&bytes), task, "the model reads another task");
    assert_eq!(from_slice::<ChronoRecord>(&bytes).into_task(), task, "the mirror reads another task");
    let mut group = c.benchmark_group("r1_record_json");
    group.throughput(Throughput::Elements(1));
    group.bench_function("write/batch_model", |b| b.iter(|| to_vec(std::hint::black_box(&task))));
    group.bench_function("write/chrono_serde", |b| b.iter(|| to_vec(std::hint::black_box(&mirror))));
    group.bench_function("read/batch_model", |b| {
        b.iter(|| from_slice::<BatchTask>(std::hint::black_box(&bytes)))
    });
    group.bench_function("read/chrono_serde", |b| {
        b.iter(|| from_slice::<ChronoRecord>(std::hint::black_box(&bytes)))
    });
    group.finish();
}
