//! Integration tests of the `batch` binary: each test runs the real command in a temporary folder.

#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "in a test, a panic is the failure report")]

mod demo;
mod errors;
mod fleet;
mod lifecycle;
mod logs;
mod run;
mod support;
mod tables;
mod terminal;
