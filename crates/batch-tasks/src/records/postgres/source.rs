//! A PostgreSQL table (or query) as the chunk runner's [`RecordSource`]: rows read in key order a
//! page at a time (keyset pagination), each row a JSON object, the last key read as the position.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use futures::stream::BoxStream;
use pump_core::source::{BoxSource, FilePosition, Record, SourceStage};
use pump_core::{PipelineError, Source, SourceExt as _, StageContext};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_postgres::types::Type;

use super::config::{PgTable, Relation, quote_ident};
use super::connect::{Failure, connect, failure};
use crate::records::{RecordSource, SourceElement, SourceFailure};

/// Where a read of a table resumes: the key of the last row done (as text, cast back to the key's
/// type by the server), and how many rows are done (`{"key": "1042", "rows": 1000}`). A
/// checkpoint's source position when the input is a table.
///
/// ```
/// use batch_tasks::records::postgres::TablePosition;
///
/// let position = TablePosition { key: Some("1042".to_owned()), rows: 1000 };
/// assert_eq!(position.to_string(), "after key 1042 (1000 rows done)");
/// assert_eq!(TablePosition::default().to_string(), "the first row");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePosition {
    /// The last key read, as text; `None`: the start.
    pub key: Option<String>,
    /// Rows done in all.
    pub rows: u64,
}

impl fmt::Display for TablePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "after key {key} ({} rows done)", self.rows),
            None => f.write_str("the first row"),
        }
    }
}

/// The rows of a table or query, read in the order of its key, `page_rows` at a time.
///
/// Each row is a record whose text is the row as a JSON object (PostgreSQL's `row_to_json`, column
/// order kept): integers and floats as numbers, `numeric` as a string of its exact digits (so no
/// digit is lost on the way through a kind; `batch_process` reads such strings as exact numbers),
/// text, dates and timestamps (ISO 8601) as strings, `bool` as `true`/`false`, `json`/`jsonb` as
/// JSON, arrays as arrays, `NULL` as `null`, any other type as its text. A record's `line` is its
/// 1-based ordinal in the key order, its `offset` the 0-based one.
///
/// Pages are `SELECT … WHERE key > $last ORDER BY key LIMIT page_rows`, the next one asked for as
/// soon as a page arrives, so memory holds two pages whatever the table's size (the one being cut
/// into records and the one the server is reading), and a resume starts at the row after the
/// checkpoint's key. The key
/// must be unique and never null (for a table: its primary key, or a column with a unique index
/// and `NOT NULL`, which the source checks; for a query: the query's business, a null key fails the
/// run). Rows inserted behind the key while a task runs are not read; a run over a table that does
/// not change reads each row exactly once, across any number of resumes.
///
/// A failure (the server cannot be reached, the login is refused, no such table or column, a key
/// that is not unique) ends the run with a `STORAGE_ERROR` [`SourceFailure`] naming the server
/// without its password.
#[derive(Debug, Clone)]
pub struct PgTableInput {
    table: Arc<PgTable>,
    page_rows: u32,
    /// The key column, once the first open found it (the primary key when not given): read by
    /// `position_after`.
    key: Arc<OnceLock<String>>,
    /// The table's row count as the server's statistics estimate it (`pg_class.reltuples`), once
    /// the first open read it; for the progress total.
    estimate: Arc<OnceLock<u64>>,
}

impl PgTableInput {
    /// Rows per page when not set.
    pub const PAGE_ROWS: u32 = 1000;

    /// The rows of `table`, pages of [`PAGE_ROWS`](PgTableInput::PAGE_ROWS).
    pub fn new(table: PgTable) -> PgTableInput {
        let key = Arc::new(OnceLock::new());
        if let Some([column]) = table.key.as_deref() {
            let _set = key.set(column.clone());
        }
        PgTableInput {
            table: Arc::new(table),
            page_rows: PgTableInput::PAGE_ROWS,
            key,
            estimate: Arc::new(OnceLock::new()),
        }
    }

