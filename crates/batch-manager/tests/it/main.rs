//! Integration tests of `batch-manager`: the task-store contract (run against every store) and the
//! SQLite store's behaviour on bad storage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod sqlite_faults;
mod store_conformance;
