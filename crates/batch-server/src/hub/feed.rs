//! Where the hub learns about changes made outside this server's requests (its own workers, other
//! processes on the same store): a [`ChangeFeed`] over the store's change feed
//! (`TaskStore::subscribe`).
//!
//! [`StoreFeed`] waits for the store's next change, gathers the changes that follow for a short
//! window (so a task committing checkpoints in a burst costs one read per window, not one per
//! checkpoint), then reads each changed task once. When the store can only say that something
//! changed (`Resync`: another process wrote to the SQLite file) or this subscriber fell behind
//! (`Lagged`), it looks at the store with three bounded, index-backed listings — the newest tasks,
//! the processing ones and the pending ones — plus one read per task that left those lists since the
//! last look. Either way the cost is per change, never per client.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::{StoreError, TaskChange, TaskChanges, TaskStore};
use batch_model::{BatchTask, ListTasksRequest, TaskId, TaskStatus};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// A source of task changes for the [`Hub`](super::Hub).
pub(crate) trait ChangeFeed: Send + 'static {
    /// Waits for the next changes and returns the changed tasks as they are now. May return tasks that
    /// did not change (the hub drops repeats). Cancel safe: a change received and not yet returned is
    /// at worst seen again at the next look.
    fn changes(&mut self) -> impl Future<Output = Vec<BatchTask>> + Send;
}

/// Tasks one listing returns at most.
const PAGE: u32 = ListTasksRequest::LIMIT_MAX;

/// Newest tasks looked at in a look (to catch tasks created and finished between two looks).
const NEWEST: u32 = 50;

/// Unfinished tasks followed at most.
const TRACKED_MAX: usize = 100_000;

/// Changed tasks read in one go at most; past it, the feed looks at the store instead.
const BATCH_MAX: usize = 1024;

/// The store's change feed, read in windows.
pub(crate) struct StoreFeed {
    store: Arc<dyn TaskStore>,
    changes: TaskChanges,
    /// How long changes are gathered after the first one before they are read.
    window: Duration,
    /// Unfinished tasks seen at the last look.
    tracked: HashSet<TaskId>,
}

/// What a window gathered.
enum Gathered {
    /// These tasks changed.
    Tasks(HashSet<TaskId>),
    /// Something changed that the feed cannot name, or too much: look at the store.
    Look,
    /// The store's feed is gone.
    Closed,
}

impl StoreFeed {
    /// A feed of `store`'s changes read in windows of `window`, and the unfinished and newest tasks
    /// found now (for the hub to seed).
    pub(crate) async fn start(
        store: Arc<dyn TaskStore>,
        window: Duration,
    ) -> Result<(StoreFeed, Vec<BatchTask>), StoreError> {
        // Subscribe first, so nothing changes unseen between the look and the subscription.
        let changes = store.subscribe();
        let mut feed = StoreFeed { store, changes, window, tracked: HashSet::new() };
        let found = feed.look().await?;
        Ok((feed, found))
    }

    async fn list(&self, status: Option<TaskStatus>, limit: u32) -> Result<Vec<BatchTask>, StoreError> {
        let request = ListTasksRequest { status, limit, ..ListTasksRequest::default() };
        Ok(self.store.list_tasks(&request).await?.tasks)
    }

    /// One look: the newest, processing and pending tasks, and those tracked that left the lists.
    async fn look(&mut self) -> Result<Vec<BatchTask>, StoreError> {
        let mut found = self.list(None, NEWEST).await?;
        found.extend(self.list(Some(TaskStatus::Processing), PAGE).await?);
        found.extend(self.list(Some(TaskStatus::Pending), PAGE).await?);
        let listed: HashSet<TaskId> = found.iter().map(|task| task.id).collect();
        let left: Vec<TaskId> = self.tracked.iter().filter(|id| !listed.contains(id)).copied().collect();
        for id in left {
            if let Some(task) = self.store.task(&id).await? {
                found.push(task);
            }
        }
        self.tracked = found
            .iter()
            .filter(|task| !task.status.is_terminal())
            .map(|task| task.id)
            .take(TRACKED_MAX)
            .collect();
        Ok(found)
    }

    /// Reads the tasks in `ids`, in the order of their ids (creation order).
    async fn read(&mut self, ids: HashSet<TaskId>) -> Result<Vec<BatchTask>, StoreError> {
        let mut ids: Vec<TaskId> = ids.into_iter().collect();
        ids.sort();
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(task) = self.store.task(&id).await? {
                if task.status.is_terminal() {
                    self.tracked.remove(&task.id);
                } else if self.tracked.len() < TRACKED_MAX {
                    self.tracked.insert(task.id);
                }
                found.push(task);
            }
        }
        Ok(found)
    }

    /// Waits for a change, then gathers the changes that arrive within the window.
    async fn gather(&mut self) -> Gathered {
        let mut ids = HashSet::new();
        match self.changes.recv().await {
            Ok(TaskChange::Task { id, .. }) => {
                ids.insert(id);
            }
            Err(RecvError::Closed) => return Gathered::Closed,
            Ok(_) | Err(RecvError::Lagged(_)) => return Gathered::Look,
        }
        let deadline = tokio::time::Instant::now() + self.window;
        loop {
            let next = match self.changes.try_recv() {
                Ok(change) => Ok(change),
                Err(TryRecvError::Lagged(skipped)) => Err(RecvError::Lagged(skipped)),
                Err(TryRecvError::Closed) => return Gathered::Tasks(ids),
                Err(TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, self.changes.recv()).await {
                        Ok(next) => next,
                        Err(_window_over) => return Gathered::Tasks(ids),
                    }
                }
            };
            if matches!(next, Err(RecvError::Closed)) {
                return Gathered::Tasks(ids);
            }
            if !add(&mut ids, next) || ids.len() > BATCH_MAX {
                return Gathered::Look;
            }
        }
    }
}

/// Adds a received change's task to `ids`; false when it names none (a resync, a lag, the end).
fn add(ids: &mut HashSet<TaskId>, received: Result<TaskChange, RecvError>) -> bool {
    match received {
        Ok(TaskChange::Task { id, .. }) => {
            ids.insert(id);
            true
        }
        _ => false,
    }
}

impl ChangeFeed for StoreFeed {
    async fn changes(&mut self) -> Vec<BatchTask> {
        loop {
            let read = match self.gather().await {
                Gathered::Tasks(ids) => self.read(ids).await,
                Gathered::Look => self.look().await,
                Gathered::Closed => {
                    tracing::warn!("the store's change feed closed; live updates stop");
                    std::future::pending::<()>().await;
                    continue;
                }
            };
            match read {
                Ok(found) if !found.is_empty() => return found,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot read changed tasks from the store"),
            }
        }
    }
}
