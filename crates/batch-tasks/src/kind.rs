//! The task-kind contract: what a kind implements, what the manager provides, and the registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use batch_model::{
    AttachedWrite, BatchConfig, BatchTask, Checkpoint, CheckpointCommit, DatabaseIdentity, ErrorCode,
    Progress, TaskError, TaskType,
};
use tokio_util::sync::CancellationToken;

use crate::params::{KindDescription, KindSpec};

/// What the manager provides to a running kind: durable checkpoints, progress, stop requests.
///
/// Implemented by the manager (over its store, leases and heartbeats); tests implement it in memory.
#[async_trait]
pub trait JobControl: Send + Sync + 'static {
    /// Commits `checkpoint` and `progress` durably, in one store transaction. Call it only after the
    /// chunk the checkpoint describes is durably written. Fails with `STORAGE_ERROR` when the store
    /// fails, or `INVALID_STATE` when this worker lost the task's lease (another worker took it over):
    /// the kind must then stop at once without writing more.
    async fn commit(&self, checkpoint: Checkpoint, progress: Progress) -> Result<(), TaskError>;

    /// [`commit`](JobControl::commit) with `writes` run in the same store transaction: the
    /// checkpoint and every write are committed together, or none of them. A stale claim's writes
    /// are refused with its checkpoint (`INVALID_STATE`); a write that fails (a row that does not
    /// fit, no such table) fails this commit alone with a `STORAGE_ERROR` naming its target.
    ///
    /// Only for writes into [`attachable_database`](JobControl::attachable_database). The default
    /// takes none: with `writes` empty it is `commit`, else a `STORAGE_ERROR` and nothing committed.
    async fn commit_with(
        &self,
        checkpoint: Checkpoint,
        progress: Progress,
        writes: Vec<AttachedWrite>,
    ) -> Result<(), TaskError> {
        match writes.first() {
            None => self.commit(checkpoint, progress).await,
            Some(write) => Err(TaskError::new(
                ErrorCode::StorageError,
                format!("{}: this job's store cannot write with its checkpoints", write.target),
            )
            .not_retryable()),
        }
    }

    /// Commits consecutive checkpoints (each `sequence` one more than the one before) in order, each
    /// with its progress and writes as [`commit_with`](JobControl::commit_with) would: the chunks a
    /// run wrote while its previous commit was on its way. A store that can commits them in one
    /// transaction (all or none); the default commits them one by one and stops at the first that
    /// fails. Errors as for `commit_with`.
    async fn commit_all(&self, commits: Vec<CheckpointCommit>) -> Result<(), TaskError> {
        for CheckpointCommit { checkpoint, progress, writes } in commits {
            self.commit_with(checkpoint, progress, writes).await?;
        }
        Ok(())
    }

    /// The database the task's store commits checkpoints in, when
    /// [`commit_with`](JobControl::commit_with) can take writes into it (a PostgreSQL store): a sink
    /// writing into the same database then commits its rows with the checkpoint. `None` (the
    /// default) for every other store.
    async fn attachable_database(&self) -> Option<DatabaseIdentity> {
        None
    }

    /// Publishes live progress between checkpoints (best effort; never fails the task).
    async fn report_progress(&self, progress: Progress);

    /// True once the task should stop at its next chunk boundary (`stop_task`, or a manager shutdown).
    fn stop_requested(&self) -> bool;

    /// Cancelled when in-flight work must be abandoned now (the stop's grace period ran out, or the
    /// lease was lost). Pass it to pipelines (`pump_core` runs) so they abort.
    fn cancellation_token(&self) -> CancellationToken;
}

/// One run (first or resumed) of one task, as handed to its kind.
#[derive(Clone)]
pub struct JobContext {
    task: BatchTask,
    checkpoint: Option<Checkpoint>,
    control: Arc<dyn JobControl>,
    epoch: u64,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("task", &self.task.id)
            .field("checkpoint", &self.checkpoint.as_ref().map(|checkpoint| checkpoint.sequence))
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl JobContext {
    /// A context for `task`, resuming from `checkpoint` when there is one.
    pub fn new(task: BatchTask, checkpoint: Option<Checkpoint>, control: Arc<dyn JobControl>) -> Self {
        JobContext { task, checkpoint, control, epoch: 0 }
    }

    /// The same context for a claim of fencing epoch `epoch` (the store bumps a task's epoch at every
    /// claim and refuses commits under an older one).
    #[must_use]
    pub fn with_epoch(self, epoch: u64) -> Self {
        JobContext { epoch, ..self }
    }

    /// The claim's fencing epoch; 0 for an unfenced claim (the default). Kinds that write files stage
    /// them under names that carry it, so that nothing a stale holder writes reaches the final output
    /// (see [`records`](crate::records)).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The task (id, type, config, params).
    pub fn task(&self) -> &BatchTask {
        &self.task
    }

    /// The task's config.
    pub fn config(&self) -> &BatchConfig {
        &self.task.config
    }

    /// The kind's own params (a JSON object).
    pub fn params(&self) -> &serde_json::Value {
        &self.task.params
    }

    /// The last committed checkpoint: resume from it, or start fresh when `None`.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    /// The manager's side of the job.
    pub fn control(&self) -> &Arc<dyn JobControl> {
        &self.control
    }
}

/// How a run of a kind ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JobOutcome {
    /// The task finished; `summary` is its result (e.g. per-region totals, model accuracy).
    Completed {
        /// The kind's result summary.
        summary: serde_json::Value,
        /// The final progress.
        progress: Progress,
    },
    /// A stop was requested and the kind stopped at a chunk boundary after committing its checkpoint.
    Stopped,
}

