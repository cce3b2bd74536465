//! Crash recovery with real processes: a task run by child processes (this test binary, re-executed
//! to run [`child_runs_the_task`]) that are SIGKILLed at different points, each time resumed by a fresh
//! process once the dead one's lease expired, must end with files byte-identical to an uninterrupted
//! run's and exact counters. And a resume that finds its output shorter than its checkpoint (power loss
//! in the default durability) must stop with `STORAGE_ERROR` and leave the file alone.

use crate::fixtures::claim;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::TaskStore;
use batch_manager::store::memory::MemoryStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, ErrorCode, TaskId, TaskStatus};
use serde::{Deserialize, Serialize};

use batch_tasks::Registry;

use crate::kinds::{Faults, Hold, LinesKind, LinesParams, Probe, expected_counts, read, write_sales};

/// Set in a child process: what it should run (a JSON [`ChildOrder`]).
const CHILD_ENV: &str = "BATCH_MANAGER_CRASH_CHILD";

/// The child's test, as the test harness names it.
const CHILD_TEST: &str = "crash::child_runs_the_task";

/// Leases in these tests: a killed child's task can be resumed a second after its last heartbeat.
const LEASE_TTL: Duration = Duration::from_secs(1);

/// Bad records only (no skipped ones), so that processed + failed is the number of input lines.
const FAULTS: Faults = Faults { zero_every: 0, negative_every: 101, malformed_every: 997 };

#[derive(Debug, Serialize, Deserialize)]
struct ChildOrder {
    db: PathBuf,
    task: TaskId,
    /// Hold the run before this commit (see [`Hold`]).
    hold: Option<Hold>,
}

fn crash_manager(store: Arc<dyn TaskStore>, worker: &str, hold: Option<Hold>) -> BatchManager {
    let config = ManagerConfig::default()
        .with_worker_id(worker)
        .with_lease_ttl(LEASE_TTL)
        .with_poll_interval(Duration::from_millis(10));
    let mut registry = Registry::new();
    registry.register(LinesKind { hold, ..LinesKind::new(Arc::new(Probe::default())) });
    BatchManager::new(store, registry, config).unwrap()
}

/// In a child process (when [`CHILD_ENV`] is set): claims the task on the shared SQLite store and
/// runs it until the parent kills this process (or the task ends). Without the variable it does
/// nothing: in a normal test run it passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_runs_the_task() {
    let Ok(order) = std::env::var(CHILD_ENV) else {
        return;
    };
    let order: ChildOrder = serde_json::from_str(&order).unwrap();
    let store = SqliteStore::open(&order.db, SqliteOptions::default()).unwrap();
    let manager = crash_manager(Arc::new(store), &format!("child-{}", std::process::id()), order.hold);
    claim(&manager, &order.task, LEASE_TTL).await;
    manager.wait(&order.task).await.unwrap();
}

/// Runs [`child_runs_the_task`] in a new process of this test binary.
fn spawn_child(db: &Path, task: TaskId, hold: Option<Hold>) -> Child {
    let order = serde_json::to_string(&ChildOrder { db: db.to_owned(), task, hold }).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, order)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// When to kill a child.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// Once `n` more checkpoints than before are committed, plus `delay` (landing mid-chunk).
    AfterCheckpoints { n: u64, delay: Duration },
    /// As soon as the child claimed the task, plus `delay`: before (or around) its first checkpoint.
    AfterClaim { delay: Duration },
    /// When the `n`-th chunk from now is written and flushed but its checkpoint not yet committed (the
    /// child holds there, see [`Hold`]).
    BeforeCommit { n: u64 },
}

impl KillPoint {
    /// The hold the child needs for this point, in `dir`.
    fn hold(self, before: &Before, dir: &Path) -> Option<Hold> {
        match self {
            KillPoint::BeforeCommit { n } => {
                let sequence = before.sequence + n;
                Some(Hold { sequence, marker: dir.join(format!("hold-{sequence}")) })
            }
            _ => None,
        }
    }
}

