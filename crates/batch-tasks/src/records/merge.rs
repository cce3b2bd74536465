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
//!
//! # Adoption
//!
//! A concatenation starts with the first partition's output whole, so the merge takes that file
//! over instead of copying it ([`MergeFile::adopt_file`]). The file's inode then becomes the
//! merge's staged output, which a stale merger (paused past its lease) may still hold open and
//! append to when it wakes; the fencing promise is kept by three rules:
//!
//! 1. Before renaming anything the merge commits a non-final checkpoint under its epoch `E1` that
//!    records the adoption: the file `P0` and its length `len0` (it is complete and published, so
//!    it no longer changes). Only once that commit succeeded is `P0` renamed to
//!    `staged_path(output, E1)` and the other partitions appended after its `len0` bytes. A claim
//!    that is stale already has that commit refused and renames nothing; one that goes stale after
//!    it may still rename and append when it wakes, which the next rule allows for.
//! 2. A claim `E2` whose last checkpoint records an adoption by `E1` never adopts: it writes its own
//!    fresh staged file and copies exactly `len0` bytes from the adopted file, opened once, from
//!    `staged_path(output, E1)`, else `P0` (not renamed yet), else the staged name again (renamed
//!    in between). Whatever `E1` writes lies after those bytes, so nothing it writes is copied;
//!    and `E2` never writes to nor publishes `E1`'s file. Neither file there: `STORAGE_ERROR`
//!    ([`AdoptFailure::Missing`]), nothing published.
//! 3. Publishing removes the staged files of older epochs, `E1`'s adopted one with them (a stale
//!    `E1` that renames `P0` only after that leaves its file behind; it is never published).
//!
//! With `durability: power_loss` the adopted file's bytes were synced by the partition's publish;
//! the appended bytes are synced with the file, and the directory (the rename, or a new file's
//! entry) before the final checkpoint.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use batch_model::{Checkpoint, Counters, Durability, ErrorCode, Progress, TaskError};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{AdoptFailure, RunError};
use super::position::SinkPositions;
use super::sink::{
    CommitSink as _, JsonLinesFile, Resume, SinkTarget as _, io_error, staged_path, sync_parent,
};
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
/// output.adopt_file(std::path::Path::new("/out/orders.partition-1-of-2.jsonl"))?; // renamed, not copied
/// output.append_file(std::path::Path::new("/out/orders.partition-2-of-2.jsonl"))?; // in the kernel
/// output.append(b"{\"group\":\"all\"}\n")?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MergeFile {
    /// The final name.
    path: PathBuf,
    /// The staged file written (`staged_path(path, epoch)`).
    own: PathBuf,
    role: &'static str,
    epoch: u64,
    /// Opened (created, or adopted) by the first write.
    writer: Option<BufWriter<File>>,
    len: u64,
    /// The claim, for the output: it may adopt a partition's file ([`MergeFile::adopt_file`]).
    claim: Option<Arc<Claim>>,
}

/// The parent's claim as the output's [`MergeFile`] needs it to adopt a partition's file: where to
/// commit the adoption, and what an earlier claim's merge adopted.
#[derive(Debug)]
struct Claim {
    job: JobContext,
    runtime: tokio::runtime::Handle,
    /// The adoption recorded by the last checkpoint, an earlier claim's.
    earlier: Option<AdoptionCheckpoint>,
    /// The sequence of the merge's next checkpoint.
    next_sequence: AtomicU64,
}

/// `Checkpoint::sink` of a merge that adopted a partition's file as the start of its output:
/// `{"epoch": 7, "adopted": {"path": "/out/orders.partition-1-of-2.jsonl", "len": 4096}}`. It has
/// no sink positions, so it never reads as a run's checkpoint nor as the merge's final one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdoptionCheckpoint {
    /// The claim that adopts the file: it renames it to `staged_path(output, epoch)` once this
    /// checkpoint is committed, and appends only after its first `len` bytes.
    epoch: u64,
    adopted: Adopted,
}

/// The file an adoption takes, and its length then (the first bytes of the merged output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Adopted {
    path: PathBuf,
    len: u64,
}

