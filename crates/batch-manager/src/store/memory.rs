//! In-memory task store (tests, one process): the same rules as the SQLite store, kept in maps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{BatchMetrics, BatchTask, ListTasksRequest, Progress, TaskId, TaskType};
use chrono::{DateTime, Utc};

use super::clock::{Clock, SystemClock};
use super::feed::ChangeFeed;
use super::rules::{ClaimResult, Family, TaskRow, check_children, time_key};
use super::{
    Checkpoint, ClaimedTask, HeartbeatReply, Holder, LeaseRequest, StatusUpdate, StoreError, TaskChanges,
    TaskOutcome, TaskPage, TaskResultRecord, TaskStore,
};

/// A [`TaskStore`] in memory: fast, faithful to the other stores' semantics (compare-and-set,
/// leases and epochs judged by its [`Clock`], checkpoint order, stop flags, partitions, metrics), and
/// gone when dropped.
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
/// let lease = LeaseRequest::new(WorkerId("worker-1".into()), Duration::from_secs(30));
/// let claimed = store.claim_next(&[], &lease).await?.ok_or("no task to claim")?;
/// assert_eq!((claimed.task.id, claimed.lease.epoch), (task.id, 1));
/// assert_eq!(claimed.task.status, TaskStatus::Processing);
/// assert!(store.claim_next(&[], &lease).await?.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    feed: ChangeFeed,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::with_clock(Arc::new(SystemClock))
    }
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
    /// An empty store on the system clock.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store that reads the time from `clock` (tests pass a
    /// [`ManualClock`](super::ManualClock)).
    pub fn with_clock(clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore { state: Mutex::new(State::default()), clock, feed: ChangeFeed::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No call leaves the state half-changed when it panics (each builds the new rows before
        // storing them), so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the current status of each of `ids` to the change feed.
    fn publish(&self, state: &State, ids: &[TaskId]) {
        let now = self.clock.now();
        for id in ids {
            if let Some(entry) = state.tasks.get(id) {
                self.feed.task(*id, entry.row.task.status, entry.row.is_claimable(now));
            }
        }
    }

    /// Applies `change` to a copy of the task's row and keeps the copy only if it succeeds; then, if
    /// the task is a partition, settles its family. Returns the answer, the task, and the ids of every
    /// task it changed (to publish once the caller is done).
    fn change<T>(
        state: &mut State,
        id: &TaskId,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut TaskRow) -> Result<T, StoreError>,
    ) -> Result<(T, BatchTask, Vec<TaskId>), StoreError> {
        let entry = state.entry(id)?;
        let mut row = entry.row.clone();
        let answer = change(&mut row)?;
        let parent_id = row.task.parent_id;
        entry.row = row;
        let task = entry.row.task.clone();
        let mut changed = vec![*id];
        if let Some(parent_id) = parent_id {
            changed.extend(state.with_family(&parent_id, |family| Ok(family.settle(now)))?);
        }
        Ok((answer, task, changed))
    }

    /// [`change`](Self::change) under the lock, publishing what changed.
    fn change_one<T>(
        &self,
        id: &TaskId,
        change: impl FnOnce(&mut TaskRow, DateTime<Utc>) -> Result<T, StoreError>,
    ) -> Result<(T, BatchTask), StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let (answer, task, changed) = Self::change(&mut state, id, now, |row| change(row, now))?;
        self.publish(&state, &changed);
        Ok((answer, task))
    }
}

impl State {
    fn entry(&mut self, id: &TaskId) -> Result<&mut Entry, StoreError> {
        self.tasks.get_mut(id).ok_or(StoreError::NotFound { id: *id })
    }

