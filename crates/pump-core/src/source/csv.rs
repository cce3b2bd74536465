//! `csv`: a source of the rows of a CSV file, deserialized with serde.
//!
//! Record boundaries and positions are found here rather than taken from `csv::Reader::position`:
//! that position counts a record from the end of the previous one, so after a `\r\n` line end it
//! points at the `\n` (one line too early), and it includes any blank lines before the record. A
//! small scanner follows the CSV quoting rules (a `"` opens a quoted field only at the start of a
//! field, `""` inside one is a literal quote) to find where each record ends — a `\n` outside quotes
//! — and the `csv` crate then splits that one record into fields and deserializes it. So each
//! record's line and offset are those of its first byte, and `end` is right after its newline.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::marker::PhantomData;
use std::path::PathBuf;

use ::csv::{ByteRecord, ReaderBuilder, Terminator};
use serde::de::DeserializeOwned;

use crate::source::file::{self, ChunkSender, DEFAULT_MAX_RECORD_LEN, LineReader, ReadJob, RecordStream};
use crate::source::{FilePosition, Record, RecordError, Source, SourceStage};
use crate::stage::StageContext;

/// The CSV quote character (the only one the source supports, with `""` as its escape).
const QUOTE: u8 = b'"';

/// The `csv` crate's own buffer, which only ever holds one record handed over in memory.
const FIELD_BUFFER_LEN: usize = 16 * 1024;

/// A reusable record buffer that grew beyond this after a long record is shrunk back.
const KEEP_BUFFER_CAPACITY: usize = 1024 * 1024;

/// A source of the rows of a CSV file. Built by [`csv()`].
#[must_use = "sources do nothing unless run"]
pub struct CsvSource<T> {
    path: PathBuf,
    start: FilePosition,
    has_headers: bool,
    delimiter: u8,
    max_record_len: usize,
    marker: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for CsvSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvSource")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("has_headers", &self.has_headers)
            .field("delimiter", &char::from(self.delimiter))
            .field("max_record_len", &self.max_record_len)
            .finish()
    }
}

