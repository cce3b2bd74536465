//! The `TaskStore` contract, each behaviour written once as a `check_*` function and run against every
//! store (in memory, SQLite in a temporary directory, and PostgreSQL on a fresh database of the shared
//! test cluster with feature `postgres`), so they cannot disagree.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::memory::MemoryStore;
use batch_manager::store::{
    Checkpoint, Counters, LeaseRequest, StatusUpdate, StoreError, TaskOutcome, TaskStore, WorkerId,
};
use batch_model::{
    BatchMetrics, BatchTask, ErrorCode, ListTasksRequest, ProcessingMetrics, Progress, TaskError, TaskId,
    TaskStatus, TaskType, TransitionCause,
};
use chrono::{DateTime, TimeDelta, Utc};

use crate::fixtures::{TICK, TTL, at, lease, sqlite_store, task_at, task_of, worker};

/// Runs each named check against a `MemoryStore`, a `SqliteStore` and (feature `postgres`) a
/// `PgStore` whose clock follows the checks' times (see `fixtures::pg::PinnedPg`).
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::MemoryStore::new()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (_dir, store) = crate::fixtures::sqlite_store();
                    super::$check(&store).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(store) = crate::fixtures::pg::pinned(stringify!($check)).await else { return };
                    super::$check(&store).await;
                }
            )*
        }
    };
}

conformance!(
    check_insert_get_and_duplicate,
    check_list_filters_by_status_and_type,
    check_list_pages_newest_first_with_total,
    check_every_status_change_by_compare_and_set,
    check_stale_compare_and_set_changes_nothing,
    check_claim_pending,
    check_claim_refused_while_leased,
    check_takeover_after_expiry_resumes_from_checkpoint,
    check_claim_next_takes_the_oldest_claimable_of_the_wanted_types,
    check_heartbeat_renews_only_for_the_holder,
    check_checkpoint_sequence_is_enforced,
    check_progress_updates_need_the_lease,
    check_finish_by_non_holder_is_refused,
    check_finish_stores_outcome_and_result,
    check_release_then_reclaim,
    check_request_stop_on_pending_processing_and_terminal,
    check_unknown_task_is_not_found,
    check_metrics_match_the_model,
);

async fn insert(store: &dyn TaskStore, task: &BatchTask) {
    store.insert_task(task).await.unwrap();
}

async fn stored(store: &dyn TaskStore, id: &TaskId) -> BatchTask {
    store.task(id).await.unwrap().expect("the task is stored")
}

fn update(task: &BatchTask, from: TaskStatus, to: TaskStatus, at: DateTime<Utc>) -> StatusUpdate {
    StatusUpdate { id: task.id, from, to, cause: TransitionCause::Requested, error: None, at }
}

/// Inserts a task and moves it to `status` through legal changes (no lease is held).
async fn task_in(store: &dyn TaskStore, status: TaskStatus, created_at: DateTime<Utc>) -> BatchTask {
    let task = task_at(created_at);
    insert(store, &task).await;
    if status == TaskStatus::Pending {
        return task;
    }
    if status == TaskStatus::Cancelled {
        let change = update(&task, TaskStatus::Pending, TaskStatus::Cancelled, created_at);
        return store.update_status(&change).await.unwrap();
    }
    let started = created_at + TimeDelta::seconds(1);
    let processing = store
        .update_status(&update(&task, TaskStatus::Pending, TaskStatus::Processing, started))
        .await
        .unwrap();
    if status == TaskStatus::Processing {
        return processing;
    }
    let finished = started + TimeDelta::seconds(1);
    store.update_status(&update(&task, TaskStatus::Processing, status, finished)).await.unwrap()
}

fn checkpoint(sequence: u64, committed_at: DateTime<Utc>) -> Checkpoint {
    Checkpoint {
        sequence,
        source: serde_json::json!({ "offset": sequence * 4096, "line": sequence * 100 }),
        sink: serde_json::json!({ "output": sequence * 2048, "dead_letters": 0 }),
        counters: Counters { processed: sequence * 100, failed: 1, skipped: 2, retried: 3 },
        state: serde_json::json!({ "epoch": sequence, "weights": [0.5, -1.25, 3.0e-7] }),
        committed_at,
    }
}

