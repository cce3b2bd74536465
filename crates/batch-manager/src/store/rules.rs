//! The rules every store applies to a task's record: compare-and-set status changes, claims, leases
//! and epochs, quarantine, checkpoint order, stop requests, restarts and the settling of a partitioned
//! task's family. The stores load a [`TaskRow`] (and, for a partition, its [`Family`]), apply one of
//! these methods with the store's own `now`, and store the rows back in one transaction, so the stores
//! cannot drift apart.

use std::time::Duration;

use batch_model::{BatchTask, ErrorCode, Progress, TaskError, TaskStatus, TransitionCause};
use chrono::{DateTime, TimeDelta, Utc};

use super::{
    Checkpoint, HeartbeatReply, Holder, Lease, LeaseRequest, StatusUpdate, StoreError, TaskOutcome, WorkerId,
};

/// The run time of a task, as [`TaskRow::run_time`] (without a row around it).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn run_time(task: &BatchTask) -> Option<Duration> {
    match (task.status.is_terminal(), task.started_at, task.completed_at) {
        (true, Some(started_at), Some(completed_at)) => {
            Some((completed_at - started_at).to_std().unwrap_or(Duration::ZERO))
        }
        _ => None,
    }
}

/// A time as a sortable integer: nanoseconds since the Unix epoch, clamped to `i64` (the years
/// 1677 to 2262 are exact). Used for ordering by creation and comparing lease expiries.
pub(crate) fn time_key(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// `now + ttl`, or the latest representable time when that overflows.
pub(crate) fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A stored task with its lease, epoch, stop flag and bookkeeping: what one row of the `tasks` table
/// holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskRow {
    /// The task record.
    pub(crate) task: BatchTask,
    /// The worker holding the task while it is `processing`; `None` otherwise, and after a release.
    pub(crate) lease_owner: Option<WorkerId>,
    /// When the lease lapses, as a [`time_key`].
    pub(crate) lease_expires: Option<i64>,
    /// Someone asked the task to stop while it was `processing`.
    pub(crate) stop_requested: bool,
    /// Bumped by every claim: the fencing token of the current (or last) holder.
    pub(crate) epoch: u64,
    /// Leases lost in a row (expired and taken over) without a checkpoint in between.
    pub(crate) lost_leases: u32,
    /// A partitioned parent waiting for its partitions: processing, unheld, not claimable.
    pub(crate) waiting: bool,
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimResult {
    /// The task is the claimer's now.
    Claimed(Claim),
    /// The task was not claimable; nothing changed.
    NotClaimable,
    /// The claim would have been one lost lease too many: the task ended `failed` instead.
    Quarantined,
}

/// What a successful claim changed, for the store to complete into a
/// [`ClaimedTask`](super::ClaimedTask).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The new lease.
    pub(crate) lease: Lease,
    /// The task was taken over from another worker.
    pub(crate) resumed: bool,
    /// A stop was requested before the claim.
    pub(crate) stop_requested: bool,
}

impl TaskRow {
    /// A freshly inserted task: no lease, no stop request, epoch 0.
    pub(crate) fn new(task: BatchTask) -> TaskRow {
        TaskRow {
            task,
            lease_owner: None,
            lease_expires: None,
            stop_requested: false,
            epoch: 0,
            lost_leases: 0,
            waiting: false,
        }
    }

    /// Whether a worker may claim the task at `now` (see the trait's "Leases and epochs").
    pub(crate) fn is_claimable(&self, now: DateTime<Utc>) -> bool {
        match self.task.status {
            TaskStatus::Pending => true,
            TaskStatus::Processing => {
                !self.waiting
                    && (self.lease_owner.is_none()
                        || self.lease_expires.is_none_or(|expires| expires < time_key(now)))
            }
            _ => false,
        }
    }

