//! Tests of the chunk runner against a job control kept in memory: outputs, dead letters, counters,
//! checkpoints, resumes after simulated crashes, stops, aborts, retries, timeouts and the skip limit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ErrorCode, Progress, TaskError, TaskId, TaskType,
};
use pump_core::source::Record;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::kind::{JobContext, JobControl, JobOutcome};

/// A job control that keeps every commit, can be told to request a stop after a given sequence, and
/// can refuse commits.
#[derive(Default)]
struct TestControl {
    commits: Mutex<Vec<(Checkpoint, Progress)>>,
    stop: AtomicBool,
    stop_after: Option<u64>,
    abort_after: Option<u64>,
    refuse: Option<TaskError>,
    token: CancellationToken,
    /// The store's current epoch for the task and the epoch this control's claim holds: a commit
    /// under an older epoch is refused, as a fencing store refuses it.
    fence: Option<(Arc<std::sync::atomic::AtomicU64>, u64)>,
    /// How many checkpoints each store call carried.
    calls: Mutex<Vec<usize>>,
    /// The first call takes this long (a slow store), on tokio's clock.
    slow_first: Option<Duration>,
}

#[async_trait]
impl JobControl for TestControl {
    async fn commit(&self, checkpoint: Checkpoint, progress: Progress) -> Result<(), TaskError> {
        if let Some(error) = &self.refuse {
            return Err(error.clone());
        }
        if let Some((current, held)) = &self.fence
            && current.load(Ordering::SeqCst) != *held
        {
            return Err(TaskError::new(ErrorCode::InvalidState, format!("epoch {held} lost the lease")));
        }
        let sequence = checkpoint.sequence;
        let mut commits = self.commits.lock().unwrap();
        let expected = commits.last().map_or(1, |(last, _)| last.sequence + 1);
        assert_eq!(sequence, expected, "checkpoints must be committed in sequence");
        commits.push((checkpoint, progress));
        if self.stop_after == Some(sequence) {
            self.stop.store(true, Ordering::SeqCst);
        }
        if self.abort_after == Some(sequence) {
            self.token.cancel();
        }
        Ok(())
    }

    async fn commit_all(&self, commits: Vec<batch_model::CheckpointCommit>) -> Result<(), TaskError> {
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(commits.len());
            calls.len() == 1
        };
        if first && let Some(delay) = self.slow_first {
            tokio::time::sleep(delay).await;
        }
        for commit in commits {
            self.commit_with(commit.checkpoint, commit.progress, commit.writes).await?;
        }
        Ok(())
    }

    async fn report_progress(&self, _progress: Progress) {}

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn cancellation_token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl TestControl {
    fn checkpoints(&self) -> Vec<Checkpoint> {
        self.commits.lock().unwrap().iter().map(|(checkpoint, _)| checkpoint.clone()).collect()
    }
}

#[derive(Debug, Deserialize)]
struct Sale {
    id: u64,
    amount: i64,
}

#[derive(Debug, Serialize)]
struct Doubled {
    id: u64,
    doubled: i64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Totals {
    count: u64,
    sum: i64,
}

impl Summary<Doubled> for Totals {
    fn add(&mut self, output: &Doubled) {
        self.count += 1;
        self.sum += output.doubled;
    }
}

/// Doubles `amount`; skips zero amounts; rejects negative ones and lines that are not sales. With
/// `fail_first`, the first attempts at each record fail (retryably); with `sleep_first`, the first
/// attempts hang for that long (an async job on a timer, a blocking one by blocking its thread).
#[derive(Default)]
struct Doubler {
    input: PathBuf,
    output: PathBuf,
    dead_letters: PathBuf,
    execution: Execution,
    fail_first: u32,
    sleep_first: Option<(u32, Duration)>,
    attempts: Mutex<HashMap<u64, u32>>,
    attempt_times: Mutex<Vec<(u64, tokio::time::Instant)>>,
    /// The first (async) attempt at this line waits for a permit (a worker paused mid-chunk).
    gate: Option<(u64, Arc<tokio::sync::Semaphore>)>,
}

impl Doubler {
    fn new(dir: &Path) -> Doubler {
        Doubler {
            input: dir.join("in.jsonl"),
            output: dir.join("out.jsonl"),
            dead_letters: dir.join("dead.jsonl"),
            ..Doubler::default()
        }
    }

