//! The [`TaskStore`] contract as executable checks (feature `conformance`): every behaviour written
//! once as a `check_*` function and run against every store — memory, SQLite and PostgreSQL in this
//! workspace, and any store a user writes — so that they cannot disagree.
//!
//! A store proves itself by implementing [`Harness`] (how to open a fresh, empty store that reads its
//! time from a given clock) and expanding [`store_conformance_tests!`](crate::store_conformance_tests)
//! in a test module:
//!
//! ```
//! use std::sync::Arc;
//!
//! use async_trait::async_trait;
//! use batch_manager::store::conformance::Harness;
//! use batch_manager::store::memory::MemoryStore;
//! use batch_manager::store::{Clock, TaskStore};
//!
//! struct Memory;
//!
//! #[async_trait]
//! impl Harness for Memory {
//!     async fn open(&self, clock: Arc<dyn Clock>) -> Option<Arc<dyn TaskStore>> {
//!         Some(Arc::new(MemoryStore::with_clock(clock)))
//!     }
//! }
//!
//! // In a test module: `batch_manager::store_conformance_tests!(crate::Memory);`
//! ```
//!
//! Time: each check drives the store's clock by hand (a [`ManualClock`]), so lease expiry is exact.
//! Times are compared at the store's [`time_resolution`](TaskStore::time_resolution).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "a failed check panics with its reason")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batch_model::{
    BatchMetrics, BatchTask, CreateTaskRequest, ErrorCode, ListTasksRequest, Partition, ProcessingMetrics,
    Progress, TaskError, TaskId, TaskStatus, TaskType, TransitionCause,
};
use chrono::{DateTime, TimeDelta, Utc};

use super::{
    Checkpoint, CheckpointCommit, ClaimedTask, Clock, Counters, Holder, LeaseRequest, ManualClock,
    StatusUpdate, StoreError, TaskChange, TaskOutcome, TaskPage, TaskStore, WorkerId,
};

/// How to open a fresh store for one check.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A new, empty store that reads its time from `clock`; `None` to skip the checks (a backend that
    /// is not available here, e.g. no database server), after saying why on stderr.
    async fn open(&self, clock: Arc<dyn Clock>) -> Option<Arc<dyn TaskStore>>;
}

/// One check's store and the clock it reads.
pub struct Context {
    /// The store under test.
    pub store: Arc<dyn TaskStore>,
    /// Its clock.
    pub clock: Arc<ManualClock>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("now", &self.clock.now()).finish_non_exhaustive()
    }
}

impl Context {
    /// Opens a fresh store from `harness` with its clock at [`at(0)`](at); `None` when the harness
    /// skips.
    pub async fn open(harness: &dyn Harness) -> Option<Context> {
        let clock = Arc::new(ManualClock::new(at(0)));
        let store = harness.open(Arc::clone(&clock) as Arc<dyn Clock>).await?;
        Some(Context { store, clock })
    }

    /// Sets the store's clock to `at(seconds)` (at the store's resolution).
    pub fn set(&self, seconds: i64) -> DateTime<Utc> {
        let now = self.time(at(seconds));
        self.clock.set(now);
        now
    }

    /// Sets the store's clock to `now` (at the store's resolution).
    pub fn set_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = self.time(now);
        self.clock.set(now);
        now
    }

    /// `time` truncated to the store's resolution: what the store gives back for it.
    pub fn time(&self, time: DateTime<Utc>) -> DateTime<Utc> {
        let resolution = i64::try_from(self.store.time_resolution().as_nanos()).unwrap_or(1).max(1);
        let nanos = time.timestamp_nanos_opt().unwrap_or(0);
        DateTime::from_timestamp_nanos(nanos - nanos.rem_euclid(resolution))
    }

    /// A pending `batch_process` task created at `at(seconds)`.
    pub fn task_at(&self, seconds: i64) -> BatchTask {
        self.task_of(TaskType::BatchProcess, seconds)
    }

    /// A pending task of `task_type` created at `at(seconds)`, with params and metadata to round-trip.
    pub fn task_of(&self, task_type: TaskType, seconds: i64) -> BatchTask {
        let mut request = CreateTaskRequest::new(task_type)
            .with_params(serde_json::json!({ "input": "data/input.jsonl", "threshold": 0.25 }));
        request.metadata.insert("owner".to_owned(), "tests".to_owned());
        BatchTask::new(TaskId::new(), request, self.time(at(seconds))).unwrap()
    }

    /// A checkpoint with sequence `sequence`, committed at `at(seconds)`.
    pub fn checkpoint(&self, sequence: u64, seconds: i64) -> Checkpoint {
        Checkpoint {
            sequence,
            source: serde_json::json!({ "offset": sequence * 4096, "line": sequence * 100 }),
            sink: serde_json::json!({ "output": sequence * 2048, "dead_letters": 0 }),
            counters: Counters { processed: sequence * 100, failed: 1, skipped: 2, retried: 3 },
            state: serde_json::json!({ "epoch": sequence, "weights": [0.5, -1.25, 3.0e-7] }),
            committed_at: self.time(at(seconds)),
        }
    }

    /// Progress with `processed` items of 1000, updated at `at(seconds)`.
    pub fn progress(&self, processed: u64, seconds: i64) -> Progress {
        let mut progress = Progress::compute(Some(1000), processed, 1, 2, Duration::from_millis(1500));
        progress.message = Some(format!("{processed} done"));
        progress.updated_at = self.time(at(seconds));
        progress
    }

    /// A task end with `status`, a result and metrics.
    pub fn outcome(&self, status: TaskStatus) -> TaskOutcome {
        let now = self.clock.now();
        let error = (status != TaskStatus::Completed).then(|| {
            TaskError::new(ErrorCode::ProcessingError, "the sink failed")
                .with_details(serde_json::json!({ "line": 7 }))
                .with_timestamp(now)
        });
        TaskOutcome {
            status,
            error,
            result: serde_json::json!({ "orders": 42, "gmv": "1234.50" }),
            progress: self.progress(997, 0),
            metrics: ProcessingMetrics {
                total_items: 1000,
                processed_items: 997,
                failed_items: 1,
                retried_items: 3,
                skipped_items: 2,
                start_time: Some(now - TimeDelta::seconds(10)),
                end_time: Some(now),
                duration: Duration::from_millis(9_500),
            },
        }
    }

    async fn insert(&self, task: &BatchTask) {
        self.store.insert_task(task).await.unwrap();
    }

    async fn stored(&self, id: &TaskId) -> BatchTask {
        self.store.task(id).await.unwrap().expect("the task is stored")
    }

    async fn claim(&self, id: &TaskId, worker: &str) -> Option<ClaimedTask> {
        self.store.claim_task(id, &lease(worker)).await.unwrap()
    }

    /// Inserts a task created at `at(seconds)` and moves it to `status` through legal changes made by
    /// hand (no lease is held), the clock set to `at(seconds)`, `+1` and `+2` for the changes.
    async fn task_in(&self, status: TaskStatus, seconds: i64) -> BatchTask {
        let task = self.task_at(seconds);
        self.insert(&task).await;
        if status == TaskStatus::Pending {
            return task;
        }
        if status == TaskStatus::Cancelled {
            self.set(seconds);
            return self
                .store
                .update_status(&update(&task, TaskStatus::Pending, TaskStatus::Cancelled))
                .await
                .unwrap();
        }
        self.set(seconds + 1);
        let processing = self
            .store
            .update_status(&update(&task, TaskStatus::Pending, TaskStatus::Processing))
            .await
            .unwrap();
        if status == TaskStatus::Processing {
            return processing;
        }
        self.set(seconds + 2);
        self.store.update_status(&update(&task, TaskStatus::Processing, status)).await.unwrap()
    }
}

