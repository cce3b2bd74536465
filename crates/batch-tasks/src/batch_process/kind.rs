//! [`BatchProcessKind`]: the `batch_process` task kind, run by the records
//! [`ChunkRunner`](crate::records::ChunkRunner).
//!
//! # How the stages map onto the runner
//!
//! The runner reads the input line by line, calls the job's pure [`RecordJob::process`] on each line
//! (several at a time, in any order), writes the outputs in input order as JSON lines, and keeps an
//! in-order [`Summary`] in every checkpoint. So:
//!
//! * **filter, select, rename** are [`BatchProcess::process_record`], inside `process`. A line that
//!   is not a JSON object (or, for CSV, not a row of the header's width) is a `VALIDATION_ERROR` dead
//!   letter; a record the filter drops is skipped.
//! * **de-duplication** stays pure and order-proof through a *pre-pass*: before the runner starts,
//!   the job reads the whole input once and notes, for each key, the byte offset of the first record
//!   that would be kept with it (at most `dedup_max_keys` keys, else the task fails with
//!   `CONFIGURATION_ERROR` before writing anything). `process` then keeps a record only if it is at
//!   its key's first offset, and skips the others. The pre-pass gives the same answer on every run
//!   of the same file, so a resumed run decides exactly as the first one did, and no dedup state
//!   goes into checkpoints. It costs one more read and parse of the input.
//! * **group-by** runs in the [`Summary`]: `process` checks the aggregated fields (a non-numeric
//!   value is a dead letter naming the field) and the summary adds each written row to its group,
//!   in order; the groups are the checkpoint's state and the task's result summary
//!   (`{"groups": n, "rows": [...]}`, every group row). The output file holds the rows that were
//!   aggregated. Passing `max_groups`, or a sum leaving the decimal range, fails the task with
//!   `PROCESSING_ERROR` at the next checkpoint.
//!
//! # CSV input
//!
//! The first non-blank line is the header (it counts as one skipped record). Each later line is one
//! row: quoted fields may hold commas and doubled quotes, but not line breaks — such a row is a dead
//! letter, since the runner reads lines.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use batch_model::{BatchConfig, ErrorCode, TaskError, TaskType};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::batch_process::config::{BatchProcessConfig, Format, GroupConfig};
use crate::batch_process::dedup::{Dedup, DedupKey};
use crate::batch_process::error::{BatchProcessError, RecordIssue};
use crate::batch_process::{
    AggregateSpec, BatchProcess, FieldPath, GroupBy, GroupInput, GroupState, record_from_csv,
};
use crate::kind::{JobContext, JobOutcome, TaskKind};
use crate::records::{ChunkRunner, FilePosition, ItemError, Record, RecordJob, RunnerOptions, Summary};

/// The `batch_process` task kind: filter, project, de-duplicate and aggregate the records of a
/// JSON-lines or CSV file (params in the [`batch_process`](crate::batch_process) module docs).
///
/// ```
/// use batch_model::{BatchConfig, ErrorCode, TaskType};
/// use batch_tasks::TaskKind;
/// use batch_tasks::batch_process::BatchProcessKind;
/// use serde_json::json;
///
/// let kind = BatchProcessKind::default();
/// assert_eq!(kind.task_type(), TaskType::BatchProcess);
/// let params = json!({ "input": "in.csv", "output": "out.jsonl", "filter": "amount >> 5" });
/// let error = kind.validate(&params, &BatchConfig::default()).unwrap_err();
/// assert_eq!(error.code, ErrorCode::ConfigurationError);
/// assert_eq!(error.message, "filter: expected a value after '>', found '>' at column 9");
/// ```
#[derive(Debug, Clone, Default)]
pub struct BatchProcessKind {
    options: RunnerOptions,
}

impl BatchProcessKind {
    /// The kind, run with the chunk runner's `options`.
    pub fn with_options(options: RunnerOptions) -> BatchProcessKind {
        BatchProcessKind { options }
    }
}

