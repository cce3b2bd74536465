//! The state every handler shares ([`AppState`]): the manager, the change hub, the tokens, the data
//! roots, the limits, the metrics, and the server's shutdown signal.

use std::sync::Arc;

use batch_manager::BatchManager;
use batch_model::BatchMetrics;
use batch_tasks::Registry;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{Limits, Tokens};
use crate::error::ServerError;
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
    /// The last task counts and when they were read (see [`AppState::task_counts`]).
    counts: tokio::sync::Mutex<Option<(tokio::time::Instant, BatchMetrics)>>,
}

/// How long task counts are served from memory: a hundred dashboards refreshing their counters
/// cost the store one grouped count a second, not one each.
const COUNTS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

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
                counts: tokio::sync::Mutex::new(None),
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

    /// Counts by status, success rate and durations across the store's tasks, at most
    /// [`COUNTS_FRESH`] old. One read at a time: callers arriving during a read wait for it and share
    /// its answer.
    pub(crate) async fn task_counts(&self) -> Result<BatchMetrics, ServerError> {
        let mut cached = self.inner.counts.lock().await;
        if let Some((read_at, counts)) = cached.as_ref()
            && read_at.elapsed() < COUNTS_FRESH
        {
            return Ok(counts.clone());
        }
        let counts = self.inner.manager.metrics().await?;
        *cached = Some((tokio::time::Instant::now(), counts.clone()));
        Ok(counts)
    }

    /// Cancelled when the server shuts down: event streams end.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use batch_manager::store::memory::MemoryStore;
    use batch_manager::{BatchManager, ManagerConfig};
    use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskType};

    use super::*;
    use crate::paths::DataRoots;

    #[tokio::test(start_paused = true)]
    async fn task_counts_are_read_at_most_once_a_second() {
        let store = Arc::new(MemoryStore::new());
        let registry = batch_tasks::builtin_registry();
        let manager = BatchManager::new(store.clone(), registry.clone(), ManagerConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let roots = DataRoots::new(&[dir.path().to_path_buf()]).unwrap();
        let state = AppState::new(manager, &registry, Tokens::default(), roots, Limits::default());
        assert_eq!(state.task_counts().await.unwrap().total_tasks, 0);
        let task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), chrono::Utc::now())
            .unwrap();
        batch_manager::store::TaskStore::insert_task(&*store, &task).await.unwrap();
        assert_eq!(state.task_counts().await.unwrap().total_tasks, 0, "served from memory");
        tokio::time::advance(COUNTS_FRESH).await;
        assert_eq!(state.task_counts().await.unwrap().total_tasks, 1, "read again after a second");
    }
}
