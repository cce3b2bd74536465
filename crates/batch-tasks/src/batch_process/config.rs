//! The batch process params: reading them from the task's JSON params, and checking them so that a
//! bad setting fails when the task is created, with a `CONFIGURATION_ERROR` naming the param.
//!
//! The params and their rules are listed in the [`batch_process`](crate::batch_process) module
//! docs. A param set to `null` counts as absent; an unknown param is an error (it is usually a
//! typo, and ignoring it would silently run a different task).

use std::path::{Path, PathBuf};

use batch_model::json_kind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::batch_process::error::BatchProcessError;
use crate::batch_process::expr::FilterExpr;
use crate::batch_process::path::FieldPath;
use crate::records::InputRange;
use crate::records::postgres::{OutputMode, PgAddress, PgTable, Relation, is_postgres_address, key_columns};

/// Every param the kind knows, in the order they are checked.
pub(crate) const PARAMS: [&str; 19] = [
    "input",
    "input_table",
    "input_query",
    "input_key",
    "output",
    "output_table",
    "output_key",
    "output_mode",
    "dead_letter",
    "dead_letters",
    "format",
    "filter",
    "select",
    "rename",
    "dedup_key",
    "dedup_max_keys",
    "group_by",
    "aggregates",
    "max_groups",
];

/// Params set by the kind itself on the partitions of a partitioned task (accepted, not offered to
/// users): `input_range`.
pub(crate) const PARTITION_PARAMS: [&str; 1] = ["input_range"];

/// A record file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON value per line.
    JsonLines,
    /// CSV with a header row; each row is a JSON object of strings, keyed by the headers.
    Csv,
}

impl Format {
    /// The format's name in params: `json_lines` or `csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::JsonLines => "json_lines",
            Format::Csv => "csv",
        }
    }

    /// The format a file's extension says (case-insensitive): `.csv` is CSV; `.jsonl`, `.ndjson` and
    /// `.json` are JSON lines; anything else says nothing.
    ///
    /// ```
    /// use batch_tasks::batch_process::Format;
    /// use std::path::Path;
    ///
    /// assert_eq!(Format::from_extension(Path::new("orders.CSV")), Some(Format::Csv));
    /// assert_eq!(Format::from_extension(Path::new("orders.ndjson")), Some(Format::JsonLines));
    /// assert_eq!(Format::from_extension(Path::new("orders.txt")), None);
    /// ```
    pub fn from_extension(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Format> {
        match name {
            "json_lines" => Some(Format::JsonLines),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The checked params of a batch process task. Built by [`BatchProcessConfig::from_params`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchProcessConfig {
    /// The file to read (the address, when the input is a table).
    pub input: PathBuf,
    /// The table (or query) to read, when `input` is a `postgres://` address.
    pub input_table: Option<PgTable>,
    /// The JSON-lines file the kept rows are written to (the address, when the output is a table).
    pub output: PathBuf,
    /// The table the kept rows go into, when `output` is a `postgres://` address.
    pub output_table: Option<PgTable>,
    /// How the rows go into `output_table`: with the checkpoints when the store is its database
    /// (the default, [`OutputMode::Auto`]), always so, or always through its own connection.
    pub output_mode: OutputMode,
    /// The JSON-lines file rejected records are written to.
    pub dead_letters: PathBuf,
    /// The input's format.
    pub format: Format,
    /// Records failing it are skipped; `None` keeps every record.
    pub filter: Option<FilterExpr>,
    /// The fields kept, in order; empty keeps the whole record.
    pub select: Vec<FieldPath>,
    /// Fields moved to new names, after `select`.
    pub rename: Vec<Rename>,
    /// De-duplication by key, after projection.
    pub dedup: Option<DedupConfig>,
    /// Group-by aggregation, after de-duplication.
    pub grouping: Option<GroupConfig>,
    /// Only the records of this part of `input` (a partition of a partitioned task: set by the
    /// kind's split).
    pub input_range: Option<InputRange>,
}

/// One rename: the field at `from` moves to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The field renamed.
    pub from: FieldPath,
    /// Its new path.
    pub to: FieldPath,
}

/// De-duplication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DedupConfig {
    /// The fields whose values together make a record's key.
    pub key: Vec<FieldPath>,
    /// The most distinct keys remembered; one more fails the task.
    pub max_keys: usize,
}

/// Group-by settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupConfig {
    /// The fields whose values together make a record's group; empty makes one group of all.
    pub group_by: Vec<FieldPath>,
    /// The aggregates computed per group, in output order.
    pub aggregates: Vec<AggregateSpec>,
    /// The most groups kept; one more fails the task.
    pub max_groups: usize,
}

/// One aggregate: `count`, `sum:amount`, `total=sum:amount`...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSpec {
    /// Its key in the group rows: the alias, or `count`, `count_<field>`, `<function>_<field>`
    /// (dots in the field become `_`).
    pub name: String,
    /// What it computes.
    pub function: AggregateFunction,
    /// The field it reads; `None` only for a plain `count`.
    pub field: Option<FieldPath>,
}

