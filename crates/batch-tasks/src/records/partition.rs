//! Partitions of a record input: the byte range one partition reads ([`InputRange`]), splitting a
//! file into such ranges at record boundaries ([`split_lines`], [`split_csv`]), and the names of a
//! partition's own files ([`partition_path`]).
//!
//! A partitioned task's kind splits its input once, when the task is first claimed; each partition
//! (a child task) then runs its range through the chunk runner like any task, starting at the line
//! number of its first record, so that its dead letters name lines of the whole input. The parent
//! merges the partitions' files when the last one completes (see [`merge`](super::merge)).

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use pump_core::source::{CsvScanner, FilePosition};
use serde::{Deserialize, Serialize};

use super::error::RunError;

/// The records of one part of an input file: those that start at or after byte `start` (the first
/// of them on line `line`) and before byte `end` (the end of the file when `None`). `start` and
/// `end` are record boundaries, so consecutive ranges read every record exactly once.
///
/// A kind's param `input_range` (`{"start": 1048576, "line": 2049, "end": 2097152}`), set on each
/// partition by the kind's split.
///
/// ```
/// use batch_tasks::records::InputRange;
/// use pump_core::source::FilePosition;
///
/// let range: InputRange = serde_json::from_value(serde_json::json!({ "start": 10, "line": 3 })).unwrap();
/// assert_eq!(range.start_position(), FilePosition { offset: 10, line: 3 });
/// assert_eq!(range.end, None);
/// assert_eq!(InputRange::WHOLE.start_position(), FilePosition::START);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRange {
    /// The byte offset of the range's first record.
    pub start: u64,
    /// The 1-based line of the range's first record.
    pub line: u64,
    /// The byte offset where the next range starts; `None`: the end of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

impl InputRange {
    /// The whole file.
    pub const WHOLE: InputRange = InputRange { start: 0, line: 1, end: None };

    /// Where the range's first record starts.
    pub fn start_position(&self) -> FilePosition {
        FilePosition { offset: self.start, line: self.line }
    }

    /// Checks the range's own consistency: `line` at least 1, `end` not before `start`.
    pub fn check(&self) -> Result<(), String> {
        if self.line == 0 {
            return Err("line must be at least 1".to_owned());
        }
        if self.end.is_some_and(|end| end < self.start) {
            return Err(format!("end ({}) is before start ({})", self.end.unwrap_or(0), self.start));
        }
        Ok(())
    }

    /// The bytes of the range in a file of `file_len` bytes.
    pub(crate) fn len_in(&self, file_len: u64) -> u64 {
        self.end.unwrap_or(file_len).min(file_len).saturating_sub(self.start)
    }
}

impl Default for InputRange {
    /// [`InputRange::WHOLE`].
    fn default() -> InputRange {
        InputRange::WHOLE
    }
}