#[async_trait]
impl TaskKind for BatchProcessKind {
    fn task_type(&self) -> TaskType {
        TaskType::BatchProcess
    }

    fn spec(&self) -> crate::KindSpec {
        crate::batch_process::params::spec()
    }

    fn validate(&self, params: &Value, config: &BatchConfig) -> Result<(), TaskError> {
        config.validate().map_err(|error| TaskError::from(&error))?;
        BatchProcessConfig::from_params(params).map(drop).map_err(|error| TaskError::from(&error))
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        let config =
            BatchProcessConfig::from_params(job.params()).map_err(|error| TaskError::from(&error))?;
        let token = job.control().cancellation_token();
        let prepared =
            tokio::task::spawn_blocking(move || BatchProcessJob::prepare(config, &token)).await.map_err(
                |error| TaskError::new(ErrorCode::ProcessingError, format!("the pre-pass failed: {error}")),
            )??;
        ChunkRunner::new(self.options.clone()).run(Arc::new(prepared), &job).await
    }
}

/// The job the chunk runner runs: the checked params, the CSV header, the dedup pre-pass's result.
#[derive(Debug)]
struct BatchProcessJob {
    process: BatchProcess,
    /// The CSV header's names and the offset of its line; `None` for JSON lines.
    header: Option<(Vec<String>, u64)>,
    /// De-duplication: computes each row's key.
    dedup: Option<Dedup>,
    /// The offset of each key's first kept record (from the pre-pass).
    first_offsets: HashMap<DedupKey, u64>,
    /// Grouping: the settings (shared with every output) and a stage used only to read rows.
    grouping: Option<(Arc<GroupConfig>, GroupBy)>,
}

/// A line run through the pure stages.
struct Prepared {
    row: Value,
    key: Option<DedupKey>,
    group: Option<GroupInput>,
}

impl BatchProcessJob {
    /// Reads the CSV header and runs the dedup pre-pass (blocking I/O).
    fn prepare(config: BatchProcessConfig, token: &CancellationToken) -> Result<BatchProcessJob, TaskError> {
        let header = match config.format {
            Format::Csv => read_header(&config.input)?,
            Format::JsonLines => None,
        };
        let dedup = config.dedup.clone().map(Dedup::new);
        let grouping =
            config.grouping.clone().map(|grouping| (Arc::new(grouping.clone()), GroupBy::new(grouping)));
        let mut job = BatchProcessJob {
            process: BatchProcess::new(config),
            header,
            dedup,
            first_offsets: HashMap::new(),
            grouping,
        };
        if let Some(dedup) = &job.dedup {
            job.first_offsets = job.first_offsets_of(dedup, token)?;
        }
        Ok(job)
    }

    /// The pre-pass: for each key, the offset of the first record that the pure stages keep.
    fn first_offsets_of(
        &self,
        dedup: &Dedup,
        token: &CancellationToken,
    ) -> Result<HashMap<DedupKey, u64>, TaskError> {
        let input = self.process.config().input.clone();
        let file = File::open(&input).map_err(|error| read_error(&input, &error))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut first = HashMap::new();
        let mut line = Vec::new();
        let mut position = FilePosition::START;
        loop {
            if position.line.is_multiple_of(4096) && token.is_cancelled() {
                return Err(
                    TaskError::new(ErrorCode::Cancelled, "the dedup pre-pass was aborted").not_retryable()
                );
            }
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(|error| read_error(&input, &error))?;
            if read == 0 {
                return Ok(first);
            }
            let start = position;
            position = FilePosition { offset: position.offset + read as u64, line: position.line + 1 };
            // Lines as the runner's `text_lines` hands them over: without `\n` or a trailing `\r`.
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let Ok(text) = std::str::from_utf8(text) else {
                continue;
            };
            let record =
                Record { value: text.to_owned(), line: start.line, offset: start.offset, end: position };
            if let Ok(Some(Prepared { key: Some(key), .. })) = self.stages(&record) {
                let known = first.len();
                first.entry(key).or_insert(start.offset);
                if first.len() > known && first.len() > dedup.config().max_keys {
                    let error = BatchProcessError::TooManyKeys { max_keys: dedup.config().max_keys };
                    return Err(TaskError::from(&error));
                }
            }
        }
    }

