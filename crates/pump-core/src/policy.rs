//! Error policies for fallible stages: stop, resume to a dead-letter output, retry with backoff.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::error::{BoxError, PipelineError};
use crate::stage::Stage;

/// Why an element failed in a fallible stage.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The user function returned this error.
    Error(E),
    /// The user function panicked with this message.
    Panicked(String),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(error) => error.fmt(f),
            Failure::Panicked(message) => write!(f, "panicked: {message}"),
        }
    }
}

/// An element a stage gave up on, with its error. Sent to the stage's [`DeadLetters`].
#[derive(Debug)]
pub struct DeadLetter<T, E> {
    /// The element as the stage received it.
    pub element: T,
    /// The last failure.
    pub error: Failure<E>,
    /// The stage's name.
    pub stage: Arc<str>,
    /// How many attempts were made.
    pub attempts: u32,
}

enum Target<T, E> {
    Discard,
    Callback(Arc<dyn Fn(DeadLetter<T, E>) + Send + Sync>),
    Channel(PollSender<DeadLetter<T, E>>),
}

/// Where a resuming stage sends the elements it gives up on.
///
/// Every element sent here is also counted in the stage's `errors` and `dropped` counters.
pub struct DeadLetters<T, E> {
    target: Target<T, E>,
}

impl<T, E> fmt::Debug for DeadLetters<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.target {
            Target::Discard => "discard",
            Target::Callback(_) => "callback",
            Target::Channel(_) => "channel",
        };
        f.debug_struct("DeadLetters").field("target", &kind).finish()
    }
}

impl<T: Send + 'static, E: Send + 'static> DeadLetters<T, E> {
    /// Count failed elements and let them go (they are logged at `warn` level).
    pub fn discard() -> Self {
        DeadLetters { target: Target::Discard }
    }

    /// Hand each dead letter to `f` (write it to a file, push it to a bounded collection, ...).
    pub fn callback(f: impl Fn(DeadLetter<T, E>) + Send + Sync + 'static) -> Self {
        DeadLetters { target: Target::Callback(Arc::new(f)) }
    }

    /// Send dead letters on a bounded channel. When the channel is full the stage waits (backpressure),
    /// so nothing is lost; read the receiver concurrently, or give it room for every failure you expect.
    /// If the receiver is dropped, further dead letters are only counted and logged.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is zero.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<DeadLetter<T, E>>) {
        let (sender, receiver) = mpsc::channel(capacity);
        (DeadLetters { target: Target::Channel(PollSender::new(sender)) }, receiver)
    }
}

/// How a fallible stage retries: exponential backoff with jitter, a bounded number of attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// How much each wait grows over the previous one.
    pub multiplier: f64,
    /// The fraction (0 to 1) of each wait that is random: the wait is drawn from
    /// `[base * (1 - jitter), base]`. Zero makes waits exact (tests).
    pub jitter: f64,
}

impl RetryPolicy {
    /// `max_attempts` attempts, waiting `initial_backoff`, then twice as long each time (at most
    /// 30 s), with 20% jitter.
    pub fn exponential(max_attempts: u32, initial_backoff: Duration) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            initial_backoff,
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    /// The same policy with another jitter fraction (clamped to `0..=1`).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The same policy with another longest wait.
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// The wait after the `failures`-th failed attempt (1-based).
    ///
    /// ```
    /// use pump_core::RetryPolicy;
    /// use std::time::Duration;
    /// let policy = RetryPolicy::exponential(5, Duration::from_millis(100)).with_jitter(0.0);
    /// assert_eq!(policy.backoff(1), Duration::from_millis(100));
    /// assert_eq!(policy.backoff(3), Duration::from_millis(400));
    /// ```
    pub fn backoff(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let base = base.min(self.max_backoff.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 { 1.0 - jitter * fastrand::f64() } else { 1.0 };
        Duration::try_from_secs_f64(base * factor).unwrap_or(self.max_backoff)
    }
}

/// What a fallible stage does with an element that failed (after any retries).
pub enum OnFailure<T, E> {
    /// Fail the pipeline.
    Stop,
    /// Drop the element from the stream, count it, and send it to the dead-letter output.
    Resume(DeadLetters<T, E>),
}

impl<T, E> fmt::Debug for OnFailure<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnFailure::Stop => f.write_str("Stop"),
            OnFailure::Resume(dead_letters) => f.debug_tuple("Resume").field(dead_letters).finish(),
        }
    }
}

/// The error policy of one fallible stage: optional retries, then stop or resume.
pub struct ErrorPolicy<T, E> {
    pub(crate) retry: RetryPart<E>,
    pub(crate) on_failure: OnFailure<T, E>,
}

impl<T, E> fmt::Debug for ErrorPolicy<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorPolicy")
            .field("retry", &self.retry.retry)
            .field("retry_if", &self.retry.retry_if.is_some())
            .field("on_failure", &self.on_failure)
            .finish()
    }
}