    /// Counts an attempt at `record`, returning its number (1 for the first).
    fn count_attempt(&self, record: &Record<String>) -> u32 {
        let mut attempts = self.attempts.lock().unwrap();
        let count = attempts.entry(record.line).or_default();
        *count += 1;
        *count
    }

    fn attempts_at(&self, line: u64) -> u32 {
        self.attempts.lock().unwrap().get(&line).copied().unwrap_or(0)
    }

    fn double(record: &Record<String>) -> Result<Option<Doubled>, ItemError> {
        let sale: Sale =
            serde_json::from_str(&record.value).map_err(|error| ItemError::validation(error.to_string()))?;
        match sale.amount {
            0 => Ok(None),
            amount if amount < 0 => {
                Err(ItemError::validation("amount must not be negative").with_field("amount"))
            }
            amount => Ok(Some(Doubled { id: sale.id, doubled: amount * 2 })),
        }
    }
}

#[async_trait]
impl RecordJob for Doubler {
    type Output = Doubled;
    type Summary = Totals;

    fn input(&self) -> &Path {
        &self.input
    }

    fn output(&self) -> &Path {
        &self.output
    }

    fn dead_letters(&self) -> &Path {
        &self.dead_letters
    }

    fn process(&self, record: &Record<String>) -> Result<Option<Doubled>, ItemError> {
        let attempt = self.count_attempt(record);
        if let Some((hanging, sleep)) = self.sleep_first
            && attempt <= hanging
        {
            std::thread::sleep(sleep);
        }
        if attempt <= self.fail_first {
            return Err(ItemError::processing(format!("flaky failure at line {}", record.line)));
        }
        Doubler::double(record)
    }

    fn execution(&self) -> Execution {
        self.execution
    }

