//! The task kind the manager tests run (`test_lines`, a chunk-runner kind over generated sales), its
//! data generator and the expected results, plus helpers to build managers and poll the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use batch_manager::store::TaskStore;
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{BatchConfig, Checkpoint, CreateTaskRequest, ErrorCode, TaskError, TaskId, TaskType};
use batch_tasks::records::{ChunkRunner, Execution, ItemError, Record, RecordJob, RunnerOptions, Summary};
use batch_tasks::{JobContext, JobControl, JobOutcome, Registry, TaskKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The test kind's type name.
pub(crate) const LINES: &str = "test_lines";

pub(crate) fn lines_type() -> TaskType {
    TaskType::Custom(LINES.to_owned())
}

/// The test kind's params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinesParams {
    pub(crate) input: PathBuf,
    pub(crate) output: PathBuf,
    pub(crate) dead_letters: PathBuf,
    /// Run attempts as futures (`true`) or on the blocking pool.
    #[serde(default)]
    pub(crate) asynchronous: bool,
    /// The first attempts at each record that fail with `PROCESSING_ERROR`.
    #[serde(default)]
    pub(crate) fail_first: u32,
    /// The first attempts at each record that hang for an hour (async only).
    #[serde(default)]
    pub(crate) hang_first: u32,
    /// Each attempt waits for a permit of the probe's gate (async only).
    #[serde(default)]
    pub(crate) gated: bool,
}

impl LinesParams {
    /// Params reading `input` and writing `<name>.out.jsonl` and `<name>.dead.jsonl` beside it.
    pub(crate) fn new(input: &Path, name: &str) -> LinesParams {
        let dir = input.parent().unwrap_or(Path::new("."));
        LinesParams {
            input: input.to_owned(),
            output: dir.join(format!("{name}.out.jsonl")),
            dead_letters: dir.join(format!("{name}.dead.jsonl")),
            asynchronous: false,
            fail_first: 0,
            hang_first: 0,
            gated: false,
        }
    }

    pub(crate) fn request(&self, config: BatchConfig) -> CreateTaskRequest {
        CreateTaskRequest::new(lines_type())
            .with_config(config)
            .with_params(serde_json::to_value(self).unwrap())
    }
}

/// What the tests observe of the kind's work.
#[derive(Debug)]
pub(crate) struct Probe {
    /// Attempts per (task, line).
    attempts: Mutex<HashMap<(TaskId, u64), u32>>,
    /// The time of every async attempt, per (task, line).
    attempt_times: Mutex<HashMap<(TaskId, u64), Vec<tokio::time::Instant>>>,
    /// Runs of each task (first and resumed).
    runs: Mutex<HashMap<TaskId, u32>>,
    /// All attempts.
    pub(crate) calls: AtomicU64,
    /// Permits for gated attempts.
    pub(crate) gate: Semaphore,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe {
            attempts: Mutex::default(),
            attempt_times: Mutex::default(),
            runs: Mutex::default(),
            calls: AtomicU64::new(0),
            gate: Semaphore::new(0),
        }
    }
}

impl Probe {
    pub(crate) fn attempts(&self, task: TaskId, line: u64) -> u32 {
        self.attempts.lock().unwrap().get(&(task, line)).copied().unwrap_or(0)
    }

    pub(crate) fn attempt_times(&self, task: TaskId, line: u64) -> Vec<tokio::time::Instant> {
        self.attempt_times.lock().unwrap().get(&(task, line)).cloned().unwrap_or_default()
    }

    pub(crate) fn runs(&self, task: TaskId) -> u32 {
        self.runs.lock().unwrap().get(&task).copied().unwrap_or(0)
    }

    /// Lets `n` more gated attempts through.
    pub(crate) fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }

    fn count_attempt(&self, task: TaskId, line: u64) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut attempts = self.attempts.lock().unwrap();
        let count = attempts.entry((task, line)).or_default();
        *count += 1;
        *count
    }
}

/// The `test_lines` kind: doubles the `amount` of each sale (see [`expected_output`]).
pub(crate) struct LinesKind {
    pub(crate) task_type: TaskType,
    pub(crate) probe: Arc<Probe>,
    pub(crate) options: RunnerOptions,
    /// Fault injection for the crash tests: hold the run before this commit.
    pub(crate) hold: Option<Hold>,
}

/// Holds a run forever just before it commits checkpoint `sequence` (its chunk written and flushed),
/// after creating the file `marker`: a parent process waiting for the marker can kill the run in the
/// window between a chunk's write and its checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hold {
    pub(crate) sequence: u64,
    pub(crate) marker: PathBuf,
}

/// The manager's job control, with [`Hold`] applied.
struct HoldingControl {
    inner: Arc<dyn JobControl>,
    hold: Hold,
}