    /// Whether nobody holds the processing task: released, expired, or a parked parent.
    fn is_unheld(&self, now: DateTime<Utc>) -> bool {
        self.task.status == TaskStatus::Processing && (self.waiting || self.is_claimable(now))
    }

    /// The run time that counts in [`BatchMetrics`](batch_model::BatchMetrics): from `started_at` to
    /// `completed_at` of a finished task (zero if the clock went backwards), `None` otherwise.
    #[cfg(feature = "sqlite")]
    pub(crate) fn run_time(&self) -> Option<Duration> {
        run_time(&self.task)
    }

    fn conflict(&self, expected: TaskStatus, to: TaskStatus) -> StoreError {
        StoreError::Conflict { id: self.task.id, expected, actual: self.task.status, to }
    }

    fn transition(
        &mut self,
        to: TaskStatus,
        cause: TransitionCause,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let from = self.task.status;
        self.task.transition(to, cause, at).map_err(|_| self.conflict(from, to))?;
        if to != TaskStatus::Processing {
            self.clear_hold();
        }
        Ok(())
    }

    /// No holder, no stop flag, not waiting: how a task that left `processing` looks.
    fn clear_hold(&mut self) {
        self.lease_owner = None;
        self.lease_expires = None;
        self.stop_requested = false;
        self.waiting = false;
    }

    /// Ends a non-terminal task `to` (failed or cancelled) with `error`.
    fn end(&mut self, to: TaskStatus, error: TaskError, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.transition(to, TransitionCause::Requested, now)?;
        self.task.error = Some(error);
        Ok(())
    }

    /// A compare-and-set status change (see [`TaskStore::update_status`](super::TaskStore::update_status)).
    pub(crate) fn update_status(
        &mut self,
        update: &StatusUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.task.status != update.from {
            return Err(self.conflict(update.from, update.to));
        }
        if update.cause == TransitionCause::Restart {
            // Restarts keep their history: only `restart` may do them.
            return Err(self.conflict(update.from, update.to));
        }
        self.transition(update.to, update.cause, now)?;
        if matches!(update.to, TaskStatus::Failed | TaskStatus::Cancelled) {
            self.task.error = update.error.clone();
        }
        if update.to == TaskStatus::Processing {
            // Nobody holds a task set `processing` by hand: any worker may claim it.
            self.lease_owner = None;
            self.lease_expires = None;
        }
        Ok(())
    }

    /// Claims the task for `lease.worker` if it is claimable at `now`, bumping its epoch; or
    /// quarantines it (see the trait's "Quarantine").
    pub(crate) fn claim(&mut self, lease: &LeaseRequest, now: DateTime<Utc>) -> ClaimResult {
        if !self.is_claimable(now) {
            return ClaimResult::NotClaimable;
        }
        let resumed = self.task.status == TaskStatus::Processing;
        // A takeover from a worker that did not release the task: its lease ran out.
        let lost = resumed && self.lease_owner.is_some();
        let lost_leases = if lost { self.lost_leases.saturating_add(1) } else { self.lost_leases };
        if lost && lease.max_lost_leases > 0 && lost_leases >= lease.max_lost_leases {
            let message = format!(
                "quarantined: the task lost its worker {lost_leases} times in a row without committing a \
                 checkpoint (its kind may crash or hang its process); fix the cause, then restart it"
            );
            let error = TaskError::new(ErrorCode::ProcessingError, message)
                .with_details(serde_json::json!({ "lost_leases": lost_leases }))
                .with_timestamp(now)
                .not_retryable();
            self.lost_leases = lost_leases;
            return match self.end(TaskStatus::Failed, error, now) {
                Ok(()) => ClaimResult::Quarantined,
                Err(_) => ClaimResult::NotClaimable,
            };
        }
        // A takeover passes through `pending`, as the state machine describes a lapsed lease. The
        // steps are checked on the status before the row takes them, so that a refused claim changes
        // nothing.
        let takeover = (TaskStatus::Pending, TransitionCause::LeaseExpired);
        let start = (TaskStatus::Processing, TransitionCause::Requested);
        let steps = if resumed { &[takeover, start][..] } else { &[start][..] };
        let legal = steps
            .iter()
            .try_fold(self.task.status, |status, (to, cause)| status.transition_to(*to, *cause).ok())
            .is_some();
        if !legal {
            return ClaimResult::NotClaimable;
        }
        // The stop flag survives a takeover (which clears the hold), so that the new holder stops
        // the task.
        let stop_requested = self.stop_requested;
        for (to, cause) in steps {
            if self.transition(*to, *cause, now).is_err() {
                return ClaimResult::NotClaimable;
            }
        }
        let expires_at = expiry(now, lease.ttl);
        self.epoch = self.epoch.saturating_add(1);
        self.lease_owner = Some(lease.worker.clone());
        self.lease_expires = Some(time_key(expires_at));
        self.lost_leases = lost_leases;
        self.stop_requested = stop_requested;
        ClaimResult::Claimed(Claim {
            lease: Lease { worker: lease.worker.clone(), epoch: self.epoch, expires_at },
            resumed,
            stop_requested: self.stop_requested,
        })
    }

