//! Why a fan-out failed the run when the failure is the fan-out's own finding.

/// A fan-out's own failure, carried as the cause of a
/// [`PipelineError::Stage`](crate::PipelineError::Stage) naming the fan-out's stage.
///
/// A consumer's own error (or panic) is passed through unchanged as the run's error; these
/// variants cover what only the fan-out can see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FanOutError {
    /// The partition function chose a consumer that does not exist. This always fails the run,
    /// whatever the [`FanOutPolicy`](crate::fan::FanOutPolicy): it is a bug in the function, and
    /// dropping the element silently would hide it.
    #[error("partition function returned consumer {index}, but there are {consumers} consumers")]
    PartitionOutOfRange {
        /// What the function returned.
        index: usize,
        /// How many consumers there are.
        consumers: usize,
    },
    /// A consumer stopped (completed or dropped its input) while elements for it were still
    /// buffered or still coming, under [`FanOutPolicy::FailPipeline`](crate::fan::FanOutPolicy).
    #[error("consumer {consumer} stopped early with {undelivered} elements still to deliver")]
    ConsumerStopped {
        /// The consumer's index.
        consumer: usize,
        /// Elements that could not be delivered to it when the run failed (at least one).
        undelivered: usize,
    },
    /// A consumer failed; the run's error is the consumer's own error. This is what the fan-out
    /// sink itself returns in that case.
    #[error("consumer {consumer} failed")]
    ConsumerFailed {
        /// The consumer's index.
        consumer: usize,
    },
}
