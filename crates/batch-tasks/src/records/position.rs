//! The shapes the chunk runner stores in a [`Checkpoint`]: where the input resumes, how long the two
//! output files were, and the kind's summary.

use batch_model::{Checkpoint, Counters};
use pump_core::source::FilePosition;
use serde::{Deserialize, Serialize};

use super::error::RunError;
use super::job::RecordJob;

/// The committed lengths of the output and dead-letter files: `Checkpoint::sink`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SinkPosition {
    /// Bytes of the output file covered by the checkpoint.
    pub(crate) output: u64,
    /// Bytes of the dead-letter file covered by the checkpoint.
    pub(crate) dead_letters: u64,
}

/// Where a run starts: from the last checkpoint, or from the beginning.
#[derive(Debug)]
pub(crate) struct ResumePoint<S> {
    /// The checkpoint's sequence (0 before the first).
    pub(crate) sequence: u64,
    /// Where the input resumes: `Checkpoint::source`.
    pub(crate) source: FilePosition,
    /// Where the outputs resume.
    pub(crate) sink: SinkPosition,
    /// The counts so far.
    pub(crate) counters: Counters,
    /// The summary so far: `Checkpoint::state`.
    pub(crate) summary: S,
}

impl<S: Default> ResumePoint<S> {
    /// The start of a task that never committed a checkpoint.
    pub(crate) fn start() -> ResumePoint<S> {
        ResumePoint {
            sequence: 0,
            source: FilePosition::START,
            sink: SinkPosition::default(),
            counters: Counters::default(),
            summary: S::default(),
        }
    }
}

/// Reads a checkpoint written by the chunk runner; a checkpoint of another shape is a
/// [`RunError::BadCheckpoint`].
pub(crate) fn resume_point<J: RecordJob>(
    checkpoint: Option<&Checkpoint>,
) -> Result<ResumePoint<J::Summary>, RunError> {
    let Some(checkpoint) = checkpoint else {
        return Ok(ResumePoint::start());
    };
    let bad = |part: &'static str| {
        move |source: serde_json::Error| RunError::BadCheckpoint {
            sequence: checkpoint.sequence,
            part,
            source,
        }
    };
    let source: FilePosition = serde_json::from_value(checkpoint.source.clone()).map_err(bad("source"))?;
    let sink: SinkPosition = serde_json::from_value(checkpoint.sink.clone()).map_err(bad("sink"))?;
    let summary = <J::Summary as serde::Deserialize>::deserialize(&checkpoint.state).map_err(bad("state"))?;
    Ok(ResumePoint { sequence: checkpoint.sequence, source, sink, counters: checkpoint.counters, summary })
}
