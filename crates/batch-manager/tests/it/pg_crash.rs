//! Exactly once into a PostgreSQL table, with real processes: a `batch_process` task copying a table
//! into another, run by child processes (this test binary, re-executed to run
//! [`child_runs_the_task`]) that are SIGKILLed at several points, each time resumed by a fresh
//! process once the dead one's lease expired, must end with the output table holding every source
//! row exactly once: `count(*)`, `count(DISTINCT id)` and a checksum of the rows equal to the
//! source's. On a throwaway server from batch-testkit (skipped in one line without PostgreSQL,
//! unless `PUMP_REQUIRE_PG=1`); the task store is SQLite, so the output is not in the store's
//! database and the sink's idempotent upsert is what makes it exact.

use crate::fixtures::claim;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::TaskStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, CreateTaskRequest, TaskId, TaskStatus, TaskType};
use batch_testkit::{PgCluster, shared_or_skip};
use serde::{Deserialize, Serialize};

/// Set in a child process: what it should run (a JSON [`ChildOrder`]).
const CHILD_ENV: &str = "BATCH_MANAGER_PG_CRASH_CHILD";

/// The child's test, as the test harness names it.
const CHILD_TEST: &str = "pg_crash::child_runs_the_task";

const LEASE_TTL: Duration = Duration::from_secs(1);

const ROWS: i64 = 100_000;

#[derive(Debug, Serialize, Deserialize)]
struct ChildOrder {
    db: PathBuf,
    task: TaskId,
}

fn manager(store: Arc<dyn TaskStore>, worker: &str) -> BatchManager {
    let config = ManagerConfig::default()
        .with_worker_id(worker)
        .with_lease_ttl(LEASE_TTL)
        .with_poll_interval(Duration::from_millis(10));
    BatchManager::new(store, batch_tasks::builtin_registry(), config).unwrap()
}

/// In a child process (when [`CHILD_ENV`] is set): claims the task on the shared SQLite store and
/// runs it until the parent kills this process. Without the variable it passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_runs_the_task() {
    let Ok(order) = std::env::var(CHILD_ENV) else {
        return;
    };
    let order: ChildOrder = serde_json::from_str(&order).unwrap();
    let store = SqliteStore::open(&order.db, SqliteOptions::default()).unwrap();
    let manager = manager(Arc::new(store), &format!("child-{}", std::process::id()));
    claim(&manager, &order.task, LEASE_TTL).await;
    manager.wait(&order.task).await.unwrap();
}

fn spawn_child(db: &Path, task: TaskId) -> Child {
    let order = serde_json::to_string(&ChildOrder { db: db.to_owned(), task }).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, order)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// When to kill a child: once `checkpoints` more are committed than before it started (0: as soon
/// as it claimed the task), plus `delay` (landing mid-chunk).
#[derive(Debug, Clone, Copy)]
struct KillPoint {
    checkpoints: u64,
    delay: Duration,
}

/// `(count(*), count(DISTINCT id), md5 of every row in id order)` of `table`.
async fn checksum(cluster: &PgCluster, dbname: &str, table: &str) -> (i64, i64, String) {
    let client = cluster.connect(dbname).await.unwrap();
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT id), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) \
                 FROM {table} AS t"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_copy_killed_at_several_points_holds_every_row_exactly_once() {
    let Some(cluster) = shared_or_skip("a_table_copy_killed_at_several_points_holds_every_row_exactly_once")
    else {
        return;
    };
    let database = cluster.create_database().await.unwrap();
    let client = cluster.connect(&database.name).await.unwrap();
    let columns =
        "id bigint PRIMARY KEY, name text NOT NULL, amount numeric(16,2), at timestamptz, doc jsonb";
    client
        .batch_execute(&format!(
            "CREATE TABLE t1 ({columns});
             INSERT INTO t1 SELECT g, 'name ' || g, CASE WHEN g % 13 = 0 THEN NULL ELSE g * 1000003.17 END, \
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', jsonb_build_object('g', g) \
             FROM generate_series(1, {ROWS}) AS g;
             CREATE TABLE t2 ({columns});"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tasks.db");
    let store: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
    let parent = manager(Arc::clone(&store), "parent");
    let params = serde_json::json!({
        "input": database.url, "input_table": "t1",
        "output": database.url, "output_table": "t2",
        "dead_letter": dir.path().join("dead.jsonl"),
    });
    let config = BatchConfig { batch_size: 1000, concurrency: 2, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::BatchProcess).with_config(config).with_params(params);
    let id = parent.create_task(request).await.unwrap().id;

    let mut random = fastrand::Rng::with_seed(0x7AB1E);
    let points = [
        KillPoint { checkpoints: 3, delay: Duration::ZERO },
        KillPoint { checkpoints: 0, delay: Duration::ZERO },
        KillPoint { checkpoints: 7, delay: Duration::from_millis(random.u64(1..20)) },
        KillPoint { checkpoints: 0, delay: Duration::from_millis(random.u64(50..250)) },
        KillPoint { checkpoints: 12, delay: Duration::from_millis(random.u64(0..15)) },
    ];
    let mut log = Vec::new();
    for point in points {
        let before = store.checkpoint(&id).await.unwrap().map_or(0, |checkpoint| checkpoint.sequence);
        let updated_at = store.task(&id).await.unwrap().unwrap().updated_at;
        let mut child = spawn_child(&db, id);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("the child exited ({status}) before {point:?}:\n{stderr}");
            }
            assert!(Instant::now() < deadline, "the child never reached {point:?}");
            let reached = if point.checkpoints == 0 {
                store.task(&id).await.unwrap().unwrap().updated_at != updated_at
            } else {
                let sequence =
                    store.checkpoint(&id).await.unwrap().map_or(0, |checkpoint| checkpoint.sequence);
                sequence >= before + point.checkpoints
            };
            if reached {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(point.delay).await;
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success(), "the child was killed, it did not finish");
        let task = store.task(&id).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Processing, "killed at {point:?}");
        // Every row a committed checkpoint covers is in the table (rows after it may be too).
        let committed = store
            .checkpoint(&id)
            .await
            .unwrap()
            .map_or(0, |checkpoint| checkpoint.sink["output"].as_i64().unwrap());
        let (count, distinct, _) = checksum(cluster, &database.name, "t2").await;
        assert!(count >= committed, "killed at {point:?}: {count} rows, {committed} committed");
        assert_eq!(count, distinct, "killed at {point:?}: a row is in the table twice");
        log.push((point, committed, count));
    }

    // The last resume, in this process, once the last child's lease expired.
    claim(&parent, &id, LEASE_TTL).await;
    let task = parent.wait(&id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Completed, "{:?}; kills: {log:?}", task.error);
    assert_eq!((task.progress.processed, task.progress.failed), (ROWS as u64, 0), "kills: {log:?}");
    let copied = checksum(cluster, &database.name, "t2").await;
    assert_eq!(copied.0, ROWS, "kills: {log:?}");
    assert_eq!(copied, checksum(cluster, &database.name, "t1").await, "kills: {log:?}");
    let checkpoint = store.checkpoint(&id).await.unwrap().unwrap();
    assert_eq!(
        checkpoint.sequence,
        ROWS as u64 / 1000 + 1,
        "each chunk committed once, whatever the kills, then the final checkpoint"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap(), "");
    parent.shutdown().await;
}
