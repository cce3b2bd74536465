//! Integration tests of `batch serve`: a real server on a loopback port, driven over HTTP (and, in
//! `browser`, through the system's headless Chromium).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

mod api;
mod browser;
mod events;
mod security;
mod support;
