//! Streaming the rows of a CSV or JSON-lines dataset, one record at a time, with exact positions.
//!
//! # Why not pump-core's file sources
//!
//! pump-core's `source::csv` and `source::json_lines` deserialize each record into an owned `T`
//! through serde on a reader thread and hand records to an async pipeline. Training wants something
//! narrower and faster: a synchronous reader it can own across checkpoints and epochs, that parses
//! the few columns it needs straight into a reused `f64` slice (no allocation per row, no per-field
//! `String`), and that it can rewind to the start of the data or seek to a checkpointed position.
//! The positions follow the same rules as pump-core's ([`FilePosition`]: the byte offset and 1-based
//! line where the next record starts; blank lines skipped but counted), so a checkpoint reads the
//! same way in both.
//!
//! # Records
//!
//! A JSON-lines record is one line holding a JSON object. A CSV record is one line, or several when a
//! quoted field holds a newline: a `"` opens a quoted field only at the start of a field, and `""`
//! inside one is a literal quote (RFC 4180). The first record of a CSV file is its header row. A
//! trailing `\r` is dropped; a UTF-8 byte-order mark at the start of a file is skipped. A record
//! longer than [`MAX_RECORD_LEN`] is a bad row (its beginning is kept for the dead letter).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use pump_core::source::FilePosition;
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};

use crate::train::config::DataFormat;
use crate::train::error::{RowProblem, TrainError};

/// The longest record a reader holds in memory (1 MiB); a longer one is a bad row.
pub const MAX_RECORD_LEN: usize = 1024 * 1024;

/// How many rows decide which columns are numeric when `features` is not given.
pub const SNIFF_ROWS: usize = 100;

/// The capacity of the reader's `BufReader`.
const READ_BUFFER_LEN: usize = 256 * 1024;

/// How much of a bad record a dead letter keeps.
const RAW_LIMIT: usize = 1024;

/// How much of a bad value a row problem quotes.
const VALUE_LIMIT: usize = 64;

/// A UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The CSV delimiter and quote.
const DELIMITER: u8 = b',';
const QUOTE: u8 = b'"';

/// Where a column's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Feature(usize),
    Label,
    Ignored,
}

/// One row as read: its raw (unscaled) features and label, where it starts, or why it is bad.
///
/// Reused from row to row: reading a row overwrites it without allocating (once the label has
/// reached its longest length).
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The features, in the order of the feature list; meaningful only when `problem` is `None`.
    pub features: Vec<f64>,
    /// The label as text.
    pub label: String,
    /// Where the record starts.
    pub start: FilePosition,
    /// Why the row is bad, if it is.
    pub problem: Option<RowProblem>,
}

/// What a reader found at the end of a physical line.
#[derive(Debug, Clone, Copy)]
struct LineRead {
    terminated: bool,
    truncated: bool,
}

/// A streaming reader of a dataset's rows, holding one record at a time.
///
/// A JSON-lines record is one line holding a JSON object. A CSV record is one line, or several when
/// a quoted field holds a newline (RFC 4180 quoting: a `"` opens a quoted field only at the start of
/// a field, `""` inside one is a literal quote); the first record is the header row. Blank lines are
/// skipped but counted, a trailing `\r` is dropped, a UTF-8 byte-order mark is skipped. Positions are
/// [`FilePosition`]s: the byte offset and 1-based line where a record starts, as in pump-core's file
/// sources. A record longer than [`MAX_RECORD_LEN`] is a bad row.
pub struct RowReader {
    path: PathBuf,
    format: DataFormat,
    input: BufReader<File>,
    /// Where the next record starts.
    position: FilePosition,
    /// Where the first data record starts (after a CSV header).
    data_start: FilePosition,
    /// The CSV header's column names; empty for JSON lines.
    header: Vec<String>,
    /// The current record's bytes.
    record: Vec<u8>,
    record_too_long: bool,
    /// The current CSV record contains a quote, so it is split the slow way.
    record_quoted: bool,
    /// Unquoted CSV fields when `record_quoted`.
    scratch: Vec<u8>,
    /// Field bounds into `record` (or `scratch` when `record_quoted`).
    fields: Vec<(usize, usize)>,
    /// What each CSV column is.
    csv_slots: Vec<Slot>,
    /// What each JSON key is.
    json_slots: HashMap<String, Slot>,
    feature_names: Vec<String>,
    label: String,
    /// Which features a JSON record set.
    seen: Vec<bool>,
}

impl fmt::Debug for RowReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("position", &self.position)
            .field("features", &self.feature_names)
            .field("label", &self.label)
            .finish()
    }
}

