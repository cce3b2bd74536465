//! `csv`: a source of the rows of a CSV file, deserialized with serde; and [`CsvScanner`], the
//! synchronous record scanner it reads with, for blocking code that wants records and positions
//! without a pipeline.
//!
//! Record boundaries and positions are found here rather than taken from `csv::Reader::position`:
//! that position counts a record from the end of the previous one, so after a `\r\n` line end it
//! points at the `\n` (one line too early), and it includes any blank lines before the record. A
//! small scanner follows the CSV quoting rules (a `"` opens a quoted field only at the start of a
//! field, `""` inside one is a literal quote) to find where each record ends — a `\n` outside quotes
//! — and the `csv` crate then splits that one record into fields and deserializes it. So each
//! record's line and offset are those of its first byte, and `end` is right after its newline.
//!
//! The scanner is the one CSV reader of the workspace: the async [`csv()`] source runs it on its reader
//! thread, and blocking code (a training pass, a pre-pass over a file) drives it directly through
//! [`CsvScanner::next_record`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use ::csv::{ByteRecord, ReaderBuilder, Terminator};
use serde::de::DeserializeOwned;

use crate::source::file::{
    self, ChunkSender, DEFAULT_MAX_RECORD_LEN, LineReader, ReadError, ReadJob, RecordStream, Scanned,
};
use crate::source::{FilePosition, Record, RecordError, Source, SourceStage};
use crate::stage::StageContext;

/// The CSV quote character (the only one the source supports, with `""` as its escape).
const QUOTE: u8 = b'"';

/// A UTF-8 byte-order mark, skipped at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The `csv` crate's own buffer, which only ever holds one record handed over in memory.
const FIELD_BUFFER_LEN: usize = 16 * 1024;

/// A reusable record buffer that grew beyond this after a long record is shrunk back.
const KEEP_BUFFER_CAPACITY: usize = 1024 * 1024;

/// A source of the rows of a CSV file. Built by [`csv()`].
#[must_use = "sources do nothing unless run"]
pub struct CsvSource<T> {
    path: PathBuf,
    start: FilePosition,
    end: u64,
    options: CsvScanOptions,
    marker: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for CsvSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvSource")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("has_headers", &self.options.has_headers)
            .field("delimiter", &char::from(self.options.delimiter))
            .field("max_record_len", &self.options.max_record_len)
            .finish()
    }
}

impl<T> Clone for CsvSource<T> {
    fn clone(&self) -> Self {
        CsvSource {
            path: self.path.clone(),
            start: self.start,
            end: self.end,
            options: self.options.clone(),
            marker: PhantomData,
        }
    }
}

/// A source deserializing each row of the CSV file at `path` into a `T` (by column name when the
/// file has a header row, the default; by position otherwise).
///
/// Each element is a [`Record`] (the value, the line and byte offset where the row starts, and its
/// end position) or, for a row that is not a valid `T` or has the wrong number of fields, a
/// [`RecordError`]: the source reads on, and counts the error on its stage. Quoted fields may span
/// lines; `\r\n` and `\n` line ends are both accepted; blank lines are skipped; a UTF-8 byte-order
/// mark at the start is skipped. A quote still open at the end of the file makes the record it opened
/// in a [`RecordError`] naming the line it opened on and how many lines it ran over. The file is read and
/// parsed on a blocking thread, at most 3 chunks of 1024 records ahead of the pipeline (see
/// [`source::file`](mod@file)). A file that cannot be opened or read fails the run with
/// [`PipelineError::Io`](crate::PipelineError::Io).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// #[derive(Debug, serde::Deserialize)]
/// struct City {
///     name: String,
///     population: u64,
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("cities.csv");
/// std::fs::write(&path, "name,population\nOslo,709037\n\"Saint-Malo,\nFrance\",46097\nNowhere,many\n").unwrap();
/// let out = source::csv::<City>(&path).to(sink::collect()).run().await.unwrap();
/// let malo = out.value[1].as_ref().unwrap();
/// assert_eq!((malo.value.name.as_str(), malo.value.population, malo.line), ("Saint-Malo,\nFrance", 46097, 3));
/// let error = out.value[2].as_ref().unwrap_err();
/// assert_eq!(error.to_string(), "line 5 (byte 55): column `population`: invalid digit found in string");
/// # }
/// ```
pub fn csv<T: DeserializeOwned + Send + 'static>(path: impl Into<PathBuf>) -> CsvSource<T> {
    CsvSource {
        path: path.into(),
        start: FilePosition::START,
        end: u64::MAX,
        options: CsvScanOptions::default(),
        marker: PhantomData,
    }
}

