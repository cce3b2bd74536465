//! Opening the database file (WAL, synchronous level, busy timeout, foreign keys) and the versioned
//! schema migrations applied on open, recorded in `PRAGMA user_version`.

use std::path::Path;

use batch_model::Durability;
use rusqlite::{Connection, MAIN_DB, OpenFlags, TransactionBehavior};

use super::SqliteOptions;
use super::error::storage;
use super::queries::Db;
use crate::store::StoreError;

/// Marks a database as a batch task store (`PRAGMA application_id`), "pump" in ASCII.
pub(super) const APPLICATION_ID: i32 = 0x7075_6d70;

/// The migrations, in order: migration `n` (1-based) takes the schema from version `n - 1` to `n`.
/// Released migrations never change; a schema change is a new migration at the end.
const MIGRATIONS: [&str; 2] = [
    // 1: tasks (the filtered and ordered fields as columns, the whole record as JSON), the latest
    // checkpoint per task, and finished tasks' results.
    "CREATE TABLE tasks (
        id               TEXT    NOT NULL PRIMARY KEY,
        task_type        TEXT    NOT NULL,
        status           TEXT    NOT NULL
                         CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
        -- Nanoseconds since the Unix epoch, clamped to 64 bits: ordering only.
        created_at       INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        stop_requested   INTEGER NOT NULL DEFAULT 0 CHECK (stop_requested IN (0, 1)),
        -- Run time of a finished task that started (for metrics), in whole seconds plus nanoseconds.
        run_seconds      INTEGER,
        run_nanos        INTEGER,
        -- The whole BatchTask as JSON; the columns above are derived from it on every write.
        record           TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX tasks_by_created ON tasks (created_at, id);
    CREATE INDEX tasks_by_status ON tasks (status, created_at, id);
    CREATE INDEX tasks_by_type ON tasks (task_type, created_at, id);
    CREATE TABLE checkpoints (
        task_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
        sequence INTEGER NOT NULL,
        record   TEXT    NOT NULL
    ) STRICT;
    CREATE TABLE results (
        task_id TEXT NOT NULL PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
        result  TEXT NOT NULL,
        metrics TEXT NOT NULL
    ) STRICT;",
    // 2: fencing epochs, quarantine counts, partitions (the parent of a child task; a parent waiting
    // for its partitions). Claims look at pending and processing rows only.
    "ALTER TABLE tasks ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN lost_leases INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0 CHECK (waiting IN (0, 1));
    ALTER TABLE tasks ADD COLUMN parent_id TEXT;
    CREATE INDEX tasks_by_parent ON tasks (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
    CREATE INDEX tasks_claimable ON tasks (created_at, id) WHERE status IN ('pending', 'processing');",
];

/// The schema version this build writes and understands.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) and configures the database at `path`, then brings its schema up to date.
pub(super) fn open(path: &Path, options: &SqliteOptions) -> Result<Db, StoreError> {
    let location = path.display().to_string();
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|error| {
        super::error::sqlite_error(&location, "opening the database", options.busy_timeout, error)
    })?;
    let db = Db { conn, location, busy_timeout: options.busy_timeout };
    configure(&db, options)?;
    migrate(&db)?;
    Ok(db)
}

fn configure(db: &Db, options: &SqliteOptions) -> Result<(), StoreError> {
    let conn = &db.conn;
    conn.busy_timeout(options.busy_timeout).map_err(|error| db.error("setting the busy timeout", error))?;
    // SQLite opens a write-protected file read-only without complaint; say so now, not at the first write.
    let read_only = conn.is_readonly(MAIN_DB).map_err(|error| db.error("opening the database", error))?;
    if read_only {
        return Err(storage(
            &db.location,
            "the database file is read-only: make it writable (and its directory, where SQLite creates -wal \
             and -shm files), or check that the file system is not mounted read-only"
                .to_owned(),
        ));
    }
    // Look before changing anything: a file of another application or version is left as it is. One
    // read transaction, so that the version and the tables are seen from one snapshot even while
    // another process is creating the schema.
    db.conn.execute_batch("BEGIN DEFERRED").map_err(|error| db.error("reading the database", error))?;
    let checked = user_version(db).and_then(|version| check_known(db, version));
    let _ = db.conn.execute_batch("COMMIT");
    checked?;
    let journal_mode = switch_to_wal(db, options.busy_timeout)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(storage(
            &db.location,
            format!(
                "the database cannot use write-ahead logging (journal mode stays {journal_mode:?}): the file \
                 system must support shared memory; put the database on a local disk"
            ),
        ));
    }
    let synchronous = match options.durability {
        Durability::Process => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .and_then(|()| conn.pragma_update(None, "foreign_keys", true))
        .map_err(|error| db.error("configuring the connection", error))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Switches the database to WAL mode; the journal mode it reports. The switch needs the database to
/// itself for a moment, and SQLite does not wait for it through the busy handler: while another
/// process creates the schema, it is tried again until `busy_timeout` passes.
fn switch_to_wal(db: &Db, busy_timeout: std::time::Duration) -> Result<String, StoreError> {
    let deadline = std::time::Instant::now() + busy_timeout;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match db.conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode),
            Err(error)
                if matches!(
                    error.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(error) => return Err(db.error("reading the database (switching it to WAL mode)", error)),
        }
    }
}

