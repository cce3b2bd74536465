//! File writers that know their committed length (JSON lines, CSV), and the sinks that drive them:
//! [`write()`] and the acknowledging [`write_acked()`].
//!
//! # Checkpoints
//!
//! A writer counts every byte it writes, so [`RecordWriter::flush`] can return the file's committed
//! length. A checkpoint stores that length beside the source position of the last record written;
//! after a crash, the writers' `resume(path, len)` truncates the file back to it and appends after,
//! so the output ends byte-identical to an uninterrupted run. A file shorter than its checkpoint is
//! refused ([`WriteError::ShorterThanCheckpoint`]) rather than silently extended.
//!
//! # Why `std::fs` on the pipeline's task
//!
//! The writers use `std::fs` through a 256 KiB `BufWriter`, on the task that drives the sink. Writing
//! a record is a memcpy into that buffer; a flush is one `write(2)` into the page cache, which does
//! not wait for the disk. `tokio::fs` would move every call to the blocking pool and back — a thread
//! hop costing more than the write itself. The exception is durable mode
//! ([`WriteAcked::durable`], [`Write::durable`]): its `fsync` waits for the disk and blocks the
//! task's worker thread meanwhile (milliseconds on most disks). That is the price of surviving power
//! loss; on a multi-threaded runtime the other workers keep running.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, BufWriter, Seek, SeekFrom, Write as _};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::context::Ctx;
use crate::error::PipelineError;
use crate::sink::Sink;
use crate::stage::StageContext;

/// The capacity of a writer's `BufWriter`.
const WRITE_BUFFER_LEN: usize = 256 * 1024;

/// A reusable record buffer that grew beyond this after a large record is shrunk back.
const KEEP_BUFFER_CAPACITY: usize = 1024 * 1024;

#[cfg(feature = "csv")]
/// The `csv` crate's own buffer in [`CsvWriter`]; a record longer than this is handed over in pieces.
const CSV_ENCODER_BUFFER_LEN: usize = 1024;

/// Why a writer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The file could not be opened, written, truncated or synced.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A record could not be serialized (a map with non-string keys for JSON, a nested structure for
    /// CSV, a failing `Serialize` impl). Nothing of it was written.
    #[error("cannot serialize record {record} for {}: {reason}", path.display())]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The record's number, counting from 1, among those given to this writer.
        record: u64,
        /// The serializer's message.
        reason: String,
    },
    /// A writer's `resume` found the file shorter than the checkpointed length: it was truncated or
    /// replaced since, and appending would corrupt it.
    #[error(
        "{} is shorter than its checkpoint: {actual} bytes, expected at least {expected}",
        path.display()
    )]
    ShorterThanCheckpoint {
        /// The file.
        path: PathBuf,
        /// The checkpointed length.
        expected: u64,
        /// The file's length.
        actual: u64,
    },
}

/// A file format writer the [`write()`] and [`write_acked()`] sinks drive: it writes records and knows
/// how many bytes it has written.
///
/// ```
/// use pump_core::sink::{JsonLinesWriter, RecordWriter};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.jsonl");
/// let mut writer = JsonLinesWriter::create(&path).unwrap();
/// writer.write(&vec![1, 2]).unwrap();
/// assert_eq!(writer.written_len(), 6); // "[1,2]\n", still buffered
/// assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
/// assert_eq!(writer.flush().unwrap(), 6);
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1,2]\n");
/// ```
pub trait RecordWriter<T>: Send + 'static {
    /// Serializes `record` into the writer's buffer (which goes to the file when full). A record
    /// that fails to serialize writes nothing.
    fn write(&mut self, record: &T) -> Result<(), WriteError>;

    /// Hands every buffered byte to the operating system and returns the committed length: the
    /// file's length, safe to store in a checkpoint against a killed process (not against power
    /// loss: see [`sync`](RecordWriter::sync)).
    fn flush(&mut self) -> Result<u64, WriteError>;

    /// Like [`flush`](RecordWriter::flush), then waits until the data is on the disk (`fsync`),
    /// so the returned length survives power loss.
    fn sync(&mut self) -> Result<u64, WriteError>;

    /// Bytes written so far, buffered ones included (for a resumed writer, counting the part of the
    /// file it kept).
    fn written_len(&self) -> u64;
}

