//! Every SQL statement of the PostgreSQL store, named, in one place (as River keeps its driver SQL).
//!
//! Conventions: everything lives in the schema `batch`; task ids travel as `uuid` values, 16 bytes
//! each (`encoding::Uuid`: no text to format, send and parse per id); batches of rows travel as
//! parallel arrays expanded with `unnest`, one statement per batch. The store's time is always
//! `COALESCE($n::timestamptz, clock_timestamp())`: the time of the clock the store was given
//! (tests), or the database server's. A group reads it once, after its row locks are held (so that
//! waiting for a lock does not age it), and judges every row by that one time.
//!
//! Locks: a statement that waits for row locks takes them in one global order — a partitioned
//! task's family together, the parent first, then its partitions by id; families and other tasks
//! by the parent's (or the task's own) id — so two groups never wait for each other in a circle.
//! Claims take what is free (`SKIP LOCKED`) and never wait.

/// The LISTEN/NOTIFY channel of task changes. A payload is one line per task,
/// `"<task id> <status> <1 if claimable, else 0>"`, or `"*"` for "many tasks changed: look again".
/// Every line goes here; the lines some listeners wait for go on one of the narrower channels too.
pub(super) const CHANNEL: &str = "batch_task_changes";

/// The LISTEN/NOTIFY channel of the changes that make a task claimable, in [`CHANNEL`]'s payload
/// format: each such line is sent on both channels, and `"*"` too. A worker's store listens here
/// only ([`Heard::Claimable`](super::Heard::Claimable)), so that the server sends it the few
/// changes its claim loops wait for rather than every change of every task (which every listener
/// of [`CHANNEL`] gets, and a fleet has one per worker).
pub(super) const CLAIMABLE_CHANNEL: &str = "batch_task_claimable";

/// The LISTEN/NOTIFY channel of tasks' ends (completed, failed, cancelled), in [`CHANNEL`]'s
/// payload format: each such line is sent on both channels, and `"*"` too. A store that only waits
/// for tasks to end listens here only ([`Heard::Ended`](super::Heard::Ended)): a line per task
/// instead of one per change.
pub(super) const ENDED_CHANNEL: &str = "batch_task_ended";

/// The columns of a task row as [`decode_row`](super::writer) reads them, in order (the first four
/// as every reader of a task takes them: record, id, type, status).
macro_rules! row_columns {
    () => {
        "t.record, t.id, t.task_type, t.status, t.holder, t.lease_expires_at, t.epoch, \
         t.stop_requested, t.lost_leases, t.waiting, t.checkpoint_seq, t.rev"
    };
}

/// The store's time (`$1` the given clock's time, or NULL for the database's) and the transaction's
/// id (to learn after a lost connection whether the group committed).
pub(super) const NOW_AND_XID: &str = "SELECT COALESCE($1::timestamptz, clock_timestamp()), txid_current()";

/// The store's time, outside a group.
pub(super) const NOW: &str = "SELECT COALESCE($1::timestamptz, clock_timestamp())";

/// The store's database as the server names it (see `DatabaseIdentity`): the cluster's
/// `system_identifier` (any user may read it in PostgreSQL 15) and the database's name.
pub(super) const DATABASE_IDENTITY: &str =
    "SELECT system_identifier::text, current_database()::text FROM pg_control_system()";

/// The savepoint a group sets before the writes attached to its checkpoints, and returns to when
/// one fails, so that the failing call's writes are undone and the others' run again without it.
pub(super) const SAVEPOINT_ATTACHED: &str = "SAVEPOINT attached_writes";

/// Undoes every attached write of the group (see [`SAVEPOINT_ATTACHED`]); the savepoint stays.
pub(super) const ROLLBACK_ATTACHED: &str = "ROLLBACK TO SAVEPOINT attached_writes";

/// Whether a transaction committed: `committed`, `aborted`, `in progress`, or NULL when too old.
pub(super) const TXID_STATUS: &str = "SELECT txid_status($1::int8)";

