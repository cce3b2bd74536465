//! What the file sources share: record positions and errors, the blocking reader thread and its
//! bounded hand-over, the line reader, and the `text_lines` source.
//!
//! # Reading off the async workers
//!
//! A file source reads and parses on one blocking thread (`tokio::task::spawn_blocking`) through a
//! 256 KiB `std::io::BufReader`. Parsed records travel to the pipeline in chunks of up to
//! [`CHUNK_LEN`] over a bounded channel of capacity 2, and the async side hands them out one by
//! one. The thread takes a slot of the channel *before* it reads the records of a chunk, so at most
//! two chunks are queued or being filled while a third is being handed out: a file source holds at
//! most 3 × [`CHUNK_LEN`] parsed records, whatever the size of the file. When the pipeline drops the
//! source (end, drain, abort), the thread notices before its next record and stops.
//!
//! Blocking reads never run on an async worker, and parsing cost (serde) is paid beside the
//! pipeline rather than inside it.
//!
//! # Records, lines and positions
//!
//! Records are `\n`-terminated lines (a trailing `\r` is stripped, the last line may lack its `\n`);
//! blank lines are skipped but still counted in line numbers. Each record carries its 1-based line
//! number, its byte offset, and [`Record::end`], the position right after it: store `end` in a
//! checkpoint and start the source again with `start_at(end)` to read exactly the records that
//! follow. A malformed record is an error *element* ([`RecordError`]); the source reads on. Only a
//! file that cannot be opened or read fails the run, with a [`ReadError`] naming the path.

use std::fmt;
use std::fs::File;
use std::future::Future as _;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::PipelineError;
use crate::source::{Source, SourceStage};
use crate::stage::{Stage, StageContext};

/// How many records travel from the reader thread to the pipeline in one chunk.
pub const CHUNK_LEN: usize = 1024;

/// How many chunks may be queued or being filled at once (the channel's capacity).
const CHANNEL_CAPACITY: usize = 2;

/// The capacity of the reader thread's `BufReader`.
const READ_BUFFER_LEN: usize = 256 * 1024;

/// The longest record a file source holds in memory unless told otherwise (64 MiB): a longer record
/// is reported as a [`RecordError`] and skipped, so that one runaway line (or an unclosed CSV quote)
/// cannot exhaust memory. Each source's `max_record_len` changes it.
pub const DEFAULT_MAX_RECORD_LEN: usize = 64 * 1024 * 1024;

/// How much of an offending record [`RecordError::raw`] keeps (1 KiB).
const RAW_LIMIT: usize = 1024;

/// A reusable line buffer that grew beyond this after a long record is shrunk back.
const KEEP_BUFFER_CAPACITY: usize = 1024 * 1024;

/// A position in a file: where the next record starts.
///
/// The `end` of a [`Record`] is such a position; a checkpoint stores it and a source resumes from it
/// with `start_at`.
///
/// ```
/// use pump_core::source::FilePosition;
/// assert_eq!(FilePosition::default(), FilePosition::START);
/// assert_eq!(FilePosition::START, FilePosition { offset: 0, line: 1 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FilePosition {
    /// The byte offset of the next record.
    pub offset: u64,
    /// The 1-based line number of the next record.
    pub line: u64,
}

impl FilePosition {
    /// The start of a file: byte 0, line 1.
    pub const START: FilePosition = FilePosition { offset: 0, line: 1 };
}

impl Default for FilePosition {
    /// [`FilePosition::START`].
    fn default() -> Self {
        FilePosition::START
    }
}

impl fmt::Display for FilePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (byte {})", self.line, self.offset)
    }
}

/// One record read from a file, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T> {
    /// The parsed record.
    pub value: T,
    /// The 1-based line the record starts on.
    pub line: u64,
    /// The byte offset the record starts at.
    pub offset: u64,
    /// The position right after the record (after its newline): the resume point a checkpoint
    /// stores once this record is done.
    pub end: FilePosition,
}

