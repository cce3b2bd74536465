//! PostgreSQL tables as the chunk runner's endpoints: `PgTableInput` (a table or query read in
//! key order, a page at a time, the last key as the checkpoint's position) and `PgTableOutput`
//! (rows upserted by key, exactly once whatever crashes and resumes), with [`PgTable`] naming
//! either (the address, the table or query, the key).
//!
//! The names ([`PgTable`], [`PgAddress`], [`Relation`]) are always compiled, so a task naming a
//! table is checked and described the same in every build; the client (tokio-postgres, without
//! TLS) and the endpoints are behind batch-tasks' feature `postgres`, which the `batch` command
//! turns on. Without it, a kind refuses a table with a `CONFIGURATION_ERROR` saying so.
//!
//! # Exactly once, and why not in the checkpoint's transaction
//!
//! The output is an idempotent upsert keyed by the table's key: a chunk's rows are committed by
//! the server before the checkpoint that covers them, and a resume writing them again replaces
//! each row with itself (see `PgTableOutput`). This is correct whatever the task's store is. Writing
//! the rows in the checkpoint's own transaction, when the store is the same database, would save
//! the upsert's conflict check but needs the store to run a kind's statements inside its group
//! commit; the store contract has no such hook yet.
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
mod sink;
#[cfg(feature = "postgres")]
mod source;

pub(crate) use config::key_columns;
pub use config::{OutputMode, PgAddress, PgTable, Relation, is_postgres_address, quote_ident};
#[cfg(feature = "postgres")]
pub use sink::{PgTableOutput, PgTableSink};
#[cfg(feature = "postgres")]
pub use source::{PgTableInput, TablePosition};