// ---------------------------------------------------------------------------------------------------
// The file under a writer.

/// An output file with a write buffer and an exact byte count.
struct OutputFile {
    path: PathBuf,
    file: BufWriter<File>,
    written_len: u64,
}

impl OutputFile {
    fn create(path: PathBuf) -> Result<Self, WriteError> {
        match File::create(&path) {
            Ok(file) => Ok(OutputFile {
                file: BufWriter::with_capacity(WRITE_BUFFER_LEN, file),
                written_len: 0,
                path,
            }),
            Err(source) => Err(WriteError::Io { path, source }),
        }
    }

    fn resume(path: PathBuf, len: u64) -> Result<Self, WriteError> {
        // A checkpoint of length 0 may predate the file's creation.
        let opened = OpenOptions::new().write(true).create(len == 0).truncate(false).open(&path);
        let mut file = match opened {
            Ok(file) => file,
            Err(source) => return Err(WriteError::Io { path, source }),
        };
        let actual = match file.metadata() {
            Ok(metadata) => metadata.len(),
            Err(source) => return Err(WriteError::Io { path, source }),
        };
        if actual < len {
            return Err(WriteError::ShorterThanCheckpoint { path, expected: len, actual });
        }
        if let Err(source) = file.set_len(len).and_then(|()| file.seek(SeekFrom::Start(len))) {
            return Err(WriteError::Io { path, source });
        }
        Ok(OutputFile { file: BufWriter::with_capacity(WRITE_BUFFER_LEN, file), written_len: len, path })
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.file.write_all(bytes).map_err(|source| self.io_error(source))?;
        self.written_len += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<u64, WriteError> {
        self.file.flush().map_err(|source| self.io_error(source))?;
        Ok(self.written_len)
    }

    fn sync(&mut self) -> Result<u64, WriteError> {
        self.flush()?;
        // `sync_data` covers the file's length too, which is all the metadata a reader needs.
        self.file.get_ref().sync_data().map_err(|source| self.io_error(source))?;
        Ok(self.written_len)
    }

    fn io_error(&self, source: io::Error) -> WriteError {
        WriteError::Io { path: self.path.clone(), source }
    }

    fn serialize_error(&self, record: u64, reason: String) -> WriteError {
        WriteError::Serialize { path: self.path.clone(), record, reason }
    }
}

/// Empties a reusable buffer, giving back memory a large record made it take.
fn clear_buffer(buffer: &mut Vec<u8>) {
    buffer.clear();
    if buffer.capacity() > KEEP_BUFFER_CAPACITY {
        buffer.shrink_to(KEEP_BUFFER_CAPACITY);
    }
}

// ---------------------------------------------------------------------------------------------------
// JSON lines.

#[cfg(feature = "json")]
/// Writes records as JSON lines: one compact JSON value per line, each ending with `\n`.
///
/// Read them back with [`source::json_lines`](crate::source::json_lines).
pub struct JsonLinesWriter<T> {
    output: OutputFile,
    records: u64,
    line: Vec<u8>,
    marker: PhantomData<fn(&T)>,
}

#[cfg(feature = "json")]
impl<T> fmt::Debug for JsonLinesWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesWriter")
            .field("path", &self.output.path)
            .field("written_len", &self.output.written_len)
            .field("records", &self.records)
            .finish()
    }
}

