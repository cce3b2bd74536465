//! The writer thread: owns the connection, takes requests from a bounded channel, and commits every
//! request that is waiting (up to a limit) in one transaction — group commit — with a savepoint per
//! request so that one failing request does not undo the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::StoreStats;
use super::error::{BatchFailure, storage};
use super::queries::Db;
use crate::store::StoreError;

/// Work for the writer thread.
trait Job: Send {
    /// Whether the job may write (it then runs inside its own savepoint).
    fn writes(&self) -> bool;
    /// Runs the job inside the group's transaction; true if it succeeded.
    fn run(&mut self, db: &Db) -> bool;
    /// Answers the caller once the group's fate is known: its own outcome if the group committed (or
    /// if the job itself failed), the group's failure otherwise.
    fn complete(self: Box<Self>, failure: Option<&BatchFailure>);
}

struct Request<T, F> {
    work: Option<F>,
    writes: bool,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Request<T, F>
where
    T: Send,
    F: FnOnce(&Db) -> Result<T, StoreError> + Send,
{
    fn writes(&self) -> bool {
        self.writes
    }

    fn run(&mut self, db: &Db) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = work(db);
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn complete(self: Box<Self>, failure: Option<&BatchFailure>) {
        let answer = match (self.outcome, failure) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), None) => Ok(value),
            (_, Some(failure)) => Err(failure.to_error()),
            (None, None) => Err(StoreError::Storage {
                location: String::new(),
                message: "the request was never run (a bug in the SQLite store)".to_owned(),
                source: None,
            }),
        };
        // The caller may have stopped waiting (its future was dropped); the change stands regardless.
        let _ = self.reply.send(answer);
    }
}

enum Message {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// Counters shared between the writer thread and [`SqliteStore::stats`](super::SqliteStore::stats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    committed: AtomicU64,
    failed: AtomicU64,
    queued: AtomicU64,
    requests: AtomicU64,
    largest_group: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> StoreStats {
        StoreStats {
            transactions_committed: self.committed.load(Ordering::Relaxed),
            transactions_failed: self.failed.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
        }
    }
}

/// The async side of the writer thread: sends requests and awaits their answers.
#[derive(Debug)]
pub(super) struct Writer {
    sender: mpsc::Sender<Message>,
    location: String,
    pub(super) counters: Arc<Counters>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Message::Job(_) => "Job",
            Message::Close(_) => "Close",
        })
    }
}

impl Writer {
    /// Starts the writer thread with the opened database.
    pub(super) fn start(db: Db, queue_capacity: usize, max_group: usize) -> Result<Writer, StoreError> {
        let (sender, receiver) = mpsc::channel(queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let location = db.location.clone();
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("batch-sqlite-writer".to_owned())
            .spawn(move || run(db, receiver, &thread_counters, max_group.max(1)))
            .map_err(|source| StoreError::Storage {
                location: location.clone(),
                message: format!("cannot start the store's writer thread ({source})"),
                source: Some(Box::new(source)),
            })?;
        Ok(Writer { sender, location, counters, thread: std::sync::Mutex::new(Some(thread)) })
    }

    fn closed(&self) -> StoreError {
        storage(
            &self.location,
            "the store is closed (or its writer thread stopped): open it again".to_owned(),
        )
    }

    /// Runs `work` on the writer thread in the next group transaction and returns its answer once the
    /// transaction committed. `writes: false` marks a read, which needs no savepoint (and a group of
    /// reads only takes no write lock).
    pub(super) async fn call<T, F>(&self, writes: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let request = Request { work: Some(work), writes, outcome: None, reply };
        // Counted before sending, so that the writer's decrement never comes first.
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(Message::Job(Box::new(request))).await.is_err() {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(self.closed());
        }
        answer.await.map_err(|_| self.closed())?
    }

    /// Finishes the queued requests, closes the connection and stops the thread.
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Message::Close(reply)).await.is_err() {
            return Ok(());
        }
        let closed = answer.await.unwrap_or(Ok(()));
        let thread = self.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(thread) = thread {
            // The thread has answered and is returning; joining it cannot block for long.
            let _ = thread.join();
        }
        closed
    }
}

