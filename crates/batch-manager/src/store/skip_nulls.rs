//! The rule of stored records: no struct field that is `None`. The SQLite and PostgreSQL stores
//! write task records, results and metrics so, through [`json`](super::json), which asks
//! [`is_none`] of every struct field. A new task's record has eleven
//! optional fields unset (its start and end, its error, its partition, the unknown parts of its
//! progress), about 160 bytes, and most stay unset all its life: an empty task's record that took
//! 672 bytes when completed takes 532. PostgreSQL writes a task's row whole three times (at its
//! creation, its claim and its end), so the bytes count: in m3's flow the update statements' time
//! fell by 8-15% and the server's CPU by 4% or more (docs/BENCHMARKS.md, m3, session 7). Writing
//! costs 0.15 µs more per record than plain serde_json (1.30 against 1.15 µs) this way.
//!
//! [`Stripped`] is the rule as a serializer around any other (serde_json's, in the tests): the way
//! records were written until `json` wrote them itself, kept as the reference its tests compare
//! against.
//!
//! Only a struct field (or a struct variant's) whose value is serialised as `None` is left out; a
//! JSON null that is a value (`serde_json::Value::Null`: a task's params, an error's details, a
//! key of a map) is written as it is, and maps and sequences are written whole. A missing field
//! reads back as the `None` it was: plain `Option` fields do so by themselves, and the model's
//! optional fields with a `with` module say `default`. The round-trip tests of `encoding.rs` check
//! it on a task with every optional field set and on a new task with none set, so a field added
//! later without `default` fails them.

use serde::Serialize;
use serde::ser::{Impossible, Serializer};

/// Whether `value` is serialised as `None` (only that: not `Some(None)`, not a unit, not a JSON
/// null value, none of which reads back from a missing field).
#[inline]
pub(super) fn is_none<T: Serialize + ?Sized>(value: &T) -> bool {
    value.serialize(NoneProbe).unwrap_or(false)
}

/// The serializer [`is_none`] uses: answers at the value's first call, before any of it is written.
struct NoneProbe;

/// The answer "not `None`" for a compound value (never reaches a caller: [`is_none`] maps it to
/// false).
#[derive(Debug)]
struct NotNull;

impl std::fmt::Display for NotNull {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("not null")
    }
}

impl std::error::Error for NotNull {}

impl serde::ser::Error for NotNull {
    fn custom<M: std::fmt::Display>(_message: M) -> NotNull {
        NotNull
    }
}

/// The `Serializer` methods of values without parts but `None` (every scalar, unit and unit
/// variant), written by `$then!`.
macro_rules! scalars {
    ($then:ident) => {
        $then! {
            serialize_bool(v: bool);
            serialize_i8(v: i8);
            serialize_i16(v: i16);
            serialize_i32(v: i32);
            serialize_i64(v: i64);
            serialize_i128(v: i128);
            serialize_u8(v: u8);
            serialize_u16(v: u16);
            serialize_u32(v: u32);
            serialize_u64(v: u64);
            serialize_u128(v: u128);
            serialize_f32(v: f32);
            serialize_f64(v: f64);
            serialize_char(v: char);
            serialize_str(v: &str);
            serialize_bytes(v: &[u8]);
            serialize_unit();
            serialize_unit_struct(name: &'static str);
            serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
        }
    };
}

macro_rules! not_null {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<bool, NotNull> { Ok(false) })*
    };
}

macro_rules! compound_not_null {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $compound:ty;)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<$compound, NotNull> { Err(NotNull) })*
    };
}

impl Serializer for NoneProbe {
    type Ok = bool;
    type Error = NotNull;
    type SerializeSeq = Impossible<bool, NotNull>;
    type SerializeTuple = Impossible<bool, NotNull>;
    type SerializeTupleStruct = Impossible<bool, NotNull>;
    type SerializeTupleVariant = Impossible<bool, NotNull>;
    type SerializeMap = Impossible<bool, NotNull>;
    type SerializeStruct = Impossible<bool, NotNull>;
    type SerializeStructVariant = Impossible<bool, NotNull>;

    scalars!(not_null);

    compound_not_null! {
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(len: usize) -> Self::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeStructVariant;
    }

    fn serialize_none(self) -> Result<bool, NotNull> {
        Ok(true)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<bool, NotNull> {
        Ok(false)
    }

    /// A value written as its `Display` text (a duration) is not `None`, and is not formatted here:
    /// serde's default would format it into a new `String` to hand to `serialize_str`.
    fn collect_str<T: std::fmt::Display + ?Sized>(self, _value: &T) -> Result<bool, NotNull> {
        Ok(false)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<bool, NotNull> {
        Ok(false)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<bool, NotNull> {
        Ok(false)
    }
}

#[cfg(test)]
pub(crate) use reference::{Stripped, StrippedWithout};

/// The rule as a serializer around another: the reference the tests of `json` compare against.
#[cfg(test)]
mod reference {
    use serde::ser::{
        Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
        SerializeTupleStruct, SerializeTupleVariant, Serializer,
    };

    use super::is_none;

    /// A value to serialise without the struct fields that are `None`, wherever its structs are (hand
    /// it to any serde serializer, e.g. `serde_json::to_string(&Stripped(&task))`).
    pub(crate) struct Stripped<'a, T: ?Sized>(pub(crate) &'a T);

    impl<T: Serialize + ?Sized> Serialize for Stripped<'_, T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.0.serialize(SkipNulls(serializer, &[]))
        }
    }

