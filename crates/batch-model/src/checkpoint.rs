//! Checkpoints: what a task needs to resume exactly where its last durable chunk ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Item counters at a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Items written to the output.
    pub processed: u64,
    /// Items sent to the dead-letter output.
    pub failed: u64,
    /// Items deliberately skipped (filtered).
    pub skipped: u64,
    /// Retry attempts made.
    pub retried: u64,
}

/// Everything needed to resume a task exactly where its last durable chunk ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// 1 for the first checkpoint of a task, then +1 per commit.
    pub sequence: u64,
    /// Where the source resumes (e.g. `{"offset": 123, "line": 45}`), as the task kind defines it.
    pub source: serde_json::Value,
    /// Where each output was durably written up to (e.g. `{"output": 4096, "dead_letters": 512}`).
    pub sink: serde_json::Value,
    /// Item counters up to this checkpoint.
    pub counters: Counters,
    /// The task kind's own state (e.g. model weights, epoch), opaque to the manager.
    pub state: serde_json::Value,
    /// When the checkpoint was committed.
    #[serde(with = "crate::timestamp")]
    pub committed_at: DateTime<Utc>,
}
