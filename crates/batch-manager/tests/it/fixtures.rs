//! Shared test data: tasks, workers, leases and times on a fixed clock.

use std::time::Duration;

use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{LeaseRequest, WorkerId};
use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskType};
use chrono::{DateTime, TimeDelta, Utc};

/// The tests' clock: `seconds` after a fixed instant (with a nanosecond part, so that precision
/// losses would show).
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap() + TimeDelta::seconds(seconds)
}

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

pub(crate) fn lease(name: &str) -> LeaseRequest {
    LeaseRequest::new(worker(name), TTL)
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
    use batch_manager::store::postgres::{PgOptions, PgStore};

    /// A store on a fresh database, or `None` (the test skips) without PostgreSQL.
    pub(crate) async fn store(test: &str) -> Option<PgStore> {
        store_with(test, PgOptions::default()).await
    }

    /// `count` stores on one fresh database (standing for as many processes), or `None` (the test
    /// skips) without PostgreSQL.
    pub(crate) async fn stores(test: &str, count: usize) -> Option<Vec<PgStore>> {
        let cluster = batch_testkit::shared_or_skip(test)?;
        let database = cluster.create_database().await.unwrap();
        let mut stores = Vec::with_capacity(count);
        for _ in 0..count {
            stores.push(PgStore::connect(&database.url, PgOptions::default()).await.unwrap());
        }
        Some(stores)
    }

    /// A store with `options` on a fresh database, or `None` (the test skips) without PostgreSQL.
    pub(crate) async fn store_with(test: &str, options: PgOptions) -> Option<PgStore> {
        let cluster = batch_testkit::shared_or_skip(test)?;
        let database = cluster.create_database().await.unwrap();
        Some(PgStore::connect(&database.url, options).await.unwrap())
    }
}

/// Starts the task if it is pending, or takes it over once the previous holder's lease (`lease_ttl`)
/// expired: what a worker process of the crash tests does first.
pub(crate) async fn claim(manager: &batch_manager::BatchManager, id: &TaskId, lease_ttl: Duration) {
    let deadline = std::time::Instant::now() + 10 * lease_ttl;
    loop {
        let task = manager.get_task(id).await.unwrap();
        let claimed = match task.status {
            batch_model::TaskStatus::Pending => manager.process_task(id).await,
            batch_model::TaskStatus::Processing => manager.resume_task(id).await,
            other => panic!("task {id} is {other}: {:?}", task.error),
        };
        match claimed {
            Ok(_) => return,
            // Held by a lease that has not expired yet.
            Err(batch_manager::ManagerError::NotRunnable { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("cannot claim task {id}: {error}"),
        }
    }
}