#[cfg(feature = "json")]
impl<T: Serialize + 'static> JsonLinesWriter<T> {
    /// Creates the file at `path`, truncating it if it exists.
    ///
    /// ```
    /// use pump_core::sink::{JsonLinesWriter, RecordWriter};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.jsonl");
    /// let mut writer = JsonLinesWriter::create(&path).unwrap();
    /// writer.write(&serde_json::json!({"id": 1})).unwrap();
    /// writer.write(&serde_json::json!({"id": 2})).unwrap();
    /// writer.flush().unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":1}\n{\"id\":2}\n");
    /// ```
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, WriteError> {
        Ok(Self::with_output(OutputFile::create(path.into())?))
    }

    /// Reopens the file at `path` after a crash: truncates it to `len` (the committed length of the
    /// last checkpoint) and appends after. Fails with [`WriteError::ShorterThanCheckpoint`] if the
    /// file is shorter than `len`. With `len == 0`, a missing file is created.
    ///
    /// ```
    /// use pump_core::sink::{JsonLinesWriter, RecordWriter, WriteError};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.jsonl");
    /// let mut writer = JsonLinesWriter::create(&path).unwrap();
    /// writer.write(&1).unwrap();
    /// let checkpoint = writer.flush().unwrap();
    /// writer.write(&2).unwrap(); // written, then the process dies before its checkpoint
    /// writer.flush().unwrap();
    /// drop(writer);
    ///
    /// let mut writer = JsonLinesWriter::resume(&path, checkpoint).unwrap();
    /// writer.write(&2).unwrap();
    /// writer.flush().unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n");
    ///
    /// let error = JsonLinesWriter::<u32>::resume(&path, 100).unwrap_err();
    /// assert!(matches!(error, WriteError::ShorterThanCheckpoint { expected: 100, actual: 4, .. }));
    /// ```
    pub fn resume(path: impl Into<PathBuf>, len: u64) -> Result<Self, WriteError> {
        Ok(Self::with_output(OutputFile::resume(path.into(), len)?))
    }

    fn with_output(output: OutputFile) -> Self {
        JsonLinesWriter { output, records: 0, line: Vec::new(), marker: PhantomData }
    }

    /// Renders `record` as one JSON line, `\n` included, at the end of `buffer`: the bytes
    /// [`write`](RecordWriter::write) would write. On failure `buffer` is left as it was.
    ///
    /// With [`write_rendered`](JsonLinesWriter::write_rendered), this lets worker threads do the
    /// serialization while one writer appends the lines in order.
    ///
    /// ```
    /// use pump_core::sink::{JsonLinesWriter, RecordWriter};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.jsonl");
    /// // Rendered elsewhere (a worker thread, say)...
    /// let mut lines = Vec::new();
    /// for id in [1, 2] {
    ///     JsonLinesWriter::render(&serde_json::json!({"id": id}), &mut lines).unwrap();
    /// }
    /// // ...written in order by the file's one writer.
    /// let mut writer = JsonLinesWriter::<serde_json::Value>::create(&path).unwrap();
    /// writer.write_rendered(&lines, 2).unwrap();
    /// assert_eq!(writer.flush().unwrap(), lines.len() as u64);
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":1}\n{\"id\":2}\n");
    /// ```
    pub fn render(record: &T, buffer: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let start = buffer.len();
        match serde_json::to_writer(&mut *buffer, record) {
            Ok(()) => {
                buffer.push(b'\n');
                Ok(())
            }
            Err(error) => {
                buffer.truncate(start);
                Err(error)
            }
        }
    }

    /// Appends `lines`: `records` complete JSON lines as [`render`](JsonLinesWriter::render) makes
    /// them. The bytes are not checked; anything else breaks the file's format.
    pub fn write_rendered(&mut self, lines: &[u8], records: u64) -> Result<(), WriteError> {
        self.records += records;
        self.output.write_all(lines)
    }

    /// The file written to.
    ///
    /// ```
    /// use pump_core::sink::JsonLinesWriter;
    /// let dir = tempfile::tempdir().unwrap();
    /// let writer = JsonLinesWriter::<u32>::create(dir.path().join("out.jsonl")).unwrap();
    /// assert!(writer.path().ends_with("out.jsonl"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.output.path
    }
}

