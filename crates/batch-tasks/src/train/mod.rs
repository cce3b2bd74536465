//! The `train` task kind: mini-batch SGD training of a logistic (two classes) or softmax (three or
//! more classes) regression model over a CSV or JSON-lines dataset — streamed, checkpointed, and
//! resumable to the very same weights.
//!
//! # What a run does
//!
//! 1. **Scan**: one streaming pass over `input`, read through pump-core's record scanners (the same
//!    `CsvScanner` and `LineScanner` as the other kinds' sources). Bad rows (a missing or
//!    non-numeric feature, a missing label, a malformed record such as a CSV quote never closed)
//!    go to the dead-letter file; the labels of the good rows make the class set (as strings,
//!    sorted); Welford's algorithm accumulates each feature's mean and standard deviation over the
//!    training rows (held-out rows are left out, so nothing of them leaks into the model). Fewer
//!    than [`MIN_TRAINING_ROWS`] training rows, or (when a share is held out) fewer than
//!    [`MIN_EVALUATION_ROWS`] held-out rows, fail the task with `VALIDATION_ERROR`.
//! 2. **Epochs**: up to `epochs` passes over `input`. Training rows, standardised, fill a *shuffle
//!    window* of `shuffle_batches × batch_size` rows; the window is shuffled and trained on in
//!    mini-batches of `batch_size` rows, each an AdaGrad step on the mean log-loss plus
//!    `l2/2·‖W‖²` (biases are not penalised; `l2` defaults to `1/n`, scikit-learn's `C = 1`). Each
//!    epoch records its mean loss, objective and accuracy as SGD met the rows; training stops early
//!    when the objective has not improved by `tolerance` for `patience` epochs (see
//!    [`TrainParams`], "How training converges").
//! 3. **Hold-out**: the final model's accuracy on the held-out rows. A seeded hash of each row's line
//!    number decides whether it is held out, so the same rows are held out in every epoch and run.
//! 4. **Eval**: the final model's accuracy on `eval_input`, if given; its bad rows, and rows whose
//!    label is not a trained class, go to the dead-letter file; fewer than [`MIN_EVALUATION_ROWS`]
//!    good rows fail the task with `VALIDATION_ERROR`.
//! 5. **Model**: the weights, biases, scaler, classes, feature names and metrics, as JSON
//!    ([`TrainedModel`]), written to `model_out` atomically (a temporary file, synced, renamed).
//!
//! The data is never loaded whole: a reader (`dataset.rs`) holds one record, and the shuffle window at
//! most `shuffle_batches × batch_size` rows (1,000,000 at most; the default is 10 mini-batches).
//! The params are described at [`TrainParams`].
//!
//! # Checkpoints, and why a resumed run ends at the same bits
//!
//! A checkpoint is taken only between two shuffle windows, where no row is buffered, once at least
//! `checkpoint_batches × batch_size` records were read since the last one, at the end of every
//! pass (so at least once per epoch), and when a stop is requested. It holds:
//!
//! - `source`: the pass (scan, epoch *n*, hold-out, eval), the byte offset and line where it goes
//!   on, and how many windows of the pass are done;
//! - `sink`: the dead-letter file's committed length (flushed, or synced with
//!   `durability: power_loss`, before the commit); a resumed run truncates the file back to it;
//! - `state`: the feature list, the scan's Welford accumulators and class set (during the scan), the
//!   scaler, classes, weights, AdaGrad's sums of squared gradients and the `l2` in use (after it),
//!   the stopping rule's best objective and count of epochs without progress, the epoch's running
//!   loss and hits, the finished epochs' metrics, hold-out and eval hits, row counts, and a
//!   fingerprint of the params that decide the result (a checkpoint of other params is refused with
//!   `INVALID_STATE`).
//!
//! Everything after a window boundary is a function of that state and the file alone:
//!
//! - each window's shuffle is seeded from `(seed, epoch, window index)`, not from an RNG carried
//!   across windows, so there is no RNG state to store (`shuffle::window_seed`);
//! - the hold-out split hashes `(seed, line)`: no state either (`shuffle::is_held_out`);
//! - a mini-batch's gradient is summed in fixed blocks of 64 rows, in block order, whatever the
//!   number of threads (`sgd.rs`);
//! - every `f64` is stored through serde_json with `float_roundtrip`, which reads back the exact
//!   bits that were written.
//!
//! So a run resumed from any checkpoint replays exactly what the uninterrupted run did after it,
//! and ends with bit-identical weights, model file and dead-letter file. The tests check this by
//! killing a run at every one of its commits in turn and resuming it. (The data files must not change
//! while a task runs: a checkpoint holds positions in them.)
//!
//! # Determinism and concurrency
//!
//! The same params, config and data give the same model, bit for bit. `concurrency` splits each
//! mini-batch's gradient across threads (when a mini-batch is large enough to pay for them; see
//! `sgd.rs`) without changing a bit of the result, so it may even differ between a run and its
//! resume. (The shuffle uses `fastrand`, whose sequence for a seed is fixed by the version in
//! `Cargo.lock`.)
//!
//! # The task's config: every setting is honoured
//!
//! - `batch_size`: the mini-batch size (rows per gradient step).
//! - `concurrency`: the threads a mini-batch's gradient is split across (when it is large enough to
//!   pay for them; the result is the same bits whatever the number).
//! - `timeout`: bounds each mini-batch's work — reading its `batch_size` rows (in any pass), or its
//!   gradient step. The run beats a heartbeat after each; when none comes for `timeout`, the
//!   mini-batch has overrun it: the run is told to stop (it looks every 256 rows), and the attempt
//!   fails with `TIMEOUT_ERROR`. A blocking read cannot be interrupted, so an attempt whose work
//!   does not stop within `timeout` + 1 s is given up on, and not retried.
//! - `max_retries`: an attempt that overran the timeout is retried from the last committed
//!   checkpoint (exactly as a resume: same bits), after a backoff of 100 ms doubling up to 30 s
//!   (less a random fifth at most), up to `max_retries` times; then the task fails with
//!   `TIMEOUT_ERROR` naming the pass and the attempts. Nothing else is retried: every other failure
//!   (a bad param, too few rows, divergence, an unreadable file) would fail the same way again.
//! - `skip_limit`: the bad rows (of `input` and `eval_input`) tolerated before the task fails with
//!   `VALIDATION_ERROR`.
//! - `durability: power_loss` syncs the dead-letter file at each checkpoint and the model's folder at
//!   the end.
//!
//! # Progress
//!
//! `processed` and `total` count rows as a user thinks of them, per pass: during the scan, the rows
//! read of an estimate from the bytes read; during an epoch, the rows trained in that epoch of the
//! training rows; then the held-out rows, then the rows of `eval_input`. Bad rows count as `failed`
//! (so `processed + failed` reaches `total` at the end of each pass). At the end, every row of both
//! files is counted once: `processed` the good ones, `failed` the bad ones. `percentage` and `eta`
//! are of the whole run (each epoch a pass, counted at the most, `epochs`, until the stopping rule
//! ends training, when it jumps to 100); `throughput` is rows read per second over every pass. The
//! message names the pass: `scanning FILE: N rows`, `epoch 3/100: loss 0.3120, accuracy 0.9010`,
//! `evaluating N held-out rows`, `done: holdout accuracy …`.
//!
//! # Dead letters
//!
//! One JSON object per bad row, in `dead_letter` (default `<model_out stem>.dead_letters.jsonl`
//! beside the model): `{"file", "line", "offset", "code": "VALIDATION_ERROR", "message", "raw"}`.
//! A bad row of `input` is reported once, by the scan, and left out of every later pass.

