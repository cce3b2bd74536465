//! Group commit: store calls that change tasks are gathered into one transaction per group.
//!
//! A dispatcher task takes requests from a bounded channel; each group (every request waiting, up to
//! `max_group`) runs on a pooled connection, up to `writers` groups at once. A group is two pipelined
//! round trips:
//!
//! 1. `BEGIN`; insert the group's new tasks; lock the rows its calls name and the parents of those
//!    that are partitions (one statement, in the global lock order of `queries.rs`), then the
//!    partitions of every locked row (a second statement, whose snapshot sees every committed split);
//!    read the store's time and the transaction's id; load the checkpoints claims hand out; pick
//!    claim candidates (`FOR UPDATE SKIP LOCKED`, oldest first, from the partial indexes).
//! 2. The calls are applied in order to the rows in memory by the rules every store applies
//!    ([`TaskRow`], [`Family`]); a call that fails leaves the rows as they were and gets its error.
//!    Then the changed rows, leases, checkpoints, results and audit events are written with one
//!    statement each, the group's notifications queued in one statement, and `COMMIT`.
//!
//! Each caller is answered after the commit, so an `Ok` means committed. A deadlock or serialization
//! failure retries the group at once; a lost connection or a server that is restarting retries it
//! with backoff for up to `retry_for`. When the connection is lost while the commit may have been on
//! its way, the group asks the server (on a new connection) whether its transaction committed
//! (`txid_status`) before it retries, so a group is never applied twice.
//!
//! Rare cases cost an extra round trip: a candidate whose checkpoint changed after the claim
//! statement's snapshot has it loaded again (under the row lock it now holds), and a claim that
//! quarantines a partition whose family was not loaded locks the family and applies the calls again.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use batch_model::{
    AttachedInput, AttachedWrite, BatchTask, Checkpoint, CheckpointCommit, Progress, TaskId, TaskType,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};

use super::encoding::{JsonText, MetricsText, TaskRecord, Uuid, read_task, uuids};
use super::error::{GroupFailure, PgLocation, corrupt_record, storage};
use super::held::{HeldRow, HeldRows};
use super::listener::Notifications;
use super::{PgStats, queries};
use crate::store::clock::Clock;
use crate::store::feed::{ChangeFeed, TaskChange};
use crate::store::rules::{ClaimResult, Family, TaskRow, check_children, time_key};
use crate::store::{
    ClaimedTask, HeartbeatReply, Holder, Lease, LeaseRequest, StatusUpdate, StoreError, TaskOutcome,
    TaskResultRecord, WorkerId,
};

/// A change to make in the next group. A checkpoint's `writes` run in the group's transaction if
/// the checkpoint is accepted (see [`run_attached`]).
#[derive(Debug)]
pub(super) enum Op {
    Insert(Vec<BatchTask>),
    UpdateStatus(StatusUpdate),
    ClaimTask {
        id: TaskId,
        lease: LeaseRequest,
    },
    ClaimNext {
        task_types: Vec<TaskType>,
        lease: LeaseRequest,
        max: usize,
    },
    Heartbeat {
        id: TaskId,
        holder: Holder,
        ttl: Duration,
    },
    /// Consecutive checkpoints of one task (one, or the chunks a run wrote while its previous commit
    /// was on its way), applied in order: all of them or none.
    CommitCheckpoint {
        id: TaskId,
        holder: Holder,
        commits: Vec<Arc<CheckpointCommit>>,
    },
    UpdateProgress {
        id: TaskId,
        holder: Holder,
        progress: Progress,
    },
    Finish {
        id: TaskId,
        holder: Holder,
        outcome: TaskOutcome,
    },
    Release {
        id: TaskId,
        holder: Holder,
    },
    RequestStop {
        id: TaskId,
    },
    Restart {
        id: TaskId,
    },
    Split {
        id: TaskId,
        holder: Holder,
        children: Vec<BatchTask>,
    },
}

impl Op {
    /// The task whose row (and family) the op needs locked, if it names one.
    fn target(&self) -> Option<TaskId> {
        match self {
            Op::Insert(_) | Op::ClaimNext { .. } => None,
            Op::UpdateStatus(update) => Some(update.id),
            Op::ClaimTask { id, .. }
            | Op::Heartbeat { id, .. }
            | Op::CommitCheckpoint { id, .. }
            | Op::UpdateProgress { id, .. }
            | Op::Finish { id, .. }
            | Op::Release { id, .. }
            | Op::RequestStop { id }
            | Op::Restart { id }
            | Op::Split { id, .. } => Some(*id),
        }
    }

    /// The writes attached to the op (its checkpoints', in order).
    fn writes(&self) -> impl Iterator<Item = &AttachedWrite> {
        let commits: &[Arc<CheckpointCommit>] = match self {
            Op::CommitCheckpoint { commits, .. } => commits,
            _ => &[],
        };
        commits.iter().flat_map(|commit| &commit.writes)
    }