fn user_version(db: &Db) -> Result<i64, StoreError> {
    db.conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|error| db.error("reading the schema version", error))
}

fn check_known(db: &Db, version: i64) -> Result<(), StoreError> {
    if version > SCHEMA_VERSION {
        return Err(storage(
            &db.location,
            format!(
                "the database has schema version {version}, written by a newer version of batch; this build \
                 knows versions up to {SCHEMA_VERSION}: use a newer build, or another file"
            ),
        ));
    }
    let application_id: i32 = db
        .conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(|error| db.error("reading the application id", error))?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(storage(
            &db.location,
            format!(
                "the file is a SQLite database of another application (application id {application_id:#x}), \
                 not a batch task store: use another file"
            ),
        ));
    }
    if version == 0 {
        let foreign_tables: i64 = db
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )
            .map_err(|error| db.error("inspecting the database", error))?;
        if foreign_tables > 0 {
            return Err(storage(
                &db.location,
                format!(
                    "the file is a SQLite database with {foreign_tables} table(s) of its own, not a batch task \
                     store: use another file"
                ),
            ));
        }
    }
    Ok(())
}

/// Applies the missing migrations in one immediate transaction, so that two processes opening the
/// same new file do not both migrate it.
fn migrate(db: &Db) -> Result<(), StoreError> {
    let version = user_version(db)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let transaction = rusqlite::Transaction::new_unchecked(&db.conn, TransactionBehavior::Immediate)
        .map_err(|error| db.error("starting the schema migration", error))?;
    // Another process may have migrated the file between the first look and the lock.
    let version = user_version(db)?;
    check_known(db, version)?;
    let first = usize::try_from(version).unwrap_or(0);
    for (idx, migration) in MIGRATIONS.iter().enumerate().skip(first) {
        transaction
            .execute_batch(migration)
            .map_err(|error| db.error(&format!("applying schema migration {}", idx + 1), error))?;
    }
    transaction
        .pragma_update(None, "application_id", APPLICATION_ID)
        .and_then(|()| transaction.pragma_update(None, "user_version", SCHEMA_VERSION))
        .map_err(|error| db.error("recording the schema version", error))?;
    transaction.commit().map_err(|error| db.error("committing the schema migration", error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous_level(durability: Durability) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions { durability, ..SqliteOptions::default() };
        let db = open(&dir.path().join("tasks.db"), &options).unwrap();
        db.conn.pragma_query_value(None, "synchronous", |row| row.get(0)).unwrap()
    }

    #[test]
    fn durability_picks_the_synchronous_level() {
        // 1 = NORMAL (survives a killed process in WAL mode), 2 = FULL (fsync at every commit).
        assert_eq!(synchronous_level(Durability::Process), 1);
        assert_eq!(synchronous_level(Durability::PowerLoss), 2);
    }

    #[test]
    fn a_new_file_gets_the_whole_schema_in_wal_mode_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("tasks.db"), &SqliteOptions::default()).unwrap();
        assert_eq!(user_version(&db).unwrap(), SCHEMA_VERSION);
        let mode: String = db.conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let foreign_keys: bool = db.conn.pragma_query_value(None, "foreign_keys", |row| row.get(0)).unwrap();
        assert!(foreign_keys);
        let tables: Vec<String> = db
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["checkpoints", "results", "tasks"]);
    }

    #[test]
    fn a_foreign_database_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE customers (name TEXT)").unwrap();
        let error = open(&path, &SqliteOptions::default()).unwrap_err();
        assert_eq!(error.code(), batch_model::ErrorCode::StorageError);
        assert!(error.to_string().contains("not a batch task store"), "{error}");
        let untouched = Connection::open(&path).unwrap();
        let version: i64 = untouched.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, 0);
        let mode: String = untouched.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        assert_eq!(mode, "delete");
    }
}
