//! How the model writes and reads timestamps in JSON: one rule for every `DateTime<Utc>` field.
//!
//! The text written is exactly chrono's own serde form (RFC 3339 in UTC with `Z`, the fraction of a
//! second in 0, 3, 6 or 9 digits, whichever is shortest and exact), so stored records, API answers
//! and anything parsed by chrono read the same. It is written from the time's fields into a stack buffer
//! instead of through chrono's `Display`, which serde_json feeds character by character to its
//! escaper: that took about half the time of serialising a whole task (a task has four to six
//! timestamps and is serialised at every change the PostgreSQL and SQLite stores write). Times
//! outside years 0–9999, and leap seconds, take chrono's own path.
//!
//! Reading accepts what chrono's serde accepts, with the same results and the same errors: the form
//! written here (`YYYY-MM-DDTHH:MM:SS`, a fraction of 1 to 9 digits, `Z`) is read from its digits,
//! and anything else (an offset, a leap second, a bad date, ...) is handed to chrono's parser.

use std::fmt;

use chrono::{DateTime, Datelike as _, FixedOffset, NaiveDate, Timelike as _, Utc};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serialize as _, Serializer};

/// The longest text of the fast path: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// Writes `at` as chrono's serde does.
pub(crate) fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; LONGEST];
    match rfc3339(at, &mut text).and_then(|len| std::str::from_utf8(&text[..len]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => at.serialize(serializer),
    }
}

/// A timestamp's JSON text, without its quotes, as the model writes it: for writers that build JSON
/// themselves (the stores' records). Made on the stack; a time the fast path leaves to chrono (a
/// year outside 0–9999, a leap second) holds chrono's own text.
///
/// ```
/// use batch_model::TimestampText;
/// use chrono::DateTime;
///
/// let at = DateTime::from_timestamp(1_800_000_000, 250_000_000).unwrap();
/// assert_eq!(TimestampText::new(&at).as_bytes(), b"2027-01-15T08:00:00.250Z");
/// assert_eq!(serde_json::to_string(&at).unwrap(), "\"2027-01-15T08:00:00.250Z\"");
/// ```
#[derive(Debug, Clone)]
pub struct TimestampText(Text);

#[derive(Debug, Clone)]
enum Text {
    Written([u8; LONGEST], usize),
    Chrono(String),
}

impl TimestampText {
    /// The text of `at`.
    pub fn new(at: &DateTime<Utc>) -> TimestampText {
        let mut text = [0u8; LONGEST];
        match rfc3339(at, &mut text) {
            Some(len) => TimestampText(Text::Written(text, len)),
            None => TimestampText(Text::Chrono(match serde_json::to_value(at) {
                Ok(serde_json::Value::String(text)) => text,
                _ => at.to_rfc3339(),
            })),
        }
    }

    /// The time of a text in the form written here (`YYYY-MM-DDTHH:MM:SS`, a fraction of 1 to 9
    /// digits, `Z`), as the model reads it; `None` for any other text, which the model's serde
    /// (chrono's parser) reads or refuses.
    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        parse_utc(text.as_bytes())
    }

    /// The text: ASCII, with nothing a JSON string escapes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Text::Written(text, len) => text.get(..*len).unwrap_or_default(),
            Text::Chrono(text) => text.as_bytes(),
        }
    }
}

/// Writes `at` into `out` and returns its length, or `None` for a time the fast path leaves to
/// chrono (a year outside 0–9999, a leap second).
fn rfc3339(at: &DateTime<Utc>, out: &mut [u8; LONGEST]) -> Option<usize> {
    // The fields read from the naive time: each of `DateTime`'s own accessors applies the (zero)
    // offset again, seven times a timestamp.
    let at = at.naive_utc();
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let (month, day, hour, minute, second) = (at.month(), at.day(), at.hour(), at.minute(), at.second());
    put(out, 0, year / 100);
    put(out, 2, year % 100);
    out[4] = b'-';
    put(out, 5, month);
    out[7] = b'-';
    put(out, 8, day);
    out[10] = b'T';
    put(out, 11, hour);
    out[13] = b':';
    put(out, 14, minute);
    out[16] = b':';
    put(out, 17, second);
    let (fraction, digits) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    let mut len = 19;
    if digits > 0 {
        out[len] = b'.';
        let mut rest = fraction;
        for position in (len + 1..=len + digits).rev() {
            out[position] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        len += digits + 1;
    }
    out[len] = b'Z';
    Some(len + 1)
}

/// Reads a time as chrono's serde does.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(TimeVisitor)
}