impl RowReader {
    /// Opens `path` and, for CSV, reads its header row. The reader is positioned at the first data
    /// record; [`bind`](Self::bind) it to the feature and label columns before reading rows.
    pub fn open(path: &Path, format: DataFormat) -> Result<RowReader, TrainError> {
        let file = File::open(path).map_err(|source| read_error(path, source))?;
        let mut reader = RowReader {
            path: path.to_owned(),
            format,
            input: BufReader::with_capacity(READ_BUFFER_LEN, file),
            position: FilePosition::START,
            data_start: FilePosition::START,
            header: Vec::new(),
            record: Vec::new(),
            record_too_long: false,
            record_quoted: false,
            scratch: Vec::new(),
            fields: Vec::new(),
            csv_slots: Vec::new(),
            json_slots: HashMap::new(),
            feature_names: Vec::new(),
            label: String::new(),
            seen: Vec::new(),
        };
        if format == DataFormat::Csv {
            reader.read_header()?;
        }
        Ok(reader)
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next record starts.
    pub fn position(&self) -> FilePosition {
        self.position
    }

    /// Where the first data record starts: after the CSV header, at the start of a JSON-lines file.
    pub fn data_start(&self) -> FilePosition {
        self.data_start
    }

    /// The CSV header's column names (empty for JSON lines).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Moves to `position`, which must be the start of a record (a position this reader reported);
    /// a position before the first data record means the first data record.
    pub fn seek(&mut self, position: FilePosition) -> Result<(), TrainError> {
        let position = if position.offset < self.data_start.offset { self.data_start } else { position };
        self.input.seek(SeekFrom::Start(position.offset)).map_err(|source| read_error(&self.path, source))?;
        self.position = position;
        Ok(())
    }

    /// Moves back to the first data record.
    pub fn rewind(&mut self) -> Result<(), TrainError> {
        self.seek(self.data_start)
    }

    /// Says which columns are the features (in order) and which is the label. For CSV, each must be
    /// in the header exactly once: a missing or doubled column is a [`TrainError::Column`] naming
    /// `file_param` when given (`eval_input`), else the param that chose the column (`features`,
    /// `label`).
    pub fn bind(
        &mut self,
        features: &[String],
        label: &str,
        file_param: Option<&str>,
    ) -> Result<(), TrainError> {
        self.feature_names = features.to_vec();
        self.label = label.to_owned();
        self.seen = vec![false; features.len()];
        let wanted = features.iter().enumerate().map(|(idx, name)| (name.as_str(), Slot::Feature(idx)));
        let wanted: Vec<(&str, Slot)> = wanted.chain(std::iter::once((label, Slot::Label))).collect();
        match self.format {
            DataFormat::Csv => {
                self.csv_slots = vec![Slot::Ignored; self.header.len()];
                for (name, slot) in wanted {
                    let param = file_param.unwrap_or(if slot == Slot::Label { "label" } else { "features" });
                    let mut columns = self.header.iter().enumerate().filter(|(_, column)| *column == name);
                    let Some((column, _)) = columns.next() else {
                        return Err(self.column_error(param, name, "is not in the header"));
                    };
                    if columns.next().is_some() {
                        return Err(self.column_error(param, name, "appears twice in the header"));
                    }
                    self.csv_slots[column] = slot;
                }
            }
            DataFormat::JsonLines => {
                self.json_slots = wanted.into_iter().map(|(name, slot)| (name.to_owned(), slot)).collect();
            }
        }
        Ok(())
    }

    fn column_error(&self, param: &str, column: &str, reason: &str) -> TrainError {
        TrainError::Column {
            param: param.to_owned(),
            column: column.to_owned(),
            reason: reason.to_owned(),
            path: self.path.clone(),
        }
    }

    /// Reads the next record into `row`: `Ok(false)` at the end of the file. A bad record is a row
    /// with a `problem`, not an error; only a failing read is an error.
    pub fn next_row(&mut self, row: &mut Row) -> Result<bool, TrainError> {
        let Some(start) = self.next_record()? else {
            return Ok(false);
        };
        row.start = start;
        row.problem = None;
        row.label.clear();
        row.features.resize(self.feature_names.len(), 0.0);
        if self.record_too_long {
            row.problem = Some(RowProblem::TooLong { limit: MAX_RECORD_LEN });
            return Ok(true);
        }
        row.problem = match self.format {
            DataFormat::Csv => self.parse_csv(row).err(),
            DataFormat::JsonLines => self.parse_json(row).err(),
        };
        Ok(true)
    }

    /// The current record's text (its first 1 KiB, invalid UTF-8 replaced), for a dead letter.
    pub fn raw_text(&self) -> String {
        let cut = self.record.len().min(RAW_LIMIT);
        String::from_utf8_lossy(&self.record[..cut]).into_owned()
    }

    /// The feature columns of the rows that decide them when `features` is not given: every column
    /// but the label whose value is a number in more than half of the first [`SNIFF_ROWS`] rows (CSV:
    /// in header order; JSON lines: in order of first appearance, and a number means a JSON number).
    /// Also checks that the label column exists (`TrainError::Column` naming `label` otherwise) and
    /// that there is a record at all ([`TrainError::NoTrainingRows`]). Leaves the reader at the first
    /// data record.
    pub fn sniff_features(&mut self, label: &str) -> Result<Vec<String>, TrainError> {
        let (columns, rows) = match self.format {
            DataFormat::Csv => self.sniff_csv(label)?,
            DataFormat::JsonLines => self.sniff_json(label)?,
        };
        self.rewind()?;
        if rows == 0 && !self.has_records()? {
            return Err(TrainError::NoTrainingRows { path: self.path.clone(), bad_rows: 0, holdout_rows: 0 });
        }
        Ok(columns
            .into_iter()
            .filter(|(name, numeric)| name != label && numeric * 2 > rows)
            .map(|(name, _)| name)
            .collect())
    }

    /// Whether any record follows the reader's position (which it keeps).
    fn has_records(&mut self) -> Result<bool, TrainError> {
        let position = self.position;
        let found = self.next_record()?.is_some();
        self.seek(position)?;
        Ok(found)
    }

    /// Checks that a JSON-lines file's first rows have `columns` (CSV headers are checked by
    /// [`bind`](Self::bind)). Leaves the reader at the first data record.
    pub fn check_json_columns(&mut self, columns: &[String], param: &str) -> Result<(), TrainError> {
        if self.format != DataFormat::JsonLines {
            return Ok(());
        }
        let (seen, rows) = self.sniff_json_keys()?;
        self.rewind()?;
        if rows == 0 {
            return Ok(());
        }
        match columns.iter().find(|column| !seen.iter().any(|(name, _)| name == *column)) {
            Some(missing) => Err(self.column_error(param, missing, "is not in the first rows")),
            None => Ok(()),
        }
    }

    /// Per column: its name and in how many of the first rows it is numeric; and how many rows.
    fn sniff_csv(&mut self, label: &str) -> Result<(Vec<(String, usize)>, usize), TrainError> {
        if !self.header.iter().any(|column| column == label) {
            return Err(self.column_error("label", label, "is not in the header"));
        }
        let mut numeric = vec![0_usize; self.header.len()];
        let mut rows = 0;
        while rows < SNIFF_ROWS {
            if self.next_record()?.is_none() {
                break;
            }
            if self.record_too_long {
                continue;
            }
            self.split_csv();
            if self.fields.len() != self.header.len() {
                continue;
            }
            rows += 1;
            for (column, &(start, end)) in self.fields.iter().enumerate() {
                let buffer = if self.record_quoted { &self.scratch } else { &self.record };
                if parse_number(&buffer[start..end]).is_ok() {
                    numeric[column] += 1;
                }
            }
        }
        Ok((self.header.iter().cloned().zip(numeric).collect(), rows))
    }

    fn sniff_json(&mut self, label: &str) -> Result<(Vec<(String, usize)>, usize), TrainError> {
        let (seen, rows) = self.sniff_json_keys()?;
        if rows > 0 && !seen.iter().any(|(name, _)| name == label) {
            return Err(self.column_error("label", label, "is not in the first rows"));
        }
        Ok((seen, rows))
    }

    /// Every key of the first JSON objects in order of first appearance, with how many rows had a
    /// number under it; and how many rows were objects.
    fn sniff_json_keys(&mut self) -> Result<(Vec<(String, usize)>, usize), TrainError> {
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut rows = 0;
        let mut object = Vec::new();
        while rows < SNIFF_ROWS {
            if self.next_record()?.is_none() {
                break;
            }
            if self.record_too_long {
                continue;
            }
            object.clear();
            let mut deserializer = serde_json::Deserializer::from_slice(&self.record);
            let parsed = (&mut deserializer)
                .deserialize_map(KeysVisitor { keys: &mut object })
                .and_then(|()| deserializer.end());
            if parsed.is_err() {
                continue;
            }
            rows += 1;
            for (key, is_number) in object.drain(..) {
                match seen.iter_mut().find(|(name, _)| *name == key) {
                    Some((_, count)) => *count += usize::from(is_number),
                    None => seen.push((key, usize::from(is_number))),
                }
            }
        }
        Ok((seen, rows))
    }

    // -----------------------------------------------------------------------------------------------
    // Records.

    fn read_header(&mut self) -> Result<(), TrainError> {
        let header_error = |reader: &RowReader, reason: &str| TrainError::Header {
            path: reader.path.clone(),
            reason: reason.to_owned(),
        };
        if self.next_record()?.is_none() {
            return Err(header_error(self, "the file is empty"));
        }
        if self.record_too_long {
            return Err(header_error(self, &format!("it is longer than {MAX_RECORD_LEN} bytes")));
        }
        self.split_csv();
        let buffer = if self.record_quoted { &self.scratch } else { &self.record };
        let mut names = Vec::with_capacity(self.fields.len());
        for &(start, end) in &self.fields {
            match std::str::from_utf8(&buffer[start..end]) {
                Ok(name) => names.push(name.trim().to_owned()),
                Err(_) => return Err(header_error(self, "it is not valid UTF-8")),
            }
        }
        self.header = names;
        self.data_start = self.position;
        Ok(())
    }

    /// Reads the next non-blank record into `self.record`; returns where it starts, or `None` at the
    /// end of the file.
    fn next_record(&mut self) -> Result<Option<FilePosition>, TrainError> {
        self.next_record_io().map_err(|source| read_error(&self.path, source))
    }

    fn next_record_io(&mut self) -> io::Result<Option<FilePosition>> {
        loop {
            self.record.clear();
            if self.record.capacity() > 4 * MAX_RECORD_LEN {
                self.record.shrink_to(MAX_RECORD_LEN);
            }
            let start = self.position;
            let Some(mut line) = self.read_line(MAX_RECORD_LEN)? else {
                return Ok(None);
            };
            if start.offset == 0 && self.record.starts_with(BOM) {
                self.record.drain(..BOM.len());
            }
            self.record_too_long = line.truncated;
            self.record_quoted = false;
            if !line.truncated && is_blank(&self.record) {
                continue;
            }
            if self.format == DataFormat::Csv && !line.truncated && self.record.contains(&QUOTE) {
                self.record_quoted = true;
                let mut quoting = Quoting::FieldStart.after(&self.record);
                // A newline inside a quoted field is data: the record goes on on the next line.
                while quoting == Quoting::Quoted && line.terminated {
                    if self.record.len() >= MAX_RECORD_LEN {
                        self.record_too_long = true;
                        break;
                    }
                    self.record.push(b'\n');
                    let from = self.record.len();
                    match self.read_line(MAX_RECORD_LEN - from)? {
                        Some(next) if next.truncated => {
                            self.record_too_long = true;
                            break;
                        }
                        Some(next) => {
                            quoting = quoting.after(&self.record[from..]);
                            line = next;
                        }
                        None => break,
                    }
                }
            }
            if !self.record_too_long && self.record.last() == Some(&b'\r') {
                self.record.pop();
            }
            return Ok(Some(start));
        }
    }

    /// Appends the next physical line to `self.record` without its `\n`, keeping at most `room`
    /// bytes of it (the rest is skipped); `None` at the end of the file.
    fn read_line(&mut self, room: usize) -> io::Result<Option<LineRead>> {
        let kept_before = self.record.len();
        let limit = room.saturating_add(1);
        let read = (&mut self.input).take(limit as u64).read_until(b'\n', &mut self.record)?;
        if read == 0 {
            return Ok(None);
        }
        let mut consumed = read as u64;
        let mut terminated = self.record.last() == Some(&b'\n');
        let mut truncated = false;
        if terminated {
            self.record.pop();
        } else if read == limit {
            // The line goes on past the room: keep its beginning, skip the rest of it.
            truncated = true;
            self.record.truncate(kept_before + room);
            let (skipped, found_newline) = skip_line(&mut self.input)?;
            consumed += skipped;
            terminated = found_newline;
        }
        self.position.offset += consumed;
        if terminated {
            self.position.line += 1;
        }
        Ok(Some(LineRead { terminated, truncated }))
    }

    // -----------------------------------------------------------------------------------------------
    // Fields.

    /// Splits the current CSV record into `self.fields`.
    fn split_csv(&mut self) {
        self.fields.clear();
        if !self.record_quoted {
            let mut start = 0;
            for (idx, &byte) in self.record.iter().enumerate() {
                if byte == DELIMITER {
                    self.fields.push((start, idx));
                    start = idx + 1;
                }
            }
            self.fields.push((start, self.record.len()));
            return;
        }
        self.scratch.clear();
        let mut state = Quoting::FieldStart;
        let mut start = 0;
        for &byte in &self.record {
            state = match (state, byte) {
                (Quoting::Quoted, QUOTE) => Quoting::QuoteInQuoted,
                (Quoting::Quoted, _) => {
                    self.scratch.push(byte);
                    Quoting::Quoted
                }
                (Quoting::QuoteInQuoted, QUOTE) => {
                    self.scratch.push(QUOTE);
                    Quoting::Quoted
                }
                (Quoting::FieldStart, QUOTE) => Quoting::Quoted,
                (_, DELIMITER) => {
                    self.fields.push((start, self.scratch.len()));
                    start = self.scratch.len();
                    Quoting::FieldStart
                }
                (_, _) => {
                    self.scratch.push(byte);
                    Quoting::Unquoted
                }
            };
        }
        self.fields.push((start, self.scratch.len()));
    }

    fn parse_csv(&mut self, row: &mut Row) -> Result<(), RowProblem> {
        if !self.record_quoted && self.parse_plain_csv(row) {
            return Ok(());
        }
        row.label.clear();
        self.parse_split_csv(row)
    }

    /// Reads the current CSV record by splitting it into fields first: the careful way, for quoted
    /// records and for naming a record's problem.
    fn parse_split_csv(&mut self, row: &mut Row) -> Result<(), RowProblem> {
        self.split_csv();
        if self.fields.len() != self.header.len() {
            return Err(RowProblem::FieldCount { found: self.fields.len(), expected: self.header.len() });
        }
        let buffer = if self.record_quoted { &self.scratch } else { &self.record };
        for (&(start, end), &slot) in self.fields.iter().zip(&self.csv_slots) {
            let bytes = &buffer[start..end];
            match slot {
                Slot::Feature(idx) => match parse_number(bytes) {
                    Ok(value) => row.features[idx] = value,
                    Err(problem) => return Err(problem.into_row_problem(&self.feature_names[idx], bytes)),
                },
                Slot::Label => {
                    let text = bytes.trim_ascii();
                    if text.is_empty() {
                        return Err(RowProblem::MissingLabel { label: self.label.clone() });
                    }
                    match std::str::from_utf8(text) {
                        Ok(text) => row.label.push_str(text),
                        Err(_) => return Err(RowProblem::NotUtf8 { column: self.label.clone() }),
                    }
                }
                Slot::Ignored => {}
            }
        }
        Ok(())
    }

    /// The fast path for an unquoted CSV record: reads its fields in one pass over the bytes, feature
    /// values straight into `row` (see [`plain_decimal_field`]). `false` when the record has a
    /// problem: then the caller reads it again the careful way, which names the problem.
    fn parse_plain_csv(&self, row: &mut Row) -> bool {
        let record = self.record.as_slice();
        let last = self.csv_slots.len().saturating_sub(1);
        let mut start = 0;
        for (column, &slot) in self.csv_slots.iter().enumerate() {
            let rest = &record[start..];
            let len = match slot {
                Slot::Feature(idx) => match plain_decimal_field(rest) {
                    Some((value, len)) => {
                        row.features[idx] = value;
                        len
                    }
                    None => {
                        let len = field_len(rest);
                        match parse_number(&rest[..len]) {
                            Ok(value) => row.features[idx] = value,
                            Err(_) => return false,
                        }
                        len
                    }
                },
                Slot::Label => {
                    let len = field_len(rest);
                    match std::str::from_utf8(rest[..len].trim_ascii()) {
                        Ok(text) if !text.is_empty() => row.label.push_str(text),
                        _ => return false,
                    }
                    len
                }
                Slot::Ignored => field_len(rest),
            };
            start += len;
            // Between fields a delimiter; after the last one, the end of the record.
            match record.get(start) {
                Some(&DELIMITER) if column < last => start += 1,
                None if column == last => return true,
                _ => return false,
            }
        }
        false
    }

    fn parse_json(&mut self, row: &mut Row) -> Result<(), RowProblem> {
        self.seen.fill(false);
        let mut label_seen = false;
        let mut problem = None;
        let mut deserializer = serde_json::Deserializer::from_slice(&self.record);
        let visitor = RowVisitor {
            slots: &self.json_slots,
            names: &self.feature_names,
            features: &mut row.features,
            seen: &mut self.seen,
            label: &mut row.label,
            label_seen: &mut label_seen,
            problem: &mut problem,
        };
        if let Err(error) = (&mut deserializer).deserialize_map(visitor).and_then(|()| deserializer.end()) {
            return Err(RowProblem::Json { reason: error.to_string() });
        }
        if let Some(problem) = problem {
            return Err(problem);
        }
        if let Some(idx) = self.seen.iter().position(|seen| !seen) {
            return Err(RowProblem::MissingFeature { feature: self.feature_names[idx].clone() });
        }
        if !label_seen {
            return Err(RowProblem::MissingLabel { label: self.label.clone() });
        }
        Ok(())
    }
}

/// The length of the unquoted field at the start of `bytes`: up to the first delimiter or the end.
fn field_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|&byte| byte == DELIMITER).unwrap_or(bytes.len())
}

