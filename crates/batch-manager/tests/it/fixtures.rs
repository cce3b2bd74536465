//! Shared test data: tasks, workers, leases and times on a fixed clock.

use std::time::Duration;

use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{LeaseRequest, WorkerId};
use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskType};
use chrono::{DateTime, TimeDelta, Utc};

/// The tests' clock: `seconds` after a fixed instant (with a microsecond part, so that precision
/// losses would show: [`TICK`] is the finest resolution every store keeps).
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap() + TimeDelta::seconds(seconds)
}

/// The smallest time step every store tells apart: a microsecond (PostgreSQL keeps microseconds;
/// memory and SQLite nanoseconds).
pub(crate) const TICK: TimeDelta = TimeDelta::microseconds(1);

/// A pending task of `task_type` created at `created_at`, with some params and metadata to round-trip.
pub(crate) fn task_of(task_type: TaskType, created_at: DateTime<Utc>) -> BatchTask {
    let mut request = CreateTaskRequest::new(task_type)
        .with_params(serde_json::json!({ "input": "data/input.jsonl", "threshold": 0.25 }));
    request.metadata.insert("owner".to_owned(), "tests".to_owned());
    BatchTask::new(TaskId::new(), request, created_at).unwrap()
}

/// A pending `batch_process` task created at `created_at`.
pub(crate) fn task_at(created_at: DateTime<Utc>) -> BatchTask {
    task_of(TaskType::BatchProcess, created_at)
}

pub(crate) fn worker(name: &str) -> WorkerId {
    WorkerId(name.to_owned())
}

/// Lease TTL used throughout: 30 s.
pub(crate) const TTL: Duration = Duration::from_secs(30);

pub(crate) fn lease(name: &str, now: DateTime<Utc>) -> LeaseRequest {
    LeaseRequest { worker: worker(name), ttl: TTL, now }
}

/// A SQLite store in a fresh temporary directory (kept alive with the store).
pub(crate) fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default()).unwrap();
    (dir, store)
}

/// PostgreSQL stores on fresh databases of the shared test cluster.
#[cfg(feature = "postgres")]
pub(crate) mod pg {
    use async_trait::async_trait;
    use batch_manager::store::postgres::{PgOptions, PgStore};
    use batch_manager::store::{
        Checkpoint, ClaimedTask, HeartbeatReply, LeaseRequest, StatusUpdate, StoreError, TaskOutcome,
        TaskPage, TaskResultRecord, TaskStore, WorkerId,
    };
    use batch_model::{BatchMetrics, BatchTask, ListTasksRequest, Progress, TaskId, TaskType};
    use chrono::{DateTime, Utc};

    /// A store on a fresh database, or `None` (the test skips) without PostgreSQL.
    pub(crate) async fn store(test: &str) -> Option<PgStore> {
        store_with(test, PgOptions::default()).await
    }

    /// A store with `options` on a fresh database, or `None` (the test skips) without PostgreSQL.
    pub(crate) async fn store_with(test: &str, options: PgOptions) -> Option<PgStore> {
        let cluster = batch_testkit::shared_or_skip(test)?;
        let database = cluster.create_database().await.unwrap();
        Some(PgStore::connect(&database.url, options).await.unwrap())
    }

    /// A `PgStore` for the conformance checks, which drive time through the `now` and `at` arguments:
    /// before each call that carries a time it pins the store's view of the database clock at that
    /// time (`DbClock::pin`), then delegates. The store itself never reads those arguments.
    pub(crate) struct PinnedPg(pub(crate) PgStore);

    pub(crate) async fn pinned(test: &str) -> Option<PinnedPg> {
        store(test).await.map(PinnedPg)
    }

    impl PinnedPg {
        fn at(&self, at: DateTime<Utc>) -> &PgStore {
            self.0.clock().pin(Some(at));
            &self.0
        }
    }

    #[async_trait]
    impl TaskStore for PinnedPg {
        async fn insert_task(&self, task: &BatchTask) -> Result<(), StoreError> {
            self.0.insert_task(task).await
        }
        async fn insert_tasks(&self, tasks: &[BatchTask]) -> Vec<Result<(), StoreError>> {
            self.0.insert_tasks(tasks).await
        }
        async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError> {
            self.0.task(id).await
        }
        async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError> {
            self.0.list_tasks(request).await
        }
        async fn update_status(&self, update: &StatusUpdate) -> Result<BatchTask, StoreError> {
            self.at(update.at).update_status(update).await
        }
        async fn claim_task(
            &self,
            id: &TaskId,
            lease: &LeaseRequest,
        ) -> Result<Option<ClaimedTask>, StoreError> {
            self.at(lease.now).claim_task(id, lease).await
        }
        async fn claim_next(
            &self,
            task_types: &[TaskType],
            lease: &LeaseRequest,
        ) -> Result<Option<ClaimedTask>, StoreError> {
            self.at(lease.now).claim_next(task_types, lease).await
        }
        async fn claim_many(
            &self,
            task_types: &[TaskType],
            lease: &LeaseRequest,
            max: usize,
        ) -> Result<Vec<ClaimedTask>, StoreError> {
            self.at(lease.now).claim_many(task_types, lease, max).await
        }
        async fn heartbeat(&self, id: &TaskId, lease: &LeaseRequest) -> Result<HeartbeatReply, StoreError> {
            self.at(lease.now).heartbeat(id, lease).await
        }
        async fn commit_checkpoint(
            &self,
            id: &TaskId,
            worker: &WorkerId,
            checkpoint: &Checkpoint,
            progress: &Progress,
        ) -> Result<(), StoreError> {
            self.0.commit_checkpoint(id, worker, checkpoint, progress).await
        }
        async fn update_progress(
            &self,
            id: &TaskId,
            worker: &WorkerId,
            progress: &Progress,
        ) -> Result<(), StoreError> {
            self.0.update_progress(id, worker, progress).await
        }
        async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
            self.0.checkpoint(id).await
        }
        async fn finish_task(
            &self,
            id: &TaskId,
            worker: &WorkerId,
            outcome: &TaskOutcome,
        ) -> Result<BatchTask, StoreError> {
            self.at(outcome.at).finish_task(id, worker, outcome).await
        }
        async fn release_task(
            &self,
            id: &TaskId,
            worker: &WorkerId,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.at(now).release_task(id, worker, now).await
        }
        async fn request_stop(&self, id: &TaskId, now: DateTime<Utc>) -> Result<BatchTask, StoreError> {
            self.at(now).request_stop(id, now).await
        }
        async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
            self.0.task_result(id).await
        }
        async fn metrics(&self) -> Result<BatchMetrics, StoreError> {
            self.0.metrics().await
        }
    }
}
