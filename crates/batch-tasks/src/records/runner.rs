//! The chunk runner: the records pipeline (read, process in order, cut chunks) and its sink, which
//! writes each chunk, makes it durable, then commits its checkpoint.

use std::fs::File;
use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use batch_model::{Counters, Durability, Progress, TaskError};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use pump_core::StageContext;
use pump_core::flow::MapBlocking;
use pump_core::sink::{JsonLinesWriter, RecordWriter, WriteError};
use pump_core::source::{FilePosition, text_lines};
use pump_core::{CancellationToken, Graph, PipelineError, RunOutcome, Sink, Source, SourceExt as _};

use super::attempt::{Chunk, Outcome, attempt_chunk, settle_async, settle_chunk};
use super::config::{RetrySchedule, RunnerOptions};
use super::dead_letter::DeadLetterRecord;
use super::error::RunError;
use super::job::{Execution, RecordJob, Summary};
use super::position::{SinkPosition, resume_point};
use crate::kind::{JobContext, JobControl, JobOutcome};

/// Runs [`RecordJob`]s: the standard chunk model. See the [module docs](super) for what a run does and
/// what it guarantees.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use batch_tasks::{JobContext, JobOutcome};
/// # use batch_tasks::records::{ChunkRunner, RecordJob, RunnerOptions};
/// # async fn run_kind<J: RecordJob>(job: J, context: JobContext) -> Result<JobOutcome, batch_model::TaskError> {
/// // Inside a `TaskKind::run`: build the job from the task's params, then hand it to the runner.
/// ChunkRunner::new(RunnerOptions::default()).run(Arc::new(job), &context).await
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChunkRunner {
    options: RunnerOptions,
}

impl ChunkRunner {
    /// A runner with `options`.
    pub fn new(options: RunnerOptions) -> ChunkRunner {
        ChunkRunner { options }
    }

    /// The runner's options.
    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    /// Runs `job` for the task in `context`, from its last checkpoint (or the start) to the end of the
    /// input, a stop request, or a failure; the failure as the task will record it
    /// ([`RunError::to_task_error`]).
    pub async fn run<J: RecordJob>(
        &self,
        job: Arc<J>,
        context: &JobContext,
    ) -> Result<JobOutcome, TaskError> {
        self.try_run(job, context).await.map_err(|error| error.to_task_error())
    }