/// The checks' time: `seconds` after a fixed instant (with a nanosecond part, so that precision
/// losses would show).
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap_or_default() + TimeDelta::seconds(seconds)
}

/// The lease length the checks use: 30 s.
pub const TTL: Duration = Duration::from_secs(30);

/// A worker id.
pub fn worker(name: &str) -> WorkerId {
    WorkerId(name.to_owned())
}

/// A lease request of `name` for [`TTL`].
pub fn lease(name: &str) -> LeaseRequest {
    LeaseRequest::new(worker(name), TTL)
}

fn holder(name: &str, epoch: u64) -> Holder {
    Holder { worker: worker(name), epoch }
}

fn update(task: &BatchTask, from: TaskStatus, to: TaskStatus) -> StatusUpdate {
    StatusUpdate { id: task.id, from, to, cause: TransitionCause::Requested, error: None }
}

fn assert_code(result: Result<impl std::fmt::Debug, StoreError>, code: ErrorCode) -> StoreError {
    let error = result.expect_err("the call should fail");
    assert_eq!(error.code(), code, "{error}");
    error
}

fn assert_lease_lost(result: Result<impl std::fmt::Debug, StoreError>, id: TaskId, who: &Holder) {
    match assert_code(result, ErrorCode::InvalidState) {
        StoreError::LeaseLost { id: lost, holder } => assert_eq!((lost, &holder), (id, who)),
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

fn ids(page: TaskPage) -> (Vec<TaskId>, u64) {
    (page.tasks.iter().map(|task| task.id).collect(), page.total)
}

/// Expands to one `#[tokio::test]` per check, each on a fresh store from the harness expression.
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:expr) => {
        $crate::store_conformance_tests!(@checks $harness;
            check_insert_get_and_duplicate,
            check_insert_tasks_stores_each_in_order,
            check_list_filters_by_status_type_and_parent,
            check_list_pages_newest_first_with_total,
            check_every_status_change_by_compare_and_set,
            check_stale_compare_and_set_changes_nothing,
            check_claim_pending_on_the_store_clock,
            check_claim_refused_while_leased,
            check_takeover_after_expiry_fences_the_old_epoch,
            check_a_worker_that_claims_again_is_fenced_by_its_own_new_epoch,
            check_claim_next_takes_the_oldest_claimable_of_the_wanted_types,
            check_claim_many_takes_the_oldest_claimable_in_order,
            check_heartbeat_renews_only_for_the_holder,
            check_checkpoint_sequence_is_enforced,
            check_consecutive_checkpoints_commit_in_order_in_one_call,
            check_progress_updates_need_the_lease,
            check_finish_by_non_holder_is_refused,
            check_finish_stores_outcome_and_result,
            check_release_then_reclaim,
            check_request_stop_on_pending_processing_and_terminal,
            check_restart_continues_a_failed_or_cancelled_task_from_its_checkpoint,
            check_quarantine_after_lost_leases_without_progress,
            check_split_parks_the_parent_until_its_partitions_complete,
            check_a_failed_partition_fails_the_parent_and_stops_the_others,
            check_stopping_a_parent_stops_its_partitions,
            check_restarting_a_parent_restarts_its_partitions,
            check_unknown_task_is_not_found,
            check_metrics_match_the_model,
            check_changes_are_published,
            check_concurrent_claims_take_each_task_once,
        );
    };
    (@checks $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let harness = $harness;
                if let Some(context) = $crate::store::conformance::Context::open(&harness).await {
                    $crate::store::conformance::$check(&context).await;
                }
            }
        )*
    };
}

/// Inserting, reading back, refusing a duplicate id.
pub async fn check_insert_get_and_duplicate(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_of(TaskType::Train, 0);
    ctx.insert(&task).await;
    assert_eq!(store.task(&task.id).await.unwrap(), Some(task.clone()));

    let mut again = ctx.task_at(5);
    again.id = task.id;
    let error = assert_code(store.insert_task(&again).await, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::Duplicate { id } if id == task.id));
    assert_eq!(error.to_string(), format!("task {} already exists", task.id));
    assert_eq!(ctx.stored(&task.id).await, task, "a duplicate insert changes nothing");

    assert_eq!(store.task(&TaskId::new()).await.unwrap(), None);
}

/// `insert_tasks` stores each task and answers for each, in order: a duplicate (of a stored task or
/// of one earlier in the batch) is refused without keeping the others out.
pub async fn check_insert_tasks_stores_each_in_order(ctx: &Context) {
    let store = &*ctx.store;
    let tasks: Vec<BatchTask> = (0..5).map(|idx| ctx.task_at(idx)).collect();
    let outcomes = store.insert_tasks(&tasks).await;
    assert_eq!(outcomes.len(), 5);
    outcomes.into_iter().for_each(|outcome| outcome.unwrap());
    for task in &tasks {
        assert_eq!(ctx.stored(&task.id).await, *task);
    }
    let fresh = ctx.task_at(10);
    let later = ctx.task_at(11);
    let mut twin = ctx.task_at(12);
    twin.id = later.id;
    let batch = vec![fresh.clone(), tasks[2].clone(), later.clone(), twin];
    let outcomes = store.insert_tasks(&batch).await;
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    for (idx, duplicate) in [(1, tasks[2].id), (3, later.id)] {
        let error = outcomes[idx].as_ref().expect_err("a duplicate is refused");
        assert_eq!(error.code(), ErrorCode::InvalidState, "{error}");
        assert!(matches!(error, StoreError::Duplicate { id } if *id == duplicate), "{error:?}");
    }
    assert_eq!(ctx.stored(&fresh.id).await, fresh, "the tasks around a duplicate are stored");
    assert_eq!(ctx.stored(&later.id).await, later, "the first of two with one id is stored");
    assert_eq!(ctx.stored(&tasks[2].id).await, tasks[2], "a duplicate changes nothing");
    assert!(store.insert_tasks(&[]).await.is_empty());
    assert_eq!(store.metrics().await.unwrap().pending_tasks, 7);
}

/// Listing filters by status, type and parent; pages hold whole records.
pub async fn check_list_filters_by_status_type_and_parent(ctx: &Context) {
    let store = &*ctx.store;
    let train = ctx.task_of(TaskType::Train, 0);
    let youzan = ctx.task_of(TaskType::YouzanOrder, 1);
    let custom = ctx.task_of(TaskType::Custom("geo_enrich".to_owned()), 2);
    for task in [&train, &youzan, &custom] {
        ctx.insert(task).await;
    }
    let cancelled = ctx.task_in(TaskStatus::Cancelled, 3).await;
    let processing = ctx.task_in(TaskStatus::Processing, 4).await;

    let list = |status, task_type| ListTasksRequest { status, task_type, ..ListTasksRequest::default() };
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

    let (parent, children) = split_parent(ctx, 2, 10).await;
    let of_parent = ListTasksRequest { parent_id: Some(parent.id), ..ListTasksRequest::default() };
    let mut listed = ids(store.list_tasks(&of_parent).await.unwrap());
    listed.0.sort();
    let mut expected: Vec<TaskId> = children.iter().map(|child| child.id).collect();
    expected.sort();
    assert_eq!(listed, (expected, 2));
}

