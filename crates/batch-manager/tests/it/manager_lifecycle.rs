//! The manager's lifecycle calls as a user sees them: creating (and refusing) tasks, running them to
//! their results, status changes by hand, listings, metrics, many tasks at once and many workers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::TaskStore;
use batch_manager::store::memory::MemoryStore;
use batch_manager::{BatchManager, ManagerConfig, ManagerError};
use batch_model::{
    BatchConfig, BatchMetrics, BatchTask, CreateTaskRequest, ErrorCode, ListTasksRequest, StopTaskRequest,
    TaskError, TaskId, TaskStatus, TaskType, TransitionCause, UpdateTaskStatusRequest,
};
use batch_tasks::Registry;
use tokio::task::JoinSet;

use crate::fixtures::sqlite_store;
use crate::kinds::{
    Faults, LinesKind, LinesParams, Probe, expected_counts, expected_output, lines_type, manager, read,
    registry, write_sales,
};

fn memory() -> Arc<dyn TaskStore> {
    Arc::new(MemoryStore::new())
}

fn config(batch_size: u32) -> BatchConfig {
    BatchConfig { batch_size, ..BatchConfig::default() }
}

#[tokio::test]
async fn create_task_refuses_bad_configs_unknown_kinds_and_bad_params_with_their_codes() {
    let probe = Arc::new(Probe::default());
    let manager = manager(&memory(), &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let params = LinesParams::new(&dir.path().join("in.jsonl"), "t");

    let bad_config = params.request(BatchConfig { concurrency: 0, ..BatchConfig::default() });
    let error = manager.create_task(bad_config).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::ConfigurationError);
    assert_eq!(error.to_string(), "invalid configuration: concurrency must be at least 1, got 0");

    let unknown = CreateTaskRequest::new(TaskType::Custom("nobody".to_owned()));
    let error = manager.create_task(unknown).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::ValidationError);
    assert_eq!(error.to_string(), "no task kind is registered for type nobody");

    let bad_params = CreateTaskRequest::new(lines_type()).with_params(serde_json::json!({ "input": "x" }));
    let error = manager.create_task(bad_params).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::ConfigurationError);
    assert!(error.to_string().contains("missing field `output`"), "{error}");

    let typed = manager.create_train_task(&serde_json::json!({ "epochs": 3 }), None).await.unwrap_err();
    assert!(matches!(typed, ManagerError::UnknownTaskType { task_type: TaskType::Train }));

    assert_eq!(manager.list_tasks(ListTasksRequest::default()).await.unwrap().total, 0, "nothing was stored");
    let missing = manager.get_task(&TaskId::new()).await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_to_completion_with_its_summary_progress_and_metrics() {
    let (_db, store) = sqlite_store();
    let store: Arc<dyn TaskStore> = Arc::new(store);
    let probe = Arc::new(Probe::default());
    let manager = manager(&store, &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, 1000, Faults::SOME);
    let params = LinesParams::new(&input, "run");
    let created = manager.create_task(params.request(config(64))).await.unwrap();
    assert_eq!(created.status, TaskStatus::Pending);

    let processing = manager.process_task(&created.id).await.unwrap();
    assert_eq!(processing.status, TaskStatus::Processing);
    let task = manager.wait(&created.id).await.unwrap();
    assert_eq!((task.status, task.error.clone()), (TaskStatus::Completed, None));

    let (processed, failed, skipped) = expected_counts(1000, Faults::SOME);
    assert_eq!(read(&params.output), expected_output(1000, Faults::SOME));
    assert_eq!(read(&params.dead_letters).lines().count() as u64, failed);
    assert_eq!(
        (task.progress.processed, task.progress.failed, task.progress.skipped),
        (processed, failed, skipped)
    );
    assert_eq!((task.progress.total, task.progress.percentage), (Some(1000), Some(100.0)));

    let result = manager.task_result(&created.id).await.unwrap().unwrap();
    assert_eq!(result.result["count"], processed);
    assert_eq!(result.metrics.total_items, 1000);
    assert_eq!(
        (result.metrics.processed_items, result.metrics.failed_items, result.metrics.skipped_items),
        (processed, failed, skipped)
    );
    assert_eq!(result.metrics.start_time, task.started_at);
    assert_eq!(
        store.checkpoint(&created.id).await.unwrap().unwrap().sequence,
        17,
        "1000 records in chunks of 64, then the final checkpoint"
    );

    let status = manager.get_task_status(&created.id).await.unwrap();
    assert_eq!((status.status, status.progress), (TaskStatus::Completed, task.progress));
    let again = manager.process_task(&created.id).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::InvalidState);
    assert_eq!(again.to_string(), format!("task {} is completed: it has finished", created.id));
    manager.shutdown().await;
}