/// A record that could not be parsed. The source reports it as an element and reads on.
///
/// ```
/// use pump_core::source::{FilePosition, RecordError};
/// let error = RecordError {
///     line: 7,
///     offset: 512,
///     end: FilePosition { offset: 530, line: 8 },
///     reason: "expected value at column 3".to_owned(),
///     raw: "{x:".to_owned(),
/// };
/// assert_eq!(error.to_string(), "line 7 (byte 512): expected value at column 3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} (byte {offset}): {reason}")]
pub struct RecordError {
    /// The 1-based line the record starts on.
    pub line: u64,
    /// The byte offset the record starts at.
    pub offset: u64,
    /// The position right after the record: skipping it means resuming here.
    pub end: FilePosition,
    /// Why the record was rejected.
    pub reason: String,
    /// The offending text (invalid UTF-8 replaced), cut to its first 1 KiB.
    pub raw: String,
}

impl RecordError {
    /// A record error for the record between `start` and `end` whose bytes (or their beginning) are
    /// `raw`.
    pub(crate) fn new(start: FilePosition, end: FilePosition, reason: String, raw: &[u8]) -> Self {
        RecordError { line: start.line, offset: start.offset, end, reason, raw: raw_text(raw) }
    }
}

/// Why a file source failed its run: the file could not be opened or read. It is the cause of the
/// run's [`PipelineError::Io`].
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}", path.display())]
#[non_exhaustive]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// The first [`RAW_LIMIT`] bytes of `bytes` as text, invalid UTF-8 replaced.
fn raw_text(bytes: &[u8]) -> String {
    let mut cut = bytes.len().min(RAW_LIMIT);
    // Do not split a character at the cut: back off over UTF-8 continuation bytes (at most 3).
    if cut < bytes.len() {
        let mut steps = 0;
        while cut > 0 && steps < 3 && bytes[cut] & 0b1100_0000 == 0b1000_0000 {
            cut -= 1;
            steps += 1;
        }
    }
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    // Replacement characters are longer than the bytes they replace.
    if text.len() > RAW_LIMIT {
        let boundary = text.floor_char_boundary(RAW_LIMIT);
        text.truncate(boundary);
    }
    text
}

// ---------------------------------------------------------------------------------------------------
// The reader thread and its hand-over.

/// The work a reader thread does: read the file, pushing records into the chunk sender.
pub(crate) type ReadJob<T> = Box<dyn FnOnce(&mut ChunkSender<T>) -> io::Result<()> + Send + 'static>;

/// The reader thread's side of the hand-over: it fills a chunk and sends it when full.
pub(crate) struct ChunkSender<T> {
    sender: mpsc::Sender<Vec<T>>,
    permit: Option<mpsc::OwnedPermit<Vec<T>>>,
    chunk: Vec<T>,
    runtime: Handle,
}

impl<T: Send + 'static> ChunkSender<T> {
    fn new(sender: mpsc::Sender<Vec<T>>, runtime: Handle) -> Self {
        ChunkSender { sender, permit: None, chunk: Vec::new(), runtime }
    }

    /// Waits, if need be, until the channel has room for the chunk about to be filled. Readers call
    /// it before reading each record, so that no record is parsed ahead of that room. Returns
    /// `false` when the pipeline has dropped the source: the reader should stop.
    pub(crate) fn ready(&mut self) -> bool {
        if self.sender.is_closed() {
            return false;
        }
        if self.permit.is_none() {
            // Take a slot of the channel before filling a chunk, so that the chunks queued plus the one
            // being filled never exceed the channel's capacity. This thread is a blocking one and not
            // inside the runtime's async context, so it may block on the runtime's handle.
            match self.runtime.block_on(self.sender.clone().reserve_owned()) {
                Ok(permit) => self.permit = Some(permit),
                Err(_closed) => return false,
            }
            self.chunk.reserve_exact(CHUNK_LEN);
        }
        true
    }

    /// Adds an item to the current chunk, sending the chunk when it is full. Returns `false` when
    /// the pipeline has dropped the source: the reader should stop.
    pub(crate) fn push(&mut self, item: T) -> bool {
        if !self.ready() {
            return false;
        }
        self.chunk.push(item);
        if self.chunk.len() >= CHUNK_LEN {
            self.send_chunk();
        }
        true
    }

    /// Sends the chunk being filled, if any.
    fn send_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        if let Some(permit) = self.permit.take() {
            permit.send(chunk);
        }
    }
}