impl Claim {
    /// Commits the checkpoint recording that the claim of `epoch` adopts `adopted` (one store round
    /// trip, from the merge's blocking thread). A stale claim's commit is refused.
    fn commit_adoption(&self, epoch: u64, adopted: Adopted) -> Result<(), RunError> {
        let sequence = self.next_sequence.load(Ordering::SeqCst);
        let sink = serde_json::to_value(AdoptionCheckpoint { epoch, adopted })
            .map_err(|source| RunError::Summary { source })?;
        // The parent's progress as it stands (its partitions' sum): the merge has not counted yet.
        let progress = self.job.task().progress.clone();
        let counters = Counters {
            processed: progress.processed,
            failed: progress.failed,
            skipped: progress.skipped,
            retried: 0,
        };
        let checkpoint = Checkpoint {
            sequence,
            source: Value::Null,
            sink,
            counters,
            state: Value::Null,
            committed_at: Utc::now(),
        };
        self.runtime
            .block_on(self.job.control().commit(checkpoint, progress))
            .map_err(|error| RunError::Commit { sequence, error })?;
        self.next_sequence.store(sequence + 1, Ordering::SeqCst);
        Ok(())
    }
}

impl MergeFile {
    /// The staged file of `path` for `epoch`, created (or truncated) by the first write.
    fn new(path: &Path, role: &'static str, epoch: u64, claim: Option<Arc<Claim>>) -> MergeFile {
        MergeFile {
            path: path.to_owned(),
            own: staged_path(path, epoch),
            role,
            epoch,
            writer: None,
            len: 0,
            claim,
        }
    }