    async fn attempt(&self, record: &Record<String>) -> Result<Option<Doubled>, ItemError> {
        self.attempt_times.lock().unwrap().push((record.line, tokio::time::Instant::now()));
        let attempt = self.count_attempt(record);
        if let Some((line, gate)) = &self.gate
            && *line == record.line
            && attempt == 1
        {
            let _permit = gate.acquire().await;
        }
        if let Some((hanging, sleep)) = self.sleep_first
            && attempt <= hanging
        {
            tokio::time::sleep(sleep).await;
        }
        if attempt <= self.fail_first {
            return Err(ItemError::processing(format!("flaky failure at line {}", record.line)));
        }
        Doubler::double(record)
    }
}

fn task(config: BatchConfig) -> BatchTask {
    let request = CreateTaskRequest::new(TaskType::Custom("doubler".to_owned())).with_config(config);
    BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap()
}

fn config(batch_size: u32) -> BatchConfig {
    BatchConfig { batch_size, concurrency: 3, ..BatchConfig::default() }
}

/// `n` sales, with a zero amount every 10th, a negative one every 17th, a malformed line every 23rd.
fn sales(n: u64) -> String {
    let mut text = String::new();
    for id in 1..=n {
        let line = if id % 23 == 0 {
            format!("{{\"id\":{id},\"amount\":")
        } else if id % 17 == 0 {
            format!("{{\"id\":{id},\"amount\":-{id}}}")
        } else if id % 10 == 0 {
            format!("{{\"id\":{id},\"amount\":0}}")
        } else {
            format!("{{\"id\":{id},\"amount\":{id}}}")
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn options() -> RunnerOptions {
    RunnerOptions::default().with_jitter(0.0)
}

async fn run_job(
    job: &Arc<Doubler>,
    task: &BatchTask,
    checkpoint: Option<Checkpoint>,
    control: &Arc<TestControl>,
) -> Result<JobOutcome, TaskError> {
    run_epoch(job, task, checkpoint, control, 0).await
}

/// [`run_job`] for a claim of fencing epoch `epoch`.
async fn run_epoch(
    job: &Arc<Doubler>,
    task: &BatchTask,
    checkpoint: Option<Checkpoint>,
    control: &Arc<TestControl>,
    epoch: u64,
) -> Result<JobOutcome, TaskError> {
    let context = JobContext::new(task.clone(), checkpoint, Arc::clone(control) as Arc<dyn JobControl>)
        .with_epoch(epoch);
    ChunkRunner::new(options()).run(Arc::clone(job), &context).await
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn dead_letters(path: &Path) -> Vec<DeadLetterRecord> {
    read(path).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// What an uninterrupted run of [`sales`] produces.
fn expected_output(n: u64) -> String {
    let mut text = String::new();
    for id in 1..=n {
        if id % 23 != 0 && id % 17 != 0 && id % 10 != 0 {
            text.push_str(&format!("{{\"id\":{id},\"doubled\":{}}}\n", id * 2));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_outputs_dead_letters_counters_and_one_checkpoint_per_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(100)).unwrap();
    let control = Arc::new(TestControl::default());
    let outcome = run_job(&job, &task(config(7)), None, &control).await.unwrap();

    assert_eq!(read(&job.output), expected_output(100));
    let letters = dead_letters(&job.dead_letters);
    let lines: Vec<u64> = letters.iter().map(|letter| letter.line).collect();
    assert_eq!(lines, [17, 23, 34, 46, 51, 68, 69, 85, 92]);
    let negative = &letters[0];
    assert_eq!(negative.code, ErrorCode::ValidationError);
    assert_eq!(negative.message, "amount must not be negative");
    assert_eq!(negative.field.as_deref(), Some("amount"));
    assert_eq!(negative.raw, r#"{"id":17,"amount":-17}"#);
    let line_17_offset = sales(16).len() as u64;
    assert_eq!(negative.offset, line_17_offset);
    assert!(letters[1].message.starts_with("EOF while parsing"), "{}", letters[1].message);

    let checkpoints = control.checkpoints();
    assert_eq!(checkpoints.len(), 15, "100 records in chunks of 7");
    let last = checkpoints.last().unwrap();
    // 100 sales: 9 rejected (5 negative, 4 malformed), 10 zero amounts skipped, 81 written.
    assert_eq!((last.counters.processed, last.counters.failed, last.counters.skipped), (81, 9, 10));
    assert_eq!(last.source, serde_json::json!({ "offset": sales(100).len(), "line": 101 }));
    let output_len = read(&job.output).len() as u64;
    let dead_len = read(&job.dead_letters).len() as u64;
    assert_eq!(last.sink, serde_json::json!({ "output": output_len, "dead_letters": dead_len }));

    let JobOutcome::Completed { summary, progress } = outcome else { panic!("not completed: {outcome:?}") };
    let written: i64 = expected_output(100).lines().count() as i64;
    assert_eq!(summary["count"], written);
    assert_eq!(progress.total, Some(100));
    assert_eq!(progress.percentage, Some(100.0));
    assert_eq!((progress.processed, progress.failed, progress.skipped), (81, 9, 10));
}

#[tokio::test(start_paused = true)]
async fn checkpoints_prepared_while_a_commit_is_on_its_way_go_to_the_store_together_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubler = Doubler::new(dir.path());
    doubler.execution = Execution::Async;
    let job = Arc::new(doubler);
    std::fs::write(&job.input, sales(100)).unwrap();
    // The first commit takes a second: the pipeline goes on writing chunks meanwhile.
    let control =
        Arc::new(TestControl { slow_first: Some(Duration::from_secs(1)), ..TestControl::default() });
    run_job(&job, &task(config(7)), None, &control).await.unwrap();

    assert_eq!(read(&job.output), expected_output(100));
    // Every checkpoint committed, in sequence (the control asserts it), none twice.
    let sequences: Vec<u64> = control.checkpoints().iter().map(|checkpoint| checkpoint.sequence).collect();
    assert_eq!(sequences, (1..=15).collect::<Vec<u64>>());
    let calls = control.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().sum::<usize>(), 15, "{calls:?}");
    assert_eq!(calls[0], 1, "the first checkpoint goes alone: {calls:?}");
    // While the first was on its way the next ones queued, up to the bound, and went in one call.
    assert_eq!(calls[1], runner::QUEUED_COMMITS + 1, "{calls:?}");
    assert!(calls.iter().all(|&count| count <= runner::QUEUED_COMMITS + 1), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_that_are_not_text_are_validation_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, b"{\"id\":1,\"amount\":1}\n\xff\xfe\n\n{\"id\":4,\"amount\":4}\n").unwrap();
    let control = Arc::new(TestControl::default());
    run_job(&job, &task(config(10)), None, &control).await.unwrap();
    assert_eq!(read(&job.output), "{\"id\":1,\"doubled\":2}\n{\"id\":4,\"doubled\":8}\n");
    let letters = dead_letters(&job.dead_letters);
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].line, letters[0].offset, letters[0].code), (2, 20, ErrorCode::ValidationError));
    assert_eq!(letters[0].raw, "\u{fffd}\u{fffd}");
}

/// Resuming from any checkpoint, with the files as a crash would leave them (longer than the
/// checkpoint, the last line cut short), gives the uninterrupted run's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_any_checkpoint_after_a_crash_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(200)).unwrap();
    let task = task(config(9));
    let control = Arc::new(TestControl::default());
    run_job(&job, &task, None, &control).await.unwrap();
    let (reference_output, reference_dead) = (read(&job.output), read(&job.dead_letters));
    let checkpoints = control.checkpoints();
    let final_counters = checkpoints.last().unwrap().counters;

    for checkpoint in checkpoints.iter().step_by(3) {
        // As a crash leaves them: everything up to the crash written, plus half a line.
        std::fs::write(&job.output, format!("{reference_output}{{\"id\":99")).unwrap();
        std::fs::write(&job.dead_letters, format!("{reference_dead}{{\"li")).unwrap();
        let resumed = Arc::new(TestControl {
            commits: Mutex::new(vec![(checkpoint.clone(), Progress::zero(chrono::Utc::now()))]),
            ..TestControl::default()
        });
        let outcome = run_job(&job, &task, Some(checkpoint.clone()), &resumed).await.unwrap();
        assert!(matches!(outcome, JobOutcome::Completed { .. }));
        assert_eq!(read(&job.output), reference_output, "resumed from checkpoint {}", checkpoint.sequence);
        assert_eq!(
            read(&job.dead_letters),
            reference_dead,
            "resumed from checkpoint {}",
            checkpoint.sequence
        );
        assert_eq!(resumed.checkpoints().last().unwrap().counters, final_counters);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_ends_the_run_at_the_next_chunk_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(100)).unwrap();
    let control = Arc::new(TestControl { stop_after: Some(3), ..TestControl::default() });
    let outcome = run_job(&job, &task(config(10)), None, &control).await.unwrap();
    assert_eq!(outcome, JobOutcome::Stopped);
    let checkpoints = control.checkpoints();
    assert_eq!(checkpoints.len(), 3);
    let covered = checkpoints[2].counters;
    assert_eq!(covered.processed + covered.failed + covered.skipped, 30);
    assert_eq!(read(&job.output).len() as u64, checkpoints[2].sink["output"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_ends_the_run_as_cancelled_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(100)).unwrap();
    let control = Arc::new(TestControl { abort_after: Some(2), ..TestControl::default() });
    let error = run_job(&job, &task(config(10)), None, &control).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Cancelled);
    assert_eq!(control.checkpoints().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_stops_the_run_with_the_managers_error() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(30)).unwrap();
    let refusal = TaskError::new(ErrorCode::InvalidState, "worker w no longer holds the lease");
    let control = Arc::new(TestControl { refuse: Some(refusal), ..TestControl::default() });
    let error = run_job(&job, &task(config(10)), None, &control).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidState);
    assert_eq!(
        error.message,
        "cannot commit checkpoint 1: INVALID_STATE: worker w no longer holds the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_shorter_than_its_checkpoint_is_a_storage_error_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(50)).unwrap();
    let task = task(config(10));
    let control = Arc::new(TestControl { stop_after: Some(3), ..TestControl::default() });
    run_job(&job, &task, None, &control).await.unwrap();
    let checkpoint = control.checkpoints().pop().unwrap();
    let committed = checkpoint.sink["output"].as_u64().unwrap();
    let truncated = read(&job.output)[..(committed as usize - 5)].to_owned();
    std::fs::write(&job.output, &truncated).unwrap();
    let dead_before = read(&job.dead_letters);

    let error = run_job(&job, &task, Some(checkpoint), &Arc::new(TestControl::default())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::StorageError);
    let expected = format!(
        "the output {} is shorter than its checkpoint: {} bytes, expected at least {committed}",
        job.output.display(),
        committed - 5
    );
    assert!(error.message.starts_with(&expected), "{}", error.message);
    assert_eq!(read(&job.output), truncated);
    assert_eq!(read(&job.dead_letters), dead_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_skip_limit_fails_the_task_once_passed() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(100)).unwrap();
    // Nine records fail in all; the 4th failure is line 46, in the 5th chunk of 10.
    let limited = BatchConfig { skip_limit: Some(3), ..config(10) };
    let control = Arc::new(TestControl::default());
    let error = run_job(&job, &task(limited), None, &control).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProcessingError);
    assert_eq!(error.message, "4 records failed, more than the skip limit of 3");
    assert_eq!(control.checkpoints().len(), 5, "the chunk that passed the limit is still committed");

    let enough = BatchConfig { skip_limit: Some(9), ..config(10) };
    let outcome = run_job(&job, &task(enough), None, &Arc::new(TestControl::default())).await.unwrap();
    assert!(matches!(outcome, JobOutcome::Completed { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_path_for_two_files_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubler = Doubler::new(dir.path());
    doubler.dead_letters = doubler.output.clone();
    let error = run_job(&Arc::new(doubler), &task(config(10)), None, &Arc::new(TestControl::default()))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::ConfigurationError);
    assert!(
        error.message.starts_with("the output and the dead-letter file are the same file"),
        "{}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_jobs_retry_retryable_failures_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubler = Doubler::new(dir.path());
    doubler.fail_first = 2;
    let job = Arc::new(doubler);
    std::fs::write(&job.input, sales(20)).unwrap();
    let config = BatchConfig { max_retries: 2, ..config(5) };
    let control = Arc::new(TestControl::default());
    let options = RunnerOptions::default().with_jitter(0.0).with_initial_backoff(Duration::from_millis(1));
    let context = JobContext::new(task(config), None, Arc::clone(&control) as Arc<dyn JobControl>);
    ChunkRunner::new(options).run(Arc::clone(&job), &context).await.unwrap();
    assert_eq!(read(&job.output), expected_output(20));
    for line in 1..=20 {
        assert_eq!(job.attempts_at(line), 3, "line {line}");
    }
    assert_eq!(control.checkpoints().last().unwrap().counters.retried, 40);
}

/// Exact backoff timings on paused time: 100 ms, then 200 ms, then 400 ms, and the record fails with
/// its last error after `max_retries` retries.
#[tokio::test(start_paused = true)]
async fn async_retries_wait_the_exact_backoff_then_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubler = Doubler::new(dir.path());
    doubler.execution = Execution::Async;
    doubler.fail_first = 10;
    let job = Arc::new(doubler);
    std::fs::write(&job.input, "{\"id\":1,\"amount\":5}\n").unwrap();
    let config = BatchConfig { max_retries: 3, ..config(5) };
    let control = Arc::new(TestControl::default());
    run_job(&job, &task(config), None, &control).await.unwrap();
    let times: Vec<tokio::time::Instant> =
        job.attempt_times.lock().unwrap().iter().map(|(_, at)| *at).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert_eq!(gaps, [100, 200, 400].map(Duration::from_millis));
    let letters = dead_letters(&job.dead_letters);
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].code, letters[0].message.as_str()),
        (ErrorCode::ProcessingError, "flaky failure at line 1")
    );
    assert_eq!(control.checkpoints()[0].counters.retried, 3);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_the_timeout_is_a_timeout_error_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut doubler = Doubler::new(dir.path());
    doubler.execution = Execution::Async;
    doubler.sleep_first = Some((2, Duration::from_secs(60)));
    let job = Arc::new(doubler);
    std::fs::write(&job.input, "{\"id\":1,\"amount\":5}\n{\"id\":2,\"amount\":6}\n").unwrap();
    let timeout = Duration::from_secs(1);
    let retried = BatchConfig { max_retries: 2, timeout, concurrency: 1, ..config(5) };
    let control = Arc::new(TestControl::default());
    run_job(&job, &task(retried), None, &control).await.unwrap();
    assert_eq!(read(&job.output), "{\"id\":1,\"doubled\":10}\n{\"id\":2,\"doubled\":12}\n");
    let first_line: Vec<tokio::time::Instant> =
        job.attempt_times.lock().unwrap().iter().filter(|(line, _)| *line == 1).map(|(_, at)| *at).collect();
    let gaps: Vec<Duration> = first_line.windows(2).map(|pair| pair[1] - pair[0]).collect();
    // Each hanging attempt is cut at 1 s, then the backoff: 100 ms, 200 ms.
    assert_eq!(gaps, [1100, 1200].map(Duration::from_millis));

