//! Tasks: their kind ([`TaskType`]) and the record the manager keeps for each ([`BatchTask`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::CreateTaskRequest;
use crate::config::BatchConfig;
use crate::error::{ModelError, TaskError};
use crate::id::TaskId;
use crate::progress::Progress;
use crate::status::{TaskStatus, TransitionCause};

/// Which task kind runs a task: one of the built-in kinds or a user-registered one.
///
/// Serialised as a plain string: `"train"`, `"youzan_order"`, `"batch_process"`, or the custom name.
/// A custom name is 1 to [`CUSTOM_NAME_MAX_LEN`](TaskType::CUSTOM_NAME_MAX_LEN) characters of
/// `[a-z0-9_]` and is not a built-in name. Parsing (and deserialising) checks this and maps built-in
/// names to their variants, so `"train"` is always `TaskType::Train`, never `Custom("train")`. A
/// `Custom` built by hand is checked by [`TaskType::validate`] (which
/// [`CreateTaskRequest::validate`] calls).
///
/// ```
/// use batch_model::TaskType;
///
/// assert_eq!("youzan_order".parse::<TaskType>()?, TaskType::YouzanOrder);
/// assert_eq!("geo_enrich".parse::<TaskType>()?, TaskType::Custom("geo_enrich".to_owned()));
/// assert_eq!(serde_json::to_string(&TaskType::BatchProcess).unwrap(), r#""batch_process""#);
/// assert!("Geo-Enrich".parse::<TaskType>().is_err());
/// # Ok::<(), batch_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskType {
    /// Mini-batch training of a regression model over a dataset.
    Train,
    /// Enrichment and summary of YouZan trade records.
    YouzanOrder,
    /// The generic kind: filter, project, de-duplicate and aggregate records.
    BatchProcess,
    /// A kind registered by the user under this name.
    Custom(String),
}

impl TaskType {
    /// The built-in kinds.
    pub const BUILT_IN: [TaskType; 3] = [TaskType::Train, TaskType::YouzanOrder, TaskType::BatchProcess];

    /// Longest custom name, in bytes (ASCII, so also characters).
    pub const CUSTOM_NAME_MAX_LEN: usize = 64;

    /// The kind's name, the same as its JSON form.
    pub fn as_str(&self) -> &str {
        match self {
            TaskType::Train => "train",
            TaskType::YouzanOrder => "youzan_order",
            TaskType::BatchProcess => "batch_process",
            TaskType::Custom(name) => name,
        }
    }

    /// Whether this is one of the three kinds shipped with the system.
    pub fn is_built_in(&self) -> bool {
        !matches!(self, TaskType::Custom(_))
    }

