//! `batch_process`: the generic task kind's logic — filter, project, de-duplicate and aggregate the
//! records of a JSON-lines or CSV file.
//!
//! # The pipeline
//!
//! ```text
//! record ─► process_record ─────────────────────────────► ProcessState::add ──────────────────────┐
//!           object? ─► filter ─► select ─► rename          dedup_key ─► group_by/aggregates      │
//!           (pure: &self)                                  (stateful, checkpointed, bounded)      ▼
//!                                                          no grouping: write the row; grouping: rows at finish
//! ```
//!
//! [`BatchProcess::process_record`] is the pure per-record step: it rejects a record that is not a
//! JSON object ([`RecordIssue`], to the dead letters), returns `None` for a record the filter
//! drops, and otherwise the projected row. [`ProcessState::add`] then de-duplicates the row and,
//! when grouping, adds it to its group. Later stages see the row as projection left it, so
//! `dedup_key`, `group_by` and aggregate fields name fields of the *output* (checked with the
//! params: a field `select` drops or `rename` moves is a `CONFIGURATION_ERROR`).
//!
//! Without `group_by` or `aggregates`, each row that survives is written to the output. With them,
//! rows are aggregated, and [`ProcessState::finish`] gives one row per group.
//!
//! [`BatchProcessKind`] is the task kind on the records [`ChunkRunner`](crate::records::ChunkRunner),
//! which calls the pure per-record step concurrently and then the in-order step (de-duplication,
//! grouping) on each output in input order: without grouping the output holds the rows kept; with
//! it, one row per group, written at the end of the input. See its docs.
//!
//! A runner that decides in input order before it writes drives the core like this:
//!
//! ```
//! use batch_tasks::batch_process::{Admitted, BatchProcess};
//! use serde_json::json;
//!
//! let process = BatchProcess::from_params(&json!({
//!     "input": "orders.jsonl",
//!     "output": "out.jsonl",
//!     "filter": "amount >= 100 && region == \"华东\"",
//!     "select": ["id", "amount"],
//!     "dedup_key": "id",
//! }))?;
//! let mut state = process.state();
//! let (mut written, mut dead_letters, mut skipped) = (Vec::new(), Vec::new(), 0);
//! for record in [
//!     json!({ "id": "A", "amount": "150.00", "region": "华东", "note": "dropped by select" }),
//!     json!({ "id": "B", "amount": 20, "region": "华东" }),
//!     json!({ "id": "A", "amount": "999", "region": "华东" }),
//!     json!([1, 2]),
//! ] {
//!     match process.process_record(record) {
//!         Err(issue) => dead_letters.push(issue),
//!         Ok(None) => skipped += 1,
//!         Ok(Some(row)) => match state.add(row)? {
//!             Err(issue) => dead_letters.push(issue),
//!             Ok(Admitted::Write(row)) => written.push(row),
//!             Ok(Admitted::Duplicate | Admitted::Grouped) => skipped += 1,
//!         },
//!     }
//! }
//! assert_eq!(written, [json!({ "id": "A", "amount": "150.00" })]);
//! assert_eq!((dead_letters.len(), skipped), (1, 2));
//! // At each chunk boundary the runner stores `state.checkpoint()`; on resume,
//! // `process.restore_state(&checkpoint.state)` picks up from it.
//! let checkpoint = state.checkpoint();
//! assert_eq!(process.restore_state(&checkpoint)?.checkpoint(), checkpoint);
//! # Ok::<(), batch_tasks::batch_process::BatchProcessError>(())
//! ```
//!
//! # Params
//!
//! | param | value | default |
//! |---|---|---|
//! | `input` | the file to read, or a PostgreSQL database `postgres://user@host:port/db` (below) | required |
//! | `input_table` | with a `postgres://` input: the table read (`table` or `schema.table`, names as stored) | required unless `input_query` |
//! | `input_query` | with a `postgres://` input, instead of `input_table`: a `SELECT` whose rows are read | none |
//! | `input_key` | with a `postgres://` input: the unique, not-null column the rows are read in order of | the table's primary key (required with `input_query`) |
//! | `output` | the JSON-lines file kept rows go to (must differ from `input`), or a `postgres://` database | required |
//! | `output_table` | with a `postgres://` output: the table rows are upserted into | required with a `postgres://` output |
//! | `output_key` | with a `postgres://` output: the columns (comma-separated) of the unique key rows are upserted by | the table's primary key |
//! | `output_mode` | with a `postgres://` output: `auto`, `transactional` or `upsert` (below) | `auto` |
//! | `dead_letter` (alias `dead_letters`) | the JSON-lines file rejected records go to | `output` with extension `.dead_letters.jsonl`; required when the output is a table |
//! | `format` | the input's format: `json_lines` or `csv` | by `input`'s extension: `.csv`; `.jsonl`, `.ndjson`, `.json` |
//! | `filter` | an expression (below); empty means none | keep every record |
//! | `select` | a field path or a list of them | keep whole records |
//! | `rename` | `["from=to", ...]` or `{"from": "to", ...}` | none |
//! | `dedup_key` | a field path or a list of them | no de-duplication |
//! | `dedup_max_keys` | 1 to 100 000 000 | 1 000 000 |
//! | `group_by` | a field path or a list of them | no grouping (one group if `aggregates` is set) |
//! | `aggregates` | a list of `[alias=]count`, `[alias=]count:f`, `sum:f`, `min:f`, `max:f`, `avg:f` | `["count"]` with `group_by` |
//! | `max_groups` | 1 to 10 000 000 | 100 000 |
//! | `input_range` | `{"start": bytes, "line": n, "end": bytes}`: only that part of `input` | the whole file |
//!
//! `input_range` is set by the kind itself on the partitions of a partitioned task (config
//! `partitions` > 1; see [`BatchProcessKind`]'s docs); it is not offered to users.
//!
//! # PostgreSQL tables
//!
//! With batch-tasks' feature `postgres` (the `batch` command has it), `input` and `output` may name
//! a PostgreSQL database (`postgres://user[:password]@host[:port]/db`; without a password in the URL
//! the worker's `PGPASSWORD` is used, so none needs to be stored in the task):
//!
//! - **Input**: `input_table` (or `input_query` with `input_key`) is read in key order, 1,000 rows a
//!   page (keyset pagination; `records::postgres::PgTableInput`); each row
//!   is a record, a JSON object with `numeric` columns as strings of their exact digits (which the
//!   filter and the aggregates read as exact numbers), timestamps as ISO 8601 strings, `json`/`jsonb`
//!   as JSON. A checkpoint holds the last key read, and a resume reads on after it. `format` does not
//!   apply.
//! - **Output**: the kept rows (and group rows) go into `output_table`, a chunk a `COPY`
//!   (`records::postgres::PgTableOutput`; a row's fields fill the columns of the same names), by
//!   the path `output_mode` chooses:
//!   - `auto` (default): when the task's store is a PostgreSQL store in the table's own database
//!     (same cluster `system_identifier` and database name, as the servers report them), inserted
//!     in the transaction that commits the chunk's checkpoint: the table holds exactly the rows of
//!     the committed checkpoints at every instant (after a kill -9, before the resume, nothing
//!     beyond the last one), and a stale worker's rows are refused with its checkpoint. The rows
//!     are written by the store's connection, so the store's user needs `INSERT` on the table; a
//!     failing chunk (a row that does not fit, a key the table already held) fails the task with a
//!     `STORAGE_ERROR` naming the table, the row's line in the chunk and the cause, and nothing of
//!     that chunk or its checkpoint is committed. Otherwise as `upsert`.
//!   - `transactional`: only the first path; a store elsewhere fails the task
//!     (`CONFIGURATION_ERROR`) before a row is written.
//!   - `upsert`: upserted by `output_key` (default: the table's primary key) through the output's
//!     own connection (its URL's user), committed before the chunk's checkpoint; a resume after a
//!     crash writes the same rows with the same keys again, so each is in the table exactly once
//!     (between the crash and the resume the table may hold the rows of the chunk after the last
//!     checkpoint); a row whose key the table held before is replaced.
//!
//!   Dead letters still go to a file, so `dead_letter` must be given; the dedup key log is kept
//!   beside it (`<dead_letter>.keys`).
//! - A task over a table runs as one partition (`partitions` > 1 is refused).
//! - A bad address, a missing table name, a query without a key: `CONFIGURATION_ERROR` at creation.
//!   What only the server can tell (unreachable, login refused, no such table or column, a key that
//!   is not unique): `STORAGE_ERROR` when the task runs. Messages never show the password.
//!
//! A bad param is a `CONFIGURATION_ERROR` naming it (`select: `a.b` is inside `a`, which is also
//! selected`); a bad filter points at the token (`filter: expected a value after '>=', found '&&'
//! at column 11`, with the byte offset and a caret line in the error's details).
//!
//! # Records and fields
//!
//! A JSON-lines record is any JSON value on a line; only objects can be processed. A CSV row is an
//! object of strings keyed by the header (see [`record_from_csv`]); an empty cell is `""`.
//!
//! A field path is names joined by dots: `customer.address.city`; a digit segment indexes an
//! array: `items.0.sku`. A flat key spelled like the whole path (a CSV column `customer.city`) is
//! found too. See [`FieldPath`]. `select` writes nested objects (`{"customer": {"city": ...}}`),
//! and a selected field the record lacks as `null`; a CSV output flattens rows back to dotted
//! columns ([`csv_cells`]). `rename` moves fields after `select`, all at once.
//!
//! # Filter expressions
//!
//! ```text
//! filter     = or EOF ;
//! or         = and { "||" and } ;
//! and        = comparison { "&&" comparison } ;
//! comparison = unary [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" ) unary
//!                    | "in" list ] ;                        (* no chaining: a < b < c is an error *)
//! unary      = "!" unary | primary ;
//! primary    = path | literal | "(" or ")" ;
//! list       = "[" [ literal { "," literal } [ "," ] ] "]" ;
//! literal    = string | number | "true" | "false" | "null" ;
//! path       = name { "." ( name | digits | quoted ) } | quoted { "." ( name | digits | quoted ) } ;
//! name       = ( letter | "_" ) { letter | digit | "_" } ;  (* any script: 地区 is a name; not a keyword *)
//! quoted     = "`" { any character but "`" } "`" ;          (* `Order ID` *)
//! number     = [ "-" ] digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ] ;
//! string     = '"' { char | escape } '"' | "'" { char | escape } "'" ;
//! escape     = "\" ( '"' | "'" | "\" | "/" | "n" | "t" | "r" | "b" | "f" | "u" hex hex hex hex ) ;
//! ```
//!
//! Precedence, tightest first: `!`, then comparisons (`==` … `>=`, `in`, `contains`), then `&&`,
//! then `||`. So `!` applies to the operand right after it: `!amount > 5` is `(!amount) > 5`,
//! which is always false; write `!(amount > 5)`. Keywords (`true`, `false`, `null`, `in`,
//! `contains`) are lowercase and reserved; a field with such a name is written `` `in` ``.
//! Parentheses and `!` nest at most 64 deep. A parse error never panics.
//!
//! # Comparisons and coercion
//!
//! A missing field is `null`. A *number* is a JSON number or number literal; a string *looks like
//! a number* when it matches `[+-]digits[.digits][(e|E)[+-]digits]` after trimming ASCII
//! whitespace (so `"1,000"`, `"5."`, `""` and `"NaN"` do not). Numbers compare exactly as decimals
//! when they fit 28 digits after the point and ±7.9 × 10²⁸, and as `f64` otherwise.
//!
//! * `==` / `!=` (`!=` is exactly `!(a == b)`):
//!   - a number and a number, or a number and a string that looks like one: by numeric value
//!     (`amount == 100` holds for `100`, `100.0`, `"100.00"`);
//!   - two strings: exactly, character for character (`"100" == "100.0"` is false: with no
//!     number on either side nothing is converted);
//!   - a boolean and a boolean, or a boolean and the string `"true"`/`"false"` (a CSV cell);
//!   - `null` equals only `null` (so `x == null` holds for a missing field);
//!   - arrays and objects element by element with these rules; any other pair is unequal.
//! * `<` `<=` `>` `>=`: a number against a number or a numeric-looking string, by value; two
//!   strings by Unicode code points (`"2024-03-01" < "2024-10-01"`, but `"9" > "10"`); anything
//!   else — `null`/missing, booleans, arrays, a word against a number — makes every ordering
//!   false. So `amount > 5` is false when `amount` is missing or `"n/a"`, and so is `amount <= 5`.
//! * `x in [a, b]` is `x == a || x == b`; `in []` is false.
//! * `s contains t`: for a string `s`, whether the string `t` is a substring; for an array `s`,
//!   whether an element `== t`; false otherwise.
//! * `&&`, `||` and `!` take the *truth* of their operands: `true` and the string `"true"` are
//!   true, everything else (including `null`, `1`, `"yes"`) is false. A filter keeps a record when
//!   the whole expression is true, so a bare field works as a flag: `active && !deleted`.
//!
//! # De-duplication and aggregates
//!
//! De-duplication keeps the first row of each key, in a bounded set of 128-bit key hashes; a row
//! whose key has no value goes to the dead letters. Grouping computes exact decimal aggregates: a
//! row with a non-numeric aggregated value goes to the dead letters with `VALIDATION_ERROR` naming
//! the field; missing, `null` and blank values are skipped as SQL skips `NULL`.

