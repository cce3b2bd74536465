//! The [`BatchManager`]: the task lifecycle's API over a [`TaskStore`] and a [`Registry`] of kinds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use batch_model::{
    BatchConfig, BatchMetrics, BatchTask, CreateTaskRequest, CreateTaskResponse, ErrorCode, ListTasksRequest,
    ListTasksResponse, StopTaskRequest, StopTaskResponse, TaskError, TaskId, TaskStatus, TaskStatusResponse,
    TaskType, TransitionCause, UpdateTaskStatusRequest,
};
use batch_tasks::{Registry, TaskKind};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt as _};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::ManagerConfig;
use crate::error::ManagerError;
use crate::run::{RunSettings, Settled, StopReason, TaskControl, run_claimed};
use crate::store::{ClaimedTask, LeaseRequest, StatusUpdate, TaskChange, TaskResultRecord, TaskStore};

/// Most tasks the worker loop claims in one call.
const CLAIM_BATCH: usize = 128;

/// Creates, runs, stops, resumes and reports on tasks. See the [crate docs](crate) for the lifecycle.
///
/// Cheap to clone: clones share the same manager.
#[derive(Clone)]
pub struct BatchManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BatchManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchManager")
            .field("worker_id", &self.inner.config.worker_id)
            .field("kinds", &self.inner.registry)
            .field("running", &self.inner.running().len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn TaskStore>,
    registry: Registry,
    config: ManagerConfig,
    /// One permit per task this manager may run at once; closed at shutdown.
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<TaskId, Running>>,
    shutting_down: AtomicBool,
    /// Cancelled at shutdown: wakes the worker loop.
    shutdown: CancellationToken,
    /// How the runs of this manager ended.
    counts: RunCounters,
}

/// How the runs of a manager ended, since it was made (see [`BatchManager::run_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    /// Runs started here (claims, first runs and resumes).
    pub started: u64,
    /// Runs that ended their task `completed`.
    pub completed: u64,
    /// Runs that ended their task `failed`.
    pub failed: u64,
    /// Runs that ended their task `cancelled`.
    pub cancelled: u64,
    /// Runs that handed their task back at a shutdown.
    pub released: u64,
    /// Partitioned tasks split here (they now wait for their partitions).
    pub parked: u64,
    /// Runs that lost their task to another worker (a stale claim) or could not record its end.
    pub dropped: u64,
}

/// Atomic counters behind [`RunCounts`].
#[derive(Debug, Default)]
struct RunCounters {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    released: AtomicU64,
    parked: AtomicU64,
    dropped: AtomicU64,
}

impl RunCounters {
    fn settled(&self, settled: Settled) {
        let counter = match settled {
            Settled::Finished(TaskStatus::Completed) => &self.completed,
            Settled::Finished(TaskStatus::Failed) => &self.failed,
            Settled::Finished(_) => &self.cancelled,
            Settled::Released => &self.released,
            Settled::Parked => &self.parked,
            Settled::Dropped => &self.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RunCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RunCounts {
            started: read(&self.started),
            completed: read(&self.completed),
            failed: read(&self.failed),
            cancelled: read(&self.cancelled),
            released: read(&self.released),
            parked: read(&self.parked),
            dropped: read(&self.dropped),
        }
    }
}

/// A task this manager runs now.
struct Running {
    control: Arc<TaskControl>,
    /// Becomes `true` when the run has recorded its end.
    finished: watch::Receiver<bool>,
}

/// Held by a run's task: when the run ends — or its task panics or is dropped with the runtime — the
/// task leaves the running map, its slot is freed and its waiters are woken.
struct RunGuard {
    inner: Arc<Inner>,
    id: TaskId,
    finished: watch::Sender<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.inner.running().remove(&self.id);
        let _ = self.finished.send(true);
    }
}

impl Inner {
    fn running(&self) -> MutexGuard<'_, HashMap<TaskId, Running>> {
        // Inserts and removes only: a poisoned lock still guards a consistent map.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Which start a claim is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A pending task's first run.
    Fresh,
    /// A processing task whose worker died or released it.
    Resume,
}

