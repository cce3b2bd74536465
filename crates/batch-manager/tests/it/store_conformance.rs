//! The `TaskStore` contract (`batch_manager::store::conformance`) run against every store of this
//! crate: in memory, SQLite in a temporary directory, and (feature `postgres`) PostgreSQL on a fresh
//! database of the shared test cluster; plus what only SQLite can show (two handles on one file
//! standing for two processes).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use batch_manager::store::conformance::{Harness, lease};
use batch_manager::store::memory::MemoryStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{Clock, TaskStore};
use batch_model::TaskId;

use crate::fixtures::{at, task_at};

/// Memory stores.
struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn open(&self, clock: Arc<dyn Clock>) -> Option<Arc<dyn TaskStore>> {
        Some(Arc::new(MemoryStore::with_clock(clock)))
    }
}

/// SQLite stores, each in a temporary directory that lives as long as the process (the harness
/// cannot hand the directory back with the store).
struct Sqlite;

#[async_trait]
impl Harness for Sqlite {
    async fn open(&self, clock: Arc<dyn Clock>) -> Option<Arc<dyn TaskStore>> {
        let dir = tempfile::tempdir().unwrap().keep();
        Some(Arc::new(
            SqliteStore::open_with_clock(dir.join("tasks.db"), SqliteOptions::default(), clock).unwrap(),
        ))
    }
}

/// PostgreSQL stores, each on a fresh database of the shared test cluster, reading the checks'
/// clock instead of the database's; skipped (with one line) when PostgreSQL is not installed.
#[cfg(feature = "postgres")]
struct Postgres;

#[cfg(feature = "postgres")]
#[async_trait]
impl Harness for Postgres {
    async fn open(&self, clock: Arc<dyn Clock>) -> Option<Arc<dyn TaskStore>> {
        use batch_manager::store::postgres::{PgOptions, PgStore};
        let cluster = batch_testkit::shared_or_skip("the store conformance checks on PostgreSQL")?;
        let database = cluster.create_database().await.unwrap();
        let options = PgOptions { clock: Some(clock), ..PgOptions::default() };
        Some(Arc::new(PgStore::connect(&database.url, options).await.unwrap()))
    }
}

mod memory {
    batch_manager::store_conformance_tests!(super::Memory);
}

#[cfg(feature = "postgres")]
mod postgres {
    batch_manager::store_conformance_tests!(super::Postgres);
}

mod sqlite {
    batch_manager::store_conformance_tests!(super::Sqlite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sqlite_stores_on_one_file_never_claim_the_same_task() {
    // Two stores on one file stand for two processes: each has its own connection and writer thread.
    let (dir, first) = crate::fixtures::sqlite_store();
    let second = SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default()).unwrap();
    let stores: [Arc<dyn TaskStore>; 2] = [Arc::new(first), Arc::new(second)];
    for idx in 0..200 {
        stores[0].insert_task(&task_at(at(idx))).await.unwrap();
    }
    let mut workers = tokio::task::JoinSet::new();
    for idx in 0..6 {
        let store = Arc::clone(&stores[idx % 2]);
        workers.spawn(async move {
            let request = lease(&format!("worker-{idx}"));
            let mut claimed = Vec::new();
            while let Some(claim) = store.claim_next(&[], &request).await.unwrap() {
                claimed.push(claim.task.id);
            }
            claimed
        });
    }
    let all: Vec<TaskId> = workers.join_all().await.into_iter().flatten().collect();
    let distinct: HashSet<TaskId> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sqlite_handle_sees_changes_as_a_resync() {
    use batch_manager::store::TaskChange;
    let dir = tempfile::tempdir().unwrap();
    let options =
        SqliteOptions { watch_interval: std::time::Duration::from_millis(20), ..SqliteOptions::default() };
    let watcher = SqliteStore::open(dir.path().join("tasks.db"), options.clone()).unwrap();
    let writer = SqliteStore::open(dir.path().join("tasks.db"), options).unwrap();
    let mut changes = watcher.subscribe();
    // The watcher notes the file's version at its first look; a write before that look goes unseen,
    // so the other handle writes until the watcher reports one (or the deadline passes).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut idx = 0;
    let change = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never noticed the other handle's writes"
        );
        writer.insert_task(&task_at(at(idx))).await.unwrap();
        idx += 1;
        if let Ok(change) = tokio::time::timeout(std::time::Duration::from_millis(200), changes.recv()).await
        {
            break change.unwrap();
        }
    };
    assert_eq!(change, TaskChange::Resync);
}
