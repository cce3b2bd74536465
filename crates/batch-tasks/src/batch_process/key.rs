//! Record keys: the canonical text and the stable 128-bit hash of a tuple of field values, which
//! dedup and group-by use to tell keys apart.
//!
//! The canonical text is compact JSON with object keys sorted, so it does not depend on the order
//! keys had in the file nor on `serde_json` features. Keys compare by that text: `1`, `1.0` and
//! `"1"` are three different keys (a CSV file, whose values are all strings, never mixes them).
//!
//! The hash is FNV-1a over 128 bits: stable across processes, platforms and Rust releases (it goes
//! into checkpoints), and wide enough that a collision — two different keys taken as one — is
//! below 10⁻¹⁸ for a billion keys.

use std::fmt::Write as _;

use serde_json::Value;

/// The FNV-1a 128-bit offset basis.
const FNV_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;

/// The FNV-1a 128-bit prime.
const FNV_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// The canonical text of the tuple `values`: a compact JSON array, object keys sorted.
pub(crate) fn canonical_text<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut text = String::from("[");
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        write_canonical(value, &mut text);
    }
    text.push(']');
    text
}

/// The stable hash of `text`.
pub(crate) fn hash(text: &str) -> u128 {
    text.bytes().fold(FNV_OFFSET, |hash, byte| (hash ^ u128::from(byte)).wrapping_mul(FNV_PRIME))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => {
            let _infallible = write!(out, "{number}");
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|left, right| left.0.cmp(right.0));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    // Serialising a `str` to JSON cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_canonical_text_sorts_object_keys_and_keeps_types_apart() {
        let first = json!({ "b": 1, "a": [true, null, "x\"y"] });
        assert_eq!(canonical_text([&first, &json!("华东")]), r#"[{"a":[true,null,"x\"y"],"b":1},"华东"]"#);
        let texts: Vec<String> =
            [json!(1), json!(1.0), json!("1")].iter().map(|value| canonical_text([value])).collect();
        assert_eq!(texts, ["[1]", "[1.0]", "[\"1\"]"]);
    }

    #[test]
    fn the_hash_is_fnv1a_128() {
        // Published FNV-1a 128 test vectors.
        assert_eq!(hash(""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(hash("a"), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_ne!(hash("[\"a\",\"bc\"]"), hash("[\"ab\",\"c\"]"));
    }
}
