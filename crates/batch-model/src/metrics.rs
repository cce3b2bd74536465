//! Metrics: per task ([`ProcessingMetrics`]) and across tasks ([`BatchMetrics`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration;
use crate::status::TaskStatus;
use crate::task::BatchTask;

/// What one task did with its items. All counts start at zero.
///
/// `duration` is the time spent processing, accumulated across attempts and resumes; after a crash and
/// a resume it is less than `end_time − start_time`, which includes the time the task was down.
/// Serialised like every model duration as a humantime string.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessingMetrics {
    /// Items taken from the source.
    pub total_items: u64,
    /// Items processed successfully.
    pub processed_items: u64,
    /// Items that failed after their retries.
    pub failed_items: u64,
    /// Retry attempts made (an item retried twice counts two).
    pub retried_items: u64,
    /// Items deliberately not processed.
    pub skipped_items: u64,
    /// When processing first started.
    #[serde(default, with = "crate::timestamp::option")]
    pub start_time: Option<DateTime<Utc>>,
    /// When processing ended.
    #[serde(default, with = "crate::timestamp::option")]
    pub end_time: Option<DateTime<Utc>>,
    /// Time spent processing.
    #[serde(with = "duration")]
    pub duration: Duration,
}

/// Counts and timings across a set of tasks.
///
/// - `success_rate = completed / (completed + failed)`, in `0.0..=1.0`; `0.0` when no task has completed
///   or failed yet (cancelled tasks are neither successes nor failures).
/// - `total_duration` sums, over finished tasks (completed, failed or cancelled) that have both
///   `started_at` and `completed_at`, the time from one to the other; a task cancelled before it
///   started has no `started_at` and is left out. A `completed_at` earlier than `started_at` (clock
///   skew between workers) counts as zero.
/// - `avg_duration = total_duration / (number of tasks summed)`; zero when there are none.
///
/// Durations are serialised as humantime strings.
///
/// ```
/// use batch_model::{BatchMetrics, BatchTask};
///
/// let tasks: Vec<BatchTask> = Vec::new();
/// let metrics = BatchMetrics::from_tasks(&tasks);
/// assert_eq!(metrics.total_tasks, 0);
/// assert_eq!(metrics.success_rate, 0.0);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BatchMetrics {
    /// Tasks counted.
    pub total_tasks: u64,
    /// Tasks `pending`.
    pub pending_tasks: u64,
    /// Tasks `processing`.
    pub processing_tasks: u64,
    /// Tasks `completed`.
    pub completed_tasks: u64,
    /// Tasks `failed`.
    pub failed_tasks: u64,
    /// Tasks `cancelled`.
    pub cancelled_tasks: u64,
    /// `completed / (completed + failed)`, or `0.0` when neither.
    pub success_rate: f64,
    /// Mean run time of the finished tasks that have one.
    #[serde(with = "duration")]
    pub avg_duration: Duration,
    /// Summed run time of the finished tasks that have one.
    #[serde(with = "duration")]
    pub total_duration: Duration,
}

/// Tasks of one status as a store counts them: how many, how many of those have a run time, and
/// their run times summed. [`BatchMetrics::from_counts`] turns a set of them into metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCount {
    /// The status counted.
    pub status: TaskStatus,
    /// Tasks with that status.
    pub tasks: u64,
    /// Those of them with a run time (finished, with both `started_at` and `completed_at`).
    pub timed_tasks: u64,
    /// Their run times, summed.
    pub run_time: Duration,
}

impl BatchMetrics {
    /// Counts `tasks` by status and computes the rates and durations described on [`BatchMetrics`].
    pub fn from_tasks<'a>(tasks: impl IntoIterator<Item = &'a BatchTask>) -> BatchMetrics {
        BatchMetrics::from_counts(tasks.into_iter().map(|task| {
            let run_time = match (task.started_at, task.completed_at) {
                (Some(started_at), Some(completed_at)) if task.status.is_terminal() => {
                    Some((completed_at - started_at).to_std().unwrap_or(Duration::ZERO))
                }
                _ => None,
            };
            StatusCount {
                status: task.status,
                tasks: 1,
                timed_tasks: u64::from(run_time.is_some()),
                run_time: run_time.unwrap_or_default(),
            }
        }))
    }

    /// Adds up `counts` (several may have the same status) and computes the rates and durations
    /// described on [`BatchMetrics`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use batch_model::{BatchMetrics, StatusCount, TaskStatus};
    ///
    /// let metrics = BatchMetrics::from_counts([
    ///     StatusCount { status: TaskStatus::Completed, tasks: 3, timed_tasks: 3, run_time: Duration::from_secs(6) },
    ///     StatusCount { status: TaskStatus::Failed, tasks: 1, timed_tasks: 1, run_time: Duration::from_secs(2) },
    ///     StatusCount { status: TaskStatus::Pending, tasks: 2, timed_tasks: 0, run_time: Duration::ZERO },
    /// ]);
    /// assert_eq!((metrics.total_tasks, metrics.success_rate), (6, 0.75));
    /// assert_eq!(metrics.avg_duration, Duration::from_secs(2));
    /// ```
    pub fn from_counts(counts: impl IntoIterator<Item = StatusCount>) -> BatchMetrics {
        let mut metrics = BatchMetrics::default();
        let mut timed_tasks: u64 = 0;
        for count in counts {
            metrics.total_tasks += count.tasks;
            match count.status {
                TaskStatus::Pending => metrics.pending_tasks += count.tasks,
                TaskStatus::Processing => metrics.processing_tasks += count.tasks,
                TaskStatus::Completed => metrics.completed_tasks += count.tasks,
                TaskStatus::Failed => metrics.failed_tasks += count.tasks,
                TaskStatus::Cancelled => metrics.cancelled_tasks += count.tasks,
            }
            metrics.total_duration = metrics.total_duration.saturating_add(count.run_time);
            timed_tasks += count.timed_tasks;
        }
        let finished = metrics.completed_tasks + metrics.failed_tasks;
        if finished > 0 {
            metrics.success_rate = metrics.completed_tasks as f64 / finished as f64;
        }
        if timed_tasks > 0 {
            let mean_nanos = metrics.total_duration.as_nanos() / u128::from(timed_tasks);
            // The mean is at most the total, which is a `Duration`, so it fits in u64 seconds.
            let seconds = u64::try_from(mean_nanos / 1_000_000_000).unwrap_or(u64::MAX);
            let nanos = u32::try_from(mean_nanos % 1_000_000_000).unwrap_or(0);
            metrics.avg_duration = Duration::new(seconds, nanos);
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_metrics_default_to_zero() {
        let metrics = ProcessingMetrics::default();
        assert_eq!(metrics.total_items + metrics.processed_items + metrics.retried_items, 0);
        assert_eq!((metrics.start_time, metrics.duration), (None, Duration::ZERO));
    }

    #[test]
    fn processing_metrics_serialise_in_snake_case() {
        let metrics = ProcessingMetrics {
            total_items: 10,
            processed_items: 7,
            failed_items: 2,
            retried_items: 4,
            skipped_items: 1,
            start_time: None,
            end_time: None,
            duration: Duration::from_millis(1500),
        };
        assert_eq!(
            serde_json::to_value(&metrics).unwrap(),
            serde_json::json!({
                "total_items": 10, "processed_items": 7, "failed_items": 2, "retried_items": 4,
                "skipped_items": 1, "start_time": null, "end_time": null, "duration": "1s 500ms",
            })
        );
    }
}