    /// The same, `page_rows` rows a page (at least 1).
    #[must_use]
    pub fn page_rows(self, page_rows: u32) -> PgTableInput {
        PgTableInput { page_rows: page_rows.max(1), ..self }
    }
}

impl RecordSource for PgTableInput {
    type Position = TablePosition;
    type Source = BoxSource<SourceElement>;

    fn open(&self, position: Option<&TablePosition>) -> BoxSource<SourceElement> {
        Pages {
            table: Arc::clone(&self.table),
            page_rows: self.page_rows,
            key: Arc::clone(&self.key),
            estimate: Arc::clone(&self.estimate),
            position: position.cloned().unwrap_or_default(),
        }
        .flat_map(Page::into_records as fn(Page) -> Vec<SourceElement>)
        .boxed()
    }

    fn position_after(&self, element: &SourceElement) -> TablePosition {
        match element {
            Ok(record) => TablePosition {
                key: self.key.get().and_then(|column| key_text(&record.value, column)),
                rows: record.end.offset,
            },
            // This source yields no bad records: every row is a JSON object.
            Err(error) => TablePosition { key: None, rows: error.end.offset },
        }
    }

    fn describe(&self) -> String {
        format!("the input {}", self.table.describe())
    }

    /// A table's row count as the server's statistics estimate it (never below what is done);
    /// `None` for a query, or a table never analysed.
    fn estimated_total(&self, done: u64, _position: &TablePosition) -> Option<u64> {
        self.estimate.get().map(|estimate| (*estimate).max(done))
    }
}

/// The text of column `column` in a row's JSON: a string's content, any other value's JSON text.
fn key_text(row: &str, column: &str) -> Option<String> {
    let fields: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(row).ok()?;
    let raw = fields.get(column)?.get();
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).ok()
    } else if raw == "null" {
        None
    } else {
        Some(raw.to_owned())
    }
}

/// One page of rows, on its way to be cut into records.
struct Page {
    rows: Vec<String>,
    /// The ordinal of its first row.
    first: u64,
}

impl Page {
    fn into_records(self) -> Vec<SourceElement> {
        let Page { rows, first } = self;
        (first..)
            .zip(rows)
            .map(|(ordinal, value)| {
                Ok(Record {
                    value,
                    line: ordinal + 1,
                    offset: ordinal,
                    end: FilePosition { offset: ordinal + 1, line: ordinal + 2 },
                })
            })
            .collect()
    }
}

/// The pages from a position on, one query per pull; the run fails with the first failure.
struct Pages {
    table: Arc<PgTable>,
    page_rows: u32,
    key: Arc<OnceLock<String>>,
    estimate: Arc<OnceLock<u64>>,
    position: TablePosition,
}

/// What a run asks the server, prepared once it connected.
struct Reader {
    client: tokio_postgres::Client,
    first: tokio_postgres::Statement,
    next: tokio_postgres::Statement,
    /// Each column's `"name":` and how its text goes into the row's JSON, in the pages' order (the
    /// key's text follows them).
    columns: Vec<(String, ColumnJson)>,
}

/// How a column's text (as the page query selects it) goes into the row's JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnJson {
    /// Its text is JSON already: integers, `bool`, `json`/`jsonb`, `to_json` of any other type.
    Raw,
    /// A JSON string of its text: text types, `numeric` (its exact digits).
    String,
    /// A float: a JSON number, or a string for `NaN` and the infinities (as `row_to_json`).
    Float,
}

/// How the page query selects `column` of type `column_type` (its text), and how that text goes
/// into the row's JSON: the cheap casts for the common types, the server's own `to_json` for the
/// others (dates and times in ISO 8601, arrays, composites), exactly as `row_to_json` would show
/// each.
fn column_select(column: &str, column_type: &Type) -> (String, ColumnJson) {
    let quoted = quote_ident(column);
    match *column_type {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::BOOL | Type::JSON | Type::JSONB => {
            (format!("q.{quoted}::text"), ColumnJson::Raw)
        }
        Type::FLOAT4 | Type::FLOAT8 => (format!("q.{quoted}::text"), ColumnJson::Float),
        Type::NUMERIC => (format!("q.{quoted}::text"), ColumnJson::String),
        // Read as they are (`::text` would cut a `character(n)`'s padding).
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => (format!("q.{quoted}"), ColumnJson::String),
        _ => (format!("to_json(q.{quoted})::text"), ColumnJson::Raw),
    }
}