    /// Checks a `Custom` name: non-empty, at most 64 characters of `[a-z0-9_]`, not a built-in name.
    /// Built-in kinds are always valid. A failure is [`ModelError::InvalidTaskType`] (`VALIDATION_ERROR`).
    ///
    /// ```
    /// use batch_model::TaskType;
    ///
    /// assert!(TaskType::Custom("geo_enrich".into()).validate().is_ok());
    /// let error = TaskType::Custom("train".into()).validate().unwrap_err();
    /// assert_eq!(error.to_string(), r#"invalid task type "train": is a built-in kind, not a custom one"#);
    /// ```
    pub fn validate(&self) -> Result<(), ModelError> {
        let TaskType::Custom(name) = self else {
            return Ok(());
        };
        let reason = if name.is_empty() {
            Some("must not be empty".to_owned())
        } else if name.len() > Self::CUSTOM_NAME_MAX_LEN {
            Some(format!("must be at most {} characters, got {}", Self::CUSTOM_NAME_MAX_LEN, name.len()))
        } else if !name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
        {
            Some("must contain only lowercase letters a-z, digits 0-9 and underscores".to_owned())
        } else if Self::BUILT_IN.iter().any(|built_in| built_in.as_str() == name) {
            Some("is a built-in kind, not a custom one".to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ModelError::InvalidTaskType { name: name.clone(), reason }),
            None => Ok(()),
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A built-in name gives its variant; any other valid name a `Custom`.
impl FromStr for TaskType {
    type Err = ModelError;

    fn from_str(name: &str) -> Result<TaskType, ModelError> {
        if let Some(built_in) = Self::BUILT_IN.into_iter().find(|built_in| built_in.as_str() == name) {
            return Ok(built_in);
        }
        let custom = TaskType::Custom(name.to_owned());
        custom.validate()?;
        Ok(custom)
    }
}

impl Serialize for TaskType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TaskType, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The manager's record of one task.
///
/// Fields are public, as in the Go original, so stores and the HTTP layer can build and read records
/// freely; change `status` only through [`BatchTask::transition`], which applies the state machine and
/// keeps the timestamps consistent with it.
///
/// ```
/// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskStatus, TaskType, TransitionCause};
/// use chrono::{TimeDelta, Utc};
///
/// let created_at = Utc::now();
/// let request = CreateTaskRequest::new(TaskType::Train)
///     .with_params(serde_json::json!({ "input": "data/iris.csv", "epochs": 20 }));
/// let mut task = BatchTask::new(TaskId::new(), request, created_at)?;
/// assert_eq!(task.status, TaskStatus::Pending);
/// assert_eq!(task.config.batch_size, 10);
///
/// let started_at = created_at + TimeDelta::seconds(1);
/// task.transition(TaskStatus::Processing, TransitionCause::Requested, started_at)?;
/// assert_eq!(task.started_at, Some(started_at));
///
/// let finished_at = started_at + TimeDelta::seconds(60);
/// task.transition(TaskStatus::Completed, TransitionCause::Requested, finished_at)?;
/// assert_eq!(task.completed_at, Some(finished_at));
/// assert!(task.transition(TaskStatus::Failed, TransitionCause::Requested, finished_at).is_err());
/// # Ok::<(), batch_model::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchTask {
    /// The task's id, time-ordered.
    pub id: TaskId,
    /// Which kind runs it.
    pub task_type: TaskType,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// How it runs.
    pub config: BatchConfig,
    /// The kind's own settings (input, output, ...), a JSON object.
    pub params: serde_json::Value,
    /// How far it has got.
    pub progress: Progress,
    /// Why it failed or was cancelled, when it did.
    pub error: Option<TaskError>,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    /// When a worker first started it.
    #[serde(default, with = "crate::timestamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    #[serde(default, with = "crate::timestamp::option")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Free-form labels from the creator (owner, source system...). Sorted by key in JSON.
    pub metadata: BTreeMap<String, String>,
    /// Which attempt this is: 1 for the first run, +1 per [restart](BatchTask::restart).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The earlier attempts, oldest first: how each ended. Empty until the task is restarted.
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
    /// The task this one is a partition of, for the child tasks of a partitioned task.
    #[serde(default)]
    pub parent_id: Option<TaskId>,
    /// Which partition of its parent this task runs, for child tasks.
    #[serde(default)]
    pub partition: Option<Partition>,
}

fn first_attempt() -> u32 {
    1
}

/// One partition of a partitioned task: the `index`-th (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Partition {
    /// From 0.
    pub index: u32,
    /// How many partitions the parent has.
    pub count: u32,
}

/// How an earlier attempt of a task ended, kept in the task's history when it is restarted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// How it ended: `failed` or `cancelled`.
    pub status: TaskStatus,
    /// Why.
    pub error: Option<TaskError>,
    /// When it started, if it did.
    #[serde(default, with = "crate::timestamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, with = "crate::timestamp::option")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Its progress when it ended.
    pub progress: Progress,
}