/// Inserts new tasks (arrays: id, type, status, creation key, run time in ns, record, parent id); an
/// existing id is skipped. Returns the ids inserted.
pub(super) const INSERT_TASKS: &str = "\
INSERT INTO batch.tasks (id, task_type, status, created_key, run_nanos, record, parent_id)
SELECT i.id, i.task_type, i.status, i.created_key, i.run_nanos, i.record, i.parent_id
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::uuid[])
     AS i(id, task_type, status, created_key, run_nanos, record, parent_id)
ON CONFLICT (id) DO NOTHING
RETURNING id";

/// Inserts the partitions a split adds (the arrays of [`INSERT_TASKS`]); an id that exists fails the
/// statement (and the group, which is then tried again and answers `Duplicate`).
pub(super) const INSERT_CHILDREN: &str = "\
INSERT INTO batch.tasks (id, task_type, status, created_key, run_nanos, record, parent_id)
SELECT i.id, i.task_type, i.status, i.created_key, i.run_nanos, i.record, i.parent_id
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::uuid[])
     AS i(id, task_type, status, created_key, run_nanos, record, parent_id)";

/// The binary COPY of new tasks straight into `tasks` (when none of their ids exists).
pub(super) const COPY_TASKS: &str = "COPY batch.tasks (id, task_type, status, created_key, run_nanos, \
                                     record, parent_id) FROM STDIN (FORMAT binary)";

/// A session-local staging table for binary COPY of many new tasks (the columns of [`COPY_TASKS`]),
/// dropped at commit: for a bulk insert of which some ids exist.
pub(super) const CREATE_IMPORT_TABLE: &str = "\
CREATE TEMPORARY TABLE batch_import (
    id uuid, task_type text, status text, created_key int8, run_nanos int8, record text, parent_id uuid
) ON COMMIT DROP";

/// The COPY into the staging table (binary format).
pub(super) const COPY_IMPORT: &str = "COPY batch_import (id, task_type, status, created_key, run_nanos, \
                                      record, parent_id) FROM STDIN (FORMAT binary)";

/// Moves the staged tasks into `tasks`; an existing id (or a repeated one) is skipped. Returns the ids
/// inserted.
pub(super) const INSERT_IMPORTED: &str = "\
INSERT INTO batch.tasks (id, task_type, status, created_key, run_nanos, record, parent_id)
SELECT i.id, i.task_type, i.status, i.created_key, i.run_nanos, i.record, i.parent_id
FROM batch_import i
ON CONFLICT (id) DO NOTHING
RETURNING id";

/// The tasks named (`$1`) and the parents of those that are partitions.
macro_rules! named_and_parents {
    () => {
        "ARRAY(SELECT unnest($1::uuid[]) UNION \
         SELECT p.parent_id FROM batch.tasks p WHERE p.id = ANY($1::uuid[]) AND p.parent_id IS NOT NULL)"
    };
}

/// Locks and loads the tasks named (`$1`) and the parents of those that are partitions, in the
/// global lock order (parent before partitions; by family).
pub(super) const LOCK_TASKS: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM batch.tasks t WHERE t.id = ANY(",
    named_and_parents!(),
    ") ORDER BY COALESCE(t.parent_id, t.id), t.parent_id IS NOT NULL, t.id FOR UPDATE OF t"
);

/// Locks and loads the partitions of the tasks [`LOCK_TASKS`] locked, by id. Run after it, in its own
/// statement, so that its snapshot is taken once the parents are locked: it sees every partition a
/// split committed before, and no split can add one until the group ends.
pub(super) const LOCK_CHILDREN: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM batch.tasks t WHERE t.parent_id IS NOT NULL AND t.parent_id = ANY(",
    named_and_parents!(),
    ") ORDER BY t.parent_id, t.id FOR UPDATE OF t"
);

/// Locks and loads the families of the given parents (`$1`): the parents in id order, then (the next
/// statement) their partitions. For the rare claim that quarantines a partition it did not expect.
pub(super) const LOCK_PARENTS: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM batch.tasks t WHERE t.id = ANY($1::uuid[]) ORDER BY t.id FOR UPDATE OF t"
);

