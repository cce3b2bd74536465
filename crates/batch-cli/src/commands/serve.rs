//! `batch serve`: the HTTP API, the dashboard and the Prometheus metrics over the task store, with
//! task slots in the same process, until SIGINT or SIGTERM (then a graceful shutdown: event streams
//! closed, running tasks checkpointed and handed back).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use batch::model::ErrorCode;
use batch_server::{ServeConfig, ServerError};
use clap::{Args, ValueEnum};

use crate::failure::coded;

/// The options of `batch serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen. Without --token-file only a loopback address is accepted.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// Task slots run in this process (0: API only; workers run elsewhere).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) workers: usize,
    /// A file holding the token every request but /healthz must carry (Authorization: Bearer).
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// A file holding a second token that may only read.
    #[arg(long, value_name = "FILE")]
    pub(crate) read_token_file: Option<PathBuf>,
    /// A folder task paths must lie in (repeatable; default: the current folder).
    #[arg(long = "data-root", value_name = "DIR")]
    pub(crate) data_roots: Vec<PathBuf>,
    /// Log lines as text or as JSON objects (RUST_LOG filters them; default info).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn serve(db: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    let mut config = ServeConfig::new(db);
    config.addr = args.addr;
    config.workers = args.workers;
    config.token_file = args.token_file;
    config.read_token_file = args.read_token_file;
    config.data_roots = args.data_roots;
    batch_server::serve(config, shutdown_signal()).await.map_err(|error| server_error(&error))?;
    Ok(ExitCode::SUCCESS)
}

fn server_error(error: &ServerError) -> anyhow::Error {
    let code = match error.code() {
        "CONFIGURATION_ERROR" => ErrorCode::ConfigurationError,
        "VALIDATION_ERROR" => ErrorCode::ValidationError,
        "INVALID_STATE" => ErrorCode::InvalidState,
        _ => ErrorCode::StorageError,
    };
    coded(code, error.to_string())
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    // A second subscriber (there is none in this process) would be the only reason to fail.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
