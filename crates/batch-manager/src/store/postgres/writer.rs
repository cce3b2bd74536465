//! Group commit: store calls that change tasks are gathered into one transaction per group.
//!
//! A dispatcher task takes requests from a bounded channel; each group (every request waiting, up to
//! `max_group`) runs on a pooled connection, up to `writers` groups at once. A group is two pipelined
//! round trips:
//!
//! 1. `BEGIN`; insert the group's new tasks; lock the rows its calls name (`FOR UPDATE`, in id order,
//!    so two groups never deadlock); read the store's time; load the checkpoints claims hand out; pick
//!    claim candidates (`FOR UPDATE SKIP LOCKED`, oldest first, from the partial indexes).
//! 2. The calls are applied in order to the rows in memory by the same rules as the other stores
//!    ([`TaskRow`]); a call that fails leaves its rows as they were and gets its error. Then: the changed
//!    rows, leases, checkpoints and results written with one statement each, the notifications queued,
//!    `COMMIT`.
//!
//! Each caller is answered after the commit, so an `Ok` means committed. A deadlock or serialization
//! failure retries the group; any other failure of the transaction is every call's error.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use batch_model::{BatchTask, Checkpoint, Progress, TaskId, TaskStatus, TaskType};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};

use super::clock::DbClock;
use super::error::{GroupFailure, PgLocation, corrupt_record, storage};
use super::queries;
use super::{PgStats, micros_floor};
use crate::store::rules::{TaskRow, time_key};
use crate::store::{
    ClaimedTask, HeartbeatReply, Lease, LeaseRequest, StatusUpdate, StoreError, TaskOutcome,
    TaskResultRecord, WorkerId,
};

/// A change to make in the next group.
#[derive(Debug)]
pub(super) enum Op {
    Insert(Vec<BatchTask>),
    UpdateStatus(StatusUpdate),
    ClaimTask { id: TaskId, lease: LeaseRequest },
    ClaimNext { task_types: Vec<TaskType>, lease: LeaseRequest, max: usize },
    Heartbeat { id: TaskId, lease: LeaseRequest },
    CommitCheckpoint { id: TaskId, worker: WorkerId, checkpoint: Checkpoint, progress: Progress },
    UpdateProgress { id: TaskId, worker: WorkerId, progress: Progress },
    Finish { id: TaskId, worker: WorkerId, outcome: TaskOutcome },
    Release { id: TaskId, worker: WorkerId },
    RequestStop { id: TaskId },
}

impl Op {
    /// The task whose row the op needs locked, if it names one.
    fn target(&self) -> Option<&TaskId> {
        match self {
            Op::Insert(_) | Op::ClaimNext { .. } => None,
            Op::UpdateStatus(update) => Some(&update.id),
            Op::ClaimTask { id, .. }
            | Op::Heartbeat { id, .. }
            | Op::CommitCheckpoint { id, .. }
            | Op::UpdateProgress { id, .. }
            | Op::Finish { id, .. }
            | Op::Release { id, .. }
            | Op::RequestStop { id } => Some(id),
        }
    }
}

/// What an op answers.
#[derive(Debug)]
pub(super) enum Answer {
    Inserted(Vec<Result<(), StoreError>>),
    Task(Box<BatchTask>),
    Claimed(Vec<ClaimedTask>),
    Heartbeat(HeartbeatReply),
    Done,
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Answer, StoreError>>,
}

/// Counters of the writer, read by [`PgStore::stats`](super::PgStore::stats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    committed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    requests: AtomicU64,
    largest_group: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> PgStats {
        PgStats {
            transactions_committed: self.committed.load(Ordering::Relaxed),
            transactions_failed: self.failed.load(Ordering::Relaxed),
            transactions_retried: self.retried.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
        }
    }
}