impl<T> CsvSource<T> {
    /// Starts reading at `position` — usually the [`end`](Record::end) of the last record a
    /// checkpoint covered; line numbers continue from it. The offset must be the start of a record.
    /// With a header row, the header is still read from the start of the file first; a position
    /// inside the header row starts at the first record.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// #[derive(serde::Deserialize)]
    /// struct Point {
    ///     x: i32,
    ///     y: i32,
    /// }
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("points.csv");
    /// std::fs::write(&path, "x,y\n1,2\n3,4\n5,6\n").unwrap();
    /// let all = source::csv::<Point>(&path).to(sink::collect()).run().await.unwrap();
    /// let checkpoint = all.value[0].as_ref().unwrap().end;
    /// let rest = source::csv::<Point>(&path).start_at(checkpoint).to(sink::collect()).run().await.unwrap();
    /// let rest: Vec<(u64, i32)> = rest.value.into_iter().map(|r| r.unwrap()).map(|r| (r.line, r.value.x)).collect();
    /// assert_eq!(rest, vec![(3, 3), (4, 5)]);
    /// # }
    /// ```
    pub fn start_at(mut self, position: FilePosition) -> Self {
        self.start = position;
        self
    }

    /// Ends the source before the first record that starts at or after byte `offset`, which should
    /// be a record's [`end`](Record::end) (so that consecutive ranges read every record once): one
    /// range of a file split into parts. The header row is still read from the start.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("notes.csv");
    /// std::fs::write(&path, "id,note\n1,\"two\nlines\"\n2,plain\n").unwrap();
    /// let all = source::csv::<(u32, String)>(&path).to(sink::collect()).run().await.unwrap();
    /// let boundary = all.value[0].as_ref().unwrap().end;
    /// let second = source::csv::<(u32, String)>(&path).start_at(boundary).to(sink::collect()).run().await.unwrap();
    /// let first = source::csv::<(u32, String)>(&path).end_at(boundary.offset).to(sink::collect()).run().await.unwrap();
    /// assert_eq!(first.value.len() + second.value.len(), 2);
    /// assert_eq!(second.value[0].as_ref().unwrap().line, 4);
    /// # }
    /// ```
    pub fn end_at(mut self, offset: u64) -> Self {
        self.end = offset;
        self
    }

    /// Whether the first row names the columns (default `true`). Without headers, rows deserialize
    /// by position (into tuples, or structs in field order).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("pairs.csv");
    /// std::fs::write(&path, "a,1\nb,2\n").unwrap();
    /// let out = source::csv::<(String, u32)>(&path).has_headers(false).to(sink::collect()).run().await.unwrap();
    /// let pairs: Vec<(String, u32)> = out.value.into_iter().map(|r| r.unwrap().value).collect();
    /// assert_eq!(pairs, vec![("a".to_owned(), 1), ("b".to_owned(), 2)]);
    /// # }
    /// ```
    pub fn has_headers(mut self, has_headers: bool) -> Self {
        self.options = self.options.has_headers(has_headers);
        self
    }

    /// The field delimiter (default `b','`; `b'\t'` for TSV).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("pairs.tsv");
    /// std::fs::write(&path, "key\tvalue\nx\t7\n").unwrap();
    /// let out = source::csv::<std::collections::BTreeMap<String, String>>(&path)
    ///     .delimiter(b'\t')
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value[0].as_ref().unwrap().value["value"], "7");
    /// # }
    /// ```
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.options = self.options.delimiter(delimiter);
        self
    }

    /// The longest record held in memory (default
    /// [`DEFAULT_MAX_RECORD_LEN`](file::DEFAULT_MAX_RECORD_LEN)); a longer record is a
    /// [`RecordError`] carrying its beginning, and the source reads on after it. (An unclosed quote
    /// makes the rest of the file one record, so this also bounds what such a file costs.) A header
    /// row longer than this fails the run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("words.csv");
    /// std::fs::write(&path, "word\nshort\nrather long\n").unwrap();
    /// let out = source::csv::<(String,)>(&path).max_record_len(8).to(sink::collect()).run().await.unwrap();
    /// assert_eq!(out.value[0].as_ref().unwrap().value.0, "short");
    /// assert_eq!(out.value[1].as_ref().unwrap_err().reason, "record longer than 8 bytes");
    /// # }
    /// ```
    pub fn max_record_len(mut self, max_len: usize) -> Self {
        self.options = self.options.max_record_len(max_len);
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> Source for CsvSource<T> {
    type Item = Result<Record<T>, RecordError>;
    type Stream = SourceStage<RecordStream<T>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let path = self.path.clone();
        let job: ReadJob<Self::Item> = Box::new(move |chunks| read_csv(&self, chunks));
        file::open_records(ctx, "csv", path, job)
    }
}

