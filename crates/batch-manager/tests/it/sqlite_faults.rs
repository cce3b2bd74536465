//! The SQLite store on bad storage — a corrupt or truncated file, a read-only file or directory, a
//! database locked by another process, a schema from the future — and across close and reopen; plus
//! group commit, observed through the store's transaction counter.
//!
//! Faults are real: garbage bytes and truncated files on disk, permissions enforced by the kernel on a
//! child process, and locks held by another process (this test binary, re-run as a child).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fixtures::{at, lease, task_at};
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::store::{Checkpoint, Clock, Counters, ManualClock, StoreError, TaskOutcome, TaskStore};
use batch_model::{ErrorCode, ListTasksRequest, ProcessingMetrics, Progress, TaskStatus};

/// Set in a child process to the role it plays (see [`child_process`]).
const CHILD_ROLE: &str = "BATCH_MANAGER_TEST_CHILD_ROLE";
/// The database path the child works on.
const CHILD_DB: &str = "BATCH_MANAGER_TEST_CHILD_DB";
/// What a lock-holding child prints once it holds the lock.
const LOCK_HELD: &str = "lock held";
/// What precedes the outcome line of an `open-and-write` child.
const OUTCOME: &str = "outcome: ";

fn options_with_busy_timeout(busy_timeout: Duration) -> SqliteOptions {
    SqliteOptions { busy_timeout, ..SqliteOptions::default() }
}

fn expect_storage_error(result: Result<impl std::fmt::Debug, StoreError>, location: &Path) -> String {
    let error = result.expect_err("the call should fail");
    assert_eq!(error.code(), ErrorCode::StorageError, "{error}");
    match &error {
        StoreError::Storage { location: at, .. } => assert_eq!(at, &location.display().to_string()),
        other => panic!("expected a storage error, got {other:?}"),
    }
    error.to_string()
}