fn progress(processed: u64, updated_at: DateTime<Utc>) -> Progress {
    let mut progress = Progress::compute(Some(1000), processed, 1, 2, Duration::from_millis(1500));
    progress.message = Some(format!("{processed} done"));
    progress.updated_at = updated_at;
    progress
}

fn outcome(status: TaskStatus, at: DateTime<Utc>) -> TaskOutcome {
    let error = (status != TaskStatus::Completed).then(|| {
        TaskError::new(ErrorCode::ProcessingError, "the sink failed")
            .with_details(serde_json::json!({ "line": 7 }))
            .with_timestamp(at)
    });
    TaskOutcome {
        status,
        error,
        result: serde_json::json!({ "orders": 42, "gmv": "1234.50" }),
        progress: progress(997, at),
        metrics: ProcessingMetrics {
            total_items: 1000,
            processed_items: 997,
            failed_items: 1,
            retried_items: 3,
            skipped_items: 2,
            start_time: Some(at - TimeDelta::seconds(10)),
            end_time: Some(at),
            duration: Duration::from_millis(9_500),
        },
        at,
    }
}

fn assert_code(result: Result<impl std::fmt::Debug, StoreError>, code: ErrorCode) -> StoreError {
    let error = result.expect_err("the call should fail");
    assert_eq!(error.code(), code, "{error}");
    error
}

