//! The chunk runner: the records pipeline (read, process in order, cut chunks) and its sink, which
//! writes each chunk, makes it durable, then commits its checkpoint.

use std::future::Future;
use std::io::{self, BufReader, Read as _};
use std::num::NonZeroUsize;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use batch_model::{CheckpointCommit, Counters, Durability, Progress, TaskError};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use pump_core::StageContext;
use pump_core::flow::MapBlocking;
use pump_core::source::file::ReadError;
use pump_core::{CancellationToken, Graph, PipelineError, RunOutcome, Sink, Source, SourceExt as _};

use super::attempt::{Chunk, Outcome, attempt_chunk, settle_async, settle_chunk};
use super::config::{RetrySchedule, RunnerOptions};
use super::dead_letter::DeadLetterRecord;
use super::error::RunError;
use super::job::{Admission, Execution, RecordJob, Summary};
use super::position::{ResumePoint, SinkPositions, resume_point};
use super::sink::{CommitSink, JsonLinesFile, LogTarget, Resume, SinkTarget};
use super::source::{RecordSource, SourceFailure, TextLinesInput};
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

/// Where a run's records come from and where its outputs and dead letters go: the runner's two
/// seams, a [`RecordSource`] and two [`SinkTarget`]s.
///
/// ```
/// use batch_tasks::records::{DeadLetterRecord, Endpoints, JsonLinesFile, TextLinesInput};
///
/// let endpoints = Endpoints {
///     source: TextLinesInput::new("in.jsonl"),
///     output: JsonLinesFile::<serde_json::Value>::new("out.jsonl", "output"),
///     dead_letters: JsonLinesFile::<DeadLetterRecord>::new("out.dead_letters.jsonl", "dead-letter file"),
/// };
/// # let _ = endpoints;
/// ```
#[derive(Debug, Clone)]
pub struct Endpoints<S, O, D> {
    /// The records.
    pub source: S,
    /// The outputs.
    pub output: O,
    /// The dead letters.
    pub dead_letters: D,
}

/// The file endpoints of a job's own paths.
type FileEndpoints<J> =
    Endpoints<TextLinesInput, JsonLinesFile<<J as RecordJob>::Output>, JsonLinesFile<DeadLetterRecord>>;

impl ChunkRunner {
    /// A runner with `options`.
    pub fn new(options: RunnerOptions) -> ChunkRunner {
        ChunkRunner { options }
    }