/// Creates a store with `n` tasks at `path`, and closes it.
async fn create_store_with_tasks(path: &Path, n: i64) {
    let store = SqliteStore::open(path, SqliteOptions::default()).unwrap();
    for idx in 0..n {
        store.insert_task(&task_at(at(idx))).await.unwrap();
    }
    store.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Child processes.

/// The entry point of the child processes the fault tests start: does nothing unless the role
/// variable is set (as it is only in a child).
#[test]
fn child_process() {
    let (Ok(role), Ok(db)) = (std::env::var(CHILD_ROLE), std::env::var(CHILD_DB)) else {
        return;
    };
    match role.as_str() {
        "hold-exclusive-lock" => hold_lock(&db, "PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;"),
        "hold-write-lock" => hold_lock(&db, "BEGIN IMMEDIATE;"),
        "open-and-write" => open_and_write(&db, Duration::from_millis(200)),
        "open-and-write-when-told" => {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            open_and_write(&db, SqliteOptions::default().busy_timeout);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Takes a lock with `sql`, says [`LOCK_HELD`], and keeps it until its standard input closes.
fn hold_lock(db: &str, sql: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(sql).unwrap();
    let mut stdout = std::io::stdout().lock();
    // On a line of its own: the test harness has already printed the test's name without a newline.
    writeln!(stdout, "\n{LOCK_HELD}").unwrap();
    stdout.flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Opens the store and inserts a task; prints `outcome: ok` or `outcome: <stage> <code> <message>`.
fn open_and_write(db: &str, busy_timeout: Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let outcome = match SqliteStore::open(db, options_with_busy_timeout(busy_timeout)) {
        Err(error) => format!("open {} {error}", error.code()),
        Ok(store) => match runtime.block_on(store.insert_task(&task_at(at(0)))) {
            Err(error) => format!("write {} {error}", error.code()),
            Ok(()) => "ok".to_owned(),
        },
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "\n{OUTCOME}{outcome}").unwrap();
    stdout.flush().unwrap();
}

fn child_command(role: &str, db: &Path) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args(["--exact", "sqlite_faults::child_process", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(CHILD_DB, db);
    command
}

/// A child process holding a lock on a database; the lock goes when this is dropped.
struct LockHolder {
    child: Child,
    /// Kept open so that the child can still write (its test harness reports when it ends).
    stdout: BufReader<std::process::ChildStdout>,
}

impl LockHolder {
    fn start(role: &str, db: &Path) -> LockHolder {
        let mut child = child_command(role, db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim_end() != LOCK_HELD {
            line.clear();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "the lock holder exited before taking the lock");
        }
        LockHolder { child, stdout }
    }

    fn release(mut self) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "lock holder: {status}");
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if self.child.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether this process can override file permissions (root with `CAP_DAC_OVERRIDE`), read from
/// `/proc/self/status`. Such a process writes to read-only files, so the permission tests run their
/// store in a child process without that capability.
fn can_override_file_permissions() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|capabilities| capabilities & (1 << 1) != 0)
}

/// Runs [`open_and_write`] on `db` in a child process that the kernel holds to file permissions
/// (dropping `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` with `setpriv` when running as root), and
/// returns its outcome line.
fn open_and_write_without_privileges(db: &Path) -> String {
    let mut command = if can_override_file_permissions() {
        let inner = child_command("open-and-write", db);
        let mut setpriv = Command::new("setpriv");
        setpriv
            .args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .env(CHILD_ROLE, "open-and-write")
            .env(CHILD_DB, db);
        setpriv
    } else {
        child_command("open-and-write", db)
    };
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("running the child (as root this needs `setpriv` from util-linux)");
    assert!(output.status.success(), "child: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(OUTCOME))
        .unwrap_or_else(|| panic!("no outcome from the child: {stdout}"))
        .to_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Corrupt files.

#[test]
fn a_file_of_garbage_is_a_storage_error_and_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let garbage: Vec<u8> = (0..16_384u32).map(|idx| (idx.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();

    let message = expect_storage_error(SqliteStore::open(&path, SqliteOptions::default()), &path);
    assert!(message.contains("not a SQLite database"), "{message}");
    assert!(message.contains("delete it or restore it from a backup"), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file is not touched");
}

#[tokio::test]
async fn a_truncated_database_is_a_storage_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    create_store_with_tasks(&path, 300).await;
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(length > 64 * 1024, "enough tasks to span many pages: {length} bytes");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(length / 3).unwrap();

    // SQLite finds the damage when it reads the schema (on open) or, for other damage, when it reads
    // the pages of a table; either way the caller gets a storage error.
    let everything = ListTasksRequest { limit: 1000, ..ListTasksRequest::default() };
    let message = match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(error) => expect_storage_error(Err::<(), _>(error), &path),
        Ok(store) => expect_storage_error(store.list_tasks(&everything).await, &path),
    };
    assert!(message.contains("corrupt"), "{message}");
    assert!(message.contains("restore it from a backup"), "{message}");
}

#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    create_store_with_tasks(&path, 1).await;
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();

    let message = expect_storage_error(SqliteStore::open(&path, SqliteOptions::default()), &path);
    assert!(message.contains("schema version 99"), "{message}");
    assert!(message.contains("newer version"), "{message}");
    assert!(message.contains("knows versions up to 2"), "{message}");
}

// ---------------------------------------------------------------------------------------------------
// Permissions.

#[tokio::test]
async fn a_read_only_file_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    create_store_with_tasks(&path, 1).await;
    set_mode(&path, 0o444);

    let outcome = open_and_write_without_privileges(&path);
    assert!(outcome.starts_with("open STORAGE_ERROR"), "{outcome}");
    assert!(outcome.contains("read-only"), "{outcome}");
    assert!(outcome.contains(&path.display().to_string()), "{outcome}");
}

#[tokio::test]
async fn a_read_only_directory_is_refused_for_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    create_store_with_tasks(&path, 1).await;
    set_mode(dir.path(), 0o555);

    let outcome = open_and_write_without_privileges(&path);
    set_mode(dir.path(), 0o755);
    assert!(outcome.starts_with("open STORAGE_ERROR"), "{outcome}");
    assert!(outcome.contains("directory"), "{outcome}");
}

#[test]
fn a_read_only_directory_is_refused_for_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    set_mode(dir.path(), 0o555);

    let outcome = open_and_write_without_privileges(&path);
    set_mode(dir.path(), 0o755);
    assert!(outcome.starts_with("open STORAGE_ERROR"), "{outcome}");
    assert!(outcome.contains("cannot open or create the database file"), "{outcome}");
    assert!(!path.exists());
}

#[test]
fn the_unprivileged_child_writes_where_permissions_allow_it() {
    // Guards the permission tests: their child fails because of the permissions, not because the
    // child itself cannot run.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    assert_eq!(open_and_write_without_privileges(&path), "ok");
}

// ---------------------------------------------------------------------------------------------------
// Locks held by another process.

#[test]
fn a_database_locked_by_another_process_fails_open_within_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let holder = LockHolder::start("hold-exclusive-lock", &path);

    let started = Instant::now();
    let opened = SqliteStore::open(&path, options_with_busy_timeout(Duration::from_millis(300)));
    let waited = started.elapsed();
    let message = expect_storage_error(opened, &path);
    assert!(message.contains("locked by another process"), "{message}");
    assert!(message.contains("busy timeout of 300 ms"), "{message}");
    assert!(waited >= Duration::from_millis(250), "gave up after only {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    holder.release();

    SqliteStore::open(&path, SqliteOptions::default()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_while_another_process_holds_the_lock_and_work_again_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    create_store_with_tasks(&path, 1).await;
    let store =
        Arc::new(SqliteStore::open(&path, options_with_busy_timeout(Duration::from_millis(300))).unwrap());
    let holder = LockHolder::start("hold-write-lock", &path);

    // Reads still work (WAL); every write of every group fails within the timeout, none hangs.
    let page = store.list_tasks(&ListTasksRequest::default()).await.unwrap();
    assert_eq!(page.total, 1);
    let started = Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    let refused: Vec<_> = (0..10).map(|idx| task_at(at(100 + idx))).collect();
    for task in refused.clone() {
        let store = Arc::clone(&store);
        writes.spawn(async move { store.insert_task(&task).await });
    }
    let results =
        tokio::time::timeout(Duration::from_secs(10), writes.join_all()).await.expect("no write hangs");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    for result in results {
        let message = expect_storage_error(result, &path);
        assert!(message.contains("locked by another process"), "{message}");
    }
    assert!(store.stats().transactions_failed >= 1);

    // The writer thread survived: once the lock is gone, writes go through again.
    holder.release();
    let accepted = task_at(at(200));
    store.insert_task(&accepted).await.unwrap();
    assert_eq!(store.task(&accepted.id).await.unwrap(), Some(accepted));
    for task in &refused {
        assert_eq!(store.task(&task.id).await.unwrap(), None, "a refused write left nothing");
    }
}

// ---------------------------------------------------------------------------------------------------
// Group commit.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_commit_together_and_a_failing_one_does_not_undo_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let existing = task_at(at(0));
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store.insert_task(&existing).await.unwrap();
        store.close().await.unwrap();
    }
    let store =
        Arc::new(SqliteStore::open(&path, options_with_busy_timeout(Duration::from_secs(20))).unwrap());
    // While another process holds the write lock, the writer thread waits on its first request, and
    // every request sent meanwhile queues up behind it.
    let holder = LockHolder::start("hold-write-lock", &path);
    let first = task_at(at(1));
    let first_insert = {
        let store = Arc::clone(&store);
        let first = first.clone();
        tokio::spawn(async move { store.insert_task(&first).await })
    };
    wait_until(|| store.stats().requests == 1).await;
    let fresh: Vec<_> = (0..40).map(|idx| task_at(at(10 + idx))).collect();
    let mut inserts = tokio::task::JoinSet::new();
    for task in fresh.clone() {
        let store = Arc::clone(&store);
        inserts.spawn(async move { store.insert_task(&task).await });
    }
    // Inserting the existing task again must fail alone, without undoing its neighbours.
    let mut duplicates = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        let existing = existing.clone();
        duplicates.spawn(async move { store.insert_task(&existing).await });
    }
    wait_until(|| store.stats().queued == 60).await;
    assert_eq!(store.stats().transactions_committed, 0);
    holder.release();

    first_insert.await.unwrap().unwrap();
    for result in inserts.join_all().await {
        result.unwrap();
    }
    for result in duplicates.join_all().await {
        assert!(matches!(result, Err(StoreError::Duplicate { id }) if id == existing.id), "{result:?}");
    }
    let stats = store.stats();
    assert_eq!(
        (stats.transactions_committed, stats.transactions_failed, stats.requests, stats.largest_group),
        (2, 0, 61, 60),
        "the first insert alone, then the 60 queued requests in one transaction"
    );
    for task in &fresh {
        assert_eq!(store.task(&task.id).await.unwrap().as_ref(), Some(task));
    }
}

