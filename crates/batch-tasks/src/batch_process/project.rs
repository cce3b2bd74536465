//! Projection: `select` keeps some fields, `rename` moves fields to new names; and the CSV side of
//! output rows (their columns and cells).
//!
//! `select` builds a new row holding only the selected paths, as nested objects (see
//! [`path`](crate::batch_process::FieldPath)); a selected field the record lacks is written as
//! `null`, so every row has the same shape (and a CSV output the same columns). Without `select`
//! the row is the whole record.
//!
//! `rename` then moves each `from` to its `to`, all at once: every source is taken out first (objects
//! it leaves empty are removed), then each is put at its target, creating objects on the way and
//! replacing whatever was there. A source the row lacks moves nothing.

use serde_json::{Map, Value};

use crate::batch_process::config::Rename;
use crate::batch_process::error::RecordIssue;
use crate::batch_process::path::FieldPath;

/// `select` and `rename`, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Projection {
    pub(crate) select: Vec<FieldPath>,
    pub(crate) rename: Vec<Rename>,
}

impl Projection {
    /// The row `record` projects to.
    pub(crate) fn apply(&self, mut record: Map<String, Value>) -> Result<Map<String, Value>, RecordIssue> {
        let mut row = if self.select.is_empty() {
            record
        } else {
            let mut row = Map::new();
            let mut taken_from = Value::Object(std::mem::take(&mut record));
            for path in &self.select {
                let value = path.take(&mut taken_from).unwrap_or(Value::Null);
                // Selected paths never overlap (checked with the params), so this cannot fail.
                if !path.insert(&mut row, value) {
                    return Err(RecordIssue::RenameConflict { from: path.to_string(), to: path.to_string() });
                }
            }
            row
        };
        if self.rename.is_empty() {
            return Ok(row);
        }
        let mut whole = Value::Object(std::mem::take(&mut row));
        let moved: Vec<(&Rename, Value)> =
            self.rename.iter().filter_map(|pair| Some((pair, pair.from.remove(&mut whole)?))).collect();
        let Value::Object(mut row) = whole else {
            return Ok(Map::new());
        };
        for (pair, value) in moved {
            if !pair.to.insert(&mut row, value) {
                return Err(RecordIssue::RenameConflict {
                    from: pair.from.to_string(),
                    to: pair.to.to_string(),
                });
            }
        }
        Ok(row)
    }

    /// The output's columns when projection fixes them (with `select`): the selected paths, renamed.
    pub(crate) fn columns(&self) -> Option<Vec<FieldPath>> {
        if self.select.is_empty() {
            return None;
        }
        let mut columns = Vec::new();
        for selected in &self.select {
            match self.rename.iter().find(|pair| &pair.from == selected) {
                Some(pair) => columns.push(pair.to.clone()),
                None => columns.push(selected.clone()),
            }
        }
        // Renames of fields inside a selected object add columns of their own.
        for pair in &self.rename {
            if !self.select.contains(&pair.from) {
                columns.push(pair.to.clone());
            }
        }
        Some(columns)
    }
}

/// The leaf paths of `row`, in its key order: nested objects are walked, anything else (arrays
/// included) is a leaf. The CSV columns of rows whose shape projection does not fix.
///
/// ```
/// use batch_tasks::batch_process::leaf_paths;
/// use serde_json::json;
///
/// let row = json!({ "id": 1, "customer": { "name": "王", "address": { "city": "上海" } }, "tags": ["a"] });
/// let columns: Vec<String> = leaf_paths(&row).iter().map(ToString::to_string).collect();
/// assert_eq!(columns, ["customer.address.city", "customer.name", "id", "tags"]);
/// ```
pub fn leaf_paths(row: &Value) -> Vec<FieldPath> {
    fn walk(map: &Map<String, Value>, prefix: &mut Vec<String>, out: &mut Vec<FieldPath>) {
        for (key, value) in map {
            prefix.push(key.clone());
            match value {
                Value::Object(inner) if !inner.is_empty() => walk(inner, prefix, out),
                _ => out.push(FieldPath::from_segments(prefix.clone())),
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    if let Value::Object(map) = row {
        walk(map, &mut Vec::new(), &mut out);
    }
    out
}

/// The CSV cells of `row` under `columns`: a missing field or `null` is empty, a string as it is,
/// a number or boolean as its JSON text, an array or object as compact JSON.
///
/// ```
/// use batch_tasks::batch_process::{FieldPath, csv_cells};
/// use serde_json::json;
///
/// let columns: Vec<FieldPath> = ["id", "customer.city", "amount", "tags", "vip"].iter().filter_map(|c| FieldPath::parse(c)).collect();
/// let row = json!({ "id": "R1", "customer": { "city": "上海" }, "amount": 12.5, "tags": ["a", "b"] });
/// assert_eq!(csv_cells(&row, &columns), ["R1", "上海", "12.5", r#"["a","b"]"#, ""]);
/// ```
pub fn csv_cells(row: &Value, columns: &[FieldPath]) -> Vec<String> {
    columns
        .iter()
        .map(|column| match column.lookup(row) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        })
        .collect()
}

/// A CSV row (header, cell) as a record: a JSON object of strings.
///
/// ```
/// use batch_tasks::batch_process::record_from_csv;
/// use serde_json::json;
///
/// let row = [("amount".to_owned(), "12.50".to_owned()), ("region".to_owned(), "华东".to_owned())];
/// assert_eq!(record_from_csv(row), json!({ "amount": "12.50", "region": "华东" }));
/// ```
pub fn record_from_csv(row: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(row.into_iter().map(|(header, cell)| (header, Value::String(cell))).collect())
}