/// Puts a new task in `status` through legal requested changes.
async fn task_in(manager: &BatchManager, params: &LinesParams, status: TaskStatus) -> BatchTask {
    let id = manager.create_task(params.request(config(10))).await.unwrap().id;
    let path: &[TaskStatus] = match status {
        TaskStatus::Pending => &[],
        TaskStatus::Processing => &[TaskStatus::Processing],
        TaskStatus::Cancelled => &[TaskStatus::Cancelled],
        terminal => &[TaskStatus::Processing, terminal],
    };
    for &next in path {
        let request = UpdateTaskStatusRequest { id, status: next, error: None };
        manager.update_task_status(request).await.unwrap();
    }
    manager.get_task(&id).await.unwrap()
}

#[tokio::test]
async fn every_status_pair_through_update_task_status_follows_the_state_machine() {
    let probe = Arc::new(Probe::default());
    let manager = manager(&memory(), &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let params = LinesParams::new(&dir.path().join("in.jsonl"), "t");
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            let task = task_in(&manager, &params, from).await;
            assert_eq!(task.status, from);
            let error = matches!(to, TaskStatus::Failed | TaskStatus::Cancelled)
                .then(|| TaskError::new(ErrorCode::Cancelled, "by hand"));
            let request = UpdateTaskStatusRequest { id: task.id, status: to, error: error.clone() };
            let result = manager.update_task_status(request).await;
            if TaskStatus::can_transition(from, to, TransitionCause::Requested) {
                let updated = result.unwrap_or_else(|error| panic!("{from} -> {to}: {error}"));
                assert_eq!(updated.status, to, "{from} -> {to}");
                assert_eq!(updated.error, error, "{from} -> {to}");
                assert_eq!(manager.get_task(&task.id).await.unwrap(), updated);
            } else {
                let refused = result.expect_err(&format!("{from} -> {to} must be refused"));
                assert_eq!(refused.code(), ErrorCode::InvalidState, "{from} -> {to}");
                assert_eq!(refused.to_string(), format!("invalid state transition from {from} to {to}"));
                assert_eq!(
                    manager.get_task(&task.id).await.unwrap(),
                    task,
                    "{from} -> {to} changed the task"
                );
            }
        }
    }
    // An error is allowed only with failed or cancelled.
    let task = task_in(&manager, &params, TaskStatus::Processing).await;
    let error = Some(TaskError::new(ErrorCode::ProcessingError, "no"));
    let request = UpdateTaskStatusRequest { id: task.id, status: TaskStatus::Completed, error };
    assert_eq!(manager.update_task_status(request).await.unwrap_err().code(), ErrorCode::ValidationError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_run_concurrently_with_exact_counts_and_metrics() {
    const TASKS: usize = 1000;
    const RECORDS: u64 = 25;
    let (_db, store) = sqlite_store();
    let store: Arc<dyn TaskStore> = Arc::new(store);
    let probe = Arc::new(Probe::default());
    let settings = ManagerConfig::default().with_worker_id("many").with_max_concurrent_tasks(32);
    let manager = BatchManager::new(Arc::clone(&store), registry(&probe), settings).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, RECORDS, Faults::SOME);

    let mut creating = JoinSet::new();
    for idx in 0..TASKS {
        let manager = manager.clone();
        let params = LinesParams::new(&input, &format!("task{idx}"));
        creating.spawn(async move {
            let created = manager.create_task(params.request(config(10))).await.unwrap();
            (created.id, params)
        });
    }
    let tasks: Vec<(TaskId, LinesParams)> = creating.join_all().await;

    let mut running = JoinSet::new();
    for (id, _) in &tasks {
        let manager = manager.clone();
        let id = *id;
        running.spawn(async move {
            manager.process_task(&id).await.unwrap();
            manager.wait(&id).await.unwrap()
        });
    }
    let finished = running.join_all().await;
    assert_eq!(finished.len(), TASKS);

    let (processed, failed, skipped) = expected_counts(RECORDS, Faults::SOME);
    let expected = expected_output(RECORDS, Faults::SOME);
    for task in &finished {
        assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
        assert_eq!(
            (task.progress.processed, task.progress.failed, task.progress.skipped),
            (processed, failed, skipped)
        );
    }
    for (id, params) in &tasks {
        assert_eq!(read(&params.output), expected, "task {id}");
        assert_eq!(probe.runs(*id), 1);
    }
    let metrics = manager.metrics().await.unwrap();
    assert_eq!((metrics.total_tasks, metrics.completed_tasks), (TASKS as u64, TASKS as u64));
    assert_eq!((metrics.pending_tasks, metrics.processing_tasks, metrics.failed_tasks), (0, 0, 0));
    assert_eq!(metrics.success_rate, 1.0);
    assert_eq!(metrics, BatchMetrics::from_tasks(&finished));
    assert!(manager.running_tasks().is_empty());
    manager.shutdown().await;
}

