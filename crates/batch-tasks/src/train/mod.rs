//! The `train` task kind: mini-batch SGD training of a logistic (two classes) or softmax (three or
//! more classes) regression model over a CSV or JSON-lines dataset — streamed, checkpointed, and
//! resumable to the very same weights.
//!
//! # What a run does
//!
//! 1. **Scan**: one streaming pass over `input`. Bad rows (a missing or non-numeric feature, a
//!    missing label, a malformed record) go to the dead-letter file; the labels of the good rows
//!    make the class set (as strings, sorted); Welford's algorithm accumulates each feature's mean
//!    and standard deviation over the training rows (held-out rows are left out, so nothing of them
//!    leaks into the model).
//! 2. **Epochs**: `epochs` passes over `input`. Training rows, standardised, fill a *shuffle window*
//!    of `shuffle_batches × batch_size` rows; the window is shuffled and trained on in mini-batches
//!    of `batch_size` rows, each an SGD step `W ← W − lr·(∇ mean log-loss + l2·W)` (biases are not
//!    penalised). Each epoch records its mean loss and accuracy as SGD met the rows.
//! 3. **Hold-out**: the final model's accuracy on the held-out rows. A seeded hash of each row's line
//!    number decides whether it is held out, so the same rows are held out in every epoch and run.
//! 4. **Eval**: the final model's accuracy on `eval_input`, if given; its bad rows, and rows whose
//!    label is not a trained class, go to the dead-letter file.
//! 5. **Model**: the weights, biases, scaler, classes, feature names and metrics, as JSON
//!    ([`TrainedModel`]), written to `model_out` atomically (a temporary file, synced, renamed).
//!
//! The data is never loaded whole: a [reader](RowReader) holds one record, and the shuffle window at
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
//!   scaler, classes and weights (after it), the epoch's running loss and hits, the finished
//!   epochs' metrics, hold-out and eval hits, row counts, and a fingerprint of the params that
//!   decide the result (a checkpoint of other params is refused with `INVALID_STATE`).
//!
//! Everything after a window boundary is a function of that state and the file alone:
//!
//! - each window's shuffle is seeded from `(seed, epoch, window index)`, not from an RNG carried
//!   across windows, so there is no RNG state to store (see [`window_seed`]);
//! - the hold-out split hashes `(seed, line)`: no state either ([`is_held_out`]);
//! - a mini-batch's gradient is summed in fixed blocks of 64 rows, in block order, whatever the
//!   number of threads (see [`Sgd`]);
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
//! [`Sgd`]) without changing a bit of the result, so it may even differ between a run and its
//! resume. (The shuffle uses `fastrand`, whose sequence for a seed is fixed by the version in
//! `Cargo.lock`.)
//!
//! # The task's config
//!
//! `batch_size` is the mini-batch size; `concurrency` the gradient threads; `skip_limit` the bad rows
//! (of `input` and `eval_input`) tolerated before the task fails with `VALIDATION_ERROR`;
//! `durability: power_loss` syncs the dead-letter file at each checkpoint and the model's folder at
//! the end. `timeout` and `max_retries` do not apply: a step is deterministic CPU work, and a retry
//! would only repeat it.
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

use async_trait::async_trait;
use batch_model::{BatchConfig, TaskError, TaskType};

use crate::kind::{JobContext, JobOutcome, TaskKind};
use crate::train::engine::{Engine, Pause};

pub use config::{DataFormat, EPOCHS_MAX, SHUFFLE_ROWS_MAX, TrainParams};
pub use dataset::{MAX_RECORD_LEN, Row, RowReader, SNIFF_ROWS};
pub use engine::MAX_CLASSES;
pub use error::{RowProblem, TrainError};
pub use generator::{Generator, GeneratorConfig, LABEL};
pub use model::{
    EpochMetrics, LinearModel, MODEL_FORMAT, ModelKind, ModelMetrics, TrainedModel, TrainingInfo,
};
pub use scaler::{Scaler, Welford};
pub use sgd::{BLOCK_ROWS, BatchOutcome, PARALLEL_MIN_WORK, Sgd};
pub use shuffle::{ShuffleWindow, is_held_out, window_seed};

/// The `train` task kind. See the [module docs](self) for what a run does and how it resumes.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use batch_model::{BatchTask, Checkpoint, CreateTaskRequest, Progress, TaskError, TaskId, TaskType};
/// use batch_tasks::train::{Generator, GeneratorConfig, TrainKind, TrainedModel};
/// use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
/// use tokio_util::sync::CancellationToken;
///
/// /// A manager stand-in that keeps nothing.
/// struct NoStore;
/// #[async_trait::async_trait]
/// impl JobControl for NoStore {
///     async fn commit(&self, _: Checkpoint, _: Progress) -> Result<(), TaskError> { Ok(()) }
///     async fn report_progress(&self, _: Progress) {}
///     fn stop_requested(&self) -> bool { false }
///     fn cancellation_token(&self) -> CancellationToken { CancellationToken::new() }
/// }
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
/// let outcome = TrainKind::new().run(JobContext::new(task, None, Arc::new(NoStore))).await?;
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
        let checkpoint = job.checkpoint().cloned();
        let task_id = job.task().id;
        tracing::info!(
            %task_id,
            input = %params.input.display(),
            resumed_from = checkpoint.as_ref().map(|checkpoint| checkpoint.sequence),
            "train task starting"
        );
        let mut engine = blocking(move || Engine::open(params, &config, checkpoint.as_ref())).await?;
        loop {
            let segment_control = Arc::clone(&control);
            let (returned, pause) = blocking(move || {
                let pause = engine.advance(segment_control.as_ref());
                Ok((engine, pause))
            })
            .await?;
            engine = returned;
            match pause.map_err(|error| {
                tracing::warn!(%task_id, %error, "train task failed");
                TaskError::from(error)
            })? {
                Pause::Checkpoint(checkpoint, progress) => {
                    control.commit(*checkpoint, progress).await?;
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