impl BatchTask {
    /// A new `pending` task from a validated `request`: the request's config or the default, its params
    /// and metadata, zero progress, no error, all timestamps `created_at` or unset.
    ///
    /// Fails with the request's validation error (see [`CreateTaskRequest::validate`]).
    pub fn new(
        id: TaskId,
        request: CreateTaskRequest,
        created_at: DateTime<Utc>,
    ) -> Result<BatchTask, ModelError> {
        request.validate()?;
        Ok(BatchTask {
            id,
            task_type: request.task_type,
            status: TaskStatus::Pending,
            config: request.config.unwrap_or_default(),
            params: request.params,
            progress: Progress::zero(created_at),
            error: None,
            created_at,
            updated_at: created_at,
            started_at: None,
            completed_at: None,
            metadata: request.metadata,
            attempt: 1,
            attempts: Vec::new(),
            parent_id: None,
            partition: None,
        })
    }

    /// Starts a new attempt of a failed or cancelled task at `at`: the ended attempt goes into
    /// [`attempts`](BatchTask::attempts), the task becomes `pending` again with no error, no start and
    /// no end, and its progress carries on (the new attempt resumes from the last checkpoint).
    /// [`ModelError::InvalidTransition`] (`INVALID_STATE`) for any other status, the task unchanged.
    ///
    /// ```
    /// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskStatus, TaskType, TransitionCause};
    /// use chrono::Utc;
    ///
    /// let now = Utc::now();
    /// let mut task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), now)?;
    /// task.transition(TaskStatus::Processing, TransitionCause::Requested, now)?;
    /// task.transition(TaskStatus::Failed, TransitionCause::Requested, now)?;
    /// task.restart(now)?;
    /// assert_eq!((task.status, task.attempt, task.attempts.len()), (TaskStatus::Pending, 2, 1));
    /// assert_eq!(task.attempts[0].status, TaskStatus::Failed);
    /// # Ok::<(), batch_model::ModelError>(())
    /// ```
    pub fn restart(&mut self, at: DateTime<Utc>) -> Result<(), ModelError> {
        let ended = AttemptRecord {
            attempt: self.attempt,
            status: self.status,
            error: self.error.clone(),
            started_at: self.started_at,
            ended_at: self.completed_at,
            progress: self.progress.clone(),
        };
        self.status = self.status.transition_to(TaskStatus::Pending, TransitionCause::Restart)?;
        self.attempts.push(ended);
        self.attempt = self.attempt.saturating_add(1);
        self.error = None;
        self.started_at = None;
        self.completed_at = None;
        self.updated_at = at;
        Ok(())
    }

