//! [`BatchProcessKind`]: the `batch_process` task kind, run by the records
//! [`ChunkRunner`](crate::records::ChunkRunner).
//!
//! # How the stages map onto the runner
//!
//! The runner reads the input (JSON lines with pump-core's `text_lines`; CSV with pump-core's
//! quote-aware CSV source, each row handed over as a JSON object of its cells), calls the job's
//! pure [`RecordJob::process`] on each record (several at a time, in any order), and then passes
//! every output through the summary's in-order step ([`Summary::admit`]) before it writes it:
//!
//! * **filter, select, rename** are [`BatchProcess::process_record`], inside `process`. A record
//!   that is not a JSON object (or, for CSV, a row of another width than the header, or a quote left
//!   open at the end of the file) is a `VALIDATION_ERROR` dead letter; a record the filter drops is
//!   skipped. `process` also computes the dedup key (a row without one is a dead letter) and the
//!   group input (a non-numeric aggregated value is a dead letter naming the field).
//! * **de-duplication** is in order, in `admit`: the first row of each key is kept, later ones are
//!   skipped. The keys seen are a set of 128-bit hashes; each new key is appended to a *state log*
//!   beside the output (`<output>.keys`, 33 bytes a key), committed with every checkpoint (its length
//!   is in the checkpoint), and read back on resume, so a checkpoint carries no key set however many
//!   keys there are. The bound: `dedup_max_keys` distinct keys (default 1,000,000: about 40 MB of
//!   memory and 33 MB of log); one more fails the task with `CONFIGURATION_ERROR` at that record,
//!   after the last committed checkpoint, so nothing inexact is ever written. The log is removed when
//!   the task completes (a partition's, when its parent's merge is done).
//! * **group-by** is in order too: each row is absorbed into its group (counted as processed, not
//!   written), and at the end of the input the runner writes one row per group (sorted by key) to
//!   the output, then commits a final checkpoint. The groups are the checkpoint's state (bounded by
//!   `max_groups`, default 100,000; one more group, or a sum leaving the decimal range, fails the task
//!   with `PROCESSING_ERROR`). The task's result summary holds the group count and the first
//!   [`SUMMARY_ROWS`](super::SUMMARY_ROWS) group rows.
//!
//! # Partitions
//!
//! With `partitions` > 1 in its config, a task is split (by [`TaskKind::split`]) into at most that
//! many partitions, ranges of the input that start at record boundaries: line starts for JSON
//! lines, record ends found by pump-core's quote-aware `CsvScanner` for CSV (a quoted field may span
//! lines). Each partition is a task of its own that any worker runs through the chunk runner over
//! its range, numbering lines as in the whole input and, for CSV, reading the header from the
//! start; it writes `<output stem>.partition-<i>-of-<n>.<ext>` and the same for its dead letters,
//! beside the task's files. A partition keeps what the merge needs: its key log (`.keys`, one entry
//! per written row, when de-duplicating) and, when grouping, a log of each admitted row's key and
//! group input (`.inputs`) instead of groups of its own.
//!
//! When every partition completed, [`TaskKind::merge`] writes exactly what one run over the whole
//! input writes: the rows in input order with the later duplicates across partitions dropped
//! (the first occurrence in the whole input is kept), or the groups recomputed by applying the
//! logged group inputs in input order (the same sums, and the same bound failures, as one run)
//! with one row per group at the end; the dead letters concatenated; the counts and the summary
//! one run's. Without de-duplication or grouping the rows are the partitions' outputs concatenated,
//! the first one adopted (renamed, not copied: [`MergeFile::adopt_file`]); with either, every row
//! is read again and the output written anew. The merged files are published under the task's final names after a final
//! checkpoint under the parent's claim (see [`records::merge_partitions`](crate::records::merge_partitions)),
//! and the partitions' files are removed.
//!
//! # CSV input
//!
//! The header row names the fields; it is not a record. Each later row (quoted fields may hold the
//! delimiter, doubled quotes and line breaks) is a record of strings keyed by the header's names,
//! whose line is the line it starts on. A rejected row's dead letter holds the row as that JSON
//! object (`raw`), a row that could not be split holds its text.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use batch_model::{BatchConfig, Counters, ErrorCode, TaskError, TaskType};
use pump_core::sink::JsonLinesWriter;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::batch_process::config::{BatchProcessConfig, DedupConfig, Format, GroupConfig};
use crate::batch_process::dedup::{Dedup, DedupKey};
use crate::batch_process::error::{BatchProcessError, RecordIssue};
use crate::batch_process::{
    AggregateSpec, BatchProcess, FieldPath, GroupBy, GroupInput, GroupState, SUMMARY_ROWS,
};
use crate::kind::{JobContext, JobOutcome, PartitionResult, TaskKind};
use crate::records::postgres::{OutputMode, PgTable};
use crate::records::{
    Admission, ChunkRunner, CsvRowsInput, DeadLetterRecord, Endpoints, ItemError, JsonLinesFile, MergeFile,
    MergeTargets, Merged, Record, RecordJob, RecordSource, RunnerOptions, Summary, TextLinesInput,
    check_input_file, check_output_folder, check_splittable, merge_partitions, partition_path, split_csv,
    split_lines,
};

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

    /// Checks the config and the params, then the files: the input must be a readable file (a
    /// regular one when the task is split into partitions) and the output's and dead-letter file's
    /// folders must exist (`CONFIGURATION_ERROR` naming the param).
    fn validate(&self, params: &Value, config: &BatchConfig) -> Result<(), TaskError> {
        config.validate().map_err(|error| TaskError::from(&error))?;
        let params = BatchProcessConfig::from_params(params).map_err(|error| TaskError::from(&error))?;
        check_files(&params).map_err(|error| TaskError::from(&error))?;
        if config.partitions > 1 && (params.input_table.is_some() || params.output_table.is_some()) {
            return Err(TaskError::from(&BatchProcessError::InvalidParam {
                param: "partitions",
                reason: "a task reading or writing a table runs as one partition".to_owned(),
            }));
        }
        if config.partitions > 1 {
            check_splittable(&params.input).map_err(|reason| {
                TaskError::from(&BatchProcessError::InvalidParam { param: "partitions", reason })
            })?;
        }
        Ok(())
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        let config =
            BatchProcessConfig::from_params(job.params()).map_err(|error| TaskError::from(&error))?;
        let format = config.format;
        // A partition of a partitioned task keeps what its parent's merge needs: its dedup keys and,
        // when grouping, each row's group input (in order) instead of groups of its own.
        let partition = job.task().parent_id.is_some();
        let log = state_log_path(&config, partition);
        let dead_letters =
            JsonLinesFile::<DeadLetterRecord>::new(config.dead_letters.clone(), "dead-letter file");
        let input = config.input.clone();
        let range = config.input_range.unwrap_or_default();
        let (input_table, output_table) = (config.input_table.clone(), config.output_table.clone());
        let output_mode = config.output_mode;
        let output_file = config.output.clone();
        let work = Arc::new(BatchProcessJob::new(config, log.clone(), partition));
        let runner = ChunkRunner::new(self.options.clone());
        let run = Run { runner, work, output_file, output_table, output_mode, dead_letters, job: &job };
        let outcome = match (input_table, format) {
            (Some(table), _) => run.from(table_input(table)?).await?,
            (None, Format::JsonLines) => run.from(TextLinesInput::new(input).range(range)).await?,
            (None, Format::Csv) => run.from(CsvRowsInput::new(input).range(range)).await?,
        };
        if let (JobOutcome::Completed { .. }, Some(log), false) = (&outcome, log, partition) {
            // The key log served resumes; a completed task needs it no more (a partition's serves
            // its parent's merge, which removes it).
            remove_quietly(&log);
        }
        Ok(outcome)
    }

    /// The input is a file of lines or CSV rows: it can be split at record boundaries.
    fn can_partition(&self) -> bool {
        true
    }

    /// Splits the input into at most `partitions` ranges of about equal size at record boundaries
    /// (JSON lines: at line starts, one pass counting newlines; CSV: where pump-core's quote-aware
    /// scanner ends a record, so a quoted field spanning lines is never cut). Each partition writes
    /// its own files beside the task's (`big.partition-2-of-4.jsonl`), numbers its lines as in the
    /// whole input, and reads the CSV header from the start.
    async fn split(&self, job: &JobContext, partitions: u32) -> Result<Vec<Value>, TaskError> {
        let config =
            BatchProcessConfig::from_params(job.params()).map_err(|error| TaskError::from(&error))?;
        let (input, format) = (config.input.clone(), config.format);
        let within = config.input_range.unwrap_or_default();
        let ranges = tokio::task::spawn_blocking(move || match format {
            Format::JsonLines => split_lines(&input, within, partitions),
            Format::Csv => split_csv(&input, b',', within, partitions),
        })
        .await
        .map_err(|error| {
            TaskError::new(ErrorCode::ProcessingError, format!("splitting the input failed: {error}"))
        })?
        .map_err(|error| error.to_task_error())?;
        let count = u32::try_from(ranges.len()).unwrap_or(u32::MAX);
        let mut children = Vec::with_capacity(ranges.len());
        for (index, range) in (0..).zip(ranges) {
            let mut child = job.params().as_object().cloned().unwrap_or_default();
            child.remove("dead_letters");
            let output = partition_path(&config.output, index, count);
            let dead_letters = partition_path(&config.dead_letters, index, count);
            child.insert("output".to_owned(), Value::String(output.to_string_lossy().into_owned()));
            child
                .insert("dead_letter".to_owned(), Value::String(dead_letters.to_string_lossy().into_owned()));
            child.insert("input_range".to_owned(), json!(range));
            children.push(Value::Object(child));
        }
        Ok(children)
    }

    /// Merges the partitions into exactly what one run over the whole input writes: rows in input
    /// order with later duplicates across partitions dropped (each partition's key log says which
    /// key each of its rows has), the groups recomputed from the partitions' logged group inputs in
    /// input order (so even the bounds fail where one run would), the group rows at the end, the dead
    /// letters concatenated, the counts and the summary as one run's.
    async fn merge(
        &self,
        job: JobContext,
        partitions: Vec<PartitionResult>,
    ) -> Result<JobOutcome, TaskError> {
        let config =
            BatchProcessConfig::from_params(job.params()).map_err(|error| TaskError::from(&error))?;
        let mut parts = Vec::with_capacity(partitions.len());
        for partition in &partitions {
            let child = BatchProcessConfig::from_params(&partition.task.params)
                .map_err(|error| TaskError::from(&error))?;
            let dedup = partition.result.get("dedup");
            let progress = &partition.task.progress;
            parts.push(Part {
                log: state_log_path(&child, true),
                output: child.output,
                dead_letters: child.dead_letters,
                deduplicates: dedup.is_some(),
                duplicates: dedup.and_then(|dedup| dedup["duplicates"].as_u64()).unwrap_or(0),
                counters: Counters {
                    processed: progress.processed,
                    failed: progress.failed,
                    skipped: progress.skipped,
                    retried: 0,
                },
            });
        }
        let targets = MergeTargets {
            output: config.output.clone(),
            dead_letters: config.dead_letters.clone(),
            partition_files: parts
                .iter()
                .flat_map(|part| {
                    [Some(part.output.clone()), Some(part.dead_letters.clone()), part.log.clone()]
                })
                .flatten()
                .collect(),
        };
        let settings = Settings { dedup: config.dedup, grouping: config.grouping, partition: false };
        merge_partitions(&job, targets, move |output, dead_letters| {
            merge_parts(&settings, &parts, output, dead_letters)
        })
        .await
    }
}