fn read_error(path: &Path, source: io::Error) -> TrainError {
    TrainError::Read { path: path.to_owned(), source }
}

/// Whether a record holds nothing but whitespace (a blank line, skipped).
fn is_blank(record: &[u8]) -> bool {
    record.iter().all(u8::is_ascii_whitespace)
}

/// Consumes the rest of a line: the bytes skipped (newline included) and whether a newline ended it.
fn skip_line(input: &mut BufReader<File>) -> io::Result<(u64, bool)> {
    let mut skipped = 0_u64;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok((skipped, false));
        }
        if let Some(idx) = available.iter().position(|&byte| byte == b'\n') {
            input.consume(idx + 1);
            return Ok((skipped + idx as u64 + 1, true));
        }
        let len = available.len();
        input.consume(len);
        skipped += len as u64;
    }
}

/// Why a field is not a feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberProblem {
    Missing,
    NotANumber,
    NotFinite,
}

impl NumberProblem {
    fn into_row_problem(self, feature: &str, value: &[u8]) -> RowProblem {
        let feature = feature.to_owned();
        let value = quote_value(value);
        match self {
            NumberProblem::Missing => RowProblem::MissingFeature { feature },
            NumberProblem::NotANumber => RowProblem::NotANumber { feature, value },
            NumberProblem::NotFinite => RowProblem::NotFinite { feature, value },
        }
    }
}