mod config;
mod dataset;
mod engine;
mod error;
mod generator;
mod model;
mod params;
mod scaler;
mod sgd;
mod shuffle;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{BatchConfig, Checkpoint, TaskError, TaskType};
use pump_core::RetryPolicy;

use crate::kind::{JobContext, JobOutcome, TaskKind};
use crate::train::engine::{Engine, Heartbeat, Pause};

// The public surface: what a user needs to create train tasks (typed params, their defaults and
// bounds), to read the model a task writes back (and use it to predict), to make demo data, and the
// errors. The engine's parts (the row reader, the SGD steps, the shuffle window, the scan's
// accumulators) stay inside the crate.
pub use config::{DataFormat, EPOCHS_MAX, SHUFFLE_ROWS_MAX, TrainParams, defaults};
pub use dataset::MAX_RECORD_LEN;
pub use engine::{MAX_CLASSES, MIN_EVALUATION_ROWS, MIN_TRAINING_ROWS};
pub use error::{RowProblem, TrainError};
pub use generator::{BLOB_SEPARATION, Generator, GeneratorConfig, LABEL};
pub use model::{EpochMetrics, MODEL_FORMAT, ModelKind, ModelMetrics, TrainedModel, TrainingInfo};
pub use scaler::Scaler;

/// The `train` task kind. See the [module docs](self) for what a run does and how it resumes.
///
/// Run here without a manager, with the job control of the `testing` feature (a manager runs it with
/// one over its store):
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskType};
/// use batch_tasks::testing::MemoryControl;
/// use batch_tasks::train::{Generator, GeneratorConfig, TrainKind, TrainedModel};
/// use batch_tasks::{JobContext, JobOutcome, TaskKind};
///
/// let dir = tempfile::tempdir()?;
/// let input = dir.path().join("points.csv");
/// Generator::new(GeneratorConfig::binary(2_000, 5, 7)).write_file(&input)?;
/// let model_out = dir.path().join("model.json");
/// let params = serde_json::json!({
///     "input": input, "label": "label", "model_out": model_out, "epochs": 5, "seed": 1,
/// });
/// let request = CreateTaskRequest::new(TaskType::Train).with_params(params);
/// let task = BatchTask::new(TaskId::new(), request, chrono::Utc::now())?;
/// TrainKind::new().validate(&task.params, &task.config)?;
///
/// let outcome = TrainKind::new().run(JobContext::new(task, None, Arc::new(MemoryControl::new()))).await?;
/// let JobOutcome::Completed { summary, .. } = outcome else { panic!("not completed") };
/// assert!(summary["holdout_accuracy"].as_f64().unwrap() > 0.85);
///
/// let model = TrainedModel::load(&model_out)?;
/// assert_eq!(model.classes, ["negative", "positive"]);
/// assert!(model.predict(&[0.0; 5]).is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainKind;