    /// Loads the family of `parent_id`, applies `change`, and stores every row back if it succeeds.
    /// Returns the ids of the parent and the children `change` reports as changed.
    fn with_family(
        &mut self,
        parent_id: &TaskId,
        change: impl FnOnce(&mut Family) -> Result<Vec<usize>, StoreError>,
    ) -> Result<Vec<TaskId>, StoreError> {
        let parent = self.entry(parent_id)?.row.clone();
        let children = self
            .tasks
            .values()
            .filter(|entry| entry.row.task.parent_id == Some(*parent_id))
            .map(|entry| entry.row.clone())
            .collect();
        let mut family = Family::new(parent, children);
        let changed = change(&mut family)?;
        let mut ids = vec![*parent_id];
        ids.extend(changed.iter().map(|idx| family.children[*idx].task.id));
        self.entry(parent_id)?.row = family.parent;
        for child in family.children {
            let id = child.task.id;
            self.entry(&id)?.row = child;
        }
        Ok(ids)
    }

    fn claim(
        &mut self,
        id: &TaskId,
        lease: &LeaseRequest,
        now: DateTime<Utc>,
    ) -> (Option<ClaimedTask>, Vec<TaskId>) {
        let Some(entry) = self.tasks.get_mut(id) else {
            return (None, Vec::new());
        };
        match entry.row.claim(lease, now) {
            ClaimResult::NotClaimable => (None, Vec::new()),
            ClaimResult::Claimed(claim) => {
                let claimed = ClaimedTask {
                    task: entry.row.task.clone(),
                    lease: claim.lease,
                    checkpoint: entry.checkpoint.clone(),
                    resumed: claim.resumed,
                    stop_requested: claim.stop_requested,
                };
                (Some(claimed), vec![*id])
            }
            ClaimResult::Quarantined => {
                let mut changed = vec![*id];
                if let Some(parent_id) = entry.row.task.parent_id {
                    changed.extend(
                        self.with_family(&parent_id, |family| Ok(family.settle(now))).unwrap_or_default(),
                    );
                }
                (None, changed)
            }
        }
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
        self.publish(&state, &[task.id]);
        Ok(())
    }

    async fn insert_tasks(&self, tasks: &[BatchTask]) -> Vec<Result<(), StoreError>> {
        let mut state = self.state();
        let mut inserted = Vec::new();
        let outcomes = tasks
            .iter()
            .map(|task| {
                if state.tasks.contains_key(&task.id) {
                    return Err(StoreError::Duplicate { id: task.id });
                }
                let entry = Entry { row: TaskRow::new(task.clone()), checkpoint: None, result: None };
                state.tasks.insert(task.id, entry);
                inserted.push(task.id);
                Ok(())
            })
            .collect();
        self.publish(&state, &inserted);
        outcomes
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
        let ((), task) = self.change_one(&update.id, |row, now| row.update_status(update, now))?;
        Ok(task)
    }

    async fn claim_task(&self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        state.entry(id)?;
        let (claimed, changed) = state.claim(id, lease, now);
        self.publish(&state, &changed);
        Ok(claimed)
    }

    async fn claim_next(
        &self,
        task_types: &[TaskType],
        lease: &LeaseRequest,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        loop {
            let oldest = state
                .tasks
                .values()
                .filter(|entry| entry.row.is_claimable(now))
                .map(|entry| &entry.row.task)
                .filter(|task| task_types.is_empty() || task_types.contains(&task.task_type))
                .min_by_key(|task| (time_key(task.created_at), task.id))
                .map(|task| task.id);
            let Some(id) = oldest else {
                return Ok(None);
            };
            let (claimed, changed) = state.claim(&id, lease, now);
            self.publish(&state, &changed);
            if claimed.is_some() {
                return Ok(claimed);
            }
            // Quarantined: it is no longer claimable; look again.
        }
    }

    async fn heartbeat(
        &self,
        id: &TaskId,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<HeartbeatReply, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        // A lease renewal changes nothing anyone watches: no change published.
        state.entry(id)?.row.heartbeat(holder, ttl, now)
    }