    /// Moves the task to `next` if the state machine allows it for `cause` (see
    /// [`TaskStatus::can_transition`]), at time `at`; otherwise changes nothing and returns
    /// [`ModelError::InvalidTransition`] (`INVALID_STATE`).
    ///
    /// On success `updated_at` becomes `at`; entering `processing` sets `started_at` the first time only
    /// (a task requeued after a lease expiry keeps its first start); entering a terminal status sets
    /// `completed_at`. `error` is left to the caller.
    pub fn transition(
        &mut self,
        next: TaskStatus,
        cause: TransitionCause,
        at: DateTime<Utc>,
    ) -> Result<(), ModelError> {
        self.status = self.status.transition_to(next, cause)?;
        self.updated_at = at;
        if next == TaskStatus::Processing && self.started_at.is_none() {
            self.started_at = Some(at);
        }
        if next.is_terminal() {
            self.completed_at = Some(at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::ErrorCode;

    fn check_rejected(name: &str, reason: &str) {
        let error = name.parse::<TaskType>().unwrap_err();
        assert_eq!(error.code(), ErrorCode::ValidationError);
        assert_eq!(error, ModelError::InvalidTaskType { name: name.to_owned(), reason: reason.to_owned() });
    }

    #[test]
    fn built_in_names_parse_to_their_variants() {
        for task_type in TaskType::BUILT_IN {
            assert!(task_type.is_built_in());
            assert_eq!(task_type.as_str().parse::<TaskType>().unwrap(), task_type);
        }
    }

    #[test]
    fn custom_names_are_checked() {
        assert_eq!("a".parse::<TaskType>().unwrap(), TaskType::Custom("a".to_owned()));
        assert_eq!("x_9".parse::<TaskType>().unwrap().as_str(), "x_9");
        let longest = "z".repeat(TaskType::CUSTOM_NAME_MAX_LEN);
        assert!(longest.parse::<TaskType>().is_ok());
        check_rejected("", "must not be empty");
        check_rejected(&"z".repeat(65), "must be at most 64 characters, got 65");
        let charset = "must contain only lowercase letters a-z, digits 0-9 and underscores";
        for name in ["Train", "geo-enrich", "geo enrich", "café", "a.b"] {
            check_rejected(name, charset);
        }
    }

    #[test]
    fn a_built_in_name_is_not_a_valid_custom_name() {
        let error = TaskType::Custom("batch_process".to_owned()).validate().unwrap_err();
        assert!(matches!(error, ModelError::InvalidTaskType { ref name, .. } if name == "batch_process"));
    }

    #[test]
    fn deserialising_rejects_invalid_custom_names() {
        let error = serde_json::from_str::<TaskType>(r#""Bad Name""#).unwrap_err().to_string();
        assert!(error.starts_with(r#"invalid task type "Bad Name""#), "{error}");
        assert_eq!(serde_json::from_str::<TaskType>(r#""train""#).unwrap(), TaskType::Train);
    }

    fn new_task() -> BatchTask {
        let created_at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::BatchProcess), created_at).unwrap()
    }

    #[test]
    fn a_new_task_is_pending_with_defaults() {
        let task = new_task();
        assert_eq!(task.status, TaskStatus::Pending);
        assert_eq!(task.config, BatchConfig::default());
        assert_eq!(task.params, serde_json::json!({}));
        assert_eq!(task.progress, Progress::zero(task.created_at));
        assert_eq!((task.updated_at, task.started_at, task.completed_at), (task.created_at, None, None));
    }

    #[test]
    fn an_invalid_request_makes_no_task() {
        let request = CreateTaskRequest::new(TaskType::Train).with_params(serde_json::json!([1, 2]));
        let error = BatchTask::new(TaskId::new(), request, Utc::now()).unwrap_err();
        assert!(matches!(error, ModelError::InvalidRequest { ref field, .. } if field == "params"));
    }

    #[test]
    fn a_requeued_task_keeps_its_first_start() {
        let mut task = new_task();
        let first = task.created_at + TimeDelta::seconds(1);
        let requeued = first + TimeDelta::seconds(30);
        let second = requeued + TimeDelta::seconds(1);
        task.transition(TaskStatus::Processing, TransitionCause::Requested, first).unwrap();
        task.transition(TaskStatus::Pending, TransitionCause::LeaseExpired, requeued).unwrap();
        assert_eq!((task.status, task.updated_at, task.completed_at), (TaskStatus::Pending, requeued, None));
        task.transition(TaskStatus::Processing, TransitionCause::Requested, second).unwrap();
        assert_eq!((task.started_at, task.updated_at), (Some(first), second));
    }

    #[test]
    fn an_illegal_transition_changes_nothing() {
        let mut task = new_task();
        let before = task.clone();
        let error = task
            .transition(
                TaskStatus::Completed,
                TransitionCause::Requested,
                task.created_at + TimeDelta::seconds(5),
            )
            .unwrap_err();
        assert_eq!(
            error,
            ModelError::InvalidTransition { from: TaskStatus::Pending, to: TaskStatus::Completed }
        );
        assert_eq!(task, before);
    }

    #[test]
    fn cancelling_a_pending_task_completes_it_without_a_start() {
        let mut task = new_task();
        let at = task.created_at + TimeDelta::seconds(2);
        task.transition(TaskStatus::Cancelled, TransitionCause::Requested, at).unwrap();
        assert_eq!((task.started_at, task.completed_at), (None, Some(at)));
    }
}