/// The reader thread's work: the header row, then every record from the start position on, read by
/// a [`CsvScanner`].
fn read_csv<T: DeserializeOwned + Send + 'static>(
    options: &CsvSource<T>,
    chunks: &mut ChunkSender<Result<Record<T>, RecordError>>,
) -> io::Result<()> {
    let mut scanner = options.options.open(&options.path).map_err(|error| error.source)?;
    scanner.seek(options.start).map_err(|error| error.source)?;
    let headers = scanner.headers.clone();
    let mut expected_fields = headers.as_ref().map(ByteRecord::len);
    while scanner.position().offset < options.end && chunks.ready() {
        let Some(scanned) = scanner.next_record().map_err(|error| error.source)? else {
            break;
        };
        let item = match scanned {
            Ok(mut record) => match parse_row(&mut record, headers.as_ref(), &mut expected_fields) {
                Ok(value) => {
                    Ok(Record { value, line: record.line(), offset: record.offset(), end: record.end() })
                }
                Err(Ok(reason)) => Err(record.error(reason)),
                Err(Err(error)) => Err(error),
            },
            Err(error) => Err(error),
        };
        if !chunks.push(item) {
            break;
        }
    }
    Ok(())
}

/// The record as a `T`, or why it is not one: a number of fields other than the header's (or,
/// without headers, the first record's), or fields that do not deserialize; or the record's error
/// when it cannot be split into fields.
fn parse_row<T: DeserializeOwned>(
    record: &mut CsvRecord<'_>,
    headers: Option<&ByteRecord>,
    expected_fields: &mut Option<usize>,
) -> Result<T, Result<String, RecordError>> {
    let row = record.fields().map_err(Err)?.record;
    let expected = *expected_fields.get_or_insert(row.len());
    if row.len() != expected {
        return Err(Ok(format!("found {} fields, expected {expected}", row.len())));
    }
    row.deserialize(headers).map_err(|error| Ok(deserialize_reason(&error, headers)))
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The csv crate's deserialization error, naming the column by its header when there is one.
fn deserialize_reason(error: &::csv::Error, headers: Option<&ByteRecord>) -> String {
    let ::csv::ErrorKind::Deserialize { err, .. } = error.kind() else {
        return error.to_string();
    };
    let Some(index) = err.field() else {
        return err.kind().to_string();
    };
    let header = usize::try_from(index).ok().and_then(|index| headers?.get(index));
    match header {
        Some(name) => format!("column `{}`: {}", String::from_utf8_lossy(name), err.kind()),
        None => format!("column {}: {}", index.saturating_add(1), err.kind()),
    }
}

// ---------------------------------------------------------------------------------------------------
// The synchronous scanner.

/// How a [`CsvScanner`] reads a file: header row, delimiter, longest record. Built by
/// [`CsvScanner::options`]; [`open`](CsvScanOptions::open) opens a file with them.
///
/// ```
/// use pump_core::source::CsvScanner;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("pairs.tsv");
/// std::fs::write(&path, "a\t1\nb\t2\n").unwrap();
/// let mut scanner = CsvScanner::options().has_headers(false).delimiter(b'\t').open(&path).unwrap();
/// let mut record = scanner.next_record().unwrap().unwrap().unwrap();
/// assert_eq!(record.fields().unwrap().get(1), Some(&b"1"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvScanOptions {
    has_headers: bool,
    delimiter: u8,
    max_record_len: usize,
}

impl Default for CsvScanOptions {
    /// A header row, `,` as the delimiter, records of at most
    /// [`DEFAULT_MAX_RECORD_LEN`](file::DEFAULT_MAX_RECORD_LEN) bytes.
    fn default() -> Self {
        CsvScanOptions { has_headers: true, delimiter: b',', max_record_len: DEFAULT_MAX_RECORD_LEN }
    }
}

impl CsvScanOptions {
    /// Whether the first record names the columns (default `true`); it is then read by
    /// [`open`](Self::open) and offered by [`CsvScanner::headers`].
    #[must_use]
    pub fn has_headers(mut self, has_headers: bool) -> Self {
        self.has_headers = has_headers;
        self
    }

    /// The field delimiter (default `b','`).
    #[must_use]
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// The longest record held in memory (default
    /// [`DEFAULT_MAX_RECORD_LEN`](file::DEFAULT_MAX_RECORD_LEN)); a longer one is a [`RecordError`]
    /// carrying its beginning, and scanning goes on after it.
    #[must_use]
    pub fn max_record_len(mut self, max_len: usize) -> Self {
        self.max_record_len = max_len;
        self
    }

    /// Opens `path` and, with headers, reads the header row. The scanner is then at the first data
    /// record.
    ///
    /// Fails when the file cannot be opened or read, and (with `InvalidData` as the cause's kind)
    /// when the header row is too long or cannot be split into fields. An empty file has no header
    /// row: [`CsvScanner::headers`] is then `None`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<CsvScanner, ReadError> {
        let path = path.as_ref();
        let read_error = |source: io::Error| ReadError { path: path.to_owned(), source };
        let lines = LineReader::open(path, FilePosition::START).map_err(read_error)?;
        let mut scanner = CsvScanner {
            path: path.to_owned(),
            records: RecordReader::new(lines, self.delimiter, self.max_record_len),
            splitter: FieldSplitter::new(self.delimiter),
            buffer: Vec::new(),
            headers: None,
            data_start: FilePosition::START,
        };
        if self.has_headers {
            let max_len = self.max_record_len;
            if let Some(raw) = scanner.records.next_record(&mut scanner.buffer).map_err(read_error)? {
                if let Some(problem) = raw.problem(max_len) {
                    return Err(read_error(invalid_data(format!(
                        "the header row cannot be read: {problem}"
                    ))));
                }
                let headers = scanner
                    .splitter
                    .split(&mut scanner.buffer)
                    .map_err(|reason| {
                        read_error(invalid_data(format!("the header row cannot be read: {reason}")))
                    })?
                    .clone();
                scanner.headers = Some(headers);
            }
            scanner.data_start = scanner.records.position();
        }
        Ok(scanner)
    }
}

