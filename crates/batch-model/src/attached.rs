//! Writes attached to a checkpoint: statements a task's store runs in the checkpoint's own
//! transaction, so that the task's output and its checkpoint are committed together or not at all.

use std::fmt;

/// A database as its server names it: the cluster's `system_identifier` (unique per `initdb`,
/// shared by its physical replicas) and the database's name. Two connections that report the same
/// identity reach the same data, whatever host names, ports or users they went through.
///
/// ```
/// use batch_model::DatabaseIdentity;
///
/// let store = DatabaseIdentity::new("7301849375638364412", "sales");
/// assert_eq!(store, DatabaseIdentity::new("7301849375638364412", "sales"));
/// assert_ne!(store, DatabaseIdentity::new("7301849375638364412", "archive"));
/// assert_eq!(store.to_string(), "database sales of cluster 7301849375638364412");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatabaseIdentity {
    system_identifier: String,
    database: String,
}

impl DatabaseIdentity {
    /// The database `database` of the cluster whose `system_identifier` is given.
    pub fn new(system_identifier: impl Into<String>, database: impl Into<String>) -> DatabaseIdentity {
        DatabaseIdentity { system_identifier: system_identifier.into(), database: database.into() }
    }

    /// The cluster's `system_identifier`, as text.
    pub fn system_identifier(&self) -> &str {
        &self.system_identifier
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }
}

impl fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database {} of cluster {}", self.database, self.system_identifier)
    }
}

/// One statement to run in the transaction that commits a checkpoint: a chunk's output rows going
/// into a table of the store's own database.
///
/// The statement takes its data from [`input`](AttachedWrite::input): one text parameter `$1`
/// ([`AttachedInput::Parameter`]), or, for a `COPY … FROM STDIN`, the copy's data
/// ([`AttachedInput::Copy`], in the format the statement names). A store that can take attached
/// writes (see the manager's `TaskStore`) runs every write of a checkpoint after checking the
/// checkpoint's holder and before committing: if the holder's claim is stale, or any write fails,
/// nothing of the call is committed — neither the rows nor the checkpoint — and the other calls
/// sharing the transaction are unaffected.
#[derive(Clone, PartialEq, Eq)]
pub struct AttachedWrite {
    /// The database the statement must run in; a store whose own database is another refuses it.
    pub database: DatabaseIdentity,
    /// What the statement writes, for messages (`the table public.orders at postgres://app@db/sales`).
    pub target: String,
    /// The SQL statement: with one text parameter `$1`, or a `COPY … FROM STDIN`.
    pub statement: String,
    /// What the statement reads.
    pub input: AttachedInput,
    /// How many rows it writes (for logs and progress; the store does not check it).
    pub rows: u64,
}

/// The data of an [`AttachedWrite`]'s statement.
// Exhaustive on purpose: a store that runs attached writes must handle every kind of input, and a
// new one should fail to compile there rather than at run time.
#[derive(Clone, PartialEq, Eq)]
pub enum AttachedInput {
    /// The value of `$1`, sent as text.
    Parameter(String),
    /// The statement is a `COPY … FROM STDIN`: these bytes are its whole data, in the format the
    /// statement names (text, CSV or binary).
    Copy(Vec<u8>),
}

impl AttachedInput {
    /// The data's size in bytes.
    pub fn len(&self) -> usize {
        match self {
            AttachedInput::Parameter(text) => text.len(),
            AttachedInput::Copy(bytes) => bytes.len(),
        }
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for AttachedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The data may hold a whole chunk: its size, not its text.
        match self {
            AttachedInput::Parameter(text) => write!(f, "Parameter({} bytes)", text.len()),
            AttachedInput::Copy(bytes) => write!(f, "Copy({} bytes)", bytes.len()),
        }
    }
}

impl fmt::Debug for AttachedWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachedWrite")
            .field("database", &self.database)
            .field("target", &self.target)
            .field("statement", &self.statement)
            .field("input", &self.input)
            .field("rows", &self.rows)
            .finish()
    }
}

/// One checkpoint to commit, with the task's progress at it and the writes attached to it: an
/// element of a batch of consecutive checkpoints of one task, which a store commits in order (in
/// one transaction where it can: see the manager's `TaskStore::commit_checkpoints`).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointCommit {
    /// The checkpoint.
    pub checkpoint: crate::Checkpoint,
    /// The task's progress at it.
    pub progress: crate::Progress,
    /// The writes committed with it (none for a sink that made its chunk durable itself).
    pub writes: Vec<AttachedWrite>,
}