mod aggregate;
mod config;
mod dedup;
mod error;
mod expr;
mod generator;
mod key;
mod kind;
mod number;
mod params;
mod path;
mod project;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use aggregate::AVG_SCALE;
pub(crate) use aggregate::{GroupBy, GroupInput, GroupState};
pub use config::{
    AggregateFunction, AggregateSpec, BatchProcessConfig, DedupConfig, Format, GroupConfig, Rename,
};
pub(crate) use dedup::{Dedup, DedupState};
pub use error::{BatchProcessError, FilterError, FilterErrorKind, RecordIssue};
pub use expr::FilterExpr;
pub use generator::{
    CATEGORIES, CSV_COLUMNS, Generated, Generator, GeneratorConfig, REGIONS, generate, write_csv,
    write_json_lines,
};
pub use kind::BatchProcessKind;
pub use path::FieldPath;
pub use project::{csv_cells, leaf_paths, record_from_csv};

use crate::batch_process::project::Projection;
use batch_model::json_kind;

/// How many group rows [`ProcessState::finish`] puts in the summary (all of them go to the output).
pub const SUMMARY_ROWS: usize = 100;

/// A batch process task's checked params, ready to process records. Immutable and cheap to share
/// between workers; the state that grows with the input is in [`ProcessState`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchProcess {
    config: BatchProcessConfig,
    projection: Projection,
}