    /// The pure stages on one line: parse, filter, select, rename, the dedup key, the group input.
    fn stages(&self, record: &Record<String>) -> Result<Option<Prepared>, ItemError> {
        let value = match &self.header {
            None => serde_json::from_str::<Value>(&record.value)
                .map_err(|error| ItemError::validation(format!("not a JSON value: {error}")))?,
            Some((_, header_offset)) if record.offset == *header_offset => return Ok(None),
            Some((names, _)) => {
                let cells = csv_cells_of(&record.value).map_err(ItemError::validation)?;
                if cells.len() != names.len() {
                    return Err(ItemError::validation(format!(
                        "found {} fields, expected {} (the header's)",
                        cells.len(),
                        names.len()
                    )));
                }
                record_from_csv(names.iter().cloned().zip(cells))
            }
        };
        let Some(row) = self.process.process_record(value).map_err(|issue| item_error(&issue))? else {
            return Ok(None);
        };
        let key = match &self.dedup {
            Some(dedup) => Some(dedup.key(&row).map_err(|issue| item_error(&issue))?),
            None => None,
        };
        let group = match &self.grouping {
            Some((_, group_by)) => Some(group_by.input(&row).map_err(|issue| item_error(&issue))?),
            None => None,
        };
        Ok(Some(Prepared { row, key, group }))
    }
}

impl RecordJob for BatchProcessJob {
    type Output = ProcessedRow;
    type Summary = BatchSummary;

    fn input(&self) -> &Path {
        &self.process.config().input
    }

    fn output(&self) -> &Path {
        &self.process.config().output
    }

    fn dead_letters(&self) -> &Path {
        &self.process.config().dead_letters
    }

    fn process(&self, record: &Record<String>) -> Result<Option<ProcessedRow>, ItemError> {
        let Some(prepared) = self.stages(record)? else {
            return Ok(None);
        };
        if let Some(key) = prepared.key
            && self.first_offsets.get(&key) != Some(&record.offset)
        {
            return Ok(None);
        }
        let group = match (&self.grouping, prepared.group) {
            (Some((config, _)), Some(input)) => Some((Arc::clone(config), input)),
            _ => None,
        };
        Ok(Some(ProcessedRow { row: prepared.row, group }))
    }
}

/// A record issue as the runner's per-record error: `VALIDATION_ERROR`, naming the field.
fn item_error(issue: &RecordIssue) -> ItemError {
    let error = ItemError::new(issue.code(), issue.to_string());
    match issue.field() {
        Some(field) => error.with_field(field),
        None => error,
    }
}

fn read_error(path: &Path, error: &std::io::Error) -> TaskError {
    TaskError::new(ErrorCode::StorageError, format!("cannot read the input {}: {error}", path.display()))
        .with_details(json!({ "path": path }))
        .not_retryable()
}

/// The CSV header: the first non-blank line's fields, and the line's offset. `None` for an empty
/// file.
fn read_header(path: &PathBuf) -> Result<Option<(Vec<String>, u64)>, TaskError> {
    let file = File::open(path).map_err(|error| read_error(path, &error))?;
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|error| read_error(path, &error))?;
        if read == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            let text = line.trim_end_matches(['\n', '\r']);
            let names = csv_cells_of(text).map_err(|reason| {
                TaskError::new(
                    ErrorCode::ValidationError,
                    format!("the CSV header of {} cannot be read: {reason}", path.display()),
                )
                .not_retryable()
            })?;
            return Ok(Some((names, offset)));
        }
        offset += read as u64;
    }
}

