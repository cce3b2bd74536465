//! Integration tests of `batch-manager`: the task-store contract (run against every store), the
//! SQLite store's behaviour on bad storage, and the manager's lifecycle, stops, retries and crash
//! recovery with real task kinds over real files.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

mod crash;
mod fixtures;
mod kinds;
mod manager_lifecycle;
mod manager_partitions;
mod manager_retries;
mod manager_stop;
mod partitioned_kinds;
#[cfg(feature = "postgres")]
mod pg_attached;
mod pg_crash;
#[cfg(feature = "postgres")]
mod postgres;
mod quarantine;
mod sqlite_faults;
mod store_conformance;
