//! Turning SQLite failures into [`StoreError::Storage`] with a message that says what happened and
//! what to do about it.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::ErrorCode;

use crate::store::StoreError;

/// A storage error at `location` while `doing` something, explained for the person who must fix it.
pub(super) fn sqlite_error(
    location: &str,
    doing: &str,
    busy_timeout: Duration,
    error: rusqlite::Error,
) -> StoreError {
    let advice = match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            "the file is not a SQLite database (or it is encrypted or damaged beyond repair): delete it or \
             restore it from a backup, or use another file"
                .to_owned()
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            "the database file is corrupt: restore it from a backup, or delete it to start with an empty store"
                .to_owned()
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "the database is locked by another process or connection and was still locked after the busy \
             timeout of {} ms: stop the other process, or raise the busy timeout",
            busy_timeout.as_millis()
        ),
        Some(ErrorCode::ReadOnly) if read_only_directory(&error) => "the directory holding the database is \
                                                                    read-only: SQLite must create -wal and -shm \
                                                                    files next to the database; make the \
                                                                    directory writable"
            .to_owned(),
        Some(ErrorCode::ReadOnly) => "the database is read-only: make the file and its directory writable \
                                      (SQLite creates -wal and -shm files next to it), and check that the file \
                                      system is not mounted read-only"
            .to_owned(),
        Some(ErrorCode::CannotOpen) => "cannot open or create the database file or its -wal/-shm files: check \
                                        that the directory exists and that it and the files are readable and \
                                        writable"
            .to_owned(),
        Some(ErrorCode::PermissionDenied) => {
            "permission denied: make the file and its directory readable and writable".to_owned()
        }
        Some(ErrorCode::DiskFull) => "the disk is full: free some space".to_owned(),
        Some(ErrorCode::SystemIoFailure) => {
            "the operating system reported an I/O error: check the disk and the file system (full, removed, \
             or mounted read-only?)"
                .to_owned()
        }
        Some(ErrorCode::FileLockingProtocolFailed) => {
            "file locking failed: the file system may not support locking (network file systems often do \
             not); put the database on a local disk"
                .to_owned()
        }
        Some(ErrorCode::OutOfMemory) => "SQLite ran out of memory".to_owned(),
        _ => "unexpected SQLite failure".to_owned(),
    };
    StoreError::Storage {
        location: location.to_owned(),
        message: format!("{doing} failed ({error}): {advice}"),
        source: Some(Box::new(error)),
    }
}

/// `SQLITE_READONLY_CANTINIT` or `SQLITE_READONLY_DIRECTORY`: the -shm file cannot be created.
fn read_only_directory(error: &rusqlite::Error) -> bool {
    use rusqlite::ffi::{SQLITE_READONLY_CANTINIT, SQLITE_READONLY_DIRECTORY};
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == SQLITE_READONLY_CANTINIT || failure.extended_code == SQLITE_READONLY_DIRECTORY
    )
}

/// A stored value that cannot be read back: the file was changed by something else.
pub(super) fn corrupt_record(
    location: &str,
    what: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Storage {
        location: location.to_owned(),
        message: format!(
            "{what} cannot be read back ({source}): the database was changed by another program or an \
             incompatible version; restore it from a backup"
        ),
        source: Some(Box::new(source)),
    }
}

/// A storage error without an underlying cause.
pub(super) fn storage(location: &str, message: String) -> StoreError {
    StoreError::Storage { location: location.to_owned(), message, source: None }
}

/// Why a whole group-committed transaction failed: given to every request of the group.
#[derive(Debug, Clone)]
pub(super) struct BatchFailure {
    location: String,
    message: String,
    source: Option<SharedError>,
}

impl BatchFailure {
    /// The failure of a group, from the first error that broke it.
    pub(super) fn new(error: StoreError) -> BatchFailure {
        match error {
            StoreError::Storage { location, message, source } => BatchFailure {
                location,
                message,
                source: source.map(|source| SharedError(Arc::from(source))),
            },
            other => BatchFailure { location: String::new(), message: other.to_string(), source: None },
        }
    }

    /// The error one request of the group receives.
    pub(super) fn to_error(&self) -> StoreError {
        StoreError::Storage {
            location: self.location.clone(),
            message: format!("the transaction holding this change was rolled back: {}", self.message),
            source: self
                .source
                .clone()
                .map(|source| Box::new(source) as Box<dyn std::error::Error + Send + Sync>),
        }
    }
}

/// One underlying error shared by the requests of a failed group.
#[derive(Debug, Clone)]
struct SharedError(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
