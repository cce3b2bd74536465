//! What the manager's calls fail with ([`ManagerError`]), each failure with its stable code.

use batch_model::{ErrorCode, ModelError, TaskError, TaskId, TaskStatus, TaskType};

use crate::store::StoreError;

/// Why a [`BatchManager`](crate::BatchManager) call failed. Every variant maps to an [`ErrorCode`]
/// ([`ManagerError::code`]).
///
/// ```
/// use batch_manager::ManagerError;
/// use batch_model::{ErrorCode, TaskId};
///
/// let error = ManagerError::NotFound { id: TaskId::new() };
/// assert_eq!(error.code(), ErrorCode::NotFound);
/// assert!(error.to_string().starts_with("task "));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// A [`ManagerConfig`](crate::ManagerConfig) setting is out of bounds (`CONFIGURATION_ERROR`).
    #[error("invalid manager configuration: {field} {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// What is wrong, starting with a verb.
        reason: String,
    },
    /// A request, config or status change the model rejects: `CONFIGURATION_ERROR` for a bad config
    /// (naming the setting), `INVALID_STATE` for an illegal status change, `VALIDATION_ERROR` otherwise.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// No kind is registered for the task's type (`VALIDATION_ERROR`).
    #[error("no task kind is registered for type {task_type}")]
    UnknownTaskType {
        /// The type asked for.
        task_type: TaskType,
    },
    /// The kind rejected the task's params or config (its code, usually `CONFIGURATION_ERROR`). The
    /// message is the kind's without its code, which [`ManagerError::code`] carries.
    #[error("invalid {task_type} task: {}", error.message)]
    InvalidParams {
        /// The task's type.
        task_type: TaskType,
        /// The kind's verdict.
        error: TaskError,
    },
    /// Typed params could not be turned into JSON (`VALIDATION_ERROR`).
    #[error("cannot serialize the params of a {task_type} task")]
    Params {
        /// The task's type.
        task_type: TaskType,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The task does not exist (`NOT_FOUND`).
    #[error("task {id} not found")]
    NotFound {
        /// The task.
        id: TaskId,
    },
    /// The task cannot be started or resumed in its status (`INVALID_STATE`).
    #[error("task {id} is {status}: {reason}")]
    NotRunnable {
        /// The task.
        id: TaskId,
        /// Its status.
        status: TaskStatus,
        /// Why it cannot run, and what to do instead.
        reason: String,
    },
    /// The manager is shutting down and takes no new work (`INVALID_STATE`).
    #[error("the manager is shutting down and takes no new work")]
    ShuttingDown,
    /// The task store failed or refused the change (its code: `NOT_FOUND`, `INVALID_STATE`,
    /// `STORAGE_ERROR`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ManagerError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ManagerError::InvalidConfig { .. } => ErrorCode::ConfigurationError,
            ManagerError::Model(error) => error.code(),
            ManagerError::UnknownTaskType { .. } | ManagerError::Params { .. } => ErrorCode::ValidationError,
            ManagerError::InvalidParams { error, .. } => error.code,
            ManagerError::NotFound { .. } => ErrorCode::NotFound,
            ManagerError::NotRunnable { .. } | ManagerError::ShuttingDown => ErrorCode::InvalidState,
            ManagerError::Store(error) => error.code(),
        }
    }

    /// The error as a [`TaskError`] (never retryable), e.g. for an API response.
    pub fn to_task_error(&self) -> TaskError {
        match self {
            ManagerError::Model(error) => TaskError::from(error),
            ManagerError::InvalidParams { error, .. } => error.clone(),
            other => TaskError::new(other.code(), other.to_string()).not_retryable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use batch_model::BatchConfig;

    use super::*;

    #[test]
    fn a_bad_config_is_a_configuration_error_naming_the_field() {
        let config = BatchConfig { batch_size: 0, ..BatchConfig::default() };
        let error = ManagerError::from(config.validate().unwrap_err());
        assert_eq!(error.code(), ErrorCode::ConfigurationError);
        assert_eq!(error.to_string(), "invalid configuration: batch_size must be at least 1, got 0");
        assert_eq!(error.to_task_error().details["field"], "batch_size");
    }

    #[test]
    fn store_errors_keep_their_codes() {
        let id = TaskId::new();
        assert_eq!(ManagerError::from(StoreError::NotFound { id }).code(), ErrorCode::NotFound);
        let conflict = StoreError::Conflict {
            id,
            expected: TaskStatus::Pending,
            actual: TaskStatus::Completed,
            to: TaskStatus::Processing,
        };
        assert_eq!(ManagerError::from(conflict).code(), ErrorCode::InvalidState);
    }

    #[test]
    fn every_variant_has_a_code() {
        let task_type = TaskType::Train;
        let kind_error = TaskError::new(ErrorCode::ConfigurationError, "input is required");
        assert_eq!(
            ManagerError::UnknownTaskType { task_type: task_type.clone() }.code(),
            ErrorCode::ValidationError
        );
        let invalid = ManagerError::InvalidParams { task_type, error: kind_error };
        assert_eq!(invalid.code(), ErrorCode::ConfigurationError);
        assert_eq!(
            invalid.to_string(),
            "invalid train task: input is required",
            "the code is not in the text"
        );
        assert_eq!(ManagerError::ShuttingDown.code(), ErrorCode::InvalidState);
    }
}
