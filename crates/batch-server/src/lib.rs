//! `batch-server`: `batch serve` — the batch manager as a JSON API over HTTP, with live task events,
//! Prometheus metrics, a dashboard served from the binary, and task slots in the same process.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
//! use batch_server::{ServeConfig, serve};
//!
//! let store = SqliteStore::open("batch.db", SqliteOptions::default())?;
//! let config = ServeConfig { workers: 2, ..ServeConfig::default() };
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! // ... hand `stop` to whatever decides the server should end (a signal handler, say) ...
//! # drop(stop);
//! serve(config, Arc::new(store), async move { let _ = stopped.await; }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Key design decisions
//!
//! - **A view of the manager.** Handlers call [`BatchManager`] and answer with batch-model's types;
//!   the dashboard is a page that calls the same JSON routes, so the API tests cover what it shows.
//! - **One error type.** Handlers return `Result<_, ServerError>`; [`ServerError`] turns into
//!   `{"code", "message"}` with a status that fits the code (400, 401, 403, 404, 409, 413, 503).
//!   Layer-made errors (body limit, timeout, wrong method) get the same body. No input reaches a
//!   panic; a panic catcher stays as the last resort.
//! - **Secure by default.** Tokens for everything but `/healthz`, a read-only token, constant-time
//!   comparison; no token means loopback only; task paths confined to data roots; bounded bodies,
//!   time and concurrency; cross-site state changes refused; no CORS.
//! - **One change feed per server.** A [`Hub`](hub::Hub) learns each task change once and fans it
//!   out to every event stream, so open dashboards cost next to nothing.
//! - **A hand-written OpenAPI document** ([`openapi`]): it keeps batch-model free of a schema
//!   generator's derives and macros, and two checks keep it honest: a test that every route of the
//!   router is in it, and the schemathesis run in `cargo xtask ci` that fuzzes the server from it and
//!   checks every answer against it.

mod auth;
mod config;
mod error;
mod extract;
pub mod hub;
pub mod kinds;
mod metrics;
pub mod openapi;
mod paths;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use batch_manager::store::TaskStore;
use batch_manager::{BatchManager, ManagerConfig};

pub use auth::{COOKIE, Role};
pub use config::{Limits, ServeConfig, TOKEN_MIN_LEN, Tokens};
pub use error::{ErrorBody, FORBIDDEN, ServerError, UNAUTHORIZED};
pub use metrics::ServerMetrics;
pub use paths::DataRoots;
pub use routes::dead_letters::DeadLettersResponse;
pub use routes::session::SessionResponse;
pub use routes::tasks::CheckpointResponse;
pub use routes::{ROUTES, router};
pub use state::AppState;

/// A server bound to its address, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    workers: usize,
    event_window: std::time::Duration,
}

impl Server {
    /// Checks `config` (tokens, address, data roots) and binds the address, for a server over `store`
    /// (SQLite, PostgreSQL, or any [`TaskStore`]).
    pub async fn bind(config: ServeConfig, store: Arc<dyn TaskStore>) -> Result<Server, ServerError> {
        let tokens = Tokens::load(&config)?;
        let roots = DataRoots::new(&config.data_roots)?;
        let registry = batch_tasks::builtin_registry();
        let manager_config =
            ManagerConfig { max_concurrent_tasks: config.workers.max(1), ..config.manager.clone() };
        let manager = BatchManager::new(store, registry.clone(), manager_config)?;
        let state = AppState::new(manager, &registry, tokens, roots, config.limits.clone());
        Server::bind_state(state, config.addr, config.workers, config.event_window).await
    }

    /// Binds `addr` for a server over `state`, running `workers` task slots (0: none).
    pub async fn bind_state(
        state: AppState,
        addr: SocketAddr,
        workers: usize,
        event_window: std::time::Duration,
    ) -> Result<Server, ServerError> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Server { listener, state, workers, event_window })
    }

    /// The address it listens on (with the port chosen when it asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(|source| ServerError::Serve { source })
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: event streams end, requests in
    /// flight finish, running tasks stop at a chunk boundary and are handed back (checkpointed,
    /// claimable by any worker).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let Server { listener, state, workers, event_window } = self;
        let addr = self_addr(&listener);
        let manager = state.manager().clone();
        let stop = state.shutdown_token().clone();
        let (feed, found) = hub::StoreFeed::start(Arc::clone(manager.store()), event_window).await?;
        state.hub().seed(&found);
        let following = tokio::spawn(state.hub().clone().follow(feed, stop.clone()));
        let worker = (workers > 0).then(|| {
            let manager = manager.clone();
            tokio::spawn(async move {
                if let Err(error) = manager.run_worker().await {
                    tracing::error!(%error, "the worker loop stopped");
                }
            })
        });
        tracing::info!(%addr, workers, auth = state.tokens().required(), roots = ?state.roots().roots(), "serving");
        if !state.tokens().required() {
            tracing::warn!(%addr, "no --token-file: serving without tokens, on loopback only");
        }
        let signal = {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = stop.cancelled() => {}
                }
                tracing::info!("shutting down: closing event streams, handing running tasks back");
                stop.cancel();
            }
        };
        let app = router(state).into_make_service();
        let serving = {
            let stop = stop.clone();
            async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(signal).await;
                stop.cancel();
                served
            }
        };
        let (served, ()) = tokio::join!(serving, async {
            stop.cancelled().await;
            manager.shutdown().await;
        });
        let _ = following.await;
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        tracing::info!("server stopped");
        served.map_err(|source| ServerError::Serve { source })
    }
}

fn self_addr(listener: &tokio::net::TcpListener) -> String {
    listener.local_addr().map_or_else(|_| "?".to_owned(), |addr| addr.to_string())
}

/// Binds and serves `config` over `store` until `shutdown` completes (see [`Server::run`]).
pub async fn serve(
    config: ServeConfig,
    store: Arc<dyn TaskStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config, store).await?.run(shutdown).await
}
