//! The runner's second seam: a [`CommitSink`] writes chunks, makes them durable, reports the
//! position that goes into the same checkpoint, and on resume returns to the committed position. The
//! file implementations ([`JsonLinesFile`], [`CsvFile`]) stage their bytes under names that carry
//! the claim's epoch (see [`staged_path`] and the [module docs](super) on fencing).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use pump_core::sink::{CsvWriter, JsonLinesWriter, RecordWriter, WriteError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::RunError;

/// Where a sink resumes: the position it reported for the last checkpoint, the epoch of the claim
/// that committed it, and whether that checkpoint was the task's final one (every record done, the
/// sinks about to be published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume<P> {
    /// The sink's committed position.
    pub position: P,
    /// The epoch (fencing token) of the claim that committed it; 0 for an unfenced claim.
    pub epoch: u64,
    /// The checkpoint was the final one: nothing more will be written, only published.
    pub is_final: bool,
}

/// A sink the chunk runner writes in order and commits with each checkpoint.
///
/// The runner calls, per chunk: [`write`](CommitSink::write) or
/// [`write_rendered`](CommitSink::write_rendered) for each record, then
/// [`prepare_commit`](CommitSink::prepare_commit), whose position goes into the checkpoint, then,
/// once the store committed it, [`committed`](CommitSink::committed). After the task's last
/// checkpoint it calls [`publish`](CommitSink::publish) (a file moves to its final name). A sink is
/// built for a run by its [`SinkTarget`], which returns it to the committed position of the last
/// checkpoint (truncating what a crash left after it).
pub trait CommitSink<T>: Send + 'static {
    /// The committed position stored in checkpoints (a file's length, a table's last key...).
    type Position: Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Whether records can be rendered apart from the sink ([`render`](CommitSink::render)).
    const RENDERS: bool = true;

    /// Renders `record` into the bytes [`write_rendered`](CommitSink::write_rendered) appends. Runs on
    /// the runner's worker threads, so that the sink itself only copies bytes. On failure `bytes` is
    /// left as it was and the runner writes the record with [`write`](CommitSink::write) instead,
    /// which reports the error.
    fn render(record: &T, bytes: &mut Vec<u8>) -> Result<(), String>;

    /// Writes one record.
    fn write(&mut self, record: &T) -> Result<(), RunError>;

    /// Appends `records` records rendered by [`render`](CommitSink::render).
    fn write_rendered(&mut self, bytes: &[u8], records: u64) -> Result<(), RunError>;

    /// Makes everything written so far durable (`durable`: against power loss, else against a
    /// killed process) and returns the position that the next checkpoint commits. A future, so that
    /// a sink that writes over the network (a table) sends the chunk here; file sinks answer at once.
    ///
    /// Cancel safety: dropping the future may leave part of the chunk written, which is covered
    /// like a crash (the next claim resumes from the last committed checkpoint).
    fn prepare_commit(
        &mut self,
        durable: bool,
    ) -> impl std::future::Future<Output = Result<Self::Position, RunError>> + Send;

    /// Rows to commit in the checkpoint's own store transaction, taken by the runner right after
    /// [`prepare_commit`](CommitSink::prepare_commit) and handed to
    /// [`JobControl::commit_with`](crate::JobControl::commit_with): a sink whose output lives in
    /// the store's database (a table) sends nothing in `prepare_commit` and attaches the chunk's
    /// rows here, so that they are committed with the checkpoint that covers them, or not at all.
    /// `None` (the default) for a sink that made its chunk durable itself.
    fn attached(&mut self) -> Option<batch_model::AttachedWrite> {
        None
    }

    /// The checkpoint holding the last prepared position is committed (a file sink then removes the
    /// previous epoch's staged file it adopted). Best effort: never fails the run.
    fn committed(&mut self) {}

    /// After the final checkpoint: makes the output visible under its final name. Idempotent.
    fn publish(&mut self, durable: bool) -> Result<(), RunError>;
}