/// One completed partition of a partitioned task, as the kind's [`merge`](TaskKind::merge) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionResult {
    /// The partition's task (its params say where its outputs are; `partition` says which it is).
    pub task: BatchTask,
    /// Its result summary.
    pub result: serde_json::Value,
}

/// A task kind: turns a task into a real, resumable pipeline.
///
/// # Partitions
///
/// A kind that can split one task's input into ranges implements [`can_partition`],
/// [`split`](TaskKind::split) and [`merge`](TaskKind::merge): the manager creates the partitions
/// (child tasks of the same kind with the params `split` returns), any worker runs them, and when the
/// last completes the parent's next holder calls `merge` with their results. The merged output,
/// dead letters and summary must equal an unpartitioned run's.
///
/// [`can_partition`]: TaskKind::can_partition
#[async_trait]
pub trait TaskKind: Send + Sync + 'static {
    /// The type this kind runs.
    fn task_type(&self) -> TaskType;

    /// Checks a task's params and config when the task is created, so bad settings fail fast with a
    /// `CONFIGURATION_ERROR` naming the parameter.
    fn validate(&self, params: &serde_json::Value, config: &BatchConfig) -> Result<(), TaskError>;

    /// Runs the task from its checkpoint (or the start) to completion, a stop, or a failure. Bad
    /// records never fail a task: they go to its dead-letter output; a task fails on a source/sink
    /// failure or when failures pass its skip limit.
    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError>;

    /// Whether the kind can split a task into partitions (`partitions` > 1 is refused at creation
    /// otherwise). `false` unless overridden.
    fn can_partition(&self) -> bool {
        false
    }

    /// Splits the task in `job` into at most `partitions` partitions, at record boundaries: the params
    /// of each child task, in order. Called once per parent, by the worker that claims it first.
    async fn split(&self, job: &JobContext, partitions: u32) -> Result<Vec<serde_json::Value>, TaskError> {
        let _ = (job, partitions);
        Err(TaskError::new(
            ErrorCode::ConfigurationError,
            format!("partitions: the {} kind cannot split its input", self.task_type()),
        )
        .not_retryable())
    }

    /// Merges the completed partitions (in partition order) into the parent's outputs and result,
    /// exactly as an unpartitioned run would have written them.
    async fn merge(
        &self,
        job: JobContext,
        partitions: Vec<PartitionResult>,
    ) -> Result<JobOutcome, TaskError> {
        let _ = (job, partitions);
        Err(TaskError::new(
            ErrorCode::ConfigurationError,
            format!("partitions: the {} kind cannot merge partitions", self.task_type()),
        )
        .not_retryable())
    }

    /// What the kind tells its users: a description, its params, the [`BatchConfig`] settings it
    /// honours and the config a task gets when its request carries none. Front ends (the `batch`
    /// command's options, the HTTP API's `GET /api/v1/kinds`, the dashboard's form) are generated
    /// from it, and the manager creates a task without a config with
    /// [`KindSpec::default_config`].
    ///
    /// The default suits a kind on the standard chunk runner: no params described, every setting
    /// honoured but `partitions` ([`ConfigSetting::RECORDS`](crate::ConfigSetting::RECORDS)),
    /// [`KindSpec::records_default_config`]. A kind that ignores a setting must leave it out, so
    /// that front ends refuse it rather than accept it silently; a kind that can partition lists
    /// [`ConfigSetting::Partitions`](crate::ConfigSetting::Partitions).
    fn spec(&self) -> KindSpec {
        KindSpec::default()
    }
}

/// The task kinds a manager can run, by type name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn TaskKind>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `kind` under its type name, replacing any kind registered under it before.
    pub fn register(&mut self, kind: impl TaskKind) -> &mut Self {
        self.kinds.insert(kind.task_type().as_str().to_owned(), Arc::new(kind));
        self
    }

    /// Registers a kind shared with another registry (e.g. one kind of a larger registry).
    pub fn register_shared(&mut self, kind: Arc<dyn TaskKind>) -> &mut Self {
        self.kinds.insert(kind.task_type().as_str().to_owned(), kind);
        self
    }

    /// The kind for `task_type`.
    pub fn get(&self, task_type: &TaskType) -> Option<Arc<dyn TaskKind>> {
        self.kinds.get(task_type.as_str()).cloned()
    }

    /// The registered type names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// The registered kinds, by type name.
    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn TaskKind>> {
        self.kinds.values()
    }

    /// Every registered kind's description ([`TaskKind::spec`]), by type name: what
    /// `GET /api/v1/kinds` serves.
    pub fn descriptions(&self) -> Vec<KindDescription> {
        self.kinds.values().map(|kind| KindDescription::new(kind.task_type(), kind.spec())).collect()
    }
}
