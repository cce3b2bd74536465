//! The JSON writer of stored records: a task's record, its result and its metrics, as the SQLite
//! and PostgreSQL stores keep them. It writes what serde_json writes (compact, the same escapes,
//! the same numbers), without the struct fields that are `None` ([`skip_nulls`](super::skip_nulls)
//! has the rule) and, for a record whose store keeps some fields in columns, without those.
//!
//! It is serde_json's output by a shorter road. A stored record was serde_json's serializer behind
//! a second serializer that asked each struct field whether it was `None` and handed it on: every
//! field went through both, its static name was escaped byte by byte like any data, and each piece
//! was copied through `io::Write` into the buffer. The PostgreSQL store writes a task's record three
//! times in its life (creation, claim, end), and that took a quarter of a worker's instructions in
//! m3's flow (docs/BENCHMARKS.md). Here a field's name, known to need no escape, is copied whole,
//! and everything is written straight into the buffer.
//!
//! The tests hold it to the old road's bytes on the model's types and on arbitrary JSON values.

use std::fmt::{self, Write as _};

use serde::ser::{
    Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

use super::skip_nulls::is_none;

/// Where the JSON goes: a `Vec<u8>`, or the buffer tokio-postgres encodes a parameter into.
pub(crate) trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[cfg(feature = "postgres")]
impl Out for bytes::BytesMut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes `value` as JSON without its struct fields that are `None`, and without the fields of
/// its own top-level struct named in `without` (its nested structs keep theirs).
pub(crate) fn write<T: Serialize + ?Sized, O: Out>(
    value: &T,
    without: &'static [&'static str],
    out: &mut O,
) -> Result<(), JsonError> {
    value.serialize(Json { out, without })
}

/// `value` as JSON text, as [`write`] writes it.
#[cfg(feature = "sqlite")]
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, JsonError> {
    let mut out = Vec::with_capacity(256);
    write(value, &[], &mut out)?;
    into_string(out)
}

/// The JSON text written into `out`.
#[cfg(feature = "sqlite")]
pub(crate) fn into_string(out: Vec<u8>) -> Result<String, JsonError> {
    // Only whole `str`s and ASCII are written.
    String::from_utf8(out).map_err(|error| JsonError(format!("the JSON written is not UTF-8 ({error})")))
}

/// A value that JSON cannot hold (a map key that is not a string, a float key that is not finite),
/// or a serializer's own error.
#[derive(Debug)]
pub(crate) struct JsonError(String);

impl fmt::Display for JsonError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for JsonError {}

impl serde::ser::Error for JsonError {
    fn custom<M: fmt::Display>(message: M) -> JsonError {
        JsonError(message.to_string())
    }
}

fn key_must_be_a_string() -> JsonError {
    JsonError("key must be a string".to_owned())
}

/// serde_json's name for a raw JSON value (feature `raw_value`), serialised as a struct of this
/// name with one field of the same name holding the text.
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// How each byte is escaped in a JSON string, as serde_json escapes it: `0` not at all, `u` as
/// `\u00XX`, any other as a backslash and itself.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any byte of `bytes` needs an escape, eight at a time: most strings stored (names,
/// timestamps, ids, words) need none and are copied whole.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether a byte of `word` is zero (exact for "any", which is all that is asked).
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let (words, rest) = bytes.as_chunks::<8>();
    for word in words {
        let word = u64::from_ne_bytes(*word);
        // A control character (below 0x20), a quote or a backslash.
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
        if control || has_zero(word ^ (ONES * u64::from(b'"'))) || has_zero(word ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    rest.iter().any(|byte| ESCAPE[usize::from(*byte)] != 0)
}

/// Writes the contents of a JSON string (without its quotes).
#[inline]
fn escaped<O: Out>(out: &mut O, text: &str) {
    let bytes = text.as_bytes();
    if !needs_escape(bytes) {
        out.put(bytes);
        return;
    }
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        if start < at {
            out.put(&bytes[start..at]);
        }
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
        } else {
            out.put(&[b'\\', escape]);
        }
        start = at + 1;
    }
    if start < bytes.len() {
        out.put(&bytes[start..]);
    }
}