/// What an aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    /// Records in the group, or, with a field, records where the field has a value.
    Count,
    /// The exact sum of the field's values (`"0"` when there are none).
    Sum,
    /// The least value (`null` when there are none).
    Min,
    /// The greatest value (`null` when there are none).
    Max,
    /// The mean, the exact sum divided by the count of values (`null` when there are none).
    Avg,
}

impl AggregateFunction {
    /// The function's name in an aggregate spec.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Avg => "avg",
        }
    }
}

impl DedupConfig {
    /// `dedup_max_keys` when not set: a million keys (about 40 MB of memory, 32 MB of checkpoint
    /// state when full).
    pub const DEFAULT_MAX_KEYS: usize = 1_000_000;
    /// The largest `dedup_max_keys`.
    pub const MAX_KEYS_LIMIT: usize = 100_000_000;

    /// De-duplication on `key`, with the default bound.
    pub fn new(key: Vec<FieldPath>) -> DedupConfig {
        DedupConfig { key, max_keys: DedupConfig::DEFAULT_MAX_KEYS }
    }

    /// The same, with at most `max_keys` distinct keys.
    #[must_use]
    pub fn with_max_keys(self, max_keys: usize) -> DedupConfig {
        DedupConfig { max_keys, ..self }
    }
}

impl GroupConfig {
    /// `max_groups` when not set.
    pub const DEFAULT_MAX_GROUPS: usize = 100_000;
    /// The largest `max_groups`.
    pub const MAX_GROUPS_LIMIT: usize = 10_000_000;

    /// Grouping by `group_by` computing `aggregates`, with the default bound.
    pub fn new(group_by: Vec<FieldPath>, aggregates: Vec<AggregateSpec>) -> GroupConfig {
        GroupConfig { group_by, aggregates, max_groups: GroupConfig::DEFAULT_MAX_GROUPS }
    }

    /// The same, with at most `max_groups` groups.
    #[must_use]
    pub fn with_max_groups(self, max_groups: usize) -> GroupConfig {
        GroupConfig { max_groups, ..self }
    }
}

