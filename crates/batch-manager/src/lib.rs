//! `batch-manager`: the task lifecycle of the pump batch system — create, run, checkpoint, retry, stop
//! and resume tasks on a durable store.
//!
//! A [`BatchManager`] works over a [`TaskStore`](store::TaskStore) (in memory for tests, SQLite by
//! default) and a [`Registry`](batch_tasks::Registry) of task kinds.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use async_trait::async_trait;
//! use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
//! use batch_manager::{BatchManager, ManagerConfig};
//! use batch_model::{BatchConfig, CreateTaskRequest, TaskError, TaskStatus, TaskType};
//! use batch_tasks::{JobContext, JobOutcome, Registry, TaskKind};
//!
//! /// A kind that finishes at once with a greeting.
//! struct Hello;
//!
//! #[async_trait]
//! impl TaskKind for Hello {
//!     fn task_type(&self) -> TaskType {
//!         TaskType::Custom("hello".to_owned())
//!     }
//!     fn validate(&self, _params: &serde_json::Value, _config: &BatchConfig) -> Result<(), TaskError> {
//!         Ok(())
//!     }
//!     async fn run(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
//!         let progress = job.task().progress.clone();
//!         Ok(JobOutcome::Completed { summary: serde_json::json!({ "greeting": "hello" }), progress })
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("tasks.db"), SqliteOptions::default())?;
//! let mut registry = Registry::new();
//! registry.register(Hello);
//! let manager = BatchManager::new(Arc::new(store), registry, ManagerConfig::default())?;
//!
//! let created = manager.create_task(CreateTaskRequest::new(TaskType::Custom("hello".to_owned()))).await?;
//! manager.process_task(&created.id).await?;
//! let task = manager.wait(&created.id).await?;
//! assert_eq!(task.status, TaskStatus::Completed);
//! let result = manager.task_result(&created.id).await?.ok_or("no result")?;
//! assert_eq!(result.result["greeting"], "hello");
//! manager.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # How a task runs
//!
//! - **Claims and leases.** `process_task` (a pending task), `resume_task` (a task whose worker died or
//!   released it) and the worker loop `run_worker` (`claim_next`, for many workers on one store)
//!   *claim* a task in the store: it becomes `processing` under this manager's lease for `lease_ttl`.
//!   A heartbeat per running task renews the lease every `heartbeat_interval`; if the lease is lost
//!   (another worker took the task over, or it could not be renewed before it expired), the run is
//!   aborted and records nothing more.
//! - **Checkpoints.** The kind commits a checkpoint after each durably written chunk
//!   (`JobControl::commit`), under the lease, in one store transaction with the progress. A claim hands
//!   the kind the last checkpoint, so a resumed task carries on after it (see
//!   [`batch_tasks::records`] for the standard chunk model and its byte-identical resume).
//! - **Stop.** `stop_task` flags the task in the store (and, if it runs here, at once). A task running
//!   in another process sees the flag at its next heartbeat. The kind stops at its next chunk
//!   boundary (`JobOutcome::Stopped`) and the task ends `cancelled` with a `CANCELLED` error and its
//!   last checkpoint kept; if it has not stopped after `stop_grace_period`, its in-flight work is
//!   aborted through the job's cancellation token.
//! - **Shutdown.** `shutdown` stops taking work and asks each running task to stop at a chunk
//!   boundary, then *releases* it: the task stays `processing`, claimable at once, and a later
//!   `resume_task` (or any worker) resumes it from its checkpoint.
//! - **Ends.** A completed kind's summary, final progress and [`ProcessingMetrics`] are stored with
//!   the task (`finish_task`); a failure records the kind's [`TaskError`] and the task ends `failed`.
//!   A panic in a kind fails its task (`PROCESSING_ERROR`), not the manager.
//!
//! [`ProcessingMetrics`]: batch_model::ProcessingMetrics
//! [`TaskError`]: batch_model::TaskError

mod config;
mod error;
mod manager;
mod run;
pub mod store;

pub use config::{MAX_CLAIMS_IN_FLIGHT, ManagerConfig};
pub use error::ManagerError;
pub use manager::{BatchManager, RunCounts};
