//! Every SQL statement of the PostgreSQL store, named, in one place (as River keeps its driver SQL).
//!
//! Conventions: everything lives in the schema `batch`; task ids travel as text and are cast to
//! `uuid` in SQL (`$1::text::uuid`), so no UUID type mapping is needed; batches of rows travel as
//! parallel arrays expanded with `unnest`, one statement per batch. The store's view of the database
//! clock is always [`NOW`]'s expression: the transaction's start time (`now()`, constant within a
//! transaction, so every statement of a group agrees on it) or a pinned time, plus an offset.

/// The LISTEN/NOTIFY channel of task changes. Payload: `"<task id> <status>"`, or `"*"` for "many
/// tasks changed: look again".
pub(super) const CHANNEL: &str = "batch_task_changes";

/// The store's time: `$1` a pinned time or NULL (the database's `now()`), `$2` an offset in
/// microseconds. Other statements embed the same expression with their own parameter numbers.
pub(super) const NOW: &str = "SELECT COALESCE($1::timestamptz, now()) + $2::int8 * interval '1 microsecond'";

/// Inserts new tasks (arrays: id, type, status, creation key, run time in ns, record); an existing id
/// is skipped. Returns the ids inserted.
pub(super) const INSERT_TASKS: &str = "\
INSERT INTO batch.tasks (id, task_type, status, created_key, epoch, stop_requested, run_nanos, record)
SELECT i.id::uuid, i.task_type, i.status, i.created_key, 0, false, i.run_nanos, i.record
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::json[])
     AS i(id, task_type, status, created_key, run_nanos, record)
ON CONFLICT (id) DO NOTHING
RETURNING id::text";

/// A session-local staging table for binary COPY of many new tasks, dropped at commit.
pub(super) const CREATE_IMPORT_TABLE: &str = "\
CREATE TEMPORARY TABLE batch_import (
    id text, task_type text, status text, created_key int8, run_nanos int8, record json
) ON COMMIT DROP";

/// The COPY into the staging table (binary format).
pub(super) const COPY_IMPORT: &str =
    "COPY batch_import (id, task_type, status, created_key, run_nanos, record) FROM STDIN (FORMAT binary)";

/// Moves the staged tasks into `tasks`; an existing id is skipped. Returns the ids inserted.
pub(super) const INSERT_IMPORTED: &str = "\
INSERT INTO batch.tasks (id, task_type, status, created_key, epoch, stop_requested, run_nanos, record)
SELECT i.id::uuid, i.task_type, i.status, i.created_key, 0, false, i.run_nanos, i.record FROM batch_import i
ON CONFLICT (id) DO NOTHING
RETURNING id::text";

/// Locks the rows of the given ids (in id order, so that two groups never deadlock) and loads them
/// with their last checkpoint's sequence.
pub(super) const LOCK_TASKS: &str = "\
SELECT t.id::text, t.record, t.lease_owner, t.lease_expires_at, t.epoch, t.stop_requested, c.sequence
FROM batch.tasks t LEFT JOIN batch.checkpoints c ON c.task_id = t.id
WHERE t.id = ANY($1::text[]::uuid[])
ORDER BY t.id
FOR UPDATE OF t";

/// The last checkpoints of the given tasks (claims hand them to the new holder).
pub(super) const CHECKPOINTS_OF: &str =
    "SELECT task_id::text, record FROM batch.checkpoints WHERE task_id = ANY($1::text[]::uuid[])";

/// The oldest pending tasks of the given types (all when `$1` is NULL), at most `$2`, locked; rows
/// another transaction holds are skipped. Served by the partial index `tasks_pending`.
pub(super) const CLAIM_PENDING: &str = "\
SELECT t.id::text, t.record, t.lease_owner, t.lease_expires_at, t.epoch, t.stop_requested, c.sequence, c.record
FROM batch.tasks t LEFT JOIN batch.checkpoints c ON c.task_id = t.id
WHERE t.status = 'pending' AND ($1::text[] IS NULL OR t.task_type = ANY($1::text[]))
ORDER BY t.created_key, t.id
LIMIT $2
FOR UPDATE OF t SKIP LOCKED";