/// The first characters of a bad value, for its row problem.
fn quote_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value.trim_ascii());
    text.chars().take(VALUE_LIMIT).collect()
}

/// A feature value: a finite decimal number, surrounding ASCII whitespace allowed.
fn parse_number(bytes: &[u8]) -> Result<f64, NumberProblem> {
    let bytes = bytes.trim_ascii();
    if let Some(value) = parse_plain_decimal(bytes) {
        return Ok(value);
    }
    if bytes.is_empty() {
        return Err(NumberProblem::Missing);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| NumberProblem::NotANumber)?;
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(NumberProblem::NotFinite),
        Err(_) => Err(NumberProblem::NotANumber),
    }
}

/// Exact powers of ten: every `10^k` for `k ≤ 22` is a double exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// The fast path for the common feature value, a plain decimal such as `-12.345678`: at most 19
/// digits, an optional sign and point, no exponent. When its digits `m` fit in 53 bits and it has
/// `k ≤ 22` digits after the point, `m` and `10^k` are both exact doubles, so the one IEEE division
/// `m / 10^k` is the correctly rounded value — the very bits `str::parse::<f64>` returns (Clinger's
/// fast path), without its general syntax checks. `None` sends anything else to `str::parse`.
fn parse_plain_decimal(bytes: &[u8]) -> Option<f64> {
    match plain_decimal_field(bytes) {
        Some((value, len)) if len == bytes.len() => Some(value),
        _ => None,
    }
}