    /// The runner's options.
    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    /// Runs `job` for the task in `context` over the job's own files ([`RecordJob::input`], a text
    /// file read line by line; [`RecordJob::output`] and [`RecordJob::dead_letters`], JSON lines),
    /// from its last checkpoint (or the start) to the end of the input, a stop request, or a failure;
    /// the failure as the task will record it ([`RunError::to_task_error`]).
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
        let endpoints = file_endpoints(&*job)?;
        self.try_run_with(job, endpoints, context).await
    }

    /// Runs `job` for the task in `context` from `endpoints`' source to its sinks (files, an API, a
    /// table...), as [`run`](ChunkRunner::run) does for files.
    pub async fn run_with<J, S, O, D>(
        &self,
        job: Arc<J>,
        endpoints: Endpoints<S, O, D>,
        context: &JobContext,
    ) -> Result<JobOutcome, TaskError>
    where
        J: RecordJob,
        S: RecordSource,
        O: SinkTarget<J::Output>,
        D: SinkTarget<DeadLetterRecord>,
    {
        self.try_run_with(job, endpoints, context).await.map_err(|error| error.to_task_error())
    }

    /// [`run_with`](ChunkRunner::run_with), with the failure as a [`RunError`].
    pub async fn try_run_with<J, S, O, D>(
        &self,
        job: Arc<J>,
        endpoints: Endpoints<S, O, D>,
        context: &JobContext,
    ) -> Result<JobOutcome, RunError>
    where
        J: RecordJob,
        S: RecordSource,
        O: SinkTarget<J::Output>,
        D: SinkTarget<DeadLetterRecord>,
    {
        let config = context.config().clone();
        let control = Arc::clone(context.control());
        let token = control.cancellation_token();
        if token.is_cancelled() {
            return Err(RunError::Aborted);
        }
        if control.stop_requested() {
            return Ok(JobOutcome::Stopped);
        }
        let resume = resume_point::<
            J::Summary,
            S::Position,
            <O::Sink as CommitSink<J::Output>>::Position,
            <D::Sink as CommitSink<DeadLetterRecord>>::Position,
        >(context.checkpoint())?;
        let ResumePoint { sequence, source: source_position, sinks, counters, mut summary } = resume;
        let durable = config.durability == Durability::PowerLoss;
        let epoch = context.epoch();
        let is_final = sinks.as_ref().is_some_and(|sinks| sinks.is_final);
        // Every sink checks its committed position before any is changed, so a refused resume
        // leaves every file as it was.
        let output = endpoints.output.open(
            sinks.as_ref().map(|sinks| Resume {
                position: sinks.output.clone(),
                epoch: sinks.epoch,
                is_final,
            }),
            epoch,
            durable,
        )?;
        let dead_letters = endpoints.dead_letters.open(
            sinks.as_ref().map(|sinks| Resume {
                position: sinks.dead_letters.clone(),
                epoch: sinks.epoch,
                is_final,
            }),
            epoch,
            durable,
        )?;
        let log = match job.state_log() {
            None => None,
            Some(path) => {
                let target = LogTarget::new(path, "state log");
                let resume = sinks.as_ref().map(|sinks| Resume {
                    position: sinks.log.unwrap_or(0),
                    epoch: sinks.epoch,
                    is_final,
                });
                let sink = target.open(resume, epoch, durable)?;
                if let Some(len) = resume.map(|resume| resume.position).filter(|len| *len > 0) {
                    replay(&mut summary, &super::sink::staged_path(path, epoch), len)?;
                }
                Some(sink)
            }
        };
        let started_at = context.task().started_at.unwrap_or_else(Utc::now);
        tracing::debug!(
            task_id = %context.task().id,
            sequence,
            epoch,
            position = ?source_position,
            "records run starts"
        );
        let source = Arc::new(endpoints.source);
        let sink = ChunkSink::<J, S, O::Sink, D::Sink> {
            token: token.clone(),
            control,
            source: Arc::clone(&source),
            output,
            dead_letters,
            log,
            log_bytes: Vec::new(),
            durable,
            epoch,
            sequence,
            counters,
            summary,
            skip_limit: config.skip_limit,
            started_at,
            last_position: source_position.clone().unwrap_or_default(),
            pending: None,
            queued: Vec::new(),
        };
        if is_final {
            // Every record was done and committed by an earlier claim: only publishing is left.
            return sink.complete().await;
        }
        let schedule = Arc::new(RetrySchedule::new(&config, &self.options));
        let concurrency = non_zero(config.concurrency);
        let chunk_size = non_zero(config.batch_size);
        let max_wait = self.options.chunk_max_wait;
        let records = source.open(source_position.as_ref());
        let ended = match job.execution() {
            Execution::Blocking => {
                // Records are cut into chunks first, so each hand-off to a worker thread carries whole
                // chunks: the worker attempts every record, settles those that need no retry and
                // renders their outputs, and this task only moves chunks. About 8192 records per
                // hand-off at most, as for a plain `map_blocking`.
                let per_hand_off = non_zero(u32::try_from(HAND_OFF_RECORDS / chunk_size.get()).unwrap_or(1));
                let attempt = {
                    let (job, source, schedule) =
                        (Arc::clone(&job), Arc::clone(&source), Arc::clone(&schedule));
                    move |batch| attempt_chunk::<J, S, O::Sink, D::Sink>(&*job, &*source, &schedule, batch)
                };
                let settle = {
                    let job = Arc::clone(&job);
                    move |chunk| {
                        settle_chunk(Arc::clone(&job), Arc::clone(&schedule), concurrency.get(), chunk)
                    }
                };
                let graph = records
                    .batch(chunk_size, max_wait)
                    .via(MapBlocking::new(concurrency, attempt).max_chunk(per_hand_off))
                    .map_async(concurrency, settle)
                    .to(sink)
                    .named("records");
                drive(graph, &token).await
            }
            Execution::Async => {
                let settle = {
                    let (job, source) = (Arc::clone(&job), Arc::clone(&source));
                    move |element| {
                        settle_async(Arc::clone(&job), Arc::clone(&source), Arc::clone(&schedule), element)
                    }
                };
                let graph = records
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
                SinkEnd::Completed(outcome) => Ok(outcome),
                SinkEnd::Stopped => Ok(JobOutcome::Stopped),
                SinkEnd::Failed(error) => Err(error),
            },
            Err(_) if token.is_cancelled() => Err(RunError::Aborted),
            Err(PipelineError::Aborted) => Err(RunError::Aborted),
            // The sink reports its own failures as values: an I/O error of the run is the source's.
            Err(PipelineError::Io { source: cause, .. }) => Err(source_error(&*source, cause)),
            Err(source) => Err(RunError::Pipeline { source }),
        }
    }
}