/// A failure of a sink that is not a file (a table), with the code the task fails with: the
/// server cannot be reached (`STORAGE_ERROR`), an output that does not serialize
/// (`PROCESSING_ERROR`). The runner reports it as [`RunError::Sink`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkFailure {
    /// The code the task fails with.
    pub code: batch_model::ErrorCode,
    /// What went wrong, for people; names the sink and the cause once.
    pub message: String,
}

impl SinkFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: batch_model::ErrorCode, message: impl Into<String>) -> SinkFailure {
        SinkFailure { code, message: message.into() }
    }
}

/// Opens a [`CommitSink`] for one run.
pub trait SinkTarget<T>: Send + Sync + 'static {
    /// The sink a run writes to.
    type Sink: CommitSink<T>;

    /// Opens the sink for a run under the claim `epoch`: fresh when `resume` is `None`, else at the
    /// committed position. Refuses (leaving everything untouched) a committed position that the
    /// output no longer holds.
    fn open(
        &self,
        resume: Option<Resume<<Self::Sink as CommitSink<T>>::Position>>,
        epoch: u64,
        durable: bool,
    ) -> Result<Self::Sink, RunError>;

    /// What the sink writes, for messages (`the output /data/out.jsonl`).
    fn describe(&self) -> String;
}

/// The name under which a claim of epoch `epoch` stages the file `path`: `out.jsonl.e7.part` for
/// `out.jsonl` and epoch 7, so that no two claims ever write the same file; `path` itself for epoch 0
/// (an unfenced claim writes in place).
///
/// ```
/// use std::path::Path;
/// use batch_tasks::records::staged_path;
///
/// assert_eq!(staged_path(Path::new("/out/orders.jsonl"), 7), Path::new("/out/orders.jsonl.e7.part"));
/// assert_eq!(staged_path(Path::new("/out/orders.jsonl"), 0), Path::new("/out/orders.jsonl"));
/// ```
pub fn staged_path(path: &Path, epoch: u64) -> PathBuf {
    if epoch == 0 {
        return path.to_owned();
    }
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".e{epoch}.part"));
    path.with_file_name(name)
}

/// The epochs of the staged files of `path` found beside it (for the cleanup after publishing).
fn staged_epochs(path: &Path) -> Vec<u64> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|name| name.to_str())) else {
        return Vec::new();
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let prefix = format!("{name}.e");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let text = file_name.to_str()?;
            text.strip_prefix(&prefix)?.strip_suffix(".part")?.parse::<u64>().ok()
        })
        .collect()
}

/// Where a file sink of one run writes, and what it adopted.
#[derive(Debug)]
struct Staged {
    /// The final name.
    path: PathBuf,
    /// This run's file (the staged name of its epoch, or `path` for epoch 0).
    own: PathBuf,
    epoch: u64,
    /// The committed length this run starts from.
    len: u64,
    /// A previous epoch's file whose committed prefix was copied into `own`: removed once this run
    /// committed a checkpoint of its own.
    adopted: Option<PathBuf>,
    /// The final checkpoint's files were already published by the claim that committed it.
    published: bool,
}