/// The name of partition `index` (from 0) of `count` for the file `path`, beside it: `orders.jsonl`
/// becomes `orders.partition-2-of-4.jsonl` for the second of four (numbered from 1, as people count).
///
/// ```
/// use std::path::Path;
/// use batch_tasks::records::partition_path;
///
/// assert_eq!(partition_path(Path::new("/out/orders.jsonl"), 1, 4), Path::new("/out/orders.partition-2-of-4.jsonl"));
/// assert_eq!(partition_path(Path::new("/out/orders"), 0, 2), Path::new("/out/orders.partition-1-of-2"));
/// ```
pub fn partition_path(path: &Path, index: u32, count: u32) -> PathBuf {
    let stem = path.file_stem().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    let mut name = stem;
    name.push(format!(".partition-{}-of-{count}", u64::from(index) + 1));
    if let Some(extension) = path.extension() {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

/// The length of the file at `path`; refuses to split what is not a regular file (a pipe would be
/// consumed by the split).
fn regular_file_len(path: &Path) -> Result<u64, RunError> {
    let metadata = std::fs::metadata(path).map_err(read_error(path))?;
    if !metadata.is_file() {
        return Err(RunError::NotSplittable { input: path.to_owned() });
    }
    Ok(metadata.len())
}

/// An I/O error reading `path`.
fn read_error(path: &Path) -> impl Fn(io::Error) -> RunError + '_ {
    move |source| RunError::Read { input: format!("the input {}", path.display()), source }
}

/// The evenly spaced byte targets that cut `[start, end)` into `partitions` parts.
fn targets(start: u64, end: u64, partitions: u32) -> Vec<u64> {
    let span = u128::from(end.saturating_sub(start));
    let parts = u128::from(partitions.max(1));
    (1..parts).map(|idx| start + u64::try_from(span * idx / parts).unwrap_or(u64::MAX)).collect()
}

/// The ranges between consecutive `boundaries` (positions where a record starts), within `within`.
fn ranges(within: InputRange, boundaries: Vec<FilePosition>) -> Vec<InputRange> {
    let mut ranges = Vec::with_capacity(boundaries.len() + 1);
    let mut start = within.start_position();
    for boundary in boundaries {
        if boundary.offset > start.offset {
            ranges.push(InputRange { start: start.offset, line: start.line, end: Some(boundary.offset) });
            start = boundary;
        }
    }
    ranges.push(InputRange { start: start.offset, line: start.line, end: within.end });
    ranges
}

/// Splits the lines of the text file at `path` within `within` into at most `partitions` ranges of
/// about equal size, each starting at a line start, with the line number it starts on. One pass
/// over the range, counting newlines; nothing is parsed. An empty range gives one (empty) range.
///
/// ```
/// use batch_tasks::records::{InputRange, split_lines};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("lines.txt");
/// std::fs::write(&path, "aaaa\nbb\ncccc\nd\n").unwrap();
/// let ranges = split_lines(&path, InputRange::WHOLE, 2).unwrap();
/// assert_eq!(ranges, [
///     InputRange { start: 0, line: 1, end: Some(8) },
///     InputRange { start: 8, line: 3, end: None },
/// ]);
/// ```
pub fn split_lines(path: &Path, within: InputRange, partitions: u32) -> Result<Vec<InputRange>, RunError> {
    let read_error = &read_error(path);
    let file_len = regular_file_len(path)?;
    let end = within.end.unwrap_or(file_len).min(file_len);
    let mut targets = targets(within.start, end, partitions).into_iter().peekable();
    if partitions <= 1 || targets.peek().is_none() || end <= within.start {
        return Ok(vec![within]);
    }
    let mut file = File::open(path).map_err(read_error)?;
    file.seek(SeekFrom::Start(within.start)).map_err(read_error)?;
    let mut reader = file.take(end - within.start);
    let mut buffer = vec![0u8; 1 << 20];
    let mut boundaries = Vec::new();
    // The offset of the buffer's first byte, and the line of the next byte to count.
    let (mut at, mut line) = (within.start, within.line);
    while let Some(&target) = targets.peek() {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(error)),
        };
        let chunk = &buffer[..read];
        let mut counted = 0usize;
        let mut target = Some(target);
        while let Some(wanted) = target {
            // The first line start at or after `wanted`: after the first newline at `wanted - 1` or later.
            let from = usize::try_from(wanted.saturating_sub(1).saturating_sub(at)).unwrap_or(usize::MAX);
            let Some(newline) = chunk.get(from..).and_then(|rest| memchr::memchr(b'\n', rest)) else {
                break;
            };
            let newline = from + newline;
            line += count_newlines(&chunk[counted..=newline]);
            counted = newline + 1;
            let boundary = FilePosition { offset: at + counted as u64, line };
            boundaries.push(boundary);
            while targets.next_if(|&next| next <= boundary.offset).is_some() {}
            target = targets.peek().copied();
        }
        line += count_newlines(&chunk[counted..]);
        at += read as u64;
    }
    boundaries.retain(|boundary| boundary.offset < end);
    Ok(ranges(within, boundaries))
}