fn assert_lease_lost(result: Result<impl std::fmt::Debug, StoreError>, id: TaskId, who: &str) {
    match assert_code(result, ErrorCode::InvalidState) {
        StoreError::LeaseLost { id: lost, worker } => {
            assert_eq!((lost, worker.0.as_str()), (id, who));
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

async fn check_insert_get_and_duplicate(store: &dyn TaskStore) {
    let task = task_of(TaskType::Train, at(0));
    insert(store, &task).await;
    assert_eq!(store.task(&task.id).await.unwrap(), Some(task.clone()));

    let mut again = task_at(at(5));
    again.id = task.id;
    let error = assert_code(store.insert_task(&again).await, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::Duplicate { id } if id == task.id));
    assert_eq!(error.to_string(), format!("task {} already exists", task.id));
    assert_eq!(stored(store, &task.id).await, task, "a duplicate insert changes nothing");

    assert_eq!(store.task(&TaskId::new()).await.unwrap(), None);
}

async fn check_list_filters_by_status_and_type(store: &dyn TaskStore) {
    let train = task_of(TaskType::Train, at(0));
    let youzan = task_of(TaskType::YouzanOrder, at(1));
    let custom = task_of(TaskType::Custom("geo_enrich".to_owned()), at(2));
    for task in [&train, &youzan, &custom] {
        insert(store, task).await;
    }
    let cancelled = task_in(store, TaskStatus::Cancelled, at(3)).await;
    let processing = task_in(store, TaskStatus::Processing, at(4)).await;

    let list = |status, task_type| ListTasksRequest { status, task_type, ..ListTasksRequest::default() };
    let ids = |page: batch_manager::store::TaskPage| -> (Vec<TaskId>, u64) {
        (page.tasks.iter().map(|task| task.id).collect(), page.total)
    };

    let everything = ids(store.list_tasks(&list(None, None)).await.unwrap());
    assert_eq!(everything, (vec![processing.id, cancelled.id, custom.id, youzan.id, train.id], 5));
    let pending = ids(store.list_tasks(&list(Some(TaskStatus::Pending), None)).await.unwrap());
    assert_eq!(pending, (vec![custom.id, youzan.id, train.id], 3));
    let of_type = store.list_tasks(&list(None, Some(TaskType::YouzanOrder))).await.unwrap();
    assert_eq!(of_type.tasks, vec![youzan.clone()]);
    let custom_only =
        ids(store.list_tasks(&list(None, Some(TaskType::Custom("geo_enrich".to_owned())))).await.unwrap());
    assert_eq!(custom_only, (vec![custom.id], 1));
    let both = ids(store
        .list_tasks(&list(Some(TaskStatus::Processing), Some(TaskType::BatchProcess)))
        .await
        .unwrap());
    assert_eq!(both, (vec![processing.id], 1));
    let none = ids(store.list_tasks(&list(Some(TaskStatus::Failed), Some(TaskType::Train))).await.unwrap());
    assert_eq!(none, (vec![], 0));
    let listed = store.list_tasks(&list(Some(TaskStatus::Cancelled), None)).await.unwrap();
    assert_eq!(listed.tasks, vec![cancelled], "listed tasks are whole records");
}

async fn check_list_pages_newest_first_with_total(store: &dyn TaskStore) {
    let mut tasks = Vec::new();
    for idx in 0..25 {
        let task = task_at(at(idx));
        insert(store, &task).await;
        tasks.push(task);
    }
    // Two tasks created at the same instant are ordered by id (ids are time ordered).
    let mut twin = task_at(at(24));
    twin.id = TaskId::new();
    insert(store, &twin).await;
    tasks.push(twin);
    let newest_first: Vec<TaskId> = tasks.iter().rev().map(|task| task.id).collect();

    let mut seen = Vec::new();
    for offset in [0, 10, 20] {
        let request = ListTasksRequest { limit: 10, offset, ..ListTasksRequest::default() };
        let page = store.list_tasks(&request).await.unwrap();
        assert_eq!(page.total, 26);
        assert_eq!(page.tasks.len(), if offset == 20 { 6 } else { 10 });
        seen.extend(page.tasks.iter().map(|task| task.id));
    }
    assert_eq!(seen, newest_first);

    let beyond = ListTasksRequest { limit: 10, offset: 26, ..ListTasksRequest::default() };
    let page = store.list_tasks(&beyond).await.unwrap();
    assert_eq!((page.tasks.len(), page.total), (0, 26));
    let far_beyond = ListTasksRequest { offset: u64::MAX, ..beyond };
    assert_eq!(store.list_tasks(&far_beyond).await.unwrap().tasks, vec![]);
}

async fn check_every_status_change_by_compare_and_set(store: &dyn TaskStore) {
    let causes = [TransitionCause::Requested, TransitionCause::LeaseExpired];
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            for cause in causes {
                let task = task_in(store, from, at(0)).await;
                let when = at(100);
                let error = TaskError::new(ErrorCode::Cancelled, "stopped").with_timestamp(when);
                let change =
                    StatusUpdate { cause, error: Some(error.clone()), ..update(&task, from, to, when) };
                let result = store.update_status(&change).await;
                let case = format!("{from} -> {to} ({cause:?})");
                if TaskStatus::can_transition(from, to, cause) {
                    let changed = result.unwrap_or_else(|error| panic!("{case}: {error}"));
                    let mut expected = task.clone();
                    expected.transition(to, cause, when).unwrap();
                    if matches!(to, TaskStatus::Failed | TaskStatus::Cancelled) {
                        expected.error = Some(error);
                    }
                    assert_eq!(changed, expected, "{case}");
                    assert_eq!(stored(store, &task.id).await, expected, "{case}");
                } else {
                    let error = result.expect_err(&case);
                    assert_eq!(error.code(), ErrorCode::InvalidState, "{case}");
                    assert!(
                        matches!(error, StoreError::Conflict { expected, actual, to: asked, .. }
                            if expected == from && actual == from && asked == to),
                        "{case}: {error:?}"
                    );
                    assert_eq!(
                        error.to_string(),
                        format!("task {} is {from}: it cannot change to {to}", task.id)
                    );
                    assert_eq!(stored(store, &task.id).await, task, "{case}: unchanged");
                }
            }
        }
    }
}

async fn check_stale_compare_and_set_changes_nothing(store: &dyn TaskStore) {
    let task = task_in(store, TaskStatus::Processing, at(0)).await;
    // A caller that still believes the task is pending must not cancel it.
    let stale = update(&task, TaskStatus::Pending, TaskStatus::Cancelled, at(10));
    let error = assert_code(store.update_status(&stale).await, ErrorCode::InvalidState);
    assert!(matches!(
        error,
        StoreError::Conflict { expected: TaskStatus::Pending, actual: TaskStatus::Processing, .. }
    ));
    assert_eq!(
        error.to_string(),
        format!("task {} is processing, not pending: cannot change it to cancelled", task.id)
    );
    assert_eq!(stored(store, &task.id).await, task);
}

async fn check_claim_pending(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    let claimed = store.claim_task(&task.id, &lease("a", at(10))).await.unwrap().unwrap();
    assert_eq!(claimed.task.status, TaskStatus::Processing);
    assert_eq!(claimed.task.started_at, Some(at(10)));
    assert_eq!(claimed.lease.worker, worker("a"));
    assert_eq!(claimed.lease.expires_at, at(10) + TimeDelta::from_std(TTL).unwrap());
    assert_eq!((claimed.resumed, claimed.stop_requested, claimed.checkpoint), (false, false, None));
    assert_eq!(stored(store, &task.id).await, claimed.task);
}