    /// [`run`](ChunkRunner::run), with the failure as a [`RunError`].
    ///
    /// Cancel safety: dropping the future leaves the files and the store consistent (a resume truncates
    /// what the last checkpoint does not cover), but cancel through the job's cancellation token
    /// instead, so that in-flight work is aborted.
    pub async fn try_run<J: RecordJob>(
        &self,
        job: Arc<J>,
        context: &JobContext,
    ) -> Result<JobOutcome, RunError> {
        check_paths(&*job)?;
        let config = context.config().clone();
        let control = Arc::clone(context.control());
        let token = control.cancellation_token();
        if token.is_cancelled() {
            return Err(RunError::Aborted);
        }
        if control.stop_requested() {
            return Ok(JobOutcome::Stopped);
        }
        let resume = resume_point::<J>(context.checkpoint())?;
        let durable = config.durability == Durability::PowerLoss;
        let (output, dead_letters) = open_writers(&*job, resume.sink, durable)?;
        let started_at = context.task().started_at.unwrap_or_else(Utc::now);
        tracing::debug!(
            task_id = %context.task().id,
            sequence = resume.sequence,
            position = %resume.source,
            "records run starts"
        );
        let sink = ChunkSink::<J> {
            token: token.clone(),
            control,
            output,
            dead_letters,
            durable,
            sequence: resume.sequence,
            counters: resume.counters,
            summary: resume.summary,
            skip_limit: config.skip_limit,
            input_len: std::fs::metadata(job.input()).ok().map(|metadata| metadata.len()),
            started_at,
            pending: None,
        };
        let schedule = Arc::new(RetrySchedule::new(&config, &self.options));
        let concurrency = non_zero(config.concurrency);
        let chunk_size = non_zero(config.batch_size);
        let max_wait = self.options.chunk_max_wait;
        let source = text_lines(job.input()).start_at(resume.source);
        let source = if job.keep_blank_lines() { source.keep_blank_lines() } else { source };
        let ended = match job.execution() {
            Execution::Blocking => {
                // Records are cut into chunks first, so each hand-off to a worker thread carries whole
                // chunks: the worker attempts every record, settles those that need no retry and
                // renders their outputs, and this task only moves chunks. About 8192 records per
                // hand-off at most, as for a plain `map_blocking`.
                let per_hand_off = non_zero(u32::try_from(HAND_OFF_RECORDS / chunk_size.get()).unwrap_or(1));
                let attempt = {
                    let (job, schedule) = (Arc::clone(&job), Arc::clone(&schedule));
                    move |batch| attempt_chunk(&*job, &schedule, batch)
                };
                let settle = {
                    let job = Arc::clone(&job);
                    move |chunk| {
                        settle_chunk(Arc::clone(&job), Arc::clone(&schedule), concurrency.get(), chunk)
                    }
                };
                let graph = source
                    .batch(chunk_size, max_wait)
                    .via(MapBlocking::new(concurrency, attempt).max_chunk(per_hand_off))
                    .map_async(concurrency, settle)
                    .to(sink)
                    .named("records");
                drive(graph, &token).await
            }
            Execution::Async => {
                let settle = {
                    let job = Arc::clone(&job);
                    move |element| settle_async(Arc::clone(&job), Arc::clone(&schedule), element)
                };
                let graph = source
                    .map_async(concurrency, settle)
                    .batch(chunk_size, max_wait)
                    .filter_map(Chunk::from_settled)
                    .to(sink)
                    .named("records");
                drive(graph, &token).await
            }
        };
        match ended {
            Ok(outcome) => match outcome.value {
                SinkEnd::Completed { counters, summary } => {
                    let summary = summary.finish(&counters).map_err(|source| RunError::Summary { source })?;
                    let mut progress = progress_of(&counters, None, started_at);
                    progress.total = Some(progress.done());
                    progress.percentage = Some(100.0);
                    Ok(JobOutcome::Completed { summary, progress })
                }
                SinkEnd::Stopped => Ok(JobOutcome::Stopped),
                SinkEnd::Failed(error) => Err(error),
            },
            Err(_) if token.is_cancelled() => Err(RunError::Aborted),
            Err(PipelineError::Aborted) => Err(RunError::Aborted),
            // The sink reports its own failures as values: an I/O error of the run is the source's.
            Err(source @ PipelineError::Io { .. }) => {
                Err(RunError::Read { path: job.input().to_owned(), source })
            }
            Err(source) => Err(RunError::Pipeline { source }),
        }
    }
}

/// The most records a blocking kind hands to a worker thread at once (in whole chunks).
const HAND_OFF_RECORDS: usize = 8192;

/// `value` as a `NonZeroUsize`, 1 if it is 0 (validated configs never have a zero).
fn non_zero(value: u32) -> NonZeroUsize {
    usize::try_from(value).ok().and_then(NonZeroUsize::new).unwrap_or(NonZeroUsize::MIN)
}

/// Runs `graph`, aborting it (pump-core's `RunControls::abort`) when `token` is cancelled.
async fn drive<Src, Snk>(
    graph: Graph<Src, Snk>,
    token: &CancellationToken,
) -> Result<RunOutcome<Snk::Output>, PipelineError>
where
    Src: Source,
    Snk: Sink<Src::Item>,
{
    let controls = graph.controls();
    let run = graph.run();
    let mut run = std::pin::pin!(run);
    tokio::select! {
        biased;
        outcome = &mut run => outcome,
        () = token.cancelled() => {
            controls.abort();
            run.await
        }
    }
}

