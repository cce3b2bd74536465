//! Retries, per-attempt timeouts and the skip limit through the manager, counted call by call and
//! timed on paused time (the test kind runs with jitter 0, so backoffs are exact: 100 ms, then double).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use batch_manager::BatchManager;
use batch_manager::store::TaskStore;
use batch_manager::store::memory::MemoryStore;
use batch_model::{BatchConfig, BatchTask, ErrorCode, TaskStatus};
use batch_tasks::records::DeadLetterRecord;

use crate::kinds::{
    Faults, LinesParams, Probe, expected_counts, expected_output, manager, read, write_sales,
};

struct Setup {
    _dir: tempfile::TempDir,
    probe: Arc<Probe>,
    manager: BatchManager,
    input: std::path::PathBuf,
}

fn setup(records: u64, faults: Faults) -> Setup {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let probe = Arc::new(Probe::default());
    let manager = manager(&store, &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, records, faults);
    Setup { _dir: dir, probe, manager, input }
}

async fn run(setup: &Setup, params: &LinesParams, config: BatchConfig) -> BatchTask {
    let id = setup.manager.create_task(params.request(config)).await.unwrap().id;
    setup.manager.process_task(&id).await.unwrap();
    setup.manager.wait(&id).await.unwrap()
}

fn dead_letters(params: &LinesParams) -> Vec<DeadLetterRecord> {
    read(&params.dead_letters).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn gaps(times: &[tokio::time::Instant]) -> Vec<Duration> {
    times.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn a_flaky_processor_is_retried_exactly_as_configured_with_exact_backoffs() {
    let setup = setup(20, Faults::NONE);
    let mut params = LinesParams::new(&setup.input, "flaky");
    params.asynchronous = true;
    params.fail_first = 2;
    let config = BatchConfig { max_retries: 3, batch_size: 8, concurrency: 4, ..BatchConfig::default() };
    let task = run(&setup, &params, config).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(read(&params.output), expected_output(20, Faults::NONE));
    assert_eq!(setup.probe.calls.load(Ordering::SeqCst), 60, "two failures and a success per record");
    for line in 1..=20 {
        assert_eq!(setup.probe.attempts(task.id, line), 3, "line {line}");
        let times = setup.probe.attempt_times(task.id, line);
        assert_eq!(gaps(&times), [Duration::from_millis(100), Duration::from_millis(200)], "line {line}");
    }
    let metrics = setup.manager.task_result(&task.id).await.unwrap().unwrap().metrics;
    assert_eq!((metrics.processed_items, metrics.retried_items), (20, 40));
}

#[tokio::test(start_paused = true)]
async fn a_record_that_keeps_failing_goes_to_the_dead_letters_after_its_last_retry() {
    let setup = setup(6, Faults::NONE);
    let mut params = LinesParams::new(&setup.input, "hopeless");
    params.asynchronous = true;
    params.fail_first = 100;
    let config = BatchConfig { max_retries: 2, ..BatchConfig::default() };
    let task = run(&setup, &params, config).await;
    assert_eq!(
        task.status,
        TaskStatus::Completed,
        "failed records do not fail the task without a skip limit"
    );
    assert_eq!((task.progress.processed, task.progress.failed), (0, 6));
    assert_eq!(setup.probe.calls.load(Ordering::SeqCst), 18);
    let letters = dead_letters(&params);
    let lines: Vec<u64> = letters.iter().map(|letter| letter.line).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
    assert_eq!(letters[0].code, ErrorCode::ProcessingError);
    assert_eq!(letters[0].message, "flaky failure 3 at line 1");
    assert_eq!(read(&params.output), "");
}

#[tokio::test(start_paused = true)]
async fn blocking_kinds_are_retried_as_configured_too() {
    let setup = setup(30, Faults::SOME);
    let mut params = LinesParams::new(&setup.input, "blocking");
    params.fail_first = 1;
    let config = BatchConfig { max_retries: 1, batch_size: 7, ..BatchConfig::default() };
    let task = run(&setup, &params, config).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(read(&params.output), expected_output(30, Faults::SOME));
    assert_eq!(setup.probe.calls.load(Ordering::SeqCst), 60);
    // Validation failures are never retried: after its retried processing failure, a bad record is
    // rejected once.
    let letters = dead_letters(&params);
    assert!(letters.iter().all(|letter| letter.code == ErrorCode::ValidationError));
    assert_eq!(letters.len() as u64, expected_counts(30, Faults::SOME).1);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_the_timeout_is_a_timeout_error_and_is_retried() {
    let setup = setup(4, Faults::NONE);
    let mut params = LinesParams::new(&setup.input, "slow");
    params.asynchronous = true;
    params.hang_first = 1;
    let config = BatchConfig {
        max_retries: 1,
        timeout: Duration::from_secs(2),
        concurrency: 1,
        ..BatchConfig::default()
    };
    let task = run(&setup, &params, config).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(read(&params.output), expected_output(4, Faults::NONE));
    for line in 1..=4 {
        let times = setup.probe.attempt_times(task.id, line);
        // The first attempt is cut at 2 s; the retry follows 100 ms later.
        assert_eq!(gaps(&times), [Duration::from_millis(2100)], "line {line}");
    }

    let mut params = LinesParams::new(&setup.input, "slower");
    params.asynchronous = true;
    params.hang_first = 2;
    let config = BatchConfig { max_retries: 1, timeout: Duration::from_secs(2), ..BatchConfig::default() };
    let task = run(&setup, &params, config).await;
    assert_eq!((task.status, task.progress.failed), (TaskStatus::Completed, 4));
    let letters = dead_letters(&params);
    assert_eq!(letters[0].code, ErrorCode::TimeoutError);
    assert_eq!(letters[0].message, "the attempt took longer than the task's timeout of 2s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_skip_limit_fails_a_task_only_once_failures_pass_it() {
    let setup = setup(100, Faults::SOME);
    let (_, failed, _) = expected_counts(100, Faults::SOME);
    assert_eq!(failed, 9);
    let within = BatchConfig { skip_limit: Some(9), ..BatchConfig::default() };
    let task = run(&setup, &LinesParams::new(&setup.input, "within"), within).await;
    assert_eq!((task.status, task.progress.failed), (TaskStatus::Completed, 9));

    let beyond = BatchConfig { skip_limit: Some(8), ..BatchConfig::default() };
    let task = run(&setup, &LinesParams::new(&setup.input, "beyond"), beyond).await;
    assert_eq!(task.status, TaskStatus::Failed);
    let error = task.error.unwrap();
    assert_eq!(
        (error.code, error.message.as_str()),
        (ErrorCode::ProcessingError, "9 records failed, more than the skip limit of 8")
    );
    assert_eq!(error.details, serde_json::json!({ "failed": 9, "limit": 8 }));
}