impl AggregateSpec {
    /// Reads one aggregate spec: `[alias=]function[:field]`, spaces around the parts ignored.
    ///
    /// ```
    /// use batch_tasks::batch_process::{AggregateFunction, AggregateSpec};
    ///
    /// let spec = AggregateSpec::parse("sum:customer.spent").unwrap();
    /// assert_eq!((spec.name.as_str(), spec.function), ("sum_customer_spent", AggregateFunction::Sum));
    /// assert_eq!(AggregateSpec::parse("total = sum : amount").unwrap().name, "total");
    /// assert_eq!(AggregateSpec::parse("count").unwrap().field, None);
    /// assert_eq!(AggregateSpec::parse("median:amount").unwrap_err(), "unknown function `median`; use count, sum, min, max or avg");
    /// ```
    pub fn parse(text: &str) -> Result<AggregateSpec, String> {
        let (alias, spec) = match text.split_once('=') {
            Some((alias, spec)) => (Some(alias.trim()), spec.trim()),
            None => (None, text.trim()),
        };
        let (function_name, field) = match spec.split_once(':') {
            Some((function, field)) => (function.trim(), Some(field.trim())),
            None => (spec, None),
        };
        let function = match function_name {
            "count" => AggregateFunction::Count,
            "sum" => AggregateFunction::Sum,
            "min" => AggregateFunction::Min,
            "max" => AggregateFunction::Max,
            "avg" => AggregateFunction::Avg,
            other => return Err(format!("unknown function `{other}`; use count, sum, min, max or avg")),
        };
        let field = match field {
            Some(text) => {
                Some(FieldPath::parse(text).ok_or_else(|| format!("`{text}` is not a field path"))?)
            }
            None if function == AggregateFunction::Count => None,
            None => return Err(format!("`{function_name}` needs a field, as in `{function_name}:amount`")),
        };
        let name = match (alias, &field) {
            (Some(""), _) => return Err("the alias before `=` is empty".to_owned()),
            (Some(alias), _) => alias.to_owned(),
            (None, None) => function.as_str().to_owned(),
            (None, Some(field)) => format!("{}_{}", function.as_str(), field.key_name()),
        };
        Ok(AggregateSpec { name, function, field })
    }
}