    /// `Ok` if `holder` holds the task under its epoch; `LeaseLost` otherwise.
    pub(crate) fn check_holder(&self, holder: &Holder) -> Result<(), StoreError> {
        if self.task.status == TaskStatus::Processing
            && !self.waiting
            && self.epoch == holder.epoch
            && self.lease_owner.as_ref() == Some(&holder.worker)
        {
            Ok(())
        } else {
            Err(StoreError::LeaseLost { id: self.task.id, holder: holder.clone() })
        }
    }

    /// Renews the holder's lease until `now + ttl`.
    pub(crate) fn heartbeat(
        &mut self,
        holder: &Holder,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<HeartbeatReply, StoreError> {
        self.check_holder(holder)?;
        let expires_at = expiry(now, ttl);
        self.lease_expires = Some(time_key(expires_at));
        Ok(HeartbeatReply { stop_requested: self.stop_requested, expires_at })
    }

    /// Checks the holder and the checkpoint's sequence against the last committed one, and records
    /// the progress. The store writes the checkpoint itself.
    pub(crate) fn commit_checkpoint(
        &mut self,
        holder: &Holder,
        previous_sequence: Option<u64>,
        checkpoint: &Checkpoint,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_holder(holder)?;
        let expected = previous_sequence.unwrap_or(0).saturating_add(1);
        if checkpoint.sequence != expected {
            return Err(StoreError::CheckpointOutOfOrder {
                id: self.task.id,
                expected,
                got: checkpoint.sequence,
            });
        }
        self.task.progress = progress.clone();
        self.task.updated_at = now;
        self.lost_leases = 0;
        Ok(())
    }

    /// Records the holder's live progress.
    pub(crate) fn update_progress(
        &mut self,
        holder: &Holder,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_holder(holder)?;
        self.task.progress = progress.clone();
        self.task.updated_at = now;
        Ok(())
    }

    /// Ends the holder's task. The store writes the result record itself.
    pub(crate) fn finish(
        &mut self,
        holder: &Holder,
        outcome: &TaskOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_holder(holder)?;
        if !outcome.status.is_terminal() {
            return Err(self.conflict(TaskStatus::Processing, outcome.status));
        }
        self.transition(outcome.status, TransitionCause::Requested, now)?;
        self.task.error = outcome.error.clone();
        self.task.progress = outcome.progress.clone();
        Ok(())
    }

    /// Hands the holder's task back: still `processing`, no holder, lease expired at `now`.
    pub(crate) fn release(&mut self, holder: &Holder, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.check_holder(holder)?;
        self.lease_owner = None;
        self.lease_expires = Some(time_key(now));
        Ok(())
    }

    /// Parks the holder's partitioned task until its partitions complete.
    pub(crate) fn park(&mut self, holder: &Holder, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.check_holder(holder)?;
        self.lease_owner = None;
        self.lease_expires = None;
        self.waiting = true;
        self.task.updated_at = now;
        Ok(())
    }

    /// Cancels a pending (or unheld processing) task, or flags a running one.
    pub(crate) fn request_stop(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        match self.task.status {
            TaskStatus::Processing if !self.is_unheld(now) => {
                self.stop_requested = true;
                Ok(())
            }
            TaskStatus::Pending | TaskStatus::Processing => {
                let message = if self.task.status == TaskStatus::Pending {
                    "task stopped before it started"
                } else if self.waiting {
                    "task stopped while it waited for its partitions; their checkpoints are kept"
                } else {
                    "task stopped while no worker held it; its last checkpoint is kept"
                };
                let error = TaskError::new(ErrorCode::Cancelled, message).with_timestamp(now);
                self.end(TaskStatus::Cancelled, error, now)
            }
            actual => Err(StoreError::Conflict {
                id: self.task.id,
                expected: TaskStatus::Processing,
                actual,
                to: TaskStatus::Cancelled,
            }),
        }
    }

    /// Starts a new attempt of a failed or cancelled task (see [`BatchTask::restart`]).
    pub(crate) fn restart(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let status = self.task.status;
        self.task.restart(now).map_err(|_| self.conflict(status, TaskStatus::Pending))?;
        self.clear_hold();
        self.lost_leases = 0;
        Ok(())
    }
}

/// A partitioned task and its partitions, loaded together so that a change to one settles the
/// others in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Family {
    /// The parent task.
    pub(crate) parent: TaskRow,
    /// Its partitions, by partition index.
    pub(crate) children: Vec<TaskRow>,
}