#[cfg(feature = "json")]
impl<T: Serialize + 'static> RecordWriter<T> for JsonLinesWriter<T> {
    fn write(&mut self, record: &T) -> Result<(), WriteError> {
        self.records += 1;
        clear_buffer(&mut self.line);
        // Serialize into a buffer first, so that a record failing halfway leaves no partial line.
        if let Err(error) = Self::render(record, &mut self.line) {
            return Err(self.output.serialize_error(self.records, error.to_string()));
        }
        self.output.write_all(&self.line)
    }

    fn flush(&mut self) -> Result<u64, WriteError> {
        self.output.flush()
    }

    fn sync(&mut self) -> Result<u64, WriteError> {
        self.output.sync()
    }

    fn written_len(&self) -> u64 {
        self.output.written_len
    }
}

// ---------------------------------------------------------------------------------------------------
// CSV.

#[cfg(feature = "csv")]
/// Writes records as CSV rows (`,`-delimited, `\n`-terminated, fields quoted when needed), with a
/// header row derived from the first record's field names when the records are structs.
///
/// Each record is encoded by the `csv` crate into a scratch buffer before it goes to the file: a
/// `csv::Writer` keeps bytes in a buffer of its own that it does not report, so encoding record by
/// record is what makes the byte count (and the committed length) exact, and a record that fails
/// to serialize halfway leaves nothing behind. Read the rows back with
/// [`source::csv`](crate::source::csv).
pub struct CsvWriter<T> {
    output: OutputFile,
    records: u64,
    /// The header row still has to be written (with the next record that serializes).
    header_pending: bool,
    row: Vec<u8>,
    marker: PhantomData<fn(&T)>,
}

#[cfg(feature = "csv")]
impl<T> fmt::Debug for CsvWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvWriter")
            .field("path", &self.output.path)
            .field("written_len", &self.output.written_len)
            .field("records", &self.records)
            .field("header_pending", &self.header_pending)
            .finish()
    }
}

#[cfg(feature = "csv")]
impl<T: Serialize + 'static> CsvWriter<T> {
    /// Creates the file at `path`, truncating it if it exists. The header row is written with the
    /// first record.
    ///
    /// ```
    /// use pump_core::sink::{CsvWriter, RecordWriter};
    /// #[derive(serde::Serialize)]
    /// struct Point {
    ///     x: i32,
    ///     label: String,
    /// }
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("points.csv");
    /// let mut writer = CsvWriter::create(&path).unwrap();
    /// writer.write(&Point { x: 1, label: "a, b".to_owned() }).unwrap();
    /// writer.flush().unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "x,label\n1,\"a, b\"\n");
    /// ```
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, WriteError> {
        Ok(Self::with_output(OutputFile::create(path.into())?, true))
    }

    /// Reopens the file at `path` after a crash: truncates it to `len` (the committed length of the
    /// last checkpoint) and appends after, with no new header row unless `len` is 0. Fails with
    /// [`WriteError::ShorterThanCheckpoint`] if the file is shorter than `len`. With `len == 0`, a
    /// missing file is created.
    ///
    /// ```
    /// use pump_core::sink::{CsvWriter, RecordWriter};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("pairs.csv");
    /// let mut writer = CsvWriter::create(&path).unwrap();
    /// writer.write(&("a", 1)).unwrap();
    /// let checkpoint = writer.flush().unwrap();
    /// writer.write(&("b", 2)).unwrap();
    /// writer.flush().unwrap();
    /// drop(writer);
    ///
    /// let mut writer = CsvWriter::resume(&path, checkpoint).unwrap();
    /// writer.write(&("c", 3)).unwrap();
    /// writer.flush().unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,1\nc,3\n");
    /// ```
    pub fn resume(path: impl Into<PathBuf>, len: u64) -> Result<Self, WriteError> {
        Ok(Self::with_output(OutputFile::resume(path.into(), len)?, len == 0))
    }

    fn with_output(output: OutputFile, header_pending: bool) -> Self {
        CsvWriter { output, records: 0, header_pending, row: Vec::new(), marker: PhantomData }
    }

    /// The file written to.
    ///
    /// ```
    /// use pump_core::sink::CsvWriter;
    /// let dir = tempfile::tempdir().unwrap();
    /// let writer = CsvWriter::<(u32, u32)>::create(dir.path().join("out.csv")).unwrap();
    /// assert!(writer.path().ends_with("out.csv"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.output.path
    }

    /// Encodes `record` (and the header row if it is due) into `self.row`.
    fn encode(&mut self, record: &T) -> Result<(), ::csv::Error> {
        let mut encoder = ::csv::WriterBuilder::new()
            .has_headers(self.header_pending)
            .buffer_capacity(CSV_ENCODER_BUFFER_LEN)
            .from_writer(&mut self.row);
        encoder.serialize(record)?;
        encoder.flush()?;
        Ok(())
    }
}

