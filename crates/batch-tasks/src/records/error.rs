//! Why a chunk-runner run failed ([`RunError`]), each reason with its stable code, and how it is
//! recorded on the task ([`TaskError`]).

use std::path::PathBuf;

use batch_model::{ErrorCode, TaskError};
use pump_core::PipelineError;
use pump_core::sink::WriteError;

use super::sink::SinkFailure;
use super::source::SourceFailure;

/// Why a run of the [`ChunkRunner`](super::ChunkRunner) ended without completing. Every variant maps to
/// an [`ErrorCode`] ([`RunError::code`]); [`RunError::to_task_error`] records it on the task with the
/// whole chain of causes in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Two of the job's files are the same path (`CONFIGURATION_ERROR`).
    #[error("the {first} and the {second} are the same file {}", path.display())]
    SamePath {
        /// The first role (`input`, `output`, `dead-letter file`).
        first: &'static str,
        /// The second role.
        second: &'static str,
        /// The path both name.
        path: PathBuf,
    },
    /// A job run with [`ChunkRunner::run`](super::ChunkRunner::run) names no file for a role
    /// (`CONFIGURATION_ERROR`).
    #[error("the job names no {role}")]
    MissingPath {
        /// The role (`input`, `output`, `dead-letter file`).
        role: &'static str,
    },
    /// A partitioned task's input is not a regular file (a pipe, a device): splitting it would
    /// consume it (`CONFIGURATION_ERROR`).
    #[error("partitions: {} is not a regular file, so it cannot be split into partitions", input.display())]
    NotSplittable {
        /// The input.
        input: PathBuf,
    },
    /// The task's last checkpoint was not written by the chunk runner (`STORAGE_ERROR`).
    #[error("checkpoint {sequence} has no valid {part} for a records task")]
    BadCheckpoint {
        /// The checkpoint's sequence.
        sequence: u64,
        /// The part that does not parse (`source`, `sink`, `state`).
        part: &'static str,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// An output file is shorter than its checkpoint says: it was truncated or replaced since (on
    /// power loss without `durability: power_loss`, say). Appending would corrupt it, so the task
    /// stops and leaves the file as it is (`STORAGE_ERROR`).
    #[error(
        "the {file} {} is shorter than its checkpoint: {actual} bytes, expected at least {expected}; it was \
         truncated or replaced after the checkpoint (power loss without durability power_loss?), so the task \
         cannot resume without corrupting it and the file was left untouched",
        path.display()
    )]
    ShorterThanCheckpoint {
        /// Which file (`output`, `dead-letter file`).
        file: &'static str,
        /// The file.
        path: PathBuf,
        /// The checkpointed length.
        expected: u64,
        /// The file's length now.
        actual: u64,
    },
    /// An output file could not be opened, written or synced (`STORAGE_ERROR`), or the kind produced
    /// an output that does not serialize (`PROCESSING_ERROR`).
    #[error("cannot write the {file}")]
    Write {
        /// Which file (`output`, `dead-letter file`).
        file: &'static str,
        /// The writer's error (it names the path).
        #[source]
        source: WriteError,
    },
    /// A partition's file could not be taken as the start of a merged file (see
    /// [`MergeFile::adopt_file`](super::MergeFile::adopt_file)): the kind asked for it after
    /// writing (`PROCESSING_ERROR`), or it is gone, changed, or not the file an earlier claim's merge
    /// adopted (`STORAGE_ERROR`). Nothing is published.
    #[error("cannot start the {file} with {}: {reason}", path.display())]
    Adopt {
        /// Which merged file (`output`).
        file: &'static str,
        /// The partition's file.
        path: PathBuf,
        /// What is wrong.
        reason: AdoptFailure,
    },
    /// The input could not be opened or read (`STORAGE_ERROR`).
    #[error("cannot read {input}")]
    Read {
        /// What was read (`the input /data/in.jsonl`).
        input: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A source failed as a whole with a code of its own (an API refusing the token:
    /// `PROCESSING_ERROR`).
    #[error(transparent)]
    Source(#[from] SourceFailure),
    /// A sink that is not a file (a table) failed with a code of its own (`STORAGE_ERROR` for a
    /// server that cannot be reached or refuses the rows).
    #[error(transparent)]
    Sink(#[from] SinkFailure),
    /// The kind's in-order step refused to go on (a bound passed, a sum overflowing), with the
    /// kind's code.
    #[error("{}", error.message)]
    Kind {
        /// The kind's error.
        error: TaskError,
    },
    /// The kind's summary does not serialize to JSON (`PROCESSING_ERROR`).
    #[error("cannot store the task's summary")]
    Summary {
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// More records failed than the task's skip limit allows (`PROCESSING_ERROR`).
    #[error("{failed} records failed, more than the skip limit of {limit}")]
    SkipLimit {
        /// Records failed so far.
        failed: u64,
        /// The task's `skip_limit`.
        limit: u64,
    },
    /// The manager refused a checkpoint: its store failed (`STORAGE_ERROR`) or the task's lease was
    /// lost (`INVALID_STATE`). The run stops at once.
    #[error("cannot commit checkpoint {sequence}: {error}")]
    Commit {
        /// The checkpoint's sequence.
        sequence: u64,
        /// The manager's error, with its code.
        error: TaskError,
    },
    /// In-flight work was aborted through the job's cancellation token (`CANCELLED`).
    #[error("in-flight work was aborted")]
    Aborted,
    /// The pipeline failed in the kind's code: a panic, most likely (`PROCESSING_ERROR`).
    #[error("the records pipeline failed")]
    Pipeline {
        /// The pipeline's error.
        #[source]
        source: PipelineError,
    },
}

impl RunError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            RunError::SamePath { .. } | RunError::MissingPath { .. } | RunError::NotSplittable { .. } => {
                ErrorCode::ConfigurationError
            }
            RunError::Adopt { reason: AdoptFailure::AfterWrite, .. } => ErrorCode::ProcessingError,
            RunError::BadCheckpoint { .. }
            | RunError::Adopt { .. }
            | RunError::ShorterThanCheckpoint { .. }
            | RunError::Read { .. } => ErrorCode::StorageError,
            RunError::Source(failure) => failure.code,
            RunError::Sink(failure) => failure.code,
            RunError::Kind { error } => error.code,
            RunError::Write { source: WriteError::Serialize { .. }, .. } => ErrorCode::ProcessingError,
            RunError::Write { .. } => ErrorCode::StorageError,
            RunError::Summary { .. } | RunError::SkipLimit { .. } | RunError::Pipeline { .. } => {
                ErrorCode::ProcessingError
            }
            RunError::Commit { error, .. } => error.code,
            RunError::Aborted => ErrorCode::Cancelled,
        }
    }

    /// The error as recorded on the task: its code, its message followed by its causes, and the
    /// offending path or counts as details. Never retryable: the manager does not retry whole tasks.
    pub fn to_task_error(&self) -> TaskError {
        let details = match self {
            RunError::SamePath { path, .. } => serde_json::json!({ "path": path }),
            RunError::NotSplittable { input } => serde_json::json!({ "param": "partitions", "input": input }),
            RunError::Read { input, .. } => serde_json::json!({ "input": input }),
            RunError::Kind { error } => error.details.clone(),
            RunError::ShorterThanCheckpoint { path, expected, actual, .. } => {
                serde_json::json!({ "path": path, "expected": expected, "actual": actual })
            }
            RunError::Adopt { path, reason, .. } => reason.details(path),
            RunError::SkipLimit { failed, limit } => serde_json::json!({ "failed": failed, "limit": limit }),
            RunError::BadCheckpoint { sequence, .. } | RunError::Commit { sequence, .. } => {
                serde_json::json!({ "sequence": sequence })
            }
            RunError::Write { .. }
            | RunError::MissingPath { .. }
            | RunError::Source(_)
            | RunError::Sink(_)
            | RunError::Summary { .. }
            | RunError::Aborted
            | RunError::Pipeline { .. } => serde_json::Value::Null,
        };
        TaskError::new(self.code(), batch_model::message_with_causes(self))
            .with_details(details)
            .not_retryable()
    }
}

/// Why a merge could not start a file with a partition's file ([`RunError::Adopt`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptFailure {
    /// The merged file has content already: only its first content can be adopted (a kind's bug).
    #[error("something was written before it")]
    AfterWrite,
    /// An earlier claim's merge adopted it (renamed it to `staged`) and the partition's file is
    /// found under neither name.
    #[error(
        "an earlier claim of the task (epoch {epoch}) adopted it as {}, and neither file exists",
        staged.display()
    )]
    Missing {
        /// The epoch of the claim that adopted it.
        epoch: u64,
        /// The name that claim renamed it to.
        staged: PathBuf,
    },
    /// Its length is not the one recorded when it was adopted (it was replaced or truncated).
    #[error("it holds {actual} bytes where {expected} were adopted")]
    Changed {
        /// The length recorded in the merge's checkpoint.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// The merge's checkpoint records the adoption of another file, or one by this very claim.
    #[error("the merge's checkpoint records the adoption of {} by the claim of epoch {epoch}", adopted.display())]
    NotAdopted {
        /// The file the checkpoint names.
        adopted: PathBuf,
        /// The epoch of the claim that adopted it.
        epoch: u64,
    },
}