/// Pages are newest first (ties by id), with the total, stable across pages.
pub async fn check_list_pages_newest_first_with_total(ctx: &Context) {
    let store = &*ctx.store;
    let mut tasks = Vec::new();
    for idx in 0..25 {
        let task = ctx.task_at(idx);
        ctx.insert(&task).await;
        tasks.push(task);
    }
    // Two tasks created at the same instant are ordered by id (ids are time ordered).
    let mut twin = ctx.task_at(24);
    twin.id = TaskId::new();
    ctx.insert(&twin).await;
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

/// Every status change the state machine allows (except restarts, which have their own call) is
/// applied, every other is refused and changes nothing.
pub async fn check_every_status_change_by_compare_and_set(ctx: &Context) {
    let store = &*ctx.store;
    let causes = [TransitionCause::Requested, TransitionCause::LeaseExpired, TransitionCause::Restart];
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            for cause in causes {
                let task = ctx.task_in(from, 0).await;
                let when = ctx.set(100);
                let error = TaskError::new(ErrorCode::Cancelled, "stopped").with_timestamp(when);
                let change = StatusUpdate { cause, error: Some(error.clone()), ..update(&task, from, to) };
                let result = store.update_status(&change).await;
                let case = format!("{from} -> {to} ({cause:?})");
                if TaskStatus::can_transition(from, to, cause) && cause != TransitionCause::Restart {
                    let changed = result.unwrap_or_else(|error| panic!("{case}: {error}"));
                    let mut expected = task.clone();
                    expected.transition(to, cause, when).unwrap();
                    if matches!(to, TaskStatus::Failed | TaskStatus::Cancelled) {
                        expected.error = Some(error);
                    }
                    assert_eq!(changed, expected, "{case}");
                    assert_eq!(ctx.stored(&task.id).await, expected, "{case}");
                } else {
                    let error = result.expect_err(&case);
                    assert_eq!(error.code(), ErrorCode::InvalidState, "{case}");
                    assert!(
                        matches!(error, StoreError::Conflict { expected, actual, to: asked, .. }
                            if expected == from && actual == from && asked == to),
                        "{case}: {error:?}"
                    );
                    assert_eq!(ctx.stored(&task.id).await, task, "{case}: unchanged");
                }
            }
        }
    }
}

/// A change from a status the task is no longer in is refused.
pub async fn check_stale_compare_and_set_changes_nothing(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_in(TaskStatus::Processing, 0).await;
    // A caller that still believes the task is pending must not cancel it.
    let stale = update(&task, TaskStatus::Pending, TaskStatus::Cancelled);
    let error = assert_code(store.update_status(&stale).await, ErrorCode::InvalidState);
    assert!(matches!(
        error,
        StoreError::Conflict { expected: TaskStatus::Pending, actual: TaskStatus::Processing, .. }
    ));
    assert_eq!(
        error.to_string(),
        format!("task {} is processing, not pending: cannot change it to cancelled", task.id)
    );
    assert_eq!(ctx.stored(&task.id).await, task);
}

/// A claim starts the task at the store's now, with epoch 1 and a lease of `ttl` from then.
pub async fn check_claim_pending_on_the_store_clock(ctx: &Context) {
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    let now = ctx.set(10);
    let claimed = ctx.claim(&task.id, "a").await.unwrap();
    assert_eq!(claimed.task.status, TaskStatus::Processing);
    assert_eq!((claimed.task.started_at, claimed.task.updated_at), (Some(now), now));
    assert_eq!((claimed.lease.worker.clone(), claimed.lease.epoch), (worker("a"), 1));
    assert_eq!(claimed.lease.expires_at, now + TimeDelta::from_std(TTL).unwrap());
    assert_eq!(claimed.lease.holder(), holder("a", 1));
    assert_eq!((claimed.resumed, claimed.stop_requested, claimed.checkpoint), (false, false, None));
    assert_eq!(ctx.stored(&task.id).await, claimed.task);
}

/// A live lease, up to and including its expiry instant, keeps everyone else out.
pub async fn check_claim_refused_while_leased(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    ctx.set(10);
    ctx.claim(&task.id, "a").await.unwrap();
    let held = ctx.stored(&task.id).await;
    // Still leased just before, and at, the expiry instant (30 s later): only strictly after it lapses.
    for seconds in [11, 39, 40] {
        ctx.set(seconds);
        assert_eq!(ctx.claim(&task.id, "b").await, None);
        assert_eq!(store.claim_next(&[], &lease("b")).await.unwrap(), None);
    }
    // The holder cannot claim it twice either.
    assert_eq!(ctx.claim(&task.id, "a").await, None);
    assert_eq!(ctx.stored(&task.id).await, held);

    let done = ctx.task_in(TaskStatus::Completed, 1).await;
    ctx.set(50);
    assert_eq!(ctx.claim(&done.id, "b").await, None);
}

/// After expiry another worker takes over with the next epoch and the last checkpoint; every write
/// of the old epoch is refused.
pub async fn check_takeover_after_expiry_fences_the_old_epoch(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    let started = ctx.set(10);
    ctx.claim(&task.id, "a").await.unwrap();
    let old = holder("a", 1);
    let saved = ctx.checkpoint(1, 15);
    ctx.set(15);
    store.commit_checkpoint(&task.id, &old, &saved, &ctx.progress(100, 15)).await.unwrap();

    // Worker a's lease ran out at 40 s; b takes over just after.
    let later = ctx.set_time(at(40) + TimeDelta::microseconds(1));
    let taken = ctx.claim(&task.id, "b").await.unwrap();
    assert!(taken.resumed);
    assert!(!taken.stop_requested);
    assert_eq!(taken.checkpoint, Some(saved.clone()));
    assert_eq!((taken.lease.worker.clone(), taken.lease.epoch), (worker("b"), 2));
    assert_eq!(taken.task.status, TaskStatus::Processing);
    assert_eq!(taken.task.started_at, Some(started), "a takeover keeps the first start");
    assert_eq!(taken.task.updated_at, later);
    assert_eq!(taken.task.progress, ctx.progress(100, 15));

    // The old holder finds out at its next call, and changes nothing.
    assert_lease_lost(store.heartbeat(&task.id, &old, TTL).await, task.id, &old);
    let late = ctx.checkpoint(2, 41);
    assert_lease_lost(
        store.commit_checkpoint(&task.id, &old, &late, &ctx.progress(200, 41)).await,
        task.id,
        &old,
    );
    assert_lease_lost(store.update_progress(&task.id, &old, &ctx.progress(300, 41)).await, task.id, &old);
    assert_lease_lost(
        store.finish_task(&task.id, &old, &ctx.outcome(TaskStatus::Completed)).await,
        task.id,
        &old,
    );
    assert_lease_lost(store.release_task(&task.id, &old).await, task.id, &old);
    assert_lease_lost(store.split_task(&task.id, &old, &[]).await, task.id, &old);
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(saved));
    assert_eq!(ctx.stored(&task.id).await, taken.task);
    // The new holder writes.
    store
        .commit_checkpoint(&task.id, &taken.lease.holder(), &ctx.checkpoint(2, 42), &ctx.progress(200, 42))
        .await
        .unwrap();
}

/// A worker that lost its lease and claims the task again gets a new epoch: writes still in flight
/// under its old claim are refused although the worker id is the same.
pub async fn check_a_worker_that_claims_again_is_fenced_by_its_own_new_epoch(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    ctx.set(1);
    let first = ctx.claim(&task.id, "a").await.unwrap();
    ctx.set(100);
    let second = ctx.claim(&task.id, "a").await.unwrap();
    assert_eq!((first.lease.epoch, second.lease.epoch), (1, 2));
    let stale = first.lease.holder();
    assert_lease_lost(
        store.commit_checkpoint(&task.id, &stale, &ctx.checkpoint(1, 100), &ctx.progress(1, 100)).await,
        task.id,
        &stale,
    );
    assert_lease_lost(store.heartbeat(&task.id, &stale, TTL).await, task.id, &stale);
    assert_lease_lost(
        store.finish_task(&task.id, &stale, &ctx.outcome(TaskStatus::Completed)).await,
        task.id,
        &stale,
    );
    let current = second.lease.holder();
    store
        .commit_checkpoint(&task.id, &current, &ctx.checkpoint(1, 100), &ctx.progress(1, 100))
        .await
        .unwrap();
    store.finish_task(&task.id, &current, &ctx.outcome(TaskStatus::Completed)).await.unwrap();
}