async fn check_claim_refused_while_leased(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    store.claim_task(&task.id, &lease("a", at(10))).await.unwrap().unwrap();
    let held = stored(store, &task.id).await;
    // Still leased just before, and at, the expiry instant (30 s later): only strictly after it lapses.
    for now in [at(11), at(39), at(40)] {
        assert_eq!(store.claim_task(&task.id, &lease("b", now)).await.unwrap(), None);
        assert_eq!(store.claim_next(&[], &lease("b", now)).await.unwrap(), None);
    }
    // The holder cannot claim it twice either.
    assert_eq!(store.claim_task(&task.id, &lease("a", at(12))).await.unwrap(), None);
    assert_eq!(stored(store, &task.id).await, held);

    let done = task_in(store, TaskStatus::Completed, at(1)).await;
    assert_eq!(store.claim_task(&done.id, &lease("b", at(50))).await.unwrap(), None);
}

async fn check_takeover_after_expiry_resumes_from_checkpoint(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    store.claim_task(&task.id, &lease("a", at(10))).await.unwrap().unwrap();
    let saved = checkpoint(1, at(15));
    store.commit_checkpoint(&task.id, &worker("a"), &saved, &progress(100, at(15))).await.unwrap();

    // Worker a's lease ran out at 40 s; b takes over just after.
    let later = at(40) + TICK;
    let taken = store.claim_task(&task.id, &lease("b", later)).await.unwrap().unwrap();
    assert!(taken.resumed);
    assert!(!taken.stop_requested);
    assert_eq!(taken.checkpoint, Some(saved.clone()));
    assert_eq!(taken.lease.worker, worker("b"));
    assert_eq!(taken.task.status, TaskStatus::Processing);
    assert_eq!(taken.task.started_at, Some(at(10)), "a takeover keeps the first start");
    assert_eq!(taken.task.updated_at, later);
    assert_eq!(taken.task.progress, progress(100, at(15)));

    // The old holder finds out at its next call, and changes nothing.
    assert_lease_lost(store.heartbeat(&task.id, &lease("a", later)).await, task.id, "a");
    let late = checkpoint(2, later);
    assert_lease_lost(
        store.commit_checkpoint(&task.id, &worker("a"), &late, &progress(200, later)).await,
        task.id,
        "a",
    );
    assert_lease_lost(
        store.finish_task(&task.id, &worker("a"), &outcome(TaskStatus::Completed, later)).await,
        task.id,
        "a",
    );
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(saved));
    assert_eq!(stored(store, &task.id).await, taken.task);
}

async fn check_claim_next_takes_the_oldest_claimable_of_the_wanted_types(store: &dyn TaskStore) {
    let abandoned = task_of(TaskType::Train, at(0));
    let live = task_of(TaskType::Train, at(1));
    let old_pending = task_of(TaskType::YouzanOrder, at(2));
    let new_pending = task_of(TaskType::Train, at(3));
    for task in [&abandoned, &live, &old_pending, &new_pending] {
        insert(store, task).await;
    }
    store.claim_task(&abandoned.id, &lease("gone", at(0))).await.unwrap().unwrap();
    store.claim_task(&live.id, &lease("alive", at(50))).await.unwrap().unwrap();

    // At 60 s the first task's lease (to 30 s) has lapsed, the second's (to 80 s) has not.
    let now = at(60);
    let first = store.claim_next(&[], &lease("w", now)).await.unwrap().unwrap();
    assert_eq!((first.task.id, first.resumed), (abandoned.id, true));
    let wanted = [TaskType::Train, TaskType::Custom("geo_enrich".to_owned())];
    let second = store.claim_next(&wanted, &lease("w", now)).await.unwrap().unwrap();
    assert_eq!((second.task.id, second.resumed), (new_pending.id, false), "youzan_order is not wanted");
    assert_eq!(store.claim_next(&wanted, &lease("w", now)).await.unwrap(), None);
    let third = store.claim_next(&[TaskType::YouzanOrder], &lease("w", now)).await.unwrap().unwrap();
    assert_eq!(third.task.id, old_pending.id);
    assert_eq!(store.claim_next(&[], &lease("w", now)).await.unwrap(), None);
}