/// Writes a JSON string.
#[inline]
pub(super) fn string<O: Out>(out: &mut O, text: &str) {
    out.put(b"\"");
    escaped(out, text);
    out.put(b"\"");
}

/// Writes an object's key and its colon, after a comma unless it is the first: a struct field's
/// name is copied whole when it needs no escape, as a Rust name never does.
#[inline]
fn field_key<O: Out>(out: &mut O, first: bool, key: &str) {
    if !needs_escape(key.as_bytes()) {
        out.put(if first { b"\"" } else { b",\"" });
        out.put(key.as_bytes());
        out.put(b"\":");
    } else {
        if !first {
            out.put(b",");
        }
        string(out, key);
        out.put(b":");
    }
}

/// Writes an integer.
#[inline]
pub(super) fn integer<O: Out, I: itoa::Integer>(out: &mut O, value: I) {
    out.put(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes a float as serde_json does: `null` when it is not finite.
#[inline]
pub(super) fn number_f64<O: Out>(out: &mut O, value: f64) {
    float(out, value, value.is_finite());
}

fn float<O: Out, F: zmij::Float>(out: &mut O, value: F, finite: bool) {
    if finite {
        out.put(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.put(b"null");
    }
}

/// The serializer: writes into `out`; a struct it starts leaves out the fields named in `without`.
struct Json<'a, O> {
    out: &'a mut O,
    without: &'static [&'static str],
}

impl<'a, O: Out> Json<'a, O> {
    fn nested(out: &mut O) -> Json<'_, O> {
        Json { out, without: &[] }
    }

    fn compound(self, open: &'static [u8], close: &'static [u8], kind: Kind) -> Compound<'a, O> {
        self.out.put(open);
        Compound { out: self.out, first: true, close, without: self.without, kind }
    }

    /// Opens `{"variant":` and what follows it.
    fn variant(
        self,
        variant: &str,
        open: &'static [u8],
        close: &'static [u8],
        kind: Kind,
    ) -> Compound<'a, O> {
        self.out.put(b"{");
        string(self.out, variant);
        self.out.put(b":");
        self.out.put(open);
        Compound { out: self.out, first: true, close, without: self.without, kind }
    }
}

/// What a compound's fields are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Values only (a sequence, a tuple) or map entries.
    Plain,
    /// Named fields: `None` ones are left out.
    Fields,
    /// serde_json's raw value: its one field's text is written as it is.
    Raw,
}

/// A compound value being written: its elements or fields, and what closes it.
struct Compound<'a, O> {
    out: &'a mut O,
    first: bool,
    close: &'static [u8],
    without: &'static [&'static str],
    kind: Kind,
}

impl<O: Out> Compound<'_, O> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        if !self.first {
            self.out.put(b",");
        }
        self.first = false;
        value.serialize(Json::nested(self.out))
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), JsonError> {
        if self.kind == Kind::Raw {
            return value.serialize(RawText(self.out));
        }
        if self.without.contains(&key) || is_none(value) {
            return Ok(());
        }
        field_key(self.out, self.first, key);
        self.first = false;
        value.serialize(Json::nested(self.out))
    }

    fn end(self) -> Result<(), JsonError> {
        self.out.put(self.close);
        Ok(())
    }
}

/// The integer methods of a serializer writing into `self.$out`, each number between `$quote`s
/// (none for a value, `"` for a map key, as serde_json writes them).
macro_rules! integers {
    ($out:tt, $quote:expr) => {
        integers!(@each $out, $quote;
            serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
            serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
            serialize_u64(u64), serialize_u128(u128));
    };
    (@each $out:tt, $quote:expr; $($method:ident($ty:ty)),*) => {
        $(#[inline] fn $method(self, value: $ty) -> Result<(), JsonError> {
            self.$out.put($quote);
            integer(self.$out, value);
            self.$out.put($quote);
            Ok(())
        })*
    };
}

