//! `GET /api/v1/tasks/{id}/dead-letters?limit&offset`: a page of a task's dead-letter file (the
//! rejected records with their line, code and message), read from the file the kind writes.
//!
//! The file must lie inside a data root like any task path. Reading skips `offset` records from the
//! start (the cost grows with the offset, not with the file), holds at most `limit` records of at most
//! [`RECORD_MAX`] bytes each, and runs on the blocking pool.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use batch_tasks::records::DeadLetterRecord;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::extract::{QueryParams, TaskIdPath};
use crate::routes::tasks::{OFFSET_MAX, whole_number};
use crate::state::AppState;

/// Records per page when no limit is given.
const DEFAULT_LIMIT: u64 = 50;
/// The largest page.
const LIMIT_MAX: u64 = 1000;
/// Longest dead-letter line served; a longer one is shown with its raw text cut.
pub(crate) const RECORD_MAX: usize = 64 * 1024;

/// The query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
}

/// The answer: a page of dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLettersResponse {
    /// The records on the page, in file order.
    pub dead_letters: Vec<DeadLetterRecord>,
    /// The page size asked for.
    pub limit: u64,
    /// Records skipped before the page.
    pub offset: u64,
    /// Whether records follow the page.
    pub has_more: bool,
}

/// The handler.
pub(crate) async fn list(
    State(state): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<DeadLettersResponse>, ServerError> {
    let limit = whole_number("limit", query.limit.as_deref(), LIMIT_MAX)?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return Err(ServerError::invalid("limit", format!("must be between 1 and {LIMIT_MAX}, got 0")));
    }
    let offset = whole_number("offset", query.offset.as_deref(), OFFSET_MAX)?.unwrap_or(0);
    let task = state.manager().get_task(&id).await?;
    let Some((param, path)) = state.kinds().dead_letter_path(&task.task_type, &task.params) else {
        return Ok(Json(DeadLettersResponse { dead_letters: Vec::new(), limit, offset, has_more: false }));
    };
    let path = state.roots().confine(&param, &path)?;
    let page =
        tokio::task::spawn_blocking(move || read_page(&path, offset, limit)).await.map_err(|error| {
            ServerError::Unavailable { reason: format!("the dead-letter reader stopped: {error}") }
        })??;
    Ok(Json(page))
}

fn read_page(path: &PathBuf, offset: u64, limit: u64) -> Result<DeadLettersResponse, ServerError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        // Not written yet: no dead letters so far.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DeadLettersResponse { dead_letters: Vec::new(), limit, offset, has_more: false });
        }
        Err(source) => return Err(ServerError::File { path: path.display().to_string(), source }),
    };
    let file_error = |source| ServerError::File { path: path.display().to_string(), source };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut index = 0u64;
    let mut dead_letters = Vec::new();
    loop {
        let (complete, cut) = read_line(&mut reader, &mut line).map_err(file_error)?;
        if !complete && line.is_empty() {
            return Ok(DeadLettersResponse { dead_letters, limit, offset, has_more: false });
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if index >= offset.saturating_add(limit) {
            return Ok(DeadLettersResponse { dead_letters, limit, offset, has_more: true });
        }
        if index >= offset {
            dead_letters.push(parse_record(&line, cut));
        }
        index += 1;
    }
}

/// Reads one line into `line` (cleared first), keeping at most [`RECORD_MAX`] bytes. Returns whether
/// a line was read (false at the end) and whether it was cut.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<(bool, bool)> {
    line.clear();
    let mut cut = false;
    let mut read_any = false;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((read_any, cut));
        }
        read_any = true;
        let (chunk, found_end) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        let room = RECORD_MAX.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        cut |= chunk.len() > room;
        let used = chunk.len() + usize::from(found_end);
        reader.consume(used);
        if found_end {
            return Ok((true, cut));
        }
    }
}

/// A dead-letter line as a record; a line that does not parse (cut, or written by something else)
/// is shown as a record of its own text.
fn parse_record(line: &[u8], cut: bool) -> DeadLetterRecord {
    if !cut && let Ok(record) = serde_json::from_slice::<DeadLetterRecord>(line) {
        return record;
    }
    let raw = String::from_utf8_lossy(line).into_owned();
    let message = if cut {
        format!("the dead-letter line is longer than {RECORD_MAX} bytes; its start is in raw")
    } else {
        "the dead-letter line is not a dead-letter record".to_owned()
    };
    DeadLetterRecord {
        line: 0,
        offset: 0,
        code: batch_model::ErrorCode::ValidationError,
        message,
        field: None,
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_skip_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut text = String::new();
        for line in 1..=5 {
            text.push_str(&format!(
                "{{\"line\":{line},\"offset\":0,\"code\":\"VALIDATION_ERROR\",\"message\":\"bad\",\"field\":null,\"raw\":\"x\"}}\n"
            ));
        }
        text.push_str(&"y".repeat(RECORD_MAX + 10));
        std::fs::write(&path, text).unwrap();
        let page = read_page(&path, 1, 2).unwrap();
        assert_eq!(page.dead_letters.iter().map(|record| record.line).collect::<Vec<_>>(), [2, 3]);
        assert!(page.has_more);
        let last = read_page(&path, 5, 10).unwrap();
        assert_eq!(last.dead_letters.len(), 1);
        assert!(last.dead_letters[0].message.contains("longer than"));
        assert_eq!(last.dead_letters[0].raw.len(), RECORD_MAX);
        assert!(!last.has_more);
        assert!(read_page(&dir.path().join("none"), 0, 10).unwrap().dead_letters.is_empty());
    }
}
