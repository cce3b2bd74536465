//! In-memory task store (tests, one process).