async fn check_heartbeat_renews_only_for_the_holder(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    assert_lease_lost(store.heartbeat(&task.id, &lease("a", at(1))).await, task.id, "a");
    store.claim_task(&task.id, &lease("a", at(10))).await.unwrap().unwrap();

    let reply = store.heartbeat(&task.id, &lease("a", at(35))).await.unwrap();
    assert!(!reply.stop_requested);
    // Renewed to 65 s: no takeover at 50 s, where the first lease would have lapsed.
    assert_eq!(store.claim_task(&task.id, &lease("b", at(50))).await.unwrap(), None);
    assert_lease_lost(store.heartbeat(&task.id, &lease("b", at(50))).await, task.id, "b");

    // A late heartbeat still renews a lapsed lease that nobody took over.
    store.heartbeat(&task.id, &lease("a", at(80))).await.unwrap();
    assert_eq!(store.claim_task(&task.id, &lease("b", at(100))).await.unwrap(), None);
    assert!(store.claim_task(&task.id, &lease("b", at(111))).await.unwrap().is_some());
}

async fn check_checkpoint_sequence_is_enforced(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    let a = worker("a");
    let too_early = store.commit_checkpoint(&task.id, &a, &checkpoint(1, at(1)), &progress(1, at(1))).await;
    assert_lease_lost(too_early, task.id, "a");
    store.claim_task(&task.id, &lease("a", at(1))).await.unwrap().unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), None);

    let skipped = store.commit_checkpoint(&task.id, &a, &checkpoint(2, at(2)), &progress(2, at(2))).await;
    let error = assert_code(skipped, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::CheckpointOutOfOrder { expected: 1, got: 2, .. }), "{error:?}");

    store.commit_checkpoint(&task.id, &a, &checkpoint(1, at(3)), &progress(100, at(3))).await.unwrap();
    let repeated = store.commit_checkpoint(&task.id, &a, &checkpoint(1, at(4)), &progress(150, at(4))).await;
    let error = assert_code(repeated, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::CheckpointOutOfOrder { expected: 2, got: 1, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("checkpoint 1 of task {} is out of order: the next checkpoint must be 2", task.id)
    );
    let after_refusals = stored(store, &task.id).await;
    assert_eq!(after_refusals.progress, progress(100, at(3)), "a refused checkpoint leaves the progress");

    store.commit_checkpoint(&task.id, &a, &checkpoint(2, at(5)), &progress(200, at(5))).await.unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(checkpoint(2, at(5))));
    let task_now = stored(store, &task.id).await;
    assert_eq!((task_now.progress, task_now.updated_at), (progress(200, at(5)), at(5)));

    let intruder =
        store.commit_checkpoint(&task.id, &worker("b"), &checkpoint(3, at(6)), &progress(300, at(6))).await;
    assert_lease_lost(intruder, task.id, "b");
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(checkpoint(2, at(5))));
}

async fn check_progress_updates_need_the_lease(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    store.claim_task(&task.id, &lease("a", at(1))).await.unwrap().unwrap();
    store.update_progress(&task.id, &worker("a"), &progress(10, at(2))).await.unwrap();
    assert_eq!(stored(store, &task.id).await.progress, progress(10, at(2)));
    assert_lease_lost(
        store.update_progress(&task.id, &worker("b"), &progress(20, at(3))).await,
        task.id,
        "b",
    );
    assert_eq!(stored(store, &task.id).await.progress, progress(10, at(2)));
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), None, "progress is not a checkpoint");
}

async fn check_finish_by_non_holder_is_refused(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    assert_lease_lost(
        store.finish_task(&task.id, &worker("a"), &outcome(TaskStatus::Completed, at(1))).await,
        task.id,
        "a",
    );
    store.claim_task(&task.id, &lease("a", at(1))).await.unwrap().unwrap();
    let held = stored(store, &task.id).await;
    assert_lease_lost(
        store.finish_task(&task.id, &worker("b"), &outcome(TaskStatus::Completed, at(2))).await,
        task.id,
        "b",
    );
    assert_eq!(stored(store, &task.id).await, held);
    assert_eq!(store.task_result(&task.id).await.unwrap(), None);

    // Finishing needs a terminal status.
    let not_an_end = store.finish_task(&task.id, &worker("a"), &outcome(TaskStatus::Pending, at(3))).await;
    let error = assert_code(not_an_end, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::Conflict { to: TaskStatus::Pending, .. }), "{error:?}");
    assert_eq!(stored(store, &task.id).await, held);
}