struct TimeVisitor;

impl Visitor<'_> for TimeVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // chrono's words, so that a wrong type reads the same.
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        match parse_utc(text.as_bytes()) {
            Some(at) => Ok(at),
            None => text.parse::<DateTime<FixedOffset>>().map(|at| at.with_timezone(&Utc)).map_err(E::custom),
        }
    }
}

/// The form [`serialize`] writes, read from its digits; `None` for any other text (chrono decides).
fn parse_utc(text: &[u8]) -> Option<DateTime<Utc>> {
    if text.len() < 20 || text.len() > LONGEST || text[text.len() - 1] != b'Z' {
        return None;
    }
    let digits = |from: usize, count: usize| -> Option<u32> {
        text.get(from..from + count)?
            .iter()
            .try_fold(0u32, |value, byte| byte.is_ascii_digit().then(|| value * 10 + u32::from(byte - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|(at, byte)| text[*at] != *byte) {
        return None;
    }
    let year = i32::try_from(digits(0, 4)?).ok()?;
    let nanos = match text.len() - 1 - 19 {
        0 => 0,
        fraction if text[19] == b'.' && fraction >= 2 => {
            let count = fraction - 1;
            digits(20, count)? * 10u32.pow(u32::try_from(9 - count).ok()?)
        }
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, digits(5, 2)?, digits(8, 2)?)?
        // A leap second (`:60`) is refused here and left to chrono.
        .and_hms_nano_opt(digits(11, 2)?, digits(14, 2)?, digits(17, 2)?, nanos)
        .map(|time| time.and_utc())
}

/// Two decimal digits of `value` (below 100) at `at`.
fn put(out: &mut [u8; LONGEST], at: usize, value: u32) {
    out[at] = b'0' + (value / 10 % 10) as u8;
    out[at + 1] = b'0' + (value % 10) as u8;
}

/// The same rule for `Option<DateTime<Utc>>`: `None` is `null`.
pub(crate) mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

    use super::Time;

    /// Writes `at` as chrono's serde does, `null` for `None`.
    pub(crate) fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        at.map(Time).serialize(serializer)
    }

    /// Reads `null` as `None`, a time as chrono's serde does.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<Time>::deserialize(deserializer).map(|at| at.map(|Time(at)| at))
    }
}

/// A time under this module's rule, for serde's own handling of `Option`.
struct Time(DateTime<Utc>);