/// The input, output and dead-letter file must be three different paths.
fn check_paths<J: RecordJob>(job: &J) -> Result<(), RunError> {
    let files = [("input", job.input()), ("output", job.output()), ("dead-letter file", job.dead_letters())];
    for (idx, (first, first_path)) in files.iter().enumerate() {
        for (second, second_path) in &files[idx + 1..] {
            if first_path == second_path {
                return Err(RunError::SamePath { first, second, path: first_path.to_path_buf() });
            }
        }
    }
    Ok(())
}

/// Opens both writers at the checkpoint's lengths, after checking that neither file is shorter than
/// its checkpoint (so that a refused resume leaves both files untouched).
fn open_writers<J: RecordJob>(
    job: &J,
    sink: SinkPosition,
    durable: bool,
) -> Result<(JsonLinesWriter<J::Output>, JsonLinesWriter<DeadLetterRecord>), RunError> {
    check_length("output", job.output(), sink.output)?;
    check_length("dead-letter file", job.dead_letters(), sink.dead_letters)?;
    let output = JsonLinesWriter::resume(job.output(), sink.output)
        .map_err(|source| resume_error("output", source))?;
    let dead_letters = JsonLinesWriter::resume(job.dead_letters(), sink.dead_letters)
        .map_err(|source| resume_error("dead-letter file", source))?;
    if durable {
        // A file created now survives power loss only once its directory entry is on the disk too.
        sync_parent("output", job.output())?;
        sync_parent("dead-letter file", job.dead_letters())?;
    }
    Ok((output, dead_letters))
}

/// Refuses a file shorter than `expected` (a missing file has length 0).
fn check_length(file: &'static str, path: &Path, expected: u64) -> Result<(), RunError> {
    if expected == 0 {
        return Ok(());
    }
    let actual = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(RunError::Write { file, source: WriteError::Io { path: path.to_owned(), source } });
        }
    };
    if actual < expected {
        return Err(RunError::ShorterThanCheckpoint { file, path: path.to_owned(), expected, actual });
    }
    Ok(())
}

fn resume_error(file: &'static str, source: WriteError) -> RunError {
    match source {
        WriteError::ShorterThanCheckpoint { path, expected, actual } => {
            RunError::ShorterThanCheckpoint { file, path, expected, actual }
        }
        source => RunError::Write { file, source },
    }
}

fn sync_parent(file: &'static str, path: &Path) -> Result<(), RunError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent).and_then(|directory| directory.sync_all()).map_err(|source| RunError::Write {
        file,
        source: WriteError::Io { path: parent.to_owned(), source },
    })
}

