//! A PostgreSQL table as the chunk runner's [`SinkTarget`]: each chunk's rows committed in the
//! checkpoint's own store transaction when the task's store is the table's database, else upserted
//! by the table's key in one statement before the checkpoint that covers them, so that a resume
//! writing them again changes nothing.

use std::fmt;
use std::sync::Arc;

use batch_model::{AttachedInput, AttachedWrite, DatabaseIdentity, ErrorCode};
use serde::Serialize;

use super::config::{OutputMode, PgTable, Relation, quote_ident};
use super::connect::{Failure, connect, database_identity, failure};
use super::copy_text::{self, Column, ColumnKind};
use crate::JobControl;
use crate::records::{CommitSink, Resume, RunError, SinkFailure, SinkTarget};

/// A table that output rows go into: exactly once by key, whatever crashes and resumes.
///
/// Each output is a JSON object whose fields fill the table's columns of the same names, each field
/// sent as the text its column type's own input reads (the server parses no JSON): a string is its
/// content, so `"12.50"` fills a `numeric` exactly and an ISO 8601 string a `timestamptz`; a
/// `json`/`jsonb` column takes the field's JSON; an array column a JSON array; a field the table
/// has no column for is ignored; a column the row has no field for gets `NULL`, not its default;
/// generated columns are left to the server. A chunk's rows go by one of two paths:
///
/// - **In the checkpoint's transaction** (the task's store is the table's database, see
///   [`in_job`](PgTableOutput::in_job)): `COPY table (columns) FROM STDIN` with the chunk's rows is
///   attached to the chunk's checkpoint ([`CommitSink::attached`]) and the store runs it in the
///   transaction that commits the checkpoint, after checking the claim. The table holds the rows
///   of every committed checkpoint and nothing else, at every instant: a kill -9 at any point
///   leaves no row beyond the last checkpoint, and a stale holder (a claim another worker took
///   over) writes nothing, its rows refused with its checkpoint. No row is ever written twice, so
///   the rows are inserted, not upserted: a key the table held before the task fails the chunk
///   with a `STORAGE_ERROR` (unique violation) naming the key. The rows are written by the store's
///   connection (its user).
/// - **Through the output's own connection** (any other store, or `output_mode` `upsert`): one
///   statement, `INSERT … SELECT … FROM unnest($1::text[], …) ON CONFLICT (key) DO UPDATE SET …`
///   (`DO NOTHING` when every column is in the key), the chunk's fields sent as one text array per
///   column (the same texts as the COPY's) and cast to the columns' types, sent when the runner
///   prepares the chunk's checkpoint, so the rows are committed before the checkpoint that covers
///   them. After a crash, the resumed run
///   writes again the rows after its last checkpoint; they have the same keys (the runner's jobs
///   are deterministic), so the upsert replaces each with itself: every output row is in the table
///   exactly once. The same holds for a stale holder's rows (they are the same rows). Between a
///   crash and the resume, the table may hold rows of the chunk after the last checkpoint. A row
///   whose key was in the table before the task is replaced by the task's row.
///
/// Either way readers see the rows as chunks land; a table needs no staged name and nothing to
/// publish. The key is `key` (the `output_key` param), or the table's primary key; it must be a
/// unique key of the table, and two output rows must never share it (a task copying a table keyed
/// by the source's key has this by construction; a task whose rows could repeat a key de-duplicates
/// on it first).
///
/// **The same database** is established by the servers themselves, not by the addresses: the
/// output's connection and the store each read their cluster's `system_identifier`
/// (`pg_control_system()`, which PostgreSQL lets any user call; unique per `initdb`, shared by
/// physical replicas) and `current_database()`; equal pairs mean the same data, whatever host
/// names, ports, poolers or users lead there. A server that refuses to say gives the upsert path.
///
/// The sink's position in checkpoints is the number of rows sent (or attached). Failures (the
/// server, the login, no such table, no unique key matching, a row that does not fit, named by its
/// line in the chunk's COPY data and its column) are `STORAGE_ERROR`s naming the table and the
/// server without its password; `output_mode` `transactional` with a store in another database is a
/// `CONFIGURATION_ERROR`.
#[derive(Clone)]
pub struct PgTableOutput {
    table: Arc<PgTable>,
    mode: OutputMode,
    control: Option<Arc<dyn JobControl>>,
}