#[cfg(feature = "csv")]
impl<T: Serialize + 'static> RecordWriter<T> for CsvWriter<T> {
    fn write(&mut self, record: &T) -> Result<(), WriteError> {
        self.records += 1;
        clear_buffer(&mut self.row);
        if let Err(error) = self.encode(record) {
            let reason = match error.kind() {
                ::csv::ErrorKind::Serialize(message) => message.clone(),
                _ => error.to_string(),
            };
            return Err(self.output.serialize_error(self.records, reason));
        }
        self.header_pending = false;
        self.output.write_all(&self.row)
    }

    fn flush(&mut self) -> Result<u64, WriteError> {
        self.output.flush()
    }

    fn sync(&mut self) -> Result<u64, WriteError> {
        self.output.sync()
    }

    fn written_len(&self) -> u64 {
        self.output.written_len
    }
}

// ---------------------------------------------------------------------------------------------------
// The sinks.

/// What a writing sink did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteSummary {
    /// Records written by this sink.
    pub records: u64,
    /// Bytes written by this sink (a resumed writer's kept part not included).
    pub bytes: u64,
}

/// The `write` sink. Built by [`write()`].
#[must_use = "sinks do nothing unless run"]
pub struct Write<W> {
    writer: W,
    durable: bool,
}

impl<W> fmt::Debug for Write<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Write").field("durable", &self.durable).finish()
    }
}

/// Writes every element with `writer` and flushes at the end. A write error fails the run
/// ([`PipelineError::Io`] naming the file). Writing happens on the pipeline's task; see the
/// [module docs](self) for why.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::sink::{JsonLinesWriter, WriteSummary};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("squares.jsonl");
/// let out = source::iter(1..=3u32)
///     .map(|x| x * x)
///     .to(sink::write(JsonLinesWriter::create(&path).unwrap()))
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(out.value, WriteSummary { records: 3, bytes: 6 });
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n4\n9\n");
/// # }
/// ```
pub fn write<T, W: RecordWriter<T>>(writer: W) -> Write<W> {
    Write { writer, durable: false }
}

impl<W> Write<W> {
    /// With `true`, ends with [`RecordWriter::sync`] instead of a flush, so that a successful run's
    /// output survives power loss.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// use pump_core::sink::CsvWriter;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("pairs.csv");
    /// let out = source::iter([("a", 1), ("b", 2)])
    ///     .to(sink::write(CsvWriter::create(&path).unwrap()).durable(true))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value.records, 2);
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,1\nb,2\n");
    /// # }
    /// ```
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
}

impl<T, W> Sink<T> for Write<W>
where
    T: Send + 'static,
    W: RecordWriter<T>,
{
    type Output = WriteSummary;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<WriteSummary, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let stage = ctx.register("write");
        let mut probe = stage.probe();
        let Write { mut writer, durable } = self;
        async move {
            let failed = |error: WriteError| PipelineError::io(stage.name(), error);
            let initial_len = writer.written_len();
            let mut input = std::pin::pin!(input);
            let mut records = 0;
            while let Some(item) = input.next().await {
                probe.record_in();
                writer.write(&item).map_err(failed)?;
                records += 1;
            }
            let committed = if durable { writer.sync() } else { writer.flush() }.map_err(failed)?;
            Ok(WriteSummary { records, bytes: committed.saturating_sub(initial_len) })
        }
    }
}

