//! Where the hub learns about changes made outside this server's requests (its own workers, other
//! processes on the same store): a [`ChangeFeed`].
//!
//! Interim: the store has no change feed yet (`TaskStore::subscribe` is being added). Until then one
//! [`StorePoller`] per server looks at the store every `poll_interval` with three index-backed,
//! bounded listings — the newest tasks, the processing ones and the pending ones — plus one read per
//! task that left those lists since the last look. Its cost does not grow with the number of clients.
//! Switching to the store's feed replaces this file: a `ChangeFeed` that awaits the store's receiver
//! and loads the changed tasks.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::{StoreError, TaskStore};
use batch_model::{BatchTask, ListTasksRequest, TaskId, TaskStatus};

/// A source of task changes for the [`Hub`](super::Hub).
pub(crate) trait ChangeFeed: Send + 'static {
    /// Waits for the next changes and returns the changed tasks as they are now. May return tasks that
    /// did not change (the hub drops repeats). Cancel safe.
    fn changes(&mut self) -> impl Future<Output = Vec<BatchTask>> + Send;
}

/// Tasks one listing returns at most.
const PAGE: u32 = ListTasksRequest::LIMIT_MAX;

/// Newest tasks looked at each time (to catch tasks created and finished between two looks).
const NEWEST: u32 = 50;

/// Unfinished tasks followed at most.
const TRACKED_MAX: usize = 100_000;

/// The interim feed: looks at the store every `interval`.
pub(crate) struct StorePoller {
    store: Arc<dyn TaskStore>,
    interval: tokio::time::Interval,
    /// Unfinished tasks seen at the last look.
    tracked: HashSet<TaskId>,
}

impl StorePoller {
    /// A poller of `store`, and the unfinished tasks found now (for the hub to seed).
    pub(crate) async fn start(
        store: Arc<dyn TaskStore>,
        interval: Duration,
    ) -> Result<(StorePoller, Vec<BatchTask>), StoreError> {
        let mut interval = tokio::time::interval(interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poller = StorePoller { store, interval, tracked: HashSet::new() };
        let found = poller.look().await?;
        Ok((poller, found))
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
}

impl ChangeFeed for StorePoller {
    async fn changes(&mut self) -> Vec<BatchTask> {
        loop {
            self.interval.tick().await;
            match self.look().await {
                Ok(found) if !found.is_empty() => return found,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot look at the store for task changes"),
            }
        }
    }
}