#[tokio::test]
async fn list_tasks_pages_newest_first_and_filters_by_status_and_type() {
    let store = memory();
    let probe = Arc::new(Probe::default());
    let mut registry = registry(&probe);
    let other = TaskType::Custom("test_other".to_owned());
    registry.register(LinesKind { task_type: other.clone(), ..LinesKind::new(Arc::clone(&probe)) });
    let manager = BatchManager::new(store, registry, ManagerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let params = LinesParams::new(&dir.path().join("in.jsonl"), "t");
    let mut created = Vec::new();
    for idx in 0..25 {
        let mut request = params.request(config(10));
        if idx % 5 == 0 {
            request.task_type = other.clone();
        }
        let id = manager.create_task(request).await.unwrap().id;
        if idx % 3 == 0 {
            manager.stop_task(StopTaskRequest { id, reason: None }).await.unwrap();
        }
        created.push(id);
    }

    let mut seen = Vec::new();
    for (offset, len) in [(0, 10), (10, 10), (20, 5), (30, 0)] {
        let page = manager
            .list_tasks(ListTasksRequest { limit: 10, offset, ..ListTasksRequest::default() })
            .await
            .unwrap();
        assert_eq!((page.total, page.limit, page.offset, page.tasks.len()), (25, 10, offset, len));
        seen.extend(page.tasks.iter().map(|task| task.id));
    }
    let newest_first: Vec<TaskId> = created.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);

    let cancelled =
        ListTasksRequest { status: Some(TaskStatus::Cancelled), limit: 100, ..ListTasksRequest::default() };
    let page = manager.list_tasks(cancelled).await.unwrap();
    assert_eq!(page.total, 9, "every third of 25");
    assert!(page.tasks.iter().all(|task| task.status == TaskStatus::Cancelled));

    let both = ListTasksRequest {
        status: Some(TaskStatus::Pending),
        task_type: Some(other.clone()),
        limit: 2,
        offset: 1,
        ..ListTasksRequest::default()
    };
    let page = manager.list_tasks(both).await.unwrap();
    // Of the other kind (0, 5, 10, 15, 20), pending ones are 5, 10, 20 (0 and 15 were cancelled).
    assert_eq!(page.total, 3);
    let ids: Vec<TaskId> = page.tasks.iter().map(|task| task.id).collect();
    assert_eq!(ids, [created[10], created[5]]);

    let too_many = ListTasksRequest { limit: 1001, ..ListTasksRequest::default() };
    assert_eq!(manager.list_tasks(too_many).await.unwrap_err().code(), ErrorCode::ValidationError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_metrics_count_statuses_success_rate_and_durations() {
    let store = memory();
    let probe = Arc::new(Probe::default());
    let manager = manager(&store, &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, 100, Faults::SOME);
    let mut ids = Vec::new();
    // Three complete; one fails on its skip limit; one is cancelled before it starts, one after;
    // one stays pending.
    for idx in 0..3 {
        let params = LinesParams::new(&input, &format!("ok{idx}"));
        ids.push(manager.create_task(params.request(config(10))).await.unwrap().id);
    }
    let limited = BatchConfig { skip_limit: Some(1), ..config(10) };
    ids.push(manager.create_task(LinesParams::new(&input, "limited").request(limited)).await.unwrap().id);
    for id in &ids {
        manager.process_task(id).await.unwrap();
    }
    for id in &ids {
        manager.wait(id).await.unwrap();
    }
    let early = manager.create_task(LinesParams::new(&input, "early").request(config(10))).await.unwrap().id;
    manager.stop_task(StopTaskRequest { id: early, reason: None }).await.unwrap();
    let late = manager.create_task(LinesParams::new(&input, "late").request(config(10))).await.unwrap().id;
    manager
        .update_task_status(UpdateTaskStatusRequest { id: late, status: TaskStatus::Processing, error: None })
        .await
        .unwrap();
    manager
        .update_task_status(UpdateTaskStatusRequest { id: late, status: TaskStatus::Cancelled, error: None })
        .await
        .unwrap();
    manager.create_task(LinesParams::new(&input, "idle").request(config(10))).await.unwrap();

    let metrics = manager.metrics().await.unwrap();
    let all = manager
        .list_tasks(ListTasksRequest { limit: 100, ..ListTasksRequest::default() })
        .await
        .unwrap()
        .tasks;
    assert_eq!(metrics, BatchMetrics::from_tasks(&all));
    assert_eq!((metrics.total_tasks, metrics.pending_tasks, metrics.processing_tasks), (7, 1, 0));
    assert_eq!((metrics.completed_tasks, metrics.failed_tasks, metrics.cancelled_tasks), (3, 1, 2));
    assert_eq!(metrics.success_rate, 0.75, "completed / (completed + failed)");
    let durations: Vec<Duration> = all
        .iter()
        .filter(|task| task.status.is_terminal())
        .filter_map(|task| Some((task.completed_at? - task.started_at?).to_std().unwrap()))
        .collect();
    assert_eq!(durations.len(), 5, "the task cancelled before it started has no duration");
    let total: Duration = durations.iter().sum();
    assert_eq!(metrics.total_duration, total);
    assert_eq!(metrics.avg_duration, total / 5);
    let failed = all.iter().find(|task| task.status == TaskStatus::Failed).unwrap();
    let error = failed.error.as_ref().unwrap();
    assert_eq!(
        (error.code, error.message.as_str()),
        (ErrorCode::ProcessingError, "2 records failed, more than the skip limit of 1")
    );
    manager.shutdown().await;
}

/// Two workers, each on its own store handle, share 60 tasks: each runs exactly once. The ids.
async fn two_workers_run_each_task_once(
    first: &Arc<dyn TaskStore>,
    second: &Arc<dyn TaskStore>,
) -> Vec<TaskId> {
    let probe = Arc::new(Probe::default());
    let first = manager(first, &probe, "first");
    let second = manager(second, &probe, "second");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sales.jsonl");
    write_sales(&input, 30, Faults::SOME);
    let mut ids = Vec::new();
    for idx in 0..60 {
        let params = LinesParams::new(&input, &format!("task{idx}"));
        ids.push(first.create_task(params.request(config(7))).await.unwrap().id);
    }
    let workers = [
        tokio::spawn({
            let first = first.clone();
            async move { first.run_worker().await }
        }),
        tokio::spawn({
            let second = second.clone();
            async move { second.run_worker().await }
        }),
    ];
    for id in &ids {
        let task = first.wait(id).await.unwrap();
        assert_eq!(task.status, TaskStatus::Completed);
        assert_eq!(probe.runs(*id), 1, "task {id} ran more than once");
    }
    first.shutdown().await;
    second.shutdown().await;
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    let distinct: HashSet<TaskId> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 60);
    assert_eq!(
        first.process_task(&TaskId::new()).await.unwrap_err().code(),
        ErrorCode::InvalidState,
        "shut down"
    );
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_a_store_run_each_task_exactly_once() {
    let (_db, store) = sqlite_store();
    let store: Arc<dyn TaskStore> = Arc::new(store);
    two_workers_run_each_task_once(&store, &store).await;
}

/// The same on PostgreSQL, two store handles standing for two processes; the audit trail shows
/// each task claimed and completed once, its checkpoints under its one epoch.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_postgres_run_each_task_exactly_once_as_the_audit_trail_shows() {
    use batch_manager::store::postgres::TaskEventKind;
    let test = "workers_on_postgres_run_each_task_exactly_once";
    let Some(mut stores) = crate::fixtures::pg::stores(test, 2).await else { return };
    let (second, first) = (Arc::new(stores.pop().unwrap()), Arc::new(stores.pop().unwrap()));
    let handles: (Arc<dyn TaskStore>, Arc<dyn TaskStore>) = (first.clone(), second.clone());
    let ids = two_workers_run_each_task_once(&handles.0, &handles.1).await;
    for id in &ids {
        let events = first.task_events(id).await.unwrap();
        let kinds: Vec<TaskEventKind> = events.iter().map(|event| event.kind).collect();
        assert_eq!(kinds.first(), Some(&TaskEventKind::Claimed), "{id}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&TaskEventKind::Completed), "{id}: {kinds:?}");
        let count = |kind| kinds.iter().filter(|seen| **seen == kind).count();
        assert_eq!(
            (count(TaskEventKind::Claimed), count(TaskEventKind::Completed)),
            (1, 1),
            "{id}: {kinds:?}"
        );
        let sequences: Vec<u64> = events
            .iter()
            .filter(|event| event.kind == TaskEventKind::Checkpoint)
            .filter_map(|event| event.sequence)
            .collect();
        assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>(), "{id}");
        assert!(events.iter().all(|event| event.epoch == 1 && event.worker == events[0].worker), "{id}");
    }
}

#[tokio::test]
async fn process_and_resume_refuse_tasks_in_the_wrong_status() {
    let probe = Arc::new(Probe::default());
    let manager = manager(&memory(), &probe, "w");
    let dir = tempfile::tempdir().unwrap();
    let params = LinesParams::new(&dir.path().join("in.jsonl"), "t");
    let pending = manager.create_task(params.request(config(10))).await.unwrap().id;
    let error = manager.resume_task(&pending).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidState);
    assert_eq!(
        error.to_string(),
        format!("task {pending} is pending: it has not started; process_task starts it")
    );
    let unknown = manager.process_task(&TaskId::new()).await.unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::NotFound);
    let empty = BatchManager::new(memory(), Registry::new(), ManagerConfig::default()).unwrap();
    assert!(empty.run_worker().await.is_ok(), "a worker without kinds has nothing to do");
}