/// A source's failure as the run's error, its cause said once: a file's read error with the
/// operating system's reason, a [`SourceFailure`] with its code.
fn source_error<S: RecordSource>(source: &S, cause: pump_core::BoxError) -> RunError {
    let cause = match cause.downcast::<ReadError>() {
        Ok(read) => return RunError::Read { input: source.describe(), source: read.source },
        Err(cause) => cause,
    };
    match cause.downcast::<SourceFailure>() {
        Ok(failure) => RunError::Source(*failure),
        Err(cause) => RunError::Read { input: source.describe(), source: io::Error::other(cause) },
    }
}

/// The job's own files as endpoints; every path must be named and the three must differ (with the
/// state log, four).
fn file_endpoints<J: RecordJob>(job: &J) -> Result<FileEndpoints<J>, RunError> {
    let mut files =
        vec![("input", job.input()), ("output", job.output()), ("dead-letter file", job.dead_letters())];
    if let Some(log) = job.state_log() {
        files.push(("state log", log));
    }
    for (role, path) in &files {
        if path.as_os_str().is_empty() {
            return Err(RunError::MissingPath { role });
        }
    }
    for (idx, (first, first_path)) in files.iter().enumerate() {
        for (second, second_path) in &files[idx + 1..] {
            if first_path == second_path {
                return Err(RunError::SamePath { first, second, path: first_path.to_path_buf() });
            }
        }
    }
    Ok(Endpoints {
        source: TextLinesInput::new(job.input()).keep_blank_lines(job.keep_blank_lines()),
        output: JsonLinesFile::new(job.output(), "output"),
        dead_letters: JsonLinesFile::new(job.dead_letters(), "dead-letter file"),
    })
}

/// Feeds the committed part of the state log (`len` bytes of `path`) to the summary.
fn replay<S: Summary<O>, O>(summary: &mut S, path: &Path, len: u64) -> Result<(), RunError> {
    let file = std::fs::File::open(path)
        .map_err(|source| RunError::Read { input: format!("the state log {}", path.display()), source })?;
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(len));
    summary.replay(&mut reader).map_err(|error| RunError::Kind { error })
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

/// A task's progress from its counters; `total` when known.
fn progress_of(counters: &Counters, total: Option<u64>, started_at: DateTime<Utc>) -> Progress {
    let elapsed = (Utc::now() - started_at).to_std().unwrap_or_default();
    Progress::compute(total, counters.processed, counters.failed, counters.skipped, elapsed)
}

/// How the sink ended.
enum SinkEnd {
    /// The input is exhausted, every chunk committed, the outputs published.
    Completed(JobOutcome),
    /// A stop was requested; the last chunk is committed.
    Stopped,
    /// A write, commit or skip-limit failure.
    Failed(RunError),
}

