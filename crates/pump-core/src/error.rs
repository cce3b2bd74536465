//! The errors a pipeline run can end with.

use std::sync::Arc;

/// A boxed error from user code or an I/O layer, kept as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a pipeline run did not produce its sink's result.
///
/// Per-element failures that a stage's [`ErrorPolicy`](crate::ErrorPolicy) resumes from are *not*
/// pipeline errors: they go to the stage's dead-letter output and its `errors`/`dropped` counters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A stage whose policy is `stop` failed on an element.
    #[error("stage {stage} failed")]
    Stage {
        /// The stage's name, as in the metrics snapshot.
        stage: Arc<str>,
        /// What the user function returned.
        #[source]
        source: BoxError,
    },
    /// User code inside a stage panicked; the panic was caught and the run ended.
    #[error("stage {stage} panicked: {message}")]
    Panicked {
        /// The stage's name (or `pipeline` when the panic could not be attributed).
        stage: Arc<str>,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A buffer whose overflow strategy is `fail` was full.
    #[error("buffer of stage {stage} overflowed its capacity of {capacity}")]
    Overflow {
        /// The stage owning the buffer.
        stage: Arc<str>,
        /// The configured capacity.
        capacity: usize,
    },
    /// The run was aborted through its handle or cancellation token.
    #[error("pipeline aborted")]
    Aborted,
    /// A source or sink failed as a whole (a file could not be read or written, a channel closed).
    #[error("{stage}: {source}")]
    Io {
        /// The stage that hit the failure.
        stage: Arc<str>,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl PipelineError {
    /// Builds a [`PipelineError::Io`] for a stage.
    pub fn io(stage: impl Into<Arc<str>>, source: impl Into<BoxError>) -> Self {
        PipelineError::Io { stage: stage.into(), source: source.into() }
    }

    /// Builds a [`PipelineError::Panicked`] from a caught panic payload.
    pub fn from_panic(stage: impl Into<Arc<str>>, payload: &(dyn std::any::Any + Send)) -> Self {
        PipelineError::Panicked { stage: stage.into(), message: panic_message(payload) }
    }
}

/// Extracts the text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