impl Family {
    /// A family from its rows (the children in any order).
    pub(crate) fn new(parent: TaskRow, mut children: Vec<TaskRow>) -> Family {
        children.sort_by_key(|child| (child.task.partition.map(|partition| partition.index), child.task.id));
        Family { parent, children }
    }

    /// Brings the parent in line with its partitions after a change to one of them: its progress is
    /// their sum; if one failed (or was cancelled) the running parent ends the same way and the other
    /// partitions are asked to stop; if all completed, the parked parent becomes claimable for its
    /// merge. Returns the indices of the children it changed (the parent always changes).
    pub(crate) fn settle(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        self.parent.task.progress = self.progress(now);
        self.parent.task.updated_at = now;
        if self.parent.task.status != TaskStatus::Processing {
            return Vec::new();
        }
        let ended = self
            .children
            .iter()
            .filter(|child| matches!(child.task.status, TaskStatus::Failed | TaskStatus::Cancelled))
            .min_by_key(|child| {
                (child.task.status != TaskStatus::Failed, child.task.partition.map(|p| p.index))
            });
        if let Some(child) = ended {
            let status = child.task.status;
            let index = child.task.partition.map_or(0, |partition| partition.index);
            let count = self.children.len();
            let cause = child.task.error.clone();
            let reason = cause
                .as_ref()
                .map_or_else(|| status.to_string(), |error| format!("{}: {}", error.code, error.message));
            let code = if status == TaskStatus::Failed {
                cause.as_ref().map_or(ErrorCode::ProcessingError, |error| error.code)
            } else {
                ErrorCode::Cancelled
            };
            let error =
                TaskError::new(code, format!("partition {} of {count} {status}: {reason}", index + 1))
                    .with_details(serde_json::json!({ "partition": index, "task_id": child.task.id }))
                    .with_timestamp(now)
                    .not_retryable();
            if self.parent.end(status, error, now).is_ok() {
                return self.stop_children(now);
            }
            return Vec::new();
        }
        let all_completed = self.children.iter().all(|child| child.task.status == TaskStatus::Completed);
        if all_completed && self.parent.waiting && !self.children.is_empty() {
            self.parent.waiting = false;
            self.parent.lease_owner = None;
            self.parent.lease_expires = Some(time_key(now));
        }
        Vec::new()
    }

