//! The rows a store last wrote or read of tasks that are held, with their versions: the starting
//! point of a holder's calls (heartbeat, checkpoint, progress, finish, release) without a lock.
//!
//! A group that finds its holder call's task here applies the call to this copy instead of locking
//! and reading the row, and its update says which version it started from (`rev`, schema 4). When
//! the row changed since — another store requested a stop, took the task over, or this store's
//! copy is simply older — the update fails with `batch.stale_task`, nothing of the group commits,
//! the copy is forgotten and the group runs again with the row locked and read. A call refused on
//! the copy is run again the same way before its answer is given, so a refusal is always judged on
//! the row as stored. The rules (`rules.rs`) stay the one judge either way: the copy only saves the
//! lock and the read when it is current, which for a holder's own task it nearly always is.
//!
//! Only tasks that are not partitions are kept (a partition's calls settle its family, which must
//! be locked), only those the store's own calls claimed or named as their holder's, and at most
//! [`CAPACITY`] of them: a store holds at most its workers' slots. A copy of a task taken over
//! elsewhere stays until the stale holder's next call finds it behind, or forever if none comes;
//! the cap bounds those.

use std::sync::Mutex;

use batch_model::{TaskId, TaskStatus};
use foldhash::HashMap;

use crate::store::rules::TaskRow;

/// Most rows kept.
const CAPACITY: usize = 65_536;

/// A held task's row as last written or read, its checkpoint sequence and its version.
#[derive(Debug, Clone)]
pub(super) struct HeldRow {
    pub(super) row: TaskRow,
    pub(super) sequence: Option<u64>,
    pub(super) rev: i64,
}

impl HeldRow {
    /// Whether a row in this state is kept: held (processing, with a lease owner), not waiting
    /// for partitions, and not a partition.
    fn keeps(row: &TaskRow) -> bool {
        row.task.status == TaskStatus::Processing
            && row.lease_owner.is_some()
            && !row.waiting
            && row.task.parent_id.is_none()
    }
}

/// The copies, shared by the store's groups.
#[derive(Debug, Default)]
pub(super) struct HeldRows {
    rows: Mutex<HashMap<TaskId, HeldRow>>,
}

impl HeldRows {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, HeldRow>> {
        // A panic while the map was held leaves it consistent (every change is one insert or remove).
        self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The copy of task `id`, if one is kept.
    pub(super) fn get(&self, id: &TaskId) -> Option<HeldRow> {
        self.rows().get(id).cloned()
    }

    /// Records rows as a committed group left them (row, checkpoint sequence, version): a row no
    /// longer held is forgotten; a held one replaces its copy, or becomes one if `wanted`. A copy
    /// newer than the one given (from a group that committed later but recorded first) stays.
    pub(super) fn record(
        &self,
        rows: impl IntoIterator<Item = (TaskRow, Option<u64>, i64)>,
        wanted: impl Fn(&TaskId) -> bool,
    ) {
        let mut kept = self.rows();
        for (row, sequence, rev) in rows {
            let id = row.task.id;
            if !HeldRow::keeps(&row) {
                kept.remove(&id);
                continue;
            }
            let newer_kept = kept.get(&id).map(|existing| existing.rev > rev);
            match newer_kept {
                Some(true) => {}
                None if kept.len() >= CAPACITY || !wanted(&id) => {}
                Some(false) | None => {
                    kept.insert(id, HeldRow { row, sequence, rev });
                }
            }
        }
    }

    /// Forgets the copies of `ids` (they may be stale).
    pub(super) fn forget(&self, ids: impl IntoIterator<Item = TaskId>) {
        let mut kept = self.rows();
        for id in ids {
            kept.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use batch_model::{BatchTask, CreateTaskRequest, TaskType};
    use chrono::Utc;

    use super::*;
    use crate::store::{LeaseRequest, WorkerId};

    fn held_row() -> TaskRow {
        let request = CreateTaskRequest::new(TaskType::Custom("held".to_owned()));
        let task = BatchTask::new(TaskId::new(), request, Utc::now()).expect("a valid request");
        let mut row = TaskRow::new(task);
        let lease = LeaseRequest::new(WorkerId("w".to_owned()), std::time::Duration::from_secs(30));
        assert!(matches!(row.claim(&lease, Utc::now()), crate::store::rules::ClaimResult::Claimed(_)));
        row
    }

    #[test]
    fn a_held_row_is_kept_when_wanted_and_replaced_only_by_a_version_as_new() {
        let held = HeldRows::default();
        let row = held_row();
        let id = row.task.id;
        held.record([(row.clone(), None, 3)], |_| false);
        assert!(held.get(&id).is_none(), "not wanted, not kept");
        held.record([(row.clone(), Some(1), 3)], |_| true);
        assert_eq!(held.get(&id).map(|copy| (copy.rev, copy.sequence)), Some((3, Some(1))));
        // An older version recorded late (its group committed first) does not replace a newer one;
        // a newer one replaces it even when not wanted (it is the store's own task already).
        held.record([(row.clone(), Some(0), 2)], |_| true);
        assert_eq!(held.get(&id).map(|copy| copy.rev), Some(3));
        held.record([(row.clone(), Some(2), 4)], |_| false);
        assert_eq!(held.get(&id).map(|copy| (copy.rev, copy.sequence)), Some((4, Some(2))));
        held.forget([id]);
        assert!(held.get(&id).is_none());
    }

    #[test]
    fn rows_no_longer_held_and_partitions_are_forgotten() {
        let held = HeldRows::default();
        let row = held_row();
        let id = row.task.id;
        held.record([(row.clone(), None, 1)], |_| true);
        let mut released = row.clone();
        released.lease_owner = None;
        held.record([(released.clone(), None, 2)], |_| true);
        assert!(held.get(&id).is_none(), "released: forgotten");

        held.record([(row.clone(), None, 3)], |_| true);
        let mut finished = row.clone();
        finished.task.status = TaskStatus::Completed;
        held.record([(finished.clone(), None, 4)], |_| true);
        assert!(held.get(&id).is_none(), "finished: forgotten");

        let mut partition = row.clone();
        partition.task.parent_id = Some(TaskId::new());
        held.record([(partition.clone(), None, 1)], |_| true);
        assert!(held.get(&id).is_none(), "a partition's calls lock its family: never kept");
        let mut waiting = row;
        waiting.waiting = true;
        held.record([(waiting.clone(), None, 1)], |_| true);
        assert!(held.get(&id).is_none(), "a parent waiting for its partitions: not held");
    }
}