/// The state log of a task (or partition) with `config`: `<output>.keys` for the dedup keys; for a
/// partition that groups, `<output>.inputs` (each row's key and group input); none otherwise.
fn state_log_path(config: &BatchProcessConfig, partition: bool) -> Option<PathBuf> {
    // Beside the output file; beside the dead-letter file when the output is a table.
    let base = if config.output_table.is_some() { &config.dead_letters } else { &config.output };
    if partition && config.grouping.is_some() {
        return Some(with_suffix(base, ".inputs"));
    }
    config.dedup.is_some().then(|| keys_path(base))
}

/// One run's endpoints but its source: the output (a file or a table) and the dead letters.
struct Run<'a> {
    runner: ChunkRunner,
    work: Arc<BatchProcessJob>,
    output_file: PathBuf,
    output_table: Option<PgTable>,
    output_mode: OutputMode,
    dead_letters: JsonLinesFile<DeadLetterRecord>,
    job: &'a JobContext,
}

impl Run<'_> {
    /// Runs the job from `source` to the output.
    async fn from<S: RecordSource>(self, source: S) -> Result<JobOutcome, TaskError> {
        let Run { runner, work, output_file, output_table, output_mode, dead_letters, job } = self;
        match output_table {
            Some(table) => {
                let output = table_output(table, output_mode, job)?;
                let endpoints = Endpoints { source, output, dead_letters };
                runner.run_with(work, endpoints, job).await
            }
            None => {
                let endpoints =
                    Endpoints { source, output: JsonLinesFile::new(output_file, "output"), dead_letters };
                runner.run_with(work, endpoints, job).await
            }
        }
    }
}

