//! The stores' change feed: a bounded broadcast of [`TaskChange`]s that wakes idle workers and drives
//! live views without re-reading the task table.

use batch_model::{TaskId, TaskStatus};
use tokio::sync::broadcast;

/// One change to the stored tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskChange {
    /// The task was created or changed (status, progress, lease, checkpoint); its status now.
    Task {
        /// The task.
        id: TaskId,
        /// Its status after the change.
        status: TaskStatus,
        /// Whether a worker may claim it now (created, released, restarted, its partitions done):
        /// idle workers wake on these.
        claimable: bool,
    },
    /// Something changed that this store handle cannot name (another process wrote to a SQLite file,
    /// or a PostgreSQL listener reconnected and may have missed notifications): re-read what you show.
    Resync,
}

/// A subscription to a store's [`TaskChange`]s (a tokio broadcast receiver: bounded; a receiver that
/// falls behind gets `RecvError::Lagged` and should re-read what it shows).
pub type TaskChanges = broadcast::Receiver<TaskChange>;

/// How many changes a subscriber may fall behind before it lags: several groups' worth. A group
/// publishes its changes at once (up to a PostgreSQL group's 512 calls, or a bulk creation's
/// tasks), and a subscriber that hears every change of a fleet gets every worker's groups. With
/// room for two groups (1,024), a subscriber that missed one scheduling slice while four workers
/// committed lagged and re-read the store (a listing, or a count of every task by status), which
/// cost far more than the slots do (a few dozen bytes each): docs/BENCHMARKS.md, m3, session 11.
pub(crate) const FEED_CAPACITY: usize = 4096;

/// The sending side, owned by a store.
#[derive(Debug, Clone)]
pub(crate) struct ChangeFeed {
    sender: broadcast::Sender<TaskChange>,
}

impl Default for ChangeFeed {
    fn default() -> ChangeFeed {
        ChangeFeed { sender: broadcast::Sender::new(FEED_CAPACITY) }
    }
}

impl ChangeFeed {
    /// Publishes a change to every subscriber (none is fine).
    pub(crate) fn publish(&self, change: TaskChange) {
        let _ = self.sender.send(change);
    }

    /// Publishes that `id` changed and now has `status` (and whether it is claimable).
    pub(crate) fn task(&self, id: TaskId, status: TaskStatus, claimable: bool) {
        self.publish(TaskChange::Task { id, status, claimable });
    }

    /// A new subscription.
    pub(crate) fn subscribe(&self) -> TaskChanges {
        self.sender.subscribe()
    }

    /// Whether anyone listens.
    #[cfg(feature = "sqlite")]
    pub(crate) fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }
}