/// Spins until `condition` holds; fails after 10 s.
async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default()).unwrap());
    let mut calls = tokio::task::JoinSet::new();
    for idx in 0..500 {
        let store = Arc::clone(&store);
        calls.spawn(async move {
            let task = task_at(at(idx));
            store.insert_task(&task).await.unwrap();
            let claimed = store.claim_task(&task.id, &lease("w")).await.unwrap();
            assert!(claimed.is_some());
        });
    }
    calls.join_all().await;
    let stats = store.stats();
    assert_eq!(stats.requests, 1000);
    assert!(stats.transactions_committed < stats.requests, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------------
// Processes racing to create a store.

#[test]
fn processes_opening_a_new_file_at_the_same_moment_all_succeed() {
    // The race is narrow (a check between two reads), so several rounds on fresh files.
    for _ in 0..8 {
        processes_race_to_open_a_new_file(12);
    }
}

fn processes_race_to_open_a_new_file(processes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let mut children: Vec<Child> = (0..processes)
        .map(|_| {
            child_command("open-and-write-when-told", &path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    // Every child is started and waiting; let them all go at once.
    for child in &mut children {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", output.status);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let outcome = stdout.lines().find_map(|line| line.strip_prefix(OUTCOME)).unwrap_or("no outcome");
        assert_eq!(outcome, "ok", "a racing process failed: {stdout}");
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let page = runtime.block_on(store.list_tasks(&ListTasksRequest::default())).unwrap();
    assert_eq!(page.total, processes, "each process stored its task");
}

#[tokio::test]
async fn a_version_1_store_is_migrated_with_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    // A store as version 1 wrote it: the first migration only.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE tasks (
                id TEXT NOT NULL PRIMARY KEY, task_type TEXT NOT NULL, status TEXT NOT NULL,
                created_at INTEGER NOT NULL, lease_owner TEXT, lease_expires_at INTEGER,
                stop_requested INTEGER NOT NULL DEFAULT 0, run_seconds INTEGER, run_nanos INTEGER,
                record TEXT NOT NULL) STRICT;
             CREATE INDEX tasks_by_created ON tasks (created_at, id);
             CREATE INDEX tasks_by_status ON tasks (status, created_at, id);
             CREATE INDEX tasks_by_type ON tasks (task_type, created_at, id);
             CREATE TABLE checkpoints (task_id TEXT NOT NULL PRIMARY KEY, sequence INTEGER NOT NULL,
                record TEXT NOT NULL) STRICT;
             CREATE TABLE results (task_id TEXT NOT NULL PRIMARY KEY, result TEXT NOT NULL,
                metrics TEXT NOT NULL) STRICT;
             PRAGMA application_id = 1886743920; PRAGMA user_version = 1;",
        )
        .unwrap();
        let task = task_at(at(0));
        let mut record = serde_json::to_value(&task).unwrap();
        for field in ["attempt", "attempts", "parent_id", "partition"] {
            record.as_object_mut().unwrap().remove(field);
        }
        conn.execute(
            "INSERT INTO tasks (id, task_type, status, created_at, record) VALUES (?1, ?2, 'pending', 0, ?3)",
            rusqlite::params![task.id.to_string(), task.task_type.as_str(), record.to_string()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let page = store.list_tasks(&ListTasksRequest::default()).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!((page.tasks[0].attempt, page.tasks[0].parent_id), (1, None));
    let claimed = store.claim_next(&[], &lease("w")).await.unwrap().unwrap();
    assert_eq!(claimed.lease.epoch, 1);
}

// ---------------------------------------------------------------------------------------------------
// Reopening.

#[tokio::test]
async fn everything_survives_close_and_reopen_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let clock = Arc::new(ManualClock::new(at(10)));
    let open = || {
        SqliteStore::open_with_clock(&path, SqliteOptions::default(), Arc::clone(&clock) as Arc<dyn Clock>)
    };
    let store = open().unwrap();
    let running = task_at(at(0));
    let finished = task_at(at(1));
    let pending = task_at(at(2));
    for task in [&running, &finished, &pending] {
        store.insert_task(task).await.unwrap();
    }
    let holder = store.claim_task(&running.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    let saved = Checkpoint {
        sequence: 1,
        source: serde_json::json!({ "offset": 4096 }),
        sink: serde_json::json!({ "output": 1024 }),
        counters: Counters { processed: 10, ..Counters::default() },
        state: serde_json::json!({ "weights": [0.1, 0.2] }),
        committed_at: at(11),
    };
    let mut progress = Progress::compute(Some(100), 10, 0, 0, Duration::from_secs(1));
    progress.updated_at = at(11);
    store.commit_checkpoint(&running.id, &holder, &saved, &progress).await.unwrap();
    let finisher = store.claim_task(&finished.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    let outcome = TaskOutcome {
        status: TaskStatus::Completed,
        error: None,
        result: serde_json::json!({ "rows": 10 }),
        progress: progress.clone(),
        metrics: ProcessingMetrics::default(),
    };
    clock.set(at(12));
    store.finish_task(&finished.id, &finisher, &outcome).await.unwrap();
    clock.set(at(13));
    store.request_stop(&running.id).await.unwrap();
    let everything = ListTasksRequest::default();
    let before = store.list_tasks(&everything).await.unwrap();
    let metrics_before = store.metrics().await.unwrap();
    store.close().await.unwrap();
    let error = store.task(&running.id).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::StorageError);
    assert!(error.to_string().contains("closed"), "{error}");

    for _ in 0..3 {
        let store = open().unwrap();
        assert_eq!(store.list_tasks(&everything).await.unwrap(), before);
        assert_eq!(store.metrics().await.unwrap(), metrics_before);
        assert_eq!(store.checkpoint(&running.id).await.unwrap(), Some(saved.clone()));
        let result = store.task_result(&finished.id).await.unwrap().unwrap();
        assert_eq!(result.result, outcome.result);
        // The lease, its epoch and the stop flag survive too: the holder still holds the task and is
        // told to stop.
        clock.set(at(14));
        let reply = store.heartbeat(&running.id, &holder, crate::fixtures::TTL).await.unwrap();
        assert!(reply.stop_requested);
        clock.set(at(20));
        assert_eq!(store.claim_task(&running.id, &lease("b")).await.unwrap(), None);
        store.close().await.unwrap();
    }
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

#[tokio::test]
async fn a_takeover_after_reopen_resumes_where_the_dead_process_left_off() {
    // A process claims a task, checkpoints and dies without closing; another opens the same file later.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    let task = task_at(at(0));
    let clock = Arc::new(ManualClock::new(at(1)));
    let open = || {
        SqliteStore::open_with_clock(&path, SqliteOptions::default(), Arc::clone(&clock) as Arc<dyn Clock>)
    };
    {
        let store = open().unwrap();
        store.insert_task(&task).await.unwrap();
        let holder = store.claim_task(&task.id, &lease("dead")).await.unwrap().unwrap().lease.holder();
        let saved = Checkpoint {
            sequence: 1,
            source: serde_json::json!({ "offset": 10 }),
            sink: serde_json::json!({ "output": 5 }),
            counters: Counters::default(),
            state: serde_json::Value::Null,
            committed_at: at(2),
        };
        let progress = Progress::zero(at(2));
        store.commit_checkpoint(&task.id, &holder, &saved, &progress).await.unwrap();
        // Dropped without close.
    }
    clock.set(at(62));
    let store = open().unwrap();
    let taken = store.claim_next(&[], &lease("new")).await.unwrap().unwrap();
    assert!(taken.resumed);
    assert_eq!(taken.lease.epoch, 2);
    assert_eq!(taken.checkpoint.map(|checkpoint| checkpoint.sequence), Some(1));
}
