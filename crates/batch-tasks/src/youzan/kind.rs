//! [`YouzanOrderKind`]: the `youzan_order` task kind, the per-record work of
//! [`YouzanProcessor`] run by the standard [`ChunkRunner`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use batch_model::{BatchConfig, Counters, ErrorCode, TaskError, TaskType};
use pump_core::source::Record;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::kind::{JobContext, JobOutcome, TaskKind};
use crate::records::{self, ChunkRunner, ItemError, RecordJob, RunnerOptions};
use crate::youzan::config::YouzanParams;
use crate::youzan::enrich::{EnrichedOrder, YouzanProcessor};
use crate::youzan::summary::{OrderTally, Summary};

/// The `youzan_order` kind: reads the trades of `input`, writes each valid one enriched to `output`
/// (one [`EnrichedOrder`] per JSON line) and each invalid one to `dead_letter`
/// ([`DeadLetterRecord`](crate::records::DeadLetterRecord), code `VALIDATION_ERROR`, the field named),
/// checkpointing per chunk, and completes with the [`Summary`] as its result.
///
/// Params ([`YouzanParams`]): `input`, `output`, optionally `dead_letter` (alias `dead_letters`;
/// default `<output's stem>.dead_letters.jsonl`), `rules` (a
/// `categories.json`-shaped file) and `provinces` (a `cn-provinces.csv`-shaped file) replacing the
/// compiled-in tables. The task's `concurrency` is the number of records processed at once.
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

    /// Checks the config, the params, the files (the input is readable, the output folders exist),
    /// and the `rules` and `provinces` files when given (read and compiled, so a bad table fails the
    /// task's creation, not its run).
    fn validate(&self, params: &serde_json::Value, config: &BatchConfig) -> Result<(), TaskError> {
        config.validate().map_err(|error| TaskError::from(&error))?;
        let params = YouzanParams::from_json(params).map_err(|error| TaskError::from(&error))?;
        params.check_files().map_err(|error| TaskError::from(&error))?;
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
        self.runner.run(Arc::new(YouzanJob::new(&params, processor)), &job).await
    }
}

/// The kind's [`RecordJob`]: its files and the compiled tables.
#[derive(Debug)]
pub struct YouzanJob {
    input: PathBuf,
    output: PathBuf,
    dead_letter: PathBuf,
    processor: YouzanProcessor,
}

impl YouzanJob {
    /// A job over these files with `processor`'s tables.
    pub fn new(params: &YouzanParams, processor: YouzanProcessor) -> YouzanJob {
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
    type Summary = Summary;

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
impl records::Summary<EnrichedLine> for Summary {
    fn add(&mut self, output: &EnrichedLine) {
        self.add_tally(&output.tally);
    }

    fn finish(mut self, counters: &Counters) -> Result<serde_json::Value, serde_json::Error> {
        self.invalid = counters.failed;
        serde_json::to_value(self)
    }
}