#[cfg(feature = "postgres")]
fn table_input(table: PgTable) -> Result<crate::records::postgres::PgTableInput, TaskError> {
    Ok(crate::records::postgres::PgTableInput::new(table))
}

/// The table output, committed with the job's checkpoints when `mode` and the store allow it.
#[cfg(feature = "postgres")]
fn table_output(
    table: PgTable,
    mode: OutputMode,
    job: &JobContext,
) -> Result<crate::records::postgres::PgTableOutput, TaskError> {
    Ok(crate::records::postgres::PgTableOutput::new(table).in_job(Arc::clone(job.control()), mode))
}

/// Without the feature `postgres` no table gets this far (the params are refused); a stand-in
/// type keeps the run's code the same in every build.
#[cfg(not(feature = "postgres"))]
fn table_input(_table: PgTable) -> Result<TextLinesInput, TaskError> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn table_output(
    _table: PgTable,
    _mode: OutputMode,
    _job: &JobContext,
) -> Result<JsonLinesFile<ProcessedRow>, TaskError> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> TaskError {
    TaskError::new(ErrorCode::ConfigurationError, "this build has no PostgreSQL support (feature postgres)")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove a state log");
    }
}

/// One completed partition, as the merge reads it.
#[derive(Debug)]
struct Part {
    output: PathBuf,
    dead_letters: PathBuf,
    /// Its key log (dedup without grouping) or group-input log (grouping).
    log: Option<PathBuf>,
    /// Whether its summary reports de-duplication, and the duplicates it dropped itself.
    deduplicates: bool,
    duplicates: u64,
    counters: Counters,
}

