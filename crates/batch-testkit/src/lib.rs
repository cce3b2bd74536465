//! `batch-testkit`: throwaway PostgreSQL clusters for the workspace's tests, benches and `cargo xtask
//! ci` (never published; a dev-dependency only).
//!
//! - [`PgCluster::start`] runs `initdb` and `pg_ctl start` in a temporary directory on a free loopback
//!   port (as the `postgres` user when running as root, as CI does), and removes it all when dropped
//!   or when the process dies.
//! - [`PgCluster::shared`] is one cluster per process (or the server named by `PUMP_TEST_PG_URL`, which
//!   `cargo xtask ci` starts once for the whole test run); each test takes a fresh database of it with
//!   [`PgCluster::create_database`].
//! - [`shared_or_skip`] is what a test calls first: without PostgreSQL installed it prints one line and
//!   the test returns (skips), unless `PUMP_REQUIRE_PG=1` (CI), where a missing PostgreSQL fails it.
//!
//! ```no_run
//! # async fn test() {
//! let Some(cluster) = batch_testkit::shared_or_skip("my_test") else { return };
//! let database = cluster.create_database().await.unwrap();
//! // connect to database.url ...
//! # }
//! ```

mod binaries;
mod cluster;
mod error;

pub use cluster::{PgCluster, StopMode, TestDatabase};
pub use error::TestkitError;

/// Whether `PUMP_REQUIRE_PG=1`: a missing PostgreSQL is then an error, not a skip.
pub fn pg_required() -> bool {
    std::env::var("PUMP_REQUIRE_PG").is_ok_and(|value| value == "1")
}

/// The shared cluster ([`PgCluster::shared`]) for test `test`, or `None` (after one line on stderr
/// saying the test is skipped and how to install PostgreSQL) when PostgreSQL is not installed.
///
/// # Panics
///
/// When PostgreSQL is not installed and `PUMP_REQUIRE_PG=1`, and whenever the shared cluster fails to
/// start for another reason: the test fails with the cause.
pub fn shared_or_skip(test: &str) -> Option<&'static PgCluster> {
    or_skip(test, PgCluster::shared())
}

/// A cluster of `test`'s own ([`PgCluster::start`]: one it may stop and start again, or a bench's
/// alone), or `None` as [`shared_or_skip`] says.
///
/// # Panics
///
/// As [`shared_or_skip`].
pub fn own_or_skip(test: &str) -> Option<PgCluster> {
    or_skip(test, PgCluster::start())
}

fn or_skip<T>(test: &str, started: Result<T, TestkitError>) -> Option<T> {
    match started {
        Ok(cluster) => Some(cluster),
        Err(error) if error.is_not_installed() && !pg_required() => {
            #[allow(clippy::print_stderr, reason = "a skipped test says so, once, where cargo test shows it")]
            {
                eprintln!(
                    "skipped {test}: PostgreSQL is not installed (apt-get install postgresql; set PUMP_REQUIRE_PG=1 \
                     to make this an error)"
                );
            }
            None
        }
        Err(error) => panic!("{test}: PostgreSQL is needed: {error}"),
    }
}