/// `claim_next` takes the oldest claimable task of the wanted types.
pub async fn check_claim_next_takes_the_oldest_claimable_of_the_wanted_types(ctx: &Context) {
    let store = &*ctx.store;
    let abandoned = ctx.task_of(TaskType::Train, 0);
    let live = ctx.task_of(TaskType::Train, 1);
    let old_pending = ctx.task_of(TaskType::YouzanOrder, 2);
    let new_pending = ctx.task_of(TaskType::Train, 3);
    for task in [&abandoned, &live, &old_pending, &new_pending] {
        ctx.insert(task).await;
    }
    ctx.set(0);
    ctx.claim(&abandoned.id, "gone").await.unwrap();
    ctx.set(50);
    ctx.claim(&live.id, "alive").await.unwrap();

    // At 60 s the first task's lease (to 30 s) has lapsed, the second's (to 80 s) has not.
    ctx.set(60);
    let first = store.claim_next(&[], &lease("w")).await.unwrap().unwrap();
    assert_eq!((first.task.id, first.resumed, first.lease.epoch), (abandoned.id, true, 2));
    let wanted = [TaskType::Train, TaskType::Custom("geo_enrich".to_owned())];
    let second = store.claim_next(&wanted, &lease("w")).await.unwrap().unwrap();
    assert_eq!((second.task.id, second.resumed), (new_pending.id, false), "youzan_order is not wanted");
    assert_eq!(store.claim_next(&wanted, &lease("w")).await.unwrap(), None);
    let third = store.claim_next(&[TaskType::YouzanOrder], &lease("w")).await.unwrap().unwrap();
    assert_eq!(third.task.id, old_pending.id);
    assert_eq!(store.claim_next(&[], &lease("w")).await.unwrap(), None);
}

/// `claim_many` claims up to `max` of the oldest claimable tasks of the wanted types, oldest first,
/// each as `claim_next` would (a takeover resumes from its checkpoint); fewer when there are fewer.
pub async fn check_claim_many_takes_the_oldest_claimable_in_order(ctx: &Context) {
    let store = &*ctx.store;
    let abandoned = ctx.task_of(TaskType::Train, 0);
    let live = ctx.task_of(TaskType::Train, 1);
    ctx.insert(&abandoned).await;
    ctx.insert(&live).await;
    let pending: Vec<BatchTask> = (2..7)
        .map(|seconds| {
            let task_type = if seconds == 4 { TaskType::YouzanOrder } else { TaskType::Train };
            ctx.task_of(task_type, seconds)
        })
        .collect();
    store.insert_tasks(&pending).await.into_iter().for_each(|outcome| outcome.unwrap());
    ctx.set(0);
    let gone = ctx.claim(&abandoned.id, "gone").await.unwrap().lease.holder();
    ctx.set(1);
    store.commit_checkpoint(&abandoned.id, &gone, &ctx.checkpoint(1, 1), &ctx.progress(10, 1)).await.unwrap();
    ctx.set(50);
    ctx.claim(&live.id, "alive").await.unwrap();

    assert_eq!(store.claim_many(&[], &lease("w"), 0).await.unwrap(), vec![]);
    // At 60 s the first task's lease (to 30 s) has lapsed, the second's (to 80 s) has not.
    let now = ctx.set(60);
    let wanted = [TaskType::Train];
    let first = store.claim_many(&wanted, &lease("w"), 3).await.unwrap();
    let ids: Vec<TaskId> = first.iter().map(|claimed| claimed.task.id).collect();
    assert_eq!(ids, vec![abandoned.id, pending[0].id, pending[1].id], "oldest first, youzan_order skipped");
    assert_eq!((first[0].resumed, first[0].lease.epoch), (true, 2));
    assert_eq!(first[0].checkpoint, Some(ctx.checkpoint(1, 1)));
    for claimed in &first[1..] {
        assert_eq!((claimed.resumed, claimed.lease.epoch, claimed.checkpoint.clone()), (false, 1, None));
        assert_eq!(claimed.task.started_at, Some(now));
    }
    for claimed in &first {
        assert_eq!(claimed.lease.worker, worker("w"));
        assert_eq!(claimed.lease.expires_at, now + TimeDelta::from_std(TTL).unwrap());
        assert_eq!(ctx.stored(&claimed.task.id).await, claimed.task);
    }
    // Fewer left than asked for: what there is.
    let rest = store.claim_many(&wanted, &lease("v"), 10).await.unwrap();
    let ids: Vec<TaskId> = rest.iter().map(|claimed| claimed.task.id).collect();
    assert_eq!(ids, vec![pending[3].id, pending[4].id]);
    assert_eq!(store.claim_many(&wanted, &lease("v"), 10).await.unwrap(), vec![]);
    let any = store.claim_many(&[], &lease("v"), 10).await.unwrap();
    assert_eq!(any.iter().map(|claimed| claimed.task.id).collect::<Vec<_>>(), vec![pending[2].id]);
}

/// Heartbeats renew the holder's lease from the store's now; a late one still renews a lapsed lease
/// that nobody took over.
pub async fn check_heartbeat_renews_only_for_the_holder(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    ctx.set(1);
    assert_lease_lost(store.heartbeat(&task.id, &holder("a", 0), TTL).await, task.id, &holder("a", 0));
    ctx.set(10);
    let claimed = ctx.claim(&task.id, "a").await.unwrap();
    let a = claimed.lease.holder();

    let now = ctx.set(35);
    let reply = store.heartbeat(&task.id, &a, TTL).await.unwrap();
    assert!(!reply.stop_requested);
    assert_eq!(reply.expires_at, now + TimeDelta::from_std(TTL).unwrap());
    // Renewed to 65 s: no takeover at 50 s, where the first lease would have lapsed.
    ctx.set(50);
    assert_eq!(ctx.claim(&task.id, "b").await, None);
    assert_lease_lost(store.heartbeat(&task.id, &holder("b", 1), TTL).await, task.id, &holder("b", 1));

    // A late heartbeat still renews a lapsed lease that nobody took over.
    ctx.set(80);
    store.heartbeat(&task.id, &a, TTL).await.unwrap();
    ctx.set(100);
    assert_eq!(ctx.claim(&task.id, "b").await, None);
    ctx.set(111);
    assert!(ctx.claim(&task.id, "b").await.is_some());
}

/// Checkpoints go 1, 2, 3, … under the lease; anything else is refused and changes nothing.
pub async fn check_checkpoint_sequence_is_enforced(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    let a = holder("a", 1);
    let too_early = store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(1, 1), &ctx.progress(1, 1)).await;
    assert_lease_lost(too_early, task.id, &a);
    ctx.set(1);
    ctx.claim(&task.id, "a").await.unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), None);

    let skipped = store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(2, 2), &ctx.progress(2, 2)).await;
    let error = assert_code(skipped, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::CheckpointOutOfOrder { expected: 1, got: 2, .. }), "{error:?}");

    ctx.set(3);
    store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(1, 3), &ctx.progress(100, 3)).await.unwrap();
    let repeated = store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(1, 4), &ctx.progress(150, 4)).await;
    let error = assert_code(repeated, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::CheckpointOutOfOrder { expected: 2, got: 1, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("checkpoint 1 of task {} is out of order: the next checkpoint must be 2", task.id)
    );
    let after_refusals = ctx.stored(&task.id).await;
    assert_eq!(after_refusals.progress, ctx.progress(100, 3), "a refused checkpoint leaves the progress");

    let committed_at = ctx.set(5);
    store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(2, 5), &ctx.progress(200, 5)).await.unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(ctx.checkpoint(2, 5)));
    let task_now = ctx.stored(&task.id).await;
    assert_eq!((task_now.progress, task_now.updated_at), (ctx.progress(200, 5), committed_at));

    let intruder = holder("b", 1);
    let refused =
        store.commit_checkpoint(&task.id, &intruder, &ctx.checkpoint(3, 6), &ctx.progress(300, 6)).await;
    assert_lease_lost(refused, task.id, &intruder);
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(ctx.checkpoint(2, 5)));
}