/// The merge itself (on a blocking thread): see [`BatchProcessKind::merge`].
fn merge_parts(
    settings: &Settings,
    parts: &[Part],
    output: &mut MergeFile,
    dead_letters: &mut MergeFile,
) -> Result<Merged, TaskError> {
    let mut summary = BatchSummary {
        deduplicates: parts.iter().any(|part| part.deduplicates),
        duplicates: parts.iter().map(|part| part.duplicates).sum(),
        ..BatchSummary::default()
    };
    let mut counters = Counters::default();
    for part in parts {
        counters.processed += part.counters.processed;
        counters.failed += part.counters.failed;
        counters.skipped += part.counters.skipped;
    }
    let duplicates_before = summary.duplicates;
    let max_keys = settings.dedup.as_ref().map_or(usize::MAX, |dedup| dedup.max_keys);
    match (&settings.grouping, &settings.dedup) {
        (Some(grouping), _) => {
            for part in parts {
                let Some(log) = &part.log else { continue };
                for_each_line(log, |line| {
                    let entry: LoggedInput = serde_json::from_slice(line).map_err(|error| {
                        bad_log(log, &format!("an entry is not a logged group input: {error}"))
                    })?;
                    if let Some(key) = &entry.key {
                        let hash = parse_hash(key.as_bytes())
                            .ok_or_else(|| bad_log(log, "a key is not a key hash"))?;
                        if !summary.see(hash, max_keys)? {
                            return Ok(());
                        }
                    }
                    summary
                        .group_by
                        .get_or_insert_with(|| GroupBy::new(grouping.clone()))
                        .apply(entry.group)
                        .map_err(|error| TaskError::from(&error))
                })?;
            }
            let mut rendered = Vec::new();
            for row in summary.group_by.as_ref().map(GroupBy::finish).unwrap_or_default() {
                JsonLinesWriter::<Value>::render(&row, &mut rendered).map_err(|error| {
                    TaskError::new(ErrorCode::ProcessingError, format!("cannot write a group row: {error}"))
                })?;
            }
            output.append(&rendered).map_err(|error| error.to_task_error())?;
        }
        (None, Some(_)) => {
            for part in parts {
                let Some(log) = &part.log else { continue };
                let mut keys = BufReader::with_capacity(64 * 1024, open(log)?);
                let mut key = Vec::with_capacity(KEY_ENTRY_LEN);
                for_each_line(&part.output, |line| {
                    key.clear();
                    keys.read_until(b'\n', &mut key).map_err(|error| read_failure(log, &error))?;
                    let hash = key
                        .strip_suffix(b"\n")
                        .and_then(parse_hash)
                        .ok_or_else(|| bad_log(log, "it holds fewer keys than its output has rows"))?;
                    if summary.see(hash, max_keys)? {
                        output.append(line).map_err(|error| error.to_task_error())?;
                    }
                    Ok(())
                })?;
            }
        }
        (None, None) => {
            // The first partition's rows start the output: adopted, not copied.
            for (index, part) in parts.iter().enumerate() {
                if index == 0 { output.adopt_file(&part.output) } else { output.append_file(&part.output) }
                    .map_err(|error| error.to_task_error())?;
            }
        }
    }
    for part in parts {
        dead_letters.append_file(&part.dead_letters).map_err(|error| error.to_task_error())?;
    }
    // A row dropped here as a later duplicate counted as processed in its partition.
    let dropped = summary.duplicates - duplicates_before;
    counters.processed -= dropped;
    counters.skipped += dropped;
    let summary = summary.finish(&counters).map_err(|error| {
        TaskError::new(ErrorCode::ProcessingError, format!("cannot write the summary: {error}"))
    })?;
    Ok(Merged { counters, summary })
}