/// The `write_acked` sink. Built by [`write_acked()`].
#[must_use = "sinks do nothing unless run"]
pub struct WriteAcked<W, F> {
    writer: W,
    on_commit: F,
    durable: bool,
}

impl<W, F> fmt::Debug for WriteAcked<W, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteAcked").field("durable", &self.durable).finish()
    }
}

/// Writes chunks of elements with contexts (from [`batch`](crate::SourceExt::batch)) and
/// acknowledges each chunk only after its write: every value of the chunk is written, the writer
/// flushed (or synced, with [`durable`](WriteAcked::durable)), and then
/// `on_commit(last_context, committed_len)` is called with the chunk's last context and the file's
/// committed length — the pair a checkpoint stores. A write error fails the run
/// ([`PipelineError::Io`]) without acknowledging the chunk.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::sink::JsonLinesWriter;
/// use std::sync::{Arc, Mutex};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.jsonl");
/// let checkpoints = Arc::new(Mutex::new(Vec::new()));
/// let log = checkpoints.clone();
/// source::iter((0..5u64).map(|offset| Ctx::new(offset, offset * 10)))
///     .batch(std::num::NonZeroUsize::new(2).unwrap(), std::time::Duration::from_secs(1))
///     .to(sink::write_acked(JsonLinesWriter::create(&path).unwrap(), move |offset: u64, len| {
///         log.lock().unwrap().push((offset, len));
///     }))
///     .run()
///     .await
///     .unwrap();
/// // "0\n10\n" is 5 bytes, "20\n30\n" 6 more, "40\n" 3 more.
/// assert_eq!(*checkpoints.lock().unwrap(), vec![(1, 5), (3, 11), (4, 14)]);
/// # }
/// ```
pub fn write_acked<C, T, W, F>(writer: W, on_commit: F) -> WriteAcked<W, F>
where
    W: RecordWriter<T>,
    F: FnMut(C, u64) + Send + 'static,
{
    WriteAcked { writer, on_commit, durable: false }
}

impl<W, F> WriteAcked<W, F> {
    /// With `true`, each chunk is synced to the disk ([`RecordWriter::sync`]) before it is
    /// acknowledged, so acknowledged output survives power loss; the default (flush only) survives
    /// a killed process.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// use pump_core::sink::JsonLinesWriter;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("out.jsonl");
    /// let out = source::iter([Ctx::new(7u64, "x")])
    ///     .batch(std::num::NonZeroUsize::new(8).unwrap(), std::time::Duration::from_secs(1))
    ///     .to(sink::write_acked(JsonLinesWriter::create(&path).unwrap(), |_offset: u64, _len| {}).durable(true))
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value.bytes, 4);
    /// # }
    /// ```
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
}

impl<C, T, W, F> Sink<Vec<Ctx<C, T>>> for WriteAcked<W, F>
where
    C: Send + 'static,
    T: Send + 'static,
    W: RecordWriter<T>,
    F: FnMut(C, u64) + Send + 'static,
{
    type Output = WriteSummary;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<WriteSummary, PipelineError>> + Send + 'static
    where
        S: Stream<Item = Vec<Ctx<C, T>>> + Send + 'static,
    {
        let stage = ctx.register("write_acked");
        let mut probe = stage.probe();
        let WriteAcked { mut writer, mut on_commit, durable } = self;
        async move {
            let failed = |error: WriteError| PipelineError::io(stage.name(), error);
            let initial_len = writer.written_len();
            let mut input = std::pin::pin!(input);
            let mut records = 0;
            while let Some(chunk) = input.next().await {
                probe.record_in_n(chunk.len() as u64);
                let mut last_context = None;
                for element in chunk {
                    writer.write(&element.value).map_err(failed)?;
                    records += 1;
                    last_context = Some(element.context);
                }
                let Some(context) = last_context else {
                    continue;
                };
                let committed = if durable { writer.sync() } else { writer.flush() }.map_err(failed)?;
                on_commit(context, committed);
            }
            let committed = writer.flush().map_err(failed)?;
            Ok(WriteSummary { records, bytes: committed.saturating_sub(initial_len) })
        }
    }
}
