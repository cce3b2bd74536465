//! The versioned schema migrations, applied on connect under a transaction-scoped advisory lock so
//! that many processes starting at once on an empty database migrate it once.

use deadpool_postgres::Client;

use super::error::{PgLocation, storage};
use crate::store::StoreError;

/// The advisory lock key that serialises migrations ("pump" in ASCII, as the SQLite application id).
const MIGRATION_LOCK: i64 = 0x7075_6d70;

/// The migrations, in order: migration `n` (1-based) takes the schema from version `n - 1` to `n`.
/// Released migrations never change; a schema change is a new migration at the end.
pub(super) const MIGRATIONS: [&str; 6] = [
    // 1: tasks (the searched fields as columns, the whole BatchTask as JSON), the latest checkpoint
    // per task, and finished tasks' results.
    "CREATE TABLE batch.tasks (
        id               uuid        NOT NULL PRIMARY KEY,
        task_type        text        NOT NULL,
        status           text        NOT NULL
                         CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
        -- The creation time in ns since the Unix epoch (clamped to 64 bits): ordering only.
        created_key      bigint      NOT NULL,
        lease_owner      text,
        -- On the database's clock, microsecond resolution.
        lease_expires_at timestamptz,
        -- The fencing token: bumped by every claim.
        epoch            bigint      NOT NULL DEFAULT 0,
        stop_requested   boolean     NOT NULL DEFAULT false,
        -- Run time of a finished task that started (for metrics), in ns.
        run_nanos        bigint,
        -- The whole BatchTask as JSON (text kept as written); the columns above are derived from it.
        record           json        NOT NULL
    ) WITH (fillfactor = 80);
    -- Claims: only claimable rows are indexed, so finished tasks cost a claim nothing.
    CREATE INDEX tasks_pending ON batch.tasks (created_key, id) WHERE status = 'pending';
    CREATE INDEX tasks_processing ON batch.tasks (created_key, id) WHERE status = 'processing';
    -- Listings, newest first.
    CREATE INDEX tasks_by_created ON batch.tasks (created_key, id);
    CREATE TABLE batch.checkpoints (
        task_id  uuid   NOT NULL PRIMARY KEY REFERENCES batch.tasks (id) ON DELETE CASCADE,
        sequence bigint NOT NULL,
        record   json   NOT NULL
    );
    CREATE TABLE batch.results (
        task_id uuid NOT NULL PRIMARY KEY REFERENCES batch.tasks (id) ON DELETE CASCADE,
        result  json NOT NULL,
        metrics json NOT NULL
    );",
    // 2: quarantine counts, partitions (the parent of a child task; a parent waiting for its
    // partitions, which claims skip), the last checkpoint's sequence beside the row (so that a row
    // lock gives the current one), and the audit trail of claims, checkpoints, ends, releases,
    // splits and quarantines.
    "ALTER TABLE batch.tasks
        ADD COLUMN lost_leases    integer NOT NULL DEFAULT 0,
        ADD COLUMN waiting        boolean NOT NULL DEFAULT false,
        ADD COLUMN parent_id      uuid,
        ADD COLUMN checkpoint_seq bigint;
    UPDATE batch.tasks t SET checkpoint_seq = c.sequence FROM batch.checkpoints c WHERE c.task_id = t.id;
    CREATE INDEX tasks_by_parent ON batch.tasks (parent_id, created_key, id) WHERE parent_id IS NOT NULL;
    DROP INDEX batch.tasks_processing;
    CREATE INDEX tasks_processing ON batch.tasks (created_key, id) WHERE status = 'processing' AND NOT waiting;
    CREATE TABLE batch.task_events (
        id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id  uuid        NOT NULL,
        -- The task's epoch at the event (the claim's own for a claim).
        epoch    bigint      NOT NULL,
        -- The worker that made the change; NULL for a change nobody held the task for.
        worker   text,
        event    text        NOT NULL,
        -- The task's checkpoint sequence after the event (NULL before the first checkpoint).
        sequence bigint,
        -- The store's time of the transaction.
        at       timestamptz NOT NULL
    );
    CREATE INDEX task_events_by_task ON batch.task_events (task_id, id);",
    // 3: cheaper writes per task. A finished task's result and metrics move beside its row, written
    // by the finish's update instead of an insert into `results` (dropped once its rows moved). The
    // whole task is kept as text, as written: the store is its only writer and reader, and `json`
    // parsed every record on every write. No foreign keys: each insert of a checkpoint locked and
    // probed its task's row, and the store never deletes tasks. The audit trail loses its primary-key
    // index: it is read by task, in order of `id`, through `task_events_by_task`. Columns are added and
    // filled first, so that the one rewrite of `tasks` (for the record's type) leaves no dead rows.
    "ALTER TABLE batch.tasks ADD COLUMN result text, ADD COLUMN metrics text;
    UPDATE batch.tasks t SET result = r.result::text, metrics = r.metrics::text
        FROM batch.results r WHERE r.task_id = t.id;
    DROP TABLE batch.results;
    ALTER TABLE batch.tasks ALTER COLUMN record TYPE text;
    ALTER TABLE batch.checkpoints DROP CONSTRAINT checkpoints_task_id_fkey;
    ALTER TABLE batch.task_events DROP CONSTRAINT task_events_pkey;",
    // 4: a row version, so that a store may change a row it holds without locking it first. Every
    // update of a task sets `rev` to one more than it was, and says which version it expected: a row
    // that changed since (another store requested a stop, took the task over, ...) fails the
    // update with `stale_task` (SQLSTATE PMP01), the transaction rolls back, and the store reads
    // the row again under a lock. Adding a column with a constant default rewrites nothing. The lease
    // owner's column is renamed `holder` so that a process of an older build still connected (it
    // checked the version when it connected) fails every write instead of changing rows without
    // bumping their version, which would let a newer store act on a stale copy.
    "ALTER TABLE batch.tasks ADD COLUMN rev bigint NOT NULL DEFAULT 0;
    ALTER TABLE batch.tasks RENAME COLUMN lease_owner TO holder;
    CREATE FUNCTION batch.stale_task(task uuid) RETURNS bigint LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'task % changed since this store last read it', task USING ERRCODE = 'PMP01';
    END $$;",
    // 5: no index of every task. Listings read three partial indexes that together cover every
    // status and merge them (`queries::LIST_TASKS`): the claimable ones, where `tasks_processing`
    // now also holds parents waiting for their partitions (claims skip them by a filter; a parent
    // that starts or stops waiting no longer changes an indexed column), and one of finished
    // tasks, which carries their status so that a listing's count by status reads the indexes
    // alone (`queries::COUNT_BY_STATUS`). A task then writes two index entries at its creation,
    // two at its claim and two at its end, instead of three, three and two: `tasks_by_created`
    // took one at each, `tasks_finished` takes one at the end.
    "DROP INDEX batch.tasks_processing;
    CREATE INDEX tasks_processing ON batch.tasks (created_key, id) WHERE status = 'processing';
    CREATE INDEX tasks_finished ON batch.tasks (created_key, id) INCLUDE (status)
        WHERE status IN ('completed', 'failed', 'cancelled');
    DROP INDEX batch.tasks_by_created;",
    // 6: a task's record leaves out its id, type and status, which the row's columns hold (a row is
    // written whole at a task's creation, claim and end; `encoding::read_task` puts them back).
    // Nothing to rewrite: records written before keep them and read as they are. The version keeps
    // builds that expect them in every record from connecting; the comment says it in the database.
    "COMMENT ON COLUMN batch.tasks.record IS
        'The task as JSON, without the fields the columns id, task_type and status hold and without its unset fields';",
];

