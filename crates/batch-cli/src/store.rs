//! The task store: its address (`--db`, `BATCH_DB`), opening it ([`open_manager`], the one way every
//! command opens a store) and the manager's timings for the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use batch::manager::store::TaskStore;
use batch::model::ErrorCode;
use batch::prelude::{BatchManager, Heard, ManagerConfig, PgOptions, PgStore, SqliteOptions, SqliteStore};

use crate::failure::{ManagerResultExt, coded, configuration};

/// How long a `run` holds its task without a heartbeat. Short, so that `batch tasks resume` can take
/// over the task of a killed process a few seconds after it died; the heartbeat renews it every
/// third of it (1 s), which is also how soon a `batch tasks stop` from another process is seen.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(3);

/// How long a stopped task may take to reach its next chunk boundary before its in-flight work is
/// aborted (a second Ctrl-C aborts it at once).
pub(crate) const STOP_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// How often the command looks at the tasks it follows.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where the task store is, as `--db` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreAddress {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl StoreAddress {
    /// Reads an address: a `postgres://` or `postgresql://` URL, or else a SQLite file path.
    pub(crate) fn parse(text: &str) -> anyhow::Result<StoreAddress> {
        if text.trim().is_empty() {
            return Err(configuration("--db must not be empty; give a SQLite file path"));
        }
        let scheme = text.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(StoreAddress::Postgres(text.to_owned())),
            Some(scheme)
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
            {
                Err(configuration(format!(
                    "--db {}: unknown store scheme {scheme}://; give a SQLite file path or a postgres:// URL",
                    redacted(text)
                )))
            }
            _ => Ok(StoreAddress::Sqlite(PathBuf::from(text))),
        }
    }
}

impl std::fmt::Display for StoreAddress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreAddress::Sqlite(path) => write!(formatter, "{}", path.display()),
            StoreAddress::Postgres(url) => formatter.write_str(&redacted(url)),
        }
    }
}

/// `url` with the password hidden: `postgres://user:***@host/db`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or(credentials, |(user, _)| user);
            let hidden = if credentials.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// What a command does with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// It creates tasks: a missing SQLite file (and its folder) is created.
    Create,
    /// It works on tasks that exist: a missing store is an error saying which `--db` to pass.
    Existing,
    /// It waits for a task that exists to end (as `Existing`): on PostgreSQL its store hears only
    /// tasks' ends, which is all it waits for.
    Wait,
    /// It runs a worker (as `Create` for SQLite): on PostgreSQL its store hears only the changes
    /// that make a task claimable, which are all its claim loops wait for, and commits its changes
    /// on `writers` lanes (SQLite has one writer).
    Work {
        /// The PostgreSQL store's writer lanes ([`PgOptions::writers`]).
        writers: usize,
    },
}

/// The manager settings of the command line: a 3 s lease renewed every second, a 10 s stop grace
/// period, a 100 ms poll.
pub(crate) fn command_line_config() -> ManagerConfig {
    ManagerConfig::default()
        .with_lease_ttl(LEASE_TTL)
        .with_stop_grace_period(STOP_GRACE_PERIOD)
        .with_poll_interval(POLL_INTERVAL)
}

/// A manager over the store at `address` running the built-in kinds, with the command line's lease
/// timings. The one way every command opens a store.
pub(crate) async fn open_manager(address: &StoreAddress, access: Access) -> anyhow::Result<BatchManager> {
    open_manager_with(address, access, crate::kinds::registry(), command_line_config()).await
}

/// [`open_manager`] with the kinds of `registry` and the settings `config`.
pub(crate) async fn open_manager_with(
    address: &StoreAddress,
    access: Access,
    registry: batch::tasks::Registry,
    config: ManagerConfig,
) -> anyhow::Result<BatchManager> {
    let store = open_store(address, access).await?;
    BatchManager::new(store, registry, config).coded()
}

/// The store at `address` (a missing SQLite file checked as `access` says).
pub(crate) async fn open_store(address: &StoreAddress, access: Access) -> anyhow::Result<Arc<dyn TaskStore>> {
    let path = match address {
        StoreAddress::Sqlite(path) => path,
        StoreAddress::Postgres(url) => {
            // A database that does not hold the store yet gets its schema (migrations run on
            // connect, under an advisory lock): the database itself is the operator's to create.
            // Commands that work on existing tasks (list, show, stop, wait, metrics) are short and
            // mostly read: they make connections as they need them, not one per writer lane.
            let defaults = PgOptions::default();
            let options = PgOptions {
                open_writers_at_connect: !matches!(access, Access::Existing | Access::Wait),
                hear: match access {
                    Access::Work { .. } => Heard::Claimable,
                    Access::Wait => Heard::Ended,
                    Access::Create | Access::Existing => Heard::Every,
                },
                writers: match access {
                    Access::Work { writers } => writers,
                    Access::Create | Access::Existing | Access::Wait => defaults.writers,
                },
                ..defaults
            };
            let store = PgStore::connect(url, options).await.map_err(|error| {
                coded(error.code(), format!("cannot open the task store (set it with --db): {error}"))
            })?;
            return Ok(Arc::new(store));
        }
    };
    match access {
        Access::Existing | Access::Wait if !path.exists() => return Err(missing_store(path)),
        Access::Existing | Access::Wait => {}
        Access::Create | Access::Work { .. } => create_folder(path)?,
    }
    let store = SqliteStore::open(path, SqliteOptions::default()).map_err(|error| {
        coded(
            error.code(),
            format!("cannot open the task store {} (set it with --db): {error}", path.display()),
        )
    })?;
    Ok(Arc::new(store))
}

fn create_folder(db: &Path) -> anyhow::Result<()> {
    if let Some(parent) = db.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| {
            coded(
                ErrorCode::StorageError,
                format!("cannot create the folder of the task store {}: {error}", db.display()),
            )
        })?;
    }
    Ok(())
}

/// A store that does not exist: say which `--db` to pass (the demo's, when it is here).
fn missing_store(db: &Path) -> anyhow::Error {
    let demo = Path::new("pump-demo").join("batch.db");
    let hint = if db != demo && demo.exists() {
        format!("pass --db {} for the store `batch demo` made here", demo.display())
    } else {
        "pass --db with the store's path, or set BATCH_DB (`batch demo` keeps its store in DIR/batch.db)"
            .to_owned()
    };
    configuration(format!("no task store at {}: {hint}", db.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_apart() {
        assert_eq!(
            StoreAddress::parse("batch.db").ok(),
            Some(StoreAddress::Sqlite(PathBuf::from("batch.db")))
        );
        assert_eq!(
            StoreAddress::parse("C:/data/x.db").ok(),
            Some(StoreAddress::Sqlite(PathBuf::from("C:/data/x.db")))
        );
        assert!(matches!(StoreAddress::parse("postgresql://u@h/db"), Ok(StoreAddress::Postgres(_))));
        assert!(matches!(StoreAddress::parse("POSTGRES://h/db"), Ok(StoreAddress::Postgres(_))));
        let error = StoreAddress::parse("mysql://u:secret@h/db").unwrap_err().to_string();
        assert!(error.contains("unknown store scheme mysql://") && !error.contains("secret"), "{error}");
        assert!(StoreAddress::parse(" ").is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://batch:s3cret@db.local:5432/tasks"),
            "postgres://batch:***@db.local:5432/tasks"
        );
        assert_eq!(redacted("postgres://batch@db.local/tasks"), "postgres://batch@db.local/tasks");
        assert_eq!(redacted("postgres://db.local/a@b"), "postgres://db.local/a@b");
    }
}
