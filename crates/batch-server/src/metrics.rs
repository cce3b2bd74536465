//! The server's Prometheus metrics ([`ServerMetrics`]), written in the text format at `GET /metrics`:
//!
//! - `batch_tasks{status}` — tasks in the store by status (a gauge read from the store at each scrape);
//! - `batch_items_processed_total{kind}`, `batch_items_failed_total{kind}` — items done by kind, counted
//!   from the task changes this server saw (progress deltas), so they grow while tasks run;
//! - `batch_task_duration_seconds{kind,status}` — run time of tasks that finished while the server
//!   ran (a histogram);
//! - `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}` —
//!   requests by route template (never by raw path, so the label set stays bounded);
//! - `batch_event_streams` — event streams open now.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use batch_model::{BatchMetrics, BatchTask, TaskStatus};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

type Labels = Vec<(&'static str, String)>;

fn duration_histogram() -> Histogram {
    // 0.1 s to about 1.8 days.
    Histogram::new(exponential_buckets(0.1, 4.0, 12))
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The server's metrics and the registry they are written from.
pub struct ServerMetrics {
    registry: Registry,
    tasks: Family<Labels, Gauge>,
    items_processed: Family<Labels, Counter>,
    items_failed: Family<Labels, Counter>,
    task_duration: Family<Labels, Histogram, fn() -> Histogram>,
    http_requests: Family<Labels, Counter>,
    http_duration: Family<Labels, Histogram, fn() -> Histogram>,
    event_streams: Gauge<i64, AtomicI64>,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

impl Default for ServerMetrics {
    fn default() -> ServerMetrics {
        ServerMetrics::new()
    }
}

impl ServerMetrics {
    /// Every metric at zero, registered.
    pub fn new() -> ServerMetrics {
        let mut registry = Registry::default();
        let tasks = Family::<Labels, Gauge>::default();
        let items_processed = Family::<Labels, Counter>::default();
        let items_failed = Family::<Labels, Counter>::default();
        let task_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let http_requests = Family::<Labels, Counter>::default();
        let http_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let event_streams = Gauge::<i64, AtomicI64>::default();
        registry.register("batch_tasks", "Tasks in the store by status", tasks.clone());
        registry.register("batch_items_processed", "Items processed, by task kind", items_processed.clone());
        registry.register(
            "batch_items_failed",
            "Items failed (dead-lettered), by task kind",
            items_failed.clone(),
        );
        registry.register_with_unit(
            "batch_task_duration",
            "Run time of finished tasks, by kind and final status",
            prometheus_client::registry::Unit::Seconds,
            task_duration.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by method and route",
            prometheus_client::registry::Unit::Seconds,
            http_duration.clone(),
        );
        registry.register("batch_event_streams", "Event streams open now", event_streams.clone());
        ServerMetrics {
            registry,
            tasks,
            items_processed,
            items_failed,
            task_duration,
            http_requests,
            http_duration,
            event_streams,
        }
    }

    /// Counts a change of `task`; `previous` is the status and item counts the hub saw last.
    pub(crate) fn task_changed(&self, task: &BatchTask, previous: Option<(TaskStatus, u64, u64)>) {
        let kind: Labels = vec![("kind", task.task_type.as_str().to_owned())];
        let (previous_status, processed, failed) = previous.unwrap_or((TaskStatus::Pending, 0, 0));
        let processed_delta = task.progress.processed.saturating_sub(processed);
        let failed_delta = task.progress.failed.saturating_sub(failed);
        if processed_delta > 0 {
            self.items_processed.get_or_create(&kind).inc_by(processed_delta);
        }
        if failed_delta > 0 {
            self.items_failed.get_or_create(&kind).inc_by(failed_delta);
        }
        if task.status.is_terminal()
            && !previous_status.is_terminal()
            && let (Some(started_at), Some(completed_at)) = (task.started_at, task.completed_at)
        {
            let seconds = (completed_at - started_at).to_std().unwrap_or(Duration::ZERO).as_secs_f64();
            let labels: Labels = vec![
                ("kind", task.task_type.as_str().to_owned()),
                ("status", task.status.as_str().to_owned()),
            ];
            self.task_duration.get_or_create(&labels).observe(seconds);
        }
    }

    /// One more (`+1`) or one fewer (`-1`) open event stream.
    pub(crate) fn event_streams_add(&self, delta: i64) {
        self.event_streams.inc_by(delta);
    }

    /// The metrics in the Prometheus text format, with the task counts `store_counts` as of now.
    pub fn render(&self, store_counts: &BatchMetrics) -> String {
        for (status, count) in [
            (TaskStatus::Pending, store_counts.pending_tasks),
            (TaskStatus::Processing, store_counts.processing_tasks),
            (TaskStatus::Completed, store_counts.completed_tasks),
            (TaskStatus::Failed, store_counts.failed_tasks),
            (TaskStatus::Cancelled, store_counts.cancelled_tasks),
        ] {
            let labels: Labels = vec![("status", status.as_str().to_owned())];
            self.tasks.get_or_create(&labels).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn http_request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let labels: Labels =
            vec![("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        self.http_requests.get_or_create(&labels).inc();
        let labels: Labels = vec![("method", method.to_owned()), ("route", route.to_owned())];
        self.http_duration.get_or_create(&labels).observe(latency.as_secs_f64());
    }
}

/// Middleware: counts each request by method, route template and status, and logs it.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    state.metrics().http_request(method.as_str(), &route, status, latency);
    tracing::info!(method = %method, route = %route, status, latency_ms = latency.as_secs_f64() * 1000.0, "request");
    response
}

#[cfg(test)]
mod tests {
    use batch_model::{CreateTaskRequest, TaskId, TaskType, TransitionCause};
    use chrono::Utc;

    use super::*;

    #[test]
    fn changes_count_items_once_and_durations_at_the_end() {
        let metrics = ServerMetrics::new();
        let Ok(mut task) =
            BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::YouzanOrder), Utc::now())
        else {
            panic!("a valid task");
        };
        let _ = task.transition(TaskStatus::Processing, TransitionCause::Requested, Utc::now());
        task.progress.processed = 10;
        task.progress.failed = 2;
        metrics.task_changed(&task, Some((TaskStatus::Pending, 0, 0)));
        task.progress.processed = 15;
        let _ = task.transition(TaskStatus::Completed, TransitionCause::Requested, Utc::now());
        metrics.task_changed(&task, Some((TaskStatus::Processing, 10, 2)));
        let text =
            metrics.render(&BatchMetrics { completed_tasks: 1, total_tasks: 1, ..BatchMetrics::default() });
        assert!(text.contains("batch_items_processed_total{kind=\"youzan_order\"} 15"), "{text}");
        assert!(text.contains("batch_items_failed_total{kind=\"youzan_order\"} 2"), "{text}");
        assert!(
            text.contains("batch_task_duration_seconds_count{kind=\"youzan_order\",status=\"completed\"} 1"),
            "{text}"
        );
        assert!(text.contains("batch_tasks{status=\"completed\"} 1"), "{text}");
    }
}
