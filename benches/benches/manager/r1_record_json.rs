//! `r1_record_json`: serialising a task's record, as the SQLite and PostgreSQL stores do at every
//! change they write (three times per task in m2 and m3) and as the HTTP API does for every answer.
//! `batch_model` is `BatchTask` itself; `chrono_serde` is a mirror of it whose own four timestamps
//! use chrono's serde (the model's before it wrote timestamps itself), checked to write the same
//! bytes. Its nested records are the model's in both.

use std::collections::BTreeMap;

use batch_model::{
    AttemptRecord, BatchConfig, BatchTask, CreateTaskRequest, Partition, Progress, TaskError, TaskId,
    TaskStatus, TaskType, TransitionCause,
};
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, Throughput};
use serde::Serialize;

/// `BatchTask`'s fields in its order, its timestamps written by chrono.
#[derive(Serialize)]
struct ChronoRecord<'a> {
    id: TaskId,
    task_type: &'a TaskType,
    status: TaskStatus,
    config: &'a BatchConfig,
    params: &'a serde_json::Value,
    progress: &'a Progress,
    error: &'a Option<TaskError>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    metadata: &'a BTreeMap<String, String>,
    attempt: u32,
    attempts: &'a [AttemptRecord],
    parent_id: Option<TaskId>,
    partition: Option<Partition>,
}

impl<'a> ChronoRecord<'a> {
    fn of(task: &'a BatchTask) -> ChronoRecord<'a> {
        ChronoRecord {
            id: task.id,
            task_type: &task.task_type,
            status: task.status,
            config: &task.config,
            params: &task.params,
            progress: &task.progress,
            error: &task.error,
            created_at: task.created_at,
            updated_at: task.updated_at,
            started_at: task.started_at,
            completed_at: task.completed_at,
            metadata: &task.metadata,
            attempt: task.attempt,
            attempts: &task.attempts,
            parent_id: task.parent_id,
            partition: task.partition,
        }
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
    let mirror = ChronoRecord::of(&task);
    assert_eq!(to_vec(&task), to_vec(&mirror), "the mirror writes other bytes than the model");
    let mut group = c.benchmark_group("r1_record_json");
    group.throughput(Throughput::Elements(1));
    group.bench_function("batch_model", |b| b.iter(|| to_vec(std::hint::black_box(&task))));
    group.bench_function("chrono_serde", |b| b.iter(|| to_vec(std::hint::black_box(&mirror))));
    group.finish();
}