impl TrainKind {
    /// The kind.
    pub fn new() -> TrainKind {
        TrainKind
    }
}

#[async_trait]
impl TaskKind for TrainKind {
    fn task_type(&self) -> TaskType {
        TaskType::Train
    }

    fn spec(&self) -> crate::KindSpec {
        crate::train::params::spec()
    }

    fn validate(&self, params: &serde_json::Value, config: &BatchConfig) -> Result<(), TaskError> {
        TrainParams::from_json(params, config).map(|_| ()).map_err(TaskError::from)
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        let config = job.config().clone();
        let params = TrainParams::from_json(job.params(), &config)?;
        let control = Arc::clone(job.control());
        let mut last_checkpoint = job.checkpoint().cloned();
        let task_id = job.task().id;
        tracing::info!(
            %task_id,
            input = %params.input.display(),
            resumed_from = last_checkpoint.as_ref().map(|checkpoint| checkpoint.sequence),
            "train task starting"
        );
        let retries = RetryPolicy::exponential(config.max_retries.saturating_add(1), RETRY_BACKOFF)
            .with_max_backoff(RETRY_BACKOFF_MAX);
        let mut attempts = 1_u32;
        let mut engine = open_engine(&params, &config, last_checkpoint.as_ref()).await?;
        loop {
            let pass = engine.pass_name();
            let segment_control = Arc::clone(&control);
            let heartbeat = engine.heartbeat();
            let handle = tokio::task::spawn_blocking(move || {
                let pause = engine.advance(segment_control.as_ref());
                (engine, pause)
            });
            let (returned, pause) = match supervise(handle, &heartbeat, config.timeout).await {
                Supervised::Finished(Ok(finished)) => finished,
                Supervised::Finished(Err(join_error)) => {
                    return Err(TaskError::from(TrainError::Internal { reason: join_error.to_string() }));
                }
                Supervised::Stalled(handle) => {
                    // Tell the overrunning work to stop, and wait a little for it: only once it has
                    // stopped can a retry reopen the dead-letter file safely.
                    heartbeat.abandon();
                    let stopped = tokio::time::timeout(config.timeout + ABANDON_GRACE, handle).await.is_ok();
                    tracing::warn!(%task_id, %pass, attempts, stopped, "a train mini-batch overran the timeout");
                    if !stopped || attempts > config.max_retries {
                        return Err(TaskError::from(TrainError::TimedOut {
                            pass,
                            timeout: config.timeout,
                            attempts,
                            unstoppable: !stopped,
                        }));
                    }
                    tokio::time::sleep(retries.backoff(attempts)).await;
                    attempts += 1;
                    engine = open_engine(&params, &config, last_checkpoint.as_ref()).await?;
                    continue;
                }
            };
            engine = returned;
            match pause.map_err(|error| {
                tracing::warn!(%task_id, %error, "train task failed");
                TaskError::from(error)
            })? {
                Pause::Checkpoint(checkpoint, progress) => {
                    control.commit(Checkpoint::clone(&checkpoint), progress).await?;
                    last_checkpoint = Some(*checkpoint);
                    if control.stop_requested() {
                        return Ok(JobOutcome::Stopped);
                    }
                }
                Pause::Stop(checkpoint, progress) => {
                    control.commit(*checkpoint, progress).await?;
                    tracing::info!(%task_id, "train task stopped at a checkpoint");
                    return Ok(JobOutcome::Stopped);
                }
                Pause::Finished { summary, progress } => {
                    tracing::info!(%task_id, holdout_accuracy = ?summary["holdout_accuracy"], "train task completed");
                    return Ok(JobOutcome::Completed { summary, progress });
                }
            }
        }
    }
}