impl<'a, O: Out> Serializer for Json<'a, O> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Compound<'a, O>;
    type SerializeTuple = Compound<'a, O>;
    type SerializeTupleStruct = Compound<'a, O>;
    type SerializeTupleVariant = Compound<'a, O>;
    type SerializeMap = Compound<'a, O>;
    type SerializeStruct = Compound<'a, O>;
    type SerializeStructVariant = Compound<'a, O>;

    fn serialize_bool(self, value: bool) -> Result<(), JsonError> {
        self.out.put(if value { b"true" } else { b"false" });
        Ok(())
    }

    integers!(out, b"");

    fn serialize_f32(self, value: f32) -> Result<(), JsonError> {
        float(self.out, value, value.is_finite());
        Ok(())
    }

    fn serialize_f64(self, value: f64) -> Result<(), JsonError> {
        float(self.out, value, value.is_finite());
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), JsonError> {
        string(self.out, value.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<(), JsonError> {
        string(self.out, value);
        Ok(())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), JsonError> {
        let mut seq = self.serialize_seq(Some(value.len()))?;
        for byte in value {
            seq.element(byte)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result<(), JsonError> {
        self.out.put(b"null");
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        value.serialize(Json::nested(self.out))
    }

    fn serialize_unit(self) -> Result<(), JsonError> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JsonError> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        string(self.out, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        value.serialize(Json::nested(self.out))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.out.put(b"{");
        string(self.out, variant);
        self.out.put(b":");
        value.serialize(Json::nested(self.out))?;
        self.out.put(b"}");
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, O>, JsonError> {
        Ok(self.compound(b"[", b"]", Kind::Plain))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, O>, JsonError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, O>, JsonError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, O>, JsonError> {
        Ok(self.variant(variant, b"[", b"]}", Kind::Plain))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, O>, JsonError> {
        Ok(self.compound(b"{", b"}", Kind::Plain))
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a, O>, JsonError> {
        if name == RAW_VALUE {
            return Ok(self.compound(b"", b"", Kind::Raw));
        }
        Ok(self.compound(b"{", b"}", Kind::Fields))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, O>, JsonError> {
        Ok(self.variant(variant, b"{", b"}}", Kind::Fields))
    }

    /// A value written as its `Display` text (a duration), escaped as it is formatted.
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        self.out.put(b"\"");
        write!(Escaping(self.out), "{value}").map_err(|_| JsonError("a value's text failed".to_owned()))?;
        self.out.put(b"\"");
        Ok(())
    }
}

/// Escapes what is formatted into it, as the contents of a JSON string.
struct Escaping<'a, O>(&'a mut O);

impl<O: Out> fmt::Write for Escaping<'_, O> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escaped(self.0, text);
        Ok(())
    }
}

/// The compounds of values only: each element after a comma.
macro_rules! elements {
    ($($compound:ident::$method:ident),*) => {$(
        impl<O: Out> $compound for Compound<'_, O> {
            type Ok = ();
            type Error = JsonError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
                self.element(value)
            }

            fn end(self) -> Result<(), JsonError> {
                Compound::end(self)
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// A map's entries are data (a task's params, its metadata): every entry is written.
impl<O: Out> SerializeMap for Compound<'_, O> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        if !self.first {
            self.out.put(b",");
        }
        self.first = false;
        key.serialize(MapKey(self.out))?;
        self.out.put(b":");
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        value.serialize(Json::nested(self.out))
    }

    fn end(self) -> Result<(), JsonError> {
        Compound::end(self)
    }
}

/// The compounds of named fields: a field that is `None`, or named in the list, is left out.
macro_rules! fields {
    ($($compound:ident),*) => {$(
        impl<O: Out> $compound for Compound<'_, O> {
            type Ok = ();
            type Error = JsonError;

            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), JsonError> {
                self.field(key, value)
            }

            fn end(self) -> Result<(), JsonError> {
                Compound::end(self)
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

/// A map's key, as serde_json writes it: a string, or a number or boolean in quotes.
struct MapKey<'a, O>(&'a mut O);

/// Methods that refuse what they are given, with `$error()`.
macro_rules! refused {
    ($error:ident; $($method:ident($($ty:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<$ok, JsonError> {
            Err($error())
        })*
    };
}

/// A serializer's types when it writes no compound value.
macro_rules! no_compounds {
    () => {
        type Ok = ();
        type Error = JsonError;
        type SerializeSeq = Impossible<(), JsonError>;
        type SerializeTuple = Impossible<(), JsonError>;
        type SerializeTupleStruct = Impossible<(), JsonError>;
        type SerializeTupleVariant = Impossible<(), JsonError>;
        type SerializeMap = Impossible<(), JsonError>;
        type SerializeStruct = Impossible<(), JsonError>;
        type SerializeStructVariant = Impossible<(), JsonError>;
    };
}

impl<O: Out> Serializer for MapKey<'_, O> {
    no_compounds!();

    fn serialize_str(self, value: &str) -> Result<(), JsonError> {
        string(self.0, value);
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), JsonError> {
        string(self.0, value.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_bool(self, value: bool) -> Result<(), JsonError> {
        self.0.put(if value { b"\"true\"" } else { b"\"false\"" });
        Ok(())
    }

    integers!(0, b"\"");

    fn serialize_f32(self, value: f32) -> Result<(), JsonError> {
        float_key(self.0, value, value.is_finite())
    }

    fn serialize_f64(self, value: f64) -> Result<(), JsonError> {
        float_key(self.0, value, value.is_finite())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        string(self.0, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        value.serialize(self)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        Json::nested(self.0).collect_str(value)
    }

    refused! {
        key_must_be_a_string;
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), JsonError> {
        Err(key_must_be_a_string())
    }
}

/// A float map key: in quotes, refused when it is not finite, as serde_json does.
fn float_key<O: Out, F: zmij::Float>(out: &mut O, value: F, finite: bool) -> Result<(), JsonError> {
    if !finite {
        return Err(JsonError("float key must be finite (got NaN or +/-inf)".to_owned()));
    }
    out.put(b"\"");
    float(out, value, true);
    out.put(b"\"");
    Ok(())
}

/// The text of a raw JSON value, written as it is.
struct RawText<'a, O>(&'a mut O);

impl<O: Out> Serializer for RawText<'_, O> {
    no_compounds!();

    fn serialize_str(self, value: &str) -> Result<(), JsonError> {
        self.0.put(value.as_bytes());
        Ok(())
    }

    refused! {
        not_raw_text;
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), JsonError> {
        Err(not_raw_text())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<(), JsonError> {
        Err(not_raw_text())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), JsonError> {
        Err(not_raw_text())
    }
}

fn not_raw_text() -> JsonError {
    JsonError("a raw JSON value that is not text".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use batch_model::{
        AttemptRecord, BatchTask, CreateTaskRequest, ErrorCode, Partition, ProcessingMetrics, TaskError,
        TaskId, TaskStatus, TaskType,
    };
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::store::skip_nulls::{Stripped, StrippedWithout};

    /// `value` as the writer writes it, and as serde_json wrote it through the reference rule.
    fn both<T: Serialize + ?Sized>(value: &T, without: &'static [&'static str]) -> (String, String) {
        let mut written = Vec::new();
        write(value, without, &mut written).expect("written");
        let reference = serde_json::to_string(&StrippedWithout(value, without)).expect("reference");
        (String::from_utf8(written).expect("UTF-8"), reference)
    }

    fn same<T: Serialize + ?Sized>(value: &T) -> String {
        let (written, reference) = both(value, &[]);
        assert_eq!(written, reference);
        assert_eq!(serde_json::to_string(&Stripped(value)).expect("reference"), reference);
        written
    }

    fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, nanos).expect("a valid time")
    }

    fn full_task() -> BatchTask {
        let request = CreateTaskRequest::new(TaskType::Custom("stored".to_owned()));
        let mut task = BatchTask::new(TaskId::new(), request, at(0, 0)).expect("a valid request");
        task.status = TaskStatus::Failed;
        task.config.skip_limit = Some(7);
        task.config.timeout = Duration::from_millis(90_500);
        task.params =
            json!({"input": "in \"quoted\"\n\u{1}é", "n": -3, "f": 0.1, "list": [null, true, 1e300]});
        task.metadata.insert("owner\t".to_owned(), "ops\\team".to_owned());
        task.progress.total = Some(10);
        task.progress.processed = 4;
        task.progress.percentage = Some(40.0);
        task.progress.message = Some("reading \u{7f} \u{2028}".to_owned());
        task.progress.throughput = Some(2.5);
        task.progress.eta = Some(Duration::new(3, 5));
        task.error = Some(
            TaskError::new(ErrorCode::ProcessingError, "broken")
                .with_timestamp(at(5, 123_000_000))
                .with_details(json!({"line": 3, "field": null})),
        );
        task.started_at = Some(at(1, 1));
        task.completed_at = Some(at(6, 999_999_999));
        task.attempt = 2;
        task.attempts.push(AttemptRecord {
            attempt: 1,
            status: TaskStatus::Failed,
            error: Some(TaskError::new(ErrorCode::TimeoutError, "slow").with_timestamp(at(2, 0))),
            started_at: None,
            ended_at: Some(at(3, 0)),
            progress: task.progress.clone(),
        });
        task.parent_id = Some(TaskId::new());
        task.partition = Some(Partition { index: 1, count: 4 });
        task
    }

    #[test]
    fn the_models_records_are_written_as_the_reference_writes_them() {
        let request = CreateTaskRequest::new(TaskType::Custom("stored".to_owned()));
        let new = BatchTask::new(TaskId::new(), request, at(0, 123_456_000)).expect("a valid request");
        let written = same(&new);
        assert!(!written.contains("null"), "{written}");
        let full = full_task();
        let written = same(&full);
        assert!(written.contains(r#""details":{"field":null,"line":3}"#), "{written}");
        assert!(written.contains(r#""owner\t":"ops\\team""#), "{written}");
        assert!(written.contains(r#"in \"quoted\"\n\u0001é"#), "{written}");

        // Without the fields a store keeps in columns: only the top-level struct's (an attempt keeps
        // its status).
        for task in [&new, &full] {
            let (written, reference) = both(task, &["id", "task_type", "status"]);
            assert_eq!(written, reference);
            assert!(written.starts_with(r#"{"config":"#), "{written}");
        }
        let (written, _) = both(&full, &["id", "task_type", "status"]);
        assert!(written.contains(r#""attempts":[{"attempt":1,"status":"failed""#), "{written}");
        let (written, reference) = both(&full, &["config"]);
        assert_eq!(written, reference);
        assert!(written.starts_with(r#"{"id":"#) && !written.contains("batch_size"), "{written}");

        let mut metrics = ProcessingMetrics {
            processed_items: 3,
            duration: Duration::from_millis(1_500),
            ..ProcessingMetrics::default()
        };
        same(&metrics);
        metrics.start_time = Some(at(0, 0));
        metrics.end_time = Some(at(1, 500_000_000));
        same(&metrics);
        same(&json!(null));
        same(&full.params);
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Pair(i8, Option<u8>);

    #[derive(Serialize)]
    enum Shape {
        Empty,
        Wrapped(Option<i32>),
        Tuple(u16, Option<u16>),
        Named { kept: Option<u32>, gone: Option<u32>, inner: Option<Option<u8>> },
    }

    struct Bytes(&'static [u8]);

    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    #[derive(Serialize)]
    struct Everything {
        unit: Unit,
        unit_value: (),
        newtype: Newtype,
        pair: Pair,
        shapes: Vec<Shape>,
        bytes: Bytes,
        chars: [char; 3],
        wide: (i128, u128),
        floats: [f64; 4],
        small_floats: [f32; 2],
        int_keys: BTreeMap<i64, bool>,
        bool_keys: BTreeMap<bool, ()>,
        char_keys: BTreeMap<char, Option<u8>>,
        shape_keys: BTreeMap<&'static str, Shape>,
        nothing: Option<u8>,
        some_nothing: Option<Option<u8>>,
        #[serde(rename = "a \"quoted\" name")]
        renamed: u8,
    }

    #[test]
    fn every_serde_shape_is_written_as_the_reference_writes_it() {
        let everything = Everything {
            unit: Unit,
            unit_value: (),
            newtype: Newtype(7),
            pair: Pair(-1, None),
            shapes: vec![
                Shape::Empty,
                Shape::Wrapped(None),
                Shape::Wrapped(Some(-5)),
                Shape::Tuple(1, None),
                Shape::Named { kept: Some(1), gone: None, inner: Some(None) },
            ],
            bytes: Bytes(&[0, 1, 255]),
            chars: ['"', '\n', 'ß'],
            wide: (i128::MIN, u128::MAX),
            floats: [f64::NAN, f64::INFINITY, -0.0, 1.5e-7],
            small_floats: [f32::NEG_INFINITY, 0.1],
            int_keys: BTreeMap::from([(-1, true), (2, false)]),
            bool_keys: BTreeMap::from([(false, ()), (true, ())]),
            char_keys: BTreeMap::from([('\u{0}', None), ('k', Some(1))]),
            shape_keys: BTreeMap::from([("named", Shape::Named { kept: None, gone: None, inner: None })]),
            nothing: None,
            some_nothing: Some(None),
            renamed: 1,
        };
        let written = same(&everything);
        assert!(!written.contains("\"nothing\""), "{written}");
        assert!(written.contains(r#""some_nothing":null"#), "{written}");
        assert!(written.contains(r#""a \"quoted\" name":1"#), "{written}");
        assert!(written.contains(r#"{"Named":{"kept":1,"inner":null}}"#), "{written}");
        assert!(written.contains(r#""named":{"Named":{}}"#), "{written}");
        assert!(written.contains(r#""floats":[null,null,-0.0,1.5e-7]"#), "{written}");
        // The struct's own fields named are left out, its nested ones are not.
        let (written, reference) = both(&everything, &["pair", "kept"]);
        assert_eq!(written, reference);
        assert!(!written.contains("\"pair\"") && written.contains("\"kept\""), "{written}");
    }

    #[test]
    fn a_key_json_cannot_hold_is_an_error_as_in_serde_json() {
        let unit_key = BTreeMap::from([(UnitKey, 1)]);
        let error = write(&unit_key, &[], &mut Vec::new()).expect_err("a unit key");
        assert_eq!(error.to_string(), "key must be a string");
        let error = serde_json::to_string(&unit_key).expect_err("a unit key");
        assert_eq!(error.to_string(), "key must be a string");

        struct NanKey;
        impl Serialize for NanKey {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(&f64::NAN, &1)?;
                map.end()
            }
        }
        let error = write(&NanKey, &[], &mut Vec::new()).expect_err("a NaN key");
        assert_eq!(error.to_string(), serde_json::to_string(&NanKey).expect_err("a NaN key").to_string());
    }

    /// A map key serde_json refuses: a unit struct.
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct UnitKey;

    #[test]
    fn a_raw_json_value_is_written_as_its_text() {
        struct Raw(&'static str);
        impl Serialize for Raw {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut raw = serializer.serialize_struct(RAW_VALUE, 1)?;
                raw.serialize_field(RAW_VALUE, self.0)?;
                raw.end()
            }
        }
        let mut out = Vec::new();
        write(&vec![Raw(r#"{"a": [1, 2]}"#), Raw("3")], &[], &mut out).expect("written");
        assert_eq!(String::from_utf8(out).expect("UTF-8"), r#"[{"a": [1, 2]},3]"#);
    }

    #[test]
    fn a_byte_that_needs_an_escape_is_found_wherever_it_is() {
        for length in 0..40 {
            let plain: Vec<u8> = (0..length).map(|at| [b'a', b' ', 0x7f, 0xc3, b'~', b'!'][at % 6]).collect();
            assert!(!needs_escape(&plain), "{plain:?}");
            for at in 0..length {
                for byte in (0..0x20).chain([b'"', b'\\']) {
                    let mut text = plain.clone();
                    text[at] = byte;
                    assert!(needs_escape(&text), "{byte:#x} at {at} of {length}");
                }
                for byte in [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
                    let mut text = plain.clone();
                    text[at] = byte;
                    assert!(!needs_escape(&text), "{byte:#x} at {at} of {length}");
                }
            }
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
            "[\\x00-\\x7f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_value_is_written_as_serde_json_writes_it(value in json_value()) {
            let mut out = Vec::new();
            write(&value, &[], &mut out).expect("written");
            prop_assert_eq!(String::from_utf8(out).expect("UTF-8"), serde_json::to_string(&value).expect("JSON"));
        }
    }
}
