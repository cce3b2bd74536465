//! Streaming the rows of a CSV or JSON-lines dataset, one record at a time, with exact positions.
//!
//! # Records come from pump-core's scanners
//!
//! Records are found by pump-core's synchronous scanners — [`CsvScanner`] (quote-aware, records
//! spanning lines) and [`LineScanner`] — the very readers behind its `csv` and `json_lines`
//! sources, so a record, a line number and a byte offset mean the same here as in every other kind.
//! This module adds what training needs on top: it binds the feature and label columns once, parses
//! a row's values straight into a reused `f64` slice (a plain CSV record is read in place, without
//! splitting it into fields first; see [`plain_decimal_field`]), and names what is wrong with a bad
//! row. Positions are [`FilePosition`]s: a checkpoint stores one and [`RowReader::seek`] returns to
//! it.
//!
//! # Records
//!
//! A JSON-lines record is one line holding a JSON object; blank lines are skipped. A CSV record is
//! one line, or several when a quoted field holds a newline (RFC 4180 quoting); the first record is
//! the header row; a quote still open at the end of the file makes its record bad, with a message
//! naming the line it opened on. A record longer than [`MAX_RECORD_LEN`] is a bad row (its beginning
//! is kept for the dead letter).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};

use pump_core::source::file::ReadError;
use pump_core::source::{CsvFields, CsvScanner, FilePosition, LineScanner, RecordError};
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};

use crate::train::config::DataFormat;
use crate::train::error::{RowProblem, TrainError};

/// The longest record a reader holds in memory (1 MiB); a longer one is a bad row.
pub const MAX_RECORD_LEN: usize = 1024 * 1024;

/// How many rows decide which columns are numeric when `features` is not given.
pub(super) const SNIFF_ROWS: usize = 100;

/// How much of a bad record a dead letter keeps.
const RAW_LIMIT: usize = 1024;

/// How much of a bad value a row problem quotes.
const VALUE_LIMIT: usize = 64;

/// The CSV delimiter.
const DELIMITER: u8 = b',';

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
pub(super) struct Row {
    /// The features, in the order of the feature list; meaningful only when `problem` is `None`.
    pub features: Vec<f64>,
    /// The label as text.
    pub label: String,
    /// Where the record starts.
    pub start: FilePosition,
    /// Why the row is bad, if it is.
    pub problem: Option<RowProblem>,
}

/// The scanner of one file's records. (One reader holds one for its whole life, so the size
/// difference between the two does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per reader, never moved in a hot path")]
enum Scanner {
    Csv(CsvScanner),
    Lines(LineScanner),
}

/// A streaming reader of a dataset's rows, holding one record at a time.
///
/// Records come from pump-core's [`CsvScanner`] or [`LineScanner`].
/// Positions are [`FilePosition`]s: the byte offset and 1-based line where a record starts. A
/// record longer than [`MAX_RECORD_LEN`] is a bad row.
pub(super) struct RowReader {
    path: PathBuf,
    format: DataFormat,
    scanner: Scanner,
    /// Where the first data record starts (after a CSV header).
    data_start: FilePosition,
    /// The CSV header's column names; empty for JSON lines.
    header: Vec<String>,
    /// The current record's text (its first 1 KiB), kept only for a bad row.
    raw: String,
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
            .field("position", &self.position())
            .field("features", &self.feature_names)
            .field("label", &self.label)
            .finish()
    }
}

