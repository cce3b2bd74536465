//! Integration tests of the `batch` binary: each test runs the real command in a temporary folder.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]
#![allow(clippy::print_stderr, reason = "the fleet scenarios report what they measured on stderr")]

mod demo;
mod errors;
mod fleet;
mod lifecycle;
mod logs;
mod run;
mod support;
mod tables;
mod terminal;