/// The async side of the writer: sends ops and awaits their answers.
#[derive(Debug)]
pub(super) struct Writer {
    sender: mpsc::Sender<Request>,
    location: PgLocation,
    pub(super) counters: Arc<Counters>,
}

/// What a group needs besides its requests.
#[derive(Debug, Clone)]
struct Shared {
    pool: Pool,
    location: PgLocation,
    clock: DbClock,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the dispatcher on the current tokio runtime. It ends when the writer is dropped (after
    /// the groups in flight).
    pub(super) fn start(
        pool: Pool,
        location: PgLocation,
        clock: DbClock,
        writers: usize,
        max_group: usize,
        queue_capacity: usize,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel(queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let shared = Shared { pool, location: location.clone(), clock, counters: Arc::clone(&counters) };
        tokio::spawn(dispatch(shared, receiver, writers.max(1), max_group.max(1)));
        Writer { sender, location, counters }
    }

    /// Runs `op` in the next group and returns its answer once the group committed.
    pub(super) async fn call(&self, op: Op) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed =
            || storage(&self.location, "the store's writer stopped (its runtime shut down?)".to_owned());
        self.sender.send(Request { op, reply }).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn dispatch(shared: Shared, mut receiver: mpsc::Receiver<Request>, writers: usize, max_group: usize) {
    let lanes = Arc::new(Semaphore::new(writers));
    loop {
        // A free lane first: while every lane is busy, requests queue and the next group grows.
        let Ok(permit) = Arc::clone(&lanes).acquire_owned().await else { return };
        let Some(first) = receiver.recv().await else { return };
        let mut group = vec![first];
        while group.len() < max_group {
            match receiver.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            execute(&shared, group).await;
            drop(permit);
        });
    }
}

/// Why an attempt at a group failed.
enum Failure {
    /// A deadlock or serialization failure, or a dead pooled connection: try the group again.
    Retry(StoreError),
    /// Every request of the group gets this error.
    Fatal(StoreError),
}

async fn execute(shared: &Shared, group: Vec<Request>) {
    let counters = &shared.counters;
    counters.largest_group.fetch_max(group.len() as u64, Ordering::Relaxed);
    counters.requests.fetch_add(group.len() as u64, Ordering::Relaxed);
    let ops: Vec<&Op> = group.iter().map(|request| &request.op).collect();
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        match attempt(shared, &ops).await {
            Ok(answers) => break Ok(answers),
            Err(Failure::Retry(error)) if attempts < 4 => {
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, attempts, "retrying a task store group");
            }
            Err(Failure::Retry(error) | Failure::Fatal(error)) => break Err(error),
        }
    };
    match outcome {
        Ok(answers) => {
            counters.committed.fetch_add(1, Ordering::Relaxed);
            for (request, answer) in group.into_iter().zip(answers) {
                // The caller may have stopped waiting; the change stands regardless.
                let _ = request.reply.send(answer);
            }
        }
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            let failure = GroupFailure::new(error);
            for request in group {
                let _ = request.reply.send(Err(failure.to_error()));
            }
        }
    }
}

type RowsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// Runs `futures` pipelined (polled together, so their statements go out in this order without
/// waiting for each other's answers) and returns their results in order.
async fn pipeline(futures: Vec<RowsFuture<'_>>) -> Vec<Result<Vec<Row>, tokio_postgres::Error>> {
    futures::future::join_all(futures).await
}

fn boxed<'a, F>(future: F) -> RowsFuture<'a>
where
    F: Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a,
{
    Box::pin(future)
}

fn statement_done<'a, F>(future: F) -> RowsFuture<'a>
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a,
{
    Box::pin(async move { future.await.map(|()| Vec::new()) })
}

/// The first error of a pipeline that is not the echo of an earlier one ("current transaction is
/// aborted").
fn first_error(results: &mut [Result<Vec<Row>, tokio_postgres::Error>]) -> Option<tokio_postgres::Error> {
    let mut echo = None;
    for result in results.iter_mut() {
        if result.is_err()
            && let Err(error) = std::mem::replace(result, Ok(Vec::new()))
        {
            if error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) {
                echo.get_or_insert(error);
            } else {
                return Some(error);
            }
        }
    }
    echo
}