async fn check_finish_stores_outcome_and_result(store: &dyn TaskStore) {
    for status in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled] {
        let task = task_at(at(0));
        insert(store, &task).await;
        store.claim_task(&task.id, &lease("a", at(1))).await.unwrap().unwrap();
        assert_eq!(store.task_result(&task.id).await.unwrap(), None);
        let ending = outcome(status, at(20));
        let finished = store.finish_task(&task.id, &worker("a"), &ending).await.unwrap();
        assert_eq!(finished.status, status);
        assert_eq!((finished.started_at, finished.completed_at), (Some(at(1)), Some(at(20))));
        assert_eq!(finished.error, ending.error);
        assert_eq!(finished.progress, ending.progress);
        assert_eq!(stored(store, &task.id).await, finished);
        let record = store.task_result(&task.id).await.unwrap().unwrap();
        assert_eq!((record.result, record.metrics), (ending.result.clone(), ending.metrics.clone()));

        // Finished is final: no second finish, no heartbeat, no claim.
        assert_lease_lost(store.finish_task(&task.id, &worker("a"), &ending).await, task.id, "a");
        assert_lease_lost(store.heartbeat(&task.id, &lease("a", at(21))).await, task.id, "a");
        assert_eq!(store.claim_task(&task.id, &lease("b", at(100))).await.unwrap(), None);
    }
}

async fn check_release_then_reclaim(store: &dyn TaskStore) {
    let task = task_at(at(0));
    insert(store, &task).await;
    store.claim_task(&task.id, &lease("a", at(1))).await.unwrap().unwrap();
    store
        .commit_checkpoint(&task.id, &worker("a"), &checkpoint(1, at(2)), &progress(50, at(2)))
        .await
        .unwrap();
    assert_lease_lost(store.release_task(&task.id, &worker("b"), at(3)).await, task.id, "b");
    store.release_task(&task.id, &worker("a"), at(3)).await.unwrap();
    assert_eq!(stored(store, &task.id).await.status, TaskStatus::Processing);
    assert_lease_lost(store.heartbeat(&task.id, &lease("a", at(3))).await, task.id, "a");

    // Claimable at once, by any worker, with its checkpoint.
    let reclaimed = store.claim_next(&[], &lease("b", at(3))).await.unwrap().unwrap();
    assert_eq!(reclaimed.task.id, task.id);
    assert!(reclaimed.resumed);
    assert_eq!(reclaimed.checkpoint, Some(checkpoint(1, at(2))));
    store
        .commit_checkpoint(&task.id, &worker("b"), &checkpoint(2, at(4)), &progress(80, at(4)))
        .await
        .unwrap();
}

