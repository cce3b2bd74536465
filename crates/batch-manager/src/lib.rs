//! `batch-manager`: the task lifecycle of the pump batch system.

pub mod store;