/// Newlines in `bytes` (SIMD search: a split reads up to the whole file before any partition runs).
fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Splits the records of the CSV file at `path` (with a header row, fields split by `delimiter`)
/// within `within` into at most `partitions` ranges of about equal size, at record boundaries found
/// by pump-core's quote-aware [`CsvScanner`] (a quoted field may hold line breaks, so a line start
/// is not always a record start). The header row is in no range; every partition reads it.
///
/// ```
/// use batch_tasks::records::{InputRange, split_csv};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("notes.csv");
/// std::fs::write(&path, "id,note\n1,\"a\nb\"\n2,c\n3,d\n").unwrap();
/// let ranges = split_csv(&path, b',', InputRange::WHOLE, 2).unwrap();
/// assert_eq!(ranges, [
///     InputRange { start: 0, line: 1, end: Some(16) },
///     InputRange { start: 16, line: 4, end: None },
/// ]);
/// ```
pub fn split_csv(
    path: &Path,
    delimiter: u8,
    within: InputRange,
    partitions: u32,
) -> Result<Vec<InputRange>, RunError> {
    let file_len = regular_file_len(path)?;
    let end = within.end.unwrap_or(file_len).min(file_len);
    let scan_error = |error: pump_core::source::file::ReadError| read_error(path)(error.source);
    let mut scanner = CsvScanner::options().delimiter(delimiter).open(path).map_err(scan_error)?;
    scanner.seek(within.start_position()).map_err(scan_error)?;
    let mut targets = targets(scanner.position().offset, end, partitions).into_iter().peekable();
    if partitions <= 1 || targets.peek().is_none() {
        return Ok(vec![within]);
    }
    let mut boundaries = Vec::new();
    while let Some(&target) = targets.peek() {
        if scanner.position().offset >= end {
            break;
        }
        let record_end = match scanner.next_record().map_err(scan_error)? {
            None => break,
            Some(Ok(record)) => record.end(),
            Some(Err(error)) => error.end,
        };
        if record_end.offset >= target && record_end.offset < end {
            boundaries.push(record_end);
            while targets.next_if(|&next| next <= record_end.offset).is_some() {}
        }
    }
    Ok(ranges(within, boundaries))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The lines each range holds, read naively.
    fn lines_of(text: &[u8], ranges: &[InputRange]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for range in ranges {
            let end = usize::try_from(range.end.unwrap_or(text.len() as u64)).unwrap();
            let start = usize::try_from(range.start).unwrap();
            for (line, piece) in (range.line..).zip(text[start..end].split_inclusive(|&byte| byte == b'\n')) {
                out.push((line, piece.to_vec()));
            }
        }
        out
    }

    proptest! {
        #[test]
        fn line_ranges_cover_every_line_once_with_its_number(
            lines in proptest::collection::vec("[a-z]{0,12}", 0..60),
            partitions in 1u32..9,
            trailing in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.txt");
            let mut text = lines.join("\n").into_bytes();
            if trailing && !text.is_empty() {
                text.push(b'\n');
            }
            std::fs::write(&path, &text).unwrap();
            let ranges = split_lines(&path, InputRange::WHOLE, partitions).unwrap();
            prop_assert!(!ranges.is_empty() && ranges.len() <= partitions as usize);
            prop_assert_eq!(ranges[0].start, 0);
            prop_assert_eq!(ranges.last().unwrap().end, None);
            for pair in ranges.windows(2) {
                prop_assert_eq!(pair[0].end, Some(pair[1].start));
                prop_assert!(pair[1].start > pair[0].start);
            }
            prop_assert_eq!(lines_of(&text, &ranges), lines_of(&text, &[InputRange::WHOLE]));
        }
    }

    #[test]
    fn lines_split_into_even_parts_across_read_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        // 3 MiB of 64-byte lines: the targets fall in different read buffers.
        let line = format!("{}\n", "x".repeat(63));
        std::fs::write(&path, line.repeat(3 * 16 * 1024)).unwrap();
        let ranges = split_lines(&path, InputRange::WHOLE, 4).unwrap();
        let size = 3 * 1024 * 1024 / 4;
        assert_eq!(ranges.len(), 4);
        for (idx, range) in ranges.iter().enumerate().skip(1) {
            assert_eq!(range.start, (idx * size) as u64);
            assert_eq!(range.line, (idx * size / 64) as u64 + 1);
        }
        // A range within a range is split within it.
        let inner = split_lines(&path, ranges[1], 2).unwrap();
        assert_eq!(inner.len(), 2);
        assert_eq!((inner[0].start, inner[0].line), (ranges[1].start, ranges[1].line));
        assert_eq!(inner[1].end, ranges[1].end);
    }

    #[test]
    fn one_long_line_is_one_partition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.txt");
        std::fs::write(&path, "x".repeat(1000)).unwrap();
        assert_eq!(split_lines(&path, InputRange::WHOLE, 4).unwrap(), [InputRange::WHOLE]);
        std::fs::write(&path, "").unwrap();
        assert_eq!(split_lines(&path, InputRange::WHOLE, 4).unwrap(), [InputRange::WHOLE]);
    }

    #[test]
    fn csv_boundaries_never_fall_inside_a_quoted_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quoted.csv");
        let mut text = String::from("id,note\n");
        for idx in 0..200 {
            text.push_str(&format!("{idx},\"line one\nline two, \"\"quoted\"\"\nline three\"\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let ranges = split_csv(&path, b',', InputRange::WHOLE, 7).unwrap();
        assert_eq!(ranges.len(), 7);
        for range in &ranges[1..] {
            let start = usize::try_from(range.start).unwrap();
            // Each range starts at a record: a row id, on the line the scanner counts.
            assert!(text[start..].starts_with(|c: char| c.is_ascii_digit()), "{range:?}");
            assert_eq!(range.line, 1 + text[..start].matches('\n').count() as u64);
            assert_eq!((range.line - 2) % 3, 0, "each record spans three lines");
        }
    }

    #[test]
    fn what_is_not_a_regular_file_is_not_split() {
        let dir = tempfile::tempdir().unwrap();
        let error = split_lines(dir.path(), InputRange::WHOLE, 2).unwrap_err();
        assert_eq!(error.code(), batch_model::ErrorCode::ConfigurationError);
        assert!(error.to_string().contains("is not a regular file"), "{error}");
    }

    #[test]
    fn range_checks() {
        assert!(InputRange { start: 5, line: 0, end: None }.check().is_err());
        assert!(InputRange { start: 5, line: 2, end: Some(4) }.check().is_err());
        assert!(InputRange { start: 5, line: 2, end: Some(5) }.check().is_ok());
        assert_eq!(InputRange { start: 5, line: 2, end: Some(50) }.len_in(20), 15);
    }
}
