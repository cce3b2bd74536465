//! `BatchMetrics::from_tasks` formulas on hand-built tasks.

use std::time::Duration;

use batch_model::{BatchMetrics, BatchTask, CreateTaskRequest, TaskId, TaskStatus, TaskType};
use chrono::{DateTime, TimeDelta, Utc};

fn at(seconds_after: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_564_800, 0).unwrap() + TimeDelta::seconds(seconds_after)
}

/// A task in `status` with the given start and end, in seconds after a fixed instant.
fn task(status: TaskStatus, started: Option<i64>, completed: Option<i64>) -> BatchTask {
    let mut task =
        BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::BatchProcess), at(0)).unwrap();
    task.status = status;
    task.started_at = started.map(at);
    task.completed_at = completed.map(at);
    task
}

#[test]
fn counts_rates_and_durations() {
    let tasks = [
        task(TaskStatus::Pending, None, None),
        task(TaskStatus::Processing, Some(1), None),
        task(TaskStatus::Completed, Some(0), Some(10)),
        task(TaskStatus::Completed, Some(5), Some(35)),
        task(TaskStatus::Completed, Some(0), Some(20)),
        task(TaskStatus::Failed, Some(0), Some(40)),
        task(TaskStatus::Cancelled, Some(10), Some(30)),
        // Cancelled before it started: counted, but has no run time.
        task(TaskStatus::Cancelled, None, Some(3)),
    ];
    let metrics = BatchMetrics::from_tasks(&tasks);
    assert_eq!(metrics.total_tasks, 8);
    assert_eq!(
        (
            metrics.pending_tasks,
            metrics.processing_tasks,
            metrics.completed_tasks,
            metrics.failed_tasks,
            metrics.cancelled_tasks
        ),
        (1, 1, 3, 1, 2)
    );
    // 3 completed / (3 completed + 1 failed); cancelled tasks do not count.
    assert_eq!(metrics.success_rate, 0.75);
    // 10 + 30 + 20 + 40 + 20 seconds over the 5 finished tasks that have both timestamps.
    assert_eq!(metrics.total_duration, Duration::from_secs(120));
    assert_eq!(metrics.avg_duration, Duration::from_secs(24));
}

#[test]
fn no_finished_tasks_gives_zero_rate_and_durations() {
    let tasks = [task(TaskStatus::Pending, None, None), task(TaskStatus::Processing, Some(0), None)];
    let metrics = BatchMetrics::from_tasks(&tasks);
    assert_eq!((metrics.total_tasks, metrics.success_rate), (2, 0.0));
    assert_eq!((metrics.avg_duration, metrics.total_duration), (Duration::ZERO, Duration::ZERO));
}

#[test]
fn only_cancelled_tasks_gives_zero_success_rate_but_counts_their_durations() {
    let tasks = [task(TaskStatus::Cancelled, Some(0), Some(8))];
    let metrics = BatchMetrics::from_tasks(&tasks);
    assert_eq!(metrics.success_rate, 0.0);
    assert_eq!(
        (metrics.total_duration, metrics.avg_duration),
        (Duration::from_secs(8), Duration::from_secs(8))
    );
}

#[test]
fn all_failed_gives_zero_and_all_completed_gives_one() {
    let failed = [task(TaskStatus::Failed, Some(0), Some(1)), task(TaskStatus::Failed, Some(0), Some(1))];
    assert_eq!(BatchMetrics::from_tasks(&failed).success_rate, 0.0);
    let completed = [task(TaskStatus::Completed, Some(0), Some(1))];
    assert_eq!(BatchMetrics::from_tasks(&completed).success_rate, 1.0);
}

#[test]
fn running_tasks_add_no_duration_even_with_timestamps() {
    // A processing task requeued after a lease expiry may carry an old completed_at only by a bug
    // elsewhere; it is not finished, so it is not timed.
    let tasks =
        [task(TaskStatus::Processing, Some(0), Some(100)), task(TaskStatus::Completed, Some(0), Some(4))];
    let metrics = BatchMetrics::from_tasks(&tasks);
    assert_eq!(
        (metrics.total_duration, metrics.avg_duration),
        (Duration::from_secs(4), Duration::from_secs(4))
    );
}

#[test]
fn clock_skew_counts_as_zero() {
    let tasks =
        [task(TaskStatus::Completed, Some(10), Some(4)), task(TaskStatus::Completed, Some(0), Some(6))];
    let metrics = BatchMetrics::from_tasks(&tasks);
    assert_eq!(
        (metrics.total_duration, metrics.avg_duration),
        (Duration::from_secs(6), Duration::from_secs(3))
    );
}

#[test]
fn average_keeps_sub_second_precision() {
    let mut short = task(TaskStatus::Completed, Some(0), None);
    short.completed_at = Some(at(0) + TimeDelta::milliseconds(1500));
    let tasks = [short, task(TaskStatus::Completed, Some(0), Some(1))];
    let metrics = BatchMetrics::from_tasks(tasks.iter());
    assert_eq!(metrics.total_duration, Duration::from_millis(2500));
    assert_eq!(metrics.avg_duration, Duration::from_millis(1250));
}