/// The stream of a file source: starts the reader thread on its first poll and hands out what it
/// reads. Built by the file sources; it is the inner stream of their [`SourceStage`].
///
/// It counts record errors on its stage, and fails the run with a [`ReadError`] when the file
/// cannot be read (or with [`PipelineError::Panicked`] if parsing panicked).
#[must_use = "streams do nothing unless polled"]
pub struct RecordStream<T> {
    stage: Stage,
    path: PathBuf,
    state: ReadState<Result<Record<T>, RecordError>>,
    chunk: std::vec::IntoIter<Result<Record<T>, RecordError>>,
}

enum ReadState<T> {
    /// Not polled yet; the thread starts on the first poll, so nothing is read before demand.
    NotStarted(ReadJob<T>),
    /// The thread is running.
    Reading { receiver: mpsc::Receiver<Vec<T>>, reader: JoinHandle<io::Result<()>> },
    /// Every chunk was received; the thread's outcome is pending.
    Finishing(JoinHandle<io::Result<()>>),
    /// The stream has ended.
    Done,
}

// The stream never pins its fields: the chunk iterator, receiver and join handle are moved freely.
impl<T> Unpin for RecordStream<T> {}

impl<T> fmt::Debug for RecordStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ReadState::NotStarted(_) => "not started",
            ReadState::Reading { .. } => "reading",
            ReadState::Finishing(_) => "finishing",
            ReadState::Done => "done",
        };
        f.debug_struct("RecordStream")
            .field("stage", &self.stage.name())
            .field("path", &self.path)
            .field("state", &state)
            .field("buffered", &self.chunk.len())
            .finish()
    }
}

impl<T: Send + 'static> RecordStream<T> {
    /// A stream for `stage` that runs `job` on a blocking thread when first polled.
    pub(crate) fn new(stage: Stage, path: PathBuf, job: ReadJob<Result<Record<T>, RecordError>>) -> Self {
        RecordStream { stage, path, state: ReadState::NotStarted(job), chunk: Vec::new().into_iter() }
    }

    /// Fails the run with a read error on this stream's path.
    fn fail_read(&self, source: io::Error) {
        let error = ReadError { path: self.path.clone(), source };
        self.stage.fail(PipelineError::io(self.stage.name(), error));
    }
}