/// The fields of one CSV line (`,`-separated, `"`-quoted with `""` for a quote).
fn csv_cells_of(line: &str) -> Result<Vec<String>, String> {
    // In a line of well-formed CSV, quotes pair up; an odd count leaves a quoted field open.
    if line.bytes().filter(|byte| *byte == b'"').count() % 2 == 1 {
        return Err("a quoted field does not end on its line (line breaks inside fields are not supported)"
            .to_owned());
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(str::to_owned).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(error) => Err(error.to_string()),
    }
}

/// One output of the job: the row, written as one JSON line, and (when grouping) what the summary
/// adds to its group.
#[derive(Debug)]
pub struct ProcessedRow {
    row: Value,
    group: Option<(Arc<GroupConfig>, GroupInput)>,
}

impl Serialize for ProcessedRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.row.serialize(serializer)
    }
}

/// The job's summary: the groups when grouping (the checkpoint's state and the task's result).
#[derive(Debug, Default)]
pub struct BatchSummary {
    group_by: Option<GroupBy>,
    /// Why aggregation stopped (a bound passed, a sum overflowing): fails the next checkpoint.
    failure: Option<String>,
}

impl Summary<ProcessedRow> for BatchSummary {
    fn add(&mut self, output: &ProcessedRow) {
        let (Some((config, input)), None) = (&output.group, &self.failure) else {
            return;
        };
        let group_by = self.group_by.get_or_insert_with(|| GroupBy::new(GroupConfig::clone(config)));
        if let Err(error) = group_by.apply(input.clone()) {
            self.failure = Some(error.to_string());
        }
    }

    fn finish(self, _counters: &batch_model::Counters) -> Result<Value, serde_json::Error> {
        if let Some(failure) = self.failure {
            return Err(serde::ser::Error::custom(failure));
        }
        Ok(match self.group_by {
            Some(group_by) => {
                let rows = group_by.finish();
                json!({ "groups": rows.len(), "rows": rows })
            }
            None => json!({}),
        })
    }
}

/// The summary as checkpoint state: the grouping settings (so that a resumed run can finish even if
/// it writes nothing more) and the groups.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSummary {
    group_by: Vec<String>,
    aggregates: Vec<String>,
    max_groups: usize,
    groups: GroupState,
}

impl Serialize for BatchSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(failure) = &self.failure {
            return Err(serde::ser::Error::custom(failure));
        }
        let stored = self.group_by.as_ref().map(|group_by| {
            let config = group_by.config();
            StoredSummary {
                group_by: config.group_by.iter().map(ToString::to_string).collect(),
                aggregates: config.aggregates.iter().map(spec_text).collect(),
                max_groups: config.max_groups,
                groups: group_by.state(),
            }
        });
        stored.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BatchSummary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BatchSummary, D::Error> {
        let Some(stored) = Option::<StoredSummary>::deserialize(deserializer)? else {
            return Ok(BatchSummary::default());
        };
        let group_by = stored
            .group_by
            .iter()
            .map(|text| {
                FieldPath::parse(text).ok_or_else(|| serde::de::Error::custom(format!("bad path {text:?}")))
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        let aggregates = stored
            .aggregates
            .iter()
            .map(|text| AggregateSpec::parse(text).map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, D::Error>>()?;
        let config = GroupConfig::new(group_by, aggregates).with_max_groups(stored.max_groups);
        let group_by = GroupBy::restore(config, &stored.groups).map_err(serde::de::Error::custom)?;
        Ok(BatchSummary { group_by: Some(group_by), failure: None })
    }
}

/// An aggregate spec as text that [`AggregateSpec::parse`] reads back to the same spec.
fn spec_text(spec: &AggregateSpec) -> String {
    match &spec.field {
        Some(field) => format!("{}={}:{field}", spec.name, spec.function.as_str()),
        None => format!("{}={}", spec.name, spec.function.as_str()),
    }
}