    // With one retry too few, the record ends as a TIMEOUT_ERROR dead letter.
    let dir = tempfile::tempdir().unwrap();
    let mut doubler = Doubler::new(dir.path());
    doubler.execution = Execution::Async;
    doubler.sleep_first = Some((2, Duration::from_secs(60)));
    let job = Arc::new(doubler);
    std::fs::write(&job.input, "{\"id\":1,\"amount\":5}\n").unwrap();
    let short = BatchConfig { max_retries: 1, timeout, ..config(5) };
    run_job(&job, &task(short), None, &Arc::new(TestControl::default())).await.unwrap();
    let letters = dead_letters(&job.dead_letters);
    assert_eq!(letters[0].code, ErrorCode::TimeoutError);
    assert_eq!(letters[0].message, "the attempt took longer than the task's timeout of 1s");
}

/// A blocking attempt cannot be interrupted: one that returns after the timeout counts as a
/// `TIMEOUT_ERROR` (measured on the coarse clock) and is retried; with no retries left the record is
/// a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_attempt_that_returns_past_the_timeout_is_a_timeout_error() {
    let timeout = Duration::from_millis(50);
    let input = "{\"id\":1,\"amount\":5}\n{\"id\":2,\"amount\":6}\n";
    let hanging_once = |dir: &Path| {
        let mut doubler = Doubler::new(dir);
        // Each record's first attempt blocks its thread for 300 ms, then succeeds.
        doubler.sleep_first = Some((1, Duration::from_millis(300)));
        std::fs::write(&doubler.input, input).unwrap();
        Arc::new(doubler)
    };

    let dir = tempfile::tempdir().unwrap();
    let job = hanging_once(dir.path());
    let retried = BatchConfig { max_retries: 1, timeout, concurrency: 2, ..config(5) };
    let control = Arc::new(TestControl::default());
    run_job(&job, &task(retried), None, &control).await.unwrap();
    assert_eq!(read(&job.output), "{\"id\":1,\"doubled\":10}\n{\"id\":2,\"doubled\":12}\n");
    assert!(dead_letters(&job.dead_letters).is_empty());
    assert_eq!((job.attempts_at(1), job.attempts_at(2)), (2, 2));
    assert_eq!(control.checkpoints().pop().unwrap().counters.retried, 2);

    let dir = tempfile::tempdir().unwrap();
    let job = hanging_once(dir.path());
    let no_retries = BatchConfig { max_retries: 0, timeout, concurrency: 2, ..config(5) };
    run_job(&job, &task(no_retries), None, &Arc::new(TestControl::default())).await.unwrap();
    assert_eq!(read(&job.output), "");
    let letters = dead_letters(&job.dead_letters);
    assert_eq!(letters.iter().map(|letter| letter.line).collect::<Vec<_>>(), [1, 2]);
    assert!(letters.iter().all(|letter| letter.code == ErrorCode::TimeoutError));
    assert_eq!(letters[0].message, "the attempt took longer than the task's timeout of 50ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_durability_syncs_and_writes_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(60)).unwrap();
    let durable = BatchConfig { durability: batch_model::Durability::PowerLoss, ..config(8) };
    let control = Arc::new(TestControl::default());
    run_job(&job, &task(durable), None, &control).await.unwrap();
    assert_eq!(read(&job.output), expected_output(60));
    let last = control.checkpoints().pop().unwrap();
    assert_eq!(last.sink["output"].as_u64().unwrap(), read(&job.output).len() as u64);
    assert_eq!(last.sink["dead_letters"].as_u64().unwrap(), read(&job.dead_letters).len() as u64);
}