fn classify(shared: &Shared, doing: &str, error: tokio_postgres::Error) -> Failure {
    let retry = error.is_closed()
        || matches!(
            error.code(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
        );
    let error = shared.location.error(doing, error);
    if retry { Failure::Retry(error) } else { Failure::Fatal(error) }
}

/// Ends a failed transaction; a connection that cannot roll back is not given back to the pool.
async fn abandon(client: Object) {
    if client.batch_execute("ROLLBACK").await.is_err() {
        drop(Object::take(client));
    }
}

/// A loaded row with what the PostgreSQL store keeps beside it.
#[derive(Debug, Clone)]
struct PgRow {
    row: TaskRow,
    /// The fencing token, bumped by every claim.
    epoch: i64,
    /// The sequence of the task's last checkpoint.
    checkpoint_sequence: Option<u64>,
}

fn decode_row(location: &PgLocation, row: &Row) -> Result<(String, PgRow), StoreError> {
    let corrupt = |error| corrupt_record(location, "a task row", error);
    let id: String = row.try_get(0).map_err(corrupt)?;
    let Json(task): Json<BatchTask> = row
        .try_get(1)
        .map_err(|error| corrupt_record(location, &format!("the record of task {id}"), error))?;
    let lease_owner: Option<String> = row.try_get(2).map_err(corrupt)?;
    let lease_expires: Option<DateTime<Utc>> = row.try_get(3).map_err(corrupt)?;
    let epoch: i64 = row.try_get(4).map_err(corrupt)?;
    let stop_requested: bool = row.try_get(5).map_err(corrupt)?;
    let sequence: Option<i64> = row.try_get(6).map_err(corrupt)?;
    let row = TaskRow {
        task,
        lease_owner: lease_owner.map(WorkerId),
        lease_expires: lease_expires.map(time_key),
        stop_requested,
    };
    Ok((id, PgRow { row, epoch, checkpoint_sequence: sequence.map(|sequence| sequence.max(0) as u64) }))
}

/// The type filter of a claim as the SQL takes it (NULL for any type) and as a grouping key.
fn type_key(task_types: &[TaskType]) -> Option<Vec<String>> {
    if task_types.is_empty() {
        return None;
    }
    let mut names: Vec<String> = task_types.iter().map(|task_type| task_type.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    Some(names)
}

/// The group's view of its rows while its calls are applied.
struct GroupState<'a> {
    location: &'a PgLocation,
    now: DateTime<Utc>,
    rows: HashMap<String, PgRow>,
    full_dirty: BTreeSet<String>,
    lease_dirty: BTreeSet<String>,
    loaded_checkpoints: HashMap<String, Checkpoint>,
    new_checkpoints: HashMap<String, Checkpoint>,
    results: HashMap<String, TaskResultRecord>,
    notifications: Vec<String>,
}

impl GroupState<'_> {
    fn notify(&mut self, id: &TaskId, status: TaskStatus) {
        self.notifications.push(format!("{id} {status}"));
    }

    /// Applies `change` to a copy of the task's row and keeps the copy only if it succeeds.
    fn change<T>(
        &mut self,
        id: &TaskId,
        lease_only: bool,
        change: impl FnOnce(&mut PgRow, DateTime<Utc>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let key = id.to_string();
        let current = self.rows.get(&key).ok_or(StoreError::NotFound { id: *id })?;
        let mut copy = current.clone();
        let answer = change(&mut copy, self.now)?;
        self.rows.insert(key.clone(), copy);
        if lease_only {
            self.lease_dirty.insert(key);
        } else {
            self.full_dirty.insert(key);
        }
        Ok(answer)
    }

    /// Claims the row `key` if it is claimable now.
    fn claim(&mut self, key: &str, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, StoreError> {
        let Some(current) = self.rows.get(key) else { return Ok(None) };
        let lease = LeaseRequest { now: self.now, ..lease.clone() };
        let mut copy = current.clone();
        let Some(claim) = copy.row.claim(&lease) else { return Ok(None) };
        copy.epoch = copy.epoch.saturating_add(1);
        let expires = micros_floor(copy.row.lease_expires.unwrap_or(i64::MAX));
        copy.row.lease_expires = Some(expires);
        let checkpoint = match self.new_checkpoints.get(key).or_else(|| self.loaded_checkpoints.get(key)) {
            Some(checkpoint) => Some(checkpoint.clone()),
            None if copy.checkpoint_sequence.is_some() => {
                return Err(storage(
                    self.location,
                    format!(
                        "the checkpoint of task {key} was not loaded with its claim (a bug in the store)"
                    ),
                ));
            }
            None => None,
        };
        let task = copy.row.task.clone();
        self.rows.insert(key.to_owned(), copy);
        self.full_dirty.insert(key.to_owned());
        Ok(Some(ClaimedTask {
            task,
            lease: Lease { worker: claim.lease.worker, expires_at: DateTime::from_timestamp_nanos(expires) },
            checkpoint,
            resumed: claim.resumed,
            stop_requested: claim.stop_requested,
        }))
    }

    fn apply(
        &mut self,
        op: &Op,
        inserted: &mut BTreeSet<String>,
        candidates: &mut HashMap<Option<Vec<String>>, (Vec<String>, usize)>,
    ) -> Result<Answer, StoreError> {
        match op {
            Op::Insert(tasks) => {
                let outcomes = tasks
                    .iter()
                    .map(|task| {
                        if inserted.remove(&task.id.to_string()) {
                            self.notify(&task.id, task.status);
                            Ok(())
                        } else {
                            Err(StoreError::Duplicate { id: task.id })
                        }
                    })
                    .collect();
                Ok(Answer::Inserted(outcomes))
            }
            Op::UpdateStatus(update) => {
                let update = StatusUpdate { at: self.now, ..update.clone() };
                let task = self.change(&update.id, false, |row, _| {
                    row.row.update_status(&update)?;
                    Ok(row.row.task.clone())
                })?;
                self.notify(&task.id, task.status);
                Ok(Answer::Task(Box::new(task)))
            }
            Op::ClaimTask { id, lease } => {
                let key = id.to_string();
                if !self.rows.contains_key(&key) {
                    return Err(StoreError::NotFound { id: *id });
                }
                Ok(Answer::Claimed(self.claim(&key, lease)?.into_iter().collect()))
            }
            Op::ClaimNext { task_types, lease, max } => {
                let mut claimed = Vec::new();
                let Some((keys, cursor)) = candidates.get_mut(&type_key(task_types)) else {
                    return Ok(Answer::Claimed(claimed));
                };
                let keys = std::mem::take(keys);
                while claimed.len() < *max && *cursor < keys.len() {
                    let key = &keys[*cursor];
                    *cursor += 1;
                    if let Some(task) = self.claim(key, lease)? {
                        claimed.push(task);
                    }
                }
                if let Some((slot, _)) = candidates.get_mut(&type_key(task_types)) {
                    *slot = keys;
                }
                Ok(Answer::Claimed(claimed))
            }
            Op::Heartbeat { id, lease } => self.change(id, true, |row, now| {
                let lease = LeaseRequest { now, ..lease.clone() };
                let reply = row.row.heartbeat(&lease)?;
                row.row.lease_expires = row.row.lease_expires.map(micros_floor);
                Ok(Answer::Heartbeat(reply))
            }),
            Op::CommitCheckpoint { id, worker, checkpoint, progress } => {
                let key = id.to_string();
                let previous = match self.new_checkpoints.get(&key) {
                    Some(previous) => Some(previous.sequence),
                    None => self.rows.get(&key).and_then(|row| row.checkpoint_sequence),
                };
                self.change(id, false, |row, _| {
                    row.row.commit_checkpoint(worker, previous, checkpoint, progress)?;
                    row.checkpoint_sequence = Some(checkpoint.sequence);
                    Ok(())
                })?;
                self.new_checkpoints.insert(key, checkpoint.clone());
                Ok(Answer::Done)
            }
            Op::UpdateProgress { id, worker, progress } => {
                self.change(id, false, |row, _| row.row.update_progress(worker, progress))?;
                Ok(Answer::Done)
            }
            Op::Finish { id, worker, outcome } => {
                let outcome = TaskOutcome { at: self.now, ..outcome.clone() };
                let task = self.change(id, false, |row, _| {
                    row.row.finish(worker, &outcome)?;
                    Ok(row.row.task.clone())
                })?;
                let record = TaskResultRecord { result: outcome.result, metrics: outcome.metrics };
                self.results.insert(id.to_string(), record);
                self.notify(id, task.status);
                Ok(Answer::Task(Box::new(task)))
            }
            Op::Release { id, worker } => {
                self.change(id, true, |row, now| row.row.release(worker, now))?;
                self.notify(id, TaskStatus::Processing);
                Ok(Answer::Done)
            }
            Op::RequestStop { id } => {
                let task = self.change(id, false, |row, now| {
                    row.row.request_stop(now)?;
                    Ok(row.row.task.clone())
                })?;
                self.notify(id, task.status);
                Ok(Answer::Task(Box::new(task)))
            }
        }
    }
}

/// Serialised columns of the rows to insert.
#[derive(Default)]
pub(super) struct InsertColumns<'a> {
    ids: Vec<String>,
    types: Vec<&'a str>,
    statuses: Vec<&'a str>,
    created: Vec<i64>,
    run_nanos: Vec<Option<i64>>,
    records: Vec<Json<&'a BatchTask>>,
}

impl<'a> InsertColumns<'a> {
    fn of(tasks: impl Iterator<Item = &'a BatchTask>) -> InsertColumns<'a> {
        let mut columns = InsertColumns::default();
        for task in tasks {
            columns.ids.push(task.id.to_string());
            columns.types.push(task.task_type.as_str());
            columns.statuses.push(task.status.as_str());
            columns.created.push(time_key(task.created_at));
            columns.run_nanos.push(run_nanos(&TaskRow::new(task.clone())));
            columns.records.push(Json(task));
        }
        columns
    }
}

/// A finished task's run time in ns, for metrics.
pub(super) fn run_nanos(row: &TaskRow) -> Option<i64> {
    row.run_time().map(|run_time| i64::try_from(run_time.as_nanos()).unwrap_or(i64::MAX))
}

/// Parameters of the claim queries of one type filter.
struct ClaimQuery {
    key: Option<Vec<String>>,
    limit: i64,
}

async fn attempt(shared: &Shared, ops: &[&Op]) -> Result<Vec<Result<Answer, StoreError>>, Failure> {
    let location = &shared.location;
    let client = shared.pool.get().await.map_err(|error| {
        let error = location.pool_error("getting a connection", error);
        Failure::Fatal(error)
    })?;
    let (pinned, offset) = shared.clock.params();

    // What the group needs loaded.
    let insert_tasks: Vec<&BatchTask> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(tasks) => Some(tasks.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let mut lock_ids: Vec<String> =
        ops.iter().filter_map(|op| op.target()).map(ToString::to_string).collect();
    lock_ids.sort();
    lock_ids.dedup();
    let mut claim_targets: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::ClaimTask { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect();
    claim_targets.sort();
    claim_targets.dedup();
    let mut claim_queries: Vec<ClaimQuery> = Vec::new();
    for op in ops {
        if let Op::ClaimNext { task_types, max, .. } = op {
            let key = type_key(task_types);
            let wanted = i64::try_from(*max).unwrap_or(i64::MAX);
            match claim_queries.iter_mut().find(|query| query.key == key) {
                Some(query) => query.limit = query.limit.saturating_add(wanted),
                None => claim_queries.push(ClaimQuery { key, limit: wanted }),
            }
        }
    }
    // Candidates another call of the group takes first would leave a claim short: ask for a few more.
    let slack = i64::try_from(lock_ids.len()).unwrap_or(0);
    for query in &mut claim_queries {
        query.limit = query.limit.saturating_add(slack);
    }

    let prepare = |sql: &'static str| {
        let client = &client;
        async move {
            client.prepare_cached(sql).await.map_err(|error| classify(shared, "preparing a statement", error))
        }
    };
    let (
        insert_statement,
        lock_statement,
        now_statement,
        checkpoints_statement,
        pending_statement,
        abandoned_statement,
    ) = tokio::try_join!(
        prepare(queries::INSERT_TASKS),
        prepare(queries::LOCK_TASKS),
        prepare(queries::NOW),
        prepare(queries::CHECKPOINTS_OF),
        prepare(queries::CLAIM_PENDING),
        prepare(queries::CLAIM_ABANDONED),
    )?;

    // Round trip 1: begin, insert, lock, time, checkpoints, claim candidates.
    let insert = InsertColumns::of(insert_tasks.iter().copied());
    let insert_params: [&(dyn ToSql + Sync); 6] =
        [&insert.ids, &insert.types, &insert.statuses, &insert.created, &insert.run_nanos, &insert.records];
    let lock_params: [&(dyn ToSql + Sync); 1] = [&lock_ids];
    let now_params: [&(dyn ToSql + Sync); 2] = [&pinned, &offset];
    let checkpoint_params: [&(dyn ToSql + Sync); 1] = [&claim_targets];
    let claim_params: Vec<[&(dyn ToSql + Sync); 4]> = claim_queries
        .iter()
        .map(|query| [&query.key as _, &query.limit as _, &pinned as _, &offset as _])
        .collect();

    let mut first: Vec<RowsFuture<'_>> = vec![statement_done(client.batch_execute("BEGIN"))];
    let insert_at = (!insert.ids.is_empty()).then(|| {
        first.push(boxed(client.query(&insert_statement, &insert_params)));
        first.len() - 1
    });
    let lock_at = (!lock_ids.is_empty()).then(|| {
        first.push(boxed(client.query(&lock_statement, &lock_params)));
        first.len() - 1
    });
    first.push(boxed(client.query(&now_statement, &now_params)));
    let now_at = first.len() - 1;
    let checkpoints_at = (!claim_targets.is_empty()).then(|| {
        first.push(boxed(client.query(&checkpoints_statement, &checkpoint_params)));
        first.len() - 1
    });
    let claims_at = first.len();
    for params in &claim_params {
        first.push(boxed(client.query(&pending_statement, &params[..2])));
        first.push(boxed(client.query(&abandoned_statement, params)));
    }
    let mut results = pipeline(first).await;
    if let Some(error) = first_error(&mut results) {
        let failure = classify(shared, "loading the tasks of a group", error);
        abandon(client).await;
        return Err(failure);
    }
    let mut take =
        |idx: Option<usize>| idx.and_then(|idx| std::mem::replace(&mut results[idx], Ok(Vec::new())).ok());

    let loaded = (|| -> Result<_, StoreError> {
        let now: DateTime<Utc> = take(Some(now_at))
            .and_then(|rows| rows.into_iter().next())
            .ok_or_else(|| storage(location, "the database did not tell its time".to_owned()))?
            .try_get(0)
            .map_err(|error| corrupt_record(location, "the database time", error))?;
        let inserted: BTreeSet<String> = take(insert_at)
            .unwrap_or_default()
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<Result<_, _>>()
            .map_err(|error| corrupt_record(location, "an inserted id", error))?;
        let mut state = GroupState {
            location,
            now,
            rows: HashMap::new(),
            full_dirty: BTreeSet::new(),
            lease_dirty: BTreeSet::new(),
            loaded_checkpoints: HashMap::new(),
            new_checkpoints: HashMap::new(),
            results: HashMap::new(),
            notifications: Vec::new(),
        };
        for row in take(lock_at).unwrap_or_default() {
            let (id, row) = decode_row(location, &row)?;
            state.rows.insert(id, row);
        }
        for row in take(checkpoints_at).unwrap_or_default() {
            let id: String =
                row.try_get(0).map_err(|error| corrupt_record(location, "a checkpoint", error))?;
            let Json(checkpoint): Json<Checkpoint> = row
                .try_get(1)
                .map_err(|error| corrupt_record(location, &format!("the checkpoint of task {id}"), error))?;
            state.loaded_checkpoints.insert(id, checkpoint);
        }
        let mut candidates: HashMap<Option<Vec<String>>, (Vec<String>, usize)> = HashMap::new();
        for (idx, query) in claim_queries.iter().enumerate() {
            let mut found: Vec<(i64, TaskId, String)> = Vec::new();
            for at in [claims_at + 2 * idx, claims_at + 2 * idx + 1] {
                for row in take(Some(at)).unwrap_or_default() {
                    let (id, decoded) = decode_row(location, &row)?;
                    let checkpoint: Option<Json<Checkpoint>> = row.try_get(7).map_err(|error| {
                        corrupt_record(location, &format!("the checkpoint of task {id}"), error)
                    })?;
                    if let Some(Json(checkpoint)) = checkpoint {
                        state.loaded_checkpoints.insert(id.clone(), checkpoint);
                    }
                    let task_id = TaskId::from_str(&id)
                        .map_err(|error| corrupt_record(location, "a task id", error))?;
                    found.push((time_key(decoded.row.task.created_at), task_id, id.clone()));
                    state.rows.entry(id).or_insert(decoded);
                }
            }
            found.sort();
            found.dedup();
            candidates.insert(query.key.clone(), (found.into_iter().map(|(_, _, id)| id).collect(), 0));
        }
        Ok((state, inserted, candidates))
    })();
    let (mut state, mut inserted, mut candidates) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            abandon(client).await;
            return Err(Failure::Fatal(error));
        }
    };

    // The calls, in order, on the rows in memory.
    let answers: Vec<Result<Answer, StoreError>> =
        ops.iter().map(|op| state.apply(op, &mut inserted, &mut candidates)).collect();

    // Round trip 2: the writes and the commit.
    let written = Writes::of(&state);
    let (update_statement, leases_statement, checkpoints_statement, results_statement, notify_statement) = tokio::try_join!(
        prepare(queries::UPDATE_TASKS),
        prepare(queries::UPDATE_LEASES),
        prepare(queries::UPSERT_CHECKPOINTS),
        prepare(queries::UPSERT_RESULTS),
        prepare(queries::NOTIFY),
    )?;
    let update_params: [&(dyn ToSql + Sync); 8] = [
        &written.ids,
        &written.statuses,
        &written.lease_owners,
        &written.lease_expiries,
        &written.epochs,
        &written.stop_flags,
        &written.run_nanos,
        &written.records,
    ];
    let lease_params: [&(dyn ToSql + Sync); 3] =
        [&written.lease_ids, &written.lease_only_owners, &written.lease_only_expiries];
    let checkpoint_params: [&(dyn ToSql + Sync); 3] =
        [&written.checkpoint_ids, &written.checkpoint_sequences, &written.checkpoints];
    let result_params: [&(dyn ToSql + Sync); 3] = [&written.result_ids, &written.results, &written.metrics];
    let notify_params: [&(dyn ToSql + Sync); 1] = [&state.notifications];
    let mut second: Vec<RowsFuture<'_>> = Vec::new();
    if !written.ids.is_empty() {
        second.push(boxed(client.query(&update_statement, &update_params)));
    }
    if !written.lease_ids.is_empty() {
        second.push(boxed(client.query(&leases_statement, &lease_params)));
    }
    if !written.checkpoint_ids.is_empty() {
        second.push(boxed(client.query(&checkpoints_statement, &checkpoint_params)));
    }
    if !written.result_ids.is_empty() {
        second.push(boxed(client.query(&results_statement, &result_params)));
    }
    if !state.notifications.is_empty() {
        second.push(boxed(client.query(&notify_statement, &notify_params)));
    }
    second.push(statement_done(client.batch_execute("COMMIT")));
    let mut results = pipeline(second).await;
    if let Some(error) = first_error(&mut results) {
        // A failed statement turns the COMMIT into a rollback; a lost connection leaves the outcome
        // unknown, which the error says.
        let failure = classify(shared, "committing a group of task changes", error);
        abandon(client).await;
        return Err(failure);
    }
    Ok(answers)
}

/// The columns of the group's writes.
#[derive(Default)]
struct Writes<'a> {
    ids: Vec<&'a str>,
    statuses: Vec<&'a str>,
    lease_owners: Vec<Option<&'a str>>,
    lease_expiries: Vec<Option<DateTime<Utc>>>,
    epochs: Vec<i64>,
    stop_flags: Vec<bool>,
    run_nanos: Vec<Option<i64>>,
    records: Vec<Json<&'a BatchTask>>,
    lease_ids: Vec<&'a str>,
    lease_only_owners: Vec<Option<&'a str>>,
    lease_only_expiries: Vec<Option<DateTime<Utc>>>,
    checkpoint_ids: Vec<&'a str>,
    checkpoint_sequences: Vec<i64>,
    checkpoints: Vec<Json<&'a Checkpoint>>,
    result_ids: Vec<&'a str>,
    results: Vec<Json<&'a serde_json::Value>>,
    metrics: Vec<Json<&'a batch_model::ProcessingMetrics>>,
}

