//! [`Money`]: an exact amount of yuan in fen (hundredths), parsed from and written as a decimal string.
//!
//! YouZan writes every amount as a decimal string with at most two fraction digits, so an integer
//! count of fen is exact for every amount the format can express, and adding them never rounds. A
//! general decimal type (`rust_decimal`) would do the same work with a larger dependency and slower
//! arithmetic; the format does not need its scale changes or division.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The largest amount one money field may hold, in fen (`i64::MAX`, about 9.2 × 10¹⁶ yuan).
///
/// Sums are kept in `i128`, so adding 2⁶⁴ amounts of this size cannot overflow.
const MAX_FIELD_FEN: i128 = i64::MAX as i128;

/// An exact, non-negative amount of money in fen; sums of amounts are exact.
///
/// Written with two fraction digits, as YouZan writes money:
///
/// ```
/// use batch_tasks::youzan::Money;
///
/// let price: Money = "281.7".parse().unwrap();
/// assert_eq!(price.to_string(), "281.70");
/// assert_eq!((price + "0.30".parse().unwrap()).to_string(), "282.00");
/// assert_eq!(Money::from_fen(5).to_string(), "0.05");
/// assert!("1.234".parse::<Money>().is_err());
/// assert!("-1.00".parse::<Money>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money {
    fen: i128,
}

/// Why a text is not an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The text is empty.
    #[error("is empty")]
    Empty,
    /// The text starts with a minus sign.
    #[error("is negative")]
    Negative,
    /// More than two digits follow the decimal point.
    #[error("has more than two fraction digits")]
    TooManyFractionDigits,
    /// The text is not digits with an optional point and one or two fraction digits.
    #[error("is not a decimal number")]
    NotDecimal,
    /// The amount does not fit in a field (more than about 9.2 × 10¹⁶ yuan).
    #[error("is too large")]
    TooLarge,
}

impl Money {
    /// Zero.
    pub const ZERO: Money = Money { fen: 0 };

    /// The amount of `fen` hundredths of a yuan.
    pub fn from_fen(fen: i64) -> Money {
        Money { fen: i128::from(fen) }
    }

    /// The amount in fen.
    pub fn fen(self) -> i128 {
        self.fen
    }

    /// Parses a decimal string: ASCII digits, optionally a point followed by one or two digits; no
    /// sign, no exponent, no spaces.
    ///
    /// ```
    /// use batch_tasks::youzan::{Money, MoneyError};
    ///
    /// assert_eq!(Money::parse("12").unwrap(), Money::from_fen(1200));
    /// assert_eq!(Money::parse("0.5").unwrap(), Money::from_fen(50));
    /// assert_eq!(Money::parse("1.005"), Err(MoneyError::TooManyFractionDigits));
    /// assert_eq!(Money::parse("-3"), Err(MoneyError::Negative));
    /// assert_eq!(Money::parse("1e3"), Err(MoneyError::NotDecimal));
    /// ```
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(MoneyError::Empty);
        }
        if bytes[0] == b'-' {
            return Err(MoneyError::Negative);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole.as_bytes(), Some(fraction.as_bytes())),
            None => (bytes, None),
        };
        if whole.is_empty() || !whole.iter().all(u8::is_ascii_digit) {
            return Err(MoneyError::NotDecimal);
        }
        let fraction_fen = match fraction {
            None => 0,
            Some(digits) if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) => {
                return Err(MoneyError::NotDecimal);
            }
            Some(digits) if digits.len() > 2 => return Err(MoneyError::TooManyFractionDigits),
            Some([tenths]) => i128::from(tenths - b'0') * 10,
            Some([tenths, hundredths]) => i128::from(tenths - b'0') * 10 + i128::from(hundredths - b'0'),
            Some(_) => return Err(MoneyError::NotDecimal),
        };
        let mut yuan: i128 = 0;
        for digit in whole {
            yuan = yuan * 10 + i128::from(digit - b'0');
            if yuan > MAX_FIELD_FEN {
                return Err(MoneyError::TooLarge);
            }
        }
        let fen = yuan * 100 + fraction_fen;
        if fen > MAX_FIELD_FEN {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money { fen })
    }

    /// The sum of `self` and `other`, saturating (an `i128` of fen does not overflow for any sum of
    /// field amounts a run can see).
    #[must_use]
    pub fn saturating_add(self, other: Money) -> Money {
        Money { fen: self.fen.saturating_add(other.fen) }
    }
}

impl std::ops::Add for Money {
    type Output = Money;

    fn add(self, other: Money) -> Money {
        self.saturating_add(other)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        *self = self.saturating_add(other);
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Money::saturating_add)
    }
}

impl std::str::FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Money, MoneyError> {
        Money::parse(text)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.fen < 0 { "-" } else { "" };
        let fen = self.fen.unsigned_abs();
        write!(f, "{sign}{}.{:02}", fen / 100, fen % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        struct MoneyVisitor;

        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string with at most two fraction digits")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Money, E> {
                Money::parse(text).map_err(|error| E::custom(format_args!("{text:?} {error}")))
            }
        }

        deserializer.deserialize_str(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_every_shape_the_format_allows() {
        for (text, fen) in [("0", 0), ("0.00", 0), ("7", 700), ("7.1", 710), ("7.01", 701), ("007.50", 750)] {
            assert_eq!(Money::parse(text), Ok(Money::from_fen(fen)), "{text}");
        }
    }

    #[test]
    fn rejects_what_the_format_does_not_allow() {
        for (text, error) in [
            ("", MoneyError::Empty),
            ("-0.01", MoneyError::Negative),
            ("1.234", MoneyError::TooManyFractionDigits),
            ("1.230", MoneyError::TooManyFractionDigits),
            ("1.", MoneyError::NotDecimal),
            (".5", MoneyError::NotDecimal),
            ("+1", MoneyError::NotDecimal),
            (" 1", MoneyError::NotDecimal),
            ("1,00", MoneyError::NotDecimal),
            ("1e2", MoneyError::NotDecimal),
            ("１２", MoneyError::NotDecimal),
            ("1.2.3", MoneyError::NotDecimal),
            ("92233720368547758.08", MoneyError::TooLarge),
            ("99999999999999999999999999999999999999999", MoneyError::TooLarge),
        ] {
            assert_eq!(Money::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(Money::parse("92233720368547758.07").unwrap().fen(), i128::from(i64::MAX));
    }

    #[test]
    fn serialises_as_a_two_digit_string_and_reads_back() {
        let amount = Money::from_fen(28170);
        assert_eq!(serde_json::to_string(&amount).unwrap(), r#""281.70""#);
        assert_eq!(serde_json::from_str::<Money>(r#""281.70""#).unwrap(), amount);
        assert!(serde_json::from_str::<Money>("281.7").is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_is_the_identity(fen in 0..=i64::MAX) {
            let amount = Money::from_fen(fen);
            prop_assert_eq!(Money::parse(&amount.to_string()), Ok(amount));
        }

        #[test]
        fn sums_are_exact(amounts in proptest::collection::vec(0..1_000_000_000i64, 0..50)) {
            let sum: Money = amounts.iter().map(|fen| Money::from_fen(*fen)).sum();
            prop_assert_eq!(sum.fen(), amounts.iter().map(|fen| i128::from(*fen)).sum::<i128>());
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".*") {
            let _ = Money::parse(&text);
        }
    }
}