/// A row of the page query as its JSON object (`{"id":1,"name":"a"}`, the columns in order).
/// Strings are escaped by serde_json, as PostgreSQL's `to_json` escapes them.
fn row_json(row: &tokio_postgres::Row, columns: &[(String, ColumnJson)]) -> Result<String, String> {
    let mut json: Vec<u8> = Vec::with_capacity(64 * columns.len());
    json.push(b'{');
    for (index, (name, kind)) in columns.iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        json.extend_from_slice(name.as_bytes());
        let value: Option<&str> = row.try_get(index).map_err(|error| error.to_string())?;
        match (value, kind) {
            (None, _) => json.extend_from_slice(b"null"),
            (Some(text), ColumnJson::Raw) => json.extend_from_slice(text.as_bytes()),
            (Some(text), ColumnJson::Float) if text.parse::<f64>().is_ok_and(f64::is_finite) => {
                json.extend_from_slice(text.as_bytes());
            }
            (Some(text), ColumnJson::String | ColumnJson::Float) => {
                serde_json::to_writer(&mut json, text).map_err(|error| error.to_string())?;
            }
        }
    }
    json.push(b'}');
    String::from_utf8(json).map_err(|error| error.to_string())
}

/// The next page: the position to read it from, or its read in flight (started as soon as the
/// previous page arrived, so that the server works on it while the runner processes that one).
enum Next {
    Read(TablePosition),
    Fetching(Prefetch),
    Done,
}

/// A page read running on its own task; aborted when dropped (an aborted or finished run).
struct Prefetch(tokio::task::JoinHandle<Result<Fetched, Failure>>);

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A page and the position after it (`None` after the last).
type Fetched = (Page, Option<TablePosition>);

impl Source for Pages {
    type Item = Page;
    type Stream = SourceStage<BoxStream<'static, Page>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("postgres_table");
        let failing = stage.clone();
        let Pages { table, page_rows, key, estimate, position } = self;
        let state = (None::<Arc<Reader>>, Next::Read(position));
        let pages = futures::stream::unfold(state, move |(reader, next)| {
            let (table, key, estimate, failing) =
                (Arc::clone(&table), Arc::clone(&key), Arc::clone(&estimate), failing.clone());
            async move {
                let fail =
                    |error: Failure| failing.fail(PipelineError::io(failing.name(), source_failure(error)));
                let reader = match reader {
                    Some(reader) => reader,
                    None => match prepare(&table, &key, &estimate).await {
                        Ok(reader) => Arc::new(reader),
                        Err(error) => {
                            fail(error);
                            return None;
                        }
                    },
                };
                let fetched = match next {
                    Next::Done => return None,
                    Next::Read(position) => fetch(&reader, &table, &position, page_rows).await,
                    Next::Fetching(mut prefetch) => match (&mut prefetch.0).await {
                        Ok(fetched) => fetched,
                        Err(error) => Err(Failure::storage(format!(
                            "reading {} failed: the read task ended ({error})",
                            table.describe()
                        ))),
                    },
                };
                match fetched {
                    Ok((page, _)) if page.rows.is_empty() => None,
                    Ok((page, None)) => Some((page, (Some(reader), Next::Done))),
                    Ok((page, Some(position))) => {
                        let prefetch = {
                            let (reader, table) = (Arc::clone(&reader), Arc::clone(&table));
                            Prefetch(tokio::spawn(async move {
                                fetch(&reader, &table, &position, page_rows).await
                            }))
                        };
                        Some((page, (Some(reader), Next::Fetching(prefetch))))
                    }
                    Err(error) => {
                        fail(error);
                        None
                    }
                }
            }
        })
        .boxed();
        SourceStage::new(pages, &stage, ctx)
    }
}

