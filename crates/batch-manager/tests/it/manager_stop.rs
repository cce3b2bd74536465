//! Stopping, shutting down, resuming and losing tasks, on paused time with a gated kind: each test
//! lets a known number of records through, so it knows exactly which chunk a stop lands in.

use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::TaskStore;
use batch_manager::store::memory::MemoryStore;
use batch_manager::{BatchManager, ManagerError};
use batch_model::{
    BatchConfig, ErrorCode, StopTaskRequest, TaskError, TaskId, TaskStatus, UpdateTaskStatusRequest,
};

use crate::kinds::{
    Faults, LinesParams, Probe, checkpoint_reaching, committed_file, expected_counts, expected_output,
    manager, read, write_sales,
};

/// 500 records in chunks of 100, two in flight at a time, each attempt waiting for the gate.
const RECORDS: u64 = 500;

struct Gated {
    _dir: tempfile::TempDir,
    store: Arc<dyn TaskStore>,
    probe: Arc<Probe>,
    manager: BatchManager,
    params: LinesParams,
    id: TaskId,
}

async fn gated_task() -> Gated {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let probe = Arc::new(Probe::default());
    let manager = manager(&store, &probe, "first");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, RECORDS, Faults::SOME);
    let mut params = LinesParams::new(&input, "gated");
    params.asynchronous = true;
    params.gated = true;
    let config = BatchConfig { batch_size: 100, concurrency: 2, ..BatchConfig::default() };
    let id = manager.create_task(params.request(config)).await.unwrap().id;
    manager.process_task(&id).await.unwrap();
    Gated { _dir: dir, store, probe, manager, params, id }
}

/// The output of the first `records` records.
fn output_of(records: u64) -> String {
    expected_output(records, Faults::SOME)
}

#[tokio::test(start_paused = true)]
async fn stop_task_mid_run_ends_cancelled_within_one_chunk_and_keeps_its_checkpoint() {
    let gated = gated_task().await;
    gated.probe.open_gate(250);
    checkpoint_reaching(&*gated.store, &gated.id, 2).await;
    let request = StopTaskRequest { id: gated.id, reason: Some("operator asked".to_owned()) };
    let response = gated.manager.stop_task(request).await.unwrap();
    assert_eq!(response.status, TaskStatus::Processing, "a running task stops at its next chunk boundary");
    gated.probe.open_gate(1000);

    let task = gated.manager.wait(&gated.id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Cancelled);
    let error = task.error.unwrap();
    assert_eq!(error.code, ErrorCode::Cancelled);
    assert_eq!(error.message, "operator asked; stopped at a chunk boundary, its last checkpoint is kept");
    let checkpoint = gated.store.checkpoint(&gated.id).await.unwrap().unwrap();
    assert_eq!(checkpoint.sequence, 3, "the chunk in flight when the stop came is the last one");
    let counters = checkpoint.counters;
    assert_eq!(counters.processed + counters.failed + counters.skipped, 300);
    assert_eq!(read(&committed_file(&*gated.store, &gated.id, &gated.params.output).await), output_of(300));
    assert!(!gated.params.output.exists(), "a cancelled task publishes nothing");
    assert_eq!(task.progress.done(), 300);
}

#[tokio::test(start_paused = true)]
async fn a_task_that_does_not_stop_within_its_grace_period_is_aborted_and_cancelled() {
    let gated = gated_task().await;
    gated.probe.open_gate(250);
    checkpoint_reaching(&*gated.store, &gated.id, 2).await;
    let stopped_at = tokio::time::Instant::now();
    gated.manager.stop_task(StopTaskRequest { id: gated.id, reason: None }).await.unwrap();

    let task = gated.manager.wait(&gated.id).await.unwrap();
    let waited = stopped_at.elapsed();
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(6), "aborted after {waited:?}");
    assert_eq!(task.status, TaskStatus::Cancelled);
    let error = task.error.unwrap();
    assert_eq!(error.code, ErrorCode::Cancelled);
    assert!(error.message.starts_with("stopped by request; in-flight work was aborted"), "{}", error.message);
    assert_eq!(gated.store.checkpoint(&gated.id).await.unwrap().unwrap().sequence, 2);
    let committed = committed_file(&*gated.store, &gated.id, &gated.params.output).await;
    assert_eq!(read(&committed), output_of(200), "the aborted chunk was never written");
}

#[tokio::test(start_paused = true)]
async fn abort_task_cuts_a_stops_grace_period_short_and_records_what_the_stop_would() {
    let gated = gated_task().await;
    gated.probe.open_gate(250);
    checkpoint_reaching(&*gated.store, &gated.id, 2).await;
    let stopped_at = tokio::time::Instant::now();
    let request = StopTaskRequest { id: gated.id, reason: Some("interrupted".to_owned()) };
    gated.manager.stop_task(request).await.unwrap();
    assert!(gated.manager.abort_task(&gated.id, None).await, "the task runs here");

    let task = gated.manager.wait(&gated.id).await.unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(1), "aborted after {:?}", stopped_at.elapsed());
    assert_eq!(task.status, TaskStatus::Cancelled);
    let error = task.error.unwrap();
    assert_eq!(error.code, ErrorCode::Cancelled);
    assert!(error.message.starts_with("interrupted; in-flight work was aborted"), "{}", error.message);
    assert_eq!(gated.store.checkpoint(&gated.id).await.unwrap().unwrap().sequence, 2);
    let committed = committed_file(&*gated.store, &gated.id, &gated.params.output).await;
    assert_eq!(read(&committed), output_of(200), "the aborted chunk was never written");
}