impl RowReader {
    /// Opens `path` and, for CSV, reads its header row. The reader is positioned at the first data
    /// record; [`bind`](Self::bind) it to the feature and label columns before reading rows.
    pub(super) fn open(path: &Path, format: DataFormat) -> Result<RowReader, TrainError> {
        let header_error =
            |reason: String| TrainError::Header { path: path.to_owned(), reason: reason.to_owned() };
        let (scanner, header, data_start) = match format {
            DataFormat::Csv => {
                let scanner =
                    CsvScanner::options().max_record_len(MAX_RECORD_LEN).open(path).map_err(|error| {
                        match error.source.kind() {
                            io::ErrorKind::InvalidData => header_error(error.source.to_string()),
                            _ => read_error(error),
                        }
                    })?;
                let Some(fields) = scanner.headers() else {
                    return Err(header_error("the file is empty".to_owned()));
                };
                let mut names = Vec::with_capacity(fields.len());
                for field in fields.iter() {
                    match std::str::from_utf8(field) {
                        Ok(name) => names.push(name.trim().to_owned()),
                        Err(_) => return Err(header_error("it is not valid UTF-8".to_owned())),
                    }
                }
                let data_start = scanner.data_start();
                (Scanner::Csv(scanner), names, data_start)
            }
            DataFormat::JsonLines => {
                let scanner = LineScanner::open(path).map_err(read_error)?.max_record_len(MAX_RECORD_LEN);
                (Scanner::Lines(scanner), Vec::new(), FilePosition::START)
            }
        };
        Ok(RowReader {
            path: path.to_owned(),
            format,
            scanner,
            data_start,
            header,
            raw: String::new(),
            csv_slots: Vec::new(),
            json_slots: HashMap::new(),
            feature_names: Vec::new(),
            label: String::new(),
            seen: Vec::new(),
        })
    }

    /// The file being read.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next record starts.
    pub(super) fn position(&self) -> FilePosition {
        match &self.scanner {
            Scanner::Csv(scanner) => scanner.position(),
            Scanner::Lines(scanner) => scanner.position(),
        }
    }

    /// Where the first data record starts: after the CSV header, at the start of a JSON-lines file.
    pub(super) fn data_start(&self) -> FilePosition {
        self.data_start
    }

    /// Moves to `position`, which must be the start of a record (a position this reader reported);
    /// a position before the first data record means the first data record.
    pub(super) fn seek(&mut self, position: FilePosition) -> Result<(), TrainError> {
        let position = if position.offset < self.data_start.offset { self.data_start } else { position };
        match &mut self.scanner {
            Scanner::Csv(scanner) => scanner.seek(position),
            Scanner::Lines(scanner) => scanner.seek(position),
        }
        .map_err(read_error)
    }

    /// Moves back to the first data record.
    pub(super) fn rewind(&mut self) -> Result<(), TrainError> {
        self.seek(self.data_start)
    }