/// A kind whose run panics.
struct Panicking;

#[async_trait::async_trait]
impl batch_tasks::TaskKind for Panicking {
    fn task_type(&self) -> TaskType {
        TaskType::Custom("test_panic".to_owned())
    }

    fn validate(&self, _params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
        Ok(())
    }

    async fn run(&self, _job: batch_tasks::JobContext) -> Result<batch_tasks::JobOutcome, TaskError> {
        panic!("the kind has a bug")
    }
}

#[tokio::test]
async fn a_panicking_kind_fails_its_task_not_the_manager() {
    let mut registry = Registry::new();
    registry.register(Panicking);
    let manager = BatchManager::new(memory(), registry, ManagerConfig::default()).unwrap();
    let id = manager
        .create_task(CreateTaskRequest::new(TaskType::Custom("test_panic".to_owned())))
        .await
        .unwrap()
        .id;
    manager.process_task(&id).await.unwrap();
    let task = manager.wait(&id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    let error = task.error.unwrap();
    assert_eq!(
        (error.code, error.message.as_str()),
        (ErrorCode::ProcessingError, "the task kind panicked: the kind has a bug")
    );
    assert!(manager.running_tasks().is_empty());
    manager.shutdown().await;
}

#[tokio::test]
async fn a_task_created_without_a_config_gets_its_kinds_default_config() {
    let probe = Arc::new(Probe::default());
    let store = memory();
    let dir = tempfile::tempdir().unwrap();
    let mut request = LinesParams::new(&dir.path().join("in.jsonl"), "t").request(config(7));
    request.config = None;
    // A kind that describes nothing gets the records default: chunks of 1,000, not the model's 10.
    let created = manager(&store, &probe, "w").create_task(request).await.unwrap();
    let task = store.task(&created.id).await.unwrap().unwrap();
    assert_eq!(task.config, batch_tasks::KindSpec::records_default_config());
    assert_eq!(task.config.batch_size, 1000);

    // A built-in kind with its own default (train: mini-batches of 64).
    let builtin =
        BatchManager::new(Arc::clone(&store), batch_tasks::builtin_registry(), ManagerConfig::default())
            .unwrap();
    let train = CreateTaskRequest::new(TaskType::Train)
        .with_params(serde_json::json!({ "input": "a.csv", "label": "y", "model_out": "m.json" }));
    let created = builtin.create_task(train).await.unwrap();
    let task = store.task(&created.id).await.unwrap().unwrap();
    let train_kind = batch_tasks::builtin_registry().get(&TaskType::Train).unwrap();
    assert_eq!(task.config, train_kind.spec().default_config);
    assert_eq!(task.config.batch_size, 64);
}

/// A kind whose runs wait for a permit of a shared gate, counting how many run at once.
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    running: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    started: tokio::sync::watch::Sender<usize>,
}