/// Prepares a file sink's file for a run: see the [module docs](super) on fencing.
fn stage(
    path: &Path,
    role: &'static str,
    resume: Option<Resume<u64>>,
    epoch: u64,
) -> Result<Staged, RunError> {
    let own = staged_path(path, epoch);
    let fresh =
        Staged { path: path.to_owned(), own: own.clone(), epoch, len: 0, adopted: None, published: false };
    let Some(Resume { position: len, epoch: from_epoch, is_final }) = resume else {
        return Ok(fresh);
    };
    if from_epoch == epoch {
        // The same claim's file (an unfenced resume in place): the writer truncates it to `len`.
        check_length(role, &own, len)?;
        return Ok(Staged { len, ..fresh });
    }
    let committed = staged_path(path, from_epoch);
    let actual = match std::fs::metadata(&committed) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if len == 0 {
                return Ok(fresh);
            }
            if is_final && from_epoch != 0 && file_len(path) == Some(len) {
                // The final checkpoint's holder renamed it before it died: nothing left to do.
                return Ok(Staged { own: path.to_owned(), len, published: true, ..fresh });
            }
            0
        }
        Err(source) => return Err(io_error(role, &committed, source)),
    };
    if actual < len {
        return Err(RunError::ShorterThanCheckpoint { file: role, path: committed, expected: len, actual });
    }
    // Copy the committed prefix; never touch the previous epoch's file, which a paused holder of
    // that epoch may still have open and write into (after the prefix, which it never rewrites).
    copy_prefix(&committed, &own, len).map_err(|source| io_error(role, &own, source))?;
    Ok(Staged { len, adopted: Some(committed), ..fresh })
}

/// Refuses a file shorter than `expected` (a missing file has length 0).
fn check_length(role: &'static str, path: &Path, expected: u64) -> Result<(), RunError> {
    if expected == 0 {
        return Ok(());
    }
    let actual = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => return Err(io_error(role, path, source)),
    };
    if actual < expected {
        return Err(RunError::ShorterThanCheckpoint { file: role, path: path.to_owned(), expected, actual });
    }
    Ok(())
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|metadata| metadata.len())
}

/// Copies the first `len` bytes of `from` into `to` (created or truncated). On Linux `io::copy`
/// copies file to file inside the kernel (`copy_file_range`).
fn copy_prefix(from: &Path, to: &Path, len: u64) -> io::Result<()> {
    let source = File::open(from)?;
    let mut target = OpenOptions::new().write(true).create(true).truncate(true).open(to)?;
    let copied = io::copy(&mut io::Read::take(source, len), &mut target)?;
    if copied < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} ended after {copied} bytes", from.display()),
        ));
    }
    Ok(())
}

/// An I/O failure on the file at `path` of role `role` (`output`, `dead-letter file`…).
pub(super) fn io_error(role: &'static str, path: &Path, source: io::Error) -> RunError {
    RunError::Write { file: role, source: WriteError::Io { path: path.to_owned(), source } }
}

/// Syncs the directory holding `path`, so that its entry (a new file, a rename) survives power loss.
pub(super) fn sync_parent(role: &'static str, path: &Path) -> Result<(), RunError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| io_error(role, parent, source))
}

impl Staged {
    /// Removes the adopted file once a checkpoint of this run is committed.
    fn committed(&mut self) {
        if let Some(adopted) = self.adopted.take()
            && let Err(error) = std::fs::remove_file(&adopted)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %adopted.display(), %error, "cannot remove an adopted staged file");
        }
    }

    /// Moves this run's file to the final name (after the final checkpoint), then removes the staged
    /// files of older epochs. Idempotent.
    fn publish(&mut self, role: &'static str, durable: bool) -> Result<(), RunError> {
        if self.epoch == 0 {
            return Ok(());
        }
        if !self.published {
            match std::fs::rename(&self.own, &self.path) {
                Ok(()) => {}
                // Published already (by this run, or by a holder that committed the same final checkpoint).
                Err(error) if error.kind() == io::ErrorKind::NotFound && self.path.exists() => {}
                Err(source) => return Err(io_error(role, &self.own, source)),
            }
            self.published = true;
            if durable {
                sync_parent(role, &self.path)?;
            }
        }
        // Also when the final checkpoint's holder published and died before this cleanup: older
        // epochs' files (a merge's adopted one among them) are left to no one else.
        self.committed();
        for epoch in staged_epochs(&self.path) {
            if epoch < self.epoch {
                let _ignored = std::fs::remove_file(staged_path(&self.path, epoch));
            }
        }
        Ok(())
    }
}