    /// Parks the parent after its holder split it (the children are in the family already): if a
    /// stop was requested meanwhile, the parent ends `cancelled` and its partitions are stopped; if
    /// they all completed already (a restarted parent), it is claimable at once for its merge. The
    /// indices of the children it changed.
    pub(crate) fn park(&mut self, holder: &Holder, now: DateTime<Utc>) -> Result<Vec<usize>, StoreError> {
        self.parent.park(holder, now)?;
        if self.parent.stop_requested {
            self.parent.stop_requested = false;
            self.parent.request_stop(now)?;
            return Ok(self.stop_children(now));
        }
        Ok(self.settle(now))
    }

    /// Asks every unfinished partition to stop; the indices of those it changed.
    pub(crate) fn stop_children(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        let mut changed = Vec::new();
        for (idx, child) in self.children.iter_mut().enumerate() {
            if !child.task.status.is_terminal() && child.request_stop(now).is_ok() {
                changed.push(idx);
            }
        }
        changed
    }

    /// Restarts the failed and cancelled partitions of a parent being restarted; `Conflict` if one is
    /// still running. The indices of those it changed.
    pub(crate) fn restart_children(&mut self, now: DateTime<Utc>) -> Result<Vec<usize>, StoreError> {
        if let Some(running) = self.children.iter().find(|child| !child.task.status.is_terminal()) {
            return Err(StoreError::Conflict {
                id: running.task.id,
                expected: TaskStatus::Cancelled,
                actual: running.task.status,
                to: TaskStatus::Pending,
            });
        }
        let mut changed = Vec::new();
        for (idx, child) in self.children.iter_mut().enumerate() {
            if matches!(child.task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
                child.restart(now)?;
                changed.push(idx);
            }
        }
        Ok(changed)
    }

    /// The sum of the partitions' progress, timed from the parent's start.
    fn progress(&self, now: DateTime<Utc>) -> Progress {
        let sum =
            |field: fn(&Progress) -> u64| self.children.iter().map(|child| field(&child.task.progress)).sum();
        let total: Option<u64> = self.children.iter().map(|child| child.task.progress.total).sum();
        let started_at = self.parent.task.started_at.unwrap_or(now);
        let elapsed = (now - started_at).to_std().unwrap_or_default();
        let mut progress = Progress::compute(
            total,
            sum(|progress| progress.processed),
            sum(|progress| progress.failed),
            sum(|progress| progress.skipped),
            elapsed,
        );
        let completed =
            self.children.iter().filter(|child| child.task.status == TaskStatus::Completed).count();
        progress.message = Some(format!("{completed} of {} partitions completed", self.children.len()));
        progress.updated_at = now;
        progress
    }
}

/// Checks the children a holder offers to [`TaskStore::split_task`](super::TaskStore::split_task).
pub(crate) fn check_children(parent: &TaskRow, children: &[BatchTask]) -> Result<(), StoreError> {
    for child in children {
        if child.parent_id != Some(parent.task.id) || child.status != TaskStatus::Pending {
            return Err(StoreError::Conflict {
                id: child.id,
                expected: TaskStatus::Pending,
                actual: child.status,
                to: TaskStatus::Pending,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_order_like_times_and_clamp_outside_the_exact_range() {
        let early = DateTime::from_timestamp(1_700_000_000, 1).unwrap();
        let later = DateTime::from_timestamp(1_700_000_000, 2).unwrap();
        assert!(time_key(early) < time_key(later));
        assert_eq!(time_key(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(time_key(DateTime::<Utc>::MIN_UTC), i64::MIN);
    }

    #[test]
    fn an_endless_lease_expires_at_the_end_of_time_instead_of_overflowing() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(expiry(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
