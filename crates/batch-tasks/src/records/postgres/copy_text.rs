//! Output rows (JSON objects, one a line) as the rows of PostgreSQL's `COPY … FROM STDIN` text
//! format, column by column, so that the server reads each field with its column type's own input
//! function and nothing parses JSON on its side.
//!
//! A row's fields fill the columns of the same names: a field the table has no column for is
//! ignored, a column the row has no field for gets `NULL`. A field's text by its JSON value:
//! `null` is `NULL`; a string is its content (so `"12.50"` fills a `numeric` exactly, an ISO 8601
//! string a `timestamptz`); numbers and `true`/`false` their JSON text; for a `json`/`jsonb`
//! column, any value but `null` is its JSON text (a string keeps its quotes); for an array column, a
//! JSON array is the array's literal (`{1,2,"a b",NULL}`, nested for nested arrays); any other
//! object or array is its JSON text. These are `jsonb_populate_recordset`'s rules for these types.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// How a column takes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnKind {
    /// `json` or `jsonb`: the value's JSON text.
    Json,
    /// An array type: a JSON array as an array literal.
    Array,
    /// Any other type: a string's content, any other value's JSON text.
    Scalar,
}

/// A column of the table the rows go into.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) kind: ColumnKind,
    /// Its type as SQL writes it (`numeric(16,2)`), for a cast.
    pub(super) type_name: String,
}

/// Appends `rows` (JSON objects, one a line) to `out` in COPY text format for `columns`, and returns
/// how many rows there were. A line that is not a JSON object is an error naming its 1-based
/// number in `rows`; `out` then holds the rows before it.
pub(super) fn encode_rows(columns: &[Column], rows: &str, out: &mut Vec<u8>) -> Result<u64, String> {
    for_each_row(columns, rows, |texts| {
        for (at, text) in texts.iter().enumerate() {
            if at > 0 {
                out.push(b'\t');
            }
            match text {
                Some(text) => escape_into(text, out),
                None => out.extend_from_slice(b"\\N"),
            }
        }
        out.push(b'\n');
    })
}

/// Each column's fields, `None` for NULL.
pub(super) type ColumnTexts = Vec<Vec<Option<String>>>;

/// The fields of `rows` (JSON objects, one a line) column by column, each as the text its column's
/// input reads (`None` for NULL), and the number of rows: the parameters of an
/// `INSERT … SELECT … FROM unnest($1::text[], …)`.
pub(super) fn column_texts(columns: &[Column], rows: &str) -> Result<(ColumnTexts, u64), String> {
    let mut columns_texts: ColumnTexts = columns.iter().map(|_| Vec::new()).collect();
    let count = for_each_row(columns, rows, |texts| {
        for (text, column) in texts.iter_mut().zip(columns_texts.iter_mut()) {
            column.push(text.take().map(Cow::into_owned));
        }
    })?;
    Ok((columns_texts, count))
}

/// Calls `row` with each line's fields (by column) as the texts their columns' inputs read, and
/// returns how many lines there were. A line that is not a JSON object, or a field that cannot be
/// read, is an error naming its 1-based line (and the field), before `row` sees that line.
fn for_each_row<'r>(
    columns: &[Column],
    rows: &'r str,
    mut row: impl FnMut(&mut [Option<Cow<'r, str>>]),
) -> Result<u64, String> {
    let mut fields: Vec<Option<&RawValue>> = vec![None; columns.len()];
    let mut texts: Vec<Option<Cow<'r, str>>> = Vec::with_capacity(columns.len());
    let mut count = 0;
    for (index, line) in rows.split_terminator('\n').enumerate() {
        fields.iter_mut().for_each(|field| *field = None);
        let mut deserializer = serde_json::Deserializer::from_str(line);
        RowSeed { columns, fields: &mut fields }
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end())
            .map_err(|error| format!("output row {} is not a JSON object: {error}", index + 1))?;
        texts.clear();
        for (column, field) in columns.iter().zip(&fields) {
            let text = field_text(column, *field)
                .map_err(|error| format!("output row {}, field {:?}: {error}", index + 1, column.name))?;
            texts.push(text);
        }
        row(&mut texts);
        count += 1;
    }
    Ok(count)
}

/// One field as the text its column's input reads; `None` for NULL.
fn field_text<'a>(column: &Column, field: Option<&'a RawValue>) -> Result<Option<Cow<'a, str>>, String> {
    let Some(raw) = field else { return Ok(None) };
    let text = raw.get();
    Ok(match (text.as_bytes().first(), column.kind) {
        (Some(b'n'), _) => None,
        (_, ColumnKind::Json) => Some(Cow::Borrowed(text)),
        (Some(b'"'), _) => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                Some(Cow::Owned(serde_json::from_str(text).map_err(|error| error.to_string())?))
            } else {
                Some(Cow::Borrowed(inner))
            }
        }
        (Some(b'['), ColumnKind::Array) => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
            let mut literal = String::with_capacity(text.len());
            array_literal(&value, &mut literal);
            Some(Cow::Owned(literal))
        }
        _ => Some(Cow::Borrowed(text)),
    })
}

