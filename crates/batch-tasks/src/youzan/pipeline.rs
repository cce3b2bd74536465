//! One pass over a trade file with pump-core: `text_lines` → `map_blocking(process_line)` → two
//! JSON-lines writers (enriched orders, dead letters) and the [`Summary`].
//!
//! This is the kind's work without checkpoints: the benchmark's subject and the end-to-end tests'.
//! The resumable task runs the same per-record work through the chunk runner.
//!
//! # Where the work happens
//!
//! The reader thread splits lines; the `map_blocking` workers parse, validate, enrich *and
//! serialise* each record, so that the only serial stage left (the sink) copies bytes into the
//! writers' buffers and adds to the summary. With serialisation in the sink, a second worker would
//! speed the pass up far less.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use pump_core::prelude::*;
use pump_core::sink::{JsonLinesWriter, RecordWriter};
use pump_core::source::{Record, RecordError};
use serde_json::value::RawValue;

use crate::youzan::dead_letter::DeadLetterRecord;
use crate::youzan::enrich::{EnrichedOrder, YouzanProcessor};
use crate::youzan::error::{YouzanError, YouzanIssue};
use crate::youzan::summary::Summary;

/// The files and the parallelism of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePass {
    /// The JSON-lines file of trades.
    pub input: PathBuf,
    /// Where the enriched orders go (created or truncated).
    pub output: PathBuf,
    /// Where the dead letters go (created or truncated).
    pub dead_letter: PathBuf,
    /// How many records are processed at once (`map_blocking` workers).
    pub parallelism: NonZeroUsize,
}

/// One record after the per-record work: what to write, and what to count.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "most records are valid: boxing the order would add an allocation to the common case"
)]
pub enum Processed {
    /// A valid record: the order (for the summary) and its serialised JSON (for the output).
    Valid {
        /// The enriched order.
        order: EnrichedOrder,
        /// `order` serialised, without a newline.
        json: Box<RawValue>,
    },
    /// An invalid record, as its dead letter.
    Invalid(DeadLetterRecord),
}

impl YouzanProcessor {
    /// The per-record work of a pass over a file: [`process_line`](YouzanProcessor::process_line)
    /// on a line the source read (a line it could not read becomes a dead letter too), and the
    /// result serialised.
    pub fn process_record(&self, record: Result<Record<String>, RecordError>) -> Processed {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let issue = YouzanIssue::unreadable(&error);
                return Processed::Invalid(DeadLetterRecord::new(
                    error.line,
                    error.offset,
                    error.raw,
                    &issue,
                ));
            }
        };
        match self.process_line(&record.value) {
            Ok(order) => match serde_json::value::to_raw_value(&order) {
                Ok(json) => Processed::Valid { order, json },
                // An enriched order has only string keys and no failing `Serialize`: unreachable in
                // practice, and still not a reason to lose the record.
                Err(error) => {
                    let issue = YouzanIssue::record(
                        crate::youzan::error::IssueKind::InvalidJson,
                        format_args!("cannot be written as JSON: {error}"),
                    );
                    Processed::Invalid(DeadLetterRecord::new(
                        record.line,
                        record.offset,
                        record.value,
                        &issue,
                    ))
                }
            },
            Err(issue) => {
                Processed::Invalid(DeadLetterRecord::new(record.line, record.offset, record.value, &issue))
            }
        }
    }
}

/// Runs one pass: reads `pass.input`, writes every valid record enriched to `pass.output` and every
/// invalid one to `pass.dead_letter` (both in input order), and returns the summary.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::num::NonZeroUsize;
/// use std::sync::Arc;
/// use batch_tasks::youzan::generator::{GeneratorConfig, generate};
/// use batch_tasks::youzan::pipeline::{FilePass, process_file};
/// use batch_tasks::youzan::YouzanProcessor;
///
/// let dir = tempfile::tempdir().unwrap();
/// let input = dir.path().join("trades.jsonl");
/// let config = GeneratorConfig { count: 200, seed: 1, invalid_ratio: 0.1 };
/// let stats = generate(&config, std::fs::File::create(&input).unwrap()).unwrap();
/// let pass = FilePass {
///     input,
///     output: dir.path().join("enriched.jsonl"),
///     dead_letter: dir.path().join("invalid.jsonl"),
///     parallelism: NonZeroUsize::MIN,
/// };
/// let summary = process_file(Arc::new(YouzanProcessor::with_defaults()), &pass).await.unwrap();
/// assert_eq!(summary, stats.expected);
/// assert_eq!(std::fs::read_to_string(&pass.dead_letter).unwrap().lines().count(), 20);
/// # }
/// ```
pub async fn process_file(processor: Arc<YouzanProcessor>, pass: &FilePass) -> Result<Summary, YouzanError> {
    let output = JsonLinesWriter::<Box<RawValue>>::create(&pass.output)
        .map_err(|source| YouzanError::Write { param: "output", source })?;
    let dead_letters = JsonLinesWriter::<DeadLetterRecord>::create(&pass.dead_letter)
        .map_err(|source| YouzanError::Write { param: "dead_letter", source })?;
    let state = PassState { output, dead_letters, summary: Summary::default(), error: None };
    let outcome = source::text_lines(&pass.input)
        .keep_blank_lines()
        .map_blocking(pass.parallelism, move |record| processor.process_record(record))
        .to(sink::fold(state, |mut state: PassState, processed: Processed| {
            state.take(processed);
            state
        }))
        .run()
        .await
        .map_err(YouzanError::Pipeline)?;
    outcome.value.finish()
}

/// The sink's side of a pass.
struct PassState {
    output: JsonLinesWriter<Box<RawValue>>,
    dead_letters: JsonLinesWriter<DeadLetterRecord>,
    summary: Summary,
    /// The first write failure; nothing is written after it.
    error: Option<YouzanError>,
}

impl PassState {
    fn take(&mut self, processed: Processed) {
        if self.error.is_some() {
            return;
        }
        let written = match processed {
            Processed::Valid { order, json } => {
                self.summary.add(&order);
                self.output.write(&json).map_err(|source| YouzanError::Write { param: "output", source })
            }
            Processed::Invalid(dead_letter) => {
                self.summary.add_invalid();
                self.dead_letters
                    .write(&dead_letter)
                    .map_err(|source| YouzanError::Write { param: "dead_letter", source })
            }
        };
        if let Err(error) = written {
            self.error = Some(error);
        }
    }

    fn finish(mut self) -> Result<Summary, YouzanError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        self.output.flush().map_err(|source| YouzanError::Write { param: "output", source })?;
        self.dead_letters.flush().map_err(|source| YouzanError::Write { param: "dead_letter", source })?;
        Ok(self.summary)
    }
}