#[async_trait]
impl JobControl for HoldingControl {
    async fn commit(&self, checkpoint: Checkpoint, progress: batch_model::Progress) -> Result<(), TaskError> {
        if checkpoint.sequence == self.hold.sequence {
            std::fs::write(&self.hold.marker, checkpoint.sequence.to_string()).unwrap();
            std::future::pending::<()>().await;
        }
        self.inner.commit(checkpoint, progress).await
    }

    async fn report_progress(&self, progress: batch_model::Progress) {
        self.inner.report_progress(progress).await;
    }

    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }

    fn cancellation_token(&self) -> tokio_util::sync::CancellationToken {
        self.inner.cancellation_token()
    }
}

impl LinesKind {
    /// Exact backoffs (no jitter), and chunks cut by size only (a partly filled chunk waits an hour),
    /// so that the tests know where every chunk ends.
    pub(crate) fn new(probe: Arc<Probe>) -> LinesKind {
        let options =
            RunnerOptions::default().with_jitter(0.0).with_chunk_max_wait(Duration::from_secs(3600));
        LinesKind { task_type: lines_type(), probe, options, hold: None }
    }
}

#[async_trait]
impl TaskKind for LinesKind {
    fn task_type(&self) -> TaskType {
        self.task_type.clone()
    }

    fn validate(&self, params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
        match serde_json::from_value::<LinesParams>(params.clone()) {
            Ok(_) => Ok(()),
            Err(error) => {
                Err(TaskError::new(ErrorCode::ConfigurationError, format!("invalid params: {error}"))
                    .with_details(serde_json::json!({ "field": "params" })))
            }
        }
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        let params: LinesParams = serde_json::from_value(job.params().clone())
            .map_err(|error| TaskError::new(ErrorCode::ConfigurationError, error.to_string()))?;
        *self.probe.runs.lock().unwrap().entry(job.task().id).or_default() += 1;
        let lines = Lines { task: job.task().id, params, probe: Arc::clone(&self.probe) };
        let job = match &self.hold {
            Some(hold) => {
                let control = HoldingControl { inner: Arc::clone(job.control()), hold: hold.clone() };
                JobContext::new(job.task().clone(), job.checkpoint().cloned(), Arc::new(control))
                    .with_epoch(job.epoch())
            }
            None => job,
        };
        ChunkRunner::new(self.options.clone()).run(Arc::new(lines), &job).await
    }
}

#[derive(Debug, Deserialize)]
struct Sale {
    id: u64,
    amount: i64,
    region: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Doubled {
    id: u64,
    doubled: i64,
    region: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Totals {
    count: u64,
    sum: i64,
}

impl Summary<Doubled> for Totals {
    fn add(&mut self, output: &Doubled) {
        self.count += 1;
        self.sum += output.doubled;
    }
}

struct Lines {
    task: TaskId,
    params: LinesParams,
    probe: Arc<Probe>,
}

fn double(record: &Record<String>) -> Result<Option<Doubled>, ItemError> {
    let sale: Sale =
        serde_json::from_str(&record.value).map_err(|error| ItemError::validation(error.to_string()))?;
    match sale.amount {
        0 => Ok(None),
        amount if amount < 0 => {
            Err(ItemError::validation("amount must not be negative").with_field("amount"))
        }
        amount => Ok(Some(Doubled { id: sale.id, doubled: amount * 2, region: sale.region })),
    }
}

#[async_trait]
impl RecordJob for Lines {
    type Output = Doubled;
    type Summary = Totals;

    fn input(&self) -> &Path {
        &self.params.input
    }

    fn output(&self) -> &Path {
        &self.params.output
    }

    fn dead_letters(&self) -> &Path {
        &self.params.dead_letters
    }

    fn process(&self, record: &Record<String>) -> Result<Option<Doubled>, ItemError> {
        let attempt = self.probe.count_attempt(self.task, record.line);
        if attempt <= self.params.fail_first {
            return Err(ItemError::processing(format!("flaky failure {attempt} at line {}", record.line)));
        }
        double(record)
    }

    fn execution(&self) -> Execution {
        if self.params.asynchronous { Execution::Async } else { Execution::Blocking }
    }

    async fn attempt(&self, record: &Record<String>) -> Result<Option<Doubled>, ItemError> {
        if self.params.gated {
            match self.probe.gate.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_closed) => return Err(ItemError::processing("gate closed")),
            }
        }
        let now = tokio::time::Instant::now();
        self.probe.attempt_times.lock().unwrap().entry((self.task, record.line)).or_default().push(now);
        let attempt = self.probe.count_attempt(self.task, record.line);
        if attempt <= self.params.hang_first {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if attempt <= self.params.fail_first {
            return Err(ItemError::processing(format!("flaky failure {attempt} at line {}", record.line)));
        }
        double(record)
    }
}

/// Which generated sales are bad: every `zero_every`-th has a zero amount (skipped), every
/// `negative_every`-th a negative one (rejected), every `malformed_every`-th is cut short (rejected).
/// 0 turns a fault off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Faults {
    pub(crate) zero_every: u64,
    pub(crate) negative_every: u64,
    pub(crate) malformed_every: u64,
}