/// The first wait before a retry after a timeout; doubled for each further retry.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait before a retry.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How long, beyond the timeout, a run that overran it may take to stop before it is given up on.
const ABANDON_GRACE: Duration = Duration::from_secs(1);

/// Opens an engine from `checkpoint` (or from scratch) on the blocking pool.
async fn open_engine(
    params: &TrainParams,
    config: &BatchConfig,
    checkpoint: Option<&Checkpoint>,
) -> Result<Engine, TaskError> {
    let (params, config, checkpoint) = (params.clone(), config.clone(), checkpoint.cloned());
    blocking(move || Engine::open(params, &config, checkpoint.as_ref(), Arc::new(Heartbeat::default()))).await
}

/// How a supervised segment of work ended.
enum Supervised<T> {
    /// It returned (or panicked).
    Finished(Result<T, tokio::task::JoinError>),
    /// It went a whole `timeout` without a beat: a mini-batch overran it.
    Stalled(tokio::task::JoinHandle<T>),
}

/// Waits for `handle`, watching `heartbeat`: when no beat comes for `timeout` (looked at every
/// quarter of it, at least every millisecond), the work is declared stalled.
async fn supervise<T>(
    mut handle: tokio::task::JoinHandle<T>,
    heartbeat: &Heartbeat,
    timeout: Duration,
) -> Supervised<T> {
    let look = (timeout / 4).max(Duration::from_millis(1));
    let mut beats = heartbeat.beats();
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            joined = &mut handle => return Supervised::Finished(joined),
            () = tokio::time::sleep(look) => {
                let now = heartbeat.beats();
                if now != beats {
                    beats = now;
                    since = tokio::time::Instant::now();
                } else if since.elapsed() >= timeout {
                    return Supervised::Stalled(handle);
                }
            }
        }
    }
}

/// Runs `work` on tokio's blocking pool (training is CPU-bound and reads files), turning a panic into
/// a `PROCESSING_ERROR`.
async fn blocking<T, F>(work: F) -> Result<T, TaskError>
where
    F: FnOnce() -> Result<T, TrainError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(TaskError::from),
        Err(join_error) => Err(TaskError::from(TrainError::Internal { reason: join_error.to_string() })),
    }
}
