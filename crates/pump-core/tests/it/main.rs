//! Integration tests of `pump-core`, one binary with a module per area, using only the public API.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

mod errors;
#[cfg(all(feature = "json", feature = "csv"))]
mod files;
mod lifecycle;
mod memory;
mod operators;
mod reactive_streams;
mod time;
