//! [`YouzanOrderKind`]: the `youzan_order` task kind, the per-record work of
//! [`YouzanProcessor`] run by the standard [`ChunkRunner`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use batch_model::{BatchConfig, Counters, ErrorCode, TaskError, TaskType};
use pump_core::source::Record;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::kind::{JobContext, JobOutcome, PartitionResult, TaskKind};
use crate::records::{
    self, ChunkRunner, Endpoints, ItemError, JsonLinesFile, MergeTargets, Merged, RecordJob, RunnerOptions,
    TextLinesInput,
};
use crate::youzan::api::ApiParams;
use crate::youzan::config::YouzanParams;
use crate::youzan::enrich::{EnrichedOrder, YouzanProcessor};
use crate::youzan::error::YouzanError;
use crate::youzan::summary::{OrderTally, YouzanSummary};

/// The `youzan_order` kind: reads the trades of `input`, writes each valid one enriched to `output`
/// (one [`EnrichedOrder`] per JSON line) and each invalid one to `dead_letter`
/// ([`DeadLetterRecord`](crate::records::DeadLetterRecord), code `VALIDATION_ERROR`, the field named),
/// checkpointing per chunk, and completes with the [`YouzanSummary`] as its result.
///
/// Params ([`YouzanParams`]): `input`, `output`, optionally `dead_letter` (alias `dead_letters`;
/// default `<output's stem>.dead_letters.jsonl`), `rules` (a
/// `categories.json`-shaped file) and `provinces` (a `cn-provinces.csv`-shaped file) replacing the
/// compiled-in tables. The task's `concurrency` is the number of records processed at once.
///
/// # The input: a file or the API
///
/// `input` names a JSON-lines file, or the YouZan open API by its base URL
/// (`https://open.youzan.com`; any `http://` or `https://` URL is taken as the API's). For the API
/// the task lists the trades of a closed time window through `youzan.trades.sold.get`
/// ([`ApiParams`](crate::youzan::ApiParams): `token_file` or `token_env`, `start_created`,
/// `end_created`, and optionally `page_size`, `requests_per_second`, `api_version`,
/// `trade_status`); each listed trade is a record, numbered by its place in the listing, and each
/// checkpoint holds the page cursor ([`ApiCursor`](crate::youzan::ApiCursor)), so a resume asks for
/// the page it stopped in. Page requests keep to `requests_per_second`, each bounded by the task's
/// `timeout` and retried up to `max_retries` times on HTTP 429 (after its `Retry-After`), 5xx,
/// timeouts and dropped connections; a refused token fails the task with `PROCESSING_ERROR`. The
/// API input needs the crate's `youzan-api` feature (the `batch` command has it); without it such
/// a task is refused when it is created.
///
/// # Partitions
///
/// A file input can be split: with `partitions` > 1 the task's input is cut at line starts into at
/// most that many ranges of about equal size (one pass counting newlines), each run as a
/// partition of its own (`input_range`, set by the split, numbers its lines as in the whole file)
/// writing `<output stem>.partition-<i>-of-<n>.jsonl` and its dead letters beside the task's files.
/// The merge concatenates the partitions' files in order (nothing is parsed again): the first
/// partition's output becomes the start of the task's (renamed, after a checkpoint recording it),
/// the others are appended in the kernel; and it adds their summaries: the output, dead letters
/// and summary of one run over the whole file. The API input is not split.
///
/// ```
/// use batch_model::{BatchConfig, ErrorCode, TaskType};
/// use batch_tasks::TaskKind;
/// use batch_tasks::youzan::YouzanOrderKind;
///
/// let kind = YouzanOrderKind::default();
/// assert_eq!(kind.task_type(), TaskType::YouzanOrder);
/// let params = serde_json::json!({ "input": "/no/such/trades.jsonl", "output": "enriched.jsonl" });
/// let error = kind.validate(&params, &BatchConfig::default()).unwrap_err();
/// assert_eq!(error.code, ErrorCode::ConfigurationError);
/// assert_eq!(error.details["param"], "input");
/// assert_eq!(error.message, "invalid parameter input: cannot read /no/such/trades.jsonl: No such file or directory");
/// ```
#[derive(Debug, Clone, Default)]
pub struct YouzanOrderKind {
    runner: ChunkRunner,
}