impl BatchProcess {
    /// Reads and checks a task's params (see the [module docs](self)): what the kind's `validate`
    /// runs when the task is created.
    pub fn from_params(params: &Value) -> Result<BatchProcess, BatchProcessError> {
        BatchProcessConfig::from_params(params).map(BatchProcess::new)
    }

    /// Ready to process records as `config` says.
    pub fn new(config: BatchProcessConfig) -> BatchProcess {
        let projection = Projection { select: config.select.clone(), rename: config.rename.clone() };
        BatchProcess { config, projection }
    }

    /// The settings.
    pub fn config(&self) -> &BatchProcessConfig {
        &self.config
    }

    /// Whether the per-record step can change a record or drop it (a filter, `select` or
    /// `rename`); without them a record that is an object comes out as it went in.
    pub(crate) fn transforms(&self) -> bool {
        self.config.filter.is_some() || self.projection != Projection::default()
    }

    /// The per-record step, pure: `Err` for a record that is not a JSON object (or whose rename
    /// cannot be written), `Ok(None)` when the filter drops it, else the projected row.
    ///
    /// ```
    /// use batch_tasks::batch_process::{BatchProcess, RecordIssue};
    /// use serde_json::json;
    ///
    /// let process = BatchProcess::from_params(&json!({
    ///     "input": "in.csv",
    ///     "output": "out.jsonl",
    ///     "filter": "tags contains 'sale' && customer.address.city in ['上海', '杭州']",
    ///     "select": ["id", "customer.address.city"],
    ///     "rename": ["customer.address.city=city"],
    /// }))
    /// .unwrap();
    /// let record = json!({ "id": 7, "tags": ["sale"], "customer": { "address": { "city": "上海" } } });
    /// assert_eq!(process.process_record(record), Ok(Some(json!({ "id": 7, "city": "上海" }))));
    /// assert_eq!(process.process_record(json!({ "id": 8, "tags": [] })), Ok(None));
    /// assert_eq!(process.process_record(json!("text")), Err(RecordIssue::NotAnObject { found: "a string" }));
    /// ```
    pub fn process_record(&self, record: Value) -> Result<Option<Value>, RecordIssue> {
        if let Some(filter) = &self.config.filter
            && record.is_object()
            && !filter.matches(&record)
        {
            return Ok(None);
        }
        let Value::Object(map) = record else {
            return Err(RecordIssue::NotAnObject { found: json_kind(&record) });
        };
        self.projection.apply(map).map(|row| Some(Value::Object(row)))
    }

