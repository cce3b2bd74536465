//! Reading one line into the fields the task reads, without judging them yet.
//!
//! # Why lenient types
//!
//! A derived `Deserialize` on the strict shape (`payment: String`, `num: u32`) would reject a money
//! field written as a number with serde's message ("invalid type: floating point `1.5`, expected a
//! string at line 1 column 212"), which names no field. Here every field the task reads is a
//! [`Scalar`] (whatever JSON value it holds, or [`Scalar::Missing`]) and every container an
//! [`ObjectField`] or [`ArrayField`] that records a value of the wrong kind instead of failing. Only
//! malformed JSON (and a field named twice) fails the parse; validation then names the field.
//!
//! Strings borrow from the line when they hold no escapes (`Cow::Borrowed`), so parsing a record
//! allocates for its line items only. Unknown fields are skipped without being built.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The kind of a JSON value, for messages (`got a number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}

/// A field's value as read: absent, or a JSON value of some kind (containers are skipped, not built).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// The field is not in the object.
    #[default]
    Missing,
    Null,
    Bool(bool),
    /// An integer (`i128` holds every `i64` and `u64`).
    Integer(i128),
    /// A number with a fraction or an exponent, or an integer beyond 64 bits.
    Float,
    Text(Cow<'a, str>),
    Array,
    Object,
}

impl<'a> Scalar<'a> {
    /// The kind of the value; `None` when the field is missing.
    pub(crate) fn kind(&self) -> Option<JsonKind> {
        match self {
            Scalar::Missing => None,
            Scalar::Null => Some(JsonKind::Null),
            Scalar::Bool(_) => Some(JsonKind::Bool),
            Scalar::Integer(_) | Scalar::Float => Some(JsonKind::Number),
            Scalar::Text(_) => Some(JsonKind::String),
            Scalar::Array => Some(JsonKind::Array),
            Scalar::Object => Some(JsonKind::Object),
        }
    }

    /// The text, when the value is a string.
    pub(crate) fn as_text(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The text, when the value is a non-empty string, as an owned string.
    pub(crate) fn non_empty_text(&self) -> Option<String> {
        self.as_text().filter(|text| !text.is_empty()).map(str::to_owned)
    }

    /// The integer, when the value is one that fits an `i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Integer(value) => i64::try_from(*value).ok(),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor(PhantomData))
    }
}

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Integer(i128::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Integer(i128::from(value)))
    }

    fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float)
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(value)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// The visits of a field visitor for every value that is not a container: each is the wrong kind
/// for an object or an array field (`$field::Wrong`).
macro_rules! wrong_for_scalars {
    ($field:ident) => {
        fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::Bool))
        }

        fn visit_i64<E: de::Error>(self, _value: i64) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::Number))
        }

        fn visit_u64<E: de::Error>(self, _value: u64) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::Number))
        }

        fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::Number))
        }

        fn visit_str<E: de::Error>(self, _value: &str) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::String))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::Null))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($field::Wrong(JsonKind::Null))
        }
    };
}

/// A field that should hold an object of shape `T`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum ObjectField<T> {
    /// The field is not in the object.
    #[default]
    Missing,
    /// The field holds something else (`null` included).
    Wrong(JsonKind),
    Present(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectField<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = ObjectField<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectField::Present)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ObjectField::Wrong(JsonKind::Array))
            }

            wrong_for_scalars!(ObjectField);
        }

        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

/// A field that should hold an array of `T`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum ArrayField<T> {
    /// The field is not in the object.
    #[default]
    Missing,
    /// The field holds something else (`null` included).
    Wrong(JsonKind),
    Present(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ArrayField<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArrayVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrayVisitor<T> {
            type Value = ArrayField<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ArrayField::Present(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ArrayField::Wrong(JsonKind::Object))
            }

            wrong_for_scalars!(ArrayField);
        }

        deserializer.deserialize_any(ArrayVisitor(PhantomData))
    }
}

/// A line as read: the wrapper's `full_order_info`, or the trade's own fields when bare.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Line<'a> {
    #[serde(borrow)]
    pub(crate) full_order_info: ObjectField<Trade<'a>>,
    #[serde(borrow)]
    pub(crate) order_info: ObjectField<OrderInfo<'a>>,
    #[serde(borrow)]
    pub(crate) address_info: ObjectField<AddressInfo<'a>>,
    #[serde(borrow)]
    pub(crate) pay_info: ObjectField<PayInfo<'a>>,
    #[serde(borrow)]
    pub(crate) buyer_info: ObjectField<BuyerInfo<'a>>,
    #[serde(borrow)]
    pub(crate) orders: ArrayField<ObjectField<LineItem<'a>>>,
}

