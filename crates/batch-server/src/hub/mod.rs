//! The change hub: one per server, it learns of task changes once (from its change feed and from
//! the server's own requests) and fans each change out to every event stream through one bounded
//! broadcast channel, so a hundred open dashboards cost one store read per change, not one per client.
//!
//! The hub also drops repeats (a change it has already published, seen again by the feed), and feeds
//! the Prometheus counters of items and task durations from the changes it publishes.

mod feed;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use batch_model::{BatchTask, TaskId, TaskStatus, TaskSummary};
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub(crate) use feed::{ChangeFeed, StoreFeed};

use crate::metrics::ServerMetrics;

/// Changes a slow event stream may fall behind by before it is told it lagged.
const CHANNEL_CAPACITY: usize = 1024;

/// Finished tasks remembered (to drop repeats of their last change), oldest forgotten first.
const FINISHED_KEPT: usize = 4096;

/// Unfinished tasks remembered at most; past it, changes of further tasks are still published but
/// their repeats are not dropped.
const UNFINISHED_KEPT: usize = 200_000;

/// What the hub last published of a task.
#[derive(Debug, Clone, Copy)]
struct Last {
    updated_at: DateTime<Utc>,
    status: TaskStatus,
    processed: u64,
    failed: u64,
}

#[derive(Debug, Default)]
struct Seen {
    tasks: HashMap<TaskId, Last>,
    finished: VecDeque<TaskId>,
}

/// Fans task changes out to every subscriber. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Arc<TaskSummary>>,
    seen: Mutex<Seen>,
    metrics: Arc<ServerMetrics>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.inner.sender.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with no subscribers, counting into `metrics`.
    pub(crate) fn new(metrics: Arc<ServerMetrics>) -> Hub {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Hub { inner: Arc::new(Inner { sender, seen: Mutex::new(Seen::default()), metrics }) }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        // Plain inserts and removes: a poisoned lock still guards consistent maps.
        self.inner.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver of every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TaskSummary>> {
        self.inner.sender.subscribe()
    }

    /// Remembers `tasks` as already published, without publishing or counting them: the state found
    /// when the server starts.
    pub(crate) fn seed(&self, tasks: &[BatchTask]) {
        let mut seen = self.seen();
        for task in tasks {
            remember(&mut seen, task);
        }
    }

    /// Publishes `task` if it changed since the hub last saw it, and counts its progress.
    pub(crate) fn observe(&self, task: &BatchTask) {
        let previous = {
            let mut seen = self.seen();
            let previous = seen.tasks.get(&task.id).copied();
            // Changes can arrive out of order (a request's read racing the feed's): an older record,
            // or anything after the end, is not news.
            let stale = previous.is_some_and(|last| {
                last.updated_at > task.updated_at
                    || (last.updated_at == task.updated_at && last.status == task.status)
                    || (last.status.is_terminal() && !task.status.is_terminal())
            });
            if stale {
                return;
            }
            remember(&mut seen, task);
            previous
        };
        self.inner
            .metrics
            .task_changed(task, previous.map(|last| (last.status, last.processed, last.failed)));
        // No subscriber is not an error: the change is simply not needed by anyone.
        let _ = self.inner.sender.send(Arc::new(TaskSummary::from(task)));
    }

    /// Runs `feed` until `shutdown`, publishing what it reports.
    pub(crate) async fn follow(self, mut feed: impl ChangeFeed, shutdown: CancellationToken) {
        loop {
            let changes = tokio::select! {
                changes = feed.changes() => changes,
                () = shutdown.cancelled() => return,
            };
            for task in &changes {
                self.observe(task);
            }
        }
    }
}

fn remember(seen: &mut Seen, task: &BatchTask) {
    let last = Last {
        updated_at: task.updated_at,
        status: task.status,
        processed: task.progress.processed,
        failed: task.progress.failed,
    };
    let known = seen.tasks.contains_key(&task.id);
    if !known && seen.tasks.len() >= UNFINISHED_KEPT + FINISHED_KEPT {
        return;
    }
    let was_finished = seen.tasks.insert(task.id, last).is_some_and(|previous| previous.status.is_terminal());
    if task.status.is_terminal() && !was_finished {
        seen.finished.push_back(task.id);
        while seen.finished.len() > FINISHED_KEPT {
            if let Some(oldest) = seen.finished.pop_front() {
                seen.tasks.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use batch_model::{CreateTaskRequest, TaskType, TransitionCause};

    use super::*;

    fn task() -> BatchTask {
        BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), Utc::now()).unwrap()
    }

    #[test]
    fn each_change_reaches_every_subscriber_once() {
        let hub = Hub::new(Arc::new(ServerMetrics::new()));
        let mut first = hub.subscribe();
        let mut second = hub.subscribe();
        let mut task = task();
        hub.observe(&task);
        hub.observe(&task);
        task.updated_at += chrono::TimeDelta::milliseconds(5);
        task.transition(TaskStatus::Processing, TransitionCause::Requested, task.updated_at).unwrap();
        hub.observe(&task);
        for receiver in [&mut first, &mut second] {
            assert_eq!(receiver.try_recv().unwrap().status, TaskStatus::Pending);
            assert_eq!(receiver.try_recv().unwrap().status, TaskStatus::Processing);
            assert!(receiver.try_recv().is_err());
        }
    }

    #[test]
    fn seeded_tasks_are_not_published_again() {
        let hub = Hub::new(Arc::new(ServerMetrics::new()));
        let mut receiver = hub.subscribe();
        let task = task();
        hub.seed(std::slice::from_ref(&task));
        hub.observe(&task);
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn finished_tasks_are_forgotten_beyond_the_bound() {
        let mut seen = Seen::default();
        for _ in 0..FINISHED_KEPT + 10 {
            let mut task = task();
            task.transition(TaskStatus::Cancelled, TransitionCause::Requested, Utc::now()).unwrap();
            remember(&mut seen, &task);
        }
        assert_eq!(seen.tasks.len(), FINISHED_KEPT);
        assert_eq!(seen.finished.len(), FINISHED_KEPT);
    }
}