/// The oldest processing tasks nobody holds (released, or a lease that expired strictly before the
/// store's time: `$3` pinned time or NULL, `$4` offset in µs), at most `$2`, locked, skipping rows
/// another transaction holds. Served by the partial index `tasks_processing`.
pub(super) const CLAIM_ABANDONED: &str = "\
SELECT t.id::text, t.record, t.lease_owner, t.lease_expires_at, t.epoch, t.stop_requested, c.sequence, c.record
FROM batch.tasks t LEFT JOIN batch.checkpoints c ON c.task_id = t.id
WHERE t.status = 'processing' AND ($1::text[] IS NULL OR t.task_type = ANY($1::text[]))
  AND (t.lease_owner IS NULL OR t.lease_expires_at IS NULL
       OR t.lease_expires_at < COALESCE($3::timestamptz, now()) + $4::int8 * interval '1 microsecond')
ORDER BY t.created_key, t.id
LIMIT $2
FOR UPDATE OF t SKIP LOCKED";

/// Saves changed rows whole (arrays: id, status, lease owner, lease expiry, epoch, stop flag, run
/// time in ns, record).
pub(super) const UPDATE_TASKS: &str = "\
UPDATE batch.tasks AS t
SET status = u.status, lease_owner = u.lease_owner, lease_expires_at = u.lease_expires_at, epoch = u.epoch,
    stop_requested = u.stop_requested, run_nanos = u.run_nanos, record = u.record
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int8[], $6::bool[], $7::int8[], $8::json[])
     AS u(id, status, lease_owner, lease_expires_at, epoch, stop_requested, run_nanos, record)
WHERE t.id = u.id::uuid";

/// Saves only the leases of rows whose record did not change (heartbeat, release): no indexed column
/// changes, so PostgreSQL can update in place (HOT).
pub(super) const UPDATE_LEASES: &str = "\
UPDATE batch.tasks AS t
SET lease_owner = u.lease_owner, lease_expires_at = u.lease_expires_at
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, lease_owner, lease_expires_at)
WHERE t.id = u.id::uuid";

/// Replaces the last checkpoints of tasks (arrays: id, sequence, record).
pub(super) const UPSERT_CHECKPOINTS: &str = "\
INSERT INTO batch.checkpoints (task_id, sequence, record)
SELECT c.id::uuid, c.sequence, c.record FROM unnest($1::text[], $2::int8[], $3::json[]) AS c(id, sequence, record)
ON CONFLICT (task_id) DO UPDATE SET sequence = excluded.sequence, record = excluded.record";

/// Stores finished tasks' results (arrays: id, result, metrics).
pub(super) const UPSERT_RESULTS: &str = "\
INSERT INTO batch.results (task_id, result, metrics)
SELECT r.id::uuid, r.result, r.metrics FROM unnest($1::text[], $2::json[], $3::json[]) AS r(id, result, metrics)
ON CONFLICT (task_id) DO UPDATE SET result = excluded.result, metrics = excluded.metrics";

/// Queues one notification per payload, sent when the transaction commits.
pub(super) const NOTIFY: &str = "SELECT pg_notify('batch_task_changes', p) FROM unnest($1::text[]) AS p";

/// One task's record.
pub(super) const GET_TASK: &str = "SELECT record FROM batch.tasks WHERE id = $1::text::uuid";

/// How many tasks match a listing's filters (`$1` status or NULL, `$2` type or NULL).
pub(super) const COUNT_TASKS: &str = "\
SELECT count(*) FROM batch.tasks
WHERE ($1::text IS NULL OR status = $1::text) AND ($2::text IS NULL OR task_type = $2::text)";

/// One page of a listing, newest first (`$3` limit, `$4` offset).
pub(super) const LIST_TASKS: &str = "\
SELECT record FROM batch.tasks
WHERE ($1::text IS NULL OR status = $1::text) AND ($2::text IS NULL OR task_type = $2::text)
ORDER BY created_key DESC, id DESC
LIMIT $3::int8 OFFSET $4::int8";

/// One task's last checkpoint.
pub(super) const GET_CHECKPOINT: &str = "SELECT record FROM batch.checkpoints WHERE task_id = $1::text::uuid";

/// One finished task's result and metrics.
pub(super) const GET_RESULT: &str =
    "SELECT result, metrics FROM batch.results WHERE task_id = $1::text::uuid";

/// Counts by status, with the number and total run time (ns, as text: the sum may pass 64 bits) of
/// finished tasks that started.
pub(super) const METRICS: &str = "\
SELECT status, count(*), count(run_nanos), COALESCE(sum(run_nanos), 0)::text FROM batch.tasks GROUP BY status";
