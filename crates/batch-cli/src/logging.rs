//! The `batch` binary's logs: the libraries' `tracing` events, filtered by `-v`/`-q` and
//! `RUST_LOG`, written to stderr as text or JSON lines, above the progress bars and never on stdout
//! (which carries `--json` documents).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::LogFormat;
use crate::failure::configuration;
use crate::terminal::{MakeLogWriter, stderr_is_terminal};

/// The level `-v`/`-q` ask for: errors by default (the command reports every outcome itself), one
/// more level per `-v`, nothing with `-q`.
pub(crate) fn level(verbose: u8, quiet: bool) -> LevelFilter {
    if quiet {
        return LevelFilter::OFF;
    }
    match verbose {
        0 => LevelFilter::ERROR,
        1 => LevelFilter::WARN,
        2 => LevelFilter::INFO,
        3 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Installs the subscriber for the whole process. `rust_log` (the `RUST_LOG` variable) adds
/// directives to `level` (`batch_manager=debug`) or replaces it (`info`); a bad directive is a
/// configuration error.
pub(crate) fn init(level: LevelFilter, rust_log: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse(rust_log.unwrap_or_default())
        .map_err(|error| configuration(format!("RUST_LOG: {error}")))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(MakeLogWriter);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(stderr_is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).flatten_event(true).try_init(),
    };
    // Only a second installation fails, which the binary does not do.
    installed.map_err(|error| configuration(format!("cannot install the log subscriber: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_steps_through_the_levels() {
        assert_eq!(level(0, false), LevelFilter::ERROR);
        assert_eq!(level(2, false), LevelFilter::INFO);
        assert_eq!(level(9, false), LevelFilter::TRACE);
        assert_eq!(level(3, true), LevelFilter::OFF);
    }
}