    /// Whether the op carries attached writes.
    fn has_writes(&self) -> bool {
        self.writes().next().is_some()
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
    copied: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> PgStats {
        PgStats {
            transactions_committed: self.committed.load(Ordering::Relaxed),
            transactions_failed: self.failed.load(Ordering::Relaxed),
            transactions_retried: self.retried.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
            held_rows_used: self.copied.load(Ordering::Relaxed),
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

/// What every group needs besides its requests.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub(super) pool: Pool,
    pub(super) location: PgLocation,
    /// The clock the store was given (tests); `None`: the database's.
    pub(super) clock: Option<Arc<dyn Clock>>,
    /// Where committed changes are published when no listener hears the notifications.
    pub(super) local_feed: Option<ChangeFeed>,
    /// How long a group keeps retrying a lost connection or a restarting server.
    pub(super) retry_for: Duration,
    /// The store's copies of held tasks.
    pub(super) held: Arc<HeldRows>,
}

/// The writer's limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) writers: usize,
    pub(super) max_group: usize,
    pub(super) queue_capacity: usize,
}

impl Writer {
    /// Starts the dispatcher on the current tokio runtime. It ends when the writer is dropped (after
    /// the groups in flight).
    pub(super) fn start(shared: Shared, limits: Limits) -> Writer {
        let (sender, receiver) = mpsc::channel(limits.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let location = shared.location.clone();
        let group = Group { shared: Arc::new(shared), counters: Arc::clone(&counters) };
        tokio::spawn(dispatch(group, receiver, limits.writers.max(1), limits.max_group.max(1)));
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

#[derive(Clone)]
struct Group {
    shared: Arc<Shared>,
    counters: Arc<Counters>,
}

async fn dispatch(group: Group, mut receiver: mpsc::Receiver<Request>, writers: usize, max_group: usize) {
    let lanes = Arc::new(Semaphore::new(writers));
    loop {
        // A free lane first: while every lane is busy, requests queue and the next group grows.
        let Ok(permit) = Arc::clone(&lanes).acquire_owned().await else { return };
        let Some(first) = receiver.recv().await else { return };
        // Once round the runtime's queue before the group is closed: calls made ready together (the
        // finishes of a claimed batch's tasks) join this group instead of each taking a lane and a
        // transaction of its own. It orders nothing: a call that comes later waits for the next group.
        tokio::task::yield_now().await;
        let mut requests = vec![first];
        while requests.len() < max_group {
            match receiver.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        let group = group.clone();
        tokio::spawn(async move {
            execute(&group, requests).await;
            drop(permit);
        });
    }
}

/// The statements of a group's first round trip, in the order [`run_group`] names them.
const FIRST_ROUND: [&str; 8] = [
    queries::INSERT_TASKS,
    queries::LOCK_TASKS,
    queries::LOCK_CHILDREN,
    queries::NOW_AND_XID,
    queries::EXISTING_IDS,
    queries::CHECKPOINTS_OF,
    queries::CLAIM_PENDING,
    queries::CLAIM_ABANDONED,
];

/// The statements of a group's second round trip, in the order [`write`] names them.
const SECOND_ROUND: [&str; 6] = [
    queries::INSERT_CHILDREN,
    queries::UPDATE_TASKS,
    queries::UPDATE_LEASES,
    queries::UPSERT_CHECKPOINTS,
    queries::INSERT_EVENTS,
    queries::NOTIFY,
];

/// `statements` prepared on `client` (each once per connection: cached), pipelined.
async fn prepare_all<const N: usize>(
    client: &Object,
    statements: [&'static str; N],
) -> Result<Vec<tokio_postgres::Statement>, tokio_postgres::Error> {
    futures::future::try_join_all(statements.map(|sql| client.prepare_cached(sql))).await
}

/// A round's statements prepared for a group, as an array to name them by.
async fn prepare_round<const N: usize>(
    shared: &Shared,
    client: &Object,
    statements: [&'static str; N],
) -> Result<[tokio_postgres::Statement; N], Failure> {
    let prepared = prepare_all(client, statements)
        .await
        .map_err(|error| classify(shared, "preparing a statement", error))?;
    <[tokio_postgres::Statement; N]>::try_from(prepared)
        .map_err(|_| Failure::Fatal(storage(&shared.location, "a statement was not prepared".to_owned())))
}

/// Opens the connections of the writer's `lanes` and prepares the group statements on each, in
/// one pipelined round trip per connection: the first groups find them ready (a new connection
/// costs the server a process and its catalog caches, and the statements their parsing), and a
/// server without free connection slots is found out now rather than by the first groups.
pub(super) async fn open_lanes(pool: &Pool, location: &PgLocation, lanes: usize) -> Result<(), StoreError> {
    let open = || async {
        let client = pool.get().await.map_err(|error| location.pool_error("connecting", error))?;
        let prepared =
            futures::future::try_join(prepare_all(&client, FIRST_ROUND), prepare_all(&client, SECOND_ROUND));
        prepared.await.map_err(|error| location.error("preparing the store's statements", error))?;
        Ok::<_, StoreError>(client)
    };
    // Held together, so that each is a connection of its own; back to the pool when dropped.
    let clients = futures::future::try_join_all((0..lanes).map(|_| open())).await?;
    drop(clients);
    Ok(())
}

/// Why an attempt at a group failed.
enum Failure {
    /// Try the group again: at once (a deadlock, a serialization failure, a race on a new id) or
    /// after a pause (a lost connection, a server that is restarting).
    Retry { error: StoreError, pause: bool },
    /// Every request of the group gets this error.
    Fatal(StoreError),
}

/// A committed group: the answers, what to publish, and how many rows it took from copies.
struct Committed {
    answers: Vec<Result<Answer, StoreError>>,
    changes: Vec<TaskChange>,
    copied: usize,
}

async fn execute(group: &Group, requests: Vec<Request>) {
    let counters = &group.counters;
    counters.largest_group.fetch_max(requests.len() as u64, Ordering::Relaxed);
    counters.requests.fetch_add(requests.len() as u64, Ordering::Relaxed);
    let ops: Vec<&Op> = requests.iter().map(|request| &request.op).collect();
    let deadline = Instant::now() + group.shared.retry_for;
    let mut pause = Duration::from_millis(50);
    let mut immediate_retries = 0;
    let outcome = loop {
        match attempt(&group.shared, &ops, deadline).await {
            Ok(committed) => break Ok(committed),
            Err(Failure::Retry { error, pause: wait })
                if Instant::now() < deadline && (wait || immediate_retries < 8) =>
            {
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "retrying a task store group");
                if wait {
                    tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                } else {
                    immediate_retries += 1;
                }
            }
            Err(Failure::Retry { error, .. } | Failure::Fatal(error)) => break Err(error),
        }
    };
    match outcome {
        Ok(committed) => {
            counters.committed.fetch_add(1, Ordering::Relaxed);
            counters.copied.fetch_add(committed.copied as u64, Ordering::Relaxed);
            if let Some(feed) = &group.shared.local_feed {
                for change in &committed.changes {
                    feed.publish(*change);
                }
            }
            for (request, answer) in requests.into_iter().zip(committed.answers) {
                // The caller may have stopped waiting; the change stands regardless.
                let _ = request.reply.send(answer);
            }
        }
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            let failure = GroupFailure::new(error);
            for request in requests {
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

/// Whether the error means the connection (or the server behind it) is gone or not ready: the
/// statement may not have reached the server, or its answer did not come back.
pub(super) fn is_connection_trouble(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => {
            code.code().starts_with("08")
                || matches!(
                    code,
                    &SqlState::ADMIN_SHUTDOWN
                        | &SqlState::CRASH_SHUTDOWN
                        | &SqlState::CANNOT_CONNECT_NOW
                        // The server ended a transaction left idle too long (a paused process):
                        // nothing of it committed, and the connection is gone.
                        | &SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                )
        }
        // No SQLSTATE: a closed connection, an I/O error or a timeout (and not, say, a value that
        // cannot be converted, which no retry mends).
        None => {
            error.is_closed()
                || super::error::io_kind(error).is_some()
                || error.to_string().starts_with("timeout")
        }
    }
}

fn classify(shared: &Shared, doing: &str, error: tokio_postgres::Error) -> Failure {
    let immediate = matches!(
        error.code(),
        Some(
            &SqlState::T_R_DEADLOCK_DETECTED
                | &SqlState::T_R_SERIALIZATION_FAILURE
                | &SqlState::UNIQUE_VIOLATION
        )
    );
    let pause = is_connection_trouble(&error);
    let error = shared.location.error(doing, error);
    if immediate || pause { Failure::Retry { error, pause } } else { Failure::Fatal(error) }
}

fn pool_failure(shared: &Shared, error: deadpool_postgres::PoolError) -> Failure {
    match error {
        deadpool_postgres::PoolError::Backend(error) => classify(shared, "connecting", error),
        deadpool_postgres::PoolError::Timeout(_) => {
            Failure::Retry { error: shared.location.pool_error("getting a connection", error), pause: true }
        }
        other => Failure::Fatal(shared.location.pool_error("getting a connection", other)),
    }
}

/// Ends a failed transaction; a connection that cannot roll back is not given back to the pool.
async fn abandon(client: Object) {
    if client.batch_execute("ROLLBACK").await.is_err() {
        drop(Object::take(client));
    }
}

/// The task of a row whose first four columns are its record, id, type and status (the record
/// without the three since schema 6: [`read_task`] puts them back).
pub(super) fn decode_task(location: &PgLocation, row: &Row) -> Result<BatchTask, StoreError> {
    let corrupt = |error| corrupt_record(location, "a task row", error);
    let record: &str = row.try_get(0).map_err(corrupt)?;
    let Uuid(id) = row.try_get(1).map_err(corrupt)?;
    let task_type: &str = row.try_get(2).map_err(corrupt)?;
    let status: &str = row.try_get(3).map_err(corrupt)?;
    read_task(id, task_type, status, record)
        .map_err(|error| corrupt_record(location, &format!("the record of task {id}"), error))
}

/// A loaded row (the columns of `row_columns!`), the sequence of its last checkpoint and its
/// version.
fn decode_row(location: &PgLocation, row: &Row) -> Result<(TaskRow, Option<u64>, i64), StoreError> {
    let corrupt = |error| corrupt_record(location, "a task row", error);
    let task = decode_task(location, row)?;
    let lease_owner: Option<String> = row.try_get(4).map_err(corrupt)?;
    let lease_expires: Option<DateTime<Utc>> = row.try_get(5).map_err(corrupt)?;
    let epoch: i64 = row.try_get(6).map_err(corrupt)?;
    let stop_requested: bool = row.try_get(7).map_err(corrupt)?;
    let lost_leases: i32 = row.try_get(8).map_err(corrupt)?;
    let waiting: bool = row.try_get(9).map_err(corrupt)?;
    let sequence: Option<i64> = row.try_get(10).map_err(corrupt)?;
    let rev: i64 = row.try_get(11).map_err(corrupt)?;
    let row = TaskRow {
        task,
        lease_owner: lease_owner.map(WorkerId),
        lease_expires: lease_expires.map(time_key),
        stop_requested,
        epoch: u64::try_from(epoch).unwrap_or(0),
        lost_leases: u32::try_from(lost_leases).unwrap_or(0),
        waiting,
    };
    Ok((row, sequence.map(|sequence| u64::try_from(sequence).unwrap_or(0)), rev))
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

/// `key` (ns since the epoch) rounded down to a whole microsecond: what PostgreSQL keeps.
fn micros_floor(key: i64) -> i64 {
    key - key.rem_euclid(1000)
}

/// An entry of the audit trail, written with the group.
#[derive(Debug, Clone)]
struct Event {
    id: TaskId,
    epoch: u64,
    worker: Option<WorkerId>,
    event: &'static str,
    sequence: Option<u64>,
}

/// How a changed row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// The whole row.
    Full,
    /// Only its lease, and published (a release).
    Lease,
    /// Only its lease, not published (a heartbeat).
    Renewal,
}

/// The call a row change belongs to, for the audit trail of the row's end.
#[derive(Debug, Clone, Copy)]
struct Caller<'a> {
    /// The task the call names.
    id: TaskId,
    /// The worker making the call.
    worker: Option<&'a WorkerId>,
    /// The name of the task's end event if the call ends it (default: its status).
    end: Option<&'static str>,
}

/// Why an op could not be applied.
enum OpError {
    /// Its answer.
    Store(StoreError),
    /// It needs the family of this parent, which the group did not load: load it and apply again.
    MissingFamily(TaskId),
}

impl From<StoreError> for OpError {
    fn from(error: StoreError) -> OpError {
        OpError::Store(error)
    }
}

/// What round trip 1 loaded: the starting point of every application of the group's calls.
#[derive(Debug, Clone, Default)]
struct Loaded {
    rows: HashMap<TaskId, TaskRow>,
    sequences: HashMap<TaskId, Option<u64>>,
    /// The partitions loaded of each parent.
    children: HashMap<TaskId, BTreeSet<TaskId>>,
    /// Parents (and other tasks) whose partitions are all loaded and locked.
    families: HashSet<TaskId>,
    /// Loaded checkpoints, for claims.
    checkpoints: HashMap<TaskId, Checkpoint>,
    /// Ids the group's inserts stored.
    inserted: BTreeSet<TaskId>,
    /// Partition ids a split offers that exist already.
    existing: HashSet<TaskId>,
    /// Claim candidates per type filter, oldest first.
    candidates: HashMap<Option<Vec<String>>, Vec<TaskId>>,
    /// The version of each row as read (0 for a row the group inserts).
    revs: HashMap<TaskId, i64>,
    /// Rows taken from the store's copies of held tasks, not read under a lock (see `held.rs`).
    copied: BTreeSet<TaskId>,
}

impl Loaded {
    /// Adds a row read by the group. A row loaded before keeps its loaded version (the same: the
    /// group holds its lock), unless that was a copy: the row read under a lock replaces it.
    fn add(&mut self, row: TaskRow, sequence: Option<u64>, rev: i64) {
        let id = row.task.id;
        if let Some(parent) = row.task.parent_id {
            self.children.entry(parent).or_default().insert(id);
        }
        if self.copied.remove(&id) || !self.rows.contains_key(&id) {
            self.put(row, sequence, rev);
        }
    }

    /// Adds a store's copy of a held task in place of reading it.
    fn add_copy(&mut self, held: HeldRow) {
        let id = held.row.task.id;
        if !self.rows.contains_key(&id) {
            self.put(held.row, held.sequence, held.rev);
            self.copied.insert(id);
        }
    }

    fn put(&mut self, row: TaskRow, sequence: Option<u64>, rev: i64) {
        let id = row.task.id;
        self.rows.insert(id, row);
        self.sequences.insert(id, sequence);
        self.revs.insert(id, rev);
    }
}

/// The group's rows while its calls are applied, and what it will write.
struct State<'a> {
    location: &'a PgLocation,
    now: DateTime<Utc>,
    loaded: Loaded,
    cursors: HashMap<Option<Vec<String>>, usize>,
    full: BTreeSet<TaskId>,
    leases: BTreeSet<TaskId>,
    /// Partitions a split adds, inserted before the rows are updated.
    new_rows: Vec<BatchTask>,
    checkpoints: BTreeMap<TaskId, Checkpoint>,
    results: BTreeMap<TaskId, TaskResultRecord>,
    events: Vec<Event>,
    /// Tasks to publish, in the order they changed.
    notify: Vec<TaskId>,
    notified: HashSet<TaskId>,
    /// Tasks the group's claims took.
    claimed: HashSet<TaskId>,
}

impl<'a> State<'a> {
    fn new(location: &'a PgLocation, now: DateTime<Utc>, loaded: Loaded) -> State<'a> {
        State {
            location,
            now,
            loaded,
            cursors: HashMap::new(),
            full: BTreeSet::new(),
            leases: BTreeSet::new(),
            new_rows: Vec::new(),
            checkpoints: BTreeMap::new(),
            results: BTreeMap::new(),
            events: Vec::new(),
            notify: Vec::new(),
            notified: HashSet::new(),
            claimed: HashSet::new(),
        }
    }

    fn row(&self, id: &TaskId) -> Result<TaskRow, StoreError> {
        self.loaded.rows.get(id).cloned().ok_or(StoreError::NotFound { id: *id })
    }

    fn sequence(&self, id: &TaskId) -> Option<u64> {
        self.loaded.sequences.get(id).copied().flatten()
    }

    /// The version of row `id` as the group read it.
    fn rev(&self, id: &TaskId) -> i64 {
        self.loaded.revs.get(id).copied().unwrap_or(0)
    }

    fn event(&mut self, row: &TaskRow, worker: Option<&WorkerId>, event: &'static str) {
        self.events.push(Event {
            id: row.task.id,
            epoch: row.epoch,
            worker: worker.cloned(),
            event,
            sequence: self.sequence(&row.task.id),
        });
    }

    fn publish(&mut self, id: TaskId) {
        if self.notified.insert(id) {
            self.notify.push(id);
        }
    }

    /// Whether the task has partitions; `MissingFamily` if they were not loaded.
    fn has_children(&self, id: &TaskId) -> Result<bool, OpError> {
        if !self.loaded.families.contains(id) {
            return Err(OpError::MissingFamily(*id));
        }
        Ok(self.loaded.children.get(id).is_some_and(|children| !children.is_empty()))
    }

    /// The family of `parent` as stored, with `updated` rows in place of their stored versions.
    fn family(&self, parent: &TaskId, updated: &[TaskRow]) -> Result<Family, OpError> {
        if !self.loaded.families.contains(parent) {
            return Err(OpError::MissingFamily(*parent));
        }
        let get = |id: &TaskId| {
            updated.iter().find(|row| row.task.id == *id).or_else(|| self.loaded.rows.get(id)).cloned()
        };
        let parent_row = get(parent).ok_or_else(|| {
            storage(self.location, format!("the parent task {parent} was not loaded (a bug in the store)"))
        })?;
        let children = self.loaded.children.get(parent).into_iter().flatten().filter_map(get).collect();
        Ok(Family::new(parent_row, children))
    }

    /// `row` after its change, and, if it is a partition, its family settled: every row to store.
    fn settled(&self, row: TaskRow) -> Result<Vec<TaskRow>, OpError> {
        let Some(parent) = row.task.parent_id else { return Ok(vec![row]) };
        let mut family = self.family(&parent, std::slice::from_ref(&row))?;
        family.settle(self.now);
        Ok(family_rows(family))
    }

    /// Stores changed rows: marks them for writing and publishing, and records the ends of tasks in
    /// the audit trail. `caller`'s own row is written as `write`; every other row whole.
    fn store(&mut self, rows: Vec<TaskRow>, write: Write, caller: Caller<'_>) {
        for row in rows {
            let id = row.task.id;
            let before = self.loaded.rows.get(&id);
            if before == Some(&row) {
                continue;
            }
            // A new row (a partition a split adds) counts as running before.
            let was_running = before.is_none_or(|before| !before.task.status.is_terminal());
            let is_caller = id == caller.id;
            if was_running && row.task.status.is_terminal() {
                let (worker, event) = if is_caller {
                    (caller.worker, caller.end.unwrap_or(row.task.status.as_str()))
                } else {
                    (None, row.task.status.as_str())
                };
                self.event(&row, worker, event);
            }
            match if is_caller { write } else { Write::Full } {
                Write::Full => {
                    self.full.insert(id);
                    self.publish(id);
                }
                Write::Lease => {
                    self.leases.insert(id);
                    self.publish(id);
                }
                Write::Renewal => {
                    self.leases.insert(id);
                }
            }
            self.loaded.rows.insert(id, row);
        }
    }

    /// The last checkpoint of a task being claimed.
    fn checkpoint_for(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        let Some(sequence) = self.sequence(id) else { return Ok(None) };
        match self.loaded.checkpoints.get(id) {
            Some(checkpoint) if checkpoint.sequence == sequence => Ok(Some(checkpoint.clone())),
            _ => Err(storage(
                self.location,
                format!("the checkpoint of task {id} was not loaded with its claim (a bug in the store)"),
            )),
        }
    }

    /// Claims the row `id` if it is claimable now (or quarantines it).
    fn claim(&mut self, id: &TaskId, lease: &LeaseRequest) -> Result<Option<ClaimedTask>, OpError> {
        let Some(mut row) = self.loaded.rows.get(id).cloned() else { return Ok(None) };
        let caller = Caller { id: *id, worker: Some(&lease.worker), end: Some("quarantined") };
        match row.claim(lease, self.now) {
            ClaimResult::NotClaimable => Ok(None),
            ClaimResult::Quarantined => {
                let rows = self.settled(row)?;
                self.store(rows, Write::Full, caller);
                Ok(None)
            }
            ClaimResult::Claimed(claim) => {
                let expires = micros_floor(row.lease_expires.unwrap_or(i64::MAX));
                row.lease_expires = Some(expires);
                let checkpoint = self.checkpoint_for(id)?;
                self.event(&row, Some(&lease.worker), "claimed");
                self.claimed.insert(*id);
                let task = row.task.clone();
                self.store(vec![row], Write::Full, caller);
                Ok(Some(ClaimedTask {
                    task,
                    lease: Lease {
                        worker: claim.lease.worker,
                        epoch: claim.lease.epoch,
                        expires_at: DateTime::from_timestamp_nanos(expires),
                    },
                    checkpoint,
                    resumed: claim.resumed,
                    stop_requested: claim.stop_requested,
                }))
            }
        }
    }

    fn apply(&mut self, op: &Op) -> Result<Answer, OpError> {
        let now = self.now;
        match op {
            Op::Insert(tasks) => {
                let outcomes = tasks
                    .iter()
                    .map(|task| {
                        if self.loaded.inserted.remove(&task.id) {
                            self.loaded.add(TaskRow::new(task.clone()), None, 0);
                            self.publish(task.id);
                            Ok(())
                        } else {
                            Err(StoreError::Duplicate { id: task.id })
                        }
                    })
                    .collect();
                Ok(Answer::Inserted(outcomes))
            }
            Op::UpdateStatus(update) => {
                let mut row = self.row(&update.id)?;
                row.update_status(update, now)?;
                let task = row.task.clone();
                let rows = self.settled(row)?;
                self.store(rows, Write::Full, Caller { id: update.id, worker: None, end: None });
                Ok(Answer::Task(Box::new(task)))
            }
            Op::ClaimTask { id, lease } => {
                if !self.loaded.rows.contains_key(id) {
                    return Err(StoreError::NotFound { id: *id }.into());
                }
                Ok(Answer::Claimed(self.claim(id, lease)?.into_iter().collect()))
            }
            Op::ClaimNext { task_types, lease, max } => {
                let key = type_key(task_types);
                let candidates = self.loaded.candidates.get(&key).cloned().unwrap_or_default();
                let mut cursor = self.cursors.get(&key).copied().unwrap_or(0);
                let mut claimed = Vec::new();
                while claimed.len() < *max && cursor < candidates.len() {
                    let id = candidates[cursor];
                    cursor += 1;
                    if let Some(task) = self.claim(&id, lease)? {
                        claimed.push(task);
                    }
                }
                self.cursors.insert(key, cursor);
                Ok(Answer::Claimed(claimed))
            }
            Op::Heartbeat { id, holder, ttl } => {
                let mut row = self.row(id)?;
                let mut reply = row.heartbeat(holder, *ttl, now)?;
                let expires = micros_floor(row.lease_expires.unwrap_or(i64::MAX));
                row.lease_expires = Some(expires);
                reply.expires_at = DateTime::from_timestamp_nanos(expires);
                self.store(vec![row], Write::Renewal, Caller { id: *id, worker: None, end: None });
                Ok(Answer::Heartbeat(reply))
            }
            Op::CommitCheckpoint { id, holder, commits } => {
                // Every checkpoint checked (holder, sequence) before anything is recorded: a refused
                // one leaves the group's rows as they were, and none of the op's is committed.
                let mut row = self.row(id)?;
                let mut sequence = self.sequence(id);
                let mut steps = Vec::with_capacity(commits.len());
                for commit in commits {
                    let CheckpointCommit { checkpoint, progress, writes: _ } = &**commit;
                    row.commit_checkpoint(holder, sequence, checkpoint, progress, now)?;
                    sequence = Some(checkpoint.sequence);
                    steps.push(row.clone());
                }
                let Some(last) = commits.last() else {
                    return Err(OpError::Store(storage(
                        self.location,
                        format!("a commit of no checkpoints for task {id} (a bug in the caller)"),
                    )));
                };
                let rows = self.settled(row)?;
                for (step, commit) in steps.iter().zip(commits) {
                    self.loaded.sequences.insert(*id, Some(commit.checkpoint.sequence));
                    self.event(step, Some(&holder.worker), "checkpoint");
                }
                self.loaded.checkpoints.insert(*id, last.checkpoint.clone());
                self.checkpoints.insert(*id, last.checkpoint.clone());
                self.store(rows, Write::Full, Caller { id: *id, worker: Some(&holder.worker), end: None });
                Ok(Answer::Done)
            }
            Op::UpdateProgress { id, holder, progress } => {
                let mut row = self.row(id)?;
                row.update_progress(holder, progress, now)?;
                let rows = self.settled(row)?;
                self.store(rows, Write::Full, Caller { id: *id, worker: Some(&holder.worker), end: None });
                Ok(Answer::Done)
            }
            Op::Finish { id, holder, outcome } => {
                let mut row = self.row(id)?;
                row.finish(holder, outcome, now)?;
                let task = row.task.clone();
                let rows = self.settled(row)?;
                let record =
                    TaskResultRecord { result: outcome.result.clone(), metrics: outcome.metrics.clone() };
                self.results.insert(*id, record);
                self.store(rows, Write::Full, Caller { id: *id, worker: Some(&holder.worker), end: None });
                Ok(Answer::Task(Box::new(task)))
            }
            Op::Release { id, holder } => {
                let mut row = self.row(id)?;
                row.release(holder, now)?;
                let rows = self.settled(row.clone())?;
                self.event(&row, Some(&holder.worker), "released");
                self.store(rows, Write::Lease, Caller { id: *id, worker: Some(&holder.worker), end: None });
                Ok(Answer::Done)
            }
            Op::RequestStop { id } => {
                let mut row = self.row(id)?;
                row.request_stop(now)?;
                let task = row.task.clone();
                let mut rows = self.settled(row)?;
                if self.has_children(id)? {
                    let mut family = self.family(id, &rows)?;
                    family.stop_children(now);
                    let stopped = family_rows(family);
                    rows.retain(|row| !stopped.iter().any(|other| other.task.id == row.task.id));
                    rows.extend(stopped);
                }
                self.store(rows, Write::Full, Caller { id: *id, worker: None, end: None });
                Ok(Answer::Task(Box::new(task)))
            }
            Op::Restart { id } => {
                let mut row = self.row(id)?;
                row.restart(now)?;
                let task = row.task.clone();
                let rows = if self.has_children(id)? {
                    let mut family = self.family(id, &[])?;
                    family.restart_children(now)?;
                    family.parent = row;
                    family_rows(family)
                } else {
                    vec![row]
                };
                for restarted in &rows {
                    let was = self.loaded.rows.get(&restarted.task.id).map(|row| row.task.status);
                    if was.is_some_and(|was| was != restarted.task.status) {
                        self.event(restarted, None, "restarted");
                    }
                }
                self.store(rows, Write::Full, Caller { id: *id, worker: None, end: None });
                Ok(Answer::Task(Box::new(task)))
            }
            Op::Split { id, holder, children } => {
                let parent = self.row(id)?;
                parent.check_holder(holder)?;
                check_children(&parent, children)?;
                let mut offered = HashSet::new();
                for child in children {
                    let exists = self.loaded.existing.contains(&child.id)
                        || self.loaded.rows.contains_key(&child.id)
                        || !offered.insert(child.id);
                    if exists {
                        return Err(StoreError::Duplicate { id: child.id }.into());
                    }
                }
                let new_rows: Vec<TaskRow> =
                    children.iter().map(|child| TaskRow::new(child.clone())).collect();
                let mut family = self.family(id, &[])?;
                family.children.extend(new_rows.iter().cloned());
                let mut family = Family::new(family.parent, family.children);
                family.park(holder, now)?;
                for child in children {
                    self.loaded.existing.insert(child.id);
                    self.loaded.children.entry(*id).or_default().insert(child.id);
                    self.new_rows.push(child.clone());
                    // Stored as given first (inserted), then as the split left it (updated).
                    self.loaded.sequences.insert(child.id, None);
                    self.loaded.revs.insert(child.id, 0);
                    self.full.insert(child.id);
                    self.publish(child.id);
                }
                let rows = family_rows(family);
                self.event(&parent, Some(&holder.worker), "split");
                self.store(rows, Write::Full, Caller { id: *id, worker: Some(&holder.worker), end: None });
                Ok(Answer::Done)
            }
        }
    }

    /// Every row of the group as it committed, with its checkpoint sequence and version, for the
    /// store's copies of held tasks: taken out of the state (the group is over), not copied.
    fn take_held_rows(&mut self) -> Vec<(TaskRow, Option<u64>, i64)> {
        let rows = std::mem::take(&mut self.loaded.rows);
        rows.into_iter()
            .map(|(id, row)| {
                let written =
                    self.full.contains(&id) || self.leases.contains(&id) || self.results.contains_key(&id);
                (row, self.sequence(&id), self.rev(&id) + i64::from(written))
            })
            .collect()
    }

    /// Each published task with its status and whether it is claimable now.
    fn changes(&self) -> Vec<TaskChange> {
        self.notify
            .iter()
            .filter_map(|id| {
                let row = self.loaded.rows.get(id)?;
                Some(TaskChange::Task {
                    id: *id,
                    status: row.task.status,
                    claimable: row.is_claimable(self.now),
                })
            })
            .collect()
    }
}

/// The rows of a family, parent first.
fn family_rows(family: Family) -> Vec<TaskRow> {
    let mut rows = Vec::with_capacity(family.children.len() + 1);
    rows.push(family.parent);
    rows.extend(family.children);
    rows
}

/// The group's state after its calls, and their answers.
type Applied<'a> = (State<'a>, Vec<Result<Answer, StoreError>>);

/// Calls left out of the group (by index), with their answers: calls whose attached writes failed.
type Excluded = BTreeMap<usize, StoreError>;

/// Applies every op but the `excluded` to a fresh copy of what was loaded. `Err` with the parents
/// whose families must be loaded first.
fn apply_all<'a>(
    location: &'a PgLocation,
    now: DateTime<Utc>,
    loaded: Loaded,
    ops: &[&Op],
    excluded: &Excluded,
) -> Result<Applied<'a>, BTreeSet<TaskId>> {
    let mut state = State::new(location, now, loaded);
    let mut missing = BTreeSet::new();
    let mut answers = Vec::with_capacity(ops.len());
    for (idx, op) in ops.iter().enumerate() {
        if let Some(error) = excluded.get(&idx) {
            answers.push(Err(error.copy()));
            continue;
        }
        match state.apply(op) {
            Ok(answer) => answers.push(Ok(answer)),
            Err(OpError::Store(error)) => answers.push(Err(error)),
            Err(OpError::MissingFamily(parent)) => {
                missing.insert(parent);
                answers.push(Err(storage(location, "not applied".to_owned())));
            }
        }
    }
    if missing.is_empty() { Ok((state, answers)) } else { Err(missing) }
}

/// Serialised columns of the rows to insert.
#[derive(Default)]
pub(super) struct InsertColumns<'a> {
    pub(super) ids: Vec<Uuid>,
    pub(super) types: Vec<&'a str>,
    pub(super) statuses: Vec<&'a str>,
    pub(super) created: Vec<i64>,
    pub(super) run_nanos: Vec<Option<i64>>,
    pub(super) records: Vec<TaskRecord<'a>>,
    pub(super) parents: Vec<Option<Uuid>>,
}

impl<'a> InsertColumns<'a> {
    pub(super) fn of(tasks: impl Iterator<Item = &'a BatchTask>) -> InsertColumns<'a> {
        let mut columns = InsertColumns::default();
        for task in tasks {
            columns.ids.push(Uuid(task.id));
            columns.types.push(task.task_type.as_str());
            columns.statuses.push(task.status.as_str());
            columns.created.push(time_key(task.created_at));
            columns.run_nanos.push(run_nanos(task));
            columns.records.push(TaskRecord(task));
            columns.parents.push(task.parent_id.map(Uuid));
        }
        columns
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [&self.ids, &self.types, &self.statuses, &self.created, &self.run_nanos, &self.records, &self.parents]
    }
}

/// A finished task's run time in ns, for metrics.
pub(super) fn run_nanos(task: &BatchTask) -> Option<i64> {
    crate::store::rules::run_time(task).map(|run_time| i64::try_from(run_time.as_nanos()).unwrap_or(i64::MAX))
}

/// Parameters of the claim queries of one type filter.
struct ClaimQuery {
    key: Option<Vec<String>>,
    limit: i64,
}

fn parse_id(location: &PgLocation, row: &Row) -> Result<TaskId, StoreError> {
    let Uuid(id) = row.try_get(0).map_err(|error| corrupt_record(location, "a task id", error))?;
    Ok(id)
}

fn decode_checkpoints(location: &PgLocation, rows: &[Row], into: &mut Loaded) -> Result<(), StoreError> {
    for row in rows {
        let id = parse_id(location, row)?;
        let Json(checkpoint): Json<Checkpoint> = row
            .try_get(1)
            .map_err(|error| corrupt_record(location, &format!("the checkpoint of task {id}"), error))?;
        into.checkpoints.insert(id, checkpoint);
    }
    Ok(())
}

async fn attempt(shared: &Shared, ops: &[&Op], deadline: Instant) -> Result<Committed, Failure> {
    let client = shared.pool.get().await.map_err(|error| pool_failure(shared, error))?;
    let outcome = run_group(shared, &client, ops, deadline).await;
    if outcome.is_err() {
        abandon(client).await;
    }
    outcome
}

async fn run_group(
    shared: &Shared,
    client: &Object,
    ops: &[&Op],
    deadline: Instant,
) -> Result<Committed, Failure> {
    let location = &shared.location;
    let clock_now: Option<DateTime<Utc>> = shared.clock.as_ref().map(|clock| clock.now());

    // What the group needs loaded.
    let insert_tasks: Vec<&BatchTask> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(tasks) => Some(tasks.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let targets: BTreeSet<TaskId> = ops.iter().filter_map(|op| op.target()).collect();
    // The holder calls' tasks the store keeps copies of are not locked and read (see `held.rs`).
    let holder_calls = holder_targets(ops);
    let copies: Vec<HeldRow> = holder_calls.iter().filter_map(|id| shared.held.get(id)).collect();
    let copied: BTreeSet<TaskId> = copies.iter().map(|held| held.row.task.id).collect();
    let lock_ids = uuids(targets.iter().copied().filter(|id| !copied.contains(id)));
    // Claims leave out every target, locked or not: their claimability is judged in memory.
    let target_ids = uuids(targets.iter().copied());
    let claim_targets: BTreeSet<TaskId> = ops
        .iter()
        .filter_map(|op| match op {
            Op::ClaimTask { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let claim_ids = uuids(claim_targets.iter().copied());
    let offered_ids: Vec<Uuid> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Split { children, .. } => Some(children.iter().map(|child| Uuid(child.id))),
            _ => None,
        })
        .flatten()
        .collect();
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
    // The claim statements leave out the group's targets (locked and loaded by the lock statement, so
    // that another call of the group cannot take a candidate away); those that are claimable join the
    // candidates in memory.

    let [
        insert_statement,
        lock_statement,
        children_statement,
        now_statement,
        existing_statement,
        checkpoints_statement,
        pending_statement,
        abandoned_statement,
    ] = prepare_round(shared, client, FIRST_ROUND).await?;

    // Round trip 1: begin, insert, lock, time, checkpoints, claim candidates.
    let insert = InsertColumns::of(insert_tasks.iter().copied());
    let insert_params = insert.params();
    let lock_params: [&(dyn ToSql + Sync); 1] = [&lock_ids];
    let now_params: [&(dyn ToSql + Sync); 1] = [&clock_now];
    let existing_params: [&(dyn ToSql + Sync); 1] = [&offered_ids];
    let checkpoint_params: [&(dyn ToSql + Sync); 1] = [&claim_ids];
    let claim_params: Vec<[&(dyn ToSql + Sync); 4]> = claim_queries
        .iter()
        .map(|query| [&query.key as _, &query.limit as _, &target_ids as _, &clock_now as _])
        .collect();

    let mut first: Vec<RowsFuture<'_>> = vec![statement_done(client.batch_execute("BEGIN"))];
    let insert_at = (!insert.ids.is_empty()).then(|| {
        first.push(boxed(client.query(&insert_statement, &insert_params)));
        first.len() - 1
    });
    let lock_at = (!lock_ids.is_empty()).then(|| {
        first.push(boxed(client.query(&lock_statement, &lock_params)));
        first.push(boxed(client.query(&children_statement, &lock_params)));
        first.len() - 2
    });
    // The time is read once the locks are held, so that waiting for them does not age it.
    first.push(boxed(client.query(&now_statement, &now_params)));
    let now_at = first.len() - 1;
    let existing_at = (!offered_ids.is_empty()).then(|| {
        first.push(boxed(client.query(&existing_statement, &existing_params)));
        first.len() - 1
    });
    let checkpoints_at = (!claim_ids.is_empty()).then(|| {
        first.push(boxed(client.query(&checkpoints_statement, &checkpoint_params)));
        first.len() - 1
    });
    if !claim_params.is_empty() {
        first.push(statement_done(client.batch_execute(queries::INDEX_PLANS)));
    }
    let claims_at = first.len();
    for params in &claim_params {
        first.push(boxed(client.query(&pending_statement, &params[..3])));
        first.push(boxed(client.query(&abandoned_statement, params)));
    }
    // Writes attached to checkpoints run after the calls are applied; a failing one is undone by
    // returning here.
    let has_writes = ops.iter().any(|op| op.has_writes());
    if has_writes {
        first.push(statement_done(client.batch_execute(queries::SAVEPOINT_ATTACHED)));
    }
    let mut results = pipeline(first).await;
    if let Some(error) = first_error(&mut results) {
        return Err(classify(shared, "loading the tasks of a group", error));
    }
    let mut take = |idx: Option<usize>| {
        idx.and_then(|idx| std::mem::replace(&mut results[idx], Ok(Vec::new())).ok()).unwrap_or_default()
    };

    let mut loaded = Loaded::default();
    let time_row = take(Some(now_at));
    let time = time_row
        .first()
        .ok_or_else(|| Failure::Fatal(storage(location, "the database did not tell its time".to_owned())))?;
    let now: DateTime<Utc> = time
        .try_get(0)
        .map_err(|error| Failure::Fatal(corrupt_record(location, "the database time", error)))?;
    let xid: i64 = time
        .try_get(1)
        .map_err(|error| Failure::Fatal(corrupt_record(location, "the transaction id", error)))?;
    let decoded = (|| -> Result<(), StoreError> {
        for row in take(insert_at) {
            loaded.inserted.insert(parse_id(location, &row)?);
        }
        for row in take(lock_at) {
            let (row, sequence, rev) = decode_row(location, &row)?;
            // Its partitions are loaded by the next statement (none for a task that has none).
            loaded.families.insert(row.task.id);
            loaded.add(row, sequence, rev);
        }
        for row in take(lock_at.map(|idx| idx + 1)) {
            let (row, sequence, rev) = decode_row(location, &row)?;
            loaded.add(row, sequence, rev);
        }
        // The holder calls' tasks kept by the store, in place of reading them.
        for held in copies {
            loaded.add_copy(held);
        }
        for row in take(existing_at) {
            loaded.existing.insert(parse_id(location, &row)?);
        }
        decode_checkpoints(location, &take(checkpoints_at), &mut loaded)?;
        for (idx, query) in claim_queries.iter().enumerate() {
            let mut found: Vec<(i64, TaskId)> = Vec::new();
            for at in [claims_at + 2 * idx, claims_at + 2 * idx + 1] {
                for row in take(Some(at)) {
                    let (decoded, sequence, rev) = decode_row(location, &row)?;
                    let id = decoded.task.id;
                    let checkpoint: Option<Json<Checkpoint>> = row.try_get(12).map_err(|error| {
                        corrupt_record(location, &format!("the checkpoint of task {id}"), error)
                    })?;
                    if let Some(Json(checkpoint)) = checkpoint {
                        loaded.checkpoints.entry(id).or_insert(checkpoint);
                    }
                    found.push((time_key(decoded.task.created_at), id));
                    loaded.add(decoded, sequence, rev);
                }
            }
            for id in &targets {
                // A copy is not locked (nor its checkpoint read with it): its task waits for a
                // later group's claim statements.
                if loaded.copied.contains(id) {
                    continue;
                }
                let Some(row) = loaded.rows.get(id) else { continue };
                let type_matches = query
                    .key
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|name| name == row.task.task_type.as_str()));
                if type_matches && row.is_claimable(now) {
                    found.push((time_key(row.task.created_at), *id));
                }
            }
            found.sort();
            found.dedup();
            loaded.candidates.insert(query.key.clone(), found.into_iter().map(|(_, id)| id).collect());
        }
        Ok(())
    })();
    decoded.map_err(Failure::Fatal)?;

    // A candidate whose checkpoint was committed after its claim statement's snapshot was read with
    // the older checkpoint: read it again, now that the row is locked.
    let stale: Vec<Uuid> = loaded
        .candidates
        .values()
        .flatten()
        .chain(claim_targets.iter())
        .filter(|id| {
            let sequence = loaded.sequences.get(id).copied().flatten();
            sequence.is_some() && loaded.checkpoints.get(id).map(|checkpoint| checkpoint.sequence) != sequence
        })
        .map(|id| Uuid(*id))
        .collect();
    if !stale.is_empty() {
        let rows = client
            .query(&checkpoints_statement, &[&stale])
            .await
            .map_err(|error| classify(shared, "loading checkpoints", error))?;
        for row in &rows {
            let id = parse_id(location, row).map_err(Failure::Fatal)?;
            loaded.checkpoints.remove(&id);
        }
        decode_checkpoints(location, &rows, &mut loaded).map_err(Failure::Fatal)?;
    }

    // The calls, in order, on the rows in memory. Only a claim that quarantines a partition can need
    // a family the group did not load; when one may, the calls run on a copy, so that they can run
    // again once the family is loaded.
    let may_need_families = loaded.candidates.values().flatten().any(|id| {
        loaded
            .rows
            .get(id)
            .and_then(|row| row.task.parent_id)
            .is_some_and(|parent| !loaded.families.contains(&parent))
    });
    let mut excluded = Excluded::new();
    let (mut state, mut answers) = if may_need_families || has_writes {
        apply_loading(shared, client, now, &mut loaded, ops, &excluded).await?
    } else {
        apply_all(location, now, std::mem::take(&mut loaded), ops, &excluded)
            .map_err(|missing| unloaded(location, &missing))?
    };
    // A call refused on a copy is judged again on the row as stored: the copy may be behind it.
    let refused: Vec<TaskId> = ops
        .iter()
        .zip(&answers)
        .filter_map(|(op, answer)| {
            op.target().filter(|id| answer.is_err() && state.loaded.copied.contains(id))
        })
        .collect();
    if !refused.is_empty() {
        shared.held.forget(refused.iter().copied());
        return Err(Failure::Retry {
            error: storage(
                location,
                format!(
                    "calls on tasks {refused:?} were refused on the store's copies; judged again on the rows"
                ),
            ),
            pause: false,
        });
    }
    // The writes attached to the accepted checkpoints. When one fails, every attached write is
    // undone and the calls are applied again without its call, which gets the error: the other
    // calls commit as if it had never been in the group. At most one round per call.
    if has_writes {
        loop {
            let accepted: Vec<usize> =
                (0..ops.len()).filter(|idx| ops[*idx].has_writes() && answers[*idx].is_ok()).collect();
            let Some((failed, error)) = run_attached(shared, client, ops, &accepted).await? else { break };
            excluded.extend(failed.into_iter().map(|idx| (idx, error.copy())));
            (state, answers) = apply_loading(shared, client, now, &mut loaded, ops, &excluded).await?;
        }
    }

    // A copy the calls did not change is written all the same (its lease, as it is), so that its
    // version is checked: an answer given from it stands only if it was the row as stored.
    let unchanged: Vec<TaskId> = state.loaded.copied.difference(&state.full).copied().collect();
    state.leases.extend(unchanged);

    // Round trip 2: the writes and the commit (notifying `changes`, which are published locally
    // too when nobody listens).
    let changes = state.changes();
    write(shared, client, &state, &changes, xid, deadline).await?;
    // Copies are kept of the tasks the group claimed or its holder calls named (rows it merely read,
    // held by other stores' workers, would only age); every row it saw that is no longer held goes.
    let held_rows = state.take_held_rows();
    shared.held.record(held_rows, |id| holder_calls.contains(id) || state.claimed.contains(id));
    Ok(Committed { answers, changes, copied: state.loaded.copied.len() })
}

/// The tasks of the group's holder calls (heartbeat, checkpoint, progress, finish, release) that no
/// other call of the group names: those a copy may stand in for.
fn holder_targets(ops: &[&Op]) -> BTreeSet<TaskId> {
    let mut holder = BTreeSet::new();
    let mut other = BTreeSet::new();
    for op in ops {
        match op {
            Op::Heartbeat { id, .. }
            | Op::CommitCheckpoint { id, .. }
            | Op::UpdateProgress { id, .. }
            | Op::Finish { id, .. }
            | Op::Release { id, .. } => {
                holder.insert(*id);
            }
            _ => other.extend(op.target()),
        }
    }
    holder.retain(|id| !other.contains(id));
    holder
}

/// Applies the group's calls but the `excluded` to a copy of `loaded`, locking and loading the
/// families a claim turns out to need first.
async fn apply_loading<'a>(
    shared: &'a Shared,
    client: &Object,
    now: DateTime<Utc>,
    loaded: &mut Loaded,
    ops: &[&Op],
    excluded: &Excluded,
) -> Result<Applied<'a>, Failure> {
    let location = &shared.location;
    let mut applied = apply_all(location, now, loaded.clone(), ops, excluded);
    for _ in 0..3 {
        let Err(missing) = &applied else { break };
        load_families(shared, client, missing, loaded).await?;
        applied = apply_all(location, now, loaded.clone(), ops, excluded);
    }
    applied.map_err(|missing| unloaded(location, &missing))
}

fn unloaded(location: &PgLocation, missing: &BTreeSet<TaskId>) -> Failure {
    Failure::Fatal(storage(
        location,
        format!("the families of tasks {missing:?} could not be loaded (a bug in the store)"),
    ))
}

/// Runs the writes attached to the calls `accepted` (indexes into `ops`, in order), pipelined after
/// the group's savepoint. `Ok(None)`: every write ran. `Ok(Some((calls, error)))`: a write failed
/// through its own fault (a row that does not fit, no such table, a missing privilege): every
/// attached write is undone (back to the savepoint) and `calls` (the one whose write failed; every
/// call using a statement that does not prepare) must be left out. A lost connection, a deadlock
/// or a serialization failure fails the attempt like any statement of the group.
async fn run_attached(
    shared: &Shared,
    client: &Object,
    ops: &[&Op],
    accepted: &[usize],
) -> Result<Option<(Vec<usize>, StoreError)>, Failure> {
    if accepted.is_empty() {
        return Ok(None);
    }
    // Each distinct statement prepared once (cached on the connection): a statement that does not
    // prepare (no such table) aborts the transaction, so it is undone at once.
    let mut statements: HashMap<&str, tokio_postgres::Statement> = HashMap::new();
    for &idx in accepted {
        for write in ops[idx].writes() {
            if statements.contains_key(write.statement.as_str()) {
                continue;
            }
            match client.prepare_cached(&write.statement).await {
                Ok(statement) => {
                    statements.insert(&write.statement, statement);
                }
                Err(error) if is_own_fault(&error) => {
                    let failed = accepted
                        .iter()
                        .copied()
                        .filter(|idx| ops[*idx].writes().any(|other| other.statement == write.statement))
                        .collect();
                    let error = attached_error(&shared.location, ops[idx], write, &error);
                    roll_back_attached(shared, client).await?;
                    return Ok(Some((failed, error)));
                }
                Err(error) => {
                    return Err(classify(shared, "preparing a write attached to a checkpoint", error));
                }
            }
        }
    }
    // The statements with a parameter pipelined; then each COPY on its own (a COPY holds the
    // connection until its data is sent).
    let mut calls: Vec<(usize, &AttachedWrite)> = Vec::new();
    let mut futures: Vec<RowsFuture<'_>> = Vec::new();
    let mut copies: Vec<(usize, &AttachedWrite, &tokio_postgres::Statement, Cow<'_, [u8]>)> = Vec::new();
    for &idx in accepted {
        for write in ops[idx].writes() {
            let Some(statement) = statements.get(write.statement.as_str()) else { continue };
            match &write.input {
                AttachedInput::Parameter(argument) => {
                    calls.push((idx, write));
                    futures.push(Box::pin(async move {
                        client.execute(statement, &[argument]).await.map(|_| Vec::new())
                    }));
                }
                // One call's consecutive copies into the same table (the chunks of checkpoints
                // committed together) go as one COPY: the server sets a COPY up once (its insert
                // buffers, a slot per buffered row) instead of once per chunk. Should it fail, the
                // call fails and its checkpoints are committed one by one (`commit_checkpoints`),
                // whose errors name the chunk's own line.
                AttachedInput::Copy(data) => match copies.last_mut() {
                    Some((last, previous, _, merged))
                        if *last == idx && previous.statement == write.statement =>
                    {
                        merged.to_mut().extend_from_slice(data);
                    }
                    _ => copies.push((idx, write, statement, Cow::Borrowed(data))),
                },
            }
        }
    }
    let results = pipeline(futures).await;
    // The first failure is the cause; the writes after it only echo the aborted transaction.
    let mut failed =
        results.into_iter().enumerate().find_map(|(at, result)| result.err().map(|error| (at, error)));
    if failed.is_none() {
        for (idx, write, statement, data) in copies {
            if let Err(error) = copy_in(client, statement, &data).await {
                calls.push((idx, write));
                failed = Some((calls.len() - 1, error));
                break;
            }
        }
    }
    let Some((at, error)) = failed else {
        return Ok(None);
    };
    if !is_own_fault(&error) {
        return Err(classify(shared, "running the writes attached to checkpoints", error));
    }
    let (idx, write) = calls[at];
    let error = attached_error(&shared.location, ops[idx], write, &error);
    roll_back_attached(shared, client).await?;
    Ok(Some((vec![idx], error)))
}

/// Runs the `COPY … FROM STDIN` `statement` with `data` as its whole input.
async fn copy_in(
    client: &Object,
    statement: &tokio_postgres::Statement,
    data: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    use futures::SinkExt as _;

    let sink = client.copy_in::<_, std::io::Cursor<Vec<u8>>>(statement).await?;
    let mut sink = std::pin::pin!(sink);
    // A COPY that fails on the server fails its `finish`; its data is sent whole first.
    sink.send(std::io::Cursor::new(data.to_vec())).await?;
    sink.as_mut().finish().await
}

/// Whether a failed attached write is its call's own fault (the data, the table, a privilege, a
/// statement whose parameter is not text) rather than the group's (the connection, a deadlock, a
/// serialization failure: tried again).
fn is_own_fault(error: &tokio_postgres::Error) -> bool {
    !is_connection_trouble(error)
        && !matches!(
            error.code(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
        )
}

async fn roll_back_attached(shared: &Shared, client: &Object) -> Result<(), Failure> {
    client
        .batch_execute(queries::ROLLBACK_ATTACHED)
        .await
        .map_err(|error| classify(shared, "undoing the writes attached to checkpoints", error))
}

/// The answer of the call `op` whose attached `write` failed with `error`.
fn attached_error(
    location: &PgLocation,
    op: &Op,
    write: &AttachedWrite,
    error: &tokio_postgres::Error,
) -> StoreError {
    let Some(id) = op.target() else {
        return storage(
            location,
            "a write attached to a call that names no task (a bug in the store)".to_owned(),
        );
    };
    let (cause, advice) = match error.as_db_error() {
        Some(db) => {
            let code = db.code();
            let advice = if *code == SqlState::UNDEFINED_TABLE {
                "no such table in the store's database: create it, or check the table's name"
            } else if *code == SqlState::UNDEFINED_COLUMN {
                "no such column: compare the statement's columns with the table's"
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                "the store's user lacks a privilege on the table: grant it, or write through the \
                 output's own connection (output_mode upsert)"
            } else if *code == SqlState::UNIQUE_VIOLATION {
                "the table already holds a row with this key (from before the task, or another \
                 writer): rows committed with checkpoints are inserted, not replaced; remove the row, \
                 or write through the output's own connection, which upserts (output_mode upsert)"
            } else if *code == SqlState::CARDINALITY_VIOLATION {
                "two rows of one chunk have the same key: de-duplicate on it"
            } else if code.code().starts_with("22") || code.code().starts_with("23") {
                "a row does not fit the table: compare the rows' fields with its columns"
            } else {
                "unexpected PostgreSQL failure"
            };
            let mut cause = format!("{}: {}", code.code(), db.message());
            if let Some(detail) = db.detail() {
                cause.push_str(" (");
                cause.push_str(detail);
                cause.push(')');
            }
            // Where: a COPY's line and column.
            if let Some(place) = db.where_() {
                cause.push_str(" [");
                cause.push_str(place);
                cause.push(']');
            }
            (cause, advice)
        }
        None => (error.to_string(), "unexpected PostgreSQL failure"),
    };
    StoreError::AttachedWrite {
        id,
        target: write.target.clone(),
        message: format!("{cause}: {advice}; nothing of this checkpoint was committed"),
    }
}

/// Locks and loads the families of `parents` (parents first, then their partitions).
async fn load_families(
    shared: &Shared,
    client: &Object,
    parents: &BTreeSet<TaskId>,
    loaded: &mut Loaded,
) -> Result<(), Failure> {
    let location = &shared.location;
    let ids = uuids(parents.iter().copied());
    let loading = |error| classify(shared, "loading the partitions of a task", error);
    let parents_statement = client.prepare_cached(queries::LOCK_PARENTS).await.map_err(loading)?;
    let children_statement = client.prepare_cached(queries::LOCK_CHILDREN_OF).await.map_err(loading)?;
    let parent_rows = client.query(&parents_statement, &[&ids]).await.map_err(loading)?;
    let child_rows = client.query(&children_statement, &[&ids]).await.map_err(loading)?;
    for row in parent_rows.iter().chain(&child_rows) {
        let (row, sequence, rev) = decode_row(location, row).map_err(Failure::Fatal)?;
        loaded.add(row, sequence, rev);
    }
    loaded.families.extend(parents.iter().copied());
    Ok(())
}

/// The columns of the group's writes.
#[derive(Default)]
struct Writes<'a> {
    ids: Vec<Uuid>,
    statuses: Vec<&'a str>,
    lease_owners: Vec<Option<&'a str>>,
    lease_expiries: Vec<Option<DateTime<Utc>>>,
    epochs: Vec<i64>,
    stop_flags: Vec<bool>,
    lost_leases: Vec<i32>,
    waiting: Vec<bool>,
    sequences: Vec<Option<i64>>,
    run_nanos: Vec<Option<i64>>,
    records: Vec<TaskRecord<'a>>,
    results: Vec<Option<JsonText<&'a serde_json::Value>>>,
    metrics: Vec<Option<MetricsText<'a>>>,
    revs: Vec<i64>,
    lease_ids: Vec<Uuid>,
    lease_only_owners: Vec<Option<&'a str>>,
    lease_only_expiries: Vec<Option<DateTime<Utc>>>,
    lease_revs: Vec<i64>,
    checkpoint_ids: Vec<Uuid>,
    checkpoint_sequences: Vec<i64>,
    checkpoints: Vec<Json<&'a Checkpoint>>,
    event_ids: Vec<Uuid>,
    event_epochs: Vec<i64>,
    event_workers: Vec<Option<&'a str>>,
    event_names: Vec<&'a str>,
    event_sequences: Vec<Option<i64>>,
    notifications: Notifications,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl<'a> Writes<'a> {
    /// Room in every column for what `state` writes, so that none grows while it is filled: grown by
    /// pushes, they were three quarters of a worker's reallocations (and their copies) in m3's flow.
    fn reserve(&mut self, state: &State<'_>) {
        // At most: a row both written and given a result counts twice.
        let rows = state.full.len() + state.results.len();
        self.ids.reserve(rows);
        self.statuses.reserve(rows);
        self.lease_owners.reserve(rows);
        self.lease_expiries.reserve(rows);
        self.epochs.reserve(rows);
        self.stop_flags.reserve(rows);
        self.lost_leases.reserve(rows);
        self.waiting.reserve(rows);
        self.sequences.reserve(rows);
        self.run_nanos.reserve(rows);
        self.records.reserve(rows);
        self.results.reserve(rows);
        self.metrics.reserve(rows);
        self.revs.reserve(rows);
        let leases = state.leases.len();
        self.lease_ids.reserve(leases);
        self.lease_only_owners.reserve(leases);
        self.lease_only_expiries.reserve(leases);
        self.lease_revs.reserve(leases);
        let checkpoints = state.checkpoints.len();
        self.checkpoint_ids.reserve(checkpoints);
        self.checkpoint_sequences.reserve(checkpoints);
        self.checkpoints.reserve(checkpoints);
        let events = state.events.len();
        self.event_ids.reserve(events);
        self.event_epochs.reserve(events);
        self.event_workers.reserve(events);
        self.event_names.reserve(events);
        self.event_sequences.reserve(events);
    }

    fn of(state: &'a State<'_>, changes: &[TaskChange]) -> Writes<'a> {
        let mut writes = Writes::default();
        writes.reserve(state);
        // A finished task's row is written whole (its status changed), with its result.
        for id in state.full.iter().chain(state.results.keys().filter(|id| !state.full.contains(id))) {
            let Some(row) = state.loaded.rows.get(id) else { continue };
            writes.ids.push(Uuid(*id));
            writes.statuses.push(row.task.status.as_str());
            writes.lease_owners.push(row.lease_owner.as_ref().map(|worker| worker.0.as_str()));
            writes.lease_expiries.push(row.lease_expires.map(DateTime::from_timestamp_nanos));
            writes.epochs.push(to_i64(row.epoch));
            writes.stop_flags.push(row.stop_requested);
            writes.lost_leases.push(i32::try_from(row.lost_leases).unwrap_or(i32::MAX));
            writes.waiting.push(row.waiting);
            writes.sequences.push(state.sequence(id).map(to_i64));
            writes.run_nanos.push(run_nanos(&row.task));
            writes.records.push(TaskRecord(&row.task));
            let result = state.results.get(id);
            writes.results.push(result.map(|record| JsonText(&record.result)));
            writes.metrics.push(result.map(|record| MetricsText(&record.metrics)));
            writes.revs.push(state.rev(id));
        }
        for id in state.leases.difference(&state.full) {
            let Some(row) = state.loaded.rows.get(id) else { continue };
            writes.lease_ids.push(Uuid(*id));
            writes.lease_only_owners.push(row.lease_owner.as_ref().map(|worker| worker.0.as_str()));
            writes.lease_only_expiries.push(row.lease_expires.map(DateTime::from_timestamp_nanos));
            writes.lease_revs.push(state.rev(id));
        }
        for (id, checkpoint) in &state.checkpoints {
            writes.checkpoint_ids.push(Uuid(*id));
            writes.checkpoint_sequences.push(to_i64(checkpoint.sequence));
            writes.checkpoints.push(Json(checkpoint));
        }
        for event in &state.events {
            writes.event_ids.push(Uuid(event.id));
            writes.event_epochs.push(to_i64(event.epoch));
            writes.event_workers.push(event.worker.as_ref().map(|worker| worker.0.as_str()));
            writes.event_names.push(event.event);
            writes.event_sequences.push(event.sequence.map(to_i64));
        }
        // One NOTIFY statement: the changes packed into as few payloads as fit.
        writes.notifications = Notifications::of_changes(changes.iter().copied());
        writes
    }
}

/// Round trip 2: writes the group's changes and commits. A connection lost on the way leaves the
/// outcome unknown: [`committed`] finds it out.
async fn write(
    shared: &Shared,
    client: &Object,
    state: &State<'_>,
    changes: &[TaskChange],
    xid: i64,
    deadline: Instant,
) -> Result<(), Failure> {
    let written = Writes::of(state, changes);
    let [
        children_statement,
        update_statement,
        leases_statement,
        checkpoints_statement,
        events_statement,
        notify_statement,
    ] = prepare_round(shared, client, SECOND_ROUND).await?;
    let children = InsertColumns::of(state.new_rows.iter());
    let children_params = children.params();
    let update_params: [&(dyn ToSql + Sync); 14] = [
        &written.ids,
        &written.statuses,
        &written.lease_owners,
        &written.lease_expiries,
        &written.epochs,
        &written.stop_flags,
        &written.lost_leases,
        &written.waiting,
        &written.sequences,
        &written.run_nanos,
        &written.records,
        &written.results,
        &written.metrics,
        &written.revs,
    ];
    let lease_params: [&(dyn ToSql + Sync); 4] =
        [&written.lease_ids, &written.lease_only_owners, &written.lease_only_expiries, &written.lease_revs];
    let checkpoint_params: [&(dyn ToSql + Sync); 3] =
        [&written.checkpoint_ids, &written.checkpoint_sequences, &written.checkpoints];
    let event_params: [&(dyn ToSql + Sync); 6] = [
        &written.event_ids,
        &written.event_epochs,
        &written.event_workers,
        &written.event_names,
        &written.event_sequences,
        &state.now,
    ];
    let notify_params: [&(dyn ToSql + Sync); 2] =
        [&written.notifications.channels, &written.notifications.payloads];
    let mut second: Vec<RowsFuture<'_>> = Vec::new();
    if !children.ids.is_empty() {
        second.push(boxed(client.query(&children_statement, &children_params)));
    }
    if !written.ids.is_empty() {
        second.push(boxed(client.query(&update_statement, &update_params)));
    }
    if !written.lease_ids.is_empty() {
        second.push(boxed(client.query(&leases_statement, &lease_params)));
    }
    if !written.checkpoint_ids.is_empty() {
        second.push(boxed(client.query(&checkpoints_statement, &checkpoint_params)));
    }
    if !written.event_ids.is_empty() {
        second.push(boxed(client.query(&events_statement, &event_params)));
    }
    if !written.notifications.is_empty() {
        second.push(boxed(client.query(&notify_statement, &notify_params)));
    }
    second.push(statement_done(client.batch_execute("COMMIT")));
    let mut results = pipeline(second).await;
    let Some(error) = first_error(&mut results) else { return Ok(()) };
    if error.code().is_some_and(|code| code.code() == queries::STALE_TASK) {
        // A row taken from a copy changed since: nothing committed; the group runs again with its
        // rows locked and read.
        shared.held.forget(state.loaded.copied.iter().copied());
        let error = shared.location.error("writing a task changed since the store's copy", error);
        return Err(Failure::Retry { error, pause: false });
    }
    if !is_connection_trouble(&error) {
        // The server refused a statement: the transaction was rolled back (COMMIT answers ROLLBACK).
        return Err(classify(shared, "committing a group of task changes", error));
    }
    // The connection was lost while the COMMIT may have been on its way: ask whether it committed.
    let lost = shared.location.error("committing a group of task changes", error);
    match committed(shared, xid, deadline).await {
        Some(true) => Ok(()),
        Some(false) => Err(Failure::Retry { error: lost, pause: true }),
        None => Err(Failure::Fatal(storage(
            &shared.location,
            format!(
                "{lost}; whether the transaction committed could not be learned before the retry period \
                 ended: check the tasks it changed"
            ),
        ))),
    }
}

/// Whether transaction `xid` committed, asked on new connections until the server answers or the
/// deadline passes (`None`).
async fn committed(shared: &Shared, xid: i64, deadline: Instant) -> Option<bool> {
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(client) = shared.pool.get().await {
            match client.query_one(queries::TXID_STATUS, &[&xid]).await {
                Ok(row) => match row.try_get::<_, Option<String>>(0) {
                    Ok(Some(status)) if status == "committed" => return Some(true),
                    Ok(Some(status)) if status == "aborted" => return Some(false),
                    // Still in progress: the server has not noticed the lost connection yet.
                    Ok(_) | Err(_) => {}
                },
                Err(_) => drop(Object::take(client)),
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
