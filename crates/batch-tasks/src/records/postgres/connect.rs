//! Connecting to a table endpoint's server, and its failures as coded messages that name the server
//! (`postgres://user@host:port/db`, never the password) and say what to fix.

use std::str::FromStr as _;
use std::time::Duration;

use batch_model::ErrorCode;
use tokio_postgres::error::SqlState;

use super::config::PgAddress;

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected client; its connection is driven by a task of its own, which ends when the client
/// is dropped.
pub(crate) async fn connect(address: &PgAddress) -> Result<tokio_postgres::Client, Failure> {
    let mut config = tokio_postgres::Config::from_str(address.url())
        .map_err(|error| Failure::storage(format!("{address} is not a valid PostgreSQL URL: {error}")))?;
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("pump");
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|error| failure(address, "connecting", &error))?;
    let shown = address.to_string();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(server = %shown, %error, "table endpoint connection ended");
        }
    });
    Ok(client)
}

/// A table endpoint's failure: its code and its message (naming the server, never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn storage(message: String) -> Failure {
        Failure { code: ErrorCode::StorageError, message }
    }
}

/// `error`, met while `doing` something with the server at `address`, as a `STORAGE_ERROR` with
/// advice. Every failure of a table endpoint at run time is a `STORAGE_ERROR`: the address, the
/// credentials and the table can only be checked once the task runs (a task's creation does not
/// connect), and the task's params were valid as far as could be told then.
pub(crate) fn failure(address: &PgAddress, doing: &str, error: &tokio_postgres::Error) -> Failure {
    Failure::storage(format!("{doing} at {address} failed ({}): {}", describe(error), advice(address, error)))
}

/// The error's own words: the server's message for database errors, the client's otherwise.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            // Where in a COPY's data, or in which statement, it happened.
            if let Some(place) = db.where_() {
                text.push_str(&format!(" [{place}]"));
            }
            text
        }
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

fn io_kind(error: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

fn advice(address: &PgAddress, error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        return if *code == SqlState::INVALID_PASSWORD {
            "password authentication failed: check the user and password in the URL (or PGPASSWORD)"
                .to_owned()
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            "the server refused the login (no such user, or no pg_hba.conf entry for this host)".to_owned()
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "the database does not exist: create it or fix the URL".to_owned()
        } else if *code == SqlState::UNDEFINED_TABLE {
            "no such table: check the table param (schema.table, names as stored, case-sensitive)".to_owned()
        } else if *code == SqlState::UNDEFINED_COLUMN {
            "no such column: check the key param and the query".to_owned()
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            "the user lacks a privilege on the table: grant it".to_owned()
        } else if *code == SqlState::SYNTAX_ERROR {
            "the query does not parse".to_owned()
        } else if *code == SqlState::INVALID_COLUMN_REFERENCE {
            "the output key is not a unique key of the table: give output_key the columns of a unique index"
                .to_owned()
        } else if *code == SqlState::CARDINALITY_VIOLATION {
            "two rows of one chunk have the same output key: de-duplicate on it (dedup_key)".to_owned()
        } else if matches!(
            code,
            &SqlState::NOT_NULL_VIOLATION | &SqlState::CHECK_VIOLATION | &SqlState::FOREIGN_KEY_VIOLATION
        ) || code.code().starts_with("22")
        {
            "a row does not fit the table: compare the rows' fields with its columns".to_owned()
        } else {
            "unexpected PostgreSQL failure".to_owned()
        };
    }
    match io_kind(error) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            format!("connection refused: is PostgreSQL running and listening at {address}?")
        }
        Some(std::io::ErrorKind::TimedOut) => {
            "the connection timed out: check the address and the network".to_owned()
        }
        Some(std::io::ErrorKind::NotFound) => "host not found: check the host name".to_owned(),
        _ if error.is_closed() => "the connection to the server was lost: resume the task".to_owned(),
        _ if error.to_string().to_ascii_lowercase().contains("tls") => {
            "this build connects without TLS: use sslmode=disable or sslmode=prefer".to_owned()
        }
        _ => "cannot talk to the server".to_owned(),
    }
}

/// The database `client` is connected to, as its server names it (the cluster's
/// `system_identifier`, which PostgreSQL lets any user read, and the database's name); `None` when
/// the server refuses to say (a privilege revoked): then no store can be proven to share it.
pub(crate) async fn database_identity(
    client: &tokio_postgres::Client,
    address: &PgAddress,
) -> Result<Option<batch_model::DatabaseIdentity>, Failure> {
    let sql = "SELECT system_identifier::text, current_database()::text FROM pg_control_system()";
    match client.query_one(sql, &[]).await {
        Ok(row) => {
            let read = |idx| {
                row.try_get::<_, String>(idx)
                    .map_err(|error| failure(address, "reading the database's identity", &error))
            };
            Ok(Some(batch_model::DatabaseIdentity::new(read(0)?, read(1)?)))
        }
        Err(error) if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Ok(None),
        Err(error) => Err(failure(address, "reading the database's identity", &error)),
    }
}