/// Consecutive checkpoints in one call (`commit_checkpoints`): committed in order, the last one
/// stands; one out of order fails the call (a store may have committed the ones before it); a stale
/// holder's are all refused; an empty call changes nothing.
pub async fn check_consecutive_checkpoints_commit_in_order_in_one_call(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    ctx.set(1);
    ctx.claim(&task.id, "a").await.unwrap();
    let a = holder("a", 1);
    let commit = |sequence: u64, seconds: i64| CheckpointCommit {
        checkpoint: ctx.checkpoint(sequence, seconds),
        progress: ctx.progress(sequence * 100, seconds),
        writes: Vec::new(),
    };
    ctx.set(2);
    store.commit_checkpoints(&task.id, &a, vec![commit(1, 2), commit(2, 2), commit(3, 2)]).await.unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(ctx.checkpoint(3, 2)));
    assert_eq!(ctx.stored(&task.id).await.progress, ctx.progress(300, 2));
    store.commit_checkpoints(&task.id, &a, Vec::new()).await.unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(ctx.checkpoint(3, 2)));

    ctx.set(3);
    let gap = store.commit_checkpoints(&task.id, &a, vec![commit(4, 3), commit(6, 3)]).await;
    let error = assert_code(gap, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::CheckpointOutOfOrder { expected: 5, got: 6, .. }), "{error:?}");
    let kept = store.checkpoint(&task.id).await.unwrap().map(|checkpoint| checkpoint.sequence);
    assert!(matches!(kept, Some(3 | 4)), "all before the gap or none: {kept:?}");
    let next = kept.unwrap_or(3) + 1;

    let intruder = holder("b", 1);
    let refused =
        store.commit_checkpoints(&task.id, &intruder, vec![commit(next, 4), commit(next + 1, 4)]).await;
    assert_lease_lost(refused, task.id, &intruder);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().map(|checkpoint| checkpoint.sequence), kept);

    store.commit_checkpoints(&task.id, &a, vec![commit(next, 5), commit(next + 1, 5)]).await.unwrap();
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), Some(ctx.checkpoint(next + 1, 5)));
}

/// Live progress needs the lease too, and is not a checkpoint.
pub async fn check_progress_updates_need_the_lease(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    ctx.set(1);
    let a = ctx.claim(&task.id, "a").await.unwrap().lease.holder();
    store.update_progress(&task.id, &a, &ctx.progress(10, 2)).await.unwrap();
    assert_eq!(ctx.stored(&task.id).await.progress, ctx.progress(10, 2));
    let b = holder("b", 1);
    assert_lease_lost(store.update_progress(&task.id, &b, &ctx.progress(20, 3)).await, task.id, &b);
    assert_eq!(ctx.stored(&task.id).await.progress, ctx.progress(10, 2));
    assert_eq!(store.checkpoint(&task.id).await.unwrap(), None, "progress is not a checkpoint");
}

/// Only the holder finishes, and only to a terminal status.
pub async fn check_finish_by_non_holder_is_refused(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    let a = holder("a", 1);
    assert_lease_lost(
        store.finish_task(&task.id, &a, &ctx.outcome(TaskStatus::Completed)).await,
        task.id,
        &a,
    );
    ctx.set(1);
    ctx.claim(&task.id, "a").await.unwrap();
    let held = ctx.stored(&task.id).await;
    let b = holder("b", 1);
    assert_lease_lost(
        store.finish_task(&task.id, &b, &ctx.outcome(TaskStatus::Completed)).await,
        task.id,
        &b,
    );
    assert_eq!(ctx.stored(&task.id).await, held);
    assert_eq!(store.task_result(&task.id).await.unwrap(), None);

    // Finishing needs a terminal status.
    let not_an_end = store.finish_task(&task.id, &a, &ctx.outcome(TaskStatus::Pending)).await;
    let error = assert_code(not_an_end, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::Conflict { to: TaskStatus::Pending, .. }), "{error:?}");
    assert_eq!(ctx.stored(&task.id).await, held);
}

/// A finish stores the end, the result and the metrics; finished is final.
pub async fn check_finish_stores_outcome_and_result(ctx: &Context) {
    let store = &*ctx.store;
    for status in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled] {
        let task = ctx.task_at(0);
        ctx.insert(&task).await;
        let started = ctx.set(1);
        let a = ctx.claim(&task.id, "a").await.unwrap().lease.holder();
        assert_eq!(store.task_result(&task.id).await.unwrap(), None);
        let ended = ctx.set(20);
        let ending = ctx.outcome(status);
        let finished = store.finish_task(&task.id, &a, &ending).await.unwrap();
        assert_eq!(finished.status, status);
        assert_eq!((finished.started_at, finished.completed_at), (Some(started), Some(ended)));
        assert_eq!(finished.error, ending.error);
        assert_eq!(finished.progress, ending.progress);
        assert_eq!(ctx.stored(&task.id).await, finished);
        let record = store.task_result(&task.id).await.unwrap().unwrap();
        assert_eq!((record.result, record.metrics), (ending.result.clone(), ending.metrics.clone()));

        // Finished is final: no second finish, no heartbeat, no claim.
        assert_lease_lost(store.finish_task(&task.id, &a, &ending).await, task.id, &a);
        assert_lease_lost(store.heartbeat(&task.id, &a, TTL).await, task.id, &a);
        ctx.set(100);
        assert_eq!(ctx.claim(&task.id, "b").await, None);
    }
}

/// A released task is claimable at once, resumes from its checkpoint, and the release is not a lost
/// lease.
pub async fn check_release_then_reclaim(ctx: &Context) {
    let store = &*ctx.store;
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    ctx.set(1);
    let a = ctx.claim(&task.id, "a").await.unwrap().lease.holder();
    ctx.set(2);
    store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(1, 2), &ctx.progress(50, 2)).await.unwrap();
    ctx.set(3);
    let b = holder("b", 1);
    assert_lease_lost(store.release_task(&task.id, &b).await, task.id, &b);
    store.release_task(&task.id, &a).await.unwrap();
    assert_eq!(ctx.stored(&task.id).await.status, TaskStatus::Processing);
    assert_lease_lost(store.heartbeat(&task.id, &a, TTL).await, task.id, &a);

    // Claimable at once, by any worker, with its checkpoint.
    let reclaimed = store.claim_next(&[], &lease("b")).await.unwrap().unwrap();
    assert_eq!((reclaimed.task.id, reclaimed.lease.epoch), (task.id, 2));
    assert!(reclaimed.resumed);
    assert_eq!(reclaimed.checkpoint, Some(ctx.checkpoint(1, 2)));
    let b = reclaimed.lease.holder();
    store.commit_checkpoint(&task.id, &b, &ctx.checkpoint(2, 4), &ctx.progress(80, 4)).await.unwrap();
    // Releases are never counted towards quarantine (with a threshold of 1, the first lost lease
    // would quarantine the task).
    let strict = LeaseRequest { max_lost_leases: 1, ..lease("c") };
    let mut current = b;
    for round in 0..3 {
        store.release_task(&task.id, &current).await.unwrap();
        let claimed = store.claim_task(&task.id, &strict).await.unwrap();
        current =
            claimed.unwrap_or_else(|| panic!("round {round}: a released task is claimed")).lease.holder();
    }
    assert_eq!(current.epoch, 5);
}

