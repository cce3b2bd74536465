//! The training run itself, synchronous: its passes over the data (scan, epochs, hold-out, eval),
//! each read window by window, paused at window boundaries where a checkpoint can be taken.
//!
//! [`Engine::advance`] runs on a blocking thread until a checkpoint is due, a stop is requested or
//! the run is finished, and hands back what to commit; the async side ([`TrainKind`]) commits it and
//! calls `advance` again. Between two windows nothing is buffered (the shuffle window is empty), so
//! the [`Cursor`] and [`TrainState`] taken there are all a resumed run needs.
//!
//! [`TrainKind`]: crate::train::TrainKind

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use batch_model::{BatchConfig, Checkpoint, Counters, Durability, ErrorCode, Progress};
use chrono::Utc;
use pump_core::sink::{JsonLinesWriter, RecordWriter};
use serde::Serialize;
use serde_json::{Value, json};

use crate::JobControl;
use crate::train::config::TrainParams;
use crate::train::dataset::{Row, RowReader};
use crate::train::error::{RowProblem, TrainError};
use crate::train::model::{
    EpochMetrics, LinearModel, MODEL_FORMAT, ModelMetrics, TrainedModel, TrainingInfo,
};
use crate::train::scaler::{Scaler, Welford};
use crate::train::sgd::Sgd;
use crate::train::shuffle::{ShuffleWindow, is_held_out, window_seed};
use crate::train::state::{
    Cursor, Phase, Resumed, RowCounts, STATE_VERSION, ScanState, SinkState, Stopping, TrainState,
};

/// The most classes a label column may have.
pub const MAX_CLASSES: usize = 1000;

/// The fewest training rows a task learns from: with fewer (say, a file that an unclosed quote
/// turned into one bad record) the task fails with `VALIDATION_ERROR` rather than write a model
/// that means nothing.
pub const MIN_TRAINING_ROWS: u64 = 10;

/// The fewest rows an accuracy is measured on (held-out rows, or the good rows of `eval_input`):
/// with fewer, the task fails with `VALIDATION_ERROR` rather than report an accuracy that means
/// nothing.
pub const MIN_EVALUATION_ROWS: u64 = 10;

/// How a running [`Engine`] shows it is making progress, and how it is told to give up: the async
/// side watches `beats` to bound each mini-batch by the task's `timeout`, and sets `abandon` when a
/// mini-batch overran it.
#[derive(Debug, Default)]
pub(super) struct Heartbeat {
    beats: AtomicU64,
    abandon: AtomicBool,
}

impl Heartbeat {
    /// Beats so far.
    pub(super) fn beats(&self) -> u64 {
        self.beats.load(Ordering::Relaxed)
    }

    /// Tells the engine to stop at its next look (within 256 records or one mini-batch step).
    pub(super) fn abandon(&self) {
        self.abandon.store(true, Ordering::Relaxed);
    }

    /// A mini-batch's worth of work is done.
    fn beat(&self) -> Result<(), TrainError> {
        self.beats.fetch_add(1, Ordering::Relaxed);
        self.check()
    }

    /// Fails with [`TrainError::Abandoned`] when told to give up.
    fn check(&self) -> Result<(), TrainError> {
        if self.abandon.load(Ordering::Relaxed) { Err(TrainError::Abandoned) } else { Ok(()) }
    }
}

/// How often (in records read) a pass looks whether it was abandoned.
const ABANDON_CHECK_RECORDS: u64 = 256;

/// Why [`Engine::advance`] handed control back.
#[derive(Debug)]
pub(super) enum Pause {
    /// A checkpoint is due: commit it, then advance again (or stop, if a stop was requested since).
    Checkpoint(Box<Checkpoint>, Progress),
    /// A stop was requested: commit this checkpoint and stop.
    Stop(Box<Checkpoint>, Progress),
    /// Every pass is done and the model is written.
    Finished {
        /// The task's result summary.
        summary: Value,
        /// The final progress.
        progress: Progress,
    },
}

/// An estimate of the records of a file of `len` bytes, `read` of which were found in its first
/// `offset` bytes; `None` before any.
fn estimate_records(read: u64, offset: u64, len: Option<u64>) -> Option<u64> {
    let len = len?;
    if read == 0 || offset == 0 {
        return None;
    }
    let estimate = (read as f64 * len as f64 / offset as f64).round() as u64;
    Some(estimate.max(read))
}

