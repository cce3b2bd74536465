//! A PostgreSQL table as the chunk runner's [`SinkTarget`]: each chunk's rows upserted by the
//! table's key in one statement before the checkpoint that covers them, so that a resume writing
//! them again changes nothing.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::config::{PgTable, Relation, quote_ident};
use super::connect::{Failure, connect, failure};
use crate::records::{CommitSink, Resume, RunError, SinkFailure, SinkTarget};

/// A table that output rows are upserted into: exactly once by key, whatever crashes and resumes.
///
/// Each output is a JSON object whose fields fill the table's columns of the same names (PostgreSQL's
/// `jsonb_populate_recordset`: strings are read by the column type's own input, so `"12.50"` fills a
/// `numeric` exactly and an ISO 8601 string a `timestamptz`; a field the table has no column for is
/// ignored; a column the row has no field for gets `NULL`, not its default; generated columns are left
/// to the server). A chunk's rows go in one statement,
/// `INSERT … ON CONFLICT (key) DO UPDATE SET …` (`DO NOTHING` when every column is in the key), sent
/// when the runner prepares the chunk's checkpoint, so they are committed before the checkpoint that
/// covers them.
///
/// **Exactly once.** After a crash, the resumed run writes again the rows after its last checkpoint;
/// they have the same keys (the runner's jobs are deterministic), so the upsert replaces each with
/// itself: every output row is in the table exactly once. The same holds for a stale holder of the
/// task's lease (its rows are the same rows), so a table needs no staged name and nothing to publish:
/// readers see the rows as chunks land. The key is `key` (the `output_key` param), or the table's
/// primary key; it must be a unique key of the table, and two output rows must never share it (a
/// task copying a table keyed by the source's key has this by construction; a task whose rows could
/// repeat a key de-duplicates on it first). A row whose key was in the table before the task is
/// replaced by the task's row: an upsert, as the name says.
///
/// The sink's position in checkpoints is the number of rows sent. Failures (the server, the login,
/// no such table, no unique key matching, a row that does not fit) are `STORAGE_ERROR`s naming the
/// server without its password.
#[derive(Debug, Clone)]
pub struct PgTableOutput {
    table: Arc<PgTable>,
}

impl PgTableOutput {
    /// Upserts into `table` (a table, not a query).
    pub fn new(table: PgTable) -> PgTableOutput {
        PgTableOutput { table: Arc::new(table) }
    }
}

/// An open [`PgTableOutput`]: the chunk's rendered rows until they are sent.
pub struct PgTableSink {
    table: Arc<PgTable>,
    writer: Option<Writer>,
    /// The chunk's rows, one JSON object a line.
    pending: Vec<u8>,
    /// Rows sent.
    sent: u64,
}

impl fmt::Debug for PgTableSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTableSink")
            .field("table", &self.table.describe())
            .field("pending_bytes", &self.pending.len())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The connection and the prepared upsert.
struct Writer {
    client: tokio_postgres::Client,
    upsert: tokio_postgres::Statement,
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
            writer: None,
            pending: Vec::new(),
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
                batch_model::ErrorCode::ProcessingError,
                format!("an output row for {} does not serialize: {message}", self.table.describe()),
            ))
        })
    }

    fn write_rendered(&mut self, bytes: &[u8], _records: u64) -> Result<(), RunError> {
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// Sends the chunk's rows in one upsert (committed by the server before this returns; the
    /// server's own durability settings apply, whatever `durable` says).
    async fn prepare_commit(&mut self, _durable: bool) -> Result<u64, RunError> {
        if self.pending.is_empty() {
            return Ok(self.sent);
        }
        if self.writer.is_none() {
            self.writer = Some(prepare(&self.table).await.map_err(sink_error)?);
        }
        let rows = memchr::memchr_iter(b'\n', &self.pending).count() as u64;
        let mut array = String::with_capacity(self.pending.len() + 2);
        array.push('[');
        // Rendered rows are JSON text, which never holds a raw newline: each ends one row.
        let text = std::str::from_utf8(&self.pending)
            .map_err(|error| sink_error(Failure::storage(format!("an output row is not UTF-8: {error}"))))?;
        for (index, row) in text.split_terminator('\n').enumerate() {
            if index > 0 {
                array.push(',');
            }
            array.push_str(row);
        }
        array.push(']');
        if let Some(writer) = &self.writer {
            writer.client.execute(&writer.upsert, &[&array]).await.map_err(|error| {
                sink_error(failure(
                    &self.table.address,
                    &format!("writing into {}", self.table.relation),
                    &error,
                ))
            })?;
        }
        self.pending.clear();
        self.sent += rows;
        Ok(self.sent)
    }

    /// Nothing to publish: the rows are in the table as each chunk lands.
    fn publish(&mut self, _durable: bool) -> Result<(), RunError> {
        Ok(())
    }
}

fn sink_error(failure: Failure) -> RunError {
    RunError::Sink(SinkFailure::new(failure.code, failure.message))
}

/// Connects, reads the table's columns and key, and prepares the upsert.
async fn prepare(table: &PgTable) -> Result<Writer, Failure> {
    let address = &table.address;
    let client = connect(address).await?;
    let name = table.relation.sql();
    let columns: Vec<String> = client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 \
             AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&name],
        )
        .await
        .map_err(|error| failure(address, &format!("reading the columns of {}", table.relation), &error))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|error| failure(address, "reading the columns", &error))?;
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
    if let Some(missing) = key.iter().find(|column| !columns.contains(column)) {
        return Err(Failure::storage(format!(
            "{} has no column {missing:?} for the output key (its columns: {})",
            table.describe(),
            columns.join(", ")
        )));
    }
    let quoted: Vec<String> = columns.iter().map(|column| quote_ident(column)).collect();
    let updates: Vec<String> = columns
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
    let sql = format!(
        "INSERT INTO {name} ({columns}) SELECT {columns} FROM jsonb_populate_recordset(NULL::{name}, $1::text::jsonb) \
         ON CONFLICT ({key}) {on_conflict}",
        columns = quoted.join(", "),
        key = key_list.join(", "),
    );
    let upsert = client.prepare(&sql).await.map_err(|error| {
        failure(address, &format!("preparing the upsert into {}", table.relation), &error)
    })?;
    Ok(Writer { client, upsert })
}