impl<T: Send + 'static> Stream for RecordStream<T> {
    type Item = Result<Record<T>, RecordError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.chunk.next() {
                if item.is_err() {
                    this.stage.metrics().record_error();
                }
                return Poll::Ready(Some(item));
            }
            match std::mem::replace(&mut this.state, ReadState::Done) {
                ReadState::NotStarted(job) => {
                    let Ok(runtime) = Handle::try_current() else {
                        this.fail_read(io::Error::other(
                            "file sources must be polled inside a tokio runtime",
                        ));
                        return Poll::Ready(None);
                    };
                    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
                    let thread_runtime = runtime.clone();
                    let reader = runtime.spawn_blocking(move || {
                        let mut chunks = ChunkSender::new(sender, thread_runtime);
                        let result = job(&mut chunks);
                        // Hand over what was read before a failure too: the records are valid.
                        chunks.send_chunk();
                        result
                    });
                    this.state = ReadState::Reading { receiver, reader };
                }
                ReadState::Reading { mut receiver, reader } => match receiver.poll_recv(cx) {
                    Poll::Ready(Some(chunk)) => {
                        this.chunk = chunk.into_iter();
                        this.state = ReadState::Reading { receiver, reader };
                    }
                    Poll::Ready(None) => this.state = ReadState::Finishing(reader),
                    Poll::Pending => {
                        this.state = ReadState::Reading { receiver, reader };
                        return Poll::Pending;
                    }
                },
                ReadState::Finishing(mut reader) => match Pin::new(&mut reader).poll(cx) {
                    Poll::Pending => {
                        this.state = ReadState::Finishing(reader);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(Ok(()))) => return Poll::Ready(None),
                    Poll::Ready(Ok(Err(error))) => {
                        this.fail_read(error);
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Err(join_error)) => {
                        match join_error.try_into_panic() {
                            Ok(payload) => {
                                this.stage
                                    .fail(PipelineError::from_panic(this.stage.name(), payload.as_ref()));
                            }
                            // Cancelled: the runtime is shutting down, and the run with it.
                            Err(_cancelled) => {
                                this.fail_read(io::Error::other("the reader thread was cancelled"));
                            }
                        }
                        return Poll::Ready(None);
                    }
                },
                ReadState::Done => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.state {
            ReadState::Done => (self.chunk.len(), Some(self.chunk.len())),
            _ => (self.chunk.len(), None),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading lines.

/// What [`LineReader::read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineRead {
    /// The line ended with `\n` (otherwise it ended the file).
    pub(crate) terminated: bool,
    /// The line did not fit the room it was given: the buffer holds its beginning, the rest was
    /// skipped.
    pub(crate) truncated: bool,
}

/// A physical line read by [`LineReader::next_line`], its content in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line {
    /// Where the line starts.
    pub(crate) start: FilePosition,
    /// Right after the line.
    pub(crate) end: FilePosition,
    /// The line was longer than allowed; the buffer holds its beginning.
    pub(crate) too_long: bool,
}

/// Reads `\n`-terminated lines and keeps the position of the next unread byte.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    input: R,
    position: FilePosition,
}

impl LineReader<BufReader<File>> {
    /// Opens `path` and positions the reader at `start`.
    pub(crate) fn open(path: &Path, start: FilePosition) -> io::Result<Self> {
        let file = File::open(path)?;
        let mut reader =
            LineReader::new(BufReader::with_capacity(READ_BUFFER_LEN, file), FilePosition::START);
        if start != FilePosition::START {
            reader.seek(start)?;
        }
        Ok(reader)
    }
}

impl<R: BufRead> LineReader<R> {
    /// A reader over `input`, whose next byte is at `position`.
    pub(crate) fn new(input: R, position: FilePosition) -> Self {
        LineReader { input, position }
    }

    /// The position of the next unread byte.
    pub(crate) fn position(&self) -> FilePosition {
        self.position
    }

    /// Moves to `to` (the byte offset is sought, the line number taken as given).
    pub(crate) fn seek(&mut self, to: FilePosition) -> io::Result<()>
    where
        R: Seek,
    {
        self.input.seek(SeekFrom::Start(to.offset))?;
        self.position = to;
        Ok(())
    }

    /// Reads one physical line, appending at most `room` bytes of it (without its `\n`; a `\r` is
    /// kept) to `buffer`, and skipping the rest of a longer line. `observe` sees every byte of the
    /// line's content, kept or skipped, in order (possibly one byte past `room` among the kept).
    /// Returns `None` at the end of the file.
    pub(crate) fn read_line(
        &mut self,
        buffer: &mut Vec<u8>,
        room: usize,
        observe: &mut impl FnMut(&[u8]),
    ) -> io::Result<Option<LineRead>> {
        let line_start = buffer.len();
        let limit = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
        let taken = io::Read::take(&mut self.input, limit).read_until(b'\n', buffer)?;
        if taken == 0 {
            return Ok(None);
        }
        let mut consumed = taken as u64;
        let mut truncated = false;
        let terminated = if buffer.last() == Some(&b'\n') {
            buffer.pop();
            observe(&buffer[line_start..]);
            true
        } else if (taken as u64) < limit {
            observe(&buffer[line_start..]);
            false
        } else {
            // Longer than the room: keep the beginning, skip to the end of the line.
            observe(&buffer[line_start..]);
            buffer.truncate(line_start + room);
            truncated = true;
            let (skipped, terminated) = self.skip_line(observe)?;
            consumed += skipped;
            terminated
        };
        self.position.offset += consumed;
        if terminated {
            self.position.line += 1;
        }
        Ok(Some(LineRead { terminated, truncated }))
    }