/// The staged files (`*.part`) left in `dir`.
fn staged_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(".part"))
        .collect();
    names.sort();
    names
}

/// An uninterrupted, unfenced run of `job`: its output and dead letters.
async fn reference_run(job: &Arc<Doubler>, task: &BatchTask) -> (String, String) {
    run_job(job, task, None, &Arc::new(TestControl::default())).await.unwrap();
    let files = (read(&job.output), read(&job.dead_letters));
    std::fs::remove_file(&job.output).unwrap();
    std::fs::remove_file(&job.dead_letters).unwrap();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_run_stages_its_files_and_publishes_them_after_a_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(100)).unwrap();
    let task = task(config(10));
    let (reference_output, reference_dead) = reference_run(&job, &task).await;

    // Stopped after three chunks: the bytes are in the epoch's staged files, not under the final names.
    let first = Arc::new(TestControl { stop_after: Some(3), ..TestControl::default() });
    assert_eq!(run_epoch(&job, &task, None, &first, 4).await.unwrap(), JobOutcome::Stopped);
    assert!(!job.output.exists() && !job.dead_letters.exists());
    assert_eq!(staged_files(dir.path()), ["dead.jsonl.e4.part", "out.jsonl.e4.part"]);
    let checkpoint = first.checkpoints().pop().unwrap();
    assert_eq!(checkpoint.sink["epoch"], 4);
    let staged_output = read(&dir.path().join("out.jsonl.e4.part"));
    assert_eq!(staged_output.len() as u64, checkpoint.sink["output"].as_u64().unwrap());
    assert!(reference_output.starts_with(&staged_output));

    // The next claim copies the committed prefix, finishes, commits a final checkpoint, publishes.
    let second = Arc::new(TestControl {
        commits: Mutex::new(vec![(checkpoint, Progress::zero(chrono::Utc::now()))]),
        ..TestControl::default()
    });
    let outcome = run_epoch(&job, &task, second.checkpoints().pop(), &second, 5).await.unwrap();
    assert!(matches!(outcome, JobOutcome::Completed { .. }));
    assert_eq!(read(&job.output), reference_output);
    assert_eq!(read(&job.dead_letters), reference_dead);
    assert_eq!(staged_files(dir.path()), Vec::<String>::new(), "the adopted and own staged files are gone");
    let last = second.checkpoints().pop().unwrap();
    assert_eq!(
        (last.sink["final"].clone(), last.sink["epoch"].clone()),
        (serde_json::json!(true), serde_json::json!(5))
    );
    assert_eq!(last.sink["output"].as_u64().unwrap(), reference_output.len() as u64);
}