impl Faults {
    pub(crate) const NONE: Faults = Faults { zero_every: 0, negative_every: 0, malformed_every: 0 };
    pub(crate) const SOME: Faults = Faults { zero_every: 10, negative_every: 17, malformed_every: 23 };

    fn hits(every: u64, id: u64) -> bool {
        every != 0 && id.is_multiple_of(every)
    }

    fn is_malformed(&self, id: u64) -> bool {
        Faults::hits(self.malformed_every, id)
    }

    fn is_negative(&self, id: u64) -> bool {
        !self.is_malformed(id) && Faults::hits(self.negative_every, id)
    }

    fn is_zero(&self, id: u64) -> bool {
        !self.is_malformed(id) && !self.is_negative(id) && Faults::hits(self.zero_every, id)
    }
}

const REGIONS: [&str; 4] = ["华东", "华北", "华南", "西南"];

/// Sale `id`'s line (without its newline).
fn sale_line(id: u64, faults: Faults) -> String {
    let region = REGIONS[(id % 4) as usize];
    let amount = id % 997 + 1;
    if faults.is_malformed(id) {
        format!("{{\"id\":{id},\"amount\":")
    } else if faults.is_negative(id) {
        format!("{{\"id\":{id},\"amount\":-{amount},\"region\":\"{region}\"}}")
    } else if faults.is_zero(id) {
        format!("{{\"id\":{id},\"amount\":0,\"region\":\"{region}\"}}")
    } else {
        format!("{{\"id\":{id},\"amount\":{amount},\"region\":\"{region}\"}}")
    }
}

/// Writes `n` generated sales to `path`.
pub(crate) fn write_sales(path: &Path, n: u64, faults: Faults) {
    let mut text = String::with_capacity(n as usize * 48);
    for id in 1..=n {
        text.push_str(&sale_line(id, faults));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The output an uninterrupted run over [`write_sales`]`(n, faults)` writes.
pub(crate) fn expected_output(n: u64, faults: Faults) -> String {
    let mut text = String::new();
    for id in (1..=n).filter(|&id| !faults.is_malformed(id) && !faults.is_negative(id) && !faults.is_zero(id))
    {
        let region = REGIONS[(id % 4) as usize];
        text.push_str(&format!(
            "{{\"id\":{id},\"doubled\":{},\"region\":\"{region}\"}}\n",
            (id % 997 + 1) * 2
        ));
    }
    text
}

/// (processed, failed, skipped) of a run over `n` sales.
pub(crate) fn expected_counts(n: u64, faults: Faults) -> (u64, u64, u64) {
    let failed = (1..=n).filter(|&id| faults.is_malformed(id) || faults.is_negative(id)).count() as u64;
    let skipped = (1..=n).filter(|&id| faults.is_zero(id)).count() as u64;
    (n - failed - skipped, failed, skipped)
}

/// A registry with the `test_lines` kind reporting to `probe`.
pub(crate) fn registry(probe: &Arc<Probe>) -> Registry {
    let mut registry = Registry::new();
    registry.register(LinesKind::new(Arc::clone(probe)));
    registry
}

/// A manager named `worker` over `store` with the `test_lines` kind.
pub(crate) fn manager(store: &Arc<dyn TaskStore>, probe: &Arc<Probe>, worker: &str) -> BatchManager {
    let config = ManagerConfig::default()
        .with_worker_id(worker)
        .with_lease_ttl(Duration::from_secs(3))
        .with_stop_grace_period(Duration::from_secs(5))
        .with_poll_interval(Duration::from_millis(20));
    BatchManager::new(Arc::clone(store), registry(probe), config).unwrap()
}

/// Polls the store until the task's checkpoint reaches `sequence`; returns it.
pub(crate) async fn checkpoint_reaching(store: &dyn TaskStore, id: &TaskId, sequence: u64) -> Checkpoint {
    loop {
        if let Some(checkpoint) = store.checkpoint(id).await.unwrap()
            && checkpoint.sequence >= sequence
        {
            return checkpoint;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The staged file of `path` that the task's last checkpoint names: where a fenced task that did not
/// complete keeps its committed output.
pub(crate) async fn committed_file(store: &dyn TaskStore, id: &TaskId, path: &Path) -> std::path::PathBuf {
    let checkpoint = store.checkpoint(id).await.unwrap().expect("a checkpoint");
    batch_tasks::records::staged_path(path, checkpoint.sink["epoch"].as_u64().unwrap_or(0))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