    /// Skips the rest of a line, its `\n` included; returns the bytes skipped and whether a `\n`
    /// ended it.
    fn skip_line(&mut self, observe: &mut impl FnMut(&[u8])) -> io::Result<(u64, bool)> {
        let mut skipped = 0u64;
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Ok((skipped, false));
            }
            if let Some(newline) = available.iter().position(|&byte| byte == b'\n') {
                observe(&available[..newline]);
                self.input.consume(newline + 1);
                return Ok((skipped + newline as u64 + 1, true));
            }
            let len = available.len();
            observe(available);
            self.input.consume(len);
            skipped += len as u64;
        }
    }

    /// Reads the next line into `buffer` (cleared first; `\n` and a trailing `\r` removed), keeping
    /// at most `max_len` bytes of it.
    pub(crate) fn next_line(&mut self, buffer: &mut Vec<u8>, max_len: usize) -> io::Result<Option<Line>> {
        buffer.clear();
        if buffer.capacity() > KEEP_BUFFER_CAPACITY {
            buffer.shrink_to(KEEP_BUFFER_CAPACITY);
        }
        let start = self.position();
        let Some(read) = self.read_line(buffer, max_len, &mut |_| {})? else {
            return Ok(None);
        };
        if !read.truncated && buffer.last() == Some(&b'\r') {
            buffer.pop();
        }
        Ok(Some(Line { start, end: self.position(), too_long: read.truncated }))
    }
}

/// What a synchronous scanner ([`LineScanner`], [`CsvScanner`](crate::source::CsvScanner)) found: a
/// record, or a [`RecordError`] for a bad one (scanning goes on after it).
pub type Scanned<T> = Result<T, RecordError>;

/// A synchronous, resumable scanner of the lines of a text file, each with the line number and byte
/// offset where it starts and the position right after it: the line reader of the file sources
/// (`text_lines`, `json_lines`), for blocking code that wants lines and positions without a
/// pipeline.
///
/// Lines end with `\n` (a trailing `\r` is dropped; the last line may lack its `\n`). Every line is
/// returned, blank ones included, so the caller decides what a blank line is. A line longer than
/// [`max_record_len`](Self::max_record_len) is a [`RecordError`] carrying its beginning, and
/// scanning goes on after it. [`seek`](Self::seek) returns to any position the scanner reported.
///
/// ```
/// use pump_core::source::LineScanner;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("rows.jsonl");
/// std::fs::write(&path, "{\"a\":1}\r\n\n{\"a\":2}").unwrap();
/// let mut scanner = LineScanner::open(&path).unwrap();
/// let first = scanner.next_line().unwrap().unwrap().unwrap();
/// assert_eq!((first.value, first.line, first.offset), (&b"{\"a\":1}"[..], 1, 0));
/// let resume_at = first.end;
/// let blank = scanner.next_line().unwrap().unwrap().unwrap();
/// assert_eq!((blank.value, blank.line), (&b""[..], 2));
/// assert_eq!(scanner.next_line().unwrap().unwrap().unwrap().line, 3);
/// assert!(scanner.next_line().unwrap().is_none());
/// scanner.seek(resume_at).unwrap();
/// assert_eq!(scanner.next_line().unwrap().unwrap().unwrap().line, 2);
/// ```
pub struct LineScanner {
    path: PathBuf,
    lines: LineReader<BufReader<File>>,
    max_len: usize,
    buffer: Vec<u8>,
}