/// [`parse_plain_decimal`] of the field at the start of `bytes` (up to the first delimiter or the
/// end), and the field's length; `None` when the field is not a plain decimal.
fn plain_decimal_field(bytes: &[u8]) -> Option<(f64, usize)> {
    let (negative, mut idx) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    // Digits before the point, then after it: two tight loops. The mantissa may wrap past 19 digits;
    // such a number is refused below, before the mantissa is used.
    let mut mantissa: u64 = 0;
    let whole_start = idx;
    while let Some(&byte) = bytes.get(idx).filter(|byte| byte.is_ascii_digit()) {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
        idx += 1;
    }
    let whole_digits = idx - whole_start;
    let mut fraction_digits = 0;
    if bytes.get(idx) == Some(&b'.') {
        idx += 1;
        let fraction_start = idx;
        while let Some(&byte) = bytes.get(idx).filter(|byte| byte.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
            idx += 1;
        }
        fraction_digits = idx - fraction_start;
    }
    let digits = whole_digits + fraction_digits;
    let ends_field = matches!(bytes.get(idx), None | Some(&DELIMITER));
    // 19 digits always fit in a u64; more are left to `str::parse`.
    if !ends_field || digits == 0 || digits > 19 || mantissa > 1 << 53 {
        return None;
    }
    let value = mantissa as f64 / *POWERS_OF_TEN.get(fraction_digits)?;
    Some((if negative { -value } else { value }, idx))
}