    /// The output's CSV columns when the params fix them: the group fields and aggregate names
    /// when grouping, the selected (renamed) fields with `select`; `None` when they depend on the
    /// records (take [`leaf_paths`] of the first row).
    ///
    /// ```
    /// use batch_tasks::batch_process::BatchProcess;
    /// use serde_json::json;
    ///
    /// let process = BatchProcess::from_params(&json!({
    ///     "input": "in.csv", "output": "out.csv", "group_by": ["region"], "aggregates": ["count", "sum:amount"],
    /// }))
    /// .unwrap();
    /// let columns: Vec<String> = process.output_columns().unwrap().iter().map(ToString::to_string).collect();
    /// assert_eq!(columns, ["region", "count", "sum_amount"]);
    /// ```
    pub fn output_columns(&self) -> Option<Vec<FieldPath>> {
        if let Some(grouping) = &self.config.grouping {
            let mut columns = grouping.group_by.clone();
            columns.extend(
                grouping.aggregates.iter().map(|spec| FieldPath::from_segments(vec![spec.name.clone()])),
            );
            return Some(columns);
        }
        self.projection.columns()
    }

    /// A fresh state: nothing de-duplicated or grouped yet.
    pub fn state(&self) -> ProcessState {
        ProcessState {
            dedup: self.config.dedup.clone().map(Dedup::new),
            group_by: self.config.grouping.clone().map(GroupBy::new),
        }
    }