/// The writer thread's loop: wait for a request, gather every request already queued (up to
/// `max_group`), run them in one transaction, answer them all, repeat until closed.
fn run(db: Db, mut receiver: mpsc::Receiver<Message>, counters: &Counters, max_group: usize) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(max_group);
    let mut close_reply = None;
    let take = |group: &mut Vec<Box<dyn Job>>, job| {
        counters.queued.fetch_sub(1, Ordering::Relaxed);
        group.push(job);
    };
    while close_reply.is_none() {
        match receiver.blocking_recv() {
            Some(Message::Job(job)) => take(&mut group, job),
            Some(Message::Close(reply)) => close_reply = Some(reply),
            None => break,
        }
        while close_reply.is_none() && group.len() < max_group {
            match receiver.try_recv() {
                Ok(Message::Job(job)) => take(&mut group, job),
                Ok(Message::Close(reply)) => close_reply = Some(reply),
                Err(_) => break,
            }
        }
        if !group.is_empty() {
            execute_group(&db, &mut group, counters);
        }
    }
    // Refuse what arrived after the close request.
    receiver.close();
    let refused = BatchFailure::new(storage(
        &db.location,
        "the store was closed before this change ran: open it again".to_owned(),
    ));
    while let Ok(message) = receiver.try_recv() {
        match message {
            Message::Job(job) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                job.complete(Some(&refused));
            }
            Message::Close(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }
    let location = db.location.clone();
    let busy_timeout = db.busy_timeout;
    let closed = db.conn.close().map_err(|(_, error)| {
        super::error::sqlite_error(&location, "closing the database", busy_timeout, error)
    });
    if let Some(reply) = close_reply {
        let _ = reply.send(closed);
    }
}

/// Runs one group in one transaction and answers every request in it.
fn execute_group(db: &Db, group: &mut Vec<Box<dyn Job>>, counters: &Counters) {
    counters.largest_group.fetch_max(group.len() as u64, Ordering::Relaxed);
    counters.requests.fetch_add(group.len() as u64, Ordering::Relaxed);
    let writes = group.iter().any(|job| job.writes());
    // A writing group takes the write lock up front (waiting up to the busy timeout for other
    // processes), so it never fails half-way to upgrade a read lock.
    let begin = if writes { "BEGIN IMMEDIATE" } else { "BEGIN DEFERRED" };
    let failure = match db.conn.execute_batch(begin) {
        Err(error) => Some(BatchFailure::new(db.error("starting a transaction", error))),
        Ok(()) => run_in_transaction(db, group),
    };
    if failure.is_some() {
        counters.failed.fetch_add(1, Ordering::Relaxed);
    } else {
        counters.committed.fetch_add(1, Ordering::Relaxed);
    }
    for job in group.drain(..) {
        job.complete(failure.as_ref());
    }
}

/// Runs the group's jobs inside the open transaction and commits; the failure that rolled the whole
/// transaction back, if any.
fn run_in_transaction(db: &Db, group: &mut [Box<dyn Job>]) -> Option<BatchFailure> {
    let mut broken = None;
    for job in group.iter_mut() {
        if job.writes() {
            if let Err(error) = db.conn.execute_batch("SAVEPOINT request") {
                broken = Some(BatchFailure::new(db.error("starting a savepoint", error)));
                break;
            }
            let end = if job.run(db) { "RELEASE request" } else { "ROLLBACK TO request; RELEASE request" };
            if db.conn.is_autocommit() {
                broken = Some(rolled_back_by_sqlite(db));
                break;
            }
            if let Err(error) = db.conn.execute_batch(end) {
                broken = Some(BatchFailure::new(db.error("ending a savepoint", error)));
                break;
            }
        } else {
            job.run(db);
            if db.conn.is_autocommit() {
                broken = Some(rolled_back_by_sqlite(db));
                break;
            }
        }
    }
    if broken.is_none() {
        match db.conn.execute_batch("COMMIT") {
            Ok(()) => return None,
            Err(error) => broken = Some(BatchFailure::new(db.error("committing a transaction", error))),
        }
    }
    if !db.conn.is_autocommit() {
        // Nothing more can be done if the rollback fails too: SQLite rolls back on the next BEGIN.
        let _ = db.conn.execute_batch("ROLLBACK");
    }
    broken
}

/// SQLite itself rolled the transaction back (after a disk-full or I/O error in one request).
fn rolled_back_by_sqlite(db: &Db) -> BatchFailure {
    BatchFailure::new(storage(
        &db.location,
        "SQLite rolled the transaction back after a storage failure of another change in the same \
         transaction: retry"
            .to_owned(),
    ))
}