async fn check_request_stop_on_pending_processing_and_terminal(store: &dyn TaskStore) {
    // Pending: cancelled at once, never started.
    let pending = task_at(at(0));
    insert(store, &pending).await;
    let stopped = store.request_stop(&pending.id, at(5)).await.unwrap();
    assert_eq!(stopped.status, TaskStatus::Cancelled);
    assert_eq!((stopped.started_at, stopped.completed_at), (None, Some(at(5))));
    let error = stopped.error.clone().unwrap();
    assert_eq!((error.code, error.timestamp), (ErrorCode::Cancelled, at(5)));
    assert_eq!(stored(store, &pending.id).await, stopped);
    assert_eq!(store.claim_task(&pending.id, &lease("a", at(6))).await.unwrap(), None);

    // Processing with a live worker: flagged; the worker learns it at its heartbeat.
    let running = task_at(at(1));
    insert(store, &running).await;
    store.claim_task(&running.id, &lease("a", at(10))).await.unwrap().unwrap();
    assert!(!store.heartbeat(&running.id, &lease("a", at(11))).await.unwrap().stop_requested);
    let flagged = store.request_stop(&running.id, at(12)).await.unwrap();
    assert_eq!(flagged.status, TaskStatus::Processing);
    assert!(store.heartbeat(&running.id, &lease("a", at(13))).await.unwrap().stop_requested);
    // If that worker dies, the flag passes to the worker that takes over.
    let taken = store.claim_task(&running.id, &lease("b", at(60))).await.unwrap().unwrap();
    assert!(taken.resumed && taken.stop_requested);
    assert!(store.heartbeat(&running.id, &lease("b", at(61))).await.unwrap().stop_requested);
    let cancelled =
        store.finish_task(&running.id, &worker("b"), &outcome(TaskStatus::Cancelled, at(62))).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);

    // Processing, but its worker is gone (lease lapsed): cancelled at once, checkpoint kept.
    let abandoned = task_at(at(2));
    insert(store, &abandoned).await;
    store.claim_task(&abandoned.id, &lease("a", at(10))).await.unwrap().unwrap();
    store
        .commit_checkpoint(&abandoned.id, &worker("a"), &checkpoint(1, at(11)), &progress(5, at(11)))
        .await
        .unwrap();
    let ended = store.request_stop(&abandoned.id, at(100)).await.unwrap();
    assert_eq!((ended.status, ended.completed_at), (TaskStatus::Cancelled, Some(at(100))));
    assert_eq!(ended.error.map(|error| error.code), Some(ErrorCode::Cancelled));
    assert_eq!(store.checkpoint(&abandoned.id).await.unwrap(), Some(checkpoint(1, at(11))));
    assert_lease_lost(store.heartbeat(&abandoned.id, &lease("a", at(101))).await, abandoned.id, "a");

    // Terminal: refused, unchanged.
    for status in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled] {
        let done = task_in(store, status, at(3)).await;
        let error = assert_code(store.request_stop(&done.id, at(200)).await, ErrorCode::InvalidState);
        assert!(
            matches!(error, StoreError::Conflict { actual, to: TaskStatus::Cancelled, .. } if actual == status)
        );
        assert_eq!(stored(store, &done.id).await, done);
    }
}

async fn check_unknown_task_is_not_found(store: &dyn TaskStore) {
    let id = TaskId::new();
    let a = worker("a");
    let not_found = |error: StoreError| {
        assert_eq!(error.code(), ErrorCode::NotFound, "{error}");
        assert_eq!(error.to_string(), format!("task {id} not found"));
    };
    let change = StatusUpdate {
        id,
        from: TaskStatus::Pending,
        to: TaskStatus::Cancelled,
        cause: TransitionCause::Requested,
        error: None,
        at: at(0),
    };
    not_found(store.update_status(&change).await.unwrap_err());
    not_found(store.claim_task(&id, &lease("a", at(0))).await.unwrap_err());
    not_found(store.heartbeat(&id, &lease("a", at(0))).await.unwrap_err());
    not_found(
        store.commit_checkpoint(&id, &a, &checkpoint(1, at(0)), &progress(1, at(0))).await.unwrap_err(),
    );
    not_found(store.update_progress(&id, &a, &progress(1, at(0))).await.unwrap_err());
    not_found(store.finish_task(&id, &a, &outcome(TaskStatus::Completed, at(0))).await.unwrap_err());
    not_found(store.release_task(&id, &a, at(0)).await.unwrap_err());
    not_found(store.request_stop(&id, at(0)).await.unwrap_err());
    assert_eq!(store.checkpoint(&id).await.unwrap(), None);
    assert_eq!(store.task_result(&id).await.unwrap(), None);
}