/// Waits, polling the shared store, until the child reached `point`. Panics if the child exits first.
async fn reach(
    store: &dyn TaskStore,
    id: &TaskId,
    child: &mut Child,
    point: KillPoint,
    hold: Option<&Hold>,
    before: &Before,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let delay = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("the child exited ({status}) before {point:?}:\n{stderr}");
        }
        assert!(Instant::now() < deadline, "the child never reached {point:?}");
        match point {
            KillPoint::AfterCheckpoints { n, delay } => {
                let sequence =
                    store.checkpoint(id).await.unwrap().map_or(0, |checkpoint| checkpoint.sequence);
                if sequence >= before.sequence + n {
                    break delay;
                }
            }
            KillPoint::AfterClaim { delay } => {
                // A claim (and any later change) moves the task's `updated_at`.
                let task = store.task(id).await.unwrap().unwrap();
                if task.updated_at != before.updated_at {
                    break delay;
                }
            }
            KillPoint::BeforeCommit { .. } => {
                if hold.is_some_and(|hold| hold.marker.exists()) {
                    break Duration::ZERO;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(delay).await;
}

/// The task as it was before a child started.
struct Before {
    sequence: u64,
    updated_at: chrono::DateTime<chrono::Utc>,
}

async fn before(store: &dyn TaskStore, id: &TaskId) -> Before {
    let sequence = store.checkpoint(id).await.unwrap().map_or(0, |checkpoint| checkpoint.sequence);
    let updated_at = store.task(id).await.unwrap().unwrap().updated_at;
    Before { sequence, updated_at }
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, it did not finish: {status}");
}

/// The staged file of `path` that `checkpoint` says holds its committed bytes.
fn staged(path: &Path, checkpoint: &batch_model::Checkpoint) -> std::path::PathBuf {
    batch_tasks::records::staged_path(path, checkpoint.sink["epoch"].as_u64().unwrap_or(0))
}

/// The staged file of `path` with the highest epoch (the last claim's).
fn newest_staged(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let epoch = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|entry| {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            file.strip_prefix(&format!("{name}.e"))?.strip_suffix(".part")?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0);
    batch_tasks::records::staged_path(path, epoch)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_at_seven_points_resumes_to_byte_identical_output_with_exact_counters() {
    const RECORDS: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, RECORDS, FAULTS);
    let config = BatchConfig { batch_size: 1000, concurrency: 2, ..BatchConfig::default() };

    // The crash-tested run, on a SQLite store the child processes share.
    let db = dir.path().join("tasks.db");
    let store: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
    let parent = crash_manager(Arc::clone(&store), "parent", None);
    let crashed = LinesParams::new(&input, "crashed");
    let id = parent.create_task(crashed.request(config.clone())).await.unwrap().id;

    let seed = 0x5EED_C0DE;
    let mut random = fastrand::Rng::with_seed(seed);
    let points = [
        KillPoint::AfterCheckpoints { n: 5, delay: Duration::ZERO },
        KillPoint::AfterClaim { delay: Duration::ZERO },
        KillPoint::BeforeCommit { n: 7 },
        KillPoint::AfterCheckpoints { n: 10, delay: Duration::from_millis(3) },
        KillPoint::AfterClaim { delay: Duration::from_millis(random.u64(50..250)) },
        KillPoint::BeforeCommit { n: 1 },
        KillPoint::AfterCheckpoints { n: 20, delay: Duration::from_millis(random.u64(0..15)) },
    ];
    let mut log = Vec::new();
    for point in points {
        let before = before(&*store, &id).await;
        let hold = point.hold(&before, dir.path());
        let mut child = spawn_child(&db, id, hold.clone());
        reach(&*store, &id, &mut child, point, hold.as_ref(), &before).await;
        kill(&mut child);
        let checkpoint = store.checkpoint(&id).await.unwrap().unwrap();
        let task = store.task(&id).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Processing, "killed at {point:?}");
        assert!(checkpoint.sequence >= before.sequence, "checkpoints never go back");
        // A kill leaves the staged file the checkpoint names at least as long as the checkpoint says;
        // the next claim copies that much into its own staged file.
        let committed = checkpoint.sink["output"].as_u64().unwrap();
        let committed_file = staged(&crashed.output, &checkpoint);
        assert!(file_len(&committed_file) >= committed, "killed at {point:?}");
        assert!(
            !crashed.output.exists(),
            "nothing is published before the task completes: {:?}",
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>()
        );
        if let Some(hold) = &hold {
            // Killed between a chunk's write and its checkpoint: the killed claim's staged file holds
            // a chunk the store does not know of, which is never adopted.
            assert_eq!(checkpoint.sequence, hold.sequence - 1);
            let newest = newest_staged(&crashed.output);
            let adopted = if newest == committed_file { committed } else { 0 };
            assert!(file_len(&newest) > adopted, "the held chunk was written and flushed");
        }
        log.push((point, checkpoint.sequence, file_len(&committed_file) - committed));
    }

    // The last resume, in this process, once the last child's lease expired.
    claim(&parent, &id, LEASE_TTL).await;
    let task = parent.wait(&id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Completed, "{:?}; kills: {log:?}", task.error);

    // An uninterrupted run of the same task, for reference.
    let reference = LinesParams::new(&input, "reference");
    let uninterrupted = crash_manager(Arc::new(MemoryStore::new()), "reference", None);
    let reference_id = uninterrupted.create_task(reference.request(config)).await.unwrap().id;
    uninterrupted.process_task(&reference_id).await.unwrap();
    let reference_task = uninterrupted.wait(&reference_id).await.unwrap();
    assert_eq!(reference_task.status, TaskStatus::Completed);

    let output = std::fs::read(&crashed.output).unwrap();
    assert!(output == std::fs::read(&reference.output).unwrap(), "the output differs; kills: {log:?}");
    let dead = std::fs::read(&crashed.dead_letters).unwrap();
    assert!(
        dead == std::fs::read(&reference.dead_letters).unwrap(),
        "the dead letters differ; kills: {log:?}"
    );

    let (processed, failed, skipped) = expected_counts(RECORDS, FAULTS);
    assert_eq!(skipped, 0);
    assert_eq!(
        (task.progress.processed, task.progress.failed, task.progress.skipped),
        (processed, failed, 0)
    );
    assert_eq!(task.progress.processed + task.progress.failed, RECORDS);
    let checkpoint = store.checkpoint(&id).await.unwrap().unwrap();
    assert_eq!(
        checkpoint.sequence,
        RECORDS / 1000 + 1,
        "each chunk committed once, whatever the kills, then the final checkpoint"
    );
    assert_eq!(checkpoint.sink["final"], true);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "staged files left behind: {leftovers:?}");
    assert_eq!((checkpoint.counters.processed, checkpoint.counters.failed), (processed, failed));
    // No record written twice: the ids in the output strictly increase.
    let text = read(&crashed.output);
    let ids: Vec<u64> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, processed);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "duplicated or reordered records");
    let result = parent.task_result(&id).await.unwrap().unwrap();
    assert_eq!(result.result["count"], processed);
    parent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_shorter_than_its_checkpoint_stops_the_resume_with_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, 50_000, FAULTS);
    let db = dir.path().join("tasks.db");
    let store: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
    let parent = crash_manager(Arc::clone(&store), "parent", None);
    let params = LinesParams::new(&input, "lost");
    let config = BatchConfig { batch_size: 500, ..BatchConfig::default() };
    let id = parent.create_task(params.request(config)).await.unwrap().id;

    let before = before(&*store, &id).await;
    let mut child = spawn_child(&db, id, None);
    let point = KillPoint::AfterCheckpoints { n: 3, delay: Duration::ZERO };
    reach(&*store, &id, &mut child, point, None, &before).await;
    kill(&mut child);
    // Power loss in the default durability: the page cache is gone, the file is shorter than the
    // checkpoint that the store kept.
    let checkpoint = store.checkpoint(&id).await.unwrap().unwrap();
    let committed = checkpoint.sink["output"].as_u64().unwrap();
    let output = staged(&params.output, &checkpoint);
    let dead_letters = staged(&params.dead_letters, &checkpoint);
    let file = std::fs::OpenOptions::new().write(true).open(&output).unwrap();
    file.set_len(committed - 100).unwrap();
    drop(file);
    let output_before = std::fs::read(&output).unwrap();
    let dead_before = std::fs::read(&dead_letters).unwrap();

    claim(&parent, &id, LEASE_TTL).await;
    let task = parent.wait(&id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    let error = task.error.unwrap();
    assert_eq!(error.code, ErrorCode::StorageError);
    let expected = format!("{} bytes, expected at least {committed}", committed - 100);
    assert!(error.message.contains("shorter than its checkpoint"), "{}", error.message);
    assert!(error.message.contains(&expected), "{}", error.message);
    assert!(error.message.contains(&output.display().to_string()), "{}", error.message);
    assert!(std::fs::read(&output).unwrap() == output_before, "the short output was changed");
    assert!(std::fs::read(&dead_letters).unwrap() == dead_before, "the dead letters were changed");
    assert_eq!(store.checkpoint(&id).await.unwrap().unwrap().sequence, checkpoint.sequence);
    parent.shutdown().await;
}