/// Calls `each` with every `\n`-terminated line of the file at `path` (the newline included).
fn for_each_line(path: &Path, mut each: impl FnMut(&[u8]) -> Result<(), TaskError>) -> Result<(), TaskError> {
    let mut reader = BufReader::with_capacity(256 * 1024, open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(|error| read_failure(path, &error))? == 0 {
            return Ok(());
        }
        each(&line)?;
    }
}

fn open(path: &Path) -> Result<std::fs::File, TaskError> {
    std::fs::File::open(path).map_err(|error| read_failure(path, &error))
}

fn read_failure(path: &Path, error: &std::io::Error) -> TaskError {
    TaskError::new(
        ErrorCode::StorageError,
        format!("cannot read the partition file {}: {error}", path.display()),
    )
}

fn bad_log(path: &Path, reason: &str) -> TaskError {
    TaskError::new(
        ErrorCode::StorageError,
        format!("the partition log {} is damaged: {reason}", path.display()),
    )
}

/// The state log of a task de-duplicating into `output`: `<output>.keys`.
pub(crate) fn keys_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".keys");
    output.with_file_name(name)
}

/// The input is a readable file; the output's and dead-letter file's folders exist.
fn check_files(config: &BatchProcessConfig) -> Result<(), BatchProcessError> {
    let invalid =
        |param: &'static str| move |reason: String| BatchProcessError::InvalidParam { param, reason };
    if config.input_table.is_none() {
        check_input_file(&config.input).map_err(invalid("input"))?;
    }
    if config.output_table.is_none() {
        check_output_folder(&config.output).map_err(invalid("output"))?;
    }
    check_output_folder(&config.dead_letters).map_err(invalid("dead_letter"))
}