    /// The state a checkpoint stored ([`ProcessState::checkpoint`]); `null` gives a fresh state.
    /// Fails with `STORAGE_ERROR` when the stored state cannot be read or does not fit the params.
    pub fn restore_state(&self, checkpoint: &Value) -> Result<ProcessState, BatchProcessError> {
        if checkpoint.is_null() {
            return Ok(self.state());
        }
        let stored: StoredState = serde_json::from_value(checkpoint.clone())
            .map_err(|error| BatchProcessError::InvalidState { reason: error.to_string() })?;
        let dedup = match (&self.config.dedup, stored.dedup) {
            (Some(config), Some(state)) => Some(Dedup::restore(config.clone(), &state)?),
            (None, None) => None,
            _ => return Err(mismatch("dedup_key")),
        };
        let group_by = match (&self.config.grouping, stored.group_by) {
            (Some(config), Some(state)) => Some(GroupBy::restore(config.clone(), &state)?),
            (None, None) => None,
            _ => return Err(mismatch("group_by")),
        };
        Ok(ProcessState { dedup, group_by })
    }
}

fn mismatch(param: &str) -> BatchProcessError {
    BatchProcessError::InvalidState { reason: format!("the checkpoint and the params disagree on {param}") }
}

/// The stateful stages of a run: de-duplication and grouping, as configured. Checkpointed with
/// [`checkpoint`](ProcessState::checkpoint) and restored with [`BatchProcess::restore_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessState {
    dedup: Option<Dedup>,
    group_by: Option<GroupBy>,
}

