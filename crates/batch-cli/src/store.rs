//! Opening the task store and a manager with the command line's lease timings.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use batch::prelude::{BatchManager, ManagerConfig, SqliteOptions, SqliteStore, builtin_registry};

use crate::failure::{ManagerResultExt, coded};

/// How long a `run` holds its task without a heartbeat. Short, so that `batch tasks resume` can take
/// over the task of a killed process a few seconds after it died; the heartbeat renews it every
/// third of it (1 s), which is also how soon a `batch tasks stop` from another process is seen.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(3);

/// How long a stopped task may take to reach its next chunk boundary before its in-flight work is
/// aborted.
const STOP_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// How often the command looks at the tasks it follows.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A manager over the SQLite store at `db` (created, with its folder, if missing) running the
/// built-in kinds.
pub(crate) fn open_manager(db: &Path) -> anyhow::Result<BatchManager> {
    if let Some(parent) = db.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| {
            coded(
                batch::model::ErrorCode::StorageError,
                format!("cannot create the folder of the task store {}: {error}", db.display()),
            )
        })?;
    }
    let store = SqliteStore::open(db, SqliteOptions::default()).map_err(|error| {
        coded(
            error.code(),
            format!("cannot open the task store {} (set it with --db): {error}", db.display()),
        )
    })?;
    let config = ManagerConfig::default()
        .with_lease_ttl(LEASE_TTL)
        .with_stop_grace_period(STOP_GRACE_PERIOD)
        .with_poll_interval(POLL_INTERVAL);
    BatchManager::new(Arc::new(store), builtin_registry(), config).coded()
}