/// A synchronous, resumable scanner of the records of a CSV file: each with the line and byte offset
/// where it starts and the position right after it, split into fields on demand.
///
/// It follows the same rules as the [`csv()`] source (which reads with it): a `"` opens a quoted
/// field only at the start of a field, `""` inside one is a literal quote, newlines and delimiters
/// inside quotes are data, so one record may span lines; `\r\n` and `\n` both end a record; blank
/// lines are skipped but counted in line numbers; a UTF-8 byte-order mark at the start is skipped.
/// A record longer than the limit, or one in which a quote is still open at the end of the file, is
/// a [`RecordError`] and scanning goes on after it.
///
/// For blocking code (a pass over a file on a worker thread): it holds one record at a time, reads
/// through a 256 KiB buffer, and can [`seek`](Self::seek) back to any position it reported, so a
/// checkpoint that stores [`position`](Self::position) (or a record's [`end`](CsvRecord::end))
/// resumes exactly there.
///
/// ```
/// use pump_core::source::{CsvScanner, FilePosition};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("cities.csv");
/// std::fs::write(&path, "name,population\nOslo,709037\n\"Saint-Malo,\nFrance\",46097\n").unwrap();
/// let mut scanner = CsvScanner::open(&path).unwrap();
/// assert_eq!(scanner.headers().unwrap().get(1), Some(&b"population"[..]));
///
/// let mut record = scanner.next_record().unwrap().unwrap().unwrap();
/// assert_eq!((record.line(), record.offset(), record.is_plain()), (2, 16, true));
/// assert_eq!(record.bytes(), b"Oslo,709037");
/// let resume_at = record.end();
///
/// let mut record = scanner.next_record().unwrap().unwrap().unwrap();
/// assert!(!record.is_plain());
/// assert_eq!(record.fields().unwrap().get(0), Some(&b"Saint-Malo,\nFrance"[..]));
/// assert!(scanner.next_record().unwrap().is_none());
///
/// scanner.seek(resume_at).unwrap();
/// let record = scanner.next_record().unwrap().unwrap().unwrap();
/// assert_eq!((record.line(), record.end()), (3, FilePosition { offset: 55, line: 5 }));
/// ```
pub struct CsvScanner {
    path: PathBuf,
    records: RecordReader<BufReader<File>>,
    splitter: FieldSplitter,
    buffer: Vec<u8>,
    headers: Option<ByteRecord>,
    data_start: FilePosition,
}

impl fmt::Debug for CsvScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvScanner")
            .field("path", &self.path)
            .field("position", &self.records.position())
            .field("data_start", &self.data_start)
            .finish()
    }
}

impl CsvScanner {
    /// Opens `path` with the default options (a header row, `,`): see [`CsvScanOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<CsvScanner, ReadError> {
        CsvScanOptions::default().open(path)
    }

    /// Options to open a file with.
    pub fn options() -> CsvScanOptions {
        CsvScanOptions::default()
    }

    /// The file being scanned.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header row's fields; `None` without headers or for an empty file.
    pub fn headers(&self) -> Option<CsvFields<'_>> {
        self.headers.as_ref().map(|record| CsvFields { record })
    }

    /// Where the next record starts (a blank line before it included).
    pub fn position(&self) -> FilePosition {
        self.records.position()
    }

    /// Where the first data record starts: after the header row, or the start of the file.
    pub fn data_start(&self) -> FilePosition {
        self.data_start
    }

    /// Moves to `position`, which must be the start of a record (a position this scanner or the
    /// [`csv()`] source reported); line numbers continue from it. A position before
    /// [`data_start`](Self::data_start) means the first data record.
    pub fn seek(&mut self, position: FilePosition) -> Result<(), ReadError> {
        let position = if position.offset < self.data_start.offset { self.data_start } else { position };
        self.records.seek(position).map_err(|source| ReadError { path: self.path.clone(), source })
    }

    /// The next record: `Ok(None)` at the end of the file, `Ok(Some(Err(_)))` for a record that is
    /// too long or whose quote is never closed (scanning goes on after it), `Err(_)` when the file
    /// cannot be read.
    pub fn next_record(&mut self) -> Result<Option<Scanned<CsvRecord<'_>>>, ReadError> {
        let raw = match self.records.next_record(&mut self.buffer) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            Err(source) => return Err(ReadError { path: self.path.clone(), source }),
        };
        if let Some(problem) = raw.problem(self.records.max_len) {
            return Ok(Some(Err(RecordError::new(raw.start, raw.end, problem, &self.buffer))));
        }
        Ok(Some(Ok(CsvRecord { raw, bytes: &mut self.buffer, splitter: &mut self.splitter })))
    }
}