/// The expected number of records in the whole input, from the records done so far and how far
/// into the file they reach (`offset`, of `input_len` bytes): a straight-line estimate, exact once
/// the end is reached. Counting the lines instead would read the whole input a second time, which
/// costs as much as a worker on a 2-core machine. `None` before anything is done.
fn estimated_total(done: u64, offset: u64, input_len: Option<u64>) -> Option<u64> {
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

/// A task's progress from its counters; `total` when known.
fn progress_of(counters: &Counters, total: Option<u64>, started_at: DateTime<Utc>) -> Progress {
    let elapsed = (Utc::now() - started_at).to_std().unwrap_or_default();
    Progress::compute(total, counters.processed, counters.failed, counters.skipped, elapsed)
}

/// How the sink ended.
enum SinkEnd<S> {
    /// The input is exhausted and every chunk committed.
    Completed { counters: Counters, summary: S },
    /// A stop was requested; the last chunk is committed.
    Stopped,
    /// A write, commit or skip-limit failure.
    Failed(RunError),
}

/// Writes chunks, makes them durable, commits their checkpoints.
struct ChunkSink<J: RecordJob> {
    /// Checked before each chunk, so that an abort is prompt even when the pipeline never waits.
    token: CancellationToken,
    control: Arc<dyn JobControl>,
    output: JsonLinesWriter<J::Output>,
    dead_letters: JsonLinesWriter<DeadLetterRecord>,
    durable: bool,
    sequence: u64,
    counters: Counters,
    summary: J::Summary,
    skip_limit: Option<u64>,
    /// The input's length, for progress estimates (`None` if it could not be read: the run says why).
    input_len: Option<u64>,
    started_at: DateTime<Utc>,
    /// The last checkpoint's commit, while the store works on it.
    pending: Option<PendingCommit>,
}

/// A checkpoint commit in flight: its sequence and the store's answer.
type PendingCommit = Pin<Box<dyn Future<Output = (u64, Result<(), TaskError>)> + Send>>;

impl<J: RecordJob> ChunkSink<J> {
    /// Writes one chunk, flushes (or syncs) both files, waits for the previous checkpoint's commit,
    /// starts this one's, then checks the skip limit and the stop flag. `Some` ends the run.
    ///
    /// The commit is left in flight: the store works on it while the pipeline brings the next chunk
    /// ([`consume`](Sink::consume) polls both), so a commit's round trip is not on the pipeline's
    /// path. One commit at a time, in sequence order; a crash meanwhile is covered like any other
    /// (the output may run ahead of the last committed checkpoint, and a resume truncates it).
    async fn write_chunk(
        &mut self,
        chunk: Chunk<J::Output>,
    ) -> Result<Option<SinkEnd<J::Summary>>, RunError> {
        if self.token.is_cancelled() {
            return Err(RunError::Aborted);
        }
        let Chunk { items, end, rendered, dead_letters, retries: _ } = chunk;
        if items.is_empty() {
            return Ok(None);
        }
        let (processed_before, failed_before) = (self.counters.processed, self.counters.failed);
        for item in items {
            self.counters.retried += u64::from(item.retries);
            match item.outcome {
                Outcome::Output(output) => {
                    if rendered.is_none() {
                        self.output
                            .write(&output)
                            .map_err(|source| RunError::Write { file: "output", source })?;
                    }
                    self.summary.add(&output);
                    self.counters.processed += 1;
                }
                Outcome::Skipped => self.counters.skipped += 1,
                Outcome::Failed { error, raw } => {
                    if dead_letters.is_none() {
                        let record = DeadLetterRecord::new(item.line, item.offset, error, raw);
                        self.dead_letters
                            .write(&record)
                            .map_err(|source| RunError::Write { file: "dead-letter file", source })?;
                    }
                    self.counters.failed += 1;
                }
            }
        }
        // Lines the workers rendered go in whole, counted by the loop above.
        if let Some(lines) = &rendered {
            self.output
                .write_rendered(lines, self.counters.processed - processed_before)
                .map_err(|source| RunError::Write { file: "output", source })?;
        }
        if let Some(lines) = &dead_letters {
            self.dead_letters
                .write_rendered(lines, self.counters.failed - failed_before)
                .map_err(|source| RunError::Write { file: "dead-letter file", source })?;
        }
        let sink = self.make_durable(self.counters.failed > failed_before)?;
        self.sequence += 1;
        let checkpoint = batch_model::Checkpoint {
            sequence: self.sequence,
            source: position_json(end),
            sink: serde_json::json!({ "output": sink.output, "dead_letters": sink.dead_letters }),
            counters: self.counters,
            state: serde_json::to_value(&self.summary).map_err(|source| RunError::Summary { source })?,
            committed_at: Utc::now(),
        };
        let done = self.counters.processed + self.counters.failed + self.counters.skipped;
        let total = estimated_total(done, end.offset, self.input_len);
        let progress = progress_of(&self.counters, total, self.started_at);
        self.land_commit().await?;
        let (control, sequence) = (Arc::clone(&self.control), self.sequence);
        self.pending = Some(Box::pin(async move { (sequence, control.commit(checkpoint, progress).await) }));
        tracing::trace!(sequence = self.sequence, position = %end, "chunk written, commit started");
        if let Some(limit) = self.skip_limit
            && self.counters.failed > limit
        {
            self.land_commit().await?;
            return Err(RunError::SkipLimit { failed: self.counters.failed, limit });
        }
        if self.control.stop_requested() {
            self.land_commit().await?;
            return Ok(Some(SinkEnd::Stopped));
        }
        Ok(None)
    }

    /// Waits for the commit in flight, if any.
    async fn land_commit(&mut self) -> Result<(), RunError> {
        match self.pending.take() {
            Some(pending) => committed(pending.await),
            None => Ok(()),
        }
    }

    /// Hands both files' new bytes to the operating system (durability `process`) or to the disk
    /// (`power_loss`; the dead-letter file only if it grew), and returns their committed lengths.
    fn make_durable(&mut self, dead_letters_grew: bool) -> Result<SinkPosition, RunError> {
        let output = if self.durable { self.output.sync() } else { self.output.flush() }
            .map_err(|source| RunError::Write { file: "output", source })?;
        let dead_letters = if self.durable && dead_letters_grew {
            self.dead_letters.sync()
        } else {
            self.dead_letters.flush()
        }
        .map_err(|source| RunError::Write { file: "dead-letter file", source })?;
        Ok(SinkPosition { output, dead_letters })
    }
}

/// A commit's answer as the run sees it.
fn committed((sequence, result): (u64, Result<(), TaskError>)) -> Result<(), RunError> {
    result.map_err(|error| RunError::Commit { sequence, error })
}

/// A source position as a checkpoint stores it: `{"offset": .., "line": ..}`.
fn position_json(position: FilePosition) -> serde_json::Value {
    serde_json::json!({ "offset": position.offset, "line": position.line })
}

impl<J: RecordJob> Sink<Chunk<J::Output>> for ChunkSink<J> {
    type Output = SinkEnd<J::Summary>;

    fn consume<S>(
        mut self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<SinkEnd<J::Summary>, PipelineError>> + Send + 'static
    where
        S: Stream<Item = Chunk<J::Output>> + Send + 'static,
    {
        let stage = ctx.register("records_chunks");
        let mut probe = stage.probe();
        async move {
            let mut input = std::pin::pin!(input);
            loop {
                // Drive the commit in flight while waiting for the next chunk.
                let next = match self.pending.as_mut() {
                    Some(pending) => tokio::select! {
                        biased;
                        answer = pending => {
                            self.pending = None;
                            if let Err(error) = committed(answer) {
                                return Ok(SinkEnd::Failed(error));
                            }
                            if self.control.stop_requested() {
                                return Ok(SinkEnd::Stopped);
                            }
                            continue;
                        }
                        next = input.next() => next,
                    },
                    None => input.next().await,
                };
                let Some(chunk) = next else { break };
                probe.record_in_n(chunk.items.len() as u64);
                match self.write_chunk(chunk).await {
                    Ok(None) => probe.record_out(),
                    Ok(Some(end)) => return Ok(end),
                    Err(error) => return Ok(SinkEnd::Failed(error)),
                }
            }
            if let Err(error) = self.land_commit().await {
                return Ok(SinkEnd::Failed(error));
            }
            Ok(SinkEnd::Completed { counters: self.counters, summary: self.summary })
        }
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::estimated_total;

    #[test]
    fn the_total_is_extrapolated_from_the_bytes_read_and_exact_at_the_end() {
        // 250 records in the first quarter of a 1000-byte file.
        assert_eq!(estimated_total(250, 250, Some(1000)), Some(1000));
        // Rounded up, and never below what is done.
        assert_eq!(estimated_total(1, 3, Some(10)), Some(4));
        assert_eq!(estimated_total(7, 1000, Some(1000)), Some(7));
        assert_eq!(estimated_total(7, 1200, Some(1000)), Some(7), "the file grew: what is done is done");
        assert_eq!(estimated_total(0, 0, Some(1000)), None);
        assert_eq!(estimated_total(5, 100, None), None);
        assert_eq!(estimated_total(u64::MAX, 1, Some(u64::MAX)), Some(u64::MAX));
    }
}