impl YouzanOrderKind {
    /// The kind, running records with `options` (backoff, chunk wait).
    pub fn with_runner_options(options: RunnerOptions) -> YouzanOrderKind {
        YouzanOrderKind { runner: ChunkRunner::new(options) }
    }
}

#[async_trait]
impl TaskKind for YouzanOrderKind {
    fn task_type(&self) -> TaskType {
        TaskType::YouzanOrder
    }

    fn spec(&self) -> crate::KindSpec {
        crate::youzan::params::spec()
    }

    /// Checks the config, the params, the files (the input is readable, and a regular file when the
    /// task is split into partitions; the output folders exist),
    /// and the `rules` and `provinces` files when given (read and compiled, so a bad table fails the
    /// task's creation, not its run).
    fn validate(&self, params: &serde_json::Value, config: &BatchConfig) -> Result<(), TaskError> {
        config.validate().map_err(|error| TaskError::from(&error))?;
        let params = YouzanParams::from_json(params).map_err(|error| TaskError::from(&error))?;
        params.check_files().map_err(|error| TaskError::from(&error))?;
        if params.api.is_some() {
            api_available().map_err(|error| TaskError::from(&error))?;
        }
        if config.partitions > 1 {
            let splittable = match &params.api {
                Some(_) => Err("the YouZan API input cannot be split; read it in one task".to_owned()),
                None => records::check_splittable(&params.input),
            };
            splittable.map_err(|reason| {
                TaskError::from(&YouzanError::InvalidParam { param: "partitions".to_owned(), reason })
            })?;
        }
        params.processor().map_err(|error| TaskError::from(&error))?;
        Ok(())
    }