/// Stop requests: pending cancelled at once; running flagged for its worker (and for whoever takes
/// it over); unheld cancelled at once with the checkpoint kept; terminal refused.
pub async fn check_request_stop_on_pending_processing_and_terminal(ctx: &Context) {
    let store = &*ctx.store;
    // Pending: cancelled at once, never started.
    let pending = ctx.task_at(0);
    ctx.insert(&pending).await;
    let stopped_at = ctx.set(5);
    let stopped = store.request_stop(&pending.id).await.unwrap();
    assert_eq!(stopped.status, TaskStatus::Cancelled);
    assert_eq!((stopped.started_at, stopped.completed_at), (None, Some(stopped_at)));
    let error = stopped.error.clone().unwrap();
    assert_eq!((error.code, error.timestamp), (ErrorCode::Cancelled, stopped_at));
    assert_eq!(ctx.stored(&pending.id).await, stopped);
    ctx.set(6);
    assert_eq!(ctx.claim(&pending.id, "a").await, None);

    // Processing with a live worker: flagged; the worker learns it at its heartbeat.
    let running = ctx.task_at(1);
    ctx.insert(&running).await;
    ctx.set(10);
    let a = ctx.claim(&running.id, "a").await.unwrap().lease.holder();
    ctx.set(11);
    assert!(!store.heartbeat(&running.id, &a, TTL).await.unwrap().stop_requested);
    ctx.set(12);
    let flagged = store.request_stop(&running.id).await.unwrap();
    assert_eq!(flagged.status, TaskStatus::Processing);
    ctx.set(13);
    assert!(store.heartbeat(&running.id, &a, TTL).await.unwrap().stop_requested);
    // If that worker dies, the flag passes to the worker that takes over.
    ctx.set(60);
    let taken = ctx.claim(&running.id, "b").await.unwrap();
    assert!(taken.resumed && taken.stop_requested);
    let b = taken.lease.holder();
    assert!(store.heartbeat(&running.id, &b, TTL).await.unwrap().stop_requested);
    let cancelled = store.finish_task(&running.id, &b, &ctx.outcome(TaskStatus::Cancelled)).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);

    // Processing, but its worker is gone (lease lapsed): cancelled at once, checkpoint kept.
    let abandoned = ctx.task_at(2);
    ctx.insert(&abandoned).await;
    ctx.set(10);
    let a = ctx.claim(&abandoned.id, "a").await.unwrap().lease.holder();
    ctx.set(11);
    store.commit_checkpoint(&abandoned.id, &a, &ctx.checkpoint(1, 11), &ctx.progress(5, 11)).await.unwrap();
    let ended_at = ctx.set(100);
    let ended = store.request_stop(&abandoned.id).await.unwrap();
    assert_eq!((ended.status, ended.completed_at), (TaskStatus::Cancelled, Some(ended_at)));
    assert_eq!(ended.error.map(|error| error.code), Some(ErrorCode::Cancelled));
    assert_eq!(store.checkpoint(&abandoned.id).await.unwrap(), Some(ctx.checkpoint(1, 11)));
    assert_lease_lost(store.heartbeat(&abandoned.id, &a, TTL).await, abandoned.id, &a);

    // Terminal: refused, unchanged.
    for status in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled] {
        let done = ctx.task_in(status, 3).await;
        ctx.set(200);
        let error = assert_code(store.request_stop(&done.id).await, ErrorCode::InvalidState);
        assert!(
            matches!(error, StoreError::Conflict { actual, to: TaskStatus::Cancelled, .. } if actual == status)
        );
        assert_eq!(ctx.stored(&done.id).await, done);
    }
}

/// A failed or cancelled task restarts as a new attempt from its checkpoint, its history kept; other
/// statuses are refused.
pub async fn check_restart_continues_a_failed_or_cancelled_task_from_its_checkpoint(ctx: &Context) {
    let store = &*ctx.store;
    for end in [TaskStatus::Failed, TaskStatus::Cancelled] {
        let task = ctx.task_at(0);
        ctx.insert(&task).await;
        let started = ctx.set(1);
        let a = ctx.claim(&task.id, "a").await.unwrap().lease.holder();
        ctx.set(2);
        store.commit_checkpoint(&task.id, &a, &ctx.checkpoint(1, 2), &ctx.progress(100, 2)).await.unwrap();
        let ended_at = ctx.set(3);
        let ended = store.finish_task(&task.id, &a, &ctx.outcome(end)).await.unwrap();

        let restarted_at = ctx.set(10);
        let restarted = store.restart_task(&task.id).await.unwrap();
        assert_eq!((restarted.status, restarted.attempt), (TaskStatus::Pending, 2));
        assert_eq!(
            (restarted.error.clone(), restarted.started_at, restarted.completed_at),
            (None, None, None)
        );
        assert_eq!(restarted.updated_at, restarted_at);
        assert_eq!(restarted.attempts.len(), 1);
        let first = &restarted.attempts[0];
        assert_eq!((first.attempt, first.status), (1, end));
        assert_eq!((first.started_at, first.ended_at), (Some(started), Some(ended_at)));
        assert_eq!(first.error, ended.error);
        assert_eq!(ctx.stored(&task.id).await, restarted);

        // The next claim resumes from the checkpoint under a new epoch.
        let again_at = ctx.set(11);
        let again = ctx.claim(&task.id, "b").await.unwrap();
        assert_eq!(again.checkpoint, Some(ctx.checkpoint(1, 2)));
        assert_eq!((again.lease.epoch, again.task.started_at), (2, Some(again_at)));
        assert_lease_lost(store.heartbeat(&task.id, &a, TTL).await, task.id, &a);
        let b = again.lease.holder();
        store.commit_checkpoint(&task.id, &b, &ctx.checkpoint(2, 12), &ctx.progress(200, 12)).await.unwrap();
        store.finish_task(&task.id, &b, &ctx.outcome(TaskStatus::Completed)).await.unwrap();
    }
    for status in [TaskStatus::Pending, TaskStatus::Processing, TaskStatus::Completed] {
        let task = ctx.task_in(status, 20).await;
        let error = assert_code(store.restart_task(&task.id).await, ErrorCode::InvalidState);
        assert!(
            matches!(error, StoreError::Conflict { actual, to: TaskStatus::Pending, .. } if actual == status)
        );
        assert_eq!(ctx.stored(&task.id).await, task);
    }
}