/// The partitions of the given parents (`$1`), locked, by family and id.
pub(super) const LOCK_CHILDREN_OF: &str = concat!(
    "SELECT ",
    row_columns!(),
    " FROM batch.tasks t WHERE t.parent_id IS NOT NULL AND t.parent_id = ANY($1::uuid[]) \
     ORDER BY t.parent_id, t.id FOR UPDATE OF t"
);

/// Which of the given ids exist already (the partitions a split offers).
pub(super) const EXISTING_IDS: &str = "SELECT id FROM batch.tasks WHERE id = ANY($1::uuid[])";

/// The last checkpoints of the given tasks (claims hand them to the new holder).
pub(super) const CHECKPOINTS_OF: &str =
    "SELECT task_id, record FROM batch.checkpoints WHERE task_id = ANY($1::uuid[])";

/// Set before the claim statements, for the rest of the group's transaction, and before a
/// listing's: claims and listings are planned as ordered scans of their partial indexes, whatever
/// the statistics say. With statistics taken when few tasks were pending (a table that filled
/// faster than autovacuum analyses it), the planner estimates a handful of rows and prefers a bitmap
/// scan and a sort, which reads and sorts every pending (or finished) task, thousands, to lock (or
/// list) a few; the ordered scan stops after the few. Plans are cached per connection, and a claim
/// or listing statement only ever runs after this one, so its plans are made under it. The
/// statements after it in a group (updates and inserts by key) use neither.
pub(super) const INDEX_PLANS: &str = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off";

/// The last checkpoint of a claim candidate `t`, read only for a task that has one (no probe of
/// `checkpoints` for a task that never committed one).
macro_rules! candidate_checkpoint {
    () => {
        ", CASE WHEN t.checkpoint_seq IS NOT NULL THEN \
         (SELECT c.record FROM batch.checkpoints c WHERE c.task_id = t.id) END"
    };
}

/// The oldest pending tasks of the given types (all when `$1` is NULL), at most `$2`, but the tasks
/// `$3` (the group's targets, locked and loaded already), locked, with their last checkpoints; rows
/// another transaction holds are skipped. Served by the partial index `tasks_pending`, in its order
/// (the store's connections plan generically, so that the plan does not follow a statistics snapshot
/// taken when the table was small; see `tests.rs`).
pub(super) const CLAIM_PENDING: &str = concat!(
    "SELECT ",
    row_columns!(),
    candidate_checkpoint!(),
    " FROM batch.tasks t \
     WHERE t.status = 'pending' AND ($1::text[] IS NULL OR t.task_type = ANY($1::text[])) \
       AND t.id <> ALL($3::uuid[]) \
     ORDER BY t.created_key, t.id LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
);

/// The oldest processing tasks nobody holds (released, or a lease that expired strictly before the
/// store's time `COALESCE($4, clock_timestamp())`, no earlier than the group's), not parents waiting
/// for their partitions, at most `$2`, but the tasks `$3`, locked, with their last checkpoints; rows
/// another transaction holds are skipped. Served by the partial index `tasks_processing` (which holds
/// the waiting parents too: the filter skips them, as it skips the tasks whose leases are live).
pub(super) const CLAIM_ABANDONED: &str = concat!(
    "SELECT ",
    row_columns!(),
    candidate_checkpoint!(),
    " FROM batch.tasks t \
     WHERE t.status = 'processing' AND NOT t.waiting \
       AND ($1::text[] IS NULL OR t.task_type = ANY($1::text[])) \
       AND (t.holder IS NULL OR t.lease_expires_at IS NULL \
            OR t.lease_expires_at < COALESCE($4::timestamptz, clock_timestamp())) \
       AND t.id <> ALL($3::uuid[]) \
     ORDER BY t.created_key, t.id LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
);

/// The next version of an updated row `t` whose version the group read as `u.rev`; a row that
/// changed since fails the statement (and the group) with `batch.stale_task` (SQLSTATE `PMP01`).
/// Evaluated on the row as it is when the update gets its lock: a change committed after the group
/// read the row counts.
macro_rules! next_rev {
    () => {
        "rev = CASE WHEN t.rev = u.rev THEN t.rev + 1 ELSE batch.stale_task(t.id) END"
    };
}