    async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        let params = YouzanParams::from_json(job.params()).map_err(|error| TaskError::from(&error))?;
        // The tables are small, but reading them is still blocking file I/O.
        let loading = params.clone();
        let processor = tokio::task::spawn_blocking(move || loading.processor())
            .await
            .map_err(|error| {
                TaskError::new(ErrorCode::ProcessingError, format!("loading the tables failed: {error}"))
            })?
            .map_err(|error| TaskError::from(&error))?;
        let work = Arc::new(YouzanJob::new(&params, processor));
        if let Some(api) = &params.api {
            return self.run_api(api, &params, work, &job).await;
        }
        match params.input_range {
            None => self.runner.run(work, &job).await,
            Some(range) => {
                let endpoints = Endpoints {
                    source: TextLinesInput::new(&params.input).keep_blank_lines(true).range(range),
                    output: JsonLinesFile::new(&params.output, "output"),
                    dead_letters: JsonLinesFile::new(&params.dead_letter, "dead-letter file"),
                };
                self.runner.run_with(work, endpoints, &job).await
            }
        }
    }

    /// The input is a file of lines: it can be split at line starts.
    fn can_partition(&self) -> bool {
        true
    }

    /// Splits the input into at most `partitions` ranges of about equal size at line starts (one
    /// pass counting newlines, nothing parsed). Each partition writes its own files beside the
    /// task's, named after its place (`orders.partition-2-of-4.jsonl`), and numbers its lines as in
    /// the whole input.
    async fn split(&self, job: &JobContext, partitions: u32) -> Result<Vec<serde_json::Value>, TaskError> {
        let params = YouzanParams::from_json(job.params()).map_err(|error| TaskError::from(&error))?;
        if params.api.is_some() {
            let reason = "the YouZan API input cannot be split; read it in one task".to_owned();
            return Err(TaskError::from(&YouzanError::InvalidParam {
                param: "partitions".to_owned(),
                reason,
            }));
        }
        let (input, within) = (params.input.clone(), params.input_range.unwrap_or_default());
        let ranges = blocking("splitting the input", move || {
            records::split_lines(&input, within, partitions).map_err(|error| error.to_task_error())
        })
        .await?;
        let count = u32::try_from(ranges.len()).unwrap_or(u32::MAX);
        let mut children = Vec::with_capacity(ranges.len());
        for (index, range) in (0..).zip(ranges) {
            let mut child = job.params().as_object().cloned().unwrap_or_default();
            child.remove("dead_letters");
            child.insert(
                "output".to_owned(),
                json_path(&records::partition_path(&params.output, index, count)),
            );
            child.insert(
                "dead_letter".to_owned(),
                json_path(&records::partition_path(&params.dead_letter, index, count)),
            );
            child.insert("input_range".to_owned(), serde_json::to_value(range).unwrap_or_default());
            children.push(serde_json::Value::Object(child));
        }
        Ok(children)
    }

    /// Concatenates the partitions' outputs and dead-letter files in order (nothing is parsed
    /// again: the first output adopted by [`MergeFile::adopt_file`](records::MergeFile::adopt_file),
    /// the rest copied in the kernel) and adds their summaries: exactly what one run over the whole
    /// input writes and sums.
    async fn merge(
        &self,
        job: JobContext,
        partitions: Vec<PartitionResult>,
    ) -> Result<JobOutcome, TaskError> {
        let params = YouzanParams::from_json(job.params()).map_err(|error| TaskError::from(&error))?;
        let mut parts = Vec::with_capacity(partitions.len());
        let mut summary = YouzanSummary::default();
        let mut counters = Counters::default();
        for partition in &partitions {
            let child =
                YouzanParams::from_json(&partition.task.params).map_err(|error| TaskError::from(&error))?;
            let part: YouzanSummary = serde_json::from_value(partition.result.clone()).map_err(|error| {
                TaskError::new(
                    ErrorCode::StorageError,
                    format!(
                        "the result of partition task {} is not a youzan_order summary: {error}",
                        partition.task.id
                    ),
                )
            })?;
            summary.merge(&part);
            let progress = &partition.task.progress;
            counters.processed += progress.processed;
            counters.failed += progress.failed;
            counters.skipped += progress.skipped;
            parts.push((child.output, child.dead_letter));
        }
        let targets = MergeTargets {
            output: params.output,
            dead_letters: params.dead_letter,
            partition_files: parts.iter().flat_map(|(output, dead)| [output.clone(), dead.clone()]).collect(),
        };
        let summary = serde_json::to_value(&summary).map_err(|error| {
            TaskError::new(ErrorCode::ProcessingError, format!("cannot write the summary: {error}"))
        })?;
        records::merge_partitions(&job, targets, move |output, dead_letters| {
            for (index, (part_output, part_dead_letters)) in parts.iter().enumerate() {
                // The first partition's output is the start of the task's: adopted, not copied.
                if index == 0 { output.adopt_file(part_output) } else { output.append_file(part_output) }
                    .map_err(|error| error.to_task_error())?;
                dead_letters.append_file(part_dead_letters).map_err(|error| error.to_task_error())?;
            }
            Ok(Merged { counters, summary })
        })
        .await
    }
}

impl YouzanOrderKind {
    /// A run reading the YouZan API (see [`YouzanApiInput`](crate::youzan::YouzanApiInput)).
    #[cfg(feature = "youzan-api")]
    async fn run_api(
        &self,
        api: &ApiParams,
        params: &YouzanParams,
        work: Arc<YouzanJob>,
        job: &JobContext,
    ) -> Result<JobOutcome, TaskError> {
        let token = api.read_token().map_err(|error| TaskError::from(&error))?;
        let client = crate::youzan::api::ApiClient::new(api, &token, job.config(), self.runner.options())
            .map_err(|failure| records::RunError::Source(failure).to_task_error())?;
        let endpoints = Endpoints {
            source: crate::youzan::YouzanApiInput::new(client, api.page_size, api.requests_per_second),
            output: JsonLinesFile::new(&params.output, "output"),
            dead_letters: JsonLinesFile::new(&params.dead_letter, "dead-letter file"),
        };
        self.runner.run_with(work, endpoints, job).await
    }