    /// The writer, creating (or truncating) the staged file on first use.
    fn writer(&mut self) -> Result<&mut BufWriter<File>, RunError> {
        match &mut self.writer {
            Some(writer) => Ok(writer),
            writer @ None => {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&self.own)
                    .map_err(|source| io_error(self.role, &self.own, source))?;
                Ok(writer.insert(BufWriter::with_capacity(WRITE_BUFFER, file)))
            }
        }
    }

    /// Takes the whole file at `from` (a completed partition's file: published, it no longer
    /// changes) as this file's first content; returns its length.
    ///
    /// The merged output *adopts* it: a checkpoint under the parent claim's epoch records the
    /// adoption (the file and its length), and only once it is committed is the file renamed to
    /// the output's staged name, so nothing is copied. The fencing holds: when the claim's last
    /// checkpoint records an adoption by an earlier claim (whose holder died, or is paused and may
    /// still append to that file), the file is not adopted again but exactly its adopted length is
    /// copied into a fresh staged file, from the earlier claim's staged name or, if that claim had
    /// not renamed it yet, from `from`. The dead-letter file, and an unfenced claim (epoch 0),
    /// copy it ([`append_file`](MergeFile::append_file)).
    ///
    /// Only as the first content: after a write it is an error ([`AdoptFailure::AfterWrite`]).
    /// Fails with [`RunError::Commit`] when the adoption's checkpoint is refused (a stale claim:
    /// nothing is renamed), and with [`RunError::Adopt`] when the adopted file is gone or changed.
    pub fn adopt_file(&mut self, from: &Path) -> Result<u64, RunError> {
        if self.writer.is_some() {
            return Err(self.adopt_error(from, AdoptFailure::AfterWrite));
        }
        let Some(claim) = self.claim.clone() else {
            return self.append_file(from);
        };
        if let Some(earlier) = &claim.earlier {
            return self.copy_adopted(from, earlier);
        }
        if self.epoch == 0 {
            return self.append_file(from);
        }
        let len = std::fs::metadata(from).map_err(|source| io_error(self.role, from, source))?.len();
        claim.commit_adoption(self.epoch, Adopted { path: from.to_owned(), len })?;
        std::fs::rename(from, &self.own).map_err(|source| io_error(self.role, from, source))?;
        // Written through the file now named `own`, so that what is published is what is written.
        let mut file = OpenOptions::new()
            .write(true)
            .open(&self.own)
            .map_err(|source| io_error(self.role, &self.own, source))?;
        let actual = file.seek(SeekFrom::End(0)).map_err(|source| io_error(self.role, &self.own, source))?;
        if actual != len {
            return Err(self.adopt_error(from, AdoptFailure::Changed { expected: len, actual }));
        }
        self.writer = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        self.len = len;
        Ok(len)
    }

    /// Copies the first `earlier.adopted.len` bytes of the file an earlier claim adopted (from its
    /// staged name, or `from` if it was not renamed yet): that claim only ever appends after them.
    fn copy_adopted(&mut self, from: &Path, earlier: &AdoptionCheckpoint) -> Result<u64, RunError> {
        let AdoptionCheckpoint { epoch, adopted: Adopted { path, len } } = earlier;
        if path != from || *epoch == self.epoch || *epoch == 0 {
            let reason = AdoptFailure::NotAdopted { adopted: path.clone(), epoch: *epoch };
            return Err(self.adopt_error(from, reason));
        }
        let source = self.open_adopted(from, *epoch)?;
        self.copy_from(source, from, *len)
    }

    /// Opens the file the claim of `epoch` adopted: its staged name first (a file found there is
    /// the adopted one), else the partition's name `from`, else the staged name again (that claim
    /// renamed it in between). Opened once: a rename after the open does not matter.
    fn open_adopted(&self, from: &Path, epoch: u64) -> Result<File, RunError> {
        let staged = staged_path(&self.path, epoch);
        for candidate in [&staged, from, &staged] {
            match File::open(candidate) {
                Ok(file) => return Ok(file),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(self.role, candidate, error)),
            }
        }
        Err(self.adopt_error(from, AdoptFailure::Missing { epoch, staged }))
    }

    /// Appends exactly the first `len` bytes of `source` (the adopted file `from`).
    fn copy_from(&mut self, source: File, from: &Path, len: u64) -> Result<u64, RunError> {
        let (own, role) = (self.own.clone(), self.role);
        let copied =
            io::copy(&mut source.take(len), self.writer()?).map_err(|source| io_error(role, &own, source))?;
        self.len += copied;
        if copied < len {
            return Err(self.adopt_error(from, AdoptFailure::Changed { expected: len, actual: copied }));
        }
        Ok(copied)
    }

    fn adopt_error(&self, from: &Path, reason: AdoptFailure) -> RunError {
        RunError::Adopt { file: self.role, path: from.to_owned(), reason }
    }

    /// Appends the whole file at `from` (on Linux, copied inside the kernel: `copy_file_range`);
    /// returns the bytes copied.
    pub fn append_file(&mut self, from: &Path) -> Result<u64, RunError> {
        let mut source = File::open(from).map_err(|source| io_error(self.role, from, source))?;
        let (own, role) = (self.own.clone(), self.role);
        let copied = io::copy(&mut source, self.writer()?).map_err(|source| io_error(role, &own, source))?;
        self.len += copied;
        Ok(copied)
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), RunError> {
        let (own, role) = (self.own.clone(), self.role);
        self.writer()?.write_all(bytes).map_err(|source| io_error(role, &own, source))?;
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

    /// Flushes (and with `durable`, syncs) the file, created empty if nothing was written; its
    /// length. Durable means its directory entry too (a new file, or one renamed into place).
    fn finish(mut self, durable: bool) -> Result<u64, RunError> {
        let (own, role) = (self.own.clone(), self.role);
        let io_error = |source| io_error(role, &own, source);
        let writer = self.writer()?;
        writer.flush().map_err(io_error)?;
        if durable {
            writer.get_ref().sync_all().map_err(io_error)?;
            sync_parent(role, &own)?;
        }
        Ok(self.len)
    }
}

/// The write buffer of a merged file.
const WRITE_BUFFER: usize = 256 * 1024;

/// The role names of the two files, as in runs.
const OUTPUT: &str = "output";
const DEAD_LETTERS: &str = "dead-letter file";