/// A JSON array as a PostgreSQL array literal: elements quoted but numbers, booleans, `NULL` and
/// nested arrays; an object element as its quoted JSON text.
fn array_literal(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;

    match value {
        Value::Array(items) => {
            out.push('{');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                match item {
                    Value::Null => out.push_str("NULL"),
                    Value::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
                    Value::Number(number) => out.push_str(&number.to_string()),
                    Value::String(text) => quote_element(text, out),
                    Value::Array(_) => array_literal(item, out),
                    Value::Object(_) => quote_element(&item.to_string(), out),
                }
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// An array element in double quotes, its `"` and `\` escaped by a backslash.
fn quote_element(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        if matches!(character, '"' | '\\') {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('"');
}

/// `text` as a COPY text field: backslash, tab, newline and carriage return escaped.
fn escape_into(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(escaped);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Reads one row's fields into `fields` (by column), borrowing each value's JSON text.
struct RowSeed<'c, 'de> {
    columns: &'c [Column],
    fields: &'c mut Vec<Option<&'de RawValue>>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(KeySeed { columns: self.columns })? {
            match column {
                Some(at) => self.fields[at] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key as the index of the column of that name, `None` for a key no column has.
struct KeySeed<'c> {
    columns: &'c [Column],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.columns.iter().position(|column| column.name == key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]
mod tests {
    use super::*;

    fn columns(spec: &[(&str, ColumnKind)]) -> Vec<Column> {
        spec.iter()
            .map(|(name, kind)| Column { name: (*name).to_owned(), kind: *kind, type_name: String::new() })
            .collect()
    }

    fn encode(columns: &[Column], rows: &str) -> String {
        let mut out = Vec::new();
        encode_rows(columns, rows, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_fill_columns_by_name_missing_ones_null_unknown_ones_ignored() {
        let columns =
            columns(&[("id", ColumnKind::Scalar), ("name", ColumnKind::Scalar), ("n", ColumnKind::Scalar)]);
        let rows = "{\"name\":\"a\",\"extra\":{\"x\":[1]},\"id\":7}\n{\"id\":8,\"n\":null,\"name\":\"b\"}\n";
        assert_eq!(encode(&columns, rows), "7\ta\t\\N\n8\tb\t\\N\n");
    }

    #[test]
    fn strings_are_their_content_escaped_for_copy() {
        let columns = columns(&[("s", ColumnKind::Scalar)]);
        let rows = concat!(r#"{"s":"tab\there \"q\" back\\slash"}"#, "\n", r#"{"s":"line\nbreak\r"}"#, "\n");
        assert_eq!(encode(&columns, rows), "tab\\there \"q\" back\\\\slash\nline\\nbreak\\r\n");
    }

    #[test]
    fn numbers_booleans_and_exact_decimals_keep_their_text() {
        let columns =
            columns(&[("a", ColumnKind::Scalar), ("b", ColumnKind::Scalar), ("c", ColumnKind::Scalar)]);
        let rows = "{\"a\":12345678901234567890123,\"b\":true,\"c\":\"12.50\"}\n";
        assert_eq!(encode(&columns, rows), "12345678901234567890123\ttrue\t12.50\n");
    }

    #[test]
    fn json_columns_take_the_values_json_text() {
        let columns = columns(&[("j", ColumnKind::Json)]);
        let rows =
            concat!(r#"{"j":{"k":"v\\w","n":[1,2]}}"#, "\n", r#"{"j":"text"}"#, "\n", r#"{"j":null}"#, "\n");
        assert_eq!(encode(&columns, rows), "{\"k\":\"v\\\\\\\\w\",\"n\":[1,2]}\n\"text\"\n\\N\n");
    }

    #[test]
    fn arrays_become_array_literals() {
        let columns = columns(&[("a", ColumnKind::Array), ("t", ColumnKind::Scalar)]);
        let rows = concat!(r#"{"a":[1,null,"x \"y\"",[true,false],{"k":1}],"t":[1,2]}"#, "\n");
        assert_eq!(
            encode(&columns, rows),
            "{1,NULL,\"x \\\\\"y\\\\\"\",{true,false},\"{\\\\\"k\\\\\":1}\"}\t[1,2]\n"
        );
    }

    #[test]
    fn a_line_that_is_not_an_object_is_named() {
        let columns = columns(&[("a", ColumnKind::Scalar)]);
        let mut out = Vec::new();
        let error = encode_rows(&columns, "{\"a\":1}\n[1]\n", &mut out).unwrap_err();
        assert!(error.starts_with("output row 2 is not a JSON object"), "{error}");
        assert_eq!(out, b"1\n");
    }

    #[test]
    fn column_texts_are_the_fields_unescaped_by_column() {
        let columns =
            columns(&[("id", ColumnKind::Scalar), ("s", ColumnKind::Scalar), ("a", ColumnKind::Array)]);
        let rows = concat!(r#"{"id":1,"s":"a\tb","a":[1,2]}"#, "\n", r#"{"id":2}"#, "\n");
        let (texts, count) = column_texts(&columns, rows).unwrap();
        assert_eq!(count, 2);
        let owned =
            |values: &[Option<&str>]| values.iter().map(|value| value.map(str::to_owned)).collect::<Vec<_>>();
        assert_eq!(texts[0], owned(&[Some("1"), Some("2")]));
        assert_eq!(texts[1], owned(&[Some("a\tb"), None]));
        assert_eq!(texts[2], owned(&[Some("{1,2}"), None]));
    }
}
