//! The runner's first seam: a [`RecordSource`] yields records with a serialisable position and
//! reopens at such a position. The file implementations: [`TextLinesInput`] (one record a line) and
//! [`CsvRowsInput`] (one record a CSV row, quoted fields spanning lines allowed, handed over as a
//! JSON object of the row's cells).

use std::fmt;
use std::path::{Path, PathBuf};

use batch_model::ErrorCode;
use pump_core::Source;
use pump_core::SourceExt as _;
use pump_core::flow::{Map, Via};
use pump_core::source::{CsvSource, FilePosition, Record, RecordError, TextLinesSource, csv, text_lines};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::partition::InputRange;

/// One element of a record source: a record, or a record that could not be read (a
/// `VALIDATION_ERROR` dead letter; the source reads on).
///
/// A record's `line` and `offset` say where it is in the whole input, for people and dead letters:
/// for files its 1-based line and byte offset; for sources without lines (an API, a table) its
/// 1-based ordinal and 0-based ordinal. Its `end` is what a file source resumes from; other sources
/// fill it with the ordinals after the record and keep their own [`RecordSource::Position`].
pub type SourceElement = Result<Record<String>, RecordError>;

/// Where a chunk runner's records come from: something that yields records in a fixed order, each
/// with the position right after it, and that can be opened again at such a position to yield
/// exactly the records that follow.
///
/// The runner stores [`position_after`](RecordSource::position_after) of each chunk's last element
/// in the chunk's checkpoint and reopens the source there on resume, so a source must yield the
/// same records in the same order every time it is opened at the same position (a file that does not
/// change, a table read in key order, an API paged over a closed time window).
///
/// A source that fails as a whole (a file that cannot be read, an API that refuses the token) ends
/// its pump-core stream with a `PipelineError::Io`; its cause is a `pump_core::source::file::ReadError`
/// for files or a [`SourceFailure`] carrying the code the task fails with.
pub trait RecordSource: Send + Sync + 'static {
    /// The position stored in checkpoints (`Checkpoint::source`); its `Default` is the start.
    type Position: Clone
        + Default
        + fmt::Debug
        + fmt::Display
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The pump-core source a run reads.
    type Source: Source<Item = SourceElement>;

    /// Opens the source at `position` (the start when `None`).
    fn open(&self, position: Option<&Self::Position>) -> Self::Source;

    /// The position right after `element`: the checkpoint's position once it is done. Called once
    /// per chunk for blocking kinds, once per record for async ones: it must be cheap.
    fn position_after(&self, element: &SourceElement) -> Self::Position;

    /// What the source reads, for messages: `the input /data/trades.jsonl`.
    fn describe(&self) -> String;

    /// The expected number of records in the whole input, from the `done` records before
    /// `position`; `None` when the source cannot tell. Shown as the progress total.
    fn estimated_total(&self, done: u64, position: &Self::Position) -> Option<u64> {
        let _ = (done, position);
        None
    }
}

/// A failure of a whole source (not of one record), with the code the task fails with. Sources put
/// it as the cause of the `PipelineError::Io` that ends their stream; the runner reports it as
/// [`RunError::Source`](super::RunError::Source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceFailure {
    /// The code the task fails with (`PROCESSING_ERROR` for a refused token, `STORAGE_ERROR` for a
    /// source that cannot be read, `TIMEOUT_ERROR` when it stopped answering).
    pub code: ErrorCode,
    /// What went wrong, for people; names the source and the cause once.
    pub message: String,
}

impl SourceFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> SourceFailure {
        SourceFailure { code, message: message.into() }
    }
}

/// The position after a file element: the record's (or the bad record's) `end`.
fn file_end(element: &SourceElement) -> FilePosition {
    match element {
        Ok(record) => record.end,
        Err(error) => error.end,
    }
}

/// A straight-line estimate of a file's records from the records done and the bytes they cover,
/// exact at the end (counting the lines instead would read the whole input a second time).
pub(crate) fn estimated_file_total(done: u64, offset: u64, input_len: Option<u64>) -> Option<u64> {
    let input_len = input_len?;
    if done == 0 || offset == 0 {
        return None;
    }
    if offset >= input_len {
        return Some(done);
    }
    let estimate = (u128::from(done) * u128::from(input_len)).div_ceil(u128::from(offset));
    Some(u64::try_from(estimate).unwrap_or(u64::MAX).max(done))
}

/// A text file read line by line (pump-core's `text_lines`): each line is a record, its position the
/// byte offset and line number after it.
///
/// ```
/// use batch_tasks::records::{RecordSource, TextLinesInput};
///
/// let input = TextLinesInput::new("trades.jsonl").keep_blank_lines(true);
/// assert_eq!(input.describe(), "the input trades.jsonl");
/// ```
#[derive(Debug, Clone)]
pub struct TextLinesInput {
    path: PathBuf,
    keep_blank_lines: bool,
    range: InputRange,
    len: Option<u64>,
}

impl TextLinesInput {
    /// The lines of the file at `path`; blank lines are skipped.
    pub fn new(path: impl Into<PathBuf>) -> TextLinesInput {
        let path = path.into();
        let len = std::fs::metadata(&path).ok().map(|metadata| metadata.len());
        TextLinesInput { path, keep_blank_lines: false, range: InputRange::WHOLE, len }
    }

    /// Reads only the lines of `range` (one partition of the file), numbered as in the whole file.
    #[must_use]
    pub fn range(self, range: InputRange) -> TextLinesInput {
        TextLinesInput { range, ..self }
    }