impl AdoptFailure {
    fn details(&self, path: &std::path::Path) -> serde_json::Value {
        match self {
            AdoptFailure::AfterWrite => serde_json::json!({ "path": path }),
            AdoptFailure::Missing { epoch, staged } => {
                serde_json::json!({ "path": path, "epoch": epoch, "staged": staged })
            }
            AdoptFailure::Changed { expected, actual } => {
                serde_json::json!({ "path": path, "expected": expected, "actual": actual })
            }
            AdoptFailure::NotAdopted { adopted, epoch } => {
                serde_json::json!({ "path": path, "adopted": adopted, "epoch": epoch })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_than_checkpoint_is_a_storage_error_naming_the_file_and_lengths() {
        let error = RunError::ShorterThanCheckpoint {
            file: "output",
            path: PathBuf::from("/data/out.jsonl"),
            expected: 4096,
            actual: 100,
        };
        let recorded = error.to_task_error();
        assert_eq!(recorded.code, ErrorCode::StorageError);
        assert!(recorded.message.starts_with(
            "the output /data/out.jsonl is shorter than its checkpoint: 100 bytes, expected at least 4096"
        ));
        assert_eq!(recorded.details["expected"], 4096);
        assert!(!recorded.retryable);
    }

    #[test]
    fn causes_are_part_of_the_recorded_message() {
        let source = std::io::Error::other("disk full");
        let error = RunError::Write {
            file: "output",
            source: WriteError::Io { path: PathBuf::from("out.jsonl"), source },
        };
        assert_eq!(error.code(), ErrorCode::StorageError);
        assert_eq!(
            error.to_task_error().message,
            "cannot write the output: cannot write out.jsonl: disk full"
        );
    }

    #[test]
    fn a_refused_commit_keeps_the_managers_code() {
        let error =
            RunError::Commit { sequence: 3, error: TaskError::new(ErrorCode::InvalidState, "lease lost") };
        assert_eq!(error.code(), ErrorCode::InvalidState);
        assert_eq!(RunError::SkipLimit { failed: 4, limit: 3 }.code(), ErrorCode::ProcessingError);
        assert_eq!(RunError::Aborted.code(), ErrorCode::Cancelled);
    }
}