impl fmt::Debug for LineScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineScanner")
            .field("path", &self.path)
            .field("position", &self.lines.position())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl LineScanner {
    /// Opens `path` at its start, with lines of at most [`DEFAULT_MAX_RECORD_LEN`] bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<LineScanner, ReadError> {
        let path = path.as_ref();
        let lines = LineReader::open(path, FilePosition::START)
            .map_err(|source| ReadError { path: path.to_owned(), source })?;
        Ok(LineScanner { path: path.to_owned(), lines, max_len: DEFAULT_MAX_RECORD_LEN, buffer: Vec::new() })
    }

    /// The same scanner, holding lines of at most `max_len` bytes.
    #[must_use]
    pub fn max_record_len(mut self, max_len: usize) -> LineScanner {
        self.max_len = max_len;
        self
    }

    /// The file being scanned.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next line starts.
    pub fn position(&self) -> FilePosition {
        self.lines.position()
    }

    /// Moves to `position`, which must be the start of a line (a position this scanner or a file
    /// source reported); line numbers continue from it.
    pub fn seek(&mut self, position: FilePosition) -> Result<(), ReadError> {
        self.lines.seek(position).map_err(|source| ReadError { path: self.path.clone(), source })
    }

    /// The next line, without its line end: `Ok(None)` at the end of the file, `Ok(Some(Err(_)))`
    /// for a line longer than the limit (scanning goes on after it), `Err(_)` when the file cannot
    /// be read.
    pub fn next_line(&mut self) -> Result<Option<Scanned<Record<&[u8]>>>, ReadError> {
        let line = match self.lines.next_line(&mut self.buffer, self.max_len) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(source) => return Err(ReadError { path: self.path.clone(), source }),
        };
        if line.too_long {
            let reason = format!("line longer than {} bytes", self.max_len);
            return Ok(Some(Err(RecordError::new(line.start, line.end, reason, &self.buffer))));
        }
        Ok(Some(Ok(Record {
            value: &self.buffer,
            line: line.start.line,
            offset: line.start.offset,
            end: line.end,
        })))
    }
}

/// Reads line-per-record files: each non-blank line is parsed by `parse` (which returns the value or
/// the reason it was rejected) and pushed as a record or a record error, up to the first line that
/// starts at or after byte `end`.
pub(crate) fn read_line_records<T: Send + 'static>(
    path: &Path,
    start: FilePosition,
    end: u64,
    max_len: usize,
    is_blank: fn(&[u8]) -> bool,
    mut parse: impl FnMut(&[u8]) -> Result<T, String>,
    chunks: &mut ChunkSender<Result<Record<T>, RecordError>>,
) -> io::Result<()> {
    let mut lines = LineReader::open(path, start)?;
    let mut buffer = Vec::new();
    while lines.position().offset < end && chunks.ready() {
        let Some(line) = lines.next_line(&mut buffer, max_len)? else {
            break;
        };
        let item = if line.too_long {
            Err(RecordError::new(line.start, line.end, format!("line longer than {max_len} bytes"), &buffer))
        } else if is_blank(&buffer) {
            continue;
        } else {
            match parse(&buffer) {
                Ok(value) => {
                    Ok(Record { value, line: line.start.line, offset: line.start.offset, end: line.end })
                }
                Err(reason) => Err(RecordError::new(line.start, line.end, reason, &buffer)),
            }
        };
        if !chunks.push(item) {
            break;
        }
    }
    Ok(())
}

/// Registers a file source's stage and builds its stream, wrapped like every root source.
pub(crate) fn open_records<T: Send + 'static>(
    ctx: &StageContext,
    operator: &str,
    path: PathBuf,
    job: ReadJob<Result<Record<T>, RecordError>>,
) -> SourceStage<RecordStream<T>> {
    let stage = ctx.register(operator);
    SourceStage::new(RecordStream::new(stage.clone(), path, job), &stage, ctx)
}

// ---------------------------------------------------------------------------------------------------
// `text_lines`.