    /// Whether a blank line is a record too (an empty text with its line number).
    #[must_use]
    pub fn keep_blank_lines(self, keep: bool) -> TextLinesInput {
        TextLinesInput { keep_blank_lines: keep, ..self }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RecordSource for TextLinesInput {
    type Position = FilePosition;
    type Source = TextLinesSource;

    fn open(&self, position: Option<&FilePosition>) -> TextLinesSource {
        let source =
            text_lines(&self.path).start_at(position.copied().unwrap_or(self.range.start_position()));
        let source = match self.range.end {
            Some(end) => source.end_at(end),
            None => source,
        };
        if self.keep_blank_lines { source.keep_blank_lines() } else { source }
    }

    fn position_after(&self, element: &SourceElement) -> FilePosition {
        file_end(element)
    }

    fn describe(&self) -> String {
        format!("the input {}", self.path.display())
    }

    fn estimated_total(&self, done: u64, position: &FilePosition) -> Option<u64> {
        estimated_range_total(done, position.offset, self.range, self.len)
    }
}

/// A CSV file with a header row, read by pump-core's quote-aware CSV source (quoted fields may hold
/// delimiters, doubled quotes and line breaks): each row is a record whose text is a JSON object of
/// the row's cells, as strings, keyed by the header's names (a later column with a header name seen
/// before wins). A row with another number of fields than the header is a `VALIDATION_ERROR` dead
/// letter, as is a quote left open at the end of the file; blank lines are no records. A record's
/// line and offset are those of its first byte.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use batch_tasks::records::{CsvRowsInput, RecordSource};
/// use pump_core::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("orders.csv");
/// std::fs::write(&path, "id,note\n1,\"two\nlines\"\n2,plain\n").unwrap();
/// let input = CsvRowsInput::new(&path);
/// let rows = input.open(None).to(sink::collect()).run().await.unwrap().value;
/// let first = rows[0].as_ref().unwrap();
/// assert_eq!((first.line, first.value.as_str()), (2, r#"{"id":"1","note":"two\nlines"}"#));
/// assert_eq!(rows[1].as_ref().unwrap().line, 4);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CsvRowsInput {
    path: PathBuf,
    delimiter: u8,
    range: InputRange,
    len: Option<u64>,
}

impl CsvRowsInput {
    /// The rows of the CSV file at `path` (`,`-delimited).
    pub fn new(path: impl Into<PathBuf>) -> CsvRowsInput {
        let path = path.into();
        let len = std::fs::metadata(&path).ok().map(|metadata| metadata.len());
        CsvRowsInput { path, delimiter: b',', range: InputRange::WHOLE, len }
    }

    /// Reads only the rows of `range` (one partition of the file, split with
    /// [`split_csv`](super::split_csv)), numbered as in the whole file; the header row is still read
    /// from the start.
    #[must_use]
    pub fn range(self, range: InputRange) -> CsvRowsInput {
        CsvRowsInput { range, ..self }
    }

    /// The field delimiter (`b'\t'` for TSV).
    #[must_use]
    pub fn delimiter(self, delimiter: u8) -> CsvRowsInput {
        CsvRowsInput { delimiter, ..self }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Turns a deserialised row into the record's text (a move, no copy).
type RowToText = fn(Result<Record<RowJson>, RecordError>) -> SourceElement;

impl RecordSource for CsvRowsInput {
    type Position = FilePosition;
    type Source = Via<CsvSource<RowJson>, Map<RowToText>>;

    fn open(&self, position: Option<&FilePosition>) -> Self::Source {
        let source = csv::<RowJson>(&self.path)
            .delimiter(self.delimiter)
            .start_at(position.copied().unwrap_or(self.range.start_position()));
        let source = match self.range.end {
            Some(end) => source.end_at(end),
            None => source,
        };
        let to_text: fn(Result<Record<RowJson>, RecordError>) -> SourceElement = |element| {
            element.map(|record| Record {
                value: record.value.0,
                line: record.line,
                offset: record.offset,
                end: record.end,
            })
        };
        source.map(to_text)
    }

    fn position_after(&self, element: &SourceElement) -> FilePosition {
        file_end(element)
    }

    fn describe(&self) -> String {
        format!("the input {}", self.path.display())
    }

    fn estimated_total(&self, done: u64, position: &FilePosition) -> Option<u64> {
        estimated_range_total(done, position.offset, self.range, self.len)
    }
}

/// [`estimated_file_total`] for the part of a file of `len` bytes that `range` covers.
fn estimated_range_total(done: u64, offset: u64, range: InputRange, len: Option<u64>) -> Option<u64> {
    if range == InputRange::WHOLE {
        return estimated_file_total(done, offset, len);
    }
    let range_len = range.len_in(len?);
    estimated_file_total(done, offset.saturating_sub(range.start), Some(range_len))
}

/// A CSV row deserialised straight into the text of a JSON object (on the CSV source's reader
/// thread): the header names as keys, the cells as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowJson(String);

impl<'de> serde::Deserialize<'de> for RowJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RowJson, D::Error> {
        deserializer.deserialize_map(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> serde::de::Visitor<'de> for RowVisitor {
    type Value = RowJson;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a CSV row under a header")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RowJson, A::Error> {
        let mut text = String::from("{");
        let mut first = true;
        while let Some((name, cell)) =
            map.next_entry::<std::borrow::Cow<'de, str>, std::borrow::Cow<'de, str>>()?
        {
            if !first {
                text.push(',');
            }
            first = false;
            push_json_string(&mut text, &name);
            text.push(':');
            push_json_string(&mut text, &cell);
        }
        text.push('}');
        Ok(RowJson(text))
    }
}

/// Appends `value` as a JSON string.
fn push_json_string(text: &mut String, value: &str) {
    // Serialising a `str` cannot fail.
    text.push_str(&serde_json::to_string(value).unwrap_or_default());
}