fn source_failure(failure: Failure) -> SourceFailure {
    SourceFailure::new(failure.code, failure.message)
}

/// Reads one page after `position`: the page, and the position after it (`None` after the last).
async fn fetch(
    reader: &Reader,
    table: &PgTable,
    position: &TablePosition,
    page_rows: u32,
) -> Result<Fetched, Failure> {
    let limit = i64::from(page_rows);
    let rows = match &position.key {
        None => reader.client.query(&reader.first, &[&limit]).await,
        Some(key) => reader.client.query(&reader.next, &[&limit, key]).await,
    }
    .map_err(|error| failure(&table.address, &format!("reading {}", table.relation), &error))?;
    let mut texts = Vec::with_capacity(rows.len());
    let mut last_key = None;
    for (index, row) in rows.iter().enumerate() {
        let text = row_json(row, &reader.columns).map_err(|error| {
            Failure::storage(format!("reading a row of {} failed: {error}", table.describe()))
        })?;
        let key: Option<String> = row
            .try_get(reader.columns.len())
            .map_err(|error| failure(&table.address, "reading a row's key", &error))?;
        let Some(key) = key else {
            return Err(Failure::storage(format!(
                "row {} of {} has a null key: the key must never be null",
                position.rows + index as u64 + 1,
                table.describe()
            )));
        };
        texts.push(text);
        last_key = Some(key);
    }
    let read = texts.len() as u64;
    let next =
        (read == u64::from(page_rows)).then(|| TablePosition { key: last_key, rows: position.rows + read });
    Ok((Page { rows: texts, first: position.rows }, next))
}

/// Connects, finds the columns and the key, checks the key, and prepares the two page queries.
async fn prepare(
    table: &PgTable,
    key_cell: &OnceLock<String>,
    estimate: &OnceLock<u64>,
) -> Result<Reader, Failure> {
    let address = &table.address;
    let client = connect(address).await?;
    let relation = table.relation.sql();
    let described = client
        .prepare(&format!("SELECT * FROM {relation} AS q LIMIT 0"))
        .await
        .map_err(|error| failure(address, &format!("reading the columns of {}", table.relation), &error))?;
    let columns: Vec<(String, Type)> =
        described.columns().iter().map(|column| (column.name().to_owned(), column.type_().clone())).collect();
    let key = match table.key.as_deref() {
        Some([column]) => column.clone(),
        Some(_) => return Err(Failure::storage("input_key: name one column".to_owned())),
        None => primary_key(&client, table).await?,
    };
    let Some((_, key_type)) = columns.iter().find(|(name, _)| *name == key) else {
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        return Err(Failure::storage(format!(
            "{} has no column {key:?} for the key (its columns: {})",
            table.describe(),
            names.join(", ")
        )));
    };
    if let Relation::Table(_) = table.relation {
        check_unique(&client, table, &key).await?;
        // Statistics only (-1 or 0 before the first ANALYZE): no total rather than a wrong one.
        let rows: i64 = client
            .query_one(
                "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::text::regclass",
                &[&table.relation.sql()],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|error| failure(address, "reading the table's statistics", &error))?;
        if let Ok(rows) = u64::try_from(rows)
            && rows > 0
        {
            let _set = estimate.set(rows);
        }
    }
    // The type's own name, not `format_type`'s: `character` without its length would be
    // `character(1)` in a cast and cut the key to one letter; `pg_catalog.bpchar` keeps it whole.
    let key_type_name: String = client
        .query_one(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname) FROM pg_type t \
             JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
            &[&key_type.oid()],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|error| failure(address, "reading the key's type", &error))?;
    // Every column as its text, turned into the row's JSON here (see `column_select`).
    let (select, kinds): (Vec<String>, Vec<ColumnJson>) =
        columns.iter().map(|(name, column_type)| column_select(name, column_type)).unzip();
    // Each column's `"name":`, escaped once.
    let names = columns.iter().map(|(name, _)| format!("{}:", serde_json::Value::from(name.as_str())));
    let json_columns: Vec<(String, ColumnJson)> = names.zip(kinds).collect();
    let key_sql = format!("q.{}", quote_ident(&key));
    let page = |condition: &str| {
        format!(
            "SELECT {}, {key_sql}::text FROM {relation} AS q {condition} ORDER BY {key_sql} LIMIT $1",
            select.join(", ")
        )
    };
    let first = client
        .prepare(&page(""))
        .await
        .map_err(|error| failure(address, &format!("preparing the read of {}", table.relation), &error))?;
    let next = client
        .prepare(&page(&format!("WHERE {key_sql} > $2::text::{key_type_name}")))
        .await
        .map_err(|error| failure(address, &format!("preparing the read of {}", table.relation), &error))?;
    let _set = key_cell.set(key);
    Ok(Reader { client, first, next, columns: json_columns })
}