/// After `read` records of a window: a beat every `batch_size` records, and a look whether the run
/// was abandoned every [`ABANDON_CHECK_RECORDS`].
fn pace(heartbeat: &Heartbeat, read: u64, batch_size: u64) -> Result<(), TrainError> {
    if read.is_multiple_of(batch_size.max(1)) {
        heartbeat.beat()
    } else if read.is_multiple_of(ABANDON_CHECK_RECORDS) {
        heartbeat.check()
    } else {
        Ok(())
    }
}

/// One dead-letter record: a bad row of `file`.
#[derive(Debug, Serialize)]
struct DeadLetter {
    file: String,
    line: u64,
    offset: u64,
    code: ErrorCode,
    message: String,
    raw: String,
}

/// A training run, between two calls of [`advance`](Engine::advance).
#[derive(Debug)]
pub(super) struct Engine {
    params: TrainParams,
    batch_size: usize,
    concurrency: usize,
    durability: Durability,
    skip_limit: Option<u64>,
    /// Records per window (the shuffle window's capacity in training rows; in the other passes, in
    /// records read).
    window_rows: usize,
    /// Records read between checkpoints, at least.
    checkpoint_rows: u64,
    cursor: Cursor,
    state: TrainState,
    sequence: u64,
    rows_since_commit: u64,
    reader: Option<RowReader>,
    dead_letters: JsonLinesWriter<DeadLetter>,
    row: Row,
    standardised: Vec<f64>,
    scores: Vec<f64>,
    window: Option<ShuffleWindow>,
    sgd: Option<Sgd>,
    started: Instant,
    /// Records read by this run (since it started or resumed), for the throughput.
    records_read: u64,
    /// Beats once per mini-batch of records read and per mini-batch step.
    heartbeat: Arc<Heartbeat>,
}