/// Writes chunks, makes them durable, commits their checkpoints.
struct ChunkSink<J: RecordJob, S: RecordSource, O, D> {
    /// Checked before each chunk, so that an abort is prompt even when the pipeline never waits.
    token: CancellationToken,
    control: Arc<dyn JobControl>,
    /// For progress estimates.
    source: Arc<S>,
    output: O,
    dead_letters: D,
    /// The state log, when the job keeps one.
    log: Option<<LogTarget as SinkTarget<serde_json::Value>>::Sink>,
    /// State-log entries of the current chunk (reused).
    log_bytes: Vec<u8>,
    durable: bool,
    /// The claim's epoch, recorded in each checkpoint (the staged files that hold its bytes).
    epoch: u64,
    sequence: u64,
    counters: Counters,
    summary: J::Summary,
    skip_limit: Option<u64>,
    started_at: DateTime<Utc>,
    /// The source position of the last checkpoint (for the final one).
    last_position: S::Position,
    /// The store call committing the last checkpoints sent, while the store works on it.
    pending: Option<PendingCommit>,
    /// Checkpoints prepared while `pending` was on its way, committed together by the next call
    /// (at most [`QUEUED_COMMITS`]).
    queued: Vec<CheckpointCommit>,
}

/// A checkpoint commit in flight: the first sequence it commits and the store's answer.
type PendingCommit = Pin<Box<dyn Future<Output = (u64, Result<(), TaskError>)> + Send>>;

/// How many prepared checkpoints may wait for the commit in flight before the pipeline waits for
/// it. They go to the store in one call ([`JobControl::commit_all`]): a store slower than the
/// pipeline commits several chunks' checkpoints in one transaction instead of holding the
/// pipeline up for each (each checkpoint is still committed and recorded, in order). Bounds what
/// a run holds of attached rows not yet sent: this many chunks.
pub(super) const QUEUED_COMMITS: usize = 4;