impl<'a> Writes<'a> {
    fn of(state: &'a GroupState<'_>) -> Writes<'a> {
        let mut writes = Writes::default();
        for key in &state.full_dirty {
            let Some(row) = state.rows.get(key) else { continue };
            writes.ids.push(key.as_str());
            writes.statuses.push(row.row.task.status.as_str());
            writes.lease_owners.push(row.row.lease_owner.as_ref().map(|worker| worker.0.as_str()));
            writes.lease_expiries.push(row.row.lease_expires.map(DateTime::from_timestamp_nanos));
            writes.epochs.push(row.epoch);
            writes.stop_flags.push(row.row.stop_requested);
            writes.run_nanos.push(run_nanos(&row.row));
            writes.records.push(Json(&row.row.task));
        }
        for key in state.lease_dirty.difference(&state.full_dirty) {
            let Some(row) = state.rows.get(key) else { continue };
            writes.lease_ids.push(key.as_str());
            writes.lease_only_owners.push(row.row.lease_owner.as_ref().map(|worker| worker.0.as_str()));
            writes.lease_only_expiries.push(row.row.lease_expires.map(DateTime::from_timestamp_nanos));
        }
        for (key, checkpoint) in &state.new_checkpoints {
            writes.checkpoint_ids.push(key.as_str());
            writes.checkpoint_sequences.push(i64::try_from(checkpoint.sequence).unwrap_or(i64::MAX));
            writes.checkpoints.push(Json(checkpoint));
        }
        for (key, record) in &state.results {
            writes.result_ids.push(key.as_str());
            writes.results.push(Json(&record.result));
            writes.metrics.push(Json(&record.metrics));
        }
        writes
    }
}
