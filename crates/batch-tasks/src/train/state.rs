//! What a `train` checkpoint holds: where the run is ([`Cursor`], the checkpoint's `source`), how far
//! the dead-letter file is written (its `sink`), and the kind's own state ([`TrainState`]: scan
//! statistics, scaler, classes, weights, running metrics, counters).
//!
//! Every number that later work depends on is stored exactly: counters as integers, and `f64`s
//! through serde_json with `float_roundtrip`, which writes the shortest text that reads back to the
//! same bits and reads it back to those bits. That is what lets a resumed run reach the very same
//! weights as an uninterrupted one.

use std::collections::BTreeSet;

use batch_model::Checkpoint;
use pump_core::source::FilePosition;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::train::error::TrainError;
use crate::train::model::{EpochMetrics, LinearModel};
use crate::train::scaler::{Scaler, Welford};

/// The version of the checkpoint layout this code writes and reads.
pub(super) const STATE_VERSION: u32 = 2;

/// The passes a run makes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub(super) enum Phase {
    /// The first pass over `input`: feature statistics (for the scaler), the class set, bad rows.
    Scan,
    /// A training pass over `input`; `epoch` counts from 0.
    Train {
        /// The epoch, from 0.
        epoch: u32,
    },
    /// The accuracy of the final model on the held-out rows of `input`.
    Holdout,
    /// The accuracy of the final model on `eval_input`.
    Eval,
    /// Every pass is done: the model is written.
    Done,
}

/// Where a run is: its pass, the position in that pass's file, and how many shuffle windows of the
/// pass are done. A checkpoint's `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// The pass.
    #[serde(flatten)]
    pub(super) phase: Phase,
    /// The byte offset where the pass goes on.
    pub(super) offset: u64,
    /// The line where the pass goes on.
    pub(super) line: u64,
    /// Windows of the pass already done (seeds the next window's shuffle).
    pub(super) window: u64,
}

impl Cursor {
    /// The start of `phase`.
    pub(super) fn start(phase: Phase) -> Cursor {
        Cursor { phase, offset: FilePosition::START.offset, line: FilePosition::START.line, window: 0 }
    }

    /// The file position.
    pub(super) fn position(&self) -> FilePosition {
        FilePosition { offset: self.offset, line: self.line }
    }

    /// Moves to `position`.
    pub(super) fn set_position(&mut self, position: FilePosition) {
        self.offset = position.offset;
        self.line = position.line;
    }
}

/// The first pass's accumulators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ScanState {
    /// Feature statistics over the training rows.
    pub(super) welford: Welford,
    /// The labels of the good rows.
    pub(super) classes: BTreeSet<String>,
}

/// Loss and hits summed over the current epoch so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct Running {
    /// Summed log-loss.
    pub(super) loss: f64,
    /// Rows predicted right.
    pub(super) correct: u64,
    /// Rows trained on.
    pub(super) rows: u64,
}

/// The stopping rule's memory.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct Stopping {
    /// The lowest epoch objective so far.
    pub(super) best: Option<f64>,
    /// Epochs in a row whose objective did not improve on `best` by more than the tolerance.
    pub(super) stale: u32,
    /// The rule ended training before `epochs`.
    pub(super) stopped_early: bool,
}

/// Hits of an evaluation pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct Hits {
    /// Rows predicted right.
    pub(super) correct: u64,
    /// Rows evaluated.
    pub(super) rows: u64,
}

impl Hits {
    /// `correct / rows`; `None` without rows.
    pub(super) fn accuracy(&self) -> Option<f64> {
        (self.rows > 0).then(|| self.correct as f64 / self.rows as f64)
    }
}

/// Row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct RowCounts {
    /// Records of `input` (good and bad).
    pub(super) input: u64,
    /// Good rows trained on (per epoch).
    pub(super) train: u64,
    /// Good rows held out.
    pub(super) holdout: u64,
    /// Bad rows of `input`.
    pub(super) bad: u64,
    /// Records of `eval_input` evaluated (good rows with a known label).
    pub(super) eval: u64,
    /// Bad rows of `eval_input` (unknown labels included).
    pub(super) eval_bad: u64,
}