/// One record found by [`CsvScanner::next_record`]: where it is, its text, and its fields on demand.
/// It borrows the scanner until it is dropped.
pub struct CsvRecord<'a> {
    raw: RawRecord,
    bytes: &'a mut Vec<u8>,
    splitter: &'a mut FieldSplitter,
}

impl fmt::Debug for CsvRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvRecord")
            .field("start", &self.raw.start)
            .field("end", &self.raw.end)
            .field("bytes", &String::from_utf8_lossy(self.bytes))
            .finish()
    }
}

impl CsvRecord<'_> {
    /// Where the record starts.
    pub fn start(&self) -> FilePosition {
        self.raw.start
    }

    /// The 1-based line the record starts on.
    pub fn line(&self) -> u64 {
        self.raw.start.line
    }

    /// The byte offset the record starts at.
    pub fn offset(&self) -> u64 {
        self.raw.start.offset
    }

    /// The position right after the record (after its newline): where scanning goes on, and what a
    /// checkpoint stores once this record is done.
    pub fn end(&self) -> FilePosition {
        self.raw.end
    }

    /// The record's text as in the file: its lines joined by `\n`, without the final line end (and
    /// without a byte-order mark).
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// Whether the record holds no quote character. Its fields are then exactly the pieces of
    /// [`bytes`](Self::bytes) between delimiters, so a caller may read them in place rather than
    /// through [`fields`](Self::fields) (a fast path for numeric data).
    pub fn is_plain(&self) -> bool {
        !self.raw.quoted
    }

    /// The record split into fields, quotes removed and `""` read as `"`.
    ///
    /// Fails (a [`RecordError`] for this record) only if the record cannot be split, which the
    /// scanner's quoting rules rule out.
    pub fn fields(&mut self) -> Result<CsvFields<'_>, RecordError> {
        match self.splitter.split(self.bytes) {
            Ok(record) => Ok(CsvFields { record }),
            Err(reason) => Err(RecordError::new(self.raw.start, self.raw.end, reason, self.bytes)),
        }
    }

    /// A [`RecordError`] for this record with the caller's `reason` (a field that does not parse, a
    /// wrong number of fields), carrying the record's position and text.
    pub fn error(&self, reason: impl Into<String>) -> RecordError {
        RecordError::new(self.raw.start, self.raw.end, reason.into(), self.bytes)
    }
}

/// The fields of one CSV record (or of the header row), as bytes.
#[derive(Debug, Clone, Copy)]
pub struct CsvFields<'a> {
    record: &'a ByteRecord,
}

impl<'a> CsvFields<'a> {
    /// How many fields.
    pub fn len(&self) -> usize {
        self.record.len()
    }

    /// Whether there is no field (never the case for a record the scanner found).
    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }

    /// Field `idx` (from 0).
    pub fn get(&self, idx: usize) -> Option<&'a [u8]> {
        self.record.get(idx)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        self.record.iter()
    }
}

// ---------------------------------------------------------------------------------------------------
// Finding records.

/// Where the CSV quoting rules are, between two bytes of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field: a quote here opens a quoted field.
    FieldStart,
    /// Inside an unquoted field (or after a closed quoted one): quotes are literal.
    Unquoted,
    /// Inside a quoted field: delimiters and newlines are data.
    Quoted,
    /// Just after a quote inside a quoted field: a second quote is a literal quote, anything else
    /// means the first one closed the field.
    QuoteInQuoted,
}

impl Quoting {
    /// The state after `bytes`.
    #[cfg(test)]
    fn after(self, bytes: &[u8], delimiter: u8) -> Quoting {
        let mut tracker = QuoteTracker { state: self, opened: false, quoted: false };
        tracker.observe(bytes, delimiter);
        tracker.state
    }
}

/// The quoting state while a record is read, and what was seen of quotes.
#[derive(Debug, Clone, Copy)]
struct QuoteTracker {
    state: Quoting,
    /// A quoted field opened in the bytes observed since this was last reset.
    opened: bool,
    /// A quote character was seen.
    quoted: bool,
}

impl QuoteTracker {
    fn new() -> Self {
        QuoteTracker { state: Quoting::FieldStart, opened: false, quoted: false }
    }

    /// Moves the state over `bytes`.
    fn observe(&mut self, bytes: &[u8], delimiter: u8) {
        let Some(&last) = bytes.last() else {
            return;
        };
        if self.state != Quoting::Quoted && !bytes.contains(&QUOTE) {
            // Outside quotes and without a quote byte, only the last byte decides.
            self.state = if last == delimiter { Quoting::FieldStart } else { Quoting::Unquoted };
            return;
        }
        self.quoted |= bytes.contains(&QUOTE);
        for &byte in bytes {
            self.state = match (self.state, byte) {
                (Quoting::Quoted, QUOTE) => Quoting::QuoteInQuoted,
                (Quoting::Quoted, _) => Quoting::Quoted,
                (Quoting::FieldStart, QUOTE) => {
                    self.opened = true;
                    Quoting::Quoted
                }
                // A second quote right after one inside a quoted field is a literal quote.
                (Quoting::QuoteInQuoted, QUOTE) => Quoting::Quoted,
                (_, byte) if byte == delimiter => Quoting::FieldStart,
                _ => Quoting::Unquoted,
            };
        }
    }
}