    /// Says which columns are the features (in order) and which is the label. For CSV, each must be
    /// in the header exactly once: a missing or doubled column is a [`TrainError::Column`] naming
    /// `file_param` when given (`eval_input`), else the param that chose the column (`features`,
    /// `label`).
    pub(super) fn bind(
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
    pub(super) fn next_row(&mut self, row: &mut Row) -> Result<bool, TrainError> {
        row.problem = None;
        row.label.clear();
        row.features.resize(self.feature_names.len(), 0.0);
        let outcome = match &mut self.scanner {
            Scanner::Csv(scanner) => {
                let Some(scanned) = scanner.next_record().map_err(read_error)? else {
                    return Ok(false);
                };
                match scanned {
                    Ok(mut record) => {
                        row.start = record.start();
                        let parsed =
                            if record.is_plain() && parse_plain_csv(&self.csv_slots, record.bytes(), row) {
                                Ok(())
                            } else {
                                row.label.clear();
                                match record.fields() {
                                    Ok(fields) => parse_split_csv(
                                        fields,
                                        &self.csv_slots,
                                        &self.feature_names,
                                        &self.label,
                                        row,
                                    ),
                                    Err(error) => Err(RowProblem::Malformed { reason: error.reason }),
                                }
                            };
                        if parsed.is_err() {
                            self.raw = raw_text(record.bytes());
                        }
                        parsed
                    }
                    Err(error) => Err(self.record_error(error, row)),
                }
            }
            Scanner::Lines(scanner) => loop {
                let Some(scanned) = scanner.next_line().map_err(read_error)? else {
                    return Ok(false);
                };
                match scanned {
                    Ok(line) if line.value.iter().all(u8::is_ascii_whitespace) => continue,
                    Ok(line) => {
                        row.start = FilePosition { offset: line.offset, line: line.line };
                        let parsed = parse_json(
                            line.value,
                            &self.json_slots,
                            &self.feature_names,
                            &self.label,
                            &mut self.seen,
                            row,
                        );
                        if parsed.is_err() {
                            self.raw = raw_text(line.value);
                        }
                        break parsed;
                    }
                    Err(error) => {
                        row.start = FilePosition { offset: error.offset, line: error.line };
                        self.raw = error.raw;
                        break Err(RowProblem::Malformed { reason: error.reason });
                    }
                }
            },
        };
        row.problem = outcome.err();
        Ok(true)
    }

    /// A record the scanner refused (too long, a quote never closed) as a bad row.
    fn record_error(&mut self, error: RecordError, row: &mut Row) -> RowProblem {
        row.start = FilePosition { offset: error.offset, line: error.line };
        self.raw = error.raw;
        RowProblem::Malformed { reason: error.reason }
    }

    /// The last bad record's text (its first 1 KiB, invalid UTF-8 replaced), for a dead letter.
    pub(super) fn raw_text(&self) -> String {
        self.raw.clone()
    }

    /// The feature columns of the rows that decide them when `features` is not given: every column
    /// but the label whose value is a number in more than half of the first [`SNIFF_ROWS`] rows (CSV:
    /// in header order; JSON lines: in order of first appearance, and a number means a JSON number).
    /// Also checks that the label column exists (`TrainError::Column` naming `label` otherwise) and
    /// that there is a record at all ([`TrainError::NoTrainingRows`]). Leaves the reader at the first
    /// data record.
    pub(super) fn sniff_features(&mut self, label: &str) -> Result<Vec<String>, TrainError> {
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
        let position = self.position();
        let mut row = Row::default();
        let found = self.next_row(&mut row)?;
        self.seek(position)?;
        Ok(found)
    }

    /// Checks that a JSON-lines file's first rows have `columns` (CSV headers are checked by
    /// [`bind`](Self::bind)). Leaves the reader at the first data record.
    pub(super) fn check_json_columns(&mut self, columns: &[String], param: &str) -> Result<(), TrainError> {
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
        let Scanner::Csv(scanner) = &mut self.scanner else {
            return Ok((Vec::new(), 0));
        };
        let mut numeric = vec![0_usize; self.header.len()];
        let mut rows = 0;
        while rows < SNIFF_ROWS {
            let Some(scanned) = scanner.next_record().map_err(read_error)? else {
                break;
            };
            let Ok(mut record) = scanned else {
                continue;
            };
            let Ok(fields) = record.fields() else {
                continue;
            };
            if fields.len() != self.header.len() {
                continue;
            }
            rows += 1;
            for (column, field) in fields.iter().enumerate() {
                if parse_number(field).is_ok() {
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
        let Scanner::Lines(scanner) = &mut self.scanner else {
            return Ok((Vec::new(), 0));
        };
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut rows = 0;
        let mut object = Vec::new();
        while rows < SNIFF_ROWS {
            let Some(scanned) = scanner.next_line().map_err(read_error)? else {
                break;
            };
            let Ok(line) = scanned else {
                continue;
            };
            if line.value.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            object.clear();
            let mut deserializer = serde_json::Deserializer::from_slice(line.value);
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
}

/// Reads a CSV record by its split fields: the careful way, for quoted records and for naming a
/// record's problem.
fn parse_split_csv(
    fields: CsvFields<'_>,
    slots: &[Slot],
    feature_names: &[String],
    label: &str,
    row: &mut Row,
) -> Result<(), RowProblem> {
    if fields.len() != slots.len() {
        return Err(RowProblem::FieldCount { found: fields.len(), expected: slots.len() });
    }
    for (bytes, &slot) in fields.iter().zip(slots) {
        match slot {
            Slot::Feature(idx) => match parse_number(bytes) {
                Ok(value) => row.features[idx] = value,
                Err(problem) => return Err(problem.into_row_problem(&feature_names[idx], bytes)),
            },
            Slot::Label => {
                let text = bytes.trim_ascii();
                if text.is_empty() {
                    return Err(RowProblem::MissingLabel { label: label.to_owned() });
                }
                match std::str::from_utf8(text) {
                    Ok(text) => row.label.push_str(text),
                    Err(_) => return Err(RowProblem::NotUtf8 { column: label.to_owned() }),
                }
            }
            Slot::Ignored => {}
        }
    }
    Ok(())
}

/// The fast path for a CSV record without quotes: reads its fields in one pass over the bytes,
/// feature values straight into `row` (see [`plain_decimal_field`]). `false` when the record has a
/// problem: then the caller reads it again the careful way, which names the problem.
fn parse_plain_csv(slots: &[Slot], record: &[u8], row: &mut Row) -> bool {
    let last = slots.len().saturating_sub(1);
    let mut start = 0;
    for (column, &slot) in slots.iter().enumerate() {
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

/// Reads one JSON-lines record's feature and label values into `row`.
fn parse_json(
    record: &[u8],
    slots: &HashMap<String, Slot>,
    feature_names: &[String],
    label: &str,
    seen: &mut [bool],
    row: &mut Row,
) -> Result<(), RowProblem> {
    seen.fill(false);
    let mut label_seen = false;
    let mut problem = None;
    let mut deserializer = serde_json::Deserializer::from_slice(record);
    let visitor = RowVisitor {
        slots,
        names: feature_names,
        features: &mut row.features,
        seen,
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
    if let Some(idx) = seen.iter().position(|seen| !seen) {
        return Err(RowProblem::MissingFeature { feature: feature_names[idx].clone() });
    }
    if !label_seen {
        return Err(RowProblem::MissingLabel { label: label.to_owned() });
    }
    Ok(())
}

/// The first [`RAW_LIMIT`] bytes of a record as text, invalid UTF-8 replaced.
fn raw_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(RAW_LIMIT)]);
    text.into_owned()
}

fn read_error(error: ReadError) -> TrainError {
    TrainError::Read { path: error.path, source: error.source }
}

/// The length of the unquoted field at the start of `bytes`: up to the first delimiter or the end.
fn field_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|&byte| byte == DELIMITER).unwrap_or(bytes.len())
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
    fn a_quote_left_open_is_one_bad_row_naming_the_line_it_opened_on() {
        let text = "a,b,y\n1,2,p\n3,\"4,q\n5,6,r\n7,8,s\n";
        let (_dir, mut reader) = open_text(text, DataFormat::Csv);
        reader.bind(&["a".to_owned(), "b".to_owned()], "y", None).unwrap();
        let mut row = Row::default();
        assert!(reader.next_row(&mut row).unwrap() && row.problem.is_none());
        assert!(reader.next_row(&mut row).unwrap());
        assert_eq!((row.start.line, row.start.offset), (3, 12));
        assert_eq!(
            row.problem.as_ref().unwrap().to_string(),
            "the quote opened on line 3 is never closed: the record runs to the end of the file (3 lines from \
             there)"
        );
        assert_eq!(reader.raw_text(), "3,\"4,q\n5,6,r\n7,8,s\n");
        assert!(!reader.next_row(&mut row).unwrap());
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
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data.csv");
            std::fs::write(&path, format!("a,b,y\n{line}\n")).unwrap();
            let mut scanner = CsvScanner::open(&path).unwrap();
            // A blank line is skipped, not read.
            let Some(scanned) = scanner.next_record().unwrap() else { return Ok(()) };
            let mut record = scanned.unwrap();
            let slots = [Slot::Feature(0), Slot::Feature(1), Slot::Label];
            let names = ["a".to_owned(), "b".to_owned()];
            let (mut fast, mut careful) = (Row::default(), Row::default());
            fast.features.resize(2, 0.0);
            careful.features.resize(2, 0.0);
            let one_pass = parse_plain_csv(&slots, record.bytes(), &mut fast);
            let split = parse_split_csv(record.fields().unwrap(), &slots, &names, "y", &mut careful);
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