// ---------------------------------------------------------------------------------------------------
// CSV quoting.

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
    fn after(self, bytes: &[u8]) -> Quoting {
        bytes.iter().fold(self, |state, &byte| match (state, byte) {
            (Quoting::Quoted, QUOTE) => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => Quoting::Quoted,
            (Quoting::FieldStart | Quoting::QuoteInQuoted, QUOTE) => Quoting::Quoted,
            (_, DELIMITER) => Quoting::FieldStart,
            _ => Quoting::Unquoted,
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// JSON lines.

/// Reads one JSON object's feature and label values straight into a [`Row`].
struct RowVisitor<'r> {
    slots: &'r HashMap<String, Slot>,
    names: &'r [String],
    features: &'r mut [f64],
    seen: &'r mut [bool],
    label: &'r mut String,
    label_seen: &'r mut bool,
    /// The row's first problem with a value (the JSON itself being fine).
    problem: &'r mut Option<RowProblem>,
}

impl<'de> Visitor<'de> for RowVisitor<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(slot) = map.next_key_seed(KeySeed { slots: self.slots })? {
            match slot {
                Slot::Feature(idx) => {
                    let value = map.next_value_seed(NumberSeed)?;
                    match value {
                        Ok(number) => {
                            self.features[idx] = number;
                            self.seen[idx] = true;
                        }
                        Err((problem, text)) => {
                            self.seen[idx] = false;
                            if self.problem.is_none() && problem != NumberProblem::Missing {
                                *self.problem =
                                    Some(problem.into_row_problem(&self.names[idx], text.as_bytes()));
                            }
                        }
                    }
                }
                Slot::Label => {
                    self.label.clear();
                    *self.label_seen = map.next_value_seed(LabelSeed { label: self.label })?;
                }
                Slot::Ignored => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Looks a key up among the wanted columns without allocating it.
struct KeySeed<'r> {
    slots: &'r HashMap<String, Slot>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Slot;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Slot;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Slot, E> {
        Ok(self.slots.get(key).copied().unwrap_or(Slot::Ignored))
    }
}

/// A feature value: a JSON number, or a string holding one; `null` is missing.
type JsonNumber = Result<f64, (NumberProblem, String)>;

struct NumberSeed;

impl<'de> DeserializeSeed<'de> for NumberSeed {
    type Value = JsonNumber;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<JsonNumber, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NumberSeed {
    type Value = JsonNumber;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a number")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonNumber, E> {
        Ok(Ok(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonNumber, E> {
        Ok(Ok(value as f64))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonNumber, E> {
        Ok(Ok(value as f64))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<JsonNumber, E> {
        Ok(parse_number(value.as_bytes()).map_err(|problem| (problem, value.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<JsonNumber, E> {
        Ok(Err((NumberProblem::NotANumber, value.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonNumber, E> {
        Ok(Err((NumberProblem::Missing, String::new())))
    }
}

/// A label: a string, a number or a boolean, as text; `null` or an empty string is missing.
struct LabelSeed<'r> {
    label: &'r mut String,
}

impl<'de> DeserializeSeed<'de> for LabelSeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LabelSeed<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string, a number or a boolean")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
        self.label.push_str(value.trim());
        Ok(!self.label.is_empty())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
        let _ = write!(self.label, "{value}");
        Ok(true)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
        let _ = write!(self.label, "{value}");
        Ok(true)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<bool, E> {
        let _ = write!(self.label, "{value}");
        Ok(true)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
        self.label.push_str(if value { "true" } else { "false" });
        Ok(true)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Collects a JSON object's keys, in order, and whether each holds a number (for sniffing).
struct KeysVisitor<'r> {
    keys: &'r mut Vec<(String, bool)>,
}

impl<'de> Visitor<'de> for KeysVisitor<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<serde_json::Value>()?;
            self.keys.push((key, value.is_number()));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]
mod tests {
    use super::*;

    fn open_text(text: &str, format: DataFormat) -> (tempfile::TempDir, RowReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(match format {
            DataFormat::Csv => "data.csv",
            DataFormat::JsonLines => "data.jsonl",
        });
        std::fs::write(&path, text).unwrap();
        let reader = RowReader::open(&path, format).unwrap();
        (dir, reader)
    }

    /// Every row of `text` bound to features `a`, `b` and label `y`: (line, offset, features, label)
    /// or the problem's text.
    /// A row as the tests see it: (features, label), or the problem's text.
    type Parsed = Result<(Vec<f64>, String), String>;

    fn rows(text: &str, format: DataFormat) -> Vec<(u64, u64, Parsed)> {
        let (_dir, mut reader) = open_text(text, format);
        reader.bind(&["a".to_owned(), "b".to_owned()], "y", None).unwrap();
        let mut row = Row::default();
        let mut out = Vec::new();
        while reader.next_row(&mut row).unwrap() {
            let value = match &row.problem {
                None => Ok((row.features.clone(), row.label.clone())),
                Some(problem) => Err(problem.to_string()),
            };
            out.push((row.start.line, row.start.offset, value));
        }
        out
    }

    fn good(features: &[f64], label: &str) -> Parsed {
        Ok((features.to_vec(), label.to_owned()))
    }

    #[test]
    fn csv_rows_with_crlf_blank_lines_quotes_and_a_bom() {
        let text = "\u{feff}y,a,b\r\n\r\nyes,1,2\r\n\"no\nreally\",\" 3.5\",-4e2\n\"say \"\"hi\"\"\",5,6";
        assert_eq!(
            rows(text, DataFormat::Csv),
            vec![
                (3, 12, good(&[1.0, 2.0], "yes")),
                (4, 21, good(&[3.5, -400.0], "no\nreally")),
                (6, 45, good(&[5.0, 6.0], "say \"hi\"")),
            ]
        );
    }

    #[test]
    fn csv_bad_rows_say_what_is_wrong_and_reading_goes_on() {
        let text = "a,b,y\n1,,x\n1,abc,x\nnan,1,x\n1,2\n1,2, \n1,2,ok\n";
        let out: Vec<_> =
            rows(text, DataFormat::Csv).into_iter().map(|(line, _, value)| (line, value)).collect();
        assert_eq!(
            out,
            vec![
                (2, Err("missing value for feature `b`".to_owned())),
                (3, Err("feature `b` is not a number: \"abc\"".to_owned())),
                (4, Err("feature `a` is not a finite number: \"nan\"".to_owned())),
                (5, Err("found 2 fields, expected 3".to_owned())),
                (6, Err("missing label `y`".to_owned())),
                (7, good(&[1.0, 2.0], "ok")),
            ]
        );
    }

    #[test]
    fn json_rows_take_numbers_numeric_strings_and_any_scalar_label() {
        let text = "{\"a\":1,\"b\":2.5,\"y\":\"yes\",\"note\":[1,{}]}\n\n{\"y\":3,\"b\":\"4\",\"a\":-1e3}\n\
                    {\"a\":1,\"y\":true}\n{\"a\":null,\"b\":1,\"y\":\"x\"}\n[1,2]\n{\"a\":1,\"b\":\"z\",\"y\":\"x\"}\n";
        let out: Vec<_> =
            rows(text, DataFormat::JsonLines).into_iter().map(|(line, _, value)| (line, value)).collect();
        assert_eq!(out[0], (1, good(&[1.0, 2.5], "yes")));
        assert_eq!(out[1], (3, good(&[-1000.0, 4.0], "3")));
        assert_eq!(out[2], (4, Err("missing value for feature `b`".to_owned())));
        assert_eq!(out[3], (5, Err("missing value for feature `a`".to_owned())));
        assert!(
            matches!(&out[4], (6, Err(reason)) if reason.starts_with("not a JSON object: invalid type: sequence"))
        );
        assert_eq!(out[5], (7, Err("feature `b` is not a number: \"z\"".to_owned())));
    }

    #[test]
    fn a_record_longer_than_the_limit_is_bad_and_the_next_one_reads() {
        let long = "9".repeat(MAX_RECORD_LEN + 10);
        let text = format!("a,b,y\n{long},1,x\n1,2,z\n");
        let out = rows(&text, DataFormat::Csv);
        assert_eq!(out[0].2, Err(format!("record longer than {MAX_RECORD_LEN} bytes")));
        assert_eq!(out[1], (3, 6 + long.len() as u64 + 5, good(&[1.0, 2.0], "z")));
    }

    #[test]
    fn seeking_to_a_reported_position_reads_the_same_rows() {
        let text = "a,b,y\r\n1,2,p\r\n\r\n\"3\",4,\"q\nq\"\r\n5,6,r\r\n7,8,s";
        let (_dir, mut reader) = open_text(text, DataFormat::Csv);
        reader.bind(&["a".to_owned(), "b".to_owned()], "y", None).unwrap();
        let mut row = Row::default();
        let mut all = Vec::new();
        let mut positions = vec![reader.position()];
        while reader.next_row(&mut row).unwrap() {
            all.push((row.start, row.features.clone(), row.label.clone()));
            positions.push(reader.position());
        }
        assert_eq!(all.len(), 4);
        for (skip, &position) in positions.iter().enumerate() {
            reader.seek(position).unwrap();
            let mut rest = Vec::new();
            while reader.next_row(&mut row).unwrap() {
                rest.push((row.start, row.features.clone(), row.label.clone()));
            }
            assert_eq!(rest, all[skip..].to_vec(), "from {position}");
        }
    }

    #[test]
    fn default_features_are_the_mostly_numeric_columns() {
        let text = "id,a,name,b,y\n1,0.5,x,NA,p\n2,1.5,y,3,q\n3,x,z,4,p\n";
        let (_dir, mut reader) = open_text(text, DataFormat::Csv);
        assert_eq!(reader.sniff_features("y").unwrap(), ["id", "a", "b"]);
        assert!(matches!(
            reader.sniff_features("label").unwrap_err(),
            TrainError::Column { ref param, ref column, .. } if param == "label" && column == "label"
        ));
        let text = "{\"b\":1,\"y\":\"p\",\"s\":\"t\"}\n{\"a\":2,\"b\":2,\"y\":\"q\"}\n{\"a\":3,\"b\":3,\"y\":\"q\"}\n";
        let (_dir, mut reader) = open_text(text, DataFormat::JsonLines);
        assert_eq!(reader.sniff_features("y").unwrap(), ["b", "a"]);
    }

    proptest::proptest! {
        /// The fast path returns exactly what `str::parse` does, or leaves the text to it.
        #[test]
        fn the_plain_decimal_fast_path_agrees_with_str_parse(
            sign in proptest::sample::select(vec!["", "-", "+"]),
            whole in "[0-9]{0,12}",
            point in proptest::bool::ANY,
            fraction in "[0-9]{0,12}",
        ) {
            let text = format!("{sign}{whole}{}{fraction}", if point { "." } else { "" });
            match (parse_plain_decimal(text.as_bytes()), text.parse::<f64>()) {
                (Some(fast), Ok(exact)) => proptest::prop_assert_eq!(fast.to_bits(), exact.to_bits(), "{}", text),
                (Some(fast), Err(_)) => proptest::prop_assert!(false, "{text} parsed as {fast} but is not a number"),
                (None, _) => {}
            }
        }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// The one-pass reading of unquoted records gives what splitting first gives, for good rows;
        /// for bad ones it steps aside.
        #[test]
        fn the_one_pass_csv_reading_agrees_with_splitting_first(
            fields in proptest::prop_oneof![3 => proptest::strategy::Just(3_usize), 1 => 1_usize..6]
                .prop_flat_map(|count| proptest::collection::vec(
                    proptest::prop_oneof![
                        3 => "-?[0-9]{1,8}(\\.[0-9]{0,8})?",
                        1 => " ?[0-9]\\.[0-9]e-?[0-9] ?",
                        2 => "[a-z ]{0,3}",
                        1 => proptest::strategy::Just(String::new()),
                    ],
                    count,
                )),
        ) {
            let line = fields.join(",");
            let (_dir, mut reader) = open_text(&format!("a,b,y\n{line}\n"), DataFormat::Csv);
            reader.bind(&["a".to_owned(), "b".to_owned()], "y", None).unwrap();
            // A line of nothing but blanks is skipped, not read.
            proptest::prop_assume!(reader.next_record().unwrap().is_some());
            let (mut fast, mut careful) = (Row::default(), Row::default());
            fast.features.resize(2, 0.0);
            careful.features.resize(2, 0.0);
            let one_pass = reader.parse_plain_csv(&mut fast);
            let split = reader.parse_split_csv(&mut careful);
            if one_pass {
                proptest::prop_assert_eq!(split, Ok(()));
                proptest::prop_assert_eq!(fast.features.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    careful.features.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                proptest::prop_assert_eq!(fast.label, careful.label);
            } else {
                proptest::prop_assert!(split.is_err(), "{line:?} is good but the one pass refused it");
            }
        }
    }

    #[test]
    fn the_fast_path_leaves_what_it_cannot_do_exactly_to_str_parse() {
        for text in [
            "1e5",
            "12345678901234567890",
            "9007199254740993",
            "0.12345678901234567890123",
            ".",
            "-",
            "1.2.3",
            "inf",
        ] {
            assert_eq!(parse_plain_decimal(text.as_bytes()), None, "{text}");
        }
        assert_eq!(parse_number(b" 1e5 "), Ok(100_000.0));
        assert_eq!(parse_number(b"9007199254740993"), Ok(9_007_199_254_740_992.0));
        assert_eq!(parse_plain_decimal(b"-0.0").map(f64::to_bits), Some((-0.0_f64).to_bits()));
        assert_eq!(parse_plain_decimal(b"5."), Some(5.0));
        assert_eq!(parse_plain_decimal(b".25"), Some(0.25));
    }

    #[test]
    fn binding_to_a_missing_or_duplicated_column_names_the_param() {
        let (_dir, mut reader) = open_text("a,b,a,y\n1,2,3,p\n", DataFormat::Csv);
        let error = reader.bind(&["c".to_owned()], "y", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("features: column `c` is not in the header of {}", reader.path().display())
        );
        let error = reader.bind(&["a".to_owned()], "y", None).unwrap_err();
        assert!(error.to_string().starts_with("features: column `a` appears twice in the header"));
    }
}
