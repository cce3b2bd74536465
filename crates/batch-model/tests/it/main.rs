//! Integration tests of `batch-model`: one module per area, through the public API only.

// In a test, a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

mod config;
mod golden;
mod metrics;
mod progress;
mod round_trip;
mod status;