impl BatchManager {
    /// A manager over `store`, running the kinds in `registry`, configured by `config`
    /// (`CONFIGURATION_ERROR` if a setting is out of bounds).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use batch_manager::store::memory::MemoryStore;
    /// use batch_manager::{BatchManager, ManagerConfig};
    /// use batch_model::{BatchMetrics, ListTasksRequest};
    /// use batch_tasks::Registry;
    ///
    /// let manager = BatchManager::new(Arc::new(MemoryStore::new()), Registry::new(), ManagerConfig::default())?;
    /// assert_eq!(manager.metrics().await?, BatchMetrics::default());
    /// assert_eq!(manager.list_tasks(ListTasksRequest::default()).await?.total, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        store: Arc<dyn TaskStore>,
        registry: Registry,
        config: ManagerConfig,
    ) -> Result<BatchManager, ManagerError> {
        config.validate()?;
        let slots = Arc::new(Semaphore::new(config.max_concurrent_tasks));
        Ok(BatchManager {
            inner: Arc::new(Inner {
                store,
                registry,
                config,
                slots,
                running: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                shutdown: CancellationToken::new(),
                counts: RunCounters::default(),
            }),
        })
    }

    /// The manager's settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The task kinds the manager runs.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The store the manager works on.
    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.inner.store
    }

    /// Creates a `pending` task. The request is validated (`CONFIGURATION_ERROR` naming the setting
    /// for a bad config, `VALIDATION_ERROR` for a bad type name, params or metadata), then its kind
    /// must be registered (`VALIDATION_ERROR`) and accept the params and config (the kind's error,
    /// usually `CONFIGURATION_ERROR` naming the parameter). A request without a config gets its
    /// kind's default config ([`KindSpec::default_config`](batch_tasks::KindSpec::default_config)).
    pub async fn create_task(&self, request: CreateTaskRequest) -> Result<CreateTaskResponse, ManagerError> {
        let task = self.new_task(request, Utc::now())?;
        self.inner.store.insert_task(&task).await?;
        tracing::info!(task_id = %task.id, task_type = %task.task_type, "task created");
        Ok(CreateTaskResponse::from(&task))
    }

    /// Creates many `pending` tasks at once, each validated as by [`create_task`]; nothing is stored
    /// unless every request is valid (the first invalid one's error). The store inserts them in one
    /// go where it can ([`TaskStore::insert_tasks`]: one transaction on SQLite and PostgreSQL). If the
    /// store refuses some, the first refusal is returned; the others stay stored.
    ///
    /// [`create_task`]: BatchManager::create_task
    pub async fn create_tasks(
        &self,
        requests: Vec<CreateTaskRequest>,
    ) -> Result<Vec<CreateTaskResponse>, ManagerError> {
        let now = Utc::now();
        let tasks =
            requests.into_iter().map(|request| self.new_task(request, now)).collect::<Result<Vec<_>, _>>()?;
        let outcomes = self.inner.store.insert_tasks(&tasks).await;
        let stored = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        tracing::info!(tasks = stored, "tasks created");
        for outcome in outcomes {
            outcome?;
        }
        Ok(tasks.iter().map(CreateTaskResponse::from).collect())
    }

    /// A new pending task from a validated request: the kind's default config when the request has
    /// none, partitions only for kinds that can split their input, params checked by the kind.
    fn new_task(&self, request: CreateTaskRequest, now: DateTime<Utc>) -> Result<BatchTask, ManagerError> {
        request.validate()?;
        let kind = self.kind(&request.task_type)?;
        // A request without a config gets the kind's default (`TaskKind::spec`), not the model's.
        let request = match request.config {
            Some(_) => request,
            None => request.with_config(kind.spec().default_config),
        };
        let config = request.config_or_default();
        if config.partitions > 1 && !kind.can_partition() {
            let error = TaskError::new(
                ErrorCode::ConfigurationError,
                format!(
                    "partitions: the {} kind cannot split its input, so partitions must be 1, got {}",
                    request.task_type, config.partitions
                ),
            )
            .not_retryable();
            return Err(ManagerError::InvalidParams { task_type: request.task_type, error });
        }
        if let Err(error) = kind.validate(&request.params, &config) {
            return Err(ManagerError::InvalidParams { task_type: request.task_type, error });
        }
        Ok(BatchTask::new(TaskId::new(), request, now)?)
    }

    /// Creates a `train` task from typed `params` (serialized to the task's JSON params).
    pub async fn create_train_task<P: Serialize>(
        &self,
        params: &P,
        config: Option<BatchConfig>,
    ) -> Result<CreateTaskResponse, ManagerError> {
        self.create_typed(TaskType::Train, params, config).await
    }

    /// Creates a `youzan_order` task from typed `params`.
    pub async fn create_youzan_order_task<P: Serialize>(
        &self,
        params: &P,
        config: Option<BatchConfig>,
    ) -> Result<CreateTaskResponse, ManagerError> {
        self.create_typed(TaskType::YouzanOrder, params, config).await
    }

    /// Creates a `batch_process` task from typed `params`.
    pub async fn create_batch_process_task<P: Serialize>(
        &self,
        params: &P,
        config: Option<BatchConfig>,
    ) -> Result<CreateTaskResponse, ManagerError> {
        self.create_typed(TaskType::BatchProcess, params, config).await
    }

    async fn create_typed<P: Serialize>(
        &self,
        task_type: TaskType,
        params: &P,
        config: Option<BatchConfig>,
    ) -> Result<CreateTaskResponse, ManagerError> {
        let params = match serde_json::to_value(params) {
            Ok(params) => params,
            Err(source) => return Err(ManagerError::Params { task_type, source }),
        };
        let mut request = CreateTaskRequest::new(task_type).with_params(params);
        request.config = config;
        self.create_task(request).await
    }

    /// Starts a `pending` task: claims it under this manager's lease and runs its kind in the
    /// background. Returns the task, now `processing`, once it is claimed; waits first for a free slot
    /// when `max_concurrent_tasks` tasks run already.
    ///
    /// `NOT_FOUND` for an unknown task; `INVALID_STATE` for a task that is not pending (use
    /// [`resume_task`](BatchManager::resume_task) for one whose worker died) or while shutting down;
    /// `VALIDATION_ERROR` if no kind is registered for its type.
    pub async fn process_task(&self, id: &TaskId) -> Result<BatchTask, ManagerError> {
        self.start(id, Start::Fresh).await
    }

    /// Takes over a `processing` task whose worker is gone — its lease expired (the process died) or it
    /// was released (its manager shut down) — and runs it from its last checkpoint. Returns the task
    /// once it is claimed.
    ///
    /// `INVALID_STATE` while another worker's lease is live, for a pending task (use
    /// [`process_task`](BatchManager::process_task)), or for a finished one.
    pub async fn resume_task(&self, id: &TaskId) -> Result<BatchTask, ManagerError> {
        self.start(id, Start::Resume).await
    }

    async fn start(&self, id: &TaskId, start: Start) -> Result<BatchTask, ManagerError> {
        self.check_accepting()?;
        let task = self.get_task(id).await?;
        let not_runnable = |reason: &str| ManagerError::NotRunnable {
            id: *id,
            status: task.status,
            reason: reason.to_owned(),
        };
        match (start, task.status) {
            (Start::Fresh, TaskStatus::Pending) | (Start::Resume, TaskStatus::Processing) => {}
            (Start::Fresh, TaskStatus::Processing) => {
                return Err(not_runnable(
                    "it has started already; resume_task takes it over once its worker is gone",
                ));
            }
            (Start::Resume, TaskStatus::Pending) => {
                return Err(not_runnable("it has not started; process_task starts it"));
            }
            (_, _) => return Err(not_runnable("it has finished")),
        }
        let kind = self.kind(&task.task_type)?;
        let permit = self.slot().await?;
        self.check_accepting()?;
        let lease = self.lease_request();
        let claimed_at = tokio::time::Instant::now();
        let Some(claimed) = self.inner.store.claim_task(id, &lease).await? else {
            let now = self.get_task(id).await?;
            let reason = match now.status {
                TaskStatus::Processing => "another worker holds its lease, which has not expired",
                TaskStatus::Pending => "it could not be claimed",
                _ => "it has finished",
            };
            return Err(ManagerError::NotRunnable { id: *id, status: now.status, reason: reason.to_owned() });
        };
        let task = claimed.task.clone();
        self.spawn_run(claimed, kind, permit, claimed_at);
        Ok(task)
    }

    /// Waits for a slot to run a task in; `ShuttingDown` once the manager shuts down.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ManagerError> {
        Arc::clone(&self.inner.slots).acquire_owned().await.map_err(|_closed| ManagerError::ShuttingDown)
    }

    fn check_accepting(&self) -> Result<(), ManagerError> {
        if self.inner.is_shutting_down() { Err(ManagerError::ShuttingDown) } else { Ok(()) }
    }

    fn kind(&self, task_type: &TaskType) -> Result<Arc<dyn TaskKind>, ManagerError> {
        self.inner
            .registry
            .get(task_type)
            .ok_or_else(|| ManagerError::UnknownTaskType { task_type: task_type.clone() })
    }

    fn lease_request(&self) -> LeaseRequest {
        LeaseRequest {
            worker: self.inner.config.worker_id.clone(),
            ttl: self.inner.config.lease_ttl,
            max_lost_leases: self.inner.config.max_lost_leases,
        }
    }

    /// Runs a claimed task in the background, holding `permit` until its end is recorded.
    fn spawn_run(
        &self,
        claimed: ClaimedTask,
        kind: Arc<dyn TaskKind>,
        permit: OwnedSemaphorePermit,
        claimed_at: tokio::time::Instant,
    ) {
        let config = &self.inner.config;
        let id = claimed.task.id;
        let control = Arc::new(TaskControl::new(
            Arc::clone(&self.inner.store),
            id,
            claimed.lease.holder(),
            config.stop_grace_period,
        ));
        let (finished_sender, finished) = watch::channel(false);
        self.inner.running().insert(id, Running { control: Arc::clone(&control), finished });
        // Checked after the insert: a shutdown that began meanwhile either sees this task in the map or
        // is seen here.
        if self.inner.is_shutting_down() {
            control.request_stop(StopReason::Shutdown);
        }
        let span = tracing::info_span!(
            "task",
            task_id = %id,
            task_type = %claimed.task.task_type,
            worker = %config.worker_id,
            epoch = claimed.lease.epoch,
        );
        let settings =
            RunSettings { lease_ttl: config.lease_ttl, heartbeat_interval: config.heartbeat_interval };
        let guard =
            RunGuard { inner: Arc::clone(&self.inner), id, finished: finished_sender, _permit: permit };
        let store = Arc::clone(&self.inner.store);
        self.inner.counts.started.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::clone(&self.inner);
        // Boxed where it is made: a run's future is several kilobytes, which spawning it by value
        // copied again into the task (3% of a worker's instructions in m3's flow, by callgrind).
        tokio::spawn(Box::pin(
            async move {
                let settled = run_claimed(store, claimed, kind, control, settings, claimed_at).await;
                inner.counts.settled(settled);
                drop(guard);
            }
            .instrument(span),
        ));
    }

    /// The task; `NOT_FOUND` if there is none.
    pub async fn get_task(&self, id: &TaskId) -> Result<BatchTask, ManagerError> {
        self.inner.store.task(id).await?.ok_or(ManagerError::NotFound { id: *id })
    }

    /// The task's status, progress and error.
    pub async fn get_task_status(&self, id: &TaskId) -> Result<TaskStatusResponse, ManagerError> {
        Ok(TaskStatusResponse::from(&self.get_task(id).await?))
    }

    /// A finished task's result summary and metrics (`None` before it finishes).
    pub async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, ManagerError> {
        Ok(self.inner.store.task_result(id).await?)
    }

    /// Changes a task's status by hand, as the state machine allows for a requested change
    /// (`INVALID_STATE` otherwise, the task unchanged); an error may come only with `failed` or
    /// `cancelled` (`VALIDATION_ERROR`). If this manager runs the task and it leaves `processing`, its
    /// run is aborted without recording anything more.
    pub async fn update_task_status(
        &self,
        request: UpdateTaskStatusRequest,
    ) -> Result<BatchTask, ManagerError> {
        request.validate()?;
        let task = self.get_task(&request.id).await?;
        task.status.transition_to(request.status, TransitionCause::Requested)?;
        let update = StatusUpdate {
            id: request.id,
            from: task.status,
            to: request.status,
            cause: TransitionCause::Requested,
            error: request.error,
        };
        let updated = self.inner.store.update_status(&update).await?;
        if updated.status != TaskStatus::Processing
            && let Some(running) = self.inner.running().get(&request.id)
        {
            running.control.lose_lease();
        }
        Ok(updated)
    }

    /// A page of tasks matching the request's status and type filters, newest first, with the number
    /// of matching tasks (`VALIDATION_ERROR` for a bad limit or type name).
    pub async fn list_tasks(&self, request: ListTasksRequest) -> Result<ListTasksResponse, ManagerError> {
        request.validate()?;
        let page = self.inner.store.list_tasks(&request).await?;
        Ok(ListTasksResponse {
            tasks: page.tasks,
            total: page.total,
            limit: request.limit,
            offset: request.offset,
        })
    }

    /// Stops a task. A pending task is cancelled at once. A running task — here or in another process,
    /// whose heartbeat picks the request up — stops at its next chunk boundary and ends `cancelled`
    /// with its last checkpoint kept; if it has not stopped after the grace period, its in-flight work
    /// is aborted. Returns the status when the stop was accepted; `INVALID_STATE` for a finished task.
    pub async fn stop_task(&self, request: StopTaskRequest) -> Result<StopTaskResponse, ManagerError> {
        let task = self.inner.store.request_stop(&request.id).await?;
        if let Some(running) = self.inner.running().get(&request.id) {
            running.control.request_stop(StopReason::Requested { reason: request.reason });
        }
        tracing::info!(task_id = %request.id, status = %task.status, "stop requested");
        Ok(StopTaskResponse { id: request.id, status: task.status })
    }

    /// Continues a `failed` or `cancelled` task from its last checkpoint: the task becomes `pending`
    /// as a new attempt (its earlier attempts kept in [`BatchTask::attempts`]) and is returned; run it
    /// with [`process_task`](BatchManager::process_task) or let any worker claim it. Its output ends
    /// byte-identical to an uninterrupted run's. A partitioned task restarts its failed and cancelled
    /// partitions.
    ///
    /// `NOT_FOUND` for an unknown task; `INVALID_STATE` for a pending, processing or completed task,
    /// or a partitioned one with a partition still stopping.
    pub async fn restart_task(&self, id: &TaskId) -> Result<BatchTask, ManagerError> {
        let task = self.get_task(id).await?;
        if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
            let reason = match task.status {
                TaskStatus::Completed => "a completed task is final",
                TaskStatus::Processing => "it is running; resume_task takes it over once its worker is gone",
                _ => "it has not run yet; process_task starts it",
            };
            return Err(ManagerError::NotRunnable {
                id: *id,
                status: task.status,
                reason: reason.to_owned(),
            });
        }
        let restarted = self.inner.store.restart_task(id).await?;
        tracing::info!(task_id = %id, attempt = restarted.attempt, "task restarted");
        Ok(restarted)
    }

    /// Aborts the in-flight work of a task this manager runs now, rather than when its stop's grace
    /// period runs out (a second Ctrl-C while a stop is under way). The task is asked to stop first if
    /// it was not, so it ends `cancelled` with its last checkpoint kept, as a stop whose grace period
    /// ran out: nothing more is recorded. Returns false when no run of the task is here.
    pub async fn abort_task(&self, id: &TaskId, reason: Option<String>) -> bool {
        match self.inner.running().get(id) {
            Some(running) => {
                running.control.abort_now(StopReason::Requested { reason });
                true
            }
            None => false,
        }
    }

    /// Cuts a [`shutdown`](BatchManager::shutdown) short: aborts the in-flight work of every task this
    /// manager runs now instead of letting it reach its next chunk boundary. The tasks are handed back
    /// from their last checkpoints as the shutdown would (a task asked to stop still ends
    /// `cancelled`); only the work since those checkpoints is done again by the next holder.
    pub fn abort_running(&self) {
        let running: Vec<Arc<TaskControl>> =
            self.inner.running().values().map(|running| Arc::clone(&running.control)).collect();
        for control in running {
            control.abort_now(StopReason::Shutdown);
        }
    }

    /// Waits until the task is finished (`completed`, `failed` or `cancelled`) and returns it. A task
    /// this manager runs is awaited directly; one running elsewhere is followed through the store's
    /// change feed, and looked at every `poll_interval` in case a change was missed. A task nobody
    /// runs (released at a shutdown, say) is waited for until someone resumes and finishes it: bound
    /// the wait with a timeout if that may happen.
    ///
    /// Cancel safe.
    pub async fn wait(&self, id: &TaskId) -> Result<BatchTask, ManagerError> {
        let mut changes = self.inner.store.subscribe();
        loop {
            let finished = self.inner.running().get(id).map(|running| running.finished.clone());
            let task = self.get_task(id).await?;
            if task.status.is_terminal() {
                return Ok(task);
            }
            match finished {
                Some(mut finished) => {
                    // An error means the run is gone, which is as good as finished.
                    let _ = finished.wait_for(|finished| *finished).await;
                    // A run that ends by releasing its task (shutdown) leaves it processing.
                    let task = self.get_task(id).await?;
                    if task.status.is_terminal() {
                        return Ok(task);
                    }
                    self.changed(&mut changes, Some(id)).await;
                }
                None => self.changed(&mut changes, Some(id)).await,
            }
        }
    }

    /// Waits for a change on the feed that concerns `id` (any task when `None`: one that became
    /// claimable), a resync, or `poll_interval`, whichever comes first.
    async fn changed(&self, changes: &mut crate::store::TaskChanges, id: Option<&TaskId>) {
        self.changed_or_polled(changes, id, true).await;
    }

    /// [`changed`](BatchManager::changed), without the `poll_interval` unless `polls`.
    async fn changed_or_polled(
        &self,
        changes: &mut crate::store::TaskChanges,
        id: Option<&TaskId>,
        polls: bool,
    ) {
        let poll = tokio::time::sleep(self.inner.config.poll_interval);
        let mut poll = std::pin::pin!(poll);
        loop {
            tokio::select! {
                () = &mut poll, if polls => return,
                () = self.inner.shutdown.cancelled(), if id.is_none() => return,
                change = changes.recv() => match change {
                    Ok(TaskChange::Task { id: changed, claimable, .. }) => {
                        let relevant = match id {
                            Some(id) => *id == changed,
                            None => claimable,
                        };
                        if relevant {
                            return;
                        }
                    }
                    // A resync, a lag (changes were missed), or the feed is gone: look now.
                    Ok(_) | Err(_) => return,
                },
            }
        }
    }

    /// Counts by status, success rate and durations across every task in the store.
    pub async fn metrics(&self) -> Result<BatchMetrics, ManagerError> {
        Ok(self.inner.store.metrics().await?)
    }

    /// Runs the partitions of the partitioned task `parent` here, and its merge once they are all
    /// done, until the parent ends (returned) or this manager shuts down: what a single process (the
    /// `batch run` command) does for a partitioned task after starting it with
    /// [`process_task`](BatchManager::process_task). Partitions and the merge go through the same
    /// claims as in a worker loop, so other workers may run some of them meanwhile; tasks of other
    /// families are left alone. Uses this manager's slots (`max_concurrent_tasks` at once).
    pub async fn run_partitions(&self, parent: &TaskId) -> Result<BatchTask, ManagerError> {
        let mut changes = self.inner.store.subscribe();
        let mut starts = tokio::task::JoinSet::new();
        loop {
            let task = self.get_task(parent).await?;
            if task.status.is_terminal() || self.inner.is_shutting_down() {
                starts.shutdown().await;
                return Ok(task);
            }
            let listing = ListTasksRequest {
                parent_id: Some(*parent),
                status: Some(TaskStatus::Pending),
                limit: ListTasksRequest::LIMIT_MAX,
                ..ListTasksRequest::default()
            };
            for child in self.list_tasks(listing).await?.tasks {
                if self.inner.running().contains_key(&child.id) {
                    continue;
                }
                let manager = self.clone();
                // A partition another worker claimed first is refused here: that is fine.
                starts.spawn(async move { manager.process_task(&child.id).await.map(drop) });
            }
            if task.status == TaskStatus::Processing && !self.inner.running().contains_key(parent) {
                // Claimable only once every partition completed (or after its holder died): the merge.
                let manager = self.clone();
                let id = *parent;
                starts.spawn(async move { manager.resume_task(&id).await.map(drop) });
            }
            tokio::select! {
                () = self.changed(&mut changes, Some(parent)) => {}
                Some(_) = starts.join_next(), if !starts.is_empty() => {}
            }
        }
    }

    /// How the runs of this manager ended so far (a worker's status line shows them).
    pub fn run_counts(&self) -> RunCounts {
        self.inner.counts.snapshot()
    }

    /// The ids of the tasks this manager runs now.
    pub fn running_tasks(&self) -> Vec<TaskId> {
        self.inner.running().keys().copied().collect()
    }

    /// Claims and runs tasks of the registered kinds, oldest first, as slots free up, until
    /// [`shutdown`](BatchManager::shutdown). Several managers (in several processes) can run workers
    /// on one store: each task is claimed by one of them, and a task whose worker died is claimed again
    /// once its lease expires. Storage errors are logged and retried after `poll_interval`.
    pub async fn run_worker(&self) -> Result<(), ManagerError> {
        let task_types: Vec<TaskType> =
            self.inner.registry.names().filter_map(|name| name.parse().ok()).collect();
        if task_types.is_empty() {
            tracing::warn!("no task kinds registered: the worker has nothing to run");
            return Ok(());
        }
        // The claim loops end together (on shutdown); dropping this future aborts them.
        let task_types: Arc<[TaskType]> = task_types.into();
        let mut loops = tokio::task::JoinSet::new();
        // `claims_in_flight` loops: while one claim's transaction writes and commits, the next is
        // already locking rows. Each claims from the slots free when it starts, so together they never
        // take more tasks than there are slots. When a claim finds nothing, its loop waits for a change
        // that makes a task claimable; only the first loop also looks again every `poll_interval`
        // (leases run out without a change), so an idle worker polls no more often than with one.
        for idx in 0..self.inner.config.claims_in_flight {
            let manager = self.clone();
            let task_types = Arc::clone(&task_types);
            loops.spawn(async move { manager.claim_loop(&task_types, idx == 0).await });
        }
        while let Some(ended) = loops.join_next().await {
            if let Err(error) = ended
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        Ok(())
    }

    /// One of the worker's claim loops: claims as many tasks as slots are free (up to a batch) and
    /// starts them, until shutdown. When a claim finds nothing, it waits for a change, and for at
    /// most `poll_interval` if `polls`.
    async fn claim_loop(&self, task_types: &[TaskType], polls: bool) {
        let mut changes = self.inner.store.subscribe();
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.inner.slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => return,
                },
                () = self.inner.shutdown.cancelled() => return,
            };
            if self.inner.is_shutting_down() {
                return;
            }
            // Every free slot at once (up to a batch): one claim call instead of one per slot.
            let mut permits = vec![permit];
            while permits.len() < CLAIM_BATCH {
                match Arc::clone(&self.inner.slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            let claimed_at = tokio::time::Instant::now();
            match self.inner.store.claim_many(task_types, &self.lease_request(), permits.len()).await {
                Ok(claimed) if !claimed.is_empty() => {
                    for claimed in claimed {
                        // A task of a kind not registered here (the claim filters by type), or one
                        // beyond the slots asked for (a store that returned more): handed back at
                        // once, not left claimed until its lease runs out.
                        let runnable = permits.pop().and_then(|permit| {
                            self.inner.registry.get(&claimed.task.task_type).map(|kind| (kind, permit))
                        });
                        match runnable {
                            Some((kind, permit)) => self.spawn_run(claimed, kind, permit, claimed_at),
                            None => {
                                let holder = claimed.lease.holder();
                                if let Err(error) =
                                    self.inner.store.release_task(&claimed.task.id, &holder).await
                                {
                                    tracing::warn!(task_id = %claimed.task.id, %error, "cannot hand back a task the worker cannot run");
                                }
                            }
                        }
                    }
                }
                Ok(_) => {
                    drop(permits);
                    self.changed_or_polled(&mut changes, None, polls).await;
                }
                Err(error) => {
                    drop(permits);
                    tracing::warn!(%error, "worker cannot claim tasks");
                    self.idle(self.inner.config.poll_interval).await;
                }
            }
        }
    }

    async fn idle(&self, period: std::time::Duration) {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = self.inner.shutdown.cancelled() => {}
        }
    }

    /// Stops taking work (`process_task`, `resume_task` and the worker loop refuse or return), asks
    /// every running task to stop at its next chunk boundary (aborting in-flight work after the grace
    /// period), and returns once each has released its task: the tasks stay `processing` with their
    /// last checkpoints, claimable at once by any manager's `resume_task` or worker.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        self.inner.slots.close();
        loop {
            let running: Vec<(Arc<TaskControl>, watch::Receiver<bool>)> = self
                .inner
                .running()
                .values()
                .map(|running| (Arc::clone(&running.control), running.finished.clone()))
                .collect();
            if running.is_empty() {
                break;
            }
            for (control, _) in &running {
                control.request_stop(StopReason::Shutdown);
            }
            for (_, mut finished) in running {
                let _ = finished.wait_for(|finished| *finished).await;
            }
        }
        tracing::info!(worker = %self.inner.config.worker_id, "manager shut down");
    }
}
