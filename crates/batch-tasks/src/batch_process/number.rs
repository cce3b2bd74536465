//! Numbers in records: which values count as numbers, how they compare, and when they are exact.
//!
//! A value is a number when it is a JSON number, or a string that *looks like a number*: after
//! trimming ASCII whitespace, an optional `+` or `-`, one or more ASCII digits, optionally `.` and
//! one or more digits, optionally `e`/`E`, an optional sign and one or more digits. So `"100"`,
//! `" -3.50 "`, `"007"` and `"1e3"` are numbers; `""`, `"1,000"`, `"5."`, `".5"`, `"0x10"`, `"NaN"`
//! and `"inf"` are not.
//!
//! A number is *exact* when it fits a [`Decimal`] without rounding (at most 28 digits after the
//! point, magnitude below about 7.9 × 10²⁸); otherwise it is an `f64` approximation, good for
//! comparisons only. A JSON integer is exact; a JSON float is read through its shortest decimal
//! text (the one `serde_json` prints: `19.99` stays `19.99`, never `19.989999…`). Two exact
//! numbers compare exactly; a comparison involving an approximate one compares `f64`s.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use serde_json::Value;

/// A number read from a record or a filter literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    /// Exactly the number written.
    Exact(Decimal),
    /// Too large, too small or too precise for a [`Decimal`]: the nearest `f64`.
    Approx(f64),
}

impl Number {
    /// The number `value` is, if it is one (a JSON number, or a string that looks like a number).
    pub(crate) fn of_value(value: &Value) -> Option<Number> {
        match value {
            Value::Number(number) => Some(Number::of_json(number)),
            Value::String(text) => Number::parse(text),
            _ => None,
        }
    }

    /// A JSON number as a [`Number`].
    pub(crate) fn of_json(number: &serde_json::Number) -> Number {
        if let Some(integer) = number.as_i64() {
            return Number::Exact(Decimal::from(integer));
        }
        if let Some(integer) = number.as_u64() {
            return Number::Exact(Decimal::from(integer));
        }
        // A float: its shortest round-trip text (`1.5e-7`, `19.99`) is the number the file meant.
        Number::parse(&number.to_string()).unwrap_or(Number::Approx(number.as_f64().unwrap_or(0.0)))
    }

    /// The number `text` spells, if it looks like a number (see the [module docs](self)).
    pub(crate) fn parse(text: &str) -> Option<Number> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let bytes = text.as_bytes();
        let digits_from = |start: usize| {
            let mut end = start;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            end
        };
        // One optional sign; a `+` is dropped from the text `Decimal` reads.
        let mantissa_start = usize::from(bytes.first() == Some(&b'+'));
        let integer_start = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
        let mut end = digits_from(integer_start);
        if end == integer_start {
            return None;
        }
        if bytes.get(end) == Some(&b'.') {
            let fraction_end = digits_from(end + 1);
            if fraction_end == end + 1 {
                return None;
            }
            end = fraction_end;
        }
        let mantissa_end = end;
        let mut exponent: i64 = 0;
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign_len = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            let exponent_start = end + 1 + sign_len;
            end = digits_from(exponent_start);
            if end == exponent_start {
                return None;
            }
            // Huge exponents saturate: such a number is approximate (or infinite) anyway.
            exponent = text[exponent_start..end].parse::<i64>().unwrap_or(i64::MAX / 2);
            if bytes[exponent_start - 1] == b'-' {
                exponent = -exponent;
            }
        }
        if end != bytes.len() {
            return None;
        }
        if let Some(exact) = exact_decimal(&text[mantissa_start..mantissa_end], exponent) {
            return Some(Number::Exact(exact));
        }
        text.parse::<f64>().ok().map(Number::Approx)
    }

    /// How `self` compares with `other`: exactly when both are exact, as `f64`s otherwise.
    pub(crate) fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Exact(left), Number::Exact(right)) => Some(left.cmp(&right)),
            _ => self.to_f64().partial_cmp(&other.to_f64()),
        }
    }

    fn to_f64(self) -> f64 {
        match self {
            Number::Exact(decimal) => decimal.to_f64().unwrap_or(f64::NAN),
            Number::Approx(float) => float,
        }
    }
}

/// `mantissa` × 10^`exponent` as a [`Decimal`], if it fits without rounding.
fn exact_decimal(mantissa: &str, exponent: i64) -> Option<Decimal> {
    let mut value = Decimal::from_str_exact(mantissa).ok()?;
    if value.is_zero() {
        return Some(value);
    }
    let scale = i64::from(value.scale());
    if exponent <= scale {
        let new_scale = u32::try_from(scale - exponent).ok().filter(|scale| *scale <= Decimal::MAX_SCALE)?;
        value.set_scale(new_scale).ok()?;
        return Some(value);
    }
    // Beyond 29 more powers of ten, every non-zero mantissa overflows.
    let factor = exponent - scale;
    if factor > 29 {
        return None;
    }
    value.set_scale(0).ok()?;
    for _ in 0..factor {
        value = value.checked_mul(Decimal::TEN)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: &str) {
        let got = match Number::parse(text) {
            Some(Number::Exact(decimal)) => format!("exact {decimal}"),
            Some(Number::Approx(float)) => format!("approx {float:e}"),
            None => "not a number".to_owned(),
        };
        assert_eq!(got, expect, "{text:?}");
    }

    #[test]
    fn what_looks_like_a_number() {
        check("100", "exact 100");
        check(" -3.50 ", "exact -3.50");
        check("+7", "exact 7");
        check("007", "exact 7");
        check("1e3", "exact 1000");
        check("1.5E-2", "exact 0.015");
        check("12.5e1", "exact 125");
        check("1.50e1", "exact 15.0");
        check("0e999999999999999999999", "exact 0");
        check("-0", "exact 0");
        check("0.0000000000000000000000000001", "exact 0.0000000000000000000000000001");
        check("0.00000000000000000000000000001", "approx 1e-29");
        check("123456789012345678901234567890", "approx 1.2345678901234568e29");
        check("1e400", "approx inf");
        for text in
            ["", " ", "1,000", "5.", ".5", "0x10", "NaN", "inf", "1e", "1e+", "--1", "+-1", "1 2", "١٢"]
        {
            check(text, "not a number");
        }
    }

    #[test]
    fn json_floats_read_through_their_shortest_text() {
        let of = |json: &str| Number::of_value(&serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(of("19.99"), Number::Exact("19.99".parse().unwrap()));
        assert_eq!(of("100.10"), Number::Exact("100.1".parse().unwrap()));
        assert_eq!(of("-12"), Number::Exact(Decimal::from(-12)));
        assert_eq!(of("18446744073709551615"), Number::Exact(Decimal::from(u64::MAX)));
        assert_eq!(of("1.5e-7"), Number::Exact("0.00000015".parse().unwrap()));
        assert_eq!(of("1e300"), Number::Approx(1e300));
        assert_eq!(of("\"12\""), Number::Exact(Decimal::from(12)));
    }

    #[test]
    fn exact_numbers_compare_exactly_and_approximate_ones_as_floats() {
        let big = Number::parse("12345678901234567890123456789").unwrap();
        let bigger = Number::parse("12345678901234567890123456790").unwrap();
        assert_eq!(big.compare(bigger), Some(Ordering::Less));
        assert_eq!(Number::parse("1.0").unwrap().compare(Number::parse("1").unwrap()), Some(Ordering::Equal));
        assert_eq!(
            Number::parse("1e300").unwrap().compare(Number::parse("5").unwrap()),
            Some(Ordering::Greater)
        );
    }
}
