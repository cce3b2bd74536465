//! The rules every store applies to a task's record: compare-and-set status changes, claims, leases,
//! checkpoint order and stop requests. [`MemoryStore`](super::memory::MemoryStore) and
//! [`SqliteStore`](super::sqlite::SqliteStore) both load a [`TaskRow`], apply one of these methods and
//! store the row back in one transaction, so the two cannot drift apart.

use std::time::Duration;

use batch_model::{BatchTask, ErrorCode, Progress, TaskError, TaskStatus, TransitionCause};
use chrono::{DateTime, TimeDelta, Utc};

use super::{
    Checkpoint, HeartbeatReply, Lease, LeaseRequest, StatusUpdate, StoreError, TaskOutcome, WorkerId,
};

/// A time as a sortable integer: nanoseconds since the Unix epoch, clamped to `i64` (the years
/// 1677 to 2262 are exact). Used for ordering by creation and comparing lease expiries.
pub(crate) fn time_key(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// `now + ttl`, or the latest representable time when that overflows.
pub(crate) fn lease_expiry(lease: &LeaseRequest) -> DateTime<Utc> {
    TimeDelta::from_std(lease.ttl)
        .ok()
        .and_then(|ttl| lease.now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A stored task with its lease and stop flag: what one row of the `tasks` table holds.
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
    /// A freshly inserted task: no lease, no stop request.
    pub(crate) fn new(task: BatchTask) -> TaskRow {
        TaskRow { task, lease_owner: None, lease_expires: None, stop_requested: false }
    }

    /// Whether a worker may claim the task at `now_key` (see the trait's "Leases").
    pub(crate) fn is_claimable(&self, now_key: i64) -> bool {
        match self.task.status {
            TaskStatus::Pending => true,
            TaskStatus::Processing => {
                self.lease_owner.is_none() || self.lease_expires.is_none_or(|expires| expires < now_key)
            }
            _ => false,
        }
    }

    /// The run time that counts in [`BatchMetrics`](batch_model::BatchMetrics): from `started_at` to
    /// `completed_at` of a finished task (zero if the clock went backwards), `None` otherwise.
    pub(crate) fn run_time(&self) -> Option<Duration> {
        let task = &self.task;
        match (task.status.is_terminal(), task.started_at, task.completed_at) {
            (true, Some(started_at), Some(completed_at)) => {
                Some((completed_at - started_at).to_std().unwrap_or(Duration::ZERO))
            }
            _ => None,
        }
    }

    fn transition(
        &mut self,
        to: TaskStatus,
        cause: TransitionCause,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let from = self.task.status;
        self.task.transition(to, cause, at).map_err(|_| StoreError::Conflict {
            id: self.task.id,
            expected: from,
            actual: from,
            to,
        })?;
        if to != TaskStatus::Processing {
            self.lease_owner = None;
            self.lease_expires = None;
            self.stop_requested = false;
        }
        Ok(())
    }

    /// A compare-and-set status change (see [`TaskStore::update_status`](super::TaskStore::update_status)).
    pub(crate) fn update_status(&mut self, update: &StatusUpdate) -> Result<(), StoreError> {
        if self.task.status != update.from {
            return Err(StoreError::Conflict {
                id: self.task.id,
                expected: update.from,
                actual: self.task.status,
                to: update.to,
            });
        }
        self.transition(update.to, update.cause, update.at)?;
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

    /// Claims the task for `lease.worker` if it is claimable at `lease.now`; `None` otherwise.
    pub(crate) fn claim(&mut self, lease: &LeaseRequest) -> Option<Claim> {
        if !self.is_claimable(time_key(lease.now)) {
            return None;
        }
        let resumed = self.task.status == TaskStatus::Processing;
        let mut claimed = self.clone();
        if resumed {
            // A takeover passes through `pending`, as the state machine describes a lapsed lease.
            claimed.transition(TaskStatus::Pending, TransitionCause::LeaseExpired, lease.now).ok()?;
        }
        claimed.transition(TaskStatus::Processing, TransitionCause::Requested, lease.now).ok()?;
        let expires_at = lease_expiry(lease);
        claimed.lease_owner = Some(lease.worker.clone());
        claimed.lease_expires = Some(time_key(expires_at));
        // The stop flag survives a takeover, so that the new holder stops the task.
        claimed.stop_requested = self.stop_requested;
        *self = claimed;
        Some(Claim {
            lease: Lease { worker: lease.worker.clone(), expires_at },
            resumed,
            stop_requested: self.stop_requested,
        })
    }

    /// `Ok` if `worker` holds the task; `LeaseLost` otherwise.
    pub(crate) fn check_holder(&self, worker: &WorkerId) -> Result<(), StoreError> {
        if self.task.status == TaskStatus::Processing && self.lease_owner.as_ref() == Some(worker) {
            Ok(())
        } else {
            Err(StoreError::LeaseLost { id: self.task.id, worker: worker.clone() })
        }
    }

    /// Renews the holder's lease.
    pub(crate) fn heartbeat(&mut self, lease: &LeaseRequest) -> Result<HeartbeatReply, StoreError> {
        self.check_holder(&lease.worker)?;
        self.lease_expires = Some(time_key(lease_expiry(lease)));
        Ok(HeartbeatReply { stop_requested: self.stop_requested })
    }

    /// Checks the holder and the checkpoint's sequence against the last committed one, and records
    /// the progress. The store writes the checkpoint itself.
    pub(crate) fn commit_checkpoint(
        &mut self,
        worker: &WorkerId,
        previous_sequence: Option<u64>,
        checkpoint: &Checkpoint,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.check_holder(worker)?;
        let expected = previous_sequence.unwrap_or(0).saturating_add(1);
        if checkpoint.sequence != expected {
            return Err(StoreError::CheckpointOutOfOrder {
                id: self.task.id,
                expected,
                got: checkpoint.sequence,
            });
        }
        self.task.progress = progress.clone();
        self.task.updated_at = checkpoint.committed_at;
        Ok(())
    }

    /// Records the holder's live progress.
    pub(crate) fn update_progress(
        &mut self,
        worker: &WorkerId,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.check_holder(worker)?;
        self.task.progress = progress.clone();
        self.task.updated_at = progress.updated_at;
        Ok(())
    }

    /// Ends the holder's task. The store writes the result record itself.
    pub(crate) fn finish(&mut self, worker: &WorkerId, outcome: &TaskOutcome) -> Result<(), StoreError> {
        self.check_holder(worker)?;
        if !outcome.status.is_terminal() {
            return Err(StoreError::Conflict {
                id: self.task.id,
                expected: TaskStatus::Processing,
                actual: TaskStatus::Processing,
                to: outcome.status,
            });
        }
        self.transition(outcome.status, TransitionCause::Requested, outcome.at)?;
        self.task.error = outcome.error.clone();
        self.task.progress = outcome.progress.clone();
        Ok(())
    }

    /// Hands the holder's task back: still `processing`, no holder, lease expired at `now`.
    pub(crate) fn release(&mut self, worker: &WorkerId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.check_holder(worker)?;
        self.lease_owner = None;
        self.lease_expires = Some(time_key(now));
        Ok(())
    }

    /// Cancels a pending (or abandoned processing) task, or flags a running one.
    pub(crate) fn request_stop(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        match self.task.status {
            TaskStatus::Processing if !self.is_claimable(time_key(now)) => {
                self.stop_requested = true;
                Ok(())
            }
            TaskStatus::Pending | TaskStatus::Processing => {
                let message = if self.task.status == TaskStatus::Pending {
                    "task stopped before it started"
                } else {
                    "task stopped while no worker held it; its last checkpoint is kept"
                };
                self.transition(TaskStatus::Cancelled, TransitionCause::Requested, now)?;
                self.task.error = Some(TaskError::new(ErrorCode::Cancelled, message).with_timestamp(now));
                Ok(())
            }
            actual => Err(StoreError::Conflict {
                id: self.task.id,
                expected: TaskStatus::Processing,
                actual,
                to: TaskStatus::Cancelled,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]
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
        let lease = LeaseRequest {
            worker: WorkerId("w".to_owned()),
            ttl: Duration::MAX,
            now: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        assert_eq!(lease_expiry(&lease), DateTime::<Utc>::MAX_UTC);
    }
}
