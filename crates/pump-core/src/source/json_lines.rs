//! `json_lines`: a source of the records of a JSON-lines file, one JSON value per line.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::source::file::{self, DEFAULT_MAX_RECORD_LEN, ReadJob, RecordStream};
use crate::source::{FilePosition, Record, RecordError, Source, SourceStage};
use crate::stage::StageContext;

/// A source of the records of a JSON-lines file. Built by [`json_lines`].
#[must_use = "sources do nothing unless run"]
pub struct JsonLinesSource<T> {
    path: PathBuf,
    start: FilePosition,
    max_record_len: usize,
    marker: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JsonLinesSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSource")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("max_record_len", &self.max_record_len)
            .finish()
    }
}

impl<T> Clone for JsonLinesSource<T> {
    fn clone(&self) -> Self {
        JsonLinesSource {
            path: self.path.clone(),
            start: self.start,
            max_record_len: self.max_record_len,
            marker: PhantomData,
        }
    }
}

/// A source deserializing each line of the JSON-lines file at `path` into a `T`.
///
/// Each element is a [`Record`] (the value, its line, byte offset and end position) or, for a line
/// that is not a valid `T`, a [`RecordError`]: the source reads on, and counts the error on its
/// stage. Lines holding only whitespace are skipped. The file is read and parsed on a blocking
/// thread, at most 3 chunks of 1024 records ahead of the pipeline (see [`source::file`](mod@file)). A
/// file that cannot be opened or read fails the run with [`PipelineError::Io`](crate::PipelineError::Io).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// #[derive(Debug, serde::Deserialize)]
/// struct Order {
///     id: u32,
///     total: f64,
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("orders.jsonl");
/// std::fs::write(&path, "{\"id\":1,\"total\":9.5}\n{\"id\":2,\"total\":oops}\n{\"id\":3,\"total\":1.0}\n").unwrap();
/// let out = source::json_lines::<Order>(&path).to(sink::collect()).run().await.unwrap();
/// let first = out.value[0].as_ref().unwrap();
/// assert_eq!((first.value.id, first.line, first.offset), (1, 1, 0));
/// let error = out.value[1].as_ref().unwrap_err();
/// assert_eq!((error.line, error.offset), (2, 21));
/// assert_eq!(out.value[2].as_ref().unwrap().value.id, 3);
/// assert_eq!(out.stats.metrics.total_errors(), 1);
/// # }
/// ```
pub fn json_lines<T: DeserializeOwned + Send + 'static>(path: impl Into<PathBuf>) -> JsonLinesSource<T> {
    JsonLinesSource {
        path: path.into(),
        start: FilePosition::START,
        max_record_len: DEFAULT_MAX_RECORD_LEN,
        marker: PhantomData,
    }
}

impl<T> JsonLinesSource<T> {
    /// Starts reading at `position` — usually the [`end`](Record::end) of the last record a
    /// checkpoint covered; line numbers continue from it. The offset must be the start of a line.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("numbers.jsonl");
    /// std::fs::write(&path, "1\n2\n3\n").unwrap();
    /// let all = source::json_lines::<u32>(&path).to(sink::collect()).run().await.unwrap();
    /// let checkpoint = all.value[0].as_ref().unwrap().end;
    /// let rest = source::json_lines::<u32>(&path).start_at(checkpoint).to(sink::collect()).run().await.unwrap();
    /// let rest: Vec<(u64, u32)> = rest.value.into_iter().map(|r| r.unwrap()).map(|r| (r.line, r.value)).collect();
    /// assert_eq!(rest, vec![(2, 2), (3, 3)]);
    /// # }
    /// ```
    pub fn start_at(mut self, position: FilePosition) -> Self {
        self.start = position;
        self
    }

    /// The longest line held in memory (default
    /// [`DEFAULT_MAX_RECORD_LEN`](file::DEFAULT_MAX_RECORD_LEN)); a longer line is a [`RecordError`]
    /// carrying its beginning, and the source reads on after it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("words.jsonl");
    /// std::fs::write(&path, "\"short\"\n\"rather long\"\n").unwrap();
    /// let out = source::json_lines::<String>(&path).max_record_len(8).to(sink::collect()).run().await.unwrap();
    /// assert_eq!(out.value[0].as_ref().unwrap().value, "short");
    /// assert_eq!(out.value[1].as_ref().unwrap_err().reason, "line longer than 8 bytes");
    /// # }
    /// ```
    pub fn max_record_len(mut self, max_len: usize) -> Self {
        self.max_record_len = max_len;
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> Source for JsonLinesSource<T> {
    type Item = Result<Record<T>, RecordError>;
    type Stream = SourceStage<RecordStream<T>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let JsonLinesSource { path, start, max_record_len, marker: _ } = self;
        let job_path = path.clone();
        let job: ReadJob<Self::Item> = Box::new(move |chunks| {
            file::read_line_records(
                &job_path,
                start,
                u64::MAX,
                max_record_len,
                is_blank,
                parse_json::<T>,
                chunks,
            )
        });
        file::open_records(ctx, "json_lines", path, job)
    }
}

/// A line of only whitespace holds no record.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// One line as a `T`, or why it is not one.
fn parse_json<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    serde_json::from_slice(line).map_err(|error| json_reason(&error))
}

/// serde_json's message without its `line 1`: the record's line is already in the [`RecordError`].
fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(what) if error.line() == 1 => format!("{what} at column {}", error.column()),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_column_but_not_the_line() {
        let error = parse_json::<serde_json::Value>(b"{x:").unwrap_err();
        assert_eq!(error, "key must be a string at column 2");
        let error = parse_json::<u32>(b"\"seven\"").unwrap_err();
        assert_eq!(error, "invalid type: string \"seven\", expected u32 at column 7");
    }

    #[test]
    fn whitespace_only_lines_are_blank() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \t "));
        assert!(!is_blank(b" 1 "));
    }
}