impl<'a> Line<'a> {
    /// The trade's fields: the wrapped object when there is one, else the line's own.
    pub(crate) fn into_trade(self) -> Result<Trade<'a>, JsonKind> {
        match self.full_order_info {
            ObjectField::Present(trade) => Ok(trade),
            ObjectField::Wrong(kind) => Err(kind),
            ObjectField::Missing => Ok(Trade {
                order_info: self.order_info,
                address_info: self.address_info,
                pay_info: self.pay_info,
                buyer_info: self.buyer_info,
                orders: self.orders,
            }),
        }
    }
}

/// The `full_order_info` object.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Trade<'a> {
    #[serde(borrow)]
    pub(crate) order_info: ObjectField<OrderInfo<'a>>,
    #[serde(borrow)]
    pub(crate) address_info: ObjectField<AddressInfo<'a>>,
    #[serde(borrow)]
    pub(crate) pay_info: ObjectField<PayInfo<'a>>,
    #[serde(borrow)]
    pub(crate) buyer_info: ObjectField<BuyerInfo<'a>>,
    #[serde(borrow)]
    pub(crate) orders: ArrayField<ObjectField<LineItem<'a>>>,
}

/// `order_info`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct OrderInfo<'a> {
    #[serde(borrow)]
    pub(crate) tid: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) status: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) created: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) pay_time: Scalar<'a>,
    #[serde(borrow, rename = "type")]
    pub(crate) trade_type: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) shop_name: Scalar<'a>,
}

/// `address_info`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct AddressInfo<'a> {
    #[serde(borrow)]
    pub(crate) delivery_province: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) delivery_city: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) delivery_district: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) address_extra: Scalar<'a>,
}

/// The JSON held in `address_info.address_extra`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct AddressExtra<'a> {
    #[serde(borrow, rename = "areaCode")]
    pub(crate) area_code: Scalar<'a>,
}

/// `pay_info`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct PayInfo<'a> {
    #[serde(borrow)]
    pub(crate) total_fee: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) payment: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) post_fee: Scalar<'a>,
}

/// `buyer_info`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct BuyerInfo<'a> {
    #[serde(borrow)]
    pub(crate) yz_open_id: Scalar<'a>,
}

/// One element of `orders`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct LineItem<'a> {
    #[serde(borrow)]
    pub(crate) oid: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) item_id: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) sku_id: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) title: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) sku_properties_name: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) num: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) price: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) total_fee: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) payment: Scalar<'a>,
    #[serde(borrow)]
    pub(crate) is_present: Scalar<'a>,
}

/// Reads `line` (one JSON value) into its fields; `Err` carries serde's message for malformed JSON
/// or a field named twice, or the kind of a top-level value that is not an object.
pub(crate) fn parse_line(line: &str) -> Result<ObjectField<Line<'_>>, serde_json::Error> {
    serde_json::from_str(line)
}

/// Reads the JSON held in `address_info.address_extra`.
pub(crate) fn parse_extra(text: &str) -> Result<ObjectField<AddressExtra<'_>>, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line<'_> {
        match parse_line(text).unwrap() {
            ObjectField::Present(line) => line,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_line() {
        let parsed = line(r#"{"order_info": {"tid": "E1", "shop_name": "a\"b"}}"#);
        let ObjectField::Present(info) = parsed.order_info else { panic!("order_info") };
        assert!(matches!(info.tid, Scalar::Text(Cow::Borrowed("E1"))));
        assert_eq!(info.shop_name, Scalar::Text(Cow::Owned("a\"b".to_owned())));
    }

    #[test]
    fn fields_of_the_wrong_kind_are_recorded_not_refused() {
        let parsed =
            line(r#"{"order_info": "x", "pay_info": {"payment": 1.5, "post_fee": 0}, "orders": {}}"#);
        assert_eq!(parsed.order_info.map_kind(), Some(JsonKind::String));
        let ObjectField::Present(pay) = parsed.pay_info else { panic!("pay_info") };
        assert_eq!(pay.payment, Scalar::Float);
        assert_eq!(pay.post_fee, Scalar::Integer(0));
        assert_eq!(pay.total_fee, Scalar::Missing);
        assert!(matches!(parsed.orders, ArrayField::Wrong(JsonKind::Object)));
    }

    #[test]
    fn top_level_values_other_than_objects_are_reported_by_kind() {
        assert!(matches!(parse_line("[1, 2]").unwrap(), ObjectField::Wrong(JsonKind::Array)));
        assert!(matches!(parse_line("null").unwrap(), ObjectField::Wrong(JsonKind::Null)));
        assert!(parse_line("{").is_err());
        assert!(parse_line(r#"{"order_info": {"tid": "a", "tid": "b"}}"#).is_err());
    }

    impl<T> ObjectField<T> {
        fn map_kind(&self) -> Option<JsonKind> {
            match self {
                ObjectField::Wrong(kind) => Some(*kind),
                _ => None,
            }
        }
    }
}
