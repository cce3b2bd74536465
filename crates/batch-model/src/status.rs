//! Task statuses and the state machine that says which status changes are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Where a task is in its life. Serialised in snake_case (`"pending"`).
///
/// ```text
/// pending ──> processing ──> completed | failed | cancelled
///  ^ │  ^          │                      │        │
///  │ │  └──────────┘  only when the worker's lease expired
///  │ └──> cancelled                       │        │
///  └──────────────────────────────────────┴────────┘  only by a restart (a new attempt)
/// ```
///
/// `completed`, `failed` and `cancelled` are terminal: nothing changes them in a task's run. A failed
/// or cancelled task can be *restarted* ([`TransitionCause::Restart`]): it goes back to `pending` as a
/// new attempt that resumes from its last checkpoint, its earlier attempts kept in its history
/// ([`BatchTask::attempts`](crate::BatchTask::attempts)). A completed task is final. See
/// [`TaskStatus::can_transition`] for the exact rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Created and waiting for a worker.
    Pending,
    /// A worker holds the task and is running it.
    Processing,
    /// Finished; every item was handled (some may have failed within the skip limit).
    Completed,
    /// Ended by an error: a source or sink failure, or too many failed items.
    Failed,
    /// Stopped on request before it finished.
    Cancelled,
}

/// Why a status change is being made; the state machine allows some changes only for some causes.
///
/// Serialised in snake_case (`"lease_expired"`), for logs and audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransitionCause {
    /// The ordinary life of a task: a worker claims it, finishes or fails it, or a caller stops it.
    Requested,
    /// The lease of the worker running the task expired (the worker crashed or hung), so the task goes
    /// back to the queue. Allows only `processing -> pending`.
    LeaseExpired,
    /// Someone restarted a failed or cancelled task: a new attempt continues from its last checkpoint.
    /// Allows only `failed -> pending` and `cancelled -> pending`.
    Restart,
}

impl TaskStatus {
    /// Every status, in life order.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Processing,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The status's spelling, the same as its JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the task has ended: `completed`, `failed` or `cancelled`. A terminal status never changes.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }

    /// Whether the state machine allows a task in `from` to move to `to` for `cause`.
    ///
    /// The legal changes:
    ///
    /// | from         | to                                 | cause                                |
    /// |--------------|------------------------------------|--------------------------------------|
    /// | `pending`    | `processing`, `cancelled`          | [`TransitionCause::Requested`]        |
    /// | `processing` | `completed`, `failed`, `cancelled` | [`TransitionCause::Requested`]        |
    /// | `processing` | `pending`                          | [`TransitionCause::LeaseExpired`]     |
    /// | `failed`, `cancelled` | `pending`                 | [`TransitionCause::Restart`]          |
    ///
    /// Everything else is illegal, including every other change out of a terminal status and every
    /// same-status "change" (`pending -> pending`, `processing -> processing`, ...): a request to set the
    /// status a task already has is reported, not silently accepted, so two workers cannot both believe
    /// they claimed the same task.
    ///
    /// ```
    /// use batch_model::{TaskStatus, TransitionCause};
    ///
    /// use TaskStatus::*;
    /// assert!(TaskStatus::can_transition(Pending, Processing, TransitionCause::Requested));
    /// assert!(!TaskStatus::can_transition(Processing, Pending, TransitionCause::Requested));
    /// assert!(TaskStatus::can_transition(Processing, Pending, TransitionCause::LeaseExpired));
    /// assert!(!TaskStatus::can_transition(Processing, Processing, TransitionCause::Requested));
    /// assert!(!TaskStatus::can_transition(Completed, Pending, TransitionCause::LeaseExpired));
    /// assert!(TaskStatus::can_transition(Failed, Pending, TransitionCause::Restart));
    /// assert!(!TaskStatus::can_transition(Completed, Pending, TransitionCause::Restart));
    /// ```
    pub fn can_transition(from: TaskStatus, to: TaskStatus, cause: TransitionCause) -> bool {
        use TaskStatus::{Cancelled, Completed, Failed, Pending, Processing};
        match cause {
            TransitionCause::Requested => matches!(
                (from, to),
                (Pending, Processing | Cancelled) | (Processing, Completed | Failed | Cancelled)
            ),
            TransitionCause::LeaseExpired => matches!((from, to), (Processing, Pending)),
            TransitionCause::Restart => matches!((from, to), (Failed | Cancelled, Pending)),
        }
    }

    /// The status after a legal change to `next`, or
    /// [`ModelError::InvalidTransition`] (code `INVALID_STATE`) when [`TaskStatus::can_transition`] says no.
    ///
    /// ```
    /// use batch_model::{ErrorCode, TaskStatus, TransitionCause};
    ///
    /// let status = TaskStatus::Pending.transition_to(TaskStatus::Processing, TransitionCause::Requested)?;
    /// assert_eq!(status, TaskStatus::Processing);
    ///
    /// let error = TaskStatus::Completed
    ///     .transition_to(TaskStatus::Processing, TransitionCause::Requested)
    ///     .unwrap_err();
    /// assert_eq!(error.code(), ErrorCode::InvalidState);
    /// assert_eq!(error.to_string(), "invalid state transition from completed to processing");
    /// # Ok::<(), batch_model::ModelError>(())
    /// ```
    pub fn transition_to(self, next: TaskStatus, cause: TransitionCause) -> Result<TaskStatus, ModelError> {
        if TaskStatus::can_transition(self, next, cause) {
            Ok(next)
        } else {
            Err(ModelError::InvalidTransition { from: self, to: next })
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Parses the snake_case spelling (`"processing"`); anything else is a `VALIDATION_ERROR`.
impl FromStr for TaskStatus {
    type Err = ModelError;

    fn from_str(text: &str) -> Result<TaskStatus, ModelError> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ModelError::InvalidStatus { value: text.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_are_completed_failed_and_cancelled() {
        let terminal: Vec<TaskStatus> =
            TaskStatus::ALL.into_iter().filter(|status| status.is_terminal()).collect();
        assert_eq!(terminal, [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled]);
    }

    #[test]
    fn only_a_restart_leaves_a_terminal_status_and_never_a_completed_one() {
        let causes = [TransitionCause::Requested, TransitionCause::LeaseExpired, TransitionCause::Restart];
        for from in TaskStatus::ALL.into_iter().filter(|status| status.is_terminal()) {
            for to in TaskStatus::ALL {
                for cause in causes {
                    let restart = cause == TransitionCause::Restart
                        && to == TaskStatus::Pending
                        && from != TaskStatus::Completed;
                    assert_eq!(
                        TaskStatus::can_transition(from, to, cause),
                        restart,
                        "{from} -> {to} ({cause:?})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_restart_applies_only_to_failed_and_cancelled_tasks() {
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let legal =
                    matches!(from, TaskStatus::Failed | TaskStatus::Cancelled) && to == TaskStatus::Pending;
                assert_eq!(
                    TaskStatus::can_transition(from, to, TransitionCause::Restart),
                    legal,
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn spelling_parses_back_and_matches_json() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(status.as_str()));
        }
        let error = "Pending".parse::<TaskStatus>().unwrap_err();
        assert_eq!(error, ModelError::InvalidStatus { value: "Pending".to_owned() });
    }

    #[test]
    fn causes_serialise_in_snake_case() {
        assert_eq!(serde_json::to_value(TransitionCause::LeaseExpired).unwrap(), "lease_expired");
        assert_eq!(serde_json::to_value(TransitionCause::Requested).unwrap(), "requested");
        assert_eq!(serde_json::to_value(TransitionCause::Restart).unwrap(), "restart");
    }
}