/// The one column of a table's primary key.
async fn primary_key(client: &tokio_postgres::Client, table: &PgTable) -> Result<String, Failure> {
    let Relation::Table(_) = table.relation else {
        return Err(Failure::storage("input_key: a query input needs its key column named".to_owned()));
    };
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
            &[&table.relation.sql()],
        )
        .await
        .map_err(|error| {
            failure(&table.address, &format!("finding the primary key of {}", table.relation), &error)
        })?;
    match rows.as_slice() {
        [row] => row.try_get(0).map_err(|error| failure(&table.address, "reading the primary key", &error)),
        [] => Err(Failure::storage(format!(
            "{} has no primary key: set input_key to a unique, not-null column",
            table.describe()
        ))),
        _ => Err(Failure::storage(format!(
            "the primary key of {} has several columns: set input_key to a unique, not-null column",
            table.describe()
        ))),
    }
}

/// Refuses a key column without a unique index of its own or that may be null: keyset pages would
/// skip or repeat rows.
async fn check_unique(client: &tokio_postgres::Client, table: &PgTable, key: &str) -> Result<(), Failure> {
    let row = client
        .query_one(
            "SELECT a.attnotnull, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid \
             AND i.indisunique AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL) \
             FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped",
            &[&table.relation.sql(), &key],
        )
        .await
        .map_err(|error| failure(&table.address, &format!("checking the key of {}", table.relation), &error))?;
    let (not_null, unique): (bool, bool) = (
        row.try_get(0).map_err(|error| failure(&table.address, "checking the key", &error))?,
        row.try_get(1).map_err(|error| failure(&table.address, "checking the key", &error))?,
    );
    if !unique {
        return Err(Failure::storage(format!(
            "the key {key} of {} has no unique index of its own: reading in its order could skip or repeat \
             rows; use a unique column (or the primary key) as input_key",
            table.describe()
        )));
    }
    if !not_null {
        return Err(Failure::storage(format!(
            "the key {key} of {} may be null: declare it NOT NULL or use another input_key",
            table.describe()
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_from_the_rows_json_exactly() {
        let row =
            r#"{"id":9007199254740993,"name":"a\"b","amount":"12.50","at":"2024-01-01T10:00:00+00:00"}"#;
        assert_eq!(key_text(row, "id").as_deref(), Some("9007199254740993"));
        assert_eq!(key_text(row, "name").as_deref(), Some("a\"b"));
        assert_eq!(key_text(row, "amount").as_deref(), Some("12.50"));
        assert_eq!(key_text(row, "at").as_deref(), Some("2024-01-01T10:00:00+00:00"));
        assert_eq!(key_text(row, "missing"), None);
        assert_eq!(key_text(r#"{"id":null}"#, "id"), None);
    }

    #[test]
    fn positions_read_back_from_checkpoints() {
        let position = TablePosition { key: Some("7".to_owned()), rows: 7 };
        let json = serde_json::to_value(&position).unwrap();
        assert_eq!(json, serde_json::json!({ "key": "7", "rows": 7 }));
        assert_eq!(serde_json::from_value::<TablePosition>(json).unwrap(), position);
    }
}