/// The schema version this build writes and understands.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The version recorded in `batch.schema_migrations`, 0 when the schema is not there.
async fn current_version(client: &Client, location: &PgLocation) -> Result<i64, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('batch.schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|error| location.error("reading the schema version", error))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT COALESCE(max(version), 0)::int8 FROM batch.schema_migrations", &[])
        .await
        .map_err(|error| location.error("reading the schema version", error))?;
    Ok(row.get(0))
}

fn check_known(location: &PgLocation, version: i64) -> Result<(), StoreError> {
    if version > SCHEMA_VERSION {
        return Err(storage(
            location,
            format!(
                "the database's batch schema has version {version}, written by a newer version of batch; this \
                 build knows versions up to {SCHEMA_VERSION}: use a newer build, or another database"
            ),
        ));
    }
    Ok(())
}

/// Brings the schema up to date: a look without a lock first (the common case: nothing to do), then,
/// under a transaction-scoped advisory lock, the look again and the missing migrations in the same
/// transaction.
pub(super) async fn migrate(client: &mut Client, location: &PgLocation) -> Result<(), StoreError> {
    let version = current_version(client, location).await?;
    check_known(location, version)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let transaction =
        client.transaction().await.map_err(|error| location.error("starting the schema migration", error))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|error| location.error("waiting for the schema migration lock", error))?;
    transaction
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS batch;
             CREATE TABLE IF NOT EXISTS batch.schema_migrations (
                 version    int8        NOT NULL PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .map_err(|error| location.error("creating the batch schema", error))?;
    // Another process may have migrated between the first look and the lock.
    let row = transaction
        .query_one("SELECT COALESCE(max(version), 0)::int8 FROM batch.schema_migrations", &[])
        .await
        .map_err(|error| location.error("reading the schema version", error))?;
    let version: i64 = row.get(0);
    check_known(location, version)?;
    let first = usize::try_from(version).unwrap_or(0);
    for (idx, migration) in MIGRATIONS.iter().enumerate().skip(first) {
        let number = idx as i64 + 1;
        transaction
            .batch_execute(migration)
            .await
            .map_err(|error| location.error(&format!("applying schema migration {number}"), error))?;
        transaction
            .execute("INSERT INTO batch.schema_migrations (version) VALUES ($1)", &[&number])
            .await
            .map_err(|error| location.error("recording the schema version", error))?;
    }
    transaction.commit().await.map_err(|error| location.error("committing the schema migration", error))
}