/// A quote still open at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenQuote {
    /// The line the quoted field opened on.
    line: u64,
    /// Lines from that one to the end of the file, both included.
    lines: u64,
}

/// A record found by [`RecordReader::next_record`]; its bytes are in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawRecord {
    start: FilePosition,
    end: FilePosition,
    /// Longer than allowed: the buffer holds its beginning.
    too_long: bool,
    /// The file ended inside a quoted field.
    open_quote: Option<OpenQuote>,
    /// The record holds a quote character.
    quoted: bool,
}

impl RawRecord {
    /// Why the record cannot be split into fields, if it cannot: a quote left open (which also
    /// explains a record that grew too long), or its length.
    fn problem(&self, max_len: usize) -> Option<String> {
        if let Some(open) = self.open_quote {
            let lines = if open.lines == 1 { "1 line".to_owned() } else { format!("{} lines", open.lines) };
            return Some(format!(
                "the quote opened on line {} is never closed: the record runs to the end of the file ({lines} \
                 from there)",
                open.line
            ));
        }
        self.too_long.then(|| format!("record longer than {max_len} bytes"))
    }
}

/// Splits a file into CSV records, one or more physical lines each.
#[derive(Debug)]
struct RecordReader<R> {
    lines: LineReader<R>,
    delimiter: u8,
    max_len: usize,
}

impl<R: BufRead> RecordReader<R> {
    fn new(lines: LineReader<R>, delimiter: u8, max_len: usize) -> Self {
        RecordReader { lines, delimiter, max_len }
    }

    fn position(&self) -> FilePosition {
        self.lines.position()
    }

    fn seek(&mut self, to: FilePosition) -> io::Result<()>
    where
        R: io::Seek,
    {
        self.lines.seek(to)
    }

    /// Reads the next non-blank record into `buffer` (cleared first): its lines joined by `\n`, a
    /// trailing `\r` and the final `\n` removed, and a byte-order mark at the start of the file
    /// dropped. `None` at the end of the file.
    fn next_record(&mut self, buffer: &mut Vec<u8>) -> io::Result<Option<RawRecord>> {
        let delimiter = self.delimiter;
        loop {
            buffer.clear();
            if buffer.capacity() > KEEP_BUFFER_CAPACITY {
                buffer.shrink_to(KEEP_BUFFER_CAPACITY);
            }
            let start = self.lines.position();
            let mut tracker = QuoteTracker::new();
            let mut observe = |bytes: &[u8]| tracker.observe(bytes, delimiter);
            let Some(mut line) = self.lines.read_line(buffer, self.max_len, &mut observe)? else {
                return Ok(None);
            };
            if start.offset == 0 && buffer.starts_with(BOM) {
                buffer.drain(..BOM.len());
            }
            let mut too_long = line.truncated;
            if !too_long && (buffer.is_empty() || buffer == b"\r") {
                continue;
            }
            // The line the last quoted field still open opened on, and the line being read.
            let mut line_number = start.line;
            let mut quote_line = start.line;
            let open_quote = loop {
                if tracker.state != Quoting::Quoted {
                    break None;
                }
                if tracker.opened {
                    quote_line = line_number;
                    tracker.opened = false;
                }
                if !line.terminated {
                    break Some(OpenQuote { line: quote_line, lines: line_number - quote_line + 1 });
                }
                // A newline inside a quoted field is data; the record goes on.
                if buffer.len() < self.max_len {
                    buffer.push(b'\n');
                } else {
                    too_long = true;
                }
                let room = if too_long { 0 } else { self.max_len - buffer.len() };
                let mut observe = |bytes: &[u8]| tracker.observe(bytes, delimiter);
                match self.lines.read_line(buffer, room, &mut observe)? {
                    Some(next) => {
                        too_long |= next.truncated;
                        line = next;
                        line_number += 1;
                    }
                    None => break Some(OpenQuote { line: quote_line, lines: line_number - quote_line + 1 }),
                }
            };
            if !too_long && open_quote.is_none() && buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
            let end = self.lines.position();
            return Ok(Some(RawRecord { start, end, too_long, open_quote, quoted: tracker.quoted }));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Splitting one record into fields with the csv crate.

/// The csv reader's input: the one record being split.
#[derive(Debug, Default)]
struct Feed {
    bytes: Vec<u8>,
    read: usize,
}

impl Read for Feed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let rest = self.bytes.get(self.read..).unwrap_or_default();
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.read += n;
        Ok(n)
    }
}

/// Splits single records into fields with a long-lived `csv::Reader`, fed one record at a time.
struct FieldSplitter {
    reader: ::csv::Reader<Feed>,
    delimiter: u8,
    /// Bytes handed to `reader` so far, to check it consumed exactly each record.
    fed: u64,
    row: ByteRecord,
}

impl fmt::Debug for FieldSplitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldSplitter").field("fed", &self.fed).finish()
    }
}

