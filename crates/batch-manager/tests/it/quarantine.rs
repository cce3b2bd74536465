//! Quarantine with real processes: a task whose kind aborts its process every time it runs is run
//! by one worker process after another (this test binary, re-executed as [`worker_that_crashes`]);
//! after a few lost leases without a checkpoint the task ends `failed` with a clear error instead of
//! taking workers down forever, and the workers go on with other work.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use batch_manager::store::TaskStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, CreateTaskRequest, ErrorCode, TaskError, TaskStatus, TaskType};
use batch_tasks::{JobContext, JobOutcome, Registry, TaskKind};

/// Set in a child process: the address of the store it works on (a SQLite path or a PostgreSQL URL).
const CHILD_ENV: &str = "BATCH_MANAGER_QUARANTINE_CHILD";
/// The child's test, as the test harness names it.
const CHILD_TEST: &str = "quarantine::worker_that_crashes";
const LEASE_TTL: Duration = Duration::from_secs(1);

/// Aborts the process it runs in as soon as it starts (a kind with a fatal bug: a stack overflow, an
/// out-of-memory kill, a C library's abort). Its `ok` tasks complete.
struct Crashing;

fn crashing() -> TaskType {
    TaskType::Custom("crashing".to_owned())
}

#[async_trait]
impl TaskKind for Crashing {
    fn task_type(&self) -> TaskType {
        crashing()
    }

    fn validate(&self, _params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
        Ok(())
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        if job.params()["ok"] == true {
            let progress = job.task().progress.clone();
            return Ok(JobOutcome::Completed { summary: serde_json::json!({ "ok": true }), progress });
        }
        std::process::abort();
    }
}

fn worker(store: Arc<dyn TaskStore>, name: &str) -> BatchManager {
    let mut registry = Registry::new();
    registry.register(Crashing);
    let config = ManagerConfig::default()
        .with_worker_id(name)
        .with_lease_ttl(LEASE_TTL)
        .with_poll_interval(Duration::from_millis(20));
    BatchManager::new(store, registry, config).unwrap()
}

/// In a child process (when [`CHILD_ENV`] is set): a worker on the shared store until the process
/// dies (the crashing kind aborts it) or the parent kills it. Without the variable it passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_that_crashes() {
    let Ok(address) = std::env::var(CHILD_ENV) else {
        return;
    };
    let manager = worker(open(&address).await, &format!("child-{}", std::process::id()));
    manager.run_worker().await.unwrap();
}

/// The store at `address`: PostgreSQL for a `postgres://` URL, else a SQLite file.
async fn open(address: &str) -> Arc<dyn TaskStore> {
    #[cfg(feature = "postgres")]
    if address.starts_with("postgres://") {
        use batch_manager::store::postgres::{PgOptions, PgStore};
        return Arc::new(PgStore::connect(address, PgOptions::default()).await.unwrap());
    }
    Arc::new(SqliteStore::open(address, SqliteOptions::default()).unwrap())
}

fn spawn_worker(db: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_kills_its_worker_every_time_is_quarantined_and_the_fleet_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tasks.db");
    quarantined_and_the_fleet_goes_on(&db.display().to_string()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_task_that_kills_its_worker_every_time_is_quarantined() {
    let Some(cluster) = batch_testkit::shared_or_skip("quarantine on PostgreSQL") else { return };
    let database = cluster.create_database().await.unwrap();
    quarantined_and_the_fleet_goes_on(&database.url).await;
}

/// Worker processes on the store at `db` die of a poison task one after another until the store
/// quarantines it; a surviving worker then runs the next task.
async fn quarantined_and_the_fleet_goes_on(db: &str) {
    let store = open(db).await;
    let submitter = worker(Arc::clone(&store), "submitter");
    let poison = submitter.create_task(CreateTaskRequest::new(crashing())).await.unwrap().id;

    // Workers come and go: each new one claims the poison task (once the dead one's lease ran out)
    // and dies of it, until the store quarantines it instead of handing it out again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut deaths = 0;
    let mut survivor = loop {
        assert!(Instant::now() < deadline, "the poison task was never quarantined ({deaths} deaths)");
        let mut child = spawn_worker(db);
        let died = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success(), "a worker only ends by the crash here: {status}");
                break true;
            }
            if store.task(&poison).await.unwrap().unwrap().status.is_terminal() {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if !died {
            break child;
        }
        deaths += 1;
    };
    // The fleet goes on: the surviving worker runs the next task.
    let fine = CreateTaskRequest::new(crashing()).with_params(serde_json::json!({ "ok": true }));
    let fine = submitter.create_task(fine).await.unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.task(&fine).await.unwrap().unwrap().status != TaskStatus::Completed {
        assert!(Instant::now() < deadline, "the surviving worker did not run the next task");
        assert!(survivor.try_wait().unwrap().is_none(), "the surviving worker died");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    survivor.kill().unwrap();
    survivor.wait().unwrap();

    let failed = store.task(&poison).await.unwrap().unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, ErrorCode::ProcessingError);
    assert!(
        error.message.starts_with("quarantined: the task lost its worker 3 times in a row"),
        "{}",
        error.message
    );
    // The first claim is a fresh start, the next two are takeovers (lost leases 1 and 2); the third
    // loss quarantines it at the next claim: three workers died of it.
    assert_eq!(deaths, 3, "workers lost to the poison task");
    submitter.shutdown().await;
}
