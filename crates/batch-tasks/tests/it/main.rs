//! Integration tests of `batch-tasks`: one binary, a module per area.

#![allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]

mod partitions;
#[cfg(feature = "postgres")]
mod pg_tables;
mod youzan;
#[cfg(feature = "youzan-api")]
mod youzan_api;