impl<T> Clone for CsvSource<T> {
    fn clone(&self) -> Self {
        CsvSource {
            path: self.path.clone(),
            start: self.start,
            has_headers: self.has_headers,
            delimiter: self.delimiter,
            max_record_len: self.max_record_len,
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
/// lines; `\r\n` and `\n` line ends are both accepted; blank lines are skipped. The file is read and
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
        has_headers: true,
        delimiter: b',',
        max_record_len: DEFAULT_MAX_RECORD_LEN,
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
        self.has_headers = has_headers;
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
        self.delimiter = delimiter;
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
        self.max_record_len = max_len;
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

/// The reader thread's work: the header row, then every record from the start position on.
fn read_csv<T: DeserializeOwned + Send + 'static>(
    options: &CsvSource<T>,
    chunks: &mut ChunkSender<Result<Record<T>, RecordError>>,
) -> io::Result<()> {
    let max_len = options.max_record_len;
    let opened_at = if options.has_headers { FilePosition::START } else { options.start };
    let mut records =
        RecordReader::new(LineReader::open(&options.path, opened_at)?, options.delimiter, max_len);
    let mut fields = FieldSplitter::new(options.delimiter);
    let mut buffer = Vec::new();

    let headers = if options.has_headers {
        let Some(raw) = records.next_record(&mut buffer)? else {
            return Ok(());
        };
        if raw.too_long {
            return Err(invalid_data(format!("the header row is longer than {max_len} bytes")));
        }
        let headers = fields
            .split(&mut buffer, raw.open_quote)
            .map_err(|reason| invalid_data(format!("the header row cannot be read: {reason}")))?
            .clone();
        if options.start.offset > records.position().offset {
            records.seek(options.start)?;
        }
        Some(headers)
    } else {
        None
    };

    let mut expected_fields = headers.as_ref().map(ByteRecord::len);
    while chunks.ready() {
        let Some(raw) = records.next_record(&mut buffer)? else {
            break;
        };
        let parsed =
            parse_row(&mut fields, &mut buffer, raw, headers.as_ref(), &mut expected_fields, max_len);
        let item = match parsed {
            Ok(value) => Ok(Record { value, line: raw.start.line, offset: raw.start.offset, end: raw.end }),
            Err(reason) => Err(RecordError::new(raw.start, raw.end, reason, &buffer)),
        };
        if !chunks.push(item) {
            break;
        }
    }
    Ok(())
}

/// The record in `buffer` as a `T`, or why it is not one: too long, not splittable into fields, a
/// number of fields other than the header's (or, without headers, the first record's), or fields
/// that do not deserialize.
fn parse_row<T: DeserializeOwned>(
    fields: &mut FieldSplitter,
    buffer: &mut Vec<u8>,
    raw: RawRecord,
    headers: Option<&ByteRecord>,
    expected_fields: &mut Option<usize>,
    max_len: usize,
) -> Result<T, String> {
    if raw.too_long {
        return Err(format!("record longer than {max_len} bytes"));
    }
    let row = fields.split(buffer, raw.open_quote)?;
    let expected = *expected_fields.get_or_insert(row.len());
    if row.len() != expected {
        return Err(format!("found {} fields, expected {expected}", row.len()));
    }
    row.deserialize(headers).map_err(|error| deserialize_reason(&error, headers))
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
    fn after(self, bytes: &[u8], delimiter: u8) -> Quoting {
        let Some(&last) = bytes.last() else {
            return self;
        };
        if self != Quoting::Quoted && !bytes.contains(&QUOTE) {
            // Outside quotes and without a quote byte, only the last byte decides.
            return if last == delimiter { Quoting::FieldStart } else { Quoting::Unquoted };
        }
        bytes.iter().fold(self, |state, &byte| match (state, byte) {
            (Quoting::Quoted, QUOTE) => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => Quoting::Quoted,
            (Quoting::FieldStart | Quoting::QuoteInQuoted, QUOTE) => Quoting::Quoted,
            (_, byte) if byte == delimiter => Quoting::FieldStart,
            _ => Quoting::Unquoted,
        })
    }
}

/// A record found by [`RecordReader::next_record`]; its bytes are in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawRecord {
    start: FilePosition,
    end: FilePosition,
    /// Longer than allowed: the buffer holds its beginning.
    too_long: bool,
    /// The file ended inside a quoted field.
    open_quote: bool,
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
    /// trailing `\r` and the final `\n` removed. `None` at the end of the file.
    fn next_record(&mut self, buffer: &mut Vec<u8>) -> io::Result<Option<RawRecord>> {
        let delimiter = self.delimiter;
        loop {
            buffer.clear();
            if buffer.capacity() > KEEP_BUFFER_CAPACITY {
                buffer.shrink_to(KEEP_BUFFER_CAPACITY);
            }
            let start = self.lines.position();
            let mut quoting = Quoting::FieldStart;
            let mut observe = |bytes: &[u8]| quoting = quoting.after(bytes, delimiter);
            let Some(mut line) = self.lines.read_line(buffer, self.max_len, &mut observe)? else {
                return Ok(None);
            };
            let mut too_long = line.truncated;
            if !too_long && (buffer.is_empty() || buffer == b"\r") {
                continue;
            }
            let open_quote = loop {
                if quoting != Quoting::Quoted {
                    break false;
                }
                if !line.terminated {
                    break true;
                }
                // A newline inside a quoted field is data; the record goes on.
                if buffer.len() < self.max_len {
                    buffer.push(b'\n');
                } else {
                    too_long = true;
                }
                let room = if too_long { 0 } else { self.max_len - buffer.len() };
                let mut observe = |bytes: &[u8]| quoting = quoting.after(bytes, delimiter);
                match self.lines.read_line(buffer, room, &mut observe)? {
                    Some(next) => {
                        too_long |= next.truncated;
                        line = next;
                    }
                    None => break true,
                }
            };
            if !too_long && !open_quote && buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
            return Ok(Some(RawRecord { start, end: self.lines.position(), too_long, open_quote }));
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

    /// Splits the record in `bytes` (as [`RecordReader::next_record`] left it; `bytes` is restored
    /// before returning).
    fn split(&mut self, bytes: &mut Vec<u8>, open_quote: bool) -> Result<&ByteRecord, String> {
        // A record that ends the file inside quotes gets no newline: the csv reader sees the end of
        // its input instead, as it would have in the file.
        if !open_quote {
            bytes.push(b'\n');
        }
        let feed = self.reader.get_mut();
        std::mem::swap(&mut feed.bytes, bytes);
        feed.read = 0;
        self.fed += feed.bytes.len() as u64;
        let result = self.reader.read_byte_record(&mut self.row);
        std::mem::swap(&mut self.reader.get_mut().bytes, bytes);
        if !open_quote {
            bytes.pop();
        }
        let consumed_exactly = self.reader.position().byte() == self.fed;
        match result {
            Ok(true) if consumed_exactly && !open_quote => Ok(&self.row),
            Ok(true) if consumed_exactly => {
                // The reader has seen the end of its input; a fresh one takes any later record.
                let row = std::mem::take(&mut self.row);
                self.reset();
                self.row = row;
                Ok(&self.row)
            }
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
#[allow(clippy::unwrap_used)]
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
            let fields = if raw.too_long {
                Err(format!("too long: {}", String::from_utf8_lossy(&buffer)))
            } else {
                splitter
                    .split(&mut buffer, raw.open_quote)
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
    fn an_unclosed_quote_runs_to_the_end_of_the_file() {
        assert_eq!(
            records("1,2\n\"open,\n3,4\n", 100),
            vec![(fields(&["1", "2"]), at(0, 1), at(4, 2)), (fields(&["open,\n3,4\n"]), at(4, 2), at(15, 4)),]
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
