//! `batch-tasks`: the task kinds of the pump batch system and the contract they implement.
//!
//! A task kind turns a task's params, config and last checkpoint into a real pipeline over real data
//! ([`TaskKind::run`]), committing checkpoints through the [`JobContext`] the manager hands it. Kinds
//! are registered by name in a [`Registry`]; users register their own kinds the same way.
//! [`builtin_registry`] holds the three built-in kinds. Each kind describes its params and the
//! config settings it honours ([`TaskKind::spec`], [`ParamSpec`]), so front ends are generated from
//! the kind rather than written per kind.
//!
//! Most kinds read records from a file and write records to another: [`records`] is the standard,
//! resumable chunk model they share (a [`records::RecordJob`] run by a [`records::ChunkRunner`]).
//!
//! [`batch_process`] holds the generic kind's logic: a filter language over JSON records, projection,
//! de-duplication and exact group-by aggregates, with a seeded data generator.
//!
//! With the feature `testing`, the module `testing` holds the job control the workspace's tests and benches run
//! kinds with, in memory.

pub mod batch_process;
mod builtin;
mod kind;
mod params;
pub mod records;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod train;
pub mod youzan;

pub use builtin::builtin_registry;
pub use kind::{JobContext, JobControl, JobOutcome, PartitionResult, Registry, TaskKind};
pub use params::{ConfigSetting, KindDescription, KindSpec, ParamRole, ParamSpec, ParamType};