/// What [`ProcessState::add`] did with a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// Write this row to the output.
    Write(Value),
    /// A later row of a key already seen: dropped (count it as skipped).
    Duplicate,
    /// Added to its group; the group rows come from [`ProcessState::finish`].
    Grouped,
}

/// What a run produced besides the rows it wrote as it went.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The group rows, sorted by key, to write to the output (empty without grouping).
    pub rows: Vec<Value>,
    /// The task's summary: `{"dedup": {"distinct_keys", "duplicates"}, "groups": n, "rows": [...]}`
    /// with the parts that apply; `rows` holds at most [`SUMMARY_ROWS`] group rows, and
    /// `rows_truncated` says whether there were more.
    pub summary: Value,
}

/// The checkpoint form of a [`ProcessState`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dedup: Option<DedupState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_by: Option<GroupState>,
}

impl ProcessState {
    /// Takes a row from [`BatchProcess::process_record`] through de-duplication and grouping.
    ///
    /// `Ok(Err(issue))` sends the row to the dead letters (its dedup key has no value, or an
    /// aggregated field is not a number); such a row is neither remembered as a key nor counted in
    /// a group. `Err(error)` fails the task (a bound passed, a sum overflowing); the state is then
    /// as before the call.
    pub fn add(&mut self, row: Value) -> Result<Result<Admitted, RecordIssue>, BatchProcessError> {
        let key = match &self.dedup {
            Some(dedup) => match dedup.key(&row) {
                Ok(key) => Some(key),
                Err(issue) => return Ok(Err(issue)),
            },
            None => None,
        };
        let input = match &self.group_by {
            Some(group_by) => match group_by.input(&row) {
                Ok(input) => Some(input),
                Err(issue) => return Ok(Err(issue)),
            },
            None => None,
        };
        if let (Some(dedup), Some(key)) = (&mut self.dedup, key)
            && !dedup.insert(key)?
        {
            return Ok(Ok(Admitted::Duplicate));
        }
        let (Some(group_by), Some(input)) = (&mut self.group_by, input) else {
            return Ok(Ok(Admitted::Write(row)));
        };
        if let Err(error) = group_by.apply(input) {
            // Leave the state as it was: the key was not kept after all.
            if let (Some(dedup), Some(key)) = (&mut self.dedup, key) {
                dedup.forget(key);
            }
            return Err(error);
        }
        Ok(Ok(Admitted::Grouped))
    }

    /// The de-duplication stage, if configured.
    #[cfg(test)]
    pub(crate) fn dedup(&self) -> Option<&Dedup> {
        self.dedup.as_ref()
    }

    /// The state as JSON for [`Checkpoint::state`](batch_model::Checkpoint::state): `{"dedup":
    /// ..., "group_by": ...}` with the stages configured.
    pub fn checkpoint(&self) -> Value {
        let stored = StoredState {
            dedup: self.dedup.as_ref().map(Dedup::state),
            group_by: self.group_by.as_ref().map(GroupBy::state),
        };
        serde_json::to_value(stored).unwrap_or(Value::Null)
    }

    /// The group rows to write and the task's summary.
    pub fn finish(&self) -> Finished {
        let mut summary = serde_json::Map::new();
        if let Some(dedup) = &self.dedup {
            summary.insert("dedup".to_owned(), json!(dedup.finish()));
        }
        let rows = self.group_by.as_ref().map(GroupBy::finish).unwrap_or_default();
        if self.group_by.is_some() {
            summary.insert("groups".to_owned(), json!(rows.len()));
            summary
                .insert("rows".to_owned(), Value::Array(rows.iter().take(SUMMARY_ROWS).cloned().collect()));
            summary.insert("rows_truncated".to_owned(), json!(rows.len() > SUMMARY_ROWS));
        }
        Finished { rows, summary: Value::Object(summary) }
    }
}
