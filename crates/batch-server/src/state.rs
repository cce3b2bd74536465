//! The state every handler shares ([`AppState`]): the manager, the change hub, the tokens, the data
//! roots, the limits, the metrics, and the server's shutdown signal.

use std::sync::Arc;

use batch_manager::BatchManager;
use batch_tasks::Registry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{Limits, Tokens};
use crate::hub::Hub;
use crate::kinds::{self, KindsResponse};
use crate::metrics::ServerMetrics;
use crate::paths::DataRoots;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    manager: BatchManager,
    hub: Hub,
    tokens: Tokens,
    roots: DataRoots,
    limits: Limits,
    metrics: Arc<ServerMetrics>,
    kinds: KindsResponse,
    openapi: serde_json::Value,
    event_streams: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("manager", &self.inner.manager)
            .field("tokens", &self.inner.tokens)
            .field("roots", &self.inner.roots)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state of a server over `manager` (running the kinds in `registry`), accepting `tokens`,
    /// confining task paths to `roots`.
    pub fn new(
        manager: BatchManager,
        registry: &Registry,
        tokens: Tokens,
        roots: DataRoots,
        limits: Limits,
    ) -> AppState {
        let metrics = Arc::new(ServerMetrics::new());
        let kinds = kinds::describe_all(registry);
        let openapi = crate::openapi::document(&kinds);
        AppState {
            inner: Arc::new(Inner {
                hub: Hub::new(Arc::clone(&metrics)),
                event_streams: Arc::new(Semaphore::new(limits.event_streams)),
                openapi,
                manager,
                tokens,
                roots,
                limits,
                metrics,
                kinds,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The manager.
    pub fn manager(&self) -> &BatchManager {
        &self.inner.manager
    }

    /// The change hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The tokens.
    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The data roots.
    pub(crate) fn roots(&self) -> &DataRoots {
        &self.inner.roots
    }

    /// The limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &ServerMetrics {
        &self.inner.metrics
    }

    /// The kinds and their parameters.
    pub(crate) fn kinds(&self) -> &KindsResponse {
        &self.inner.kinds
    }

    /// The OpenAPI document.
    pub(crate) fn openapi(&self) -> &serde_json::Value {
        &self.inner.openapi
    }

    /// Permits for event streams.
    pub(crate) fn event_streams(&self) -> &Arc<Semaphore> {
        &self.inner.event_streams
    }

    /// Cancelled when the server shuts down: event streams end.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}