impl Engine {
    /// Starts a run: from `checkpoint`, or from scratch (reading `input`'s header and resolving the
    /// feature columns).
    pub(super) fn open(
        params: TrainParams,
        config: &BatchConfig,
        checkpoint: Option<&Checkpoint>,
        heartbeat: Arc<Heartbeat>,
    ) -> Result<Engine, TrainError> {
        let fingerprint = fingerprint(&params, config);
        let (cursor, state, sink, sequence, reader) = match checkpoint {
            Some(checkpoint) => {
                let resumed = Resumed::read(checkpoint, &fingerprint)?;
                (resumed.cursor, resumed.state, resumed.sink, resumed.sequence, None)
            }
            None => {
                let (reader, features) = open_input(&params)?;
                let state = TrainState {
                    version: STATE_VERSION,
                    fingerprint,
                    scan: Some(ScanState { welford: Welford::new(features.len()), classes: BTreeSet::new() }),
                    features,
                    scaler: None,
                    classes: Vec::new(),
                    model: None,
                    squares: Vec::new(),
                    l2: 0.0,
                    stopping: Stopping::default(),
                    running: Default::default(),
                    epochs: Vec::new(),
                    holdout: Default::default(),
                    eval: Default::default(),
                    rows: RowCounts::default(),
                };
                let mut cursor = Cursor::start(Phase::Scan);
                cursor.set_position(reader.data_start());
                (cursor, state, SinkState::default(), 0, Some(reader))
            }
        };
        if let Some(parent) = params.dead_letter.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| {
                TrainError::DeadLetters(pump_core::sink::WriteError::Io { path: parent.to_owned(), source })
            })?;
        }
        let dead_letters = JsonLinesWriter::resume(&params.dead_letter, sink.dead_letters)
            .map_err(TrainError::DeadLetters)?;
        let batch_size = config.batch_size.max(1) as usize;
        let window_rows = batch_size * params.shuffle_batches.max(1) as usize;
        let checkpoint_rows = (batch_size as u64).saturating_mul(u64::from(params.checkpoint_batches.max(1)));
        let features = state.features.len();
        Ok(Engine {
            params,
            batch_size,
            concurrency: config.concurrency.max(1) as usize,
            durability: config.durability,
            skip_limit: config.skip_limit,
            window_rows,
            checkpoint_rows,
            cursor,
            state,
            sequence,
            rows_since_commit: 0,
            reader,
            dead_letters,
            row: Row::default(),
            standardised: vec![0.0; features],
            scores: Vec::new(),
            window: None,
            sgd: None,
            started: Instant::now(),
            records_read: 0,
            heartbeat,
        })
    }

    /// Runs windows until a checkpoint is due, a stop is requested, or the run is finished.
    ///
    /// Checks `control`'s cancellation token and stop flag between windows; a cancelled run fails with
    /// [`TrainError::Cancelled`].
    pub(super) fn advance(&mut self, control: &dyn JobControl) -> Result<Pause, TrainError> {
        let cancellation = control.cancellation_token();
        loop {
            if cancellation.is_cancelled() {
                return Err(TrainError::Cancelled);
            }
            if self.cursor.phase == Phase::Done {
                return self.finish();
            }
            let pass_ended = self.run_window()?;
            self.check_skip_limit()?;
            if pass_ended {
                self.next_phase()?;
                if self.cursor.phase == Phase::Done {
                    return self.finish();
                }
                let (checkpoint, progress) = self.checkpoint()?;
                return Ok(Pause::Checkpoint(checkpoint, progress));
            }
            if control.stop_requested() {
                let (checkpoint, progress) = self.checkpoint()?;
                return Ok(Pause::Stop(checkpoint, progress));
            }
            if self.rows_since_commit >= self.checkpoint_rows {
                let (checkpoint, progress) = self.checkpoint()?;
                return Ok(Pause::Checkpoint(checkpoint, progress));
            }
        }
    }

    /// The progress so far, in rows as a user thinks of them (see the module docs, "Progress"):
    /// `processed`/`total` count the rows of the current pass (the scan, one epoch, the hold-out,
    /// the eval file), bad rows counted as `failed` in every pass; at the end, every row of both
    /// files once. `percentage` and `eta` are of the whole run, each epoch one pass (counted at the
    /// most, `epochs`, until the stopping rule ends training); `throughput` is rows read per second
    /// over all passes.
    pub(super) fn progress(&self) -> Progress {
        let rows = &self.state.rows;
        let failed = rows.bad + rows.eval_bad;
        let (processed, total) = match self.cursor.phase {
            Phase::Scan => {
                let read = rows.input;
                (read - rows.bad, estimate_records(read, self.cursor.offset, self.file_len(Phase::Scan)))
            }
            Phase::Train { .. } => (self.state.running.rows, Some(rows.train + rows.bad)),
            Phase::Holdout => (self.state.holdout.rows, Some(rows.holdout + rows.bad)),
            Phase::Eval => {
                let read = self.state.eval.rows + rows.eval_bad;
                let estimate = estimate_records(read, self.cursor.offset, self.file_len(Phase::Eval));
                (self.state.eval.rows, estimate.map(|estimate| estimate + rows.bad))
            }
            Phase::Done => {
                let all = rows.input + self.state.eval.rows + rows.eval_bad;
                (rows.train + rows.holdout + self.state.eval.rows, Some(all))
            }
        };
        let elapsed = self.started.elapsed();
        let mut progress = Progress::compute(total, processed, failed, 0, elapsed);
        // The whole run's share done: the passes before this one, and this one's share.
        let epochs = u64::from(self.params.epochs);
        let has_holdout = self.params.holdout > 0.0;
        let has_eval = self.params.eval_input.is_some();
        let passes = 1 + epochs + u64::from(has_holdout) + u64::from(has_eval);
        let passes_before = match self.cursor.phase {
            Phase::Scan => 0,
            Phase::Train { epoch } => 1 + u64::from(epoch),
            Phase::Holdout => 1 + epochs,
            Phase::Eval => 1 + epochs + u64::from(has_holdout),
            Phase::Done => passes,
        };
        let in_pass = match (self.cursor.phase, progress.percentage) {
            (Phase::Done, _) | (_, None) => 0.0,
            (_, Some(percentage)) => percentage / 100.0,
        };
        let share = ((passes_before as f64 + in_pass) / passes as f64).min(1.0);
        progress.percentage = Some(share * 100.0);
        let seconds = elapsed.as_secs_f64();
        progress.throughput = (seconds > 0.0).then(|| self.records_read as f64 / seconds);
        progress.eta = if share >= 1.0 {
            Some(Duration::ZERO)
        } else if share > 0.0 {
            Some(elapsed.mul_f64((1.0 - share) / share))
        } else {
            None
        };
        progress.message = Some(self.message());
        progress
    }

    /// The heartbeat the run beats.
    pub(super) fn heartbeat(&self) -> Arc<Heartbeat> {
        Arc::clone(&self.heartbeat)
    }

    /// The pass the run is in, as an error message names it.
    pub(super) fn pass_name(&self) -> String {
        match self.cursor.phase {
            Phase::Scan => "scan".to_owned(),
            Phase::Train { epoch } => format!("epoch {}", epoch + 1),
            Phase::Holdout => "hold-out pass".to_owned(),
            Phase::Eval => "eval pass".to_owned(),
            Phase::Done => "end".to_owned(),
        }
    }

    /// The length of the file a pass reads, when it can be known.
    fn file_len(&self, phase: Phase) -> Option<u64> {
        let path = match phase {
            Phase::Eval => self.params.eval_input.as_deref()?,
            _ => &self.params.input,
        };
        std::fs::metadata(path).ok().map(|metadata| metadata.len())
    }

    fn message(&self) -> String {
        let rows = &self.state.rows;
        match self.cursor.phase {
            Phase::Scan => format!("scanning {}: {} rows", self.params.input.display(), rows.input),
            Phase::Train { epoch } => {
                let running = &self.state.running;
                let (loss, accuracy) = if running.rows > 0 {
                    (running.loss / running.rows as f64, running.correct as f64 / running.rows as f64)
                } else if let Some(last) = self.state.epochs.last() {
                    (last.loss, last.accuracy)
                } else {
                    return format!("epoch {}/{}: starting", epoch + 1, self.params.epochs);
                };
                format!("epoch {}/{}: loss {loss:.4}, accuracy {accuracy:.4}", epoch + 1, self.params.epochs)
            }
            Phase::Holdout => format!("evaluating {} held-out rows", rows.holdout),
            Phase::Eval => {
                let eval_input = self.params.eval_input.as_deref().unwrap_or(Path::new(""));
                format!("evaluating {}: {} rows", eval_input.display(), self.state.eval.rows)
            }
            Phase::Done => {
                let accuracy = |value: Option<f64>| {
                    value.map_or_else(|| "none".to_owned(), |value| format!("{value:.4}"))
                };
                format!(
                    "done: holdout accuracy {}, eval accuracy {}",
                    accuracy(self.state.holdout.accuracy()),
                    accuracy(self.state.eval.accuracy())
                )
            }
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Passes.

    /// Runs one window of the current pass; `true` when the pass reached the end of its file.
    fn run_window(&mut self) -> Result<bool, TrainError> {
        self.ensure_reader()?;
        let ended = match self.cursor.phase {
            Phase::Scan => self.scan_window()?,
            Phase::Train { epoch } => self.train_window(epoch)?,
            Phase::Holdout => self.holdout_window()?,
            Phase::Eval => self.eval_window()?,
            Phase::Done => true,
        };
        if let Some(reader) = &self.reader {
            self.cursor.set_position(reader.position());
        }
        self.cursor.window += 1;
        Ok(ended)
    }

    /// Opens the current pass's file at the cursor, if it is not open.
    fn ensure_reader(&mut self) -> Result<(), TrainError> {
        if self.reader.is_some() {
            return Ok(());
        }
        let (path, format, file_param) = match self.cursor.phase {
            Phase::Eval => match (&self.params.eval_input, self.params.eval_format) {
                (Some(path), Some(format)) => (path.clone(), format, Some("eval_input")),
                _ => return Ok(()),
            },
            _ => (self.params.input.clone(), self.params.format, None),
        };
        let mut reader = RowReader::open(&path, format)?;
        if let Some(param) = file_param {
            let mut columns = self.state.features.clone();
            columns.push(self.params.label.clone());
            reader.check_json_columns(&columns, param)?;
        }
        reader.bind(&self.state.features, &self.params.label, file_param)?;
        reader.seek(self.cursor.position())?;
        self.reader = Some(reader);
        Ok(())
    }

    /// The first pass: feature statistics of the training rows, the class set, bad rows.
    fn scan_window(&mut self) -> Result<bool, TrainError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(true);
        };
        let Some(scan) = self.state.scan.as_mut() else {
            return Err(TrainError::Checkpoint { reason: "the scan pass has no statistics".to_owned() });
        };
        let mut read = 0;
        let mut ended = false;
        while read < self.window_rows {
            if !reader.next_row(&mut self.row)? {
                ended = true;
                break;
            }
            read += 1;
            pace(&self.heartbeat, read as u64, self.batch_size as u64)?;
            self.state.rows.input += 1;
            if let Some(problem) = self.row.problem.take() {
                self.state.rows.bad += 1;
                write_dead_letter(&mut self.dead_letters, reader, &self.row, problem)?;
                continue;
            }
            if !scan.classes.contains(&self.row.label) {
                if scan.classes.len() >= MAX_CLASSES {
                    return Err(TrainError::TooManyClasses {
                        path: self.params.input.clone(),
                        label: self.params.label.clone(),
                        limit: MAX_CLASSES,
                    });
                }
                scan.classes.insert(self.row.label.clone());
            }
            if is_held_out(self.params.seed, self.row.start.line, self.params.holdout) {
                self.state.rows.holdout += 1;
            } else {
                self.state.rows.train += 1;
                scan.welford.push(&self.row.features);
            }
        }
        self.rows_since_commit += read as u64;
        self.records_read += read as u64;
        Ok(ended)
    }

    /// Fills the shuffle window with training rows, shuffles it, and runs its mini-batches.
    fn train_window(&mut self, epoch: u32) -> Result<bool, TrainError> {
        let (Some(reader), Some(scaler), Some(model)) =
            (self.reader.as_mut(), self.state.scaler.as_ref(), self.state.model.as_mut())
        else {
            return Err(TrainError::Checkpoint { reason: "a training pass has no model".to_owned() });
        };
        let squares = &mut self.state.squares;
        let l2 = self.state.l2;
        let window = self.window.get_or_insert_with(|| ShuffleWindow::new(model.features, self.window_rows));
        let sgd = self.sgd.get_or_insert_with(|| Sgd::new(model, self.batch_size, self.concurrency));
        window.clear();
        let mut read = 0_u64;
        let mut ended = false;
        while !window.is_full() {
            if !reader.next_row(&mut self.row)? {
                ended = true;
                break;
            }
            read += 1;
            pace(&self.heartbeat, read, self.batch_size as u64)?;
            if self.row.problem.is_some()
                || is_held_out(self.params.seed, self.row.start.line, self.params.holdout)
            {
                continue;
            }
            // Every good row's label was seen by the scan; one that was not means the file changed
            // since, and the row is left out rather than guessed at.
            let Ok(class) = self.state.classes.binary_search(&self.row.label) else {
                continue;
            };
            scaler.transform(&self.row.features, window.push(class as u32));
        }
        if !window.is_empty() {
            window.shuffle(window_seed(self.params.seed, epoch, self.cursor.window));
            let running = &mut self.state.running;
            for batch in window.order().chunks(self.batch_size) {
                let outcome = sgd.step(
                    model,
                    squares,
                    window.values(),
                    window.labels(),
                    batch,
                    self.params.learning_rate,
                    l2,
                );
                running.loss += outcome.loss;
                running.correct += outcome.correct;
                running.rows += batch.len() as u64;
                self.heartbeat.beat()?;
            }
            if !running.loss.is_finite() || !model.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    learning_rate: self.params.learning_rate,
                });
            }
        }
        self.rows_since_commit += read;
        self.records_read += read;
        Ok(ended)
    }

    /// Scores the held-out rows of a window of `input` with the final model.
    fn holdout_window(&mut self) -> Result<bool, TrainError> {
        let (Some(reader), Some(scaler), Some(model)) =
            (self.reader.as_mut(), self.state.scaler.as_ref(), self.state.model.as_ref())
        else {
            return Err(TrainError::Checkpoint { reason: "the hold-out pass has no model".to_owned() });
        };
        self.scores.resize(model.outputs(), 0.0);
        let mut read = 0;
        let mut ended = false;
        while read < self.window_rows {
            if !reader.next_row(&mut self.row)? {
                ended = true;
                break;
            }
            read += 1;
            pace(&self.heartbeat, read as u64, self.batch_size as u64)?;
            if self.row.problem.is_some()
                || !is_held_out(self.params.seed, self.row.start.line, self.params.holdout)
            {
                continue;
            }
            let Ok(class) = self.state.classes.binary_search(&self.row.label) else {
                continue;
            };
            scaler.transform(&self.row.features, &mut self.standardised);
            let predicted = model.predict(&self.standardised, &mut self.scores);
            self.state.holdout.rows += 1;
            self.state.holdout.correct += u64::from(predicted == class);
        }
        self.rows_since_commit += read as u64;
        self.records_read += read as u64;
        Ok(ended)
    }

    /// Scores a window of `eval_input` with the final model; its bad rows and rows of unknown
    /// classes go to the dead letters.
    fn eval_window(&mut self) -> Result<bool, TrainError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(true);
        };
        let (Some(scaler), Some(model)) = (self.state.scaler.as_ref(), self.state.model.as_ref()) else {
            return Err(TrainError::Checkpoint { reason: "the eval pass has no model".to_owned() });
        };
        self.scores.resize(model.outputs(), 0.0);
        let mut read = 0;
        let mut ended = false;
        while read < self.window_rows {
            if !reader.next_row(&mut self.row)? {
                ended = true;
                break;
            }
            read += 1;
            pace(&self.heartbeat, read as u64, self.batch_size as u64)?;
            let problem = match self.row.problem.take() {
                Some(problem) => Some(problem),
                None => match self.state.classes.binary_search(&self.row.label) {
                    Ok(class) => {
                        scaler.transform(&self.row.features, &mut self.standardised);
                        let predicted = model.predict(&self.standardised, &mut self.scores);
                        self.state.eval.rows += 1;
                        self.state.eval.correct += u64::from(predicted == class);
                        None
                    }
                    Err(_) => Some(RowProblem::UnknownLabel { value: self.row.label.clone() }),
                },
            };
            if let Some(problem) = problem {
                self.state.rows.eval_bad += 1;
                write_dead_letter(&mut self.dead_letters, reader, &self.row, problem)?;
            }
        }
        self.state.rows.eval = self.state.eval.rows;
        self.rows_since_commit += read as u64;
        self.records_read += read as u64;
        Ok(ended)
    }

    /// Moves on from a pass that reached the end of its file.
    fn next_phase(&mut self) -> Result<(), TrainError> {
        let next = match self.cursor.phase {
            Phase::Scan => {
                self.finish_scan()?;
                Phase::Train { epoch: 0 }
            }
            Phase::Train { epoch } => {
                let running = std::mem::take(&mut self.state.running);
                let rows = running.rows.max(1) as f64;
                let loss = running.loss / rows;
                let penalty = self.state.model.as_ref().map_or(0.0, LinearModel::weight_norm_squared);
                let objective = loss + self.state.l2 / 2.0 * penalty;
                self.state.epochs.push(EpochMetrics {
                    epoch: epoch + 1,
                    loss,
                    objective,
                    accuracy: running.correct as f64 / rows,
                    rows: running.rows,
                });
                let converged = self.stopping_rule(objective);
                if converged && epoch + 1 < self.params.epochs {
                    self.state.stopping.stopped_early = true;
                }
                if epoch + 1 < self.params.epochs && !converged {
                    Phase::Train { epoch: epoch + 1 }
                } else {
                    self.after_training()
                }
            }
            Phase::Holdout => self.after_holdout(),
            Phase::Eval => {
                if self.state.eval.rows < MIN_EVALUATION_ROWS {
                    return Err(TrainError::TooFewRows {
                        path: self.params.eval_input.clone().unwrap_or_default(),
                        purpose: "evaluate on".to_owned(),
                        rows: self.state.eval.rows,
                        needed: MIN_EVALUATION_ROWS,
                        bad_rows: self.state.rows.eval_bad,
                        hint: String::new(),
                    });
                }
                Phase::Done
            }
            Phase::Done => Phase::Done,
        };
        if matches!(next, Phase::Eval | Phase::Done) {
            self.reader = None;
        }
        self.cursor = Cursor::start(next);
        if let Some(reader) = self.reader.as_mut() {
            reader.rewind()?;
            self.cursor.set_position(reader.position());
        }
        Ok(())
    }

    /// Records an epoch's objective with the stopping rule; `true` when training should stop: the
    /// objective has not improved on the best by more than `tolerance` for `patience` epochs in a
    /// row.
    fn stopping_rule(&mut self, objective: f64) -> bool {
        let stopping = &mut self.state.stopping;
        match stopping.best {
            Some(best) if objective >= best - self.params.tolerance => stopping.stale += 1,
            _ => stopping.stale = 0,
        }
        if stopping.best.is_none_or(|best| objective < best) {
            stopping.best = Some(objective);
        }
        self.params.patience > 0 && stopping.stale >= self.params.patience
    }

    fn after_training(&self) -> Phase {
        if self.params.holdout > 0.0 && self.state.rows.holdout > 0 {
            Phase::Holdout
        } else {
            self.after_holdout()
        }
    }

    fn after_holdout(&self) -> Phase {
        if self.params.eval_input.is_some() { Phase::Eval } else { Phase::Done }
    }

    /// Turns the scan's statistics into the scaler, the classes and a zero model.
    fn finish_scan(&mut self) -> Result<(), TrainError> {
        let Some(scan) = self.state.scan.take() else {
            return Err(TrainError::Checkpoint { reason: "the scan pass has no statistics".to_owned() });
        };
        let rows = self.state.rows;
        if rows.train == 0 {
            return Err(TrainError::NoTrainingRows {
                path: self.params.input.clone(),
                bad_rows: rows.bad,
                holdout_rows: rows.holdout,
            });
        }
        if rows.train < MIN_TRAINING_ROWS {
            let hint = if rows.holdout > 0 { ": lower holdout, or give more rows" } else { "" };
            return Err(TrainError::TooFewRows {
                path: self.params.input.clone(),
                purpose: "train on".to_owned(),
                rows: rows.train,
                needed: MIN_TRAINING_ROWS,
                bad_rows: rows.bad,
                hint: hint.to_owned(),
            });
        }
        if self.params.holdout > 0.0 && rows.holdout < MIN_EVALUATION_ROWS {
            return Err(TrainError::TooFewRows {
                path: self.params.input.clone(),
                purpose: "hold out".to_owned(),
                rows: rows.holdout,
                needed: MIN_EVALUATION_ROWS,
                bad_rows: rows.bad,
                hint: ": set holdout to 0 (or give eval_input) to train on every row".to_owned(),
            });
        }
        if scan.classes.len() < 2 {
            return Err(TrainError::TooFewClasses {
                path: self.params.input.clone(),
                label: self.params.label.clone(),
                classes: scan.classes.len(),
            });
        }
        self.state.scaler = Some(scan.welford.scaler());
        self.state.classes = scan.classes.into_iter().collect();
        let model = LinearModel::zeros(self.state.classes.len(), self.state.features.len());
        self.state.squares = vec![0.0; model.weights.len() + model.biases.len()];
        self.state.model = Some(model);
        self.state.l2 = self.params.l2.unwrap_or(1.0 / rows.train as f64);
        Ok(())
    }

    fn check_skip_limit(&self) -> Result<(), TrainError> {
        let failed = self.state.rows.bad + self.state.rows.eval_bad;
        match self.skip_limit {
            Some(limit) if failed > limit => {
                Err(TrainError::SkipLimit { failed, limit, dead_letters: self.params.dead_letter.clone() })
            }
            _ => Ok(()),
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Checkpoints and the end.

    /// The checkpoint of the current window boundary, after flushing the dead letters it covers.
    fn checkpoint(&mut self) -> Result<(Box<Checkpoint>, Progress), TrainError> {
        let dead_letters = self.flush_dead_letters()?;
        self.sequence += 1;
        self.rows_since_commit = 0;
        let progress = self.progress();
        let checkpoint = Checkpoint {
            sequence: self.sequence,
            source: to_json(&self.cursor)?,
            sink: to_json(&SinkState { dead_letters })?,
            counters: Counters {
                processed: progress.processed,
                failed: progress.failed,
                skipped: 0,
                retried: 0,
            },
            state: to_json(&self.state)?,
            committed_at: Utc::now(),
        };
        Ok((Box::new(checkpoint), progress))
    }

    fn flush_dead_letters(&mut self) -> Result<u64, TrainError> {
        let flushed = match self.durability {
            Durability::PowerLoss => self.dead_letters.sync(),
            _ => self.dead_letters.flush(),
        };
        flushed.map_err(TrainError::DeadLetters)
    }

    /// Writes the model file and builds the summary.
    fn finish(&mut self) -> Result<Pause, TrainError> {
        self.flush_dead_letters()?;
        let model = self.trained_model()?;
        write_atomically(&self.params.model_out, &model, self.durability)?;
        let rows = &self.state.rows;
        let summary = json!({
            "model_out": self.params.model_out,
            "model": model.model,
            "classes": model.classes,
            "features": model.features,
            "epochs": model.metrics.epochs,
            "epochs_run": model.training.epochs_run,
            "stopped_early": model.training.stopped_early,
            "l2": model.training.l2,
            "holdout_accuracy": model.metrics.holdout_accuracy,
            "eval_accuracy": model.metrics.eval_accuracy,
            "rows": {
                "input": rows.input,
                "train": rows.train,
                "holdout": rows.holdout,
                "bad": rows.bad,
                "eval": rows.eval,
                "eval_bad": rows.eval_bad,
            },
            "bad_rows": rows.bad + rows.eval_bad,
            "dead_letters": self.params.dead_letter,
        });
        Ok(Pause::Finished { summary, progress: self.progress() })
    }

    fn trained_model(&self) -> Result<TrainedModel, TrainError> {
        let (Some(model), Some(scaler)) = (&self.state.model, &self.state.scaler) else {
            return Err(TrainError::Checkpoint { reason: "the run finished without a model".to_owned() });
        };
        Ok(TrainedModel {
            format: MODEL_FORMAT.to_owned(),
            model: model.kind,
            label: self.params.label.clone(),
            features: self.state.features.clone(),
            classes: self.state.classes.clone(),
            weights: model.weights.chunks(model.features.max(1)).map(<[f64]>::to_vec).collect(),
            bias: model.biases.clone(),
            scaler: Scaler::clone(scaler),
            metrics: ModelMetrics {
                epochs: self.state.epochs.clone(),
                holdout_accuracy: self.state.holdout.accuracy(),
                eval_accuracy: self.state.eval.accuracy(),
            },
            training: TrainingInfo {
                input: self.params.input.display().to_string(),
                epochs: self.params.epochs,
                epochs_run: self.state.epochs.len() as u32,
                stopped_early: self.state.stopping.stopped_early,
                tolerance: self.params.tolerance,
                patience: self.params.patience,
                learning_rate: self.params.learning_rate,
                l2: self.state.l2,
                seed: self.params.seed,
                batch_size: self.batch_size as u32,
                holdout: self.params.holdout,
                train_rows: self.state.rows.train,
                holdout_rows: self.state.rows.holdout,
                bad_rows: self.state.rows.bad,
            },
        })
    }
}

/// `value` as JSON (the state holds only maps with string keys and finite numbers, so this fails
/// only on a bug).
fn to_json<T: Serialize>(value: &T) -> Result<Value, TrainError> {
    serde_json::to_value(value).map_err(|error| TrainError::Internal { reason: error.to_string() })
}

/// The params and config that decide the model: a checkpoint resumes only a task with the same.
/// (`concurrency`, `checkpoint_batches` and the output paths do not change the model, so they may
/// change between runs.)
fn fingerprint(params: &TrainParams, config: &BatchConfig) -> Value {
    json!({
        "input": params.input,
        "format": params.format,
        "label": params.label,
        "features": params.features,
        "epochs": params.epochs,
        "tolerance": params.tolerance,
        "patience": params.patience,
        "learning_rate": params.learning_rate,
        "l2": params.l2,
        "seed": params.seed,
        "holdout": params.holdout,
        "eval_input": params.eval_input,
        "batch_size": config.batch_size,
        "shuffle_batches": params.shuffle_batches,
    })
}

/// Opens `input` and resolves the feature columns: the given ones, or every other numeric column.
fn open_input(params: &TrainParams) -> Result<(RowReader, Vec<String>), TrainError> {
    let mut reader = RowReader::open(&params.input, params.format)?;
    let features = match &params.features {
        Some(features) => {
            reader.check_json_columns(std::slice::from_ref(&params.label), "label")?;
            reader.check_json_columns(features, "features")?;
            features.clone()
        }
        None => reader.sniff_features(&params.label)?,
    };
    if features.is_empty() {
        return Err(TrainError::NoFeatures { label: params.label.clone(), path: params.input.clone() });
    }
    reader.bind(&features, &params.label, None)?;
    Ok((reader, features))
}

fn write_dead_letter(
    writer: &mut JsonLinesWriter<DeadLetter>,
    reader: &RowReader,
    row: &Row,
    problem: RowProblem,
) -> Result<(), TrainError> {
    let letter = DeadLetter {
        file: reader.path().display().to_string(),
        line: row.start.line,
        offset: row.start.offset,
        code: problem.code(),
        message: problem.to_string(),
        raw: reader.raw_text(),
    };
    writer.write(&letter).map_err(TrainError::DeadLetters)
}

/// Writes `model` to `path` so that a reader sees the old file or the new one, never half of one: to
/// a temporary file beside it, synced, then renamed over it.
fn write_atomically(path: &Path, model: &TrainedModel, durability: Durability) -> Result<(), TrainError> {
    let write_error = |source: std::io::Error| TrainError::WriteModel { path: path.to_owned(), source };
    let mut bytes =
        serde_json::to_vec_pretty(model).map_err(|error| write_error(std::io::Error::other(error)))?;
    bytes.push(b'\n');
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary: PathBuf = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let (Durability::PowerLoss, Some(parent)) = (durability, parent) {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(write_error)
}
