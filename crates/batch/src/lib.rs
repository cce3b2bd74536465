//! `batch`: the pump batch system in one dependency — the stream library, the data model, the task
//! kinds and the task manager, re-exported as modules, with a [`prelude`] of the names most programs
//! need.
//!
//! This crate holds no logic: every item is defined in the crate its module names, and documented
//! there. The layers stay visible in the paths (`batch::core`, `batch::model`, `batch::tasks`,
//! `batch::manager`), so a program can see which part of the system it leans on, and a program that
//! needs only the stream library can depend on `pump-core` alone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use batch::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("records.jsonl");
//! batch::tasks::batch_process::write_json_lines(
//!     &input,
//!     &batch::tasks::batch_process::GeneratorConfig { records: 200, ..Default::default() },
//! )?;
//!
//! let store = SqliteStore::open(dir.path().join("batch.db"), SqliteOptions::default())?;
//! let manager = BatchManager::new(Arc::new(store), builtin_registry(), ManagerConfig::default())?;
//! let params = serde_json::json!({
//!     "input": input, "output": dir.path().join("big.jsonl"), "filter": "amount >= 100",
//! });
//! let request = CreateTaskRequest::new(TaskType::BatchProcess)
//!     .with_config(BatchConfig { batch_size: 50, ..BatchConfig::default() })
//!     .with_params(params);
//! let created = manager.create_task(request).await?;
//! manager.process_task(&created.id).await?;
//! let task = manager.wait(&created.id).await?;
//! assert_eq!(task.status, TaskStatus::Completed);
//! manager.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Runnable examples: `cargo run -p batch --example quickstart` (a train task on the SQLite store)
//! and `cargo run -p batch --example custom_processor` (a pump-core pipeline built at run time).

/// The stream library: sources, flows, sinks, pipelines ([`pump_core`]).
pub use pump_core as core;

/// The stream library under its own name (the same as [`core`]).
pub use pump_core as pump;

/// The data model: tasks, configs, statuses, progress, metrics, error codes ([`batch_model`]).
pub use batch_model as model;

/// The task kinds and the contract they implement ([`batch_tasks`]).
pub use batch_tasks as tasks;

/// The task lifecycle over a durable store ([`batch_manager`]).
pub use batch_manager as manager;

/// The names most programs need, from every layer, listed one by one.
pub mod prelude {
    pub use batch_manager::store::memory::MemoryStore;
    #[cfg(feature = "postgres")]
    pub use batch_manager::store::postgres::{Heard, PgOptions, PgStore};
    #[cfg(feature = "sqlite")]
    pub use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
    pub use batch_manager::{BatchManager, ManagerConfig, ManagerError};
    pub use batch_model::{
        BatchConfig, BatchMetrics, BatchTask, CreateTaskRequest, Durability, ErrorCode, ListTasksRequest,
        ProcessingMetrics, Progress, StopTaskRequest, TaskError, TaskId, TaskStatus, TaskType,
    };
    pub use batch_tasks::{
        ConfigSetting, JobContext, JobControl, JobOutcome, KindSpec, ParamSpec, ParamType, Registry,
        TaskKind, builtin_registry,
    };
    pub use pump_core::{
        BatchProcessor, Ctx, DeadLetter, DeadLetters, ErrorPolicy, Flow, FlowExt, Graph, OverflowStrategy,
        PipelineError, RetryPolicy, Sink, SinkExt, Source, SourceExt, flow, sink, source,
    };
}

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