impl BatchProcessConfig {
    /// Reads and checks a task's params (see the [`batch_process`](crate::batch_process) module
    /// docs for the list). The error names the param, and for a filter points at the bad token.
    ///
    /// ```
    /// use batch_tasks::batch_process::{BatchProcessConfig, Format};
    /// use serde_json::json;
    ///
    /// let config = BatchProcessConfig::from_params(&json!({
    ///     "input": "orders.csv",
    ///     "output": "big.jsonl",
    ///     "filter": "amount >= 100",
    ///     "group_by": "region",
    ///     "aggregates": ["count", "total=sum:amount"],
    /// }))
    /// .unwrap();
    /// assert_eq!(config.format, Format::Csv);
    /// assert_eq!(config.dead_letters, std::path::Path::new("big.dead_letters.jsonl"));
    /// assert_eq!(config.grouping.unwrap().aggregates[1].name, "total");
    ///
    /// let error = BatchProcessConfig::from_params(&json!({ "input": "a.csv", "output": "b.csv", "select": [] }));
    /// assert_eq!(error.unwrap_err().to_string(), "select: must name at least one field");
    /// ```
    pub fn from_params(params: &Value) -> Result<BatchProcessConfig, BatchProcessError> {
        let Value::Object(params) = params else {
            return Err(BatchProcessError::ParamsNotAnObject { found: json_kind(params) });
        };
        if let Some(name) = params
            .keys()
            .find(|name| !PARAMS.contains(&name.as_str()) && !PARTITION_PARAMS.contains(&name.as_str()))
        {
            return Err(BatchProcessError::UnknownParam { name: name.clone() });
        }
        let params = Params(params);

        let input = params.file("input")?;
        let output = params.file("output")?;
        let input_table = params.table(&input, Side::Input)?;
        let output_table = params.table(&output, Side::Output)?;
        match (&input_table, &output_table) {
            (None, None) if input == output => {
                return Err(invalid("output", "must differ from input".to_owned()));
            }
            (Some(input), Some(output)) if input == output => {
                return Err(invalid("output_table", "must differ from input_table".to_owned()));
            }
            _ => {}
        }
        let output_mode = match params.text("output_mode")? {
            None => OutputMode::default(),
            Some(_) if output_table.is_none() => {
                return Err(invalid(
                    "output_mode",
                    "applies to a table only; set output to a postgres:// address".to_owned(),
                ));
            }
            Some(text) => OutputMode::parse(&text).ok_or_else(|| {
                let modes: Vec<&str> = OutputMode::ALL.iter().map(|mode| mode.as_str()).collect();
                invalid("output_mode", format!("{text:?} is not one of {}", modes.join(", ")))
            })?,
        };
        // `dead_letter` is the name every kind takes; `dead_letters` is accepted as its alias.
        let dead_letters = match (params.get("dead_letter"), params.get("dead_letters")) {
            (Some(_), Some(_)) => {
                return Err(invalid("dead_letter", "is also given as dead_letters; give one".to_owned()));
            }
            (Some(_), None) => params.file("dead_letter")?,
            (None, Some(_)) => params.file("dead_letters")?,
            (None, None) if output_table.is_some() => {
                return Err(invalid(
                    "dead_letter",
                    "missing; set it to a file path: the output is a table, so the dead letters need a file of \
                     their own"
                        .to_owned(),
                ));
            }
            (None, None) => crate::records::dead_letters_beside(&output),
        };
        if dead_letters == input || dead_letters == output {
            return Err(invalid("dead_letter", "must differ from input and output".to_owned()));
        }
        let format = match params.get("format") {
            Some(_) if input_table.is_some() => {
                return Err(invalid(
                    "format",
                    "does not apply to a table input (its rows are read as JSON objects)".to_owned(),
                ));
            }
            None if input_table.is_some() => Format::JsonLines,
            Some(value) => params.format("format", value)?,
            None => Format::from_extension(&input).ok_or_else(|| {
                invalid(
                    "format",
                    format!(
                        "not set, and the extension of `{}` does not tell; use .jsonl, .ndjson, .json or \
                         .csv, or set format to json_lines or csv",
                        input.display()
                    ),
                )
            })?,
        };
        let filter = match params.get("filter") {
            None => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => {
                Some(FilterExpr::parse(text).map_err(|error| BatchProcessError::Filter { error })?)
            }
            Some(other) => return Err(wrong_type("filter", "a string", other)),
        };

        let select = params.paths("select")?.unwrap_or_default();
        check_distinct("select", &select, "selected")?;
        let rename = params.renames()?;
        check_renames(&select, &rename)?;

        let dedup = match params.paths("dedup_key")? {
            Some(key) => {
                check_distinct("dedup_key", &key, "in the key")?;
                for path in &key {
                    check_reference("dedup_key", path, &select, &rename)?;
                }
                let max_keys = params.bound("dedup_max_keys", DedupConfig::MAX_KEYS_LIMIT)?;
                Some(DedupConfig { key, max_keys: max_keys.unwrap_or(DedupConfig::DEFAULT_MAX_KEYS) })
            }
            None => {
                if params.get("dedup_max_keys").is_some() {
                    return Err(invalid("dedup_max_keys", "needs dedup_key".to_owned()));
                }
                None
            }
        };

        let group_by = params.paths("group_by")?;
        let aggregates = params.aggregates()?;
        let grouping = if group_by.is_none() && aggregates.is_none() {
            if params.get("max_groups").is_some() {
                return Err(invalid("max_groups", "needs group_by or aggregates".to_owned()));
            }
            None
        } else {
            let group_by = group_by.unwrap_or_default();
            check_distinct("group_by", &group_by, "grouped")?;
            for path in &group_by {
                check_reference("group_by", path, &select, &rename)?;
            }
            let aggregates = aggregates.unwrap_or_else(|| {
                vec![AggregateSpec {
                    name: "count".to_owned(),
                    function: AggregateFunction::Count,
                    field: None,
                }]
            });
            check_aggregates(&aggregates, &group_by, &select, &rename)?;
            let max_groups = params.bound("max_groups", GroupConfig::MAX_GROUPS_LIMIT)?;
            Some(GroupConfig {
                group_by,
                aggregates,
                max_groups: max_groups.unwrap_or(GroupConfig::DEFAULT_MAX_GROUPS),
            })
        };

        let input_range = match params.get("input_range") {
            None => None,
            Some(value) => {
                let range = InputRange::deserialize(value).map_err(|error| {
                    invalid(
                        "input_range",
                        format!("must be {{\"start\": bytes, \"line\": n, \"end\": bytes}}: {error}"),
                    )
                })?;
                range.check().map_err(|reason| invalid("input_range", reason))?;
                Some(range)
            }
        };

        Ok(BatchProcessConfig {
            input,
            input_table,
            output,
            output_table,
            output_mode,
            dead_letters,
            format,
            filter,
            select,
            rename,
            dedup,
            grouping,
            input_range,
        })
    }
}