async fn check_metrics_match_the_model(store: &dyn TaskStore) {
    assert_eq!(store.metrics().await.unwrap(), BatchMetrics::default());

    task_in(store, TaskStatus::Pending, at(0)).await;
    task_in(store, TaskStatus::Pending, at(1)).await;
    task_in(store, TaskStatus::Processing, at(2)).await;
    task_in(store, TaskStatus::Cancelled, at(3)).await; // never started: no run time
    // Finished through claims, with run times of 9.5 s, 20 s + 1 µs, 100 ms and 1 s.
    let runs = [
        (TaskStatus::Completed, TimeDelta::milliseconds(9_500)),
        (TaskStatus::Completed, TimeDelta::seconds(20) + TICK),
        (TaskStatus::Failed, TimeDelta::milliseconds(100)),
        (TaskStatus::Cancelled, TimeDelta::seconds(1)),
    ];
    for (idx, (status, run_time)) in runs.into_iter().enumerate() {
        let task = task_at(at(10 + idx as i64));
        insert(store, &task).await;
        let start = at(100);
        store.claim_task(&task.id, &lease("a", start)).await.unwrap().unwrap();
        store.finish_task(&task.id, &worker("a"), &outcome(status, start + run_time)).await.unwrap();
    }
    // `task_in` finishes in 1 s too.
    task_in(store, TaskStatus::Completed, at(20)).await;

    let metrics = store.metrics().await.unwrap();
    let everything = ListTasksRequest { limit: 1000, ..ListTasksRequest::default() };
    let all_tasks = store.list_tasks(&everything).await.unwrap().tasks;
    assert_eq!(metrics, BatchMetrics::from_tasks(&all_tasks));

    assert_eq!(metrics.total_tasks, 9);
    assert_eq!(
        (
            metrics.pending_tasks,
            metrics.processing_tasks,
            metrics.completed_tasks,
            metrics.failed_tasks,
            metrics.cancelled_tasks
        ),
        (2, 1, 3, 1, 2)
    );
    assert_eq!(metrics.success_rate, 0.75);
    let total = Duration::from_millis(9_500 + 20_000 + 100 + 1_000 + 1_000) + Duration::from_micros(1);
    assert_eq!(metrics.total_duration, total);
    assert_eq!(metrics.avg_duration, total / 5);
}

/// 1,000 tasks, 8 workers claiming concurrently with `claim_next`: every task is claimed once.
async fn check_concurrent_claims_take_each_task_once(store: Arc<dyn TaskStore>) {
    let mut inserts = tokio::task::JoinSet::new();
    for idx in 0..1000 {
        let store = Arc::clone(&store);
        inserts.spawn(async move {
            let task = task_at(at(idx));
            store.insert_task(&task).await.unwrap();
            task.id
        });
    }
    let inserted: HashSet<TaskId> = inserts.join_all().await.into_iter().collect();
    assert_eq!(inserted.len(), 1000);

    let mut workers = tokio::task::JoinSet::new();
    for idx in 0..8 {
        let store = Arc::clone(&store);
        workers.spawn(async move {
            let request = LeaseRequest { worker: WorkerId(format!("worker-{idx}")), ttl: TTL, now: at(5000) };
            let mut claimed = Vec::new();
            while let Some(claim) = store.claim_next(&[], &request).await.unwrap() {
                assert_eq!(claim.lease.worker, request.worker);
                claimed.push(claim.task.id);
            }
            claimed
        });
    }
    let per_worker = workers.join_all().await;
    let all: Vec<TaskId> = per_worker.iter().flatten().copied().collect();
    let distinct: HashSet<TaskId> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "claims: {:?}", per_worker.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(distinct, inserted);
    let metrics = store.metrics().await.unwrap();
    assert_eq!((metrics.processing_tasks, metrics.pending_tasks), (1000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_claims_take_each_task_once() {
    check_concurrent_claims_take_each_task_once(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_claims_take_each_task_once() {
    let (_dir, store) = sqlite_store();
    check_concurrent_claims_take_each_task_once(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_claims_take_each_task_once() {
    let Some(store) = crate::fixtures::pg::pinned("postgres_concurrent_claims_take_each_task_once").await
    else {
        return;
    };
    check_concurrent_claims_take_each_task_once(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sqlite_stores_on_one_file_never_claim_the_same_task() {
    // Two stores on one file stand for two processes: each has its own connection and writer thread.
    let (dir, first) = sqlite_store();
    let second =
        batch_manager::store::sqlite::SqliteStore::open(dir.path().join("tasks.db"), Default::default())
            .unwrap();
    let stores: [Arc<dyn TaskStore>; 2] = [Arc::new(first), Arc::new(second)];
    for idx in 0..200 {
        stores[0].insert_task(&task_at(at(idx))).await.unwrap();
    }
    let mut workers = tokio::task::JoinSet::new();
    for idx in 0..6 {
        let store = Arc::clone(&stores[idx % 2]);
        workers.spawn(async move {
            let request = lease(&format!("worker-{idx}"), at(1000));
            let mut claimed = Vec::new();
            while let Some(claim) = store.claim_next(&[], &request).await.unwrap() {
                claimed.push(claim.task.id);
            }
            claimed
        });
    }
    let all: Vec<TaskId> = workers.join_all().await.into_iter().flatten().collect();
    let distinct: HashSet<TaskId> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (200, 200));
}