/// A task whose workers keep dying without a checkpoint ends failed at the claim that would be one
/// loss too many; a checkpoint resets the count; 0 turns quarantine off.
pub async fn check_quarantine_after_lost_leases_without_progress(ctx: &Context) {
    let store = &*ctx.store;
    let three = |name: &str| LeaseRequest { max_lost_leases: 3, ..lease(name) };
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    let mut seconds = 1;
    let mut claim = |name: &str| {
        seconds += 100;
        ctx.set(seconds);
        let request = three(name);
        let store = Arc::clone(&ctx.store);
        let id = task.id;
        async move { store.claim_task(&id, &request).await.unwrap() }
    };
    // First claim, then two takeovers (2 lost leases): still handed out.
    let first = claim("a").await.unwrap();
    let second = claim("b").await.unwrap();
    // A checkpoint resets the count.
    store
        .commit_checkpoint(&task.id, &second.lease.holder(), &ctx.checkpoint(1, 0), &ctx.progress(1, 0))
        .await
        .unwrap();
    let _ = first;
    claim("c").await.unwrap();
    claim("d").await.unwrap();
    // The third loss in a row without a checkpoint: quarantined instead of claimed.
    assert_eq!(claim("e").await, None);
    let failed = ctx.stored(&task.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, ErrorCode::ProcessingError);
    assert!(error.message.starts_with("quarantined: the task lost its worker 3 times"), "{}", error.message);
    assert_eq!(store.claim_next(&[], &lease("f")).await.unwrap(), None);
    assert_eq!(
        store.checkpoint(&task.id).await.unwrap(),
        Some(ctx.checkpoint(1, 0)),
        "the checkpoint is kept"
    );

    // Off: never quarantined.
    let other = ctx.task_at(1);
    ctx.insert(&other).await;
    for round in 0..6 {
        ctx.set(1000 + round * 100);
        let never = LeaseRequest { max_lost_leases: 0, ..lease("x") };
        assert!(store.claim_task(&other.id, &never).await.unwrap().is_some(), "round {round}");
    }
}

/// Claims a pending parent, splits it into `n` partitions and returns the parent (as stored) and
/// the partitions.
async fn split_parent(ctx: &Context, n: u32, seconds: i64) -> (BatchTask, Vec<BatchTask>) {
    let mut parent = ctx.task_at(seconds);
    parent.config.partitions = n;
    ctx.insert(&parent).await;
    ctx.set(seconds);
    let claimed = ctx.claim(&parent.id, "splitter").await.unwrap();
    let children: Vec<BatchTask> = (0..n)
        .map(|index| {
            let mut child = ctx.task_at(seconds);
            child.parent_id = Some(parent.id);
            child.partition = Some(Partition { index, count: n });
            child.params = serde_json::json!({ "range": index });
            child
        })
        .collect();
    ctx.store.split_task(&parent.id, &claimed.lease.holder(), &children).await.unwrap();
    (ctx.stored(&parent.id).await, children)
}

/// Runs `child` to completion with `processed` items done.
async fn complete(ctx: &Context, child: &BatchTask, processed: u64) {
    let claimed = ctx.claim(&child.id, "worker").await.unwrap();
    let holder = claimed.lease.holder();
    let mut ending = ctx.outcome(TaskStatus::Completed);
    ending.progress = Progress::compute(Some(processed), processed, 0, 0, Duration::from_secs(1));
    ending.progress.updated_at = ctx.clock.now();
    ctx.store.finish_task(&child.id, &holder, &ending).await.unwrap();
}

/// A split stores the partitions and parks the parent (processing, unclaimable, its progress their
/// sum) until the last one completes; then the parent is claimable for its merge.
pub async fn check_split_parks_the_parent_until_its_partitions_complete(ctx: &Context) {
    let store = &*ctx.store;
    let (parent, children) = split_parent(ctx, 3, 0).await;
    assert_eq!(parent.status, TaskStatus::Processing);
    for child in &children {
        assert_eq!(ctx.stored(&child.id).await, *child, "partitions are stored as given");
    }
    // The parent is not claimable; its partitions are, in order.
    ctx.set(1000);
    assert_eq!(ctx.claim(&parent.id, "x").await, None);
    let first = store.claim_next(&[], &lease("w1")).await.unwrap().unwrap();
    assert!(children.iter().any(|child| child.id == first.task.id));
    assert_eq!(ctx.claim(&parent.id, "x").await, None, "still parked while partitions run");

    // Progress of the parent is the sum of its partitions'.
    let mut progress = Progress::compute(Some(500), 200, 3, 7, Duration::from_secs(2));
    progress.updated_at = ctx.clock.now();
    store.update_progress(&first.task.id, &first.lease.holder(), &progress).await.unwrap();
    let parked = ctx.stored(&parent.id).await;
    assert_eq!((parked.progress.processed, parked.progress.failed, parked.progress.skipped), (200, 3, 7));
    assert_eq!(parked.progress.total, None, "unknown until every partition knows its total");

    store
        .finish_task(&first.task.id, &first.lease.holder(), &ctx.outcome(TaskStatus::Completed))
        .await
        .unwrap();
    let rest: Vec<&BatchTask> = children.iter().filter(|child| child.id != first.task.id).collect();
    complete(ctx, rest[0], 10).await;
    assert_eq!(ctx.claim(&parent.id, "x").await, None, "one partition still pending");
    complete(ctx, rest[1], 20).await;

    // All done: the parent is claimable again (a resumed claim, next epoch), for its merge.
    let merged = store.claim_next(&[], &lease("merger")).await.unwrap().unwrap();
    assert_eq!((merged.task.id, merged.resumed, merged.lease.epoch), (parent.id, true, 2));
    assert_eq!(merged.task.progress.processed, 997 + 10 + 20);
    store.finish_task(&parent.id, &merged.lease.holder(), &ctx.outcome(TaskStatus::Completed)).await.unwrap();

    // A split by a stale holder, or with a child of another parent, is refused.
    let mut other = ctx.task_at(5);
    other.config.partitions = 2;
    ctx.insert(&other).await;
    let holder_now = ctx.claim(&other.id, "s").await.unwrap().lease.holder();
    let stranger = ctx.task_at(5);
    let error =
        assert_code(store.split_task(&other.id, &holder_now, &[stranger]).await, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    let stale = Holder { epoch: 0, ..holder_now };
    assert_lease_lost(store.split_task(&other.id, &stale, &[]).await, other.id, &stale);
}

/// When a partition fails, the parent fails naming it and the other partitions are stopped.
pub async fn check_a_failed_partition_fails_the_parent_and_stops_the_others(ctx: &Context) {
    let store = &*ctx.store;
    let (parent, children) = split_parent(ctx, 3, 0).await;
    ctx.set(10);
    let running = ctx.claim(&children[0].id, "w1").await.unwrap();
    let failing = ctx.claim(&children[1].id, "w2").await.unwrap();
    store
        .finish_task(&children[1].id, &failing.lease.holder(), &ctx.outcome(TaskStatus::Failed))
        .await
        .unwrap();

    let failed = ctx.stored(&parent.id).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, ErrorCode::ProcessingError);
    assert!(
        error.message.starts_with("partition 2 of 3 failed: PROCESSING_ERROR: the sink failed"),
        "{}",
        error.message
    );
    // The pending partition is cancelled; the running one is asked to stop.
    assert_eq!(ctx.stored(&children[2].id).await.status, TaskStatus::Cancelled);
    assert!(store.heartbeat(&children[0].id, &running.lease.holder(), TTL).await.unwrap().stop_requested);
}

/// Stopping a waiting parent cancels it at once and stops its partitions.
pub async fn check_stopping_a_parent_stops_its_partitions(ctx: &Context) {
    let store = &*ctx.store;
    let (parent, children) = split_parent(ctx, 2, 0).await;
    ctx.set(10);
    let running = ctx.claim(&children[0].id, "w1").await.unwrap();
    let stopped = store.request_stop(&parent.id).await.unwrap();
    assert_eq!(stopped.status, TaskStatus::Cancelled);
    assert_eq!(ctx.stored(&children[1].id).await.status, TaskStatus::Cancelled);
    assert!(store.heartbeat(&children[0].id, &running.lease.holder(), TTL).await.unwrap().stop_requested);
    // The running partition ends cancelled; the parent stays cancelled.
    store
        .finish_task(&children[0].id, &running.lease.holder(), &ctx.outcome(TaskStatus::Cancelled))
        .await
        .unwrap();
    assert_eq!(ctx.stored(&parent.id).await.status, TaskStatus::Cancelled);
}