    /// Without the `youzan-api` feature: refused.
    #[cfg(not(feature = "youzan-api"))]
    async fn run_api(
        &self,
        _api: &ApiParams,
        _params: &YouzanParams,
        _work: Arc<YouzanJob>,
        _job: &JobContext,
    ) -> Result<JobOutcome, TaskError> {
        api_available().map_err(|error| TaskError::from(&error))?;
        Ok(JobOutcome::Stopped)
    }
}

/// Whether this build can read the YouZan API.
fn api_available() -> Result<(), YouzanError> {
    if cfg!(feature = "youzan-api") {
        return Ok(());
    }
    Err(YouzanError::InvalidParam {
        param: "input".to_owned(),
        reason: "reading the YouZan open API needs batch-tasks built with its youzan-api feature (the batch \
                 command has it)"
            .to_owned(),
    })
}

/// A path as a JSON string param.
fn json_path(path: &Path) -> serde_json::Value {
    serde_json::Value::String(path.to_string_lossy().into_owned())
}

/// Runs `work` on the blocking pool; a panic there is a `PROCESSING_ERROR` naming `what`.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, TaskError> + Send + 'static,
) -> Result<T, TaskError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|error| {
        Err(TaskError::new(ErrorCode::ProcessingError, format!("{what} failed: {error}")))
    })
}

/// The kind's [`RecordJob`]: its files and the compiled tables.
#[derive(Debug)]
pub(super) struct YouzanJob {
    input: PathBuf,
    output: PathBuf,
    dead_letter: PathBuf,
    processor: YouzanProcessor,
}

impl YouzanJob {
    /// A job over these files with `processor`'s tables.
    pub(super) fn new(params: &YouzanParams, processor: YouzanProcessor) -> YouzanJob {
        YouzanJob {
            input: params.input.clone(),
            output: params.output.clone(),
            dead_letter: params.dead_letter.clone(),
            processor,
        }
    }
}

impl RecordJob for YouzanJob {
    type Output = EnrichedLine;
    type Summary = YouzanSummary;

    fn input(&self) -> &Path {
        &self.input
    }

    fn output(&self) -> &Path {
        &self.output
    }

    fn dead_letters(&self) -> &Path {
        &self.dead_letter
    }

    /// A blank line is an invalid record (`FORMAT.md`), reported with its line number.
    fn keep_blank_lines(&self) -> bool {
        true
    }

    fn process(&self, record: &Record<String>) -> Result<Option<EnrichedLine>, ItemError> {
        match self.processor.process_line(&record.value) {
            Ok(order) => EnrichedLine::new(order).map(Some),
            Err(issue) => Err(ItemError::validation(issue.message).with_field(issue.field)),
        }
    }
}

/// An enriched order with its JSON already written, and what it adds to the summary.
///
/// The serial part of a run (writing, summing) is what limits its speed-up with `concurrency`, so
/// the workers do everything they can: they serialise the order and reduce it to its tally, and the
/// chunk writer only copies bytes and adds a few numbers.
#[derive(Debug, Clone)]
pub struct EnrichedLine {
    json: Box<RawValue>,
    tally: OrderTally,
}

impl EnrichedLine {
    /// Serialises `order`. Fails (`PROCESSING_ERROR`) only if serialisation does, which an
    /// `EnrichedOrder` (string keys, plain values) never does.
    pub fn new(order: EnrichedOrder) -> Result<EnrichedLine, ItemError> {
        match serde_json::value::to_raw_value(&order) {
            Ok(json) => Ok(EnrichedLine { json, tally: OrderTally::from(order) }),
            Err(error) => Err(ItemError::processing(format!("cannot write the order as JSON: {error}"))),
        }
    }

    /// The order's JSON, as it is written.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

impl Serialize for EnrichedLine {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

/// The summary the runner keeps in each checkpoint: valid orders as they are written; the invalid
/// count, which only the runner's counters know, is filled in at the end.
impl records::Summary<EnrichedLine> for YouzanSummary {
    fn add(&mut self, output: &EnrichedLine) {
        self.add_tally(&output.tally);
    }

    fn finish(mut self, counters: &Counters) -> Result<serde_json::Value, serde_json::Error> {
        self.invalid = counters.failed;
        serde_json::to_value(self)
    }
}
