//! PostgreSQL tables as the chunk runner's endpoints: `PgTableInput` (a table or query read in
//! key order, a page at a time, the last key as the checkpoint's position) and `PgTableOutput`
//! (rows committed with the task's checkpoints, or upserted by key, exactly once whatever crashes
//! and resumes), with [`PgTable`] naming either (the address, the table or query, the key) and
//! [`OutputMode`] choosing the output's path.
//!
//! The names ([`PgTable`], [`PgAddress`], [`Relation`], [`OutputMode`]) are always compiled, so a
//! task naming a table is checked and described the same in every build; the client (tokio-postgres,
//! without TLS) and the endpoints are behind batch-tasks' feature `postgres`, which the `batch`
//! command turns on. Without it, a kind refuses a table with a `CONFIGURATION_ERROR` saying so.
//!
//! # Exactly once: in the checkpoint's transaction, or by idempotence
//!
//! When the task's store is the output table's own database (a PostgreSQL store; the servers say
//! so, see `PgTableOutput`), each chunk's rows are not sent by the sink: they are attached to the
//! chunk's checkpoint ([`CommitSink::attached`](crate::records::CommitSink::attached),
//! [`JobControl::commit_with`](crate::JobControl::commit_with)) as a `COPY … FROM STDIN` and its
//! data, and the store runs it inside the transaction that commits the checkpoint, after checking
//! the claim's epoch. The table then holds exactly the rows of the committed checkpoints at every
//! instant: a kill -9 leaves no row beyond the last checkpoint, and a stale holder's rows are
//! refused with its checkpoint. The rows are inserted: a key the table held before the task is a
//! `STORAGE_ERROR` (unique violation), not replaced.
//!
//! Otherwise (another database, a SQLite or memory store, or `output_mode` `upsert`), the output
//! is an idempotent upsert keyed by the table's key through the sink's own connection: a chunk's
//! rows in one `INSERT … SELECT … FROM unnest(…) ON CONFLICT`, committed before the checkpoint
//! that covers them, and a resume writing them again replaces each row with
//! itself. Both paths fill the columns from the rows' fields by the same rules, so a table that
//! starts without the task's keys ends the same either way.
//!
//! # Errors
//!
//! An address that does not parse, a table name that is not `table` or `schema.table`, a query
//! without a key: `CONFIGURATION_ERROR` when the task is created. Everything only the server can
//! tell (it cannot be reached, the login is refused, no such table or column, a key that is not
//! unique, a row that does not fit): `STORAGE_ERROR` when the task runs. Messages show the address
//! as `postgres://user@host:port/db`, never the password; a URL without a password uses the worker's
//! `PGPASSWORD`, so the password need not be stored in the task's params.

mod config;
#[cfg(feature = "postgres")]
mod connect;
#[cfg(feature = "postgres")]
mod copy_text;
#[cfg(feature = "postgres")]
mod sink;
#[cfg(feature = "postgres")]
mod source;

pub(crate) use config::key_columns;
pub use config::{OutputMode, PgAddress, PgTable, Relation, is_postgres_address, quote_ident};
#[cfg(feature = "postgres")]
pub use sink::{PgTableOutput, PgTableSink};
#[cfg(feature = "postgres")]
pub use source::{PgTableInput, TablePosition};
