//! Test doubles for running a kind without a manager (feature `testing`; in this workspace only the
//! dev-dependencies of tests and benches turn it on).
//!
//! [`MemoryControl`] is the one [`JobControl`] the tests and benches share: it keeps what a store would
//! keep, in memory, and can ask a run to stop or make it hang at a chosen commit (a process that dies
//! there).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use batch_model::{Checkpoint, ErrorCode, Progress, TaskError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::kind::JobControl;

/// A [`JobControl`] kept in memory: every commit is accepted and recorded, after a round trip through
/// JSON text (a store keeps text, so a resumed run gets back exactly what a store would give it), and
/// every progress report is recorded.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use batch_model::{Checkpoint, Counters, Progress};
/// use batch_tasks::JobControl;
/// use batch_tasks::testing::MemoryControl;
/// use serde_json::json;
///
/// let control = Arc::new(MemoryControl::stopping_after(1));
/// assert!(!control.stop_requested());
/// let checkpoint = Checkpoint {
///     sequence: 1,
///     source: json!({ "offset": 120, "line": 4 }),
///     sink: json!(null),
///     counters: Counters::default(),
///     state: json!(null),
///     committed_at: chrono::Utc::now(),
/// };
/// control.commit(checkpoint.clone(), Progress::zero(chrono::Utc::now())).await?;
/// assert!(control.stop_requested());
/// assert_eq!(control.last_checkpoint(), Some(checkpoint));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryControl {
    checkpoints: Mutex<Vec<Checkpoint>>,
    progress: Mutex<Vec<Progress>>,
    /// Commits begun, counting from 1 (the hung one included).
    commits: AtomicU64,
    stop_after: Option<u64>,
    hang_at: Option<u64>,
    hung: Notify,
    token: CancellationToken,
}

impl MemoryControl {
    /// A control that never asks the run to stop.
    pub fn new() -> MemoryControl {
        MemoryControl::default()
    }

    /// A control that asks the run to stop once `commits` checkpoints are recorded.
    pub fn stopping_after(commits: u64) -> MemoryControl {
        MemoryControl { stop_after: Some(commits), ..MemoryControl::default() }
    }

    /// A control whose commit number `commit` (counting from 1) never returns and is not recorded: the
    /// run hangs there as a process killed in the middle of its commit would. [`hung`](Self::hung)
    /// says when it got there.
    pub fn hanging_at(commit: u64) -> MemoryControl {
        MemoryControl { hang_at: Some(commit), ..MemoryControl::default() }
    }

    /// Waits until the run reached the commit it hangs at ([`hanging_at`](Self::hanging_at)).
    pub async fn hung(&self) {
        self.hung.notified().await;
    }

    /// The recorded checkpoints, in commit order.
    ///
    /// # Panics
    ///
    /// If a thread panicked while recording a commit (a test failing already).
    #[allow(clippy::unwrap_used, reason = "a poisoned lock is a test that failed already")]
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        self.checkpoints.lock().unwrap().clone()
    }

    /// The last recorded checkpoint: where a resumed run goes on.
    ///
    /// # Panics
    ///
    /// If a thread panicked while recording a commit (a test failing already).
    #[allow(clippy::unwrap_used, reason = "a poisoned lock is a test that failed already")]
    pub fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.checkpoints.lock().unwrap().last().cloned()
    }

    /// Every progress the run published, committed or reported, in order.
    ///
    /// # Panics
    ///
    /// If a thread panicked while recording a commit (a test failing already).
    #[allow(clippy::unwrap_used, reason = "a poisoned lock is a test that failed already")]
    pub fn progress(&self) -> Vec<Progress> {
        self.progress.lock().unwrap().clone()
    }
}

#[async_trait]
impl JobControl for MemoryControl {
    #[allow(clippy::unwrap_used, reason = "a poisoned lock is a test that failed already")]
    async fn commit(&self, checkpoint: Checkpoint, progress: Progress) -> Result<(), TaskError> {
        let commit = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.hang_at == Some(commit) {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        let stored = serde_json::to_string(&checkpoint)
            .and_then(|text| serde_json::from_str::<Checkpoint>(&text))
            .map_err(|error| {
                TaskError::new(
                    ErrorCode::StorageError,
                    format!("the checkpoint does not round-trip: {error}"),
                )
            })?;
        self.checkpoints.lock().unwrap().push(stored);
        self.progress.lock().unwrap().push(progress);
        Ok(())
    }

    #[allow(clippy::unwrap_used, reason = "a poisoned lock is a test that failed already")]
    async fn report_progress(&self, progress: Progress) {
        self.progress.lock().unwrap().push(progress);
    }

    #[allow(clippy::unwrap_used, reason = "a poisoned lock is a test that failed already")]
    fn stop_requested(&self) -> bool {
        self.stop_after.is_some_and(|after| self.checkpoints.lock().unwrap().len() as u64 >= after)
    }

    fn cancellation_token(&self) -> CancellationToken {
        self.token.clone()
    }
}
