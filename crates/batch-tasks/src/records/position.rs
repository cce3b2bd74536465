//! The shapes the chunk runner stores in a [`Checkpoint`]: where the input resumes (the source's
//! position), where each sink resumes and which claim's staged files hold those bytes, and the kind's
//! summary.

use batch_model::{Checkpoint, Counters};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::RunError;

/// `Checkpoint::sink`: each sink's committed position, and the fencing facts.
///
/// With file sinks under an unfenced claim this is `{"output": 1234, "dead_letters": 56}`, as it
/// always was; a fenced claim adds `"epoch"`, a job with a state log `"log"`, the task's last
/// checkpoint `"final": true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SinkPositions<O, D> {
    /// The output sink's position (a file's committed length).
    pub(crate) output: O,
    /// The dead-letter sink's position.
    pub(crate) dead_letters: D,
    /// The claim whose staged files hold the committed bytes (0: unfenced, the files in place).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) epoch: u64,
    /// The state log's committed length, when the job keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) log: Option<u64>,
    /// Every record is done and the tail written: what is left is publishing the files.
    #[serde(default, rename = "final", skip_serializing_if = "is_false")]
    pub(crate) is_final: bool,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Where a run starts: from the last checkpoint, or from the beginning.
#[derive(Debug)]
pub(crate) struct ResumePoint<S, P, O, D> {
    /// The checkpoint's sequence (0 before the first).
    pub(crate) sequence: u64,
    /// Where the input resumes: `Checkpoint::source` (`None`: the start).
    pub(crate) source: Option<P>,
    /// Where the sinks resume (`None`: fresh files).
    pub(crate) sinks: Option<SinkPositions<O, D>>,
    /// The counts so far.
    pub(crate) counters: Counters,
    /// The summary so far: `Checkpoint::state`.
    pub(crate) summary: S,
}

/// Reads a checkpoint written by the chunk runner; a checkpoint of another shape is a
/// [`RunError::BadCheckpoint`].
pub(crate) fn resume_point<S, P, O, D>(
    checkpoint: Option<&Checkpoint>,
) -> Result<ResumePoint<S, P, O, D>, RunError>
where
    S: DeserializeOwned + Default,
    P: DeserializeOwned,
    O: DeserializeOwned,
    D: DeserializeOwned,
{
    let Some(checkpoint) = checkpoint else {
        return Ok(ResumePoint {
            sequence: 0,
            source: None,
            sinks: None,
            counters: Counters::default(),
            summary: S::default(),
        });
    };
    let bad = |part: &'static str| {
        move |source: serde_json::Error| RunError::BadCheckpoint {
            sequence: checkpoint.sequence,
            part,
            source,
        }
    };
    let source: P = P::deserialize(&checkpoint.source).map_err(bad("source"))?;
    let sinks: SinkPositions<O, D> = SinkPositions::deserialize(&checkpoint.sink).map_err(bad("sink"))?;
    let summary = S::deserialize(&checkpoint.state).map_err(bad("state"))?;
    Ok(ResumePoint {
        sequence: checkpoint.sequence,
        source: Some(source),
        sinks: Some(sinks),
        counters: checkpoint.counters,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfenced_sink_position_keeps_its_old_shape_and_old_ones_read_back() {
        let unfenced =
            SinkPositions { output: 10u64, dead_letters: 2u64, epoch: 0, log: None, is_final: false };
        assert_eq!(
            serde_json::to_value(&unfenced).unwrap(),
            serde_json::json!({ "output": 10, "dead_letters": 2 })
        );
        let fenced = SinkPositions { epoch: 7, log: Some(32), is_final: true, ..unfenced.clone() };
        let json = serde_json::to_value(&fenced).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "output": 10, "dead_letters": 2, "epoch": 7, "log": 32, "final": true })
        );
        assert_eq!(serde_json::from_value::<SinkPositions<u64, u64>>(json).unwrap(), fenced);
    }
}
