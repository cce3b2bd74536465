//! Integration tests of `batch-tasks`: one binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

mod partitions;
#[cfg(feature = "postgres")]
mod pg_tables;
mod youzan;
#[cfg(feature = "youzan-api")]
mod youzan_api;