    async fn commit_checkpoint(
        &self,
        id: &TaskId,
        holder: &Holder,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let previous = state.entry(id)?.checkpoint.as_ref().map(|previous| previous.sequence);
        let ((), _, changed) = Self::change(&mut state, id, now, |row| {
            row.commit_checkpoint(holder, previous, checkpoint, progress, now)
        })?;
        state.entry(id)?.checkpoint = Some(checkpoint.clone());
        self.publish(&state, &changed);
        Ok(())
    }

    async fn update_progress(
        &self,
        id: &TaskId,
        holder: &Holder,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.change_one(id, |row, now| row.update_progress(holder, progress, now))?;
        Ok(())
    }

    async fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.state().tasks.get(id).and_then(|entry| entry.checkpoint.clone()))
    }

    async fn finish_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        outcome: &TaskOutcome,
    ) -> Result<BatchTask, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let ((), task, changed) = Self::change(&mut state, id, now, |row| row.finish(holder, outcome, now))?;
        state.entry(id)?.result =
            Some(TaskResultRecord { result: outcome.result.clone(), metrics: outcome.metrics.clone() });
        self.publish(&state, &changed);
        Ok(task)
    }

    async fn release_task(&self, id: &TaskId, holder: &Holder) -> Result<(), StoreError> {
        self.change_one(id, |row, now| row.release(holder, now))?;
        Ok(())
    }

    async fn request_stop(&self, id: &TaskId) -> Result<BatchTask, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let ((), task, mut changed) = Self::change(&mut state, id, now, |row| row.request_stop(now))?;
        let has_children = state.tasks.values().any(|entry| entry.row.task.parent_id == Some(*id));
        if has_children {
            changed.extend(state.with_family(id, |family| Ok(family.stop_children(now)))?);
        }
        self.publish(&state, &changed);
        Ok(task)
    }

    async fn restart_task(&self, id: &TaskId) -> Result<BatchTask, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let mut row = state.entry(id)?.row.clone();
        row.restart(now)?;
        let has_children = state.tasks.values().any(|entry| entry.row.task.parent_id == Some(*id));
        let mut changed = vec![*id];
        if has_children {
            changed = state.with_family(id, |family| {
                let restarted = family.restart_children(now)?;
                family.parent = row.clone();
                Ok(restarted)
            })?;
        } else {
            state.entry(id)?.row = row;
        }
        let task = state.entry(id)?.row.task.clone();
        self.publish(&state, &changed);
        Ok(task)
    }

    async fn split_task(
        &self,
        id: &TaskId,
        holder: &Holder,
        children: &[BatchTask],
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let parent = state.entry(id)?.row.clone();
        parent.check_holder(holder)?;
        check_children(&parent, children)?;
        if let Some(existing) = children.iter().find(|child| state.tasks.contains_key(&child.id)) {
            return Err(StoreError::Duplicate { id: existing.id });
        }
        // Checked by a dry run first, so that a refusal inserts nothing.
        let existing: Vec<TaskRow> = state
            .tasks
            .values()
            .filter(|entry| entry.row.task.parent_id == Some(*id))
            .map(|entry| entry.row.clone())
            .chain(children.iter().map(|child| TaskRow::new(child.clone())))
            .collect();
        Family::new(parent, existing).park(holder, now)?;
        for child in children {
            let entry = Entry { row: TaskRow::new(child.clone()), checkpoint: None, result: None };
            state.tasks.insert(child.id, entry);
        }
        let mut changed = state.with_family(id, |family| family.park(holder, now))?;
        changed.extend(children.iter().map(|child| child.id));
        self.publish(&state, &changed);
        Ok(())
    }

    async fn task_result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        Ok(self.state().tasks.get(id).and_then(|entry| entry.result.clone()))
    }

    async fn metrics(&self) -> Result<BatchMetrics, StoreError> {
        let state = self.state();
        Ok(BatchMetrics::from_tasks(state.tasks.values().map(|entry| &entry.row.task)))
    }

    fn subscribe(&self) -> TaskChanges {
        self.feed.subscribe()
    }
}
