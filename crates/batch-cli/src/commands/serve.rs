//! `batch serve`: the HTTP API, the dashboard and the Prometheus metrics over the task store, with
//! task slots in the same process, until SIGINT or SIGTERM (then a graceful shutdown: event streams
//! closed, running tasks checkpointed and handed back).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use batch::model::ErrorCode;
use batch_server::{ServeConfig, ServerError};
use clap::Args;

use crate::failure::coded;
use crate::store::{Access, StoreAddress, open_store};

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
}

/// Runs the server over the store at `db` until SIGINT or SIGTERM.
pub(crate) async fn serve(db: &StoreAddress, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig {
        addr: args.addr,
        workers: args.workers,
        token_file: args.token_file,
        read_token_file: args.read_token_file,
        data_roots: args.data_roots,
        ..ServeConfig::default()
    };
    let store = open_store(db, Access::Create).await?;
    batch_server::serve(config, store, shutdown_signal()).await.map_err(|error| server_error(&error))?;
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