/// A JSON-lines file as a [`SinkTarget`]: one record a line (pump-core's `JsonLinesWriter`), its
/// committed length as its position.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use batch_tasks::records::{CommitSink, JsonLinesFile, SinkTarget};
///
/// let dir = tempfile::tempdir().unwrap();
/// let target = JsonLinesFile::<u32>::new(dir.path().join("out.jsonl"), "output");
/// let mut sink = target.open(None, 0, false).unwrap();
/// sink.write(&7).unwrap();
/// assert_eq!(sink.prepare_commit(false).await.unwrap(), 2);
/// assert_eq!(std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(), "7\n");
/// # }
/// ```
#[derive(Debug)]
pub struct JsonLinesFile<T> {
    path: PathBuf,
    role: &'static str,
    marker: std::marker::PhantomData<fn(&T)>,
}

impl<T> Clone for JsonLinesFile<T> {
    fn clone(&self) -> Self {
        JsonLinesFile { path: self.path.clone(), role: self.role, marker: std::marker::PhantomData }
    }
}

impl<T> JsonLinesFile<T> {
    /// The file at `path`, named `role` in messages (`output`, `dead-letter file`).
    pub fn new(path: impl Into<PathBuf>, role: &'static str) -> JsonLinesFile<T> {
        JsonLinesFile { path: path.into(), role, marker: std::marker::PhantomData }
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An open [`JsonLinesFile`].
pub struct JsonLinesSink<T> {
    writer: JsonLinesWriter<T>,
    staged: Staged,
    role: &'static str,
}

impl<T> fmt::Debug for JsonLinesSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink").field("staged", &self.staged).finish()
    }
}

impl<T: Serialize + Send + 'static> SinkTarget<T> for JsonLinesFile<T> {
    type Sink = JsonLinesSink<T>;

    fn open(
        &self,
        resume: Option<Resume<u64>>,
        epoch: u64,
        durable: bool,
    ) -> Result<JsonLinesSink<T>, RunError> {
        let staged = stage(&self.path, self.role, resume, epoch)?;
        let writer = if resume.is_none() {
            JsonLinesWriter::create(&staged.own)
        } else {
            JsonLinesWriter::resume(&staged.own, staged.len)
        }
        .map_err(|source| resume_error(self.role, source))?;
        if durable {
            // A file created now survives power loss only once its directory entry is on the disk too.
            sync_parent(self.role, &staged.own)?;
        }
        Ok(JsonLinesSink { writer, staged, role: self.role })
    }

    fn describe(&self) -> String {
        format!("the {} {}", self.role, self.path.display())
    }
}

fn resume_error(file: &'static str, source: WriteError) -> RunError {
    match source {
        WriteError::ShorterThanCheckpoint { path, expected, actual } => {
            RunError::ShorterThanCheckpoint { file, path, expected, actual }
        }
        source => RunError::Write { file, source },
    }
}

impl<T: Serialize + Send + 'static> JsonLinesSink<T> {
    /// Flushes (or syncs) the file: its committed length.
    fn flush(&mut self, durable: bool) -> Result<u64, RunError> {
        if durable { self.writer.sync() } else { self.writer.flush() }
            .map_err(|source| RunError::Write { file: self.role, source })
    }
}

impl<T: Serialize + Send + 'static> CommitSink<T> for JsonLinesSink<T> {
    type Position = u64;

    fn render(record: &T, bytes: &mut Vec<u8>) -> Result<(), String> {
        JsonLinesWriter::render(record, bytes).map_err(|error| error.to_string())
    }

    fn write(&mut self, record: &T) -> Result<(), RunError> {
        self.writer.write(record).map_err(|source| RunError::Write { file: self.role, source })
    }

    fn write_rendered(&mut self, bytes: &[u8], records: u64) -> Result<(), RunError> {
        self.writer
            .write_rendered(bytes, records)
            .map_err(|source| RunError::Write { file: self.role, source })
    }

    fn prepare_commit(
        &mut self,
        durable: bool,
    ) -> impl std::future::Future<Output = Result<u64, RunError>> + Send {
        std::future::ready(self.flush(durable))
    }

    fn committed(&mut self) {
        self.staged.committed();
    }

    fn publish(&mut self, durable: bool) -> Result<(), RunError> {
        self.flush(durable)?;
        self.staged.publish(self.role, durable)
    }
}