/// The params object, with typed getters that name the param in their errors.
struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    /// A param's value; `null` counts as absent.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|value| !value.is_null())
    }

    /// The table `address` names with the `<side>_table`/`_query`/`_key` params, when it is a
    /// `postgres://` address; those params are refused for a file.
    fn table(&self, address: &Path, side: Side) -> Result<Option<PgTable>, BatchProcessError> {
        let (address_param, table_param, key_param) = match side {
            Side::Input => ("input", "input_table", "input_key"),
            Side::Output => ("output", "output_table", "output_key"),
        };
        let query_param = "input_query";
        let text = address.to_str().unwrap_or_default();
        if !is_postgres_address(text) {
            let extra = [table_param, key_param]
                .into_iter()
                .chain((side == Side::Input).then_some(query_param))
                .find(|name| self.get(name).is_some());
            return match extra {
                Some(name) => Err(invalid(
                    name,
                    format!("applies to a table only; set {address_param} to a postgres:// address"),
                )),
                None => Ok(None),
            };
        }
        if !PgTable::SUPPORTED {
            return Err(invalid(
                address_param,
                "names a PostgreSQL table, but this build has no PostgreSQL support (batch-tasks' feature \
                 postgres; the batch command has it)"
                    .to_owned(),
            ));
        }
        let address = PgAddress::parse(text).map_err(|reason| invalid(address_param, reason))?;
        let table = self.text(table_param)?;
        let query = if side == Side::Input { self.text(query_param)? } else { None };
        let relation = match (table, query) {
            (Some(_), Some(_)) => {
                return Err(invalid(table_param, "is also given as input_query; give one".to_owned()));
            }
            (Some(name), None) => Relation::table(&name).map_err(|reason| invalid(table_param, reason))?,
            (None, Some(query)) => Relation::Query(query),
            (None, None) => {
                let what = if side == Side::Input { " (or input_query)" } else { "" };
                return Err(invalid(
                    table_param,
                    format!("missing; {address_param} is a PostgreSQL address, so name its table{what}"),
                ));
            }
        };
        let key = match self.text(key_param)? {
            Some(text) => key_columns(&text).map_err(|reason| invalid(key_param, reason))?,
            None => None,
        };
        match (&relation, &key, side) {
            (Relation::Query(_), None, _) => {
                return Err(invalid(
                    key_param,
                    "missing; a query input needs its key column named".to_owned(),
                ));
            }
            (_, Some(columns), Side::Input) if columns.len() != 1 => {
                return Err(invalid(key_param, "must name one column".to_owned()));
            }
            _ => {}
        }
        Ok(Some(PgTable { address, relation, key }))
    }

    /// A non-empty string param, `None` when absent.
    fn text(&self, name: &'static str) -> Result<Option<String>, BatchProcessError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => {
                Err(invalid(name, "must not be empty".to_owned()))
            }
            Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    fn file(&self, name: &'static str) -> Result<PathBuf, BatchProcessError> {
        match self.get(name) {
            None => Err(invalid(name, "missing; set it to a file path".to_owned())),
            Some(Value::String(text)) if text.trim().is_empty() => {
                Err(invalid(name, "must not be empty".to_owned()))
            }
            Some(Value::String(text)) => Ok(PathBuf::from(text)),
            Some(other) => Err(wrong_type(name, "a file path string", other)),
        }
    }

    fn format(&self, name: &'static str, value: &Value) -> Result<Format, BatchProcessError> {
        match value {
            Value::String(text) => Format::from_name(text)
                .ok_or_else(|| invalid(name, format!("must be json_lines or csv, got {text:?}"))),
            other => Err(wrong_type(name, "json_lines or csv", other)),
        }
    }

    /// A field path or a non-empty list of them.
    fn paths(&self, name: &'static str) -> Result<Option<Vec<FieldPath>>, BatchProcessError> {
        let items: Vec<&Value> = match self.get(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single @ Value::String(_)) => vec![single],
            Some(other) => return Err(wrong_type(name, "a field path or a list of them", other)),
        };
        if items.is_empty() {
            return Err(invalid(name, "must name at least one field".to_owned()));
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => path(name, text),
                other => Err(wrong_type(name, "a list of field path strings", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `rename`: a list of `from=to` strings, or an object of `from: to`.
    fn renames(&self) -> Result<Vec<Rename>, BatchProcessError> {
        let pairs: Vec<(String, String)> = match self.get("rename") {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => match text.split_once('=') {
                        Some((from, to)) => Ok((from.trim().to_owned(), to.trim().to_owned())),
                        None => Err(invalid("rename", format!("`{text}` is not a `from=to` pair"))),
                    },
                    other => Err(wrong_type("rename", "a list of `from=to` strings", other)),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::Object(map)) => map
                .iter()
                .map(|(from, to)| match to {
                    Value::String(to) => Ok((from.clone(), to.clone())),
                    other => Err(wrong_type("rename", "an object of `from: to` strings", other)),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(wrong_type("rename", "a list of `from=to` strings or an object", other));
            }
        };
        if pairs.is_empty() {
            return Err(invalid("rename", "must rename at least one field".to_owned()));
        }
        pairs
            .into_iter()
            .map(|(from, to)| Ok(Rename { from: path("rename", &from)?, to: path("rename", &to)? }))
            .collect()
    }

    /// `aggregates`: an aggregate spec or a non-empty list of them.
    fn aggregates(&self) -> Result<Option<Vec<AggregateSpec>>, BatchProcessError> {
        let items: Vec<&Value> = match self.get("aggregates") {
            None => return Ok(None),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single @ Value::String(_)) => vec![single],
            Some(other) => return Err(wrong_type("aggregates", "a list of aggregate specs", other)),
        };
        if items.is_empty() {
            return Err(invalid("aggregates", "must name at least one aggregate".to_owned()));
        }
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => AggregateSpec::parse(text)
                    .map_err(|reason| invalid("aggregates", format!("`{text}`: {reason}"))),
                other => Err(wrong_type("aggregates", "a list of aggregate spec strings", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A whole number from 1 to `limit`.
    fn bound(&self, name: &'static str, limit: usize) -> Result<Option<usize>, BatchProcessError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let number = value.as_u64().and_then(|number| usize::try_from(number).ok());
        match number {
            Some(number) if (1..=limit).contains(&number) => Ok(Some(number)),
            _ => Err(invalid(name, format!("must be a whole number from 1 to {limit}, got {value}"))),
        }
    }
}

/// Which side of the task a table param belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Input,
    Output,
}

fn invalid(param: &'static str, reason: String) -> BatchProcessError {
    BatchProcessError::InvalidParam { param, reason }
}

fn wrong_type(param: &'static str, expected: &str, value: &Value) -> BatchProcessError {
    invalid(param, format!("must be {expected}, got {}", json_kind(value)))
}

fn path(param: &'static str, text: &str) -> Result<FieldPath, BatchProcessError> {
    FieldPath::parse(text).ok_or_else(|| invalid(param, format!("`{text}` is not a field path (empty name)")))
}

/// No path listed twice, none inside another (their output would collide).
fn check_distinct(param: &'static str, paths: &[FieldPath], listed: &str) -> Result<(), BatchProcessError> {
    for (index, first) in paths.iter().enumerate() {
        for second in &paths[index + 1..] {
            if first == second {
                return Err(invalid(param, format!("`{first}` is listed twice")));
            }
            let (outer, inner) = if second.starts_with(first) { (first, second) } else { (second, first) };
            if inner.starts_with(outer) {
                return Err(invalid(param, format!("`{inner}` is inside `{outer}`, which is also {listed}")));
            }
        }
    }
    Ok(())
}

/// Renames move distinct fields to distinct places, take fields that `select` keeps, and do not
/// overwrite a field `select` keeps.
fn check_renames(select: &[FieldPath], rename: &[Rename]) -> Result<(), BatchProcessError> {
    let sources: Vec<FieldPath> = rename.iter().map(|pair| pair.from.clone()).collect();
    check_distinct("rename", &sources, "renamed")?;
    let targets: Vec<FieldPath> = rename.iter().map(|pair| pair.to.clone()).collect();
    check_distinct("rename", &targets, "a rename target")?;
    if select.is_empty() {
        return Ok(());
    }
    for pair in rename {
        if !select.iter().any(|selected| pair.from.starts_with(selected)) {
            return Err(invalid("rename", format!("`{}` is not among the selected fields", pair.from)));
        }
        let kept =
            select.iter().filter(|selected| !sources.iter().any(|source| selected.starts_with(source)));
        for selected in kept {
            if selected.starts_with(&pair.to) {
                return Err(invalid(
                    "rename",
                    format!("`{}={}` would overwrite the selected field `{selected}`", pair.from, pair.to),
                ));
            }
        }
    }
    Ok(())
}

/// `path` names a field of the record as projection leaves it.
fn check_reference(
    param: &'static str,
    path: &FieldPath,
    select: &[FieldPath],
    rename: &[Rename],
) -> Result<(), BatchProcessError> {
    let in_target = rename.iter().any(|pair| pair.to.overlaps(path));
    if !in_target && let Some(pair) = rename.iter().find(|pair| path.starts_with(&pair.from)) {
        return Err(invalid(
            param,
            format!(
                "`{path}` is renamed by `{}={}` before {param} sees the record; use the new name",
                pair.from, pair.to
            ),
        ));
    }
    if select.is_empty() || in_target {
        return Ok(());
    }
    let mut kept =
        select.iter().filter(|selected| !rename.iter().any(|pair| selected.starts_with(&pair.from)));
    if !kept.any(|selected| selected.overlaps(path)) {
        return Err(invalid(param, format!("`{path}` is not among the selected fields")));
    }
    Ok(())
}

/// Aggregate names are distinct and do not collide with the group fields; their fields exist.
fn check_aggregates(
    aggregates: &[AggregateSpec],
    group_by: &[FieldPath],
    select: &[FieldPath],
    rename: &[Rename],
) -> Result<(), BatchProcessError> {
    for (index, aggregate) in aggregates.iter().enumerate() {
        if aggregates[..index].iter().any(|earlier| earlier.name == aggregate.name) {
            return Err(invalid("aggregates", format!("two aggregates are named `{}`", aggregate.name)));
        }
        if let Some(path) = group_by.iter().find(|path| path.segments()[0] == aggregate.name) {
            return Err(invalid(
                "aggregates",
                format!("the aggregate name `{}` is taken by the group_by field `{path}`", aggregate.name),
            ));
        }
        if let Some(field) = &aggregate.field {
            check_reference("aggregates", field, select, rename)?;
        }
    }
    Ok(())
}
