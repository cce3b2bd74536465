//! How a manager runs: its worker id, lease timings, stop grace period and task slots
//! ([`ManagerConfig`]).

use std::time::Duration;

use crate::error::ManagerError;
use crate::store::WorkerId;

/// Most claim calls a worker loop may keep in flight ([`ManagerConfig::claims_in_flight`]).
pub const MAX_CLAIMS_IN_FLIGHT: usize = 16;

/// How a [`BatchManager`](crate::BatchManager) runs tasks.
///
/// The default: a fresh worker id, 30 s leases renewed every 10 s, a 30 s stop grace period, 8 tasks at
/// once, 2 claims in flight, a 500 ms poll interval, and quarantine after 3 lost leases without
/// progress.
///
/// ```
/// use std::time::Duration;
/// use batch_manager::ManagerConfig;
///
/// let config = ManagerConfig::default().with_lease_ttl(Duration::from_secs(3));
/// assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
/// assert!(config.validate().is_ok());
/// assert!(config.worker_id.0.contains(&std::process::id().to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// This manager's identity in leases: unique across processes and machines (default
    /// `host:pid:random`).
    pub worker_id: WorkerId,
    /// How long a claim holds a task without a heartbeat. When a worker dies, its tasks can be taken
    /// over (resumed) this long after its last heartbeat.
    pub lease_ttl: Duration,
    /// How often a running task's heartbeat renews its lease and looks for a stop request from
    /// elsewhere; well under `lease_ttl` (a third of it by default).
    pub heartbeat_interval: Duration,
    /// How long a task asked to stop may take to reach its next chunk boundary before its in-flight
    /// work is aborted.
    pub stop_grace_period: Duration,
    /// Most tasks this manager runs at once; `process_task` and the worker loop wait for a free slot.
    pub max_concurrent_tasks: usize,
    /// Claim calls the worker loop keeps in flight at once (1–16, default 2): while one claim's
    /// transaction commits, the next already locks rows. Two roughly halve the time a lone worker
    /// with a backlog spends waiting on its claims. Claims of many workers at once skip each other's
    /// locked rows, which costs the database: a large fleet on a busy database does better with 1
    /// (measured in docs/BENCHMARKS.md, m3).
    pub claims_in_flight: usize,
    /// How often the worker loop looks for work when there was none, and `wait` looks at a task that
    /// runs elsewhere, besides what the store's change feed tells them at once. A dead worker's task is
    /// taken over at most `lease_ttl + poll_interval` after its last heartbeat.
    pub poll_interval: Duration,
    /// Quarantine: a task whose worker was lost this many times in a row without a checkpoint in
    /// between ends `failed` instead of being claimed again (0: never). Default 3.
    pub max_lost_leases: u32,
}

impl Default for ManagerConfig {
    fn default() -> ManagerConfig {
        ManagerConfig {
            worker_id: default_worker_id(),
            lease_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            stop_grace_period: Duration::from_secs(30),
            max_concurrent_tasks: 8,
            claims_in_flight: 2,
            poll_interval: Duration::from_millis(500),
            max_lost_leases: crate::store::LeaseRequest::DEFAULT_MAX_LOST_LEASES,
        }
    }
}

/// `host:pid:random`: the host from `$HOSTNAME` (or `localhost`), this process's id, 32 random bits.
fn default_worker_id() -> WorkerId {
    let host = std::env::var("HOSTNAME").ok().filter(|host| !host.is_empty());
    let host = host.as_deref().unwrap_or("localhost");
    WorkerId(format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..)))
}

impl ManagerConfig {
    /// The same config with `lease_ttl`, and a heartbeat every third of it.
    #[must_use]
    pub fn with_lease_ttl(self, lease_ttl: Duration) -> ManagerConfig {
        ManagerConfig { lease_ttl, heartbeat_interval: lease_ttl / 3, ..self }
    }

    /// The same config with `worker_id`.
    #[must_use]
    pub fn with_worker_id(self, worker_id: impl Into<String>) -> ManagerConfig {
        ManagerConfig { worker_id: WorkerId(worker_id.into()), ..self }
    }

    /// The same config with `stop_grace_period`.
    #[must_use]
    pub fn with_stop_grace_period(self, stop_grace_period: Duration) -> ManagerConfig {
        ManagerConfig { stop_grace_period, ..self }
    }

    /// The same config with `max_concurrent_tasks`.
    #[must_use]
    pub fn with_max_concurrent_tasks(self, max_concurrent_tasks: usize) -> ManagerConfig {
        ManagerConfig { max_concurrent_tasks, ..self }
    }

    /// The same config with `claims_in_flight`.
    #[must_use]
    pub fn with_claims_in_flight(self, claims_in_flight: usize) -> ManagerConfig {
        ManagerConfig { claims_in_flight, ..self }
    }

    /// The same config with `poll_interval`.
    #[must_use]
    pub fn with_poll_interval(self, poll_interval: Duration) -> ManagerConfig {
        ManagerConfig { poll_interval, ..self }
    }

    /// Checks the settings: a non-empty worker id, non-zero durations and slots, 1 to
    /// [`MAX_CLAIMS_IN_FLIGHT`] claims in flight, and a heartbeat shorter than the lease. A violation
    /// is [`ManagerError::InvalidConfig`] (`CONFIGURATION_ERROR`) naming the setting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use batch_manager::ManagerConfig;
    ///
    /// let config = ManagerConfig { heartbeat_interval: Duration::from_secs(60), ..ManagerConfig::default() };
    /// assert_eq!(
    ///     config.validate().unwrap_err().to_string(),
    ///     "invalid manager configuration: heartbeat_interval must be shorter than lease_ttl (30s), got 60s",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ManagerError> {
        let invalid =
            |field: &'static str, reason: String| Err(ManagerError::InvalidConfig { field, reason });
        if self.worker_id.0.is_empty() {
            return invalid("worker_id", "must not be empty".to_owned());
        }
        for (field, value) in [
            ("lease_ttl", self.lease_ttl),
            ("heartbeat_interval", self.heartbeat_interval),
            ("poll_interval", self.poll_interval),
        ] {
            if value.is_zero() {
                return invalid(field, "must be longer than 0s".to_owned());
            }
        }
        if self.heartbeat_interval >= self.lease_ttl {
            return invalid(
                "heartbeat_interval",
                format!(
                    "must be shorter than lease_ttl ({:?}), got {:?}",
                    self.lease_ttl, self.heartbeat_interval
                ),
            );
        }
        if self.max_concurrent_tasks == 0 {
            return invalid("max_concurrent_tasks", "must be at least 1, got 0".to_owned());
        }
        if !(1..=MAX_CLAIMS_IN_FLIGHT).contains(&self.claims_in_flight) {
            return invalid(
                "claims_in_flight",
                format!("must be from 1 to {MAX_CLAIMS_IN_FLIGHT}, got {}", self.claims_in_flight),
            );
        }
        Ok(())
    }
}