impl fmt::Debug for PgTableOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTableOutput")
            .field("table", &self.table.describe())
            .field("mode", &self.mode)
            .field("in_job", &self.control.is_some())
            .finish()
    }
}

impl PgTableOutput {
    /// Upserts into `table` (a table, not a query) through its own connection.
    pub fn new(table: PgTable) -> PgTableOutput {
        PgTableOutput { table: Arc::new(table), mode: OutputMode::Upsert, control: None }
    }

    /// Commits into the table through `control`, the running job's (its store's transaction), as
    /// `mode` says: [`OutputMode::Auto`] when the store is the table's database and through the
    /// table's own connection otherwise, [`OutputMode::Transactional`] only through the store,
    /// [`OutputMode::Upsert`] never.
    #[must_use]
    pub fn in_job(self, control: Arc<dyn JobControl>, mode: OutputMode) -> PgTableOutput {
        PgTableOutput { mode, control: Some(control), ..self }
    }
}

/// An open [`PgTableOutput`]: the chunk's rendered rows until they are sent or attached.
pub struct PgTableSink {
    table: Arc<PgTable>,
    mode: OutputMode,
    control: Option<Arc<dyn JobControl>>,
    writer: Option<Writer>,
    /// The chunk's rows, one JSON object a line.
    pending: Vec<u8>,
    /// The last prepared chunk's rows, for the checkpoint's transaction.
    attached: Option<AttachedWrite>,
    /// Rows sent (or attached).
    sent: u64,
}

impl fmt::Debug for PgTableSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTableSink")
            .field("table", &self.table.describe())
            .field("mode", &self.mode)
            .field("pending_bytes", &self.pending.len())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// How the sink writes, once it knows where the table is.
struct Writer {
    /// The table's columns, in the COPY's order.
    columns: Vec<Column>,
    path: Path,
}

enum Path {
    /// Its own connection and the upsert from the chunk's columns.
    Own { client: tokio_postgres::Client, upsert: tokio_postgres::Statement },
    /// The COPY into the table, attached to checkpoints: the store's database is the table's.
    Attached { database: DatabaseIdentity, statement: String, target: String },
}

impl<T: Serialize + Send + 'static> SinkTarget<T> for PgTableOutput {
    type Sink = PgTableSink;

    fn open(
        &self,
        resume: Option<Resume<u64>>,
        _epoch: u64,
        _durable: bool,
    ) -> Result<PgTableSink, RunError> {
        if let Relation::Query(_) = self.table.relation {
            return Err(RunError::Sink(SinkFailure::new(
                batch_model::ErrorCode::ConfigurationError,
                "a query cannot be an output: name a table",
            )));
        }
        Ok(PgTableSink {
            table: Arc::clone(&self.table),
            mode: self.mode,
            control: self.control.clone(),
            writer: None,
            pending: Vec::new(),
            attached: None,
            sent: resume.map_or(0, |resume| resume.position),
        })
    }

    fn describe(&self) -> String {
        format!("the output {}", self.table.describe())
    }
}