#[tokio::test(start_paused = true)]
async fn a_stop_requested_through_another_manager_reaches_the_task_at_its_heartbeat() {
    let gated = gated_task().await;
    let elsewhere = manager(&gated.store, &gated.probe, "second");
    gated.probe.open_gate(250);
    checkpoint_reaching(&*gated.store, &gated.id, 2).await;
    let response = elsewhere.stop_task(StopTaskRequest { id: gated.id, reason: None }).await.unwrap();
    assert_eq!(response.status, TaskStatus::Processing);
    // The running manager hears of it at its next heartbeat (every second).
    tokio::time::sleep(Duration::from_secs(2)).await;
    gated.probe.open_gate(1000);

    let task = elsewhere.wait(&gated.id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert_eq!(gated.store.checkpoint(&gated.id).await.unwrap().unwrap().sequence, 3);
    assert_eq!(read(&committed_file(&*gated.store, &gated.id, &gated.params.output).await), output_of(300));
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_running_tasks_and_a_new_manager_resumes_them_identically() {
    let gated = gated_task().await;
    gated.probe.open_gate(250);
    checkpoint_reaching(&*gated.store, &gated.id, 2).await;
    let shutting_down = tokio::spawn({
        let manager = gated.manager.clone();
        async move { manager.shutdown().await }
    });
    // Until the shutdown has begun, an unknown task is NOT_FOUND; then the manager refuses all work.
    loop {
        tokio::task::yield_now().await;
        let refused = gated.manager.process_task(&TaskId::new()).await.unwrap_err();
        if matches!(refused, ManagerError::ShuttingDown) {
            break;
        }
    }
    gated.probe.open_gate(50);
    shutting_down.await.unwrap();

    let released = gated.manager.get_task(&gated.id).await.unwrap();
    assert_eq!((released.status, released.error), (TaskStatus::Processing, None));
    assert_eq!(gated.store.checkpoint(&gated.id).await.unwrap().unwrap().sequence, 3);
    let refused = gated.manager.process_task(&gated.id).await.unwrap_err();
    assert_eq!(refused.to_string(), "the manager is shutting down and takes no new work");

    let successor = manager(&gated.store, &gated.probe, "successor");
    successor.resume_task(&gated.id).await.unwrap();
    gated.probe.open_gate(1000);
    let task = successor.wait(&gated.id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(read(&gated.params.output), expected_output(RECORDS, Faults::SOME));
    let (processed, failed, skipped) = expected_counts(RECORDS, Faults::SOME);
    assert_eq!(
        (task.progress.processed, task.progress.failed, task.progress.skipped),
        (processed, failed, skipped)
    );
    assert_eq!(read(&gated.params.dead_letters).lines().count() as u64, failed);
    assert_eq!(gated.probe.runs(gated.id), 2);
    successor.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_taken_away_stops_writing_and_records_nothing_more() {
    let gated = gated_task().await;
    let elsewhere = manager(&gated.store, &gated.probe, "second");
    gated.probe.open_gate(150);
    checkpoint_reaching(&*gated.store, &gated.id, 1).await;
    let by_hand = TaskError::new(ErrorCode::ProcessingError, "failed by hand");
    let request =
        UpdateTaskStatusRequest { id: gated.id, status: TaskStatus::Failed, error: Some(by_hand.clone()) };
    elsewhere.update_task_status(request).await.unwrap();
    gated.probe.open_gate(1000);
    while !gated.manager.running_tasks().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let task = gated.manager.get_task(&gated.id).await.unwrap();
    assert_eq!((task.status, task.error), (TaskStatus::Failed, Some(by_hand)));
    assert_eq!(
        gated.store.checkpoint(&gated.id).await.unwrap().unwrap().sequence,
        1,
        "no commit without the lease"
    );
    assert_eq!(gated.store.task_result(&gated.id).await.unwrap(), None, "the old holder recorded no end");
}

#[tokio::test]
async fn stopping_a_pending_task_cancels_it_and_a_finished_task_cannot_be_stopped() {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let probe = Arc::new(Probe::default());
    let manager = manager(&store, &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let params = LinesParams::new(&dir.path().join("in.jsonl"), "t");
    let id = manager.create_task(params.request(BatchConfig::default())).await.unwrap().id;
    let response = manager.stop_task(StopTaskRequest { id, reason: None }).await.unwrap();
    assert_eq!(response.status, TaskStatus::Cancelled);
    let task = manager.get_task(&id).await.unwrap();
    assert_eq!(task.error.unwrap().code, ErrorCode::Cancelled);
    let again = manager.stop_task(StopTaskRequest { id, reason: None }).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::InvalidState);
    let unknown = manager.stop_task(StopTaskRequest { id: TaskId::new(), reason: None }).await.unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::NotFound);
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_shutdown_cancels_the_task_instead_of_releasing_it() {
    let gated = gated_task().await;
    gated.probe.open_gate(150);
    checkpoint_reaching(&*gated.store, &gated.id, 1).await;
    let shutting_down = tokio::spawn({
        let manager = gated.manager.clone();
        async move { manager.shutdown().await }
    });
    loop {
        tokio::task::yield_now().await;
        let refused = gated.manager.process_task(&TaskId::new()).await.unwrap_err();
        if matches!(refused, ManagerError::ShuttingDown) {
            break;
        }
    }
    gated
        .manager
        .stop_task(StopTaskRequest { id: gated.id, reason: Some("not needed".to_owned()) })
        .await
        .unwrap();
    gated.probe.open_gate(50);
    shutting_down.await.unwrap();
    let task = gated.manager.get_task(&gated.id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert!(task.error.unwrap().message.starts_with("not needed; stopped at a chunk boundary"));
    assert_eq!(gated.store.checkpoint(&gated.id).await.unwrap().unwrap().sequence, 2);
}
