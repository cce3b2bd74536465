//! Stderr shared by progress bars, notices and log lines: the bars live in one [`MultiProgress`],
//! and every other line written to stderr goes through it ([`eprint_line`], [`LogWriter`]), so a
//! line is printed above the bars instead of through them.

use std::io::{IsTerminal as _, Write as _};
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressDrawTarget};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Whether stderr is a terminal: live bars then, log lines otherwise.
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The command's progress bars, drawn on stderr when it is a terminal (hidden otherwise).
pub(crate) fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| {
        let target =
            if stderr_is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        MultiProgress::with_draw_target(target)
    })
}

/// Writes `bytes` to stderr with the bars cleared for the time of the write.
fn write_stderr(bytes: &[u8]) {
    bars().suspend(|| {
        let mut stderr = std::io::stderr().lock();
        // Nothing sensible is left to do when stderr itself fails.
        let _ = stderr.write_all(bytes).and_then(|()| stderr.flush());
    });
}

/// A line for the user on stderr (ids, notices), above any bars.
pub(crate) fn eprint_line(line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    write_stderr(&bytes);
}

/// The log subscriber's writer: gathers one event's text and writes it to stderr in one piece,
/// above the bars, when the event is done.
#[derive(Debug, Default)]
pub(crate) struct LogWriter {
    buffer: Vec<u8>,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            write_stderr(&self.buffer);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeLogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter::default()
    }
}

/// Makes a [`LogWriter`] per event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MakeLogWriter;