impl serde::Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Time, D::Error> {
        deserialize(deserializer).map(Time)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeDelta};
    use proptest::prelude::*;

    use super::*;

    /// The text written, checked to be [`TimestampText`]'s too.
    fn fast(at: &DateTime<Utc>) -> String {
        let written =
            serialize(at, serde_json::value::Serializer).map(|value| value.to_string()).expect("written");
        let text = TimestampText::new(at);
        let unquoted = std::str::from_utf8(text.as_bytes()).expect("ASCII");
        assert_eq!(written, format!("\"{unquoted}\""));
        if let Text::Written(..) = text.0 {
            assert_eq!(TimestampText::parse(unquoted), Some(*at), "{unquoted}");
        }
        written
    }

    fn chrono(at: &DateTime<Utc>) -> String {
        serde_json::to_string(at).expect("written")
    }

    #[test]
    fn every_fraction_width_and_the_edges_of_the_fast_path_read_as_chronos() {
        let base =
            NaiveDate::from_ymd_opt(2026, 12, 7).and_then(|day| day.and_hms_opt(2, 5, 53)).expect("a date");
        let base = base.and_utc();
        for nanos in [0, 1, 999, 1_000, 1_000_000, 7_000_000, 325_558_621, 999_999_999, 120_000_000, 500_000]
        {
            let at = base + TimeDelta::nanoseconds(nanos);
            assert_eq!(fast(&at), chrono(&at), "{nanos} ns");
        }
        for (year, month, day) in
            [(0, 1, 1), (0, 2, 29), (1, 2, 3), (999, 12, 31), (1900, 2, 28), (1900, 3, 1), (1969, 12, 31)]
                .into_iter()
                .chain([
                    (1970, 1, 1),
                    (2000, 2, 29),
                    (2000, 3, 1),
                    (2100, 2, 28),
                    (2100, 3, 1),
                    (9999, 12, 31),
                ])
        {
            let at = NaiveDate::from_ymd_opt(year, month, day)
                .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 123_456_000))
                .expect("a date")
                .and_utc();
            assert_eq!(fast(&at), chrono(&at), "{year}-{month}-{day}");
        }
    }

    #[test]
    fn times_the_fast_path_leaves_to_chrono_are_written_by_chrono() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        let before_year_0 = NaiveDate::from_ymd_opt(-1, 12, 31)
            .and_then(|day| day.and_hms_opt(23, 59, 59))
            .expect("a date")
            .and_utc();
        let after_year_9999 = before_year_0 + TimeDelta::days(3_652_426);
        for at in [leap, before_year_0, after_year_9999, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            assert_eq!(fast(&at), chrono(&at));
            let mut out = [0; LONGEST];
            assert_eq!(rfc3339(&at, &mut out), None);
        }
    }

    #[test]
    fn an_optional_time_is_null_or_the_time() {
        let at = DateTime::from_timestamp(1_700_000_000, 42).expect("a time");
        let written = |value: Option<DateTime<Utc>>| {
            option::serialize(&value, serde_json::value::Serializer).expect("written").to_string()
        };
        assert_eq!(written(None), "null");
        assert_eq!(written(Some(at)), chrono(&at));
    }

    fn ours(json: &str) -> Result<DateTime<Utc>, String> {
        deserialize(&mut serde_json::Deserializer::from_str(json)).map_err(|error| error.to_string())
    }

    fn theirs(json: &str) -> Result<DateTime<Utc>, String> {
        serde_json::from_str::<DateTime<Utc>>(json).map_err(|error| error.to_string())
    }

    #[test]
    fn texts_outside_the_written_form_read_as_chrono_reads_them() {
        for text in [
            "2026-12-07T02:05:53Z",
            "2026-12-07T02:05:53.5Z",
            "2026-12-07T02:05:53.123456789Z",
            "2026-12-07T02:05:53.1234567891Z",
            "2026-12-07T02:05:53.Z",
            "2026-12-07t02:05:53z",
            "2026-12-07 02:05:53Z",
            "2026-12-07T02:05:53+02:00",
            "2026-12-07T02:05:53.25-05:30",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-07T24:00:00Z",
            "+12026-12-07T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-12-07T02:05:5xZ",
            "2026-12-07",
            "",
        ] {
            let json = serde_json::to_string(text).expect("a JSON string");
            assert_eq!(ours(&json), theirs(&json), "{text}");
        }
        for json in ["5", "null", "true", "[]", "{}"] {
            assert_eq!(ours(json), theirs(json), "{json}");
        }
        let read =
            |json: &str| option::deserialize(&mut serde_json::Deserializer::from_str(json)).expect("read");
        assert_eq!(read("null"), None);
        assert_eq!(read("\"2026-12-07T02:05:53Z\""), theirs("\"2026-12-07T02:05:53Z\"").ok());
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back_as_chrono_reads_it(seconds in -62_167_219_200i64..253_402_300_800, nanos in 0u32..1_000_000_000, width in 0usize..4) {
            let nanos = match width { 0 => 0, 1 => nanos / 1_000_000 * 1_000_000, 2 => nanos / 1_000 * 1_000, _ => nanos };
            let at = DateTime::from_timestamp(seconds, nanos).expect("in range");
            let json = fast(&at);
            prop_assert_eq!(ours(&json), Ok(at));
            prop_assert_eq!(theirs(&json), Ok(at));
        }

        #[test]
        fn texts_near_the_written_form_read_as_chrono_reads_them(
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,11})?(Z|z|\\+01:00|-00:30|)"
        ) {
            let json = serde_json::to_string(&text).expect("a JSON string");
            prop_assert_eq!(ours(&json), theirs(&json));
        }

        #[test]
        fn any_time_reads_as_chronos(seconds in -62_167_219_200i64..253_402_300_800, nanos in 0u32..1_000_000_000, width in 0usize..4) {
            // Fractions of each width, not only the 9-digit ones a uniform draw gives.
            let nanos = match width { 0 => 0, 1 => nanos / 1_000_000 * 1_000_000, 2 => nanos / 1_000 * 1_000, _ => nanos };
            let at = DateTime::from_timestamp(seconds, nanos).expect("in range");
            prop_assert_eq!(fast(&at), chrono(&at));
        }
    }
}