/// A CSV file as a [`SinkTarget`]: one record a row (pump-core's `CsvWriter`, a header row from the
/// first record's field names), its committed length as its position. Records are structs or tuples
/// of scalars; rendering happens in the sink (a CSV row cannot be rendered apart from its header).
#[derive(Debug)]
pub struct CsvFile<T> {
    path: PathBuf,
    role: &'static str,
    marker: std::marker::PhantomData<fn(&T)>,
}

impl<T> CsvFile<T> {
    /// The file at `path`, named `role` in messages.
    pub fn new(path: impl Into<PathBuf>, role: &'static str) -> CsvFile<T> {
        CsvFile { path: path.into(), role, marker: std::marker::PhantomData }
    }
}

/// An open [`CsvFile`].
pub struct CsvSink<T> {
    writer: CsvWriter<T>,
    staged: Staged,
    role: &'static str,
}

impl<T> fmt::Debug for CsvSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvSink").field("staged", &self.staged).finish()
    }
}

impl<T: Serialize + Send + 'static> SinkTarget<T> for CsvFile<T> {
    type Sink = CsvSink<T>;

    fn open(&self, resume: Option<Resume<u64>>, epoch: u64, durable: bool) -> Result<CsvSink<T>, RunError> {
        let staged = stage(&self.path, self.role, resume, epoch)?;
        let writer = if resume.is_none() {
            CsvWriter::create(&staged.own)
        } else {
            CsvWriter::resume(&staged.own, staged.len)
        }
        .map_err(|source| resume_error(self.role, source))?;
        if durable {
            sync_parent(self.role, &staged.own)?;
        }
        Ok(CsvSink { writer, staged, role: self.role })
    }

    fn describe(&self) -> String {
        format!("the {} {}", self.role, self.path.display())
    }
}

impl<T: Serialize + Send + 'static> CsvSink<T> {
    /// Flushes (or syncs) the file: its committed length.
    fn flush(&mut self, durable: bool) -> Result<u64, RunError> {
        if durable { self.writer.sync() } else { self.writer.flush() }
            .map_err(|source| RunError::Write { file: self.role, source })
    }
}

impl<T: Serialize + Send + 'static> CommitSink<T> for CsvSink<T> {
    type Position = u64;

    const RENDERS: bool = false;

    fn render(_record: &T, _bytes: &mut Vec<u8>) -> Result<(), String> {
        Err("a CSV row is rendered by its file's writer (the header comes first)".to_owned())
    }

    fn write(&mut self, record: &T) -> Result<(), RunError> {
        self.writer.write(record).map_err(|source| RunError::Write { file: self.role, source })
    }

    fn write_rendered(&mut self, bytes: &[u8], _records: u64) -> Result<(), RunError> {
        // `RENDERS` is false: the runner never renders CSV apart, so there is never anything here.
        debug_assert!(bytes.is_empty(), "CSV rows are not rendered apart");
        Ok(())
    }

    fn prepare_commit(
        &mut self,
        durable: bool,
    ) -> impl std::future::Future<Output = Result<u64, RunError>> + Send {
        std::future::ready(self.flush(durable))
    }

    fn committed(&mut self) {
        self.staged.committed();
    }

    fn publish(&mut self, durable: bool) -> Result<(), RunError> {
        self.flush(durable)?;
        self.staged.publish(self.role, durable)
    }
}

/// `value` as bytes: the state log's entries are rendered by the kind.
pub(crate) type LogTarget = JsonLinesFile<serde_json::Value>;