impl FieldSplitter {
    fn new(delimiter: u8) -> Self {
        FieldSplitter { reader: Self::reader(delimiter), delimiter, fed: 0, row: ByteRecord::new() }
    }

    fn reader(delimiter: u8) -> ::csv::Reader<Feed> {
        ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .quote(QUOTE)
            .double_quote(true)
            .terminator(Terminator::Any(b'\n'))
            .buffer_capacity(FIELD_BUFFER_LEN)
            .from_reader(Feed::default())
    }

    /// Splits the record in `bytes` (as [`RecordReader::next_record`] left it, its quotes closed;
    /// `bytes` is restored before returning).
    fn split(&mut self, bytes: &mut Vec<u8>) -> Result<&ByteRecord, String> {
        bytes.push(b'\n');
        let feed = self.reader.get_mut();
        std::mem::swap(&mut feed.bytes, bytes);
        feed.read = 0;
        self.fed += feed.bytes.len() as u64;
        let result = self.reader.read_byte_record(&mut self.row);
        std::mem::swap(&mut self.reader.get_mut().bytes, bytes);
        bytes.pop();
        let consumed_exactly = self.reader.position().byte() == self.fed;
        match result {
            Ok(true) if consumed_exactly => Ok(&self.row),
            Ok(_) => {
                // The scanner and the csv crate disagree on where the record ends. It cannot happen
                // with the quoting rules both follow; if it does, start afresh rather than misalign
                // every later record.
                self.reset();
                Err("the record cannot be split into fields".to_owned())
            }
            Err(error) => {
                self.reset();
                Err(error.to_string())
            }
        }
    }