    /// A struct to serialise as [`Stripped`] does and also without its own fields named in the list
    /// (its nested structs keep theirs): for a record whose store keeps those fields in columns.
    pub(crate) struct StrippedWithout<'a, T: ?Sized>(pub(crate) &'a T, pub(crate) &'static [&'static str]);

    impl<T: Serialize + ?Sized> Serialize for StrippedWithout<'_, T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.0.serialize(SkipNulls(serializer, self.1))
        }
    }

    /// The serializer that leaves `None` struct fields out, around the one that writes; a struct it
    /// starts also leaves out its fields named in the list (the compounds inside it do not).
    struct SkipNulls<S>(S, &'static [&'static str]);

    /// A compound value being serialised: its elements go through [`SkipNulls`] too; a struct's fields
    /// named in the list are left out.
    struct Compound<C>(C, &'static [&'static str]);

    macro_rules! forward {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
            $(fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> { self.0.$method($($arg),*) })*
        };
    }

    /// Starts a compound value of the serializer around, whose parts go through [`SkipNulls`] too.
    macro_rules! compound_stripped {
        ($($method:ident($($arg:ident: $ty:ty),*) -> $compound:ident;)*) => {
            $(fn $method(self, $($arg: $ty),*) -> Result<Self::$compound, S::Error> {
                let skipped = self.1;
                self.0.$method($($arg),*).map(|compound| Compound(compound, skipped))
            })*
        };
    }

    impl<S: Serializer> Serializer for SkipNulls<S> {
        type Ok = S::Ok;
        type Error = S::Error;
        type SerializeSeq = Compound<S::SerializeSeq>;
        type SerializeTuple = Compound<S::SerializeTuple>;
        type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
        type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
        type SerializeMap = Compound<S::SerializeMap>;
        type SerializeStruct = Compound<S::SerializeStruct>;
        type SerializeStructVariant = Compound<S::SerializeStructVariant>;

        scalars!(forward);
        forward! {
            serialize_none();
        }

        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
            self.0.serialize_some(&Stripped(value))
        }

        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            name: &'static str,
            value: &T,
        ) -> Result<S::Ok, S::Error> {
            self.0.serialize_newtype_struct(name, &Stripped(value))
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            name: &'static str,
            index: u32,
            variant: &'static str,
            value: &T,
        ) -> Result<S::Ok, S::Error> {
            self.0.serialize_newtype_variant(name, index, variant, &Stripped(value))
        }

        compound_stripped! {
            serialize_seq(len: Option<usize>) -> SerializeSeq;
            serialize_tuple(len: usize) -> SerializeTuple;
            serialize_tuple_struct(name: &'static str, len: usize) -> SerializeTupleStruct;
            serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
                -> SerializeTupleVariant;
            serialize_map(len: Option<usize>) -> SerializeMap;
            serialize_struct(name: &'static str, len: usize) -> SerializeStruct;
            serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
                -> SerializeStructVariant;
        }

        /// Handed on, so that the serializer writes the text its own way (serde_json straight into its
        /// output) instead of serde's default, a new `String` first.
        fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
            self.0.collect_str(value)
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    /// The compounds whose every element is written, each through [`SkipNulls`].
    macro_rules! elements_stripped {
        ($($compound:ident::$method:ident),*) => {$(
            impl<C: $compound> $compound for Compound<C> {
                type Ok = C::Ok;
                type Error = C::Error;

                fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                    self.0.$method(&Stripped(value))
                }

                fn end(self) -> Result<C::Ok, C::Error> {
                    self.0.end()
                }
            }
        )*};
    }

    elements_stripped!(
        SerializeSeq::serialize_element,
        SerializeTuple::serialize_element,
        SerializeTupleStruct::serialize_field,
        SerializeTupleVariant::serialize_field
    );

    /// A map's entries are data (a task's params, its metadata): every key is written; only the structs
    /// among its values lose their `None` fields.
    impl<C: SerializeMap> SerializeMap for Compound<C> {
        type Ok = C::Ok;
        type Error = C::Error;

        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
            self.0.serialize_key(key)
        }

        fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
            self.0.serialize_value(&Stripped(value))
        }

        fn end(self) -> Result<C::Ok, C::Error> {
            self.0.end()
        }
    }

    /// The compounds with named fields: a field that is `None` is skipped.
    macro_rules! fields_without_none {
        ($($compound:ident),*) => {$(
            impl<C: $compound> $compound for Compound<C> {
                type Ok = C::Ok;
                type Error = C::Error;

                fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), C::Error> {
                    if self.1.contains(&key) || is_none(value) {
                        self.0.skip_field(key)
                    } else {
                        self.0.serialize_field(key, &Stripped(value))
                    }
                }

                fn end(self) -> Result<C::Ok, C::Error> {
                    self.0.end()
                }
            }
        )*};
    }

    fields_without_none!(SerializeStruct, SerializeStructVariant);
}
