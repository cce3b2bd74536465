//! In-memory task store (tests, one process): the same rules as the SQLite store, kept in maps.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use batch_model::{BatchMetrics, BatchTask, ListTasksRequest, Progress, TaskId, TaskType};
use chrono::{DateTime, Utc};

use super::rules::{TaskRow, time_key};
use super::{
    Checkpoint, ClaimedTask, HeartbeatReply, LeaseRequest, StatusUpdate, StoreError, TaskOutcome, TaskPage,
    TaskResultRecord, TaskStore, WorkerId,
};

/// A [`TaskStore`] in memory: fast, faithful to the SQLite store's semantics (compare-and-set,
/// leases judged by the `now` passed in, checkpoint order, stop flags, metrics), and gone when dropped.
///
/// Every call takes one lock for its whole duration (never across an `.await`), so each call is
/// atomic, as a transaction is in SQLite.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// use batch_manager::store::memory::MemoryStore;
/// use batch_manager::store::{LeaseRequest, TaskStore, WorkerId};
/// use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskStatus, TaskType};
/// use chrono::Utc;
///
/// let store = MemoryStore::new();
/// let task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), Utc::now())?;
/// store.insert_task(&task).await?;
///
/// let lease = LeaseRequest { worker: WorkerId("worker-1".into()), ttl: Duration::from_secs(30), now: Utc::now() };
/// let claimed = store.claim_next(&[], &lease).await?.ok_or("no task to claim")?;
/// assert_eq!(claimed.task.id, task.id);
/// assert_eq!(claimed.task.status, TaskStatus::Processing);
/// assert!(store.claim_next(&[], &lease).await?.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tasks: HashMap<TaskId, Entry>,
}

#[derive(Debug)]
struct Entry {
    row: TaskRow,
    checkpoint: Option<Checkpoint>,
    result: Option<TaskResultRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No call leaves the state half-changed when it panics (each builds the new row before
        // storing it), so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn entry(&mut self, id: &TaskId) -> Result<&mut Entry, StoreError> {
        self.tasks.get_mut(id).ok_or(StoreError::NotFound { id: *id })
    }

    /// Applies `change` to a copy of the task's row and keeps the copy only if it succeeds.
    fn change<T>(
        &mut self,
        id: &TaskId,
        change: impl FnOnce(&mut TaskRow) -> Result<T, StoreError>,
    ) -> Result<(T, &mut Entry), StoreError> {
        let entry = self.entry(id)?;
        let mut row = entry.row.clone();
        let answer = change(&mut row)?;
        entry.row = row;
        Ok((answer, entry))
    }

    fn claim(&mut self, id: &TaskId, lease: &LeaseRequest) -> Option<ClaimedTask> {
        let entry = self.tasks.get_mut(id)?;
        let claim = entry.row.claim(lease)?;
        Some(ClaimedTask {
            task: entry.row.task.clone(),
            lease: claim.lease,
            checkpoint: entry.checkpoint.clone(),
            resumed: claim.resumed,
            stop_requested: claim.stop_requested,
        })
    }
}

/// Newest first: by creation time, then by id.
fn newest_first(task: &BatchTask) -> std::cmp::Reverse<(i64, TaskId)> {
    std::cmp::Reverse((time_key(task.created_at), task.id))
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn insert_task(&self, task: &BatchTask) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.tasks.contains_key(&task.id) {
            return Err(StoreError::Duplicate { id: task.id });
        }
        let entry = Entry { row: TaskRow::new(task.clone()), checkpoint: None, result: None };
        state.tasks.insert(task.id, entry);
        Ok(())
    }

    async fn task(&self, id: &TaskId) -> Result<Option<BatchTask>, StoreError> {
        Ok(self.state().tasks.get(id).map(|entry| entry.row.task.clone()))
    }

    async fn list_tasks(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError> {
        let state = self.state();
        let mut matching: Vec<&BatchTask> =
            state.tasks.values().map(|entry| &entry.row.task).filter(|task| request.matches(task)).collect();
        matching.sort_by_key(|task| newest_first(task));
        let total = matching.len() as u64;
        let tasks = matching
            .into_iter()
            .skip(usize::try_from(request.offset).unwrap_or(usize::MAX))
            .take(request.limit as usize)
            .cloned()
            .collect();
        Ok(TaskPage { tasks, total })
    }

    async fn update_status(&self, update: &StatusUpdate) -> Result<BatchTask, StoreError> {
        let mut state = self.state();
        let ((), entry) = state.change(&update.id, |row| row.update_status(update))?;
        Ok(entry.row.task.clone())
    }

    async fn claim_task(&self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
        let mut state = self.state();
        state.entry(id)?;
        Ok(state.claim(id, lease))
    }

    async fn claim_next(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let mut state = self.state();
        let now_key = time_key(lease.now);
        let oldest = state
            .tasks
            .values()
            .filter(|entry| entry.row.is_claimable(now_key))
            .map(|entry| &entry.row.task)
            .filter(|task| task_types.is_empty() || task_types.contains(&task.task_type))
            .min_by_key(|task| (time_key(task.created_at), task.id))
            .map(|task| task.id);
        Ok(oldest.and_then(|id| state.claim(&id, lease)))
    }

    async fn heartbeat(&self, id: &TaskId, lease: &LeaseRequest) -> Result<HeartbeatReply, StoreError> {
        let mut state = self.state();
        let (reply, _) = state.change(id, |row| row.heartbeat(lease))?;
        Ok(reply)
    }

    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let previous = state.entry(id)?.checkpoint.as_ref().map(|previous| previous.sequence);
        let ((), entry) =
            state.change(id, |row| row.commit_checkpoint(worker, previous, checkpoint, progress))?;
        entry.checkpoint = Some(checkpoint.clone());
        Ok(())
    }

    async fn update_progress(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.change(id, |row| row.update_progress(worker, progress))?;
        Ok(())
    }

    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.state().tasks.get(id).and_then(|entry| entry.checkpoint.clone()))
    }

    async fn finish_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError> {
        let mut state = self.state();
        let ((), entry) = state.change(id, |row| row.finish(worker, outcome))?;
        entry.result =
            Some(TaskResultRecord { result: outcome.result.clone(), metrics: outcome.metrics.clone() });
        Ok(entry.row.task.clone())
    }

    async fn release_task(
        &self,
        id: &TaskId,
        worker: &WorkerId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.change(id, |row| row.release(worker, now))?;
        Ok(())
    }

    async fn request_stop(&self, id: &TaskId, now: DateTime<Utc>) -> Result<BatchTask, StoreError> {
        let mut state = self.state();
        let ((), entry) = state.change(id, |row| row.request_stop(now))?;
        Ok(entry.row.task.clone())
    }

    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        Ok(self.state().tasks.get(id).and_then(|entry| entry.result.clone()))
    }

    async fn metrics(&self) -> Result<BatchMetrics, StoreError> {
        let state = self.state();
        Ok(BatchMetrics::from_tasks(state.tasks.values().map(|entry| &entry.row.task)))
    }
}