/// Restarting a parent restarts its failed and cancelled partitions; it is refused while one runs.
pub async fn check_restarting_a_parent_restarts_its_partitions(ctx: &Context) {
    let store = &*ctx.store;
    let (parent, children) = split_parent(ctx, 3, 0).await;
    ctx.set(10);
    complete(ctx, &children[0], 5).await;
    let running = ctx.claim(&children[1].id, "w1").await.unwrap();
    store.request_stop(&parent.id).await.unwrap();
    // One partition still stopping: no restart yet.
    let error = assert_code(store.restart_task(&parent.id).await, ErrorCode::InvalidState);
    assert!(matches!(error, StoreError::Conflict { id, .. } if id == children[1].id), "{error:?}");
    store
        .finish_task(&children[1].id, &running.lease.holder(), &ctx.outcome(TaskStatus::Cancelled))
        .await
        .unwrap();

    ctx.set(20);
    let restarted = store.restart_task(&parent.id).await.unwrap();
    assert_eq!((restarted.status, restarted.attempt), (TaskStatus::Pending, 2));
    assert_eq!(ctx.stored(&children[0].id).await.status, TaskStatus::Completed, "completed partitions stay");
    for child in &children[1..] {
        let child = ctx.stored(&child.id).await;
        assert_eq!((child.status, child.attempt), (TaskStatus::Pending, 2));
    }
    // The restarted parent is claimed, parked again (no new partitions), and merged at the end.
    let claimed = ctx.claim(&parent.id, "p").await.unwrap();
    store.split_task(&parent.id, &claimed.lease.holder(), &[]).await.unwrap();
    assert_eq!(ctx.claim(&parent.id, "x").await, None);
    complete(ctx, &children[1], 1).await;
    complete(ctx, &children[2], 1).await;
    let merge = ctx.claim(&parent.id, "m").await.unwrap();
    assert!(merge.resumed);
}

/// Every call on an unknown task is `NOT_FOUND` (reads answer `None`).
pub async fn check_unknown_task_is_not_found(ctx: &Context) {
    let store = &*ctx.store;
    let id = TaskId::new();
    let a = holder("a", 1);
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
    };
    not_found(store.update_status(&change).await.unwrap_err());
    not_found(store.claim_task(&id, &lease("a")).await.unwrap_err());
    not_found(store.heartbeat(&id, &a, TTL).await.unwrap_err());
    not_found(
        store.commit_checkpoint(&id, &a, &ctx.checkpoint(1, 0), &ctx.progress(1, 0)).await.unwrap_err(),
    );
    not_found(store.update_progress(&id, &a, &ctx.progress(1, 0)).await.unwrap_err());
    not_found(store.finish_task(&id, &a, &ctx.outcome(TaskStatus::Completed)).await.unwrap_err());
    not_found(store.release_task(&id, &a).await.unwrap_err());
    not_found(store.request_stop(&id).await.unwrap_err());
    not_found(store.restart_task(&id).await.unwrap_err());
    not_found(store.split_task(&id, &a, &[]).await.unwrap_err());
    assert_eq!(store.checkpoint(&id).await.unwrap(), None);
    assert_eq!(store.task_result(&id).await.unwrap(), None);
}

/// The store's metrics equal the model's computation over every task.
pub async fn check_metrics_match_the_model(ctx: &Context) {
    let store = &*ctx.store;
    assert_eq!(store.metrics().await.unwrap(), BatchMetrics::default());

    ctx.task_in(TaskStatus::Pending, 0).await;
    ctx.task_in(TaskStatus::Pending, 1).await;
    ctx.task_in(TaskStatus::Processing, 2).await;
    ctx.task_in(TaskStatus::Cancelled, 3).await; // never started: no run time
    // Finished through claims, with run times of 9.5 s, 20 s + 1 µs, 100 ms and 1 s.
    let runs = [
        (TaskStatus::Completed, TimeDelta::milliseconds(9_500)),
        (TaskStatus::Completed, TimeDelta::seconds(20) + TimeDelta::microseconds(1)),
        (TaskStatus::Failed, TimeDelta::milliseconds(100)),
        (TaskStatus::Cancelled, TimeDelta::seconds(1)),
    ];
    for (idx, (status, run_time)) in runs.into_iter().enumerate() {
        let task = ctx.task_at(10 + idx as i64);
        ctx.insert(&task).await;
        let start = ctx.set(100);
        let holder = ctx.claim(&task.id, "a").await.unwrap().lease.holder();
        ctx.set_time(start + run_time);
        store.finish_task(&task.id, &holder, &ctx.outcome(status)).await.unwrap();
    }
    // `task_in` finishes in 1 s too.
    ctx.task_in(TaskStatus::Completed, 20).await;

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

/// Waits for the next change on `changes` that names `id`.
async fn next_change_of(changes: &mut super::TaskChanges, id: TaskId) -> TaskChange {
    let deadline = std::time::Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        loop {
            match changes.recv().await {
                Ok(change @ TaskChange::Task { id: changed, .. }) if changed == id => return change,
                Ok(_) => {}
                Err(error) => panic!("the change feed failed: {error}"),
            }
        }
    })
    .await
    .expect("a change arrives within 10 s")
}

/// Creation, claims, stops and releases are published on the change feed, with whether the task is
/// claimable.
pub async fn check_changes_are_published(ctx: &Context) {
    let store = &*ctx.store;
    let mut changes = store.subscribe();
    let task = ctx.task_at(0);
    ctx.insert(&task).await;
    let created = next_change_of(&mut changes, task.id).await;
    assert_eq!(created, TaskChange::Task { id: task.id, status: TaskStatus::Pending, claimable: true });
    ctx.set(1);
    let holder = ctx.claim(&task.id, "a").await.unwrap().lease.holder();
    let claimed = next_change_of(&mut changes, task.id).await;
    assert_eq!(claimed, TaskChange::Task { id: task.id, status: TaskStatus::Processing, claimable: false });
    store.release_task(&task.id, &holder).await.unwrap();
    let released = next_change_of(&mut changes, task.id).await;
    assert_eq!(released, TaskChange::Task { id: task.id, status: TaskStatus::Processing, claimable: true });
    store.request_stop(&task.id).await.unwrap();
    let stopped = next_change_of(&mut changes, task.id).await;
    assert_eq!(stopped, TaskChange::Task { id: task.id, status: TaskStatus::Cancelled, claimable: false });
}

/// 500 tasks, 8 workers claiming concurrently with `claim_next`: every task is claimed once.
pub async fn check_concurrent_claims_take_each_task_once(ctx: &Context) {
    let tasks: Vec<BatchTask> = (0..500).map(|idx| ctx.task_at(idx)).collect();
    let inserted: HashSet<TaskId> = tasks.iter().map(|task| task.id).collect();
    let mut inserts = tokio::task::JoinSet::new();
    for chunk in tasks.chunks(50) {
        let store = Arc::clone(&ctx.store);
        let chunk = chunk.to_vec();
        inserts.spawn(async move {
            store.insert_tasks(&chunk).await.into_iter().for_each(|outcome| outcome.unwrap())
        });
    }
    inserts.join_all().await;
    ctx.set(5000);

    let mut workers = tokio::task::JoinSet::new();
    for idx in 0..8 {
        let store = Arc::clone(&ctx.store);
        workers.spawn(async move {
            let request = lease(&format!("worker-{idx}"));
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
    assert_eq!(all.len(), 500, "claims: {:?}", per_worker.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(distinct, inserted);
    let metrics = ctx.store.metrics().await.unwrap();
    assert_eq!((metrics.processing_tasks, metrics.pending_tasks), (500, 0));
}