/// The kind's own state: a checkpoint's `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TrainState {
    /// [`STATE_VERSION`].
    pub(super) version: u32,
    /// The params and config that decide the result; a checkpoint resumes only a task with the same.
    pub(super) fingerprint: Value,
    /// The feature columns, resolved at the start.
    pub(super) features: Vec<String>,
    /// The first pass's accumulators, while it runs.
    pub(super) scan: Option<ScanState>,
    /// The scaler, once the first pass is done.
    pub(super) scaler: Option<Scaler>,
    /// The classes, sorted, once the first pass is done.
    pub(super) classes: Vec<String>,
    /// The weights, once the first pass is done.
    pub(super) model: Option<LinearModel>,
    /// AdaGrad's running sums of squared gradients, one per weight then per bias (with the model).
    #[serde(default)]
    pub(super) squares: Vec<f64>,
    /// The L2 penalty in use (the param, or `1 / training rows`), once the first pass is done.
    #[serde(default)]
    pub(super) l2: f64,
    /// The stopping rule: the best epoch objective so far, and epochs in a row without progress.
    #[serde(default)]
    pub(super) stopping: Stopping,
    /// The current epoch's loss and hits so far.
    pub(super) running: Running,
    /// The finished epochs' metrics.
    pub(super) epochs: Vec<EpochMetrics>,
    /// Hold-out hits.
    pub(super) holdout: Hits,
    /// `eval_input` hits.
    pub(super) eval: Hits,
    /// Row counts.
    pub(super) rows: RowCounts,
}

/// A checkpoint's `sink`: the dead-letter file's committed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct SinkState {
    /// Bytes of the dead-letter file covered by the checkpoint.
    pub(super) dead_letters: u64,
}

/// A checkpoint read back: where to go on, the dead-letter length and the state.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resumed {
    /// Where the run goes on.
    pub(super) cursor: Cursor,
    /// The dead-letter file's committed length.
    pub(super) sink: SinkState,
    /// The state.
    pub(super) state: TrainState,
    /// The checkpoint's sequence number.
    pub(super) sequence: u64,
}

impl Resumed {
    /// Reads `checkpoint` and checks it was written for `fingerprint`.
    pub(super) fn read(checkpoint: &Checkpoint, fingerprint: &Value) -> Result<Resumed, TrainError> {
        let invalid = |what: &str, error: serde_json::Error| TrainError::Checkpoint {
            reason: format!("its {what} is not a train checkpoint's: {error}"),
        };
        let cursor: Cursor =
            serde_json::from_value(checkpoint.source.clone()).map_err(|error| invalid("source", error))?;
        let sink: SinkState =
            serde_json::from_value(checkpoint.sink.clone()).map_err(|error| invalid("sink", error))?;
        let version = checkpoint.state.get("version").and_then(Value::as_u64);
        if version != Some(u64::from(STATE_VERSION)) {
            return Err(TrainError::Checkpoint {
                reason: format!("its state has version {version:?}, expected {STATE_VERSION}"),
            });
        }
        let state: TrainState =
            serde_json::from_value(checkpoint.state.clone()).map_err(|error| invalid("state", error))?;
        if &state.fingerprint != fingerprint {
            let changed = changed_keys(&state.fingerprint, fingerprint);
            return Err(TrainError::Checkpoint {
                reason: format!(
                    "it was written with other params or config ({} changed)",
                    changed.join(", ")
                ),
            });
        }
        Ok(Resumed { cursor, sink, state, sequence: checkpoint.sequence })
    }
}

/// The keys whose values differ between two JSON objects.
fn changed_keys(stored: &Value, current: &Value) -> Vec<String> {
    let keys: BTreeSet<&String> = [stored, current]
        .iter()
        .filter_map(|value| value.as_object())
        .flat_map(|object| object.keys())
        .collect();
    keys.into_iter().filter(|key| stored.get(key.as_str()) != current.get(key.as_str())).cloned().collect()
}