/// Saves changed rows whole (arrays: id, status, lease owner, lease expiry, epoch, stop flag, lost
/// leases, waiting, checkpoint sequence, run time in ns, record, the result and metrics of a task
/// the group finished (NULL to keep the stored ones), and the version the group read).
pub(super) const UPDATE_TASKS: &str = concat!(
    "UPDATE batch.tasks AS t
SET status = u.status, holder = u.holder, lease_expires_at = u.lease_expires_at, epoch = u.epoch,
    stop_requested = u.stop_requested, lost_leases = u.lost_leases, waiting = u.waiting,
    checkpoint_seq = u.checkpoint_seq, run_nanos = u.run_nanos, record = u.record,
    result = COALESCE(u.result, t.result), metrics = COALESCE(u.metrics, t.metrics), ",
    next_rev!(),
    "
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::int8[], $6::bool[], $7::int4[],
            $8::bool[], $9::int8[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::int8[])
     AS u(id, status, holder, lease_expires_at, epoch, stop_requested, lost_leases, waiting,
          checkpoint_seq, run_nanos, record, result, metrics, rev)
WHERE t.id = u.id"
);

/// Saves only the leases of rows whose record did not change (heartbeat, release; arrays: id, lease
/// owner, lease expiry, the version the group read): no indexed column changes, so PostgreSQL can
/// update in place (HOT).
pub(super) const UPDATE_LEASES: &str = concat!(
    "UPDATE batch.tasks AS t
SET holder = u.holder, lease_expires_at = u.lease_expires_at, ",
    next_rev!(),
    "
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int8[]) AS u(id, holder, lease_expires_at, rev)
WHERE t.id = u.id"
);

/// The SQLSTATE of `batch.stale_task`: a row changed since the group read it without a lock.
pub(super) const STALE_TASK: &str = "PMP01";

/// Replaces the last checkpoints of tasks (arrays: id, sequence, record).
pub(super) const UPSERT_CHECKPOINTS: &str = "\
INSERT INTO batch.checkpoints (task_id, sequence, record)
SELECT c.id, c.sequence, c.record FROM unnest($1::uuid[], $2::int8[], $3::json[]) AS c(id, sequence, record)
ON CONFLICT (task_id) DO UPDATE SET sequence = excluded.sequence, record = excluded.record";

/// Appends to the audit trail (arrays: task id, epoch, worker, event, sequence; `$6` the group's
/// time), in order.
pub(super) const INSERT_EVENTS: &str = "\
INSERT INTO batch.task_events (task_id, epoch, worker, event, sequence, at)
SELECT e.id, e.epoch, e.worker, e.event, e.sequence, $6::timestamptz
FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::int8[]) AS e(id, epoch, worker, event, sequence)";

/// Queues the group's notifications (`$1` each one's channel, `$2` its payload), sent when the
/// transaction commits.
pub(super) const NOTIFY: &str = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)";

/// One task's record, id, type and status.
pub(super) const GET_TASK: &str = "SELECT record, id, task_type, status FROM batch.tasks WHERE id = $1::uuid";

/// A listing's filters besides the status: `$2` type, `$3` parent id, each NULL for any.
macro_rules! type_and_parent {
    () => {
        "($2::text IS NULL OR t.task_type = $2::text) AND ($3::uuid IS NULL OR t.parent_id = $3::uuid)"
    };
}