#[async_trait::async_trait]
impl batch_tasks::TaskKind for Gated {
    fn task_type(&self) -> TaskType {
        TaskType::Custom("test_gated".to_owned())
    }

    fn validate(&self, _params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
        Ok(())
    }

    async fn run(&self, job: batch_tasks::JobContext) -> Result<batch_tasks::JobOutcome, TaskError> {
        use std::sync::atomic::Ordering;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.started.send_modify(|started| *started += 1);
        let permit = self.gate.acquire().await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
        Ok(batch_tasks::JobOutcome::Completed {
            summary: serde_json::Value::Null,
            progress: job.task().progress.clone(),
        })
    }
}

/// The worker keeps several claims in flight, each claiming from the slots free when it starts: all
/// of them together never run more tasks at once than the manager's slots, and each task runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_claims_in_flight_never_run_more_tasks_than_its_slots() {
    for claims in [1, 2, 4] {
        claims_in_flight_stay_within_the_slots(claims).await;
    }
}

/// Twelve gated tasks on three slots, with `claims` claim loops: at most three run at once, each once.
async fn claims_in_flight_stay_within_the_slots(claims: usize) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (started, mut starts) = tokio::sync::watch::channel(0);
    let mut registry = Registry::new();
    registry.register(Gated {
        gate: Arc::clone(&gate),
        running: Arc::default(),
        most: Arc::clone(&most),
        started,
    });
    let manager = BatchManager::new(
        memory(),
        registry,
        ManagerConfig::default()
            .with_worker_id("w")
            .with_max_concurrent_tasks(3)
            .with_claims_in_flight(claims),
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..12 {
        let request = CreateTaskRequest::new(TaskType::Custom("test_gated".to_owned()));
        ids.push(manager.create_task(request).await.unwrap().id);
    }
    let worker = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run_worker().await }
    });
    // Three run and wait at the gate; the claims have had every chance to take more.
    starts.wait_for(|started| *started >= 3).await.unwrap();
    assert_eq!(manager.running_tasks().len(), 3);
    gate.add_permits(12);
    for id in &ids {
        assert_eq!(manager.wait(id).await.unwrap().status, TaskStatus::Completed);
    }
    assert_eq!(*starts.borrow(), 12, "each task ran once ({claims} claims in flight)");
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3, "{claims} claims in flight");
    manager.shutdown().await;
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_manager_refuses_claims_in_flight_outside_1_to_16() {
    let build = |claims| {
        let config = ManagerConfig::default().with_worker_id("w").with_claims_in_flight(claims);
        BatchManager::new(memory(), Registry::new(), config).map(|_| ())
    };
    for claims in [0, 17] {
        let error = build(claims).unwrap_err();
        assert_eq!(error.code(), ErrorCode::ConfigurationError);
        assert_eq!(
            error.to_string(),
            format!("invalid manager configuration: claims_in_flight must be from 1 to 16, got {claims}")
        );
    }
    for claims in [1, 16] {
        build(claims).unwrap();
    }
}