/// The job the chunk runner runs: the checked params and the stages that read rows.
#[derive(Debug)]
struct BatchProcessJob {
    process: BatchProcess,
    /// What every output carries to the in-order step.
    settings: Arc<Settings>,
    /// De-duplication: computes each row's key.
    dedup: Option<Dedup>,
    /// Grouping: a stage used only to read rows.
    group_by: Option<GroupBy>,
    log: Option<PathBuf>,
    /// Records go to the output as they came (see [`RecordJob::process`]): the output is a table,
    /// whose columns are found by field name, and nothing changes or reads the rows.
    pass_through: bool,
}

/// The settings of the in-order step, shared by every output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    dedup: Option<DedupConfig>,
    grouping: Option<GroupConfig>,
    /// A partition of a partitioned task: group inputs are logged for the parent's merge rather
    /// than aggregated.
    partition: bool,
}

impl BatchProcessJob {
    fn new(config: BatchProcessConfig, log: Option<PathBuf>, partition: bool) -> BatchProcessJob {
        let settings =
            Arc::new(Settings { dedup: config.dedup.clone(), grouping: config.grouping.clone(), partition });
        let dedup = config.dedup.clone().map(Dedup::new);
        let group_by = config.grouping.clone().map(GroupBy::new);
        let table_output = config.output_table.is_some();
        let process = BatchProcess::new(config);
        let pass_through = table_output && dedup.is_none() && group_by.is_none() && !process.transforms();
        BatchProcessJob { process, settings, dedup, group_by, log, pass_through }
    }
}

impl RecordJob for BatchProcessJob {
    type Output = ProcessedRow;
    type Summary = BatchSummary;

    fn state_log(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The pure stages on one record: parse, filter, select, rename, the dedup key, the group input.
    ///
    /// When nothing reads or changes the rows and they go to a table (whose sink finds each column
    /// by field name), a record that is a JSON object goes out as its text: checked, not parsed into
    /// a `Value` and written again (a table copy's largest cost in the worker). Anything else takes
    /// the whole path, so its errors are the same.
    fn process(&self, record: &Record<String>) -> Result<Option<ProcessedRow>, ItemError> {
        let text = record.value.trim();
        if self.pass_through
            && text.starts_with('{')
            && let Ok(raw) = RawValue::from_string(text.to_owned())
        {
            let row = Row::Raw(raw);
            return Ok(Some(ProcessedRow {
                row,
                key: None,
                group: None,
                settings: Arc::clone(&self.settings),
            }));
        }
        let value = serde_json::from_str::<Value>(&record.value)
            .map_err(|error| ItemError::validation(format!("not a JSON value: {error}")))?;
        let Some(row) = self.process.process_record(value).map_err(|issue| item_error(&issue))? else {
            return Ok(None);
        };
        let key = match &self.dedup {
            Some(dedup) => Some(dedup.key(&row).map_err(|issue| item_error(&issue))?),
            None => None,
        };
        let group = match &self.group_by {
            Some(group_by) => Some(group_by.input(&row).map_err(|issue| item_error(&issue))?),
            None => None,
        };
        Ok(Some(ProcessedRow { row: Row::Value(row), key, group, settings: Arc::clone(&self.settings) }))
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

/// One output of the job: the row, written as one JSON line, and what the in-order step needs (its
/// dedup key, its group input).
#[derive(Debug)]
pub(super) struct ProcessedRow {
    row: Row,
    key: Option<DedupKey>,
    group: Option<GroupInput>,
    settings: Arc<Settings>,
}

impl Serialize for ProcessedRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.row {
            Row::Value(row) => row.serialize(serializer),
            Row::Raw(row) => row.serialize(serializer),
        }
    }
}

/// An output row: built (parsed, filtered, projected), or a record passed through as its text.
#[derive(Debug)]
enum Row {
    Value(Value),
    /// A JSON object's text, checked and unchanged.
    Raw(Box<RawValue>),
}

/// The job's in-order state and result: the dedup keys seen (kept in the state log, not in
/// checkpoints), the duplicates dropped, and the groups.
#[derive(Debug, Default)]
pub(super) struct BatchSummary {
    /// The hashes of the keys seen.
    seen: HashSet<u128>,
    duplicates: u64,
    /// Whether the task de-duplicates (known from the first row, or from the checkpoint).
    deduplicates: bool,
    group_by: Option<GroupBy>,
}

/// One state-log entry: a key hash as 32 hex digits and a newline.
const KEY_ENTRY_LEN: usize = 33;

/// A partition's group-input log entry: the row's dedup key hash (32 hex digits), when the task
/// de-duplicates, and its group input.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggedInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    group: GroupInput,
}

