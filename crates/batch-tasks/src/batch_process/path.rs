//! Field paths: how `customer.address.city` or `items.0.sku` finds a value inside a record, and how
//! projection puts a value into an output row.
//!
//! # Lookup
//!
//! A path is a list of segments. In an object, the rest of the path joined with dots is first tried
//! as one key, so a CSV column named `customer.city` is found by the path `customer.city`; failing
//! that, the first segment is a key and the lookup goes on inside its value. In an array, a segment
//! of ASCII digits is an index. Anything else — a missing key, an index past the end, a scalar in
//! the way — means the field is missing.
//!
//! # Output rows
//!
//! Projection writes a path as nested objects: `customer.address.city` becomes
//! `{"customer": {"address": {"city": ...}}}` (a digit segment becomes an object key too). Writing a
//! row as CSV flattens it back to a `customer.address.city` column, which the lookup above finds again.

use std::fmt;

use serde_json::{Map, Value};

/// A path to a value inside a JSON record: `amount`, `customer.address.city`, `items.0.sku`.
///
/// Looking a path up in an object first tries the rest of the path, joined with dots, as one key
/// (so a CSV column named `customer.city` is found by the path `customer.city`); failing that, the
/// first segment is a key and the lookup goes on inside its value. In an array, a segment of ASCII
/// digits is an index. A missing key, an index past the end or a scalar in the way means the field
/// is missing. Projection writes a path as nested objects (a digit segment becomes a key too).
///
/// ```
/// use batch_tasks::batch_process::FieldPath;
/// use serde_json::json;
///
/// let path = FieldPath::parse("customer.address.city").unwrap();
/// let record = json!({ "customer": { "address": { "city": "上海" } } });
/// assert_eq!(path.lookup(&record), Some(&json!("上海")));
/// // A flat key spelled like the whole path (a CSV column) is found too.
/// assert_eq!(path.lookup(&json!({ "customer.address.city": "杭州" })), Some(&json!("杭州")));
/// assert_eq!(FieldPath::parse("items.0.sku").unwrap().lookup(&json!({ "items": [{ "sku": "A1" }] })), Some(&json!("A1")));
/// assert!(FieldPath::parse("customer..city").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    segments: Vec<String>,
    /// `segments[i..]` joined with dots, for each `i`: the flat keys a lookup tries first.
    /// `suffixes[0]` is the whole path's text.
    suffixes: Vec<String>,
}

impl FieldPath {
    /// The path spelled `text`: segments separated by dots, none of them empty. `None` for an empty
    /// text or an empty segment (`a..b`, `.a`, `a.`). Segments are taken as written, spaces
    /// included (CSV headers such as `Order ID`).
    pub fn parse(text: &str) -> Option<FieldPath> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return None;
        }
        Some(FieldPath::from_segments(segments))
    }

    /// The path made of `segments` (which may contain dots: a quoted name in a filter).
    ///
    /// # Panics
    ///
    /// If `segments` is empty (a bug in the caller: every path names at least one field).
    pub(crate) fn from_segments(segments: Vec<String>) -> FieldPath {
        assert!(!segments.is_empty(), "a field path has at least one segment");
        let suffixes = (0..segments.len()).map(|start| segments[start..].join(".")).collect();
        FieldPath { segments, suffixes }
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path as written, segments joined with dots.
    pub fn as_str(&self) -> &str {
        &self.suffixes[0]
    }

    /// The value at this path in `record`, or `None` when the field is missing (see
    /// [`FieldPath`] for the lookup rules). A JSON `null` is found as `Some(&Value::Null)`.
    pub fn lookup<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        let mut current = record;
        let mut index = 0;
        while index < self.segments.len() {
            current = match current {
                Value::Object(map) => {
                    if index + 1 < self.segments.len()
                        && let Some(value) = map.get(&self.suffixes[index])
                    {
                        return Some(value);
                    }
                    map.get(&self.segments[index])?
                }
                Value::Array(items) => items.get(array_index(&self.segments[index])?)?,
                _ => return None,
            };
            index += 1;
        }
        Some(current)
    }

    /// The value at this path unless it has no value: missing, `null`, or a string of only
    /// whitespace (an empty CSV cell). Aggregates and dedup keys use this notion.
    pub(crate) fn present<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        match self.lookup(record)? {
            Value::Null => None,
            Value::String(text) if text.trim().is_empty() => None,
            value => Some(value),
        }
    }

    /// Takes the value at this path out of `record` (an array element is replaced by `null`),
    /// leaving the rest as it was.
    pub(crate) fn take(&self, record: &mut Value) -> Option<Value> {
        take_at(record, &self.segments, &self.suffixes, false)
    }

    /// Like [`take`](FieldPath::take), and removes the objects on the way that this leaves empty.
    pub(crate) fn remove(&self, record: &mut Value) -> Option<Value> {
        take_at(record, &self.segments, &self.suffixes, true)
    }

    /// Puts `value` at this path in `row`, creating the objects on the way. Returns `false`, leaving
    /// `row` as it was, when a value on the way is not an object.
    pub(crate) fn insert(&self, row: &mut Map<String, Value>, value: Value) -> bool {
        let Some((last, parents)) = self.segments.split_last() else {
            return false;
        };
        // Check first, so that a conflict changes nothing.
        let mut probe = Some(&*row);
        for segment in parents {
            match probe.and_then(|map| map.get(segment)) {
                None => probe = None,
                Some(Value::Object(map)) => probe = Some(map),
                Some(_) => return false,
            }
        }
        let mut current = row;
        for segment in parents {
            let entry = current.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = entry else {
                return false;
            };
            current = map;
        }
        current.insert(last.clone(), value);
        true
    }

    /// Whether `self` is `other` or lies inside it (`a.b.c` starts with `a.b`), segment by segment.
    pub(crate) fn starts_with(&self, other: &FieldPath) -> bool {
        self.segments.starts_with(&other.segments)
    }

    /// Whether one of the two paths lies inside the other (or they are equal).
    pub(crate) fn overlaps(&self, other: &FieldPath) -> bool {
        self.starts_with(other) || other.starts_with(self)
    }

    /// An output key derived from the path: its segments joined with `_` (`customer.age` →
    /// `customer_age`).
    pub(crate) fn key_name(&self) -> String {
        self.segments.join("_")
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A segment of ASCII digits as an array index.
fn array_index(segment: &str) -> Option<usize> {
    if segment.bytes().all(|byte| byte.is_ascii_digit()) { segment.parse().ok() } else { None }
}

fn take_at(value: &mut Value, segments: &[String], suffixes: &[String], prune: bool) -> Option<Value> {
    let (first, rest) = segments.split_first()?;
    match value {
        Value::Object(map) => {
            if rest.is_empty() {
                return map.remove(first);
            }
            if let Some(found) = map.remove(&suffixes[0]) {
                return Some(found);
            }
            let child = map.get_mut(first)?;
            let taken = take_at(child, rest, &suffixes[1..], prune)?;
            if prune && matches!(child, Value::Object(inner) if inner.is_empty()) {
                map.remove(first);
            }
            Some(taken)
        }
        Value::Array(items) => {
            let item = items.get_mut(array_index(first)?)?;
            if rest.is_empty() {
                return Some(item.take());
            }
            take_at(item, rest, &suffixes[1..], prune)
        }
        _ => None,
    }
}