/// A source of the lines of a text file. Built by [`text_lines()`].
#[derive(Debug, Clone)]
#[must_use = "sources do nothing unless run"]
pub struct TextLinesSource {
    path: PathBuf,
    start: FilePosition,
    end: u64,
    max_record_len: usize,
    keep_blank_lines: bool,
}

/// A source yielding each non-empty line of the file at `path` as a [`Record<String>`] (without
/// its `\n` or `\r\n`). A line that is not valid UTF-8, or longer than
/// [`max_record_len`](TextLinesSource::max_record_len), is a [`RecordError`] element. Lines are
/// read on a blocking thread; see the [module docs](self).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("notes.txt");
/// std::fs::write(&path, "first\r\n\nthird").unwrap();
/// let out = source::text_lines(&path).to(sink::collect()).run().await.unwrap();
/// let lines: Vec<(u64, String)> = out.value.into_iter().map(|r| r.unwrap()).map(|r| (r.line, r.value)).collect();
/// assert_eq!(lines, vec![(1, "first".to_owned()), (3, "third".to_owned())]);
/// # }
/// ```
pub fn text_lines(path: impl Into<PathBuf>) -> TextLinesSource {
    TextLinesSource {
        path: path.into(),
        start: FilePosition::START,
        end: u64::MAX,
        max_record_len: DEFAULT_MAX_RECORD_LEN,
        keep_blank_lines: false,
    }
}

impl TextLinesSource {
    /// Starts reading at `position` (usually the `end` of the last record a checkpoint covered);
    /// line numbers continue from it. The offset must be the start of a line.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// use pump_core::source::FilePosition;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "a\nb\nc\n").unwrap();
    /// let rest = source::text_lines(&path)
    ///     .start_at(FilePosition { offset: 2, line: 2 })
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let values: Vec<String> = rest.value.into_iter().map(|r| r.unwrap().value).collect();
    /// assert_eq!(values, ["b", "c"]);
    /// # }
    /// ```
    pub fn start_at(mut self, position: FilePosition) -> Self {
        self.start = position;
        self
    }

    /// Ends the source before the first line that starts at or after byte `offset` (a line start
    /// itself, so that consecutive ranges `start_at(a).end_at(b)`, `start_at(b)...` read every line
    /// once): one range of a file split into parts.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// use pump_core::source::FilePosition;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "a\nb\nc\n").unwrap();
    /// let middle = source::text_lines(&path)
    ///     .start_at(FilePosition { offset: 2, line: 2 })
    ///     .end_at(4)
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// let values: Vec<(u64, String)> = middle.value.into_iter().map(|r| r.unwrap()).map(|r| (r.line, r.value)).collect();
    /// assert_eq!(values, [(2, "b".to_owned())]);
    /// # }
    /// ```
    pub fn end_at(mut self, offset: u64) -> Self {
        self.end = offset;
        self
    }

    /// The longest line held in memory (default [`DEFAULT_MAX_RECORD_LEN`]); a longer line is a
    /// [`RecordError`] carrying its beginning.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "short\nfar too long\nok\n").unwrap();
    /// let out = source::text_lines(&path).max_record_len(5).to(sink::collect()).run().await.unwrap();
    /// assert_eq!(out.value[0].as_ref().unwrap().value, "short");
    /// assert_eq!(out.value[1].as_ref().unwrap_err().raw, "far t");
    /// assert_eq!(out.value[2].as_ref().unwrap().value, "ok");
    /// # }
    /// ```
    pub fn max_record_len(mut self, max_len: usize) -> Self {
        self.max_record_len = max_len;
        self
    }

    /// Yields empty lines too (as empty strings), for formats where a blank line is a record of its
    /// own, e.g. an invalid one that must be reported with its line number and offset.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "first\r\n\nthird\n").unwrap();
    /// let out = source::text_lines(&path).keep_blank_lines().to(sink::collect()).run().await.unwrap();
    /// let lines: Vec<(u64, u64, String)> =
    ///     out.value.into_iter().map(|r| r.unwrap()).map(|r| (r.line, r.offset, r.value)).collect();
    /// assert_eq!(lines, [(1, 0, "first".to_owned()), (2, 7, String::new()), (3, 8, "third".to_owned())]);
    /// # }
    /// ```
    pub fn keep_blank_lines(mut self) -> Self {
        self.keep_blank_lines = true;
        self
    }
}