impl<T: Send + 'static, E: Send + 'static> ErrorPolicy<T, E> {
    /// Fail the pipeline on the first failed element.
    pub fn stop() -> Self {
        ErrorPolicy { retry: RetryPart::none(), on_failure: OnFailure::Stop }
    }

    /// Skip failed elements, sending them to `dead_letters`.
    pub fn resume(dead_letters: DeadLetters<T, E>) -> Self {
        ErrorPolicy { retry: RetryPart::none(), on_failure: OnFailure::Resume(dead_letters) }
    }

    /// Retry failed elements under `retry` before stopping or resuming.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use pump_core::prelude::*;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// let calls = AtomicU32::new(0);
    /// let policy = ErrorPolicy::stop().with_retry(RetryPolicy::exponential(3, Duration::from_millis(10)));
    /// let out = source::iter([7u32])
    ///     .try_map(move |x| if calls.fetch_add(1, Ordering::Relaxed) < 2 { Err("flaky") } else { Ok(*x) }, policy)
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value, vec![7]);
    /// assert_eq!(out.stats.metrics.stage("try_map").unwrap().retried, 2);
    /// # }
    /// ```
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry.retry = Some(retry);
        self
    }

    /// Retry only errors for which `predicate` is true (others fail at once).
    pub fn retry_if(mut self, predicate: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.retry.retry_if = Some(Arc::new(predicate));
        self
    }
}

/// Which errors a policy retries (see [`ErrorPolicy::retry_if`]).
type RetryPredicate<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// The retry half of an [`ErrorPolicy`], cloneable into per-element futures.
pub(crate) struct RetryPart<E> {
    retry: Option<RetryPolicy>,
    retry_if: Option<RetryPredicate<E>>,
}

impl<E> Clone for RetryPart<E> {
    fn clone(&self) -> Self {
        RetryPart { retry: self.retry.clone(), retry_if: self.retry_if.clone() }
    }
}

impl<E> RetryPart<E> {
    fn none() -> Self {
        RetryPart { retry: None, retry_if: None }
    }

    /// The wait before the next attempt, or `None` when `error` is not to be retried after
    /// `attempts` attempts.
    pub(crate) fn next_retry(&self, error: &E, attempts: u32) -> Option<Duration> {
        let retry = self.retry.as_ref()?;
        if attempts >= retry.max_attempts {
            return None;
        }
        if let Some(predicate) = &self.retry_if
            && !predicate(error)
        {
            return None;
        }
        Some(retry.backoff(attempts))
    }
}

/// What the stage should do after [`FailureHandler::handle`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Go on with the next element (after delivering the pending dead letter).
    Continue,
    /// The run was failed; end the stream.
    Stop,
}

/// Applies the on-failure half of a policy, holding at most one dead letter awaiting delivery.
pub(crate) struct FailureHandler<T, E> {
    on_failure: OnFailure<T, E>,
    pending: Option<DeadLetter<T, E>>,
}

impl<T: Send + 'static, E: Into<BoxError> + fmt::Display + Send + 'static> FailureHandler<T, E> {
    pub(crate) fn new(on_failure: OnFailure<T, E>) -> Self {
        FailureHandler { on_failure, pending: None }
    }

    /// Records a failed element; fails the run under `Stop`.
    pub(crate) fn handle(
        &mut self,
        stage: &Stage,
        element: T,
        error: Failure<E>,
        attempts: u32,
    ) -> AfterFailure {
        stage.metrics().record_error();
        match &self.on_failure {
            OnFailure::Stop => {
                let stage_name = stage.name();
                let error = match error {
                    Failure::Error(error) => PipelineError::Stage { stage: stage_name, source: error.into() },
                    Failure::Panicked(message) => PipelineError::Panicked { stage: stage_name, message },
                };
                stage.fail(error);
                AfterFailure::Stop
            }
            OnFailure::Resume(_) => {
                stage.metrics().record_dropped(1);
                tracing::warn!(parent: stage.span(), %error, attempts, "element sent to dead letters");
                self.pending = Some(DeadLetter { element, error, stage: stage.name(), attempts });
                AfterFailure::Continue
            }
        }
    }

    /// Delivers the pending dead letter, waiting for room on a channel target.
    pub(crate) fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(letter) = self.pending.take() else {
            return Poll::Ready(());
        };
        match &mut self.on_failure {
            OnFailure::Stop | OnFailure::Resume(DeadLetters { target: Target::Discard }) => {}
            OnFailure::Resume(DeadLetters { target: Target::Callback(callback) }) => callback(letter),
            OnFailure::Resume(DeadLetters { target: Target::Channel(sender) }) => {
                match sender.poll_reserve(cx) {
                    Poll::Pending => {
                        self.pending = Some(letter);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(())) => {
                        if sender.send_item(letter).is_err() {
                            tracing::warn!("dead-letter receiver dropped; dead letter counted only");
                        }
                    }
                    Poll::Ready(Err(_closed)) => {
                        tracing::warn!("dead-letter receiver dropped; dead letter counted only");
                    }
                }
            }
        }
        Poll::Ready(())
    }
}