/// The three partial indexes that together cover every task (`tasks_pending`, `tasks_processing`,
/// `tasks_finished`), each as `$branch!(predicate, asked, narrow, filter)` joined by `$between`: the
/// index's predicate; the test that the status asked for (`$1`, NULL for any) can be in the index,
/// a condition on the parameter alone, which PostgreSQL checks once before the scan (so a branch
/// the status rules out reads nothing); the further test on the status that only the index of
/// several statuses needs; and `filter`, the rest of the statement's conditions.
macro_rules! status_indexes {
    ($branch:ident, $between:literal, $filter:expr) => {
        concat!(
            $branch!("t.status = 'pending'", "$1::text = 'pending'", "", $filter),
            $between,
            $branch!("t.status = 'processing'", "$1::text = 'processing'", "", $filter),
            $between,
            $branch!(
                "t.status IN ('completed', 'failed', 'cancelled')",
                "$1::text IN ('completed', 'failed', 'cancelled')",
                " AND ($1::text IS NULL OR t.status = $1::text)",
                $filter
            )
        )
    };
}

/// The rows of one status index that a statement may read (see [`status_indexes`]).
macro_rules! in_status_index {
    ($status:literal, $asked:literal, $narrow:literal, $filter:expr) => {
        concat!("($1::text IS NULL OR ", $asked, ") AND ", $status, $narrow, $filter)
    };
}

/// The newest `$6` tasks (the page's limit plus its offset) of one status index, read backwards.
macro_rules! list_branch {
    ($status:literal, $asked:literal, $narrow:literal, $filter:expr) => {
        concat!(
            "(SELECT t.created_key, t.id, t.record, t.task_type, t.status FROM batch.tasks t WHERE ",
            in_status_index!($status, $asked, $narrow, $filter),
            " ORDER BY t.created_key DESC, t.id DESC LIMIT $6::int8)"
        )
    };
}

/// How many tasks of one status index match.
macro_rules! count_branch {
    ($status:literal, $asked:literal, $narrow:literal, $filter:expr) => {
        concat!(
            "(SELECT count(*) FROM batch.tasks t WHERE ",
            in_status_index!($status, $asked, $narrow, $filter),
            ")"
        )
    };
}

/// How many tasks match a listing's filters (`$1` status, `$2` type, `$3` parent id): each status's
/// index, and the rows it names, read only when the status asked for can be in it.
pub(super) const COUNT_TASKS: &str =
    concat!("SELECT ", status_indexes!(count_branch, " + ", concat!(" AND ", type_and_parent!())));

/// How many tasks a listing with no type or parent filter matches (`$1` status, NULL for any): each
/// status's index alone (an index-only scan wherever the table's visibility map says the rows are
/// visible to everyone; only the finished tasks' index needs the status, and carries it).
pub(super) const COUNT_BY_STATUS: &str = concat!("SELECT ", status_indexes!(count_branch, " + ", ""));

/// One page of a listing, newest first (`$1`–`$3` as for [`COUNT_TASKS`], `$4` limit, `$5` offset,
/// `$6` their sum): the three status indexes, each read backwards for at most `$6` rows, merged in
/// order (a Merge Append). There is no index of every task, to which every task's creation, claim
/// and end would each add an entry.
pub(super) const LIST_TASKS: &str = concat!(
    "SELECT p.record, p.id, p.task_type, p.status FROM (",
    status_indexes!(list_branch, " UNION ALL ", concat!(" AND ", type_and_parent!())),
    ") p ORDER BY p.created_key DESC, p.id DESC LIMIT $4::int8 OFFSET $5::int8"
);

/// One task's last checkpoint.
pub(super) const GET_CHECKPOINT: &str = "SELECT record FROM batch.checkpoints WHERE task_id = $1::uuid";

/// One finished task's result and metrics (none before its first finish).
pub(super) const GET_RESULT: &str =
    "SELECT result, metrics FROM batch.tasks WHERE id = $1::uuid AND result IS NOT NULL";

/// One task's audit trail, oldest first.
pub(super) const GET_EVENTS: &str = "\
SELECT epoch, worker, event, sequence, at FROM batch.task_events WHERE task_id = $1::uuid ORDER BY id";

/// Counts by status, with the number and total run time (ns, as text: the sum may pass 64 bits) of
/// finished tasks that started.
pub(super) const METRICS: &str = "\
SELECT status, count(*), count(run_nanos), COALESCE(sum(run_nanos), 0)::text FROM batch.tasks GROUP BY status";
