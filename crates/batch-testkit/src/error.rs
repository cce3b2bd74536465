//! What the test kit fails with ([`TestkitError`]): each failure says what to do about it.

/// Why a throwaway cluster could not be started, stopped or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// No PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) were found.
    #[error(
        "PostgreSQL server binaries not found (looked in {searched}): install them with `apt-get install \
         postgresql` (Debian/Ubuntu), or set PUMP_PG_BINDIR to the directory holding initdb and pg_ctl"
    )]
    NotInstalled {
        /// Where the kit looked.
        searched: String,
    },
    /// Running as root, but there is no `postgres` user to run the server as (initdb refuses root).
    #[error(
        "running as root, but there is no `postgres` system user to run the server as (initdb refuses to \
         run as root): install Debian's `postgresql` package, which creates it, or run the tests as another \
         user"
    )]
    NoPostgresUser,
    /// A server setting given to [`PgCluster::start_with`](crate::PgCluster::start_with) is not one
    /// `name=value` word.
    #[error("the server setting {setting:?} is not one `name=value` word without quotes")]
    Setting {
        /// The setting as given.
        setting: String,
    },
    /// A file-system operation failed.
    #[error("{doing} failed: {source}")]
    Io {
        /// What the kit was doing.
        doing: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL command (`initdb`, `pg_ctl`) failed.
    #[error("`{command}` failed ({status}): {output}{}", log_section(log_tail))]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
        /// The last lines of the server log, if there is one.
        log_tail: String,
    },
    /// Talking to the server failed.
    #[error("{doing} failed: {source}")]
    Client {
        /// What the kit was doing.
        doing: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The cluster is not owned by this process (it came from `PUMP_TEST_PG_URL`): it cannot be
    /// stopped or started here.
    #[error(
        "the cluster at {url} is not owned by this process: start an own PgCluster to stop or restart it"
    )]
    NotOwned {
        /// The cluster's address.
        url: String,
    },
    /// `PUMP_TEST_PG_URL` is not a usable address.
    #[error("PUMP_TEST_PG_URL={url:?} is not a usable address: {reason}")]
    BadUrl {
        /// The value.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The process-wide shared cluster could not be started (the first attempt's error).
    #[error("the shared test cluster could not be started: {message}")]
    Shared {
        /// The first attempt's error.
        message: String,
        /// The binaries were missing (so a test may skip).
        not_installed: bool,
    },
}

impl TestkitError {
    /// True when the failure is only that PostgreSQL is not installed here.
    pub fn is_not_installed(&self) -> bool {
        matches!(self, TestkitError::NotInstalled { .. } | TestkitError::Shared { not_installed: true, .. })
    }
}

fn log_section(log_tail: &str) -> String {
    if log_tail.is_empty() { String::new() } else { format!("\n--- server log (last lines) ---\n{log_tail}") }
}