impl<J, S, O, D> ChunkSink<J, S, O, D>
where
    J: RecordJob,
    S: RecordSource,
    O: CommitSink<J::Output>,
    D: CommitSink<DeadLetterRecord>,
{
    /// Writes one chunk, flushes (or syncs) every file, starts its checkpoint's commit (or queues it
    /// behind the one in flight), then checks the skip limit and the stop flag. `Some` ends the run.
    ///
    /// The commit is left in flight: the store works on it while the pipeline brings the next chunk
    /// ([`consume`](Sink::consume) polls both), so a commit's round trip is not on the pipeline's
    /// path. One store call at a time, in sequence order; the chunks written meanwhile queue their
    /// checkpoints and go in the next call together (see [`QUEUED_COMMITS`]). A crash meanwhile is
    /// covered like any other (the output may run ahead of the last committed checkpoint, and a
    /// resume truncates it).
    async fn write_chunk(
        &mut self,
        chunk: Chunk<J::Output, S::Position>,
    ) -> Result<Option<SinkEnd>, RunError> {
        if self.token.is_cancelled() {
            return Err(RunError::Aborted);
        }
        let Chunk { items, end, rendered, rendered_ends, dead_letters, retries: _ } = chunk;
        if items.is_empty() {
            return Ok(None);
        }
        let selects = <J::Summary as Summary<J::Output>>::SELECTS;
        let (processed_before, failed_before) = (self.counters.processed, self.counters.failed);
        // With a selecting summary and rendered lines: the byte ranges of the lines kept.
        let mut kept: Vec<(usize, usize)> = Vec::new();
        let mut output_index = 0usize;
        for item in items {
            self.counters.retried += u64::from(item.retries);
            match item.outcome {
                Outcome::Output(output) => {
                    let admission = if selects {
                        self.summary
                            .admit(&output, &mut self.log_bytes)
                            .map_err(|error| RunError::Kind { error })?
                    } else {
                        Admission::Write
                    };
                    match admission {
                        Admission::Write => {
                            match &rendered {
                                None => self.output.write(&output)?,
                                Some(_) if selects => {
                                    let start =
                                        output_index.checked_sub(1).map_or(0, |before| rendered_ends[before]);
                                    let stop = rendered_ends[output_index];
                                    match kept.last_mut() {
                                        Some(last) if last.1 == start => last.1 = stop,
                                        _ => kept.push((start, stop)),
                                    }
                                }
                                Some(_) => {}
                            }
                            self.summary.add(&output);
                            self.counters.processed += 1;
                        }
                        Admission::Absorb => self.counters.processed += 1,
                        Admission::Skip => self.counters.skipped += 1,
                    }
                    output_index += 1;
                }
                Outcome::Skipped => self.counters.skipped += 1,
                Outcome::Failed { error, raw } => {
                    if dead_letters.is_none() {
                        let record = DeadLetterRecord::new(item.line, item.offset, error, raw);
                        self.dead_letters.write(&record)?;
                    }
                    self.counters.failed += 1;
                }
            }
        }
        // Lines the workers rendered go in whole (or the kept ranges), counted by the loop above.
        if let Some(lines) = &rendered {
            if selects {
                for (start, stop) in kept {
                    self.output.write_rendered(&lines[start..stop], 0)?;
                }
            } else {
                self.output.write_rendered(lines, self.counters.processed - processed_before)?;
            }
        }
        if let Some(lines) = &dead_letters {
            self.dead_letters.write_rendered(lines, self.counters.failed - failed_before)?;
        }
        self.write_log()?;
        let done = self.counters.processed + self.counters.failed + self.counters.skipped;
        let total = self.source.estimated_total(done, &end);
        let progress = progress_of(&self.counters, total, self.started_at);
        self.start_commit(end, progress, false).await?;
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

    /// Appends the chunk's state-log entries.
    fn write_log(&mut self) -> Result<(), RunError> {
        if self.log_bytes.is_empty() {
            return Ok(());
        }
        if let Some(log) = &mut self.log {
            log.write_rendered(&self.log_bytes, 0)?;
        }
        self.log_bytes.clear();
        Ok(())
    }

    /// Makes every sink durable and starts the commit of the checkpoint at source position `end`
    /// (`is_final`: the task's last), or queues it behind the commit in flight (waiting for that
    /// one when [`QUEUED_COMMITS`] are queued already).
    async fn start_commit(
        &mut self,
        end: S::Position,
        progress: Progress,
        is_final: bool,
    ) -> Result<(), RunError> {
        let output = self.output.prepare_commit(self.durable).await?;
        let dead_letters = self.dead_letters.prepare_commit(self.durable).await?;
        let log = match &mut self.log {
            Some(log) => Some(log.prepare_commit(self.durable).await?),
            None => None,
        };
        let writes: Vec<_> =
            [self.output.attached(), self.dead_letters.attached()].into_iter().flatten().collect();
        let sinks = SinkPositions { output, dead_letters, epoch: self.epoch, log, is_final };
        self.sequence += 1;
        let checkpoint = batch_model::Checkpoint {
            sequence: self.sequence,
            source: serde_json::to_value(&end).map_err(|source| RunError::Summary { source })?,
            sink: serde_json::to_value(&sinks).map_err(|source| RunError::Summary { source })?,
            counters: self.counters,
            state: serde_json::to_value(&self.summary).map_err(|source| RunError::Summary { source })?,
            committed_at: Utc::now(),
        };
        self.queued.push(CheckpointCommit { checkpoint, progress, writes });
        if self.pending.is_some() && self.queued.len() > QUEUED_COMMITS {
            self.land_one().await?;
        }
        self.dispatch();
        tracing::trace!(sequence = self.sequence, position = %end, "chunk written, commit started or queued");
        self.last_position = end;
        Ok(())
    }

    /// Sends the queued checkpoints to the store in one call, unless a call is in flight.
    fn dispatch(&mut self) {
        if self.pending.is_some() || self.queued.is_empty() {
            return;
        }
        let commits = std::mem::take(&mut self.queued);
        let first = commits.first().map_or(self.sequence, |commit| commit.checkpoint.sequence);
        let control = Arc::clone(&self.control);
        self.pending = Some(Box::pin(async move { (first, control.commit_all(commits).await) }));
    }

    /// Waits for the call in flight, if any, then sends what queued meanwhile.
    async fn land_one(&mut self) -> Result<(), RunError> {
        if let Some(pending) = self.pending.take() {
            self.landed(pending.await)?;
        }
        self.dispatch();
        Ok(())
    }

    /// A call's answer: the sinks hear that their prepared positions are committed.
    fn landed(&mut self, answer: (u64, Result<(), TaskError>)) -> Result<(), RunError> {
        committed(answer)?;
        self.output.committed();
        self.dead_letters.committed();
        if let Some(log) = &mut self.log {
            log.committed();
        }
        Ok(())
    }

    /// Waits until every checkpoint prepared so far is committed.
    async fn land_commit(&mut self) -> Result<(), RunError> {
        while self.pending.is_some() || !self.queued.is_empty() {
            self.land_one().await?;
        }
        Ok(())
    }

    /// The end of the input: the summary's tail rows, the final checkpoint when fencing or a tail
    /// asks for one, then the outputs published under their final names.
    async fn finish_input(&mut self) -> Result<(), RunError> {
        self.land_commit().await?;
        // Sources end once the run is aborted: a stream cut short by the job's cancellation is not
        // the end of the input, and nothing may be published for it (pump-core reports the run as
        // aborted, but only after the sink has seen the truncated stream end).
        if self.token.is_cancelled() {
            return Err(RunError::Aborted);
        }
        let tail = self.summary.tail(&mut self.log_bytes).map_err(|error| RunError::Kind { error })?;
        for output in &tail {
            self.output.write(output)?;
        }
        self.write_log()?;
        if !tail.is_empty() || self.epoch != 0 {
            // Publishing must wait for a checkpoint that says every record is done, committed
            // under this claim's epoch: a stale holder's commit is refused there, before it could
            // publish anything.
            let progress = self.final_progress();
            let end = self.last_position.clone();
            self.start_commit(end, progress, true).await?;
            self.land_commit().await?;
        }
        Ok(())
    }

    /// Publishes the outputs and builds the outcome.
    async fn complete(mut self) -> Result<JobOutcome, RunError> {
        self.output.publish(self.durable)?;
        self.dead_letters.publish(self.durable)?;
        if let Some(log) = &mut self.log {
            log.publish(self.durable)?;
        }
        let progress = self.final_progress();
        let summary = self.summary.finish(&self.counters).map_err(|source| RunError::Summary { source })?;
        Ok(JobOutcome::Completed { summary, progress })
    }

    fn final_progress(&self) -> Progress {
        let mut progress = progress_of(&self.counters, None, self.started_at);
        progress.total = Some(progress.done());
        progress.percentage = Some(100.0);
        progress
    }
}

/// A commit's answer as the run sees it.
fn committed((sequence, result): (u64, Result<(), TaskError>)) -> Result<(), RunError> {
    result.map_err(|error| RunError::Commit { sequence, error })
}

impl<J, S, O, D> Sink<Chunk<J::Output, S::Position>> for ChunkSink<J, S, O, D>
where
    J: RecordJob,
    S: RecordSource,
    O: CommitSink<J::Output>,
    D: CommitSink<DeadLetterRecord>,
{
    type Output = SinkEnd;

    fn consume<St>(
        mut self,
        input: St,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<SinkEnd, PipelineError>> + Send + 'static
    where
        St: Stream<Item = Chunk<J::Output, S::Position>> + Send + 'static,
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
                            if let Err(error) = self.landed(answer) {
                                return Ok(SinkEnd::Failed(error));
                            }
                            if self.control.stop_requested() {
                                if let Err(error) = self.land_commit().await {
                                    return Ok(SinkEnd::Failed(error));
                                }
                                return Ok(SinkEnd::Stopped);
                            }
                            // What queued meanwhile goes at once, not with the next chunk.
                            self.dispatch();
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
            if let Err(error) = self.finish_input().await {
                return Ok(SinkEnd::Failed(error));
            }
            Ok(match self.complete().await {
                Ok(outcome) => SinkEnd::Completed(outcome),
                Err(error) => SinkEnd::Failed(error),
            })
        }
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::super::source::estimated_file_total as estimated_total;

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