/// A worker of epoch 1 pauses in the middle of a chunk; its task is taken over (epoch 2) and finished;
/// then the stale worker wakes up and writes on. Nothing it writes reaches the final files, which are
/// byte-identical to an uninterrupted run's, and its commits are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_that_keeps_appending_after_a_takeover_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut doubler = Doubler::new(dir.path());
    doubler.execution = Execution::Async;
    // Line 55 is in the 6th chunk of 10: the stale worker commits 5 checkpoints, then pauses there.
    doubler.gate = Some((55, Arc::clone(&gate)));
    let job = Arc::new(doubler);
    std::fs::write(&job.input, sales(100)).unwrap();
    let task = task(config(10));
    let (reference_output, reference_dead) = reference_run(&Arc::new(Doubler::new(dir.path())), &task).await;

    let store_epoch = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let stale_control =
        Arc::new(TestControl { fence: Some((Arc::clone(&store_epoch), 1)), ..TestControl::default() });
    let stale = {
        let (job, task, control) = (Arc::clone(&job), task.clone(), Arc::clone(&stale_control));
        tokio::spawn(async move { run_epoch(&job, &task, None, &control, 1).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stale_control.checkpoints().len() < 5 || job.attempts_at(55) == 0 {
        assert!(std::time::Instant::now() < deadline, "the stale worker never reached its pause");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let taken_over = stale_control.checkpoints().pop().unwrap();
    assert_eq!(taken_over.sequence, 5, "the sixth chunk waits at line 55");
    // What a paused writer may have flushed past its checkpoint: garbage after the committed prefix.
    let stale_output = dir.path().join("out.jsonl.e1.part");
    let mut file = std::fs::OpenOptions::new().append(true).open(&stale_output).unwrap();
    std::io::Write::write_all(&mut file, b"{\"stale\":true}\n").unwrap();
    drop(file);

    // The takeover: the store's epoch moves to 2; the new holder resumes from checkpoint 5.
    store_epoch.store(2, Ordering::SeqCst);
    let fresh = Arc::new(TestControl {
        commits: Mutex::new(vec![(taken_over.clone(), Progress::zero(chrono::Utc::now()))]),
        fence: Some((Arc::clone(&store_epoch), 2)),
        ..TestControl::default()
    });
    let outcome = run_epoch(&job, &task, Some(taken_over), &fresh, 2).await.unwrap();
    assert!(matches!(outcome, JobOutcome::Completed { .. }));
    assert_eq!(read(&job.output), reference_output);

    // The stale worker wakes up, writes its sixth chunk into its own file, and is refused.
    gate.add_permits(1);
    let error = stale.await.unwrap().unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidState, "{error:?}");
    assert_eq!(read(&job.output), reference_output, "a stale write reached the output");
    assert_eq!(read(&job.dead_letters), reference_dead);
    assert_eq!(stale_control.checkpoints().len(), 5, "no commit of the stale worker was accepted");
    assert_eq!(staged_files(dir.path()), Vec::<String>::new());
}

/// Stopped and taken over under a new epoch again and again, with garbage appended to each staged
/// file after its checkpoint (as a killed writer leaves it): the final files are the uninterrupted
/// run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_under_new_epochs_after_crashes_give_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(200)).unwrap();
    let task = task(config(9));
    let (reference_output, reference_dead) = reference_run(&job, &task).await;

    let mut checkpoint = None;
    // Epoch 0 first (an unfenced claim, files in place), then fenced claims: each adopts the last.
    for (round, epoch) in [0u64, 3, 4, 9, 10].into_iter().enumerate() {
        let stop_after = checkpoint.as_ref().map_or(0, |checkpoint: &Checkpoint| checkpoint.sequence) + 4;
        let commits = checkpoint
            .iter()
            .map(|checkpoint: &Checkpoint| (checkpoint.clone(), Progress::zero(chrono::Utc::now())))
            .collect();
        let last_round = round == 4;
        let control = Arc::new(TestControl {
            commits: Mutex::new(commits),
            stop_after: (!last_round).then_some(stop_after),
            ..TestControl::default()
        });
        let outcome = run_epoch(&job, &task, checkpoint.clone(), &control, epoch).await.unwrap();
        if last_round {
            assert!(matches!(outcome, JobOutcome::Completed { .. }));
            break;
        }
        assert_eq!(outcome, JobOutcome::Stopped);
        checkpoint = control.checkpoints().pop();
        for file in [&job.output, &job.dead_letters] {
            let staged = staged_path(file, epoch);
            let mut handle = std::fs::OpenOptions::new().append(true).open(&staged).unwrap();
            std::io::Write::write_all(&mut handle, b"{\"half a li").unwrap();
        }
    }
    assert_eq!(read(&job.output), reference_output);
    assert_eq!(read(&job.dead_letters), reference_dead);
    assert_eq!(staged_files(dir.path()), Vec::<String>::new());
}

/// The holder that committed the final checkpoint died before (or while) renaming: the next claim
/// finishes the publication, and a second one finds nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_after_the_final_checkpoint_finishes_the_publication() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    std::fs::write(&job.input, sales(60)).unwrap();
    let task = task(config(10));
    let control = Arc::new(TestControl::default());
    run_epoch(&job, &task, None, &control, 1).await.unwrap();
    let (output, dead) = (read(&job.output), read(&job.dead_letters));
    let last = control.checkpoints().pop().unwrap();
    assert_eq!(last.sink["final"], true);
    // As if the holder had died between the final commit and its renames: both files still staged.
    std::fs::rename(&job.output, staged_path(&job.output, 1)).unwrap();
    std::fs::rename(&job.dead_letters, staged_path(&job.dead_letters, 1)).unwrap();
    let attempts_before = job.attempts.lock().unwrap().values().sum::<u32>();

    let again = Arc::new(TestControl::default());
    let outcome = run_epoch(&job, &task, Some(last.clone()), &again, 2).await.unwrap();
    let JobOutcome::Completed { summary, progress } = outcome else { panic!("not completed") };
    assert_eq!(summary["count"], output.lines().count());
    assert_eq!(progress.total, Some(60));
    assert_eq!((read(&job.output), read(&job.dead_letters)), (output.clone(), dead.clone()));
    assert!(again.checkpoints().is_empty(), "nothing more to commit");
    assert_eq!(
        job.attempts.lock().unwrap().values().sum::<u32>(),
        attempts_before,
        "no record processed again"
    );
    assert_eq!(staged_files(dir.path()), Vec::<String>::new());

    // Only the dead letters were still staged (the output renamed before the holder died).
    std::fs::rename(&job.dead_letters, staged_path(&job.dead_letters, 1)).unwrap();
    run_epoch(&job, &task, Some(last.clone()), &Arc::new(TestControl::default()), 3).await.unwrap();
    assert_eq!((read(&job.output), read(&job.dead_letters)), (output, dead));
    assert_eq!(staged_files(dir.path()), Vec::<String>::new());
}

/// An input that vanished between the task's creation and its run: one line, its cause once, no
/// internal stage names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_error_at_run_time_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let job = Arc::new(Doubler::new(dir.path()));
    let error = run_job(&job, &task(config(10)), None, &Arc::new(TestControl::default())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::StorageError);
    assert_eq!(
        error.message,
        format!("cannot read the input {}: No such file or directory (os error 2)", job.input.display())
    );
    assert_eq!(error.details["input"], format!("the input {}", job.input.display()));
}
