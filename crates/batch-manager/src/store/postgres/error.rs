//! Turning PostgreSQL failures into [`StoreError::Storage`] with a message that names the server and
//! the database (never the password) and says what to fix.

use std::sync::Arc;

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Where the store connects, as shown in errors: `postgres://USER@HOST:PORT/DATABASE`, no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PgLocation {
    pub(super) shown: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) database: String,
}

impl PgLocation {
    pub(super) fn new(config: &tokio_postgres::Config) -> PgLocation {
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("(default user)").to_owned();
        let database = config.get_dbname().unwrap_or(config.get_user().unwrap_or("postgres")).to_owned();
        let shown = format!("postgres://{user}@{host}:{port}/{database}");
        PgLocation { shown, host, port, user, database }
    }

    /// A storage error met while `doing` something, with advice.
    pub(super) fn error(&self, doing: &str, error: tokio_postgres::Error) -> StoreError {
        let advice = advice(self, &error);
        StoreError::Storage {
            location: self.shown.clone(),
            message: format!("{doing} failed ({}): {advice}", describe(&error)),
            source: Some(Box::new(error)),
        }
    }

    /// A pool failure met while `doing` something.
    pub(super) fn pool_error(&self, doing: &str, error: deadpool_postgres::PoolError) -> StoreError {
        match error {
            deadpool_postgres::PoolError::Backend(error) => self.error(doing, error),
            deadpool_postgres::PoolError::Timeout(kind) => storage(
                self,
                format!(
                    "{doing} failed: no connection to the server within the connect timeout ({kind:?}): check \
                     that the server at {}:{} is reachable, or raise the pool size",
                    self.host, self.port
                ),
            ),
            other => storage(self, format!("{doing} failed: {other}")),
        }
    }
}

/// The error's own words: the server's message for database errors, the client's otherwise.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// The kind of the I/O error behind `error`, if one is.
pub(super) fn io_kind(error: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

fn advice(location: &PgLocation, error: &tokio_postgres::Error) -> String {
    let PgLocation { host, port, user, database, .. } = location;
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        return if *code == SqlState::INVALID_PASSWORD {
            format!("password authentication failed for user {user}: check the user and password in the URL")
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            format!(
                "the server refused the login of user {user} to database {database} (no such user, or no \
                 pg_hba.conf entry for this host): create the user or allow it in pg_hba.conf"
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            format!(
                "database {database} does not exist on {host}:{port}: create it (createdb {database}) or fix the URL"
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            format!(
                "user {user} lacks a privilege the store needs (to create the schema `batch` and its tables, \
                 or to use them): grant it, or let an owner run the first connect"
            )
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            "the server has no free connection slots: lower the pool size or raise max_connections".to_owned()
        } else if matches!(
            code,
            &SqlState::ADMIN_SHUTDOWN | &SqlState::CRASH_SHUTDOWN | &SqlState::CANNOT_CONNECT_NOW
        ) {
            "the server is shutting down or starting up: retry once it is up".to_owned()
        } else if matches!(code, &SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE) {
            "a conflict with a concurrent transaction: retry".to_owned()
        } else if matches!(code, &SqlState::UNDEFINED_TABLE | &SqlState::UNDEFINED_COLUMN) {
            "the batch schema is missing or damaged: was it changed by hand? reconnect to migrate it, or restore it"
                .to_owned()
        } else if matches!(code, &SqlState::DISK_FULL | &SqlState::OUT_OF_MEMORY) {
            "the server is out of disk space or memory: free some".to_owned()
        } else {
            "unexpected PostgreSQL failure".to_owned()
        };
    }
    match io_kind(error) {
        Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "connection refused: is PostgreSQL running on {host}:{port} and listening there (listen_addresses, port)?"
        ),
        Some(std::io::ErrorKind::TimedOut) => {
            format!("the connection to {host}:{port} timed out: check the address and the network")
        }
        Some(std::io::ErrorKind::NotFound) => format!("host {host} not found: check the host name"),
        _ if error.is_closed() => "the connection to the server was lost (restarted, or a network failure): retry"
            .to_owned(),
        _ if error.to_string().contains("TLS") || error.to_string().contains("tls") => {
            "this build connects without TLS: use sslmode=disable or sslmode=prefer, or a server that accepts \
             plain connections"
                .to_owned()
        }
        _ => format!("cannot talk to the server at {host}:{port}"),
    }
}

/// A storage error without an underlying cause.
pub(super) fn storage(location: &PgLocation, message: String) -> StoreError {
    StoreError::Storage { location: location.shown.clone(), message, source: None }
}

/// A stored value that cannot be read back.
pub(super) fn corrupt_record(
    location: &PgLocation,
    what: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Storage {
        location: location.shown.clone(),
        message: format!(
            "{what} cannot be read back ({source}): the database was changed by another program or an \
             incompatible version; restore it from a backup"
        ),
        source: Some(Box::new(source)),
    }
}

/// Why a whole group transaction failed: given to every request of the group.
#[derive(Debug, Clone)]
pub(super) struct GroupFailure {
    location: String,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl GroupFailure {
    pub(super) fn new(error: StoreError) -> GroupFailure {
        match error {
            StoreError::Storage { location, message, source } => {
                GroupFailure { location, message, source: source.map(Arc::from) }
            }
            other => GroupFailure { location: String::new(), message: other.to_string(), source: None },
        }
    }

    /// The error one request of the group receives.
    pub(super) fn to_error(&self) -> StoreError {
        StoreError::Storage {
            location: self.location.clone(),
            message: format!("the transaction holding this change failed: {}", self.message),
            source: self.source.clone().map(|source| Box::new(SharedError(source)) as Box<_>),
        }
    }
}

#[derive(Debug)]
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
