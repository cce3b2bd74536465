//! The merge of a partitioned task: the parent's output and dead-letter file written from its
//! partitions' files, then committed and published exactly as a run publishes its own
//! ([`merge_partitions`]).
//!
//! The kind says how the files combine (a plain concatenation, or a selection of lines); this
//! module does what every merge must: write into files staged under the parent claim's epoch,
//! make them durable, commit a *final* checkpoint under that epoch (a stale holder's is refused
//! there), then rename them to their final names and remove the partitions' files. A merge that
//! died after its final checkpoint is finished by the next claim from that checkpoint alone (the
//! partitions' files may be gone by then): publishing is idempotent, as for a run.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use batch_model::{Checkpoint, Counters, Durability, ErrorCode, Progress, TaskError};
use chrono::Utc;
use pump_core::sink::WriteError;
use serde::Deserialize as _;
use serde_json::Value;

use super::error::RunError;
use super::position::SinkPositions;
use super::sink::{CommitSink as _, JsonLinesFile, Resume, SinkTarget as _, staged_path};
use crate::kind::{JobContext, JobOutcome};

/// The parent's files a merge writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTargets {
    /// The parent's output (its final name).
    pub output: PathBuf,
    /// The parent's dead-letter file (its final name).
    pub dead_letters: PathBuf,
    /// The partitions' files (outputs, dead letters, state logs), removed once the merged files
    /// are published.
    pub partition_files: Vec<PathBuf>,
}

/// What a kind's merge computed beside the files: the parent's counters and result summary, as an
/// unpartitioned run would have ended with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The records processed, failed, skipped (and retried) over the whole input.
    pub counters: Counters,
    /// The task's result summary.
    pub summary: Value,
}

/// One file a merge writes, staged under the parent claim's epoch.
///
/// ```no_run
/// # fn demo(output: &mut batch_tasks::records::MergeFile) -> Result<(), batch_tasks::records::RunError> {
/// output.append_file(std::path::Path::new("/out/orders.partition-1-of-2.jsonl"))?; // in the kernel
/// output.append(b"{\"group\":\"all\"}\n")?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MergeFile {
    /// The staged file written.
    own: PathBuf,
    role: &'static str,
    writer: BufWriter<File>,
    len: u64,
}

impl MergeFile {
    /// Creates (or truncates) the staged file of `path` for `epoch`.
    fn create(path: &Path, role: &'static str, epoch: u64) -> Result<MergeFile, RunError> {
        let own = staged_path(path, epoch);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&own)
            .map_err(|source| io_error(role, &own, source))?;
        Ok(MergeFile { own, role, writer: BufWriter::with_capacity(256 * 1024, file), len: 0 })
    }

    /// Appends the whole file at `from` (on Linux, copied inside the kernel: `copy_file_range`);
    /// returns the bytes copied.
    pub fn append_file(&mut self, from: &Path) -> Result<u64, RunError> {
        let mut source = File::open(from).map_err(|source| io_error(self.role, from, source))?;
        let copied = io::copy(&mut source, &mut self.writer)
            .map_err(|source| io_error(self.role, &self.own, source))?;
        self.len += copied;
        Ok(copied)
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), RunError> {
        self.writer.write_all(bytes).map_err(|source| io_error(self.role, &self.own, source))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// The bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushes (and with `durable`, syncs) the file; its length.
    fn finish(mut self, durable: bool) -> Result<u64, RunError> {
        self.writer.flush().map_err(|source| io_error(self.role, &self.own, source))?;
        if durable {
            self.writer.get_ref().sync_all().map_err(|source| io_error(self.role, &self.own, source))?;
        }
        Ok(self.len)
    }
}

fn io_error(role: &'static str, path: &Path, source: io::Error) -> RunError {
    RunError::Write { file: role, source: WriteError::Io { path: path.to_owned(), source } }
}

/// The role names of the two files, as in runs.
const OUTPUT: &str = "output";
const DEAD_LETTERS: &str = "dead-letter file";

/// Merges the partitions of the partitioned task in `job` (the parent, under its claim) into
/// `targets`: `merge` writes the parent's output and dead-letter file (on a blocking thread) and
/// returns the counters and summary; then the files are made durable, a final checkpoint is
/// committed under the claim's epoch, the files are published under their final names, and the
/// partitions' files are removed. Returns the parent's outcome.
///
/// When the parent's last checkpoint is already a final one (an earlier merge committed it and its
/// holder died), `merge` is not called: the files of that checkpoint are published, and its
/// counters and summary are the outcome. A stop requested before the merge starts ends it
/// `Stopped`; the partitions stay as they are for a restart.
pub async fn merge_partitions<F>(
    job: &JobContext,
    targets: MergeTargets,
    merge: F,
) -> Result<JobOutcome, TaskError>
where
    F: FnOnce(&mut MergeFile, &mut MergeFile) -> Result<Merged, TaskError> + Send + 'static,
{
    try_merge(job, targets, merge).await.map_err(|error| match error {
        MergeError::Run(error) => error.to_task_error(),
        MergeError::Kind(error) => error,
    })
}