/// Merges the partitions of the partitioned task in `job` (the parent, under its claim) into
/// `targets`: `merge` writes the parent's output and dead-letter file (on a blocking thread) and
/// returns the counters and summary; then the files are made durable, a final checkpoint is
/// committed under the claim's epoch, the files are published under their final names, and the
/// partitions' files are removed. Returns the parent's outcome. When `merge` adopts a file
/// ([`MergeFile::adopt_file`]), the checkpoint recording it is committed first: the final one
/// follows it.
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
            let claim = Arc::new(Claim {
                job: job.clone(),
                runtime: tokio::runtime::Handle::current(),
                earlier: job
                    .checkpoint()
                    .and_then(|checkpoint| AdoptionCheckpoint::deserialize(&checkpoint.sink).ok()),
                next_sequence: AtomicU64::new(
                    job.checkpoint().map_or(0, |checkpoint| checkpoint.sequence) + 1,
                ),
            });
            let (output, dead_letters) = (targets.output.clone(), targets.dead_letters.clone());
            let output_claim = Arc::clone(&claim);
            let written = blocking(move || {
                let mut output = MergeFile::new(&output, OUTPUT, epoch, Some(output_claim));
                let mut dead_letters = MergeFile::new(&dead_letters, DEAD_LETTERS, epoch, None);
                let merged = merge(&mut output, &mut dead_letters).map_err(MergeError::Kind)?;
                let output = output.finish(durable)?;
                let dead_letters = dead_letters.finish(durable)?;
                Ok((merged, output, dead_letters))
            })
            .await?;
            let (Merged { counters, summary }, output, dead_letters) = written;
            let sinks = SinkPositions { output, dead_letters, epoch, log: None, is_final: true };
            let sequence = claim.next_sequence.load(Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// The first partition's file `P0` holds `first`, and a claim of epoch 1 adopted it (its
    /// checkpoint says so); a merge under epoch 2 copies the adopted bytes.
    struct Adopted1 {
        _dir: tempfile::TempDir,
        output: PathBuf,
        p0: PathBuf,
        earlier: AdoptionCheckpoint,
    }

    const FIRST: &[u8] = b"{\"a\":1}\n{\"a\":2}\n";

    fn adopted_by_epoch_1() -> Adopted1 {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.jsonl");
        let p0 = dir.path().join("out.partition-1-of-2.jsonl");
        std::fs::write(&p0, FIRST).unwrap();
        let earlier =
            AdoptionCheckpoint { epoch: 1, adopted: Adopted { path: p0.clone(), len: FIRST.len() as u64 } };
        Adopted1 { _dir: dir, output, p0, earlier }
    }

    /// What the stale claim of epoch 1 does with its file when it wakes: appends after it.
    fn append_garbage(path: &Path) {
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(b"{\"stale\":true}\n").unwrap();
    }

    /// Finishes `file` with `rest` appended; the staged file's bytes.
    fn finished(mut file: MergeFile, rest: &[u8]) -> Vec<u8> {
        file.append(rest).unwrap();
        let own = file.own.clone();
        let len = file.finish(false).unwrap();
        let bytes = std::fs::read(own).unwrap();
        assert_eq!(len, bytes.len() as u64);
        bytes
    }

    #[test]
    fn the_adopted_bytes_are_copied_whatever_the_stale_claim_appends_after_the_open() {
        let case = adopted_by_epoch_1();
        let staged_1 = staged_path(&case.output, 1);
        // The stale claim renamed P0 and appended; then epoch 2 opens its file, and it appends again
        // while epoch 2 copies.
        std::fs::rename(&case.p0, &staged_1).unwrap();
        append_garbage(&staged_1);
        let mut file = MergeFile::new(&case.output, OUTPUT, 2, None);
        let source = file.open_adopted(&case.p0, 1).unwrap();
        append_garbage(&staged_1);
        assert_eq!(file.copy_from(source, &case.p0, case.earlier.adopted.len).unwrap(), FIRST.len() as u64);
        assert_eq!(finished(file, b"{\"a\":3}\n"), b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
        assert!(
            std::fs::read(&staged_1).unwrap().ends_with(b"{\"stale\":true}\n"),
            "its file is not touched"
        );
    }

    #[test]
    fn a_file_opened_under_its_partition_name_is_copied_though_renamed_and_appended_to_after() {
        let case = adopted_by_epoch_1();
        let mut file = MergeFile::new(&case.output, OUTPUT, 2, None);
        // The stale claim had committed the adoption but not renamed yet: P0 is opened.
        let source = file.open_adopted(&case.p0, 1).unwrap();
        let staged_1 = staged_path(&case.output, 1);
        std::fs::rename(&case.p0, &staged_1).unwrap();
        append_garbage(&staged_1);
        file.copy_from(source, &case.p0, case.earlier.adopted.len).unwrap();
        assert_eq!(finished(file, b""), FIRST);
    }

    #[test]
    fn the_adopted_file_under_neither_name_is_a_storage_error_naming_both() {
        let case = adopted_by_epoch_1();
        std::fs::remove_file(&case.p0).unwrap();
        let mut file = MergeFile::new(&case.output, OUTPUT, 2, None);
        let error = file.copy_adopted(&case.p0, &case.earlier).unwrap_err();
        assert_eq!(error.code(), ErrorCode::StorageError);
        let recorded = error.to_task_error();
        assert!(recorded.message.contains("out.partition-1-of-2.jsonl"), "{recorded:?}");
        assert!(recorded.message.contains("out.jsonl.e1.part"), "{recorded:?}");
        assert_eq!(recorded.details["epoch"], 1);
        assert!(!staged_path(&case.output, 2).exists(), "nothing was written");
    }

    #[test]
    fn an_adopted_file_shorter_than_recorded_is_a_storage_error() {
        let case = adopted_by_epoch_1();
        std::fs::write(&case.p0, &FIRST[..5]).unwrap();
        let mut file = MergeFile::new(&case.output, OUTPUT, 2, None);
        let error = file.copy_adopted(&case.p0, &case.earlier).unwrap_err();
        assert!(
            matches!(
                &error,
                RunError::Adopt { reason: AdoptFailure::Changed { expected: 16, actual: 5 }, .. }
            ),
            "{error:?}"
        );
        assert_eq!(error.code(), ErrorCode::StorageError);
    }

    #[test]
    fn only_the_recorded_file_of_an_earlier_claim_is_copied_and_only_first() {
        let case = adopted_by_epoch_1();
        let other = case.p0.with_file_name("out.partition-2-of-2.jsonl");
        let mut file = MergeFile::new(&case.output, OUTPUT, 2, None);
        let error = file.copy_adopted(&other, &case.earlier).unwrap_err();
        assert!(matches!(&error, RunError::Adopt { reason: AdoptFailure::NotAdopted { epoch: 1, .. }, .. }));
        // The same claim's own adoption is not one to copy from (its file is this one).
        let mut same = MergeFile::new(&case.output, OUTPUT, 1, None);
        assert!(same.copy_adopted(&case.p0, &case.earlier).is_err());
        // After a write: a kind's bug, a processing error; nothing adopted.
        file.append(b"x\n").unwrap();
        let error = file.adopt_file(&case.p0).unwrap_err();
        assert_eq!(error.code(), ErrorCode::ProcessingError);
        assert!(case.p0.exists());
    }

    #[test]
    fn an_adoption_checkpoint_is_neither_a_final_one_nor_a_runs() {
        let sink = serde_json::to_value(adopted_by_epoch_1().earlier).unwrap();
        assert_eq!(sink["epoch"], 1);
        assert!(sink["adopted"]["path"].as_str().unwrap().ends_with("out.partition-1-of-2.jsonl"));
        assert_eq!(sink["adopted"]["len"], 16);
        assert!(SinkPositions::<u64, u64>::deserialize(&sink).is_err());
        let final_sink = serde_json::json!({ "output": 10, "dead_letters": 0, "epoch": 2, "final": true });
        assert!(AdoptionCheckpoint::deserialize(&final_sink).is_err());
    }
}