impl<T: Serialize + Send + 'static> CommitSink<T> for PgTableSink {
    type Position = u64;

    fn render(record: &T, bytes: &mut Vec<u8>) -> Result<(), String> {
        let start = bytes.len();
        match serde_json::to_writer(&mut *bytes, record) {
            Ok(()) => {
                bytes.push(b'\n');
                Ok(())
            }
            Err(error) => {
                bytes.truncate(start);
                Err(error.to_string())
            }
        }
    }

    fn write(&mut self, record: &T) -> Result<(), RunError> {
        <PgTableSink as CommitSink<T>>::render(record, &mut self.pending).map_err(|message| {
            RunError::Sink(SinkFailure::new(
                ErrorCode::ProcessingError,
                format!("an output row for {} does not serialize: {message}", self.table.describe()),
            ))
        })
    }

    fn write_rendered(&mut self, bytes: &[u8], _records: u64) -> Result<(), RunError> {
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// Sends the chunk's rows in one upsert (committed by the server before this returns; the
    /// server's own durability settings apply, whatever `durable` says), or, when the store is the
    /// table's database, attaches them to the checkpoint ([`attached`](CommitSink::attached)).
    async fn prepare_commit(&mut self, _durable: bool) -> Result<u64, RunError> {
        if self.pending.is_empty() {
            return Ok(self.sent);
        }
        if self.writer.is_none() {
            let writer =
                prepare(&self.table, self.mode, self.control.as_deref()).await.map_err(sink_error)?;
            self.writer = Some(writer);
        }
        // Rendered rows are JSON text, which never holds a raw newline: each ends one row.
        let text = std::str::from_utf8(&self.pending)
            .map_err(|error| sink_error(Failure::storage(format!("an output row is not UTF-8: {error}"))))?;
        let Some(writer) = &mut self.writer else { return Ok(self.sent) };
        let describe = self.table.describe();
        let encoding = |message: String| {
            RunError::Sink(SinkFailure::new(ErrorCode::ProcessingError, format!("{message} for {describe}")))
        };
        let rows = match &mut writer.path {
            Path::Own { client, upsert } => {
                let (columns, rows) = copy_text::column_texts(&writer.columns, text).map_err(encoding)?;
                let parameters: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns
                    .iter()
                    .map(|column| column as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                client.execute(upsert, &parameters).await.map_err(|error| {
                    sink_error(failure(
                        &self.table.address,
                        &format!("writing into {}", self.table.relation),
                        &error,
                    ))
                })?;
                rows
            }
            Path::Attached { database, statement, target } => {
                let mut data = Vec::with_capacity(self.pending.len());
                let rows = copy_text::encode_rows(&writer.columns, text, &mut data).map_err(encoding)?;
                self.attached = Some(AttachedWrite {
                    database: database.clone(),
                    target: target.clone(),
                    statement: statement.clone(),
                    input: AttachedInput::Copy(data),
                    rows,
                });
                rows
            }
        };
        self.pending.clear();
        self.sent += rows;
        Ok(self.sent)
    }

    fn attached(&mut self) -> Option<AttachedWrite> {
        self.attached.take()
    }

    /// Nothing to publish: the rows are in the table as each chunk lands.
    fn publish(&mut self, _durable: bool) -> Result<(), RunError> {
        Ok(())
    }
}

fn sink_error(failure: Failure) -> RunError {
    RunError::Sink(SinkFailure::new(failure.code, failure.message))
}

/// Connects, reads the table's columns and key, builds the upsert, and chooses the path: attached
/// to the checkpoints when `mode` allows it and the job's store is the table's database, else the
/// upsert prepared on the sink's own connection.
async fn prepare(
    table: &PgTable,
    mode: OutputMode,
    control: Option<&dyn JobControl>,
) -> Result<Writer, Failure> {
    let address = &table.address;
    let client = connect(address).await?;
    let given = table.relation.sql();
    // The table's schema-qualified name, so that the statement means the same table on the store's
    // connection (whose search_path may differ).
    let name: String = client
        .query_one(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::text::regclass",
            &[&given],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|error| failure(address, &format!("finding {}", table.relation), &error))?;
    // Each column's name and how it takes a JSON value: json/jsonb (114, 3802) whole, arrays as
    // array literals.
    let columns: Vec<Column> = client
        .query(
            "SELECT a.attname::text, a.atttypid IN (114, 3802), t.typcategory = 'A', \
             format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 \
             AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
            &[&name],
        )
        .await
        .map_err(|error| failure(address, &format!("reading the columns of {}", table.relation), &error))?
        .iter()
        .map(|row| {
            let (name, json, array, type_name): (String, bool, bool, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            let kind = match (json, array) {
                (true, _) => ColumnKind::Json,
                (false, true) => ColumnKind::Array,
                (false, false) => ColumnKind::Scalar,
            };
            Ok(Column { name, kind, type_name })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|error| failure(address, "reading the columns", &error))?;
    let names: Vec<String> = columns.iter().map(|column| column.name.clone()).collect();
    let key: Vec<String> = match &table.key {
        Some(key) => key.clone(),
        None => client
            .query(
                "SELECT a.attname::text FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attnum = k.attnum WHERE i.indrelid = $1::text::regclass \
                 AND a.attrelid = i.indrelid AND i.indisprimary ORDER BY k.n",
                &[&name],
            )
            .await
            .map_err(|error| {
                failure(address, &format!("finding the primary key of {}", table.relation), &error)
            })?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(|error| failure(address, "reading the primary key", &error))?,
    };
    if key.is_empty() {
        return Err(Failure::storage(format!(
            "{} has no primary key: set output_key to the columns of a unique key",
            table.describe()
        )));
    }
    if let Some(missing) = key.iter().find(|column| !names.contains(column)) {
        return Err(Failure::storage(format!(
            "{} has no column {missing:?} for the output key (its columns: {})",
            table.describe(),
            names.join(", ")
        )));
    }
    let quoted: Vec<String> = names.iter().map(|column| quote_ident(column)).collect();
    let updates: Vec<String> = names
        .iter()
        .filter(|column| !key.contains(column))
        .map(|column| format!("{0} = EXCLUDED.{0}", quote_ident(column)))
        .collect();
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    let key_list: Vec<String> = key.iter().map(|column| quote_ident(column)).collect();
    let copy_into = |table: &str| format!("COPY {table} ({}) FROM STDIN", quoted.join(", "));
    if mode != OutputMode::Upsert {
        let store = match control {
            Some(control) => control.attachable_database().await,
            None => None,
        };
        let output = database_identity(&client, address).await?;
        match (store, output) {
            (Some(store), Some(output)) if store == output => {
                tracing::debug!(table = %table.describe(), "rows committed with the task's checkpoints");
                let target = format!("the table {name} at {address}");
                let path = Path::Attached { database: output, statement: copy_into(&name), target };
                return Ok(Writer { columns, path });
            }
            (store, output) if mode == OutputMode::Transactional => {
                let why = match (store, output) {
                    (None, _) => "the task's store cannot commit rows with its checkpoints (it is not a \
                                  PostgreSQL store, or its server would not name its database)"
                        .to_owned(),
                    (Some(_), None) => {
                        "the table's server would not name its database (pg_control_system())".to_owned()
                    }
                    (Some(store), Some(output)) => {
                        format!("the table is in {output}, the task's store in {store}")
                    }
                };
                return Err(Failure {
                    code: ErrorCode::ConfigurationError,
                    message: format!(
                        "output_mode transactional: {} cannot be written with the task's checkpoints: {why}; \
                         use output_mode auto or upsert",
                        table.describe(),
                    ),
                });
            }
            _ => {}
        }
    }
    // The chunk's fields as one text array per column, each cast to its column's type: one
    // statement, one round trip.
    let arrays: Vec<String> = (1..=columns.len()).map(|number| format!("${number}::text[]")).collect();
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| format!("u.c{index}::{}", column.type_name))
        .collect();
    let aliases: Vec<String> = (0..columns.len()).map(|index| format!("c{index}")).collect();
    let upsert_sql = format!(
        "INSERT INTO {name} ({columns}) SELECT {casts} FROM unnest({arrays}) AS u({aliases}) \
         ON CONFLICT ({key}) {on_conflict}",
        columns = quoted.join(", "),
        casts = casts.join(", "),
        arrays = arrays.join(", "),
        aliases = aliases.join(", "),
        key = key_list.join(", "),
    );
    let upsert = client.prepare(&upsert_sql).await.map_err(|error| {
        failure(address, &format!("preparing the upsert into {}", table.relation), &error)
    })?;
    Ok(Writer { columns, path: Path::Own { client, upsert } })
}