impl Source for TextLinesSource {
    type Item = Result<Record<String>, RecordError>;
    type Stream = SourceStage<RecordStream<String>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let TextLinesSource { path, start, end, max_record_len, keep_blank_lines } = self;
        let job_path = path.clone();
        let is_blank: fn(&[u8]) -> bool = if keep_blank_lines { |_| false } else { <[u8]>::is_empty };
        let job: ReadJob<Self::Item> = Box::new(move |chunks| {
            read_line_records(&job_path, start, end, max_record_len, is_blank, parse_text, chunks)
        });
        open_records(ctx, "text_lines", path, job)
    }
}

/// A line as text, or why it is not.
fn parse_text(line: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(line) {
        Ok(text) => Ok(text.to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// Reads every line of `input` with `next_line`, returning (content, start, end, too_long).
    fn lines(input: &[u8], max_len: usize) -> Vec<(String, FilePosition, FilePosition, bool)> {
        let mut reader = LineReader::new(Cursor::new(input), FilePosition::START);
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = reader.next_line(&mut buffer, max_len).unwrap() {
            out.push((String::from_utf8_lossy(&buffer).into_owned(), line.start, line.end, line.too_long));
        }
        out
    }

    fn at(offset: u64, line: u64) -> FilePosition {
        FilePosition { offset, line }
    }

    #[test]
    fn lines_keep_positions_across_crlf_blank_and_unterminated_lines() {
        assert_eq!(
            lines(b"ab\r\n\ncd\nef", 100),
            vec![
                ("ab".to_owned(), at(0, 1), at(4, 2), false),
                (String::new(), at(4, 2), at(5, 3), false),
                ("cd".to_owned(), at(5, 3), at(8, 4), false),
                ("ef".to_owned(), at(8, 4), at(10, 4), false),
            ]
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_the_next_line_read_whole() {
        assert_eq!(
            lines(b"abcdef\ngh\nijklm", 3),
            vec![
                ("abc".to_owned(), at(0, 1), at(7, 2), true),
                ("gh".to_owned(), at(7, 2), at(10, 3), false),
                ("ijk".to_owned(), at(10, 3), at(15, 3), true),
            ]
        );
        // Exactly the limit is not too long, with or without its newline.
        assert_eq!(lines(b"abc\nabc", 3).iter().map(|line| line.3).collect::<Vec<_>>(), [false, false]);
    }

    #[test]
    fn read_line_shows_every_content_byte_to_the_observer() {
        let mut reader = LineReader::new(Cursor::new(&b"0123456789\nxy"[..]), FilePosition::START);
        let mut seen = Vec::new();
        let mut buffer = Vec::new();
        let read =
            reader.read_line(&mut buffer, 2, &mut |bytes: &[u8]| seen.extend_from_slice(bytes)).unwrap();
        assert_eq!(read, Some(LineRead { terminated: true, truncated: true }));
        assert_eq!(buffer, b"01");
        assert_eq!(seen, b"0123456789");
        assert_eq!(reader.position(), at(11, 2));
    }

    #[test]
    fn raw_text_is_cut_to_one_kibibyte_on_a_character_boundary() {
        let long = "é".repeat(RAW_LIMIT);
        let raw = raw_text(long.as_bytes());
        assert_eq!(raw.len(), RAW_LIMIT);
        assert!(raw.chars().all(|c| c == 'é'));
        let invalid = vec![0xFFu8; 2 * RAW_LIMIT];
        let raw = raw_text(&invalid);
        assert!(raw.len() <= RAW_LIMIT && raw.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
        assert_eq!(raw_text(b"short"), "short");
    }
}