    fn reset(&mut self) {
        self.reader = Self::reader(self.delimiter);
        self.fed = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn at(offset: u64, line: u64) -> FilePosition {
        FilePosition { offset, line }
    }

    /// Every record of `input`: its fields (or the split error), start and end.
    fn records(
        input: &str,
        max_len: usize,
    ) -> Vec<(Result<Vec<String>, String>, FilePosition, FilePosition)> {
        let mut reader = RecordReader::new(
            LineReader::new(Cursor::new(input.as_bytes()), FilePosition::START),
            b',',
            max_len,
        );
        let mut splitter = FieldSplitter::new(b',');
        let mut buffer = Vec::new();
        let mut out = Vec::new();
        while let Some(raw) = reader.next_record(&mut buffer).unwrap() {
            let fields = if let Some(open) = raw.open_quote {
                Err(format!(
                    "open quote from line {} over {} lines: {}",
                    open.line,
                    open.lines,
                    String::from_utf8_lossy(&buffer)
                ))
            } else if raw.too_long {
                Err(format!("too long: {}", String::from_utf8_lossy(&buffer)))
            } else {
                splitter
                    .split(&mut buffer)
                    .map(|row| row.iter().map(|field| String::from_utf8_lossy(field).into_owned()).collect())
            };
            out.push((fields, raw.start, raw.end));
        }
        out
    }

    fn fields(values: &[&str]) -> Result<Vec<String>, String> {
        Ok(values.iter().map(|value| (*value).to_owned()).collect())
    }

    #[test]
    fn crlf_blank_lines_and_a_last_line_without_newline() {
        assert_eq!(
            records("a,b\r\n\r\n1,2\r\n\n3,4", 100),
            vec![
                (fields(&["a", "b"]), at(0, 1), at(5, 2)),
                (fields(&["1", "2"]), at(7, 3), at(12, 4)),
                (fields(&["3", "4"]), at(13, 5), at(16, 5)),
            ]
        );
    }

    #[test]
    fn quoted_fields_keep_newlines_delimiters_and_doubled_quotes() {
        assert_eq!(
            records("\"x\ny\",\"a,\"\"b\"\"\"\r\nnext,\"\"\n", 100),
            vec![
                (fields(&["x\ny", "a,\"b\""]), at(0, 1), at(17, 3)),
                (fields(&["next", ""]), at(17, 3), at(25, 4)),
            ]
        );
        // A quoted CRLF is data and kept.
        assert_eq!(records("\"x\r\ny\"\n", 100), vec![(fields(&["x\r\ny"]), at(0, 1), at(7, 3))]);
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_literal() {
        assert_eq!(
            records("a\"b,c\nd,e\n", 100),
            vec![(fields(&["a\"b", "c"]), at(0, 1), at(6, 2)), (fields(&["d", "e"]), at(6, 2), at(10, 3))]
        );
        // After a closed quoted field, text up to the delimiter is appended and quotes are literal.
        assert_eq!(records("\"a\"b\"c,d\n", 100), vec![(fields(&["ab\"c", "d"]), at(0, 1), at(9, 2))]);
    }

    #[test]
    fn an_unclosed_quote_runs_to_the_end_of_the_file_and_says_where_it_opened() {
        assert_eq!(
            records("1,2\n\"open,\n3,4\n", 100),
            vec![
                (fields(&["1", "2"]), at(0, 1), at(4, 2)),
                (Err("open quote from line 2 over 2 lines: \"open,\n3,4\n".to_owned()), at(4, 2), at(15, 4)),
            ]
        );
        // A record whose first quoted field closes on its second line, where the next one opens: the
        // open quote is the second line's. Without a final newline the last line counts.
        assert_eq!(
            records("\"a\nb\",\"c\nd\ne", 100),
            vec![(
                Err("open quote from line 2 over 3 lines: \"a\nb\",\"c\nd\ne".to_owned()),
                at(0, 1),
                at(12, 4)
            )]
        );
        // An escaped quote does not open a field; a long open record still says where the quote opened.
        assert_eq!(
            records("x,\"\"\"y\n", 100)[0].0,
            Err("open quote from line 1 over 1 lines: x,\"\"\"y\n".to_owned())
        );
        let long = records("ok\nx,\"abcdefghij\nklmnopqrstuvwxyz\n", 8);
        assert_eq!(long[1].0, Err("open quote from line 2 over 2 lines: x,\"abcde".to_owned()));
    }

    /// Every record the scanner reports from `path`: line, offset, end and fields (or the error).
    type ScannedRow = (u64, u64, FilePosition, Result<Vec<String>, String>);

    fn scan_all(scanner: &mut CsvScanner) -> Vec<ScannedRow> {
        let mut out = Vec::new();
        while let Some(item) = scanner.next_record().unwrap() {
            out.push(match item {
                Ok(mut record) => {
                    let (line, offset, end) = (record.line(), record.offset(), record.end());
                    let fields =
                        record.fields().unwrap().iter().map(|f| String::from_utf8_lossy(f).into_owned());
                    (line, offset, end, Ok(fields.collect()))
                }
                Err(error) => (error.line, error.offset, error.end, Err(error.reason)),
            });
        }
        out
    }

    #[test]
    fn the_scanner_resumes_at_every_position_it_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, "\u{feff}a,b\r\n\r\n1,\"x\ny\"\r\n2,\"\"\"q\"\"\"\n3,z\n4,\"open\n5,6\n")
            .unwrap();
        let mut scanner = CsvScanner::open(&path).unwrap();
        let headers: Vec<&[u8]> = scanner.headers().unwrap().iter().collect();
        assert_eq!(headers, [&b"a"[..], &b"b"[..]]);
        assert_eq!(scanner.data_start(), at(8, 2));
        let all = scan_all(&mut scanner);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], (3, 10, at(19, 5), Ok(vec!["1".to_owned(), "x\ny".to_owned()])));
        assert_eq!(all[1].3, Ok(vec!["2".to_owned(), "\"q\"".to_owned()]));
        assert_eq!(
            all[3].3,
            Err("the quote opened on line 7 is never closed: the record runs to the end of the file (2 lines \
                 from there)"
                .to_owned())
        );
        for skip in 0..all.len() {
            let from = if skip == 0 { FilePosition::START } else { all[skip - 1].2 };
            scanner.seek(from).unwrap();
            assert_eq!(scan_all(&mut scanner), all[skip..].to_vec(), "from {from}");
        }
        // A plain record can be read in place.
        scanner.seek(all[1].2).unwrap();
        let record = scanner.next_record().unwrap().unwrap().unwrap();
        assert!(record.is_plain());
        assert_eq!(record.bytes(), b"3,z");
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        assert_eq!(
            records("\u{feff}a,b\n\u{feff}c,d\n", 100),
            vec![
                (fields(&["a", "b"]), at(0, 1), at(7, 2)),
                (fields(&["\u{feff}c", "d"]), at(7, 2), at(14, 3))
            ]
        );
    }

    #[test]
    fn a_record_longer_than_the_limit_is_skipped_whole() {
        let out = records("ab,cd\n\"long\nquoted\nfield\",x\nok,1\n", 8);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].0, fields(&["ab", "cd"]));
        assert_eq!(out[1], (Err("too long: \"long\nqu".to_owned()), at(6, 2), at(28, 5)));
        assert_eq!(out[2], (fields(&["ok", "1"]), at(28, 5), at(33, 6)));
    }

    #[test]
    fn the_quoting_scanner_agrees_across_chunk_boundaries() {
        let text = b"\"a\"\"b\",c,\"d\ne\"";
        let whole = Quoting::FieldStart.after(text, b',');
        for cut in 0..text.len() {
            let (left, right) = text.split_at(cut);
            assert_eq!(Quoting::FieldStart.after(left, b',').after(right, b','), whole, "cut at {cut}");
        }
    }
}