enum MergeError {
    Run(RunError),
    Kind(TaskError),
}

impl From<RunError> for MergeError {
    fn from(error: RunError) -> MergeError {
        MergeError::Run(error)
    }
}

async fn try_merge<F>(job: &JobContext, targets: MergeTargets, merge: F) -> Result<JobOutcome, MergeError>
where
    F: FnOnce(&mut MergeFile, &mut MergeFile) -> Result<Merged, TaskError> + Send + 'static,
{
    let control = Arc::clone(job.control());
    if control.cancellation_token().is_cancelled() {
        return Err(RunError::Aborted.into());
    }
    let durable = job.config().durability == Durability::PowerLoss;
    let epoch = job.epoch();
    let earlier = job.checkpoint().and_then(|checkpoint| {
        let sinks = SinkPositions::<u64, u64>::deserialize(&checkpoint.sink).ok()?;
        sinks.is_final.then(|| (checkpoint.counters, checkpoint.state.clone(), sinks))
    });
    let (counters, summary, sinks) = match earlier {
        Some(done) => done,
        None => {
            if control.stop_requested() {
                return Ok(JobOutcome::Stopped);
            }
            let (output, dead_letters) = (targets.output.clone(), targets.dead_letters.clone());
            let written = blocking(move || {
                let mut output = MergeFile::create(&output, OUTPUT, epoch).map_err(MergeError::Run)?;
                let mut dead_letters =
                    MergeFile::create(&dead_letters, DEAD_LETTERS, epoch).map_err(MergeError::Run)?;
                let merged = merge(&mut output, &mut dead_letters).map_err(MergeError::Kind)?;
                let output = output.finish(durable)?;
                let dead_letters = dead_letters.finish(durable)?;
                Ok((merged, output, dead_letters))
            })
            .await?;
            let (Merged { counters, summary }, output, dead_letters) = written;
            let sinks = SinkPositions { output, dead_letters, epoch, log: None, is_final: true };
            let sequence = job.checkpoint().map_or(0, |checkpoint| checkpoint.sequence) + 1;
            let checkpoint = Checkpoint {
                sequence,
                source: Value::Null,
                sink: serde_json::to_value(&sinks).map_err(|source| RunError::Summary { source })?,
                counters,
                state: summary.clone(),
                committed_at: Utc::now(),
            };
            control
                .commit(checkpoint, final_progress(job, &counters))
                .await
                .map_err(|error| RunError::Commit { sequence, error })?;
            (counters, summary, sinks)
        }
    };
    let partition_files = targets.partition_files;
    blocking(move || {
        for (path, role, position) in [
            (&targets.output, OUTPUT, sinks.output),
            (&targets.dead_letters, DEAD_LETTERS, sinks.dead_letters),
        ] {
            let resume = Resume { position, epoch: sinks.epoch, is_final: true };
            JsonLinesFile::<Value>::new(path.clone(), role)
                .open(Some(resume), epoch, durable)?
                .publish(durable)?;
        }
        for path in &partition_files {
            if let Err(error) = std::fs::remove_file(path)
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "cannot remove a partition's file");
            }
        }
        Ok(())
    })
    .await?;
    Ok(JobOutcome::Completed { summary, progress: final_progress(job, &counters) })
}

/// Runs `work` on the blocking pool (file I/O).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MergeError> + Send + 'static,
) -> Result<T, MergeError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|error| {
        Err(MergeError::Kind(TaskError::new(
            ErrorCode::ProcessingError,
            format!("the merge of the partitions failed: {error}"),
        )))
    })
}

/// The parent's progress at the end: every record done.
fn final_progress(job: &JobContext, counters: &Counters) -> Progress {
    let started_at = job.task().started_at.unwrap_or_else(Utc::now);
    let elapsed = (Utc::now() - started_at).to_std().unwrap_or_default();
    let done = counters.processed + counters.failed + counters.skipped;
    Progress::compute(Some(done), counters.processed, counters.failed, counters.skipped, elapsed)
}