/// A key hash from its 32 hex digits.
fn parse_hash(digits: &[u8]) -> Option<u128> {
    if digits.len() != KEY_ENTRY_LEN - 1 {
        return None;
    }
    u128::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

impl BatchSummary {
    /// Takes a row's key hash in: `false` when it was seen before (a duplicate, counted), `true` when
    /// new; fails when it would be key number `max_keys + 1`.
    fn see(&mut self, hash: u128, max_keys: usize) -> Result<bool, TaskError> {
        self.deduplicates = true;
        if self.seen.contains(&hash) {
            self.duplicates += 1;
            return Ok(false);
        }
        if self.seen.len() >= max_keys {
            return Err(TaskError::from(&BatchProcessError::TooManyKeys { max_keys }));
        }
        self.seen.insert(hash);
        Ok(true)
    }
}

impl Summary<ProcessedRow> for BatchSummary {
    const SELECTS: bool = true;

    fn add(&mut self, _output: &ProcessedRow) {}

    fn admit(&mut self, output: &ProcessedRow, log: &mut Vec<u8>) -> Result<Admission, TaskError> {
        let settings = &output.settings;
        // A partition that groups logs each row's key with its group input, in one entry.
        let logs_inputs = settings.partition && settings.grouping.is_some();
        let mut key_hash = None;
        if let (Some(key), Some(config)) = (output.key, &settings.dedup) {
            let hash = key.hash();
            if !self.see(hash, config.max_keys)? {
                return Ok(Admission::Skip);
            }
            if !logs_inputs {
                let _infallible = std::io::Write::write_fmt(log, format_args!("{hash:032x}\n"));
            }
            key_hash = Some(hash);
        }
        let (Some(input), Some(config)) = (&output.group, &settings.grouping) else {
            return Ok(Admission::Write);
        };
        if logs_inputs {
            let entry =
                LoggedInput { key: key_hash.map(|hash| format!("{hash:032x}")), group: input.clone() };
            serde_json::to_writer(&mut *log, &entry).map_err(|error| {
                TaskError::new(ErrorCode::ProcessingError, format!("cannot log a group input: {error}"))
            })?;
            log.push(b'\n');
            return Ok(Admission::Absorb);
        }
        let group_by = self.group_by.get_or_insert_with(|| GroupBy::new(config.clone()));
        group_by.apply(input.clone()).map_err(|error| TaskError::from(&error))?;
        Ok(Admission::Absorb)
    }

    fn replay(&mut self, log: &mut dyn BufRead) -> Result<(), TaskError> {
        let mut entry = Vec::with_capacity(KEY_ENTRY_LEN);
        loop {
            entry.clear();
            let read = log.read_until(b'\n', &mut entry).map_err(|error| {
                TaskError::new(ErrorCode::StorageError, format!("cannot read the dedup key log: {error}"))
            })?;
            if read == 0 {
                return Ok(());
            }
            let damaged = || {
                TaskError::new(
                    ErrorCode::StorageError,
                    "the dedup key log holds an entry that is not a key hash",
                )
            };
            let line = entry.strip_suffix(b"\n").ok_or_else(damaged)?;
            let hash = if line.first() == Some(&b'{') {
                // A partition's group-input entry: only its key matters for resuming.
                let logged: LoggedInput = serde_json::from_slice(line).map_err(|_| damaged())?;
                match logged.key {
                    Some(key) => parse_hash(key.as_bytes()).ok_or_else(damaged)?,
                    None => continue,
                }
            } else {
                parse_hash(line).ok_or_else(damaged)?
            };
            self.seen.insert(hash);
            self.deduplicates = true;
        }
    }

    fn tail(&mut self, _log: &mut Vec<u8>) -> Result<Vec<ProcessedRow>, TaskError> {
        let Some(group_by) = &self.group_by else {
            return Ok(Vec::new());
        };
        let settings = Arc::new(Settings { dedup: None, grouping: None, partition: false });
        Ok(group_by
            .finish()
            .into_iter()
            .map(|row| ProcessedRow {
                row: Row::Value(row),
                key: None,
                group: None,
                settings: Arc::clone(&settings),
            })
            .collect())
    }

    fn finish(self, _counters: &batch_model::Counters) -> Result<Value, serde_json::Error> {
        let mut summary = serde_json::Map::new();
        if self.deduplicates {
            summary.insert(
                "dedup".to_owned(),
                json!({ "distinct_keys": self.seen.len(), "duplicates": self.duplicates }),
            );
        }
        if let Some(group_by) = &self.group_by {
            let rows = group_by.finish();
            summary.insert("groups".to_owned(), json!(rows.len()));
            summary.insert("rows_truncated".to_owned(), json!(rows.len() > SUMMARY_ROWS));
            summary.insert("rows".to_owned(), Value::Array(rows.into_iter().take(SUMMARY_ROWS).collect()));
        }
        Ok(Value::Object(summary))
    }
}

/// The summary as checkpoint state: the duplicates dropped, and the grouping settings (so that a
/// resumed run can finish even if it reads nothing more) with the groups. The keys seen are in the
/// state log.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSummary {
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    deduplicates: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grouping: Option<StoredGroups>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredGroups {
    group_by: Vec<String>,
    aggregates: Vec<String>,
    max_groups: usize,
    groups: GroupState,
}

impl Serialize for BatchSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let grouping = self.group_by.as_ref().map(|group_by| {
            let config = group_by.config();
            StoredGroups {
                group_by: config.group_by.iter().map(ToString::to_string).collect(),
                aggregates: config.aggregates.iter().map(spec_text).collect(),
                max_groups: config.max_groups,
                groups: group_by.state(),
            }
        });
        StoredSummary { duplicates: self.duplicates, deduplicates: self.deduplicates, grouping }
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BatchSummary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BatchSummary, D::Error> {
        let stored = StoredSummary::deserialize(deserializer)?;
        let group_by = match stored.grouping {
            None => None,
            Some(stored) => {
                let group_by = stored
                    .group_by
                    .iter()
                    .map(|text| {
                        FieldPath::parse(text)
                            .ok_or_else(|| serde::de::Error::custom(format!("bad path {text:?}")))
                    })
                    .collect::<Result<Vec<_>, D::Error>>()?;
                let aggregates = stored
                    .aggregates
                    .iter()
                    .map(|text| AggregateSpec::parse(text).map_err(serde::de::Error::custom))
                    .collect::<Result<Vec<_>, D::Error>>()?;
                let config = GroupConfig::new(group_by, aggregates).with_max_groups(stored.max_groups);
                Some(GroupBy::restore(config, &stored.groups).map_err(serde::de::Error::custom)?)
            }
        };
        Ok(BatchSummary {
            seen: HashSet::new(),
            duplicates: stored.duplicates,
            deduplicates: stored.deduplicates,
            group_by,
        })
    }
}

/// An aggregate spec as text that [`AggregateSpec::parse`] reads back to the same spec.
fn spec_text(spec: &AggregateSpec) -> String {
    match &spec.field {
        Some(field) => format!("{}={}:{field}", spec.name, spec.function.as_str()),
        None => format!("{}={}", spec.name, spec.function.as_str()),
    }
}
