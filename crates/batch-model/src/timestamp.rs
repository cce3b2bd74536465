//! How the model writes timestamps in JSON: one rule for every `DateTime<Utc>` field.
//!
//! The text is exactly chrono's own serde form (RFC 3339 in UTC with `Z`, the fraction of a second
//! in 0, 3, 6 or 9 digits, whichever is shortest and exact), so stored records, API answers and
//! anything parsed by chrono read the same. It is written from the time's fields into a stack buffer
//! instead of through chrono's `Display`, which serde_json feeds character by character to its
//! escaper: that took about half the time of serialising a whole task (a task has four to six
//! timestamps and is serialised at every change the PostgreSQL and SQLite stores write). Times
//! outside years 0–9999, and leap seconds, take chrono's own path. Reading is chrono's, unchanged.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde::{Serialize as _, Serializer};

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

/// Writes `at` into `out` and returns its length, or `None` for a time the fast path leaves to
/// chrono (a year outside 0–9999, a leap second).
fn rfc3339(at: &DateTime<Utc>, out: &mut [u8; LONGEST]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    put(out, 0, year / 100);
    put(out, 2, year % 100);
    out[4] = b'-';
    put(out, 5, at.month());
    out[7] = b'-';
    put(out, 8, at.day());
    out[10] = b'T';
    put(out, 11, at.hour());
    out[13] = b':';
    put(out, 14, at.minute());
    out[16] = b':';
    put(out, 17, at.second());
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

/// Two decimal digits of `value` (below 100) at `at`.
fn put(out: &mut [u8; LONGEST], at: usize, value: u32) {
    out[at] = b'0' + (value / 10 % 10) as u8;
    out[at + 1] = b'0' + (value % 10) as u8;
}

/// The same rule for `Option<DateTime<Utc>>`: `None` is `null`.
pub(crate) mod option {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    /// Writes `at` as chrono's serde does, `null` for `None`.
    pub(crate) fn serialize<S: Serializer>(
        at: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_some(&super::Fast(at)),
            None => serializer.serialize_none(),
        }
    }
}

/// A time written by [`serialize`], for `serialize_some`.
struct Fast<'a>(&'a DateTime<Utc>);

impl serde::Serialize for Fast<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, serializer)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeDelta};
    use proptest::prelude::*;

    use super::*;

    fn fast(at: &DateTime<Utc>) -> String {
        serialize(at, serde_json::value::Serializer).map(|value| value.to_string()).expect("written")
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
            [(0, 1, 1), (1, 2, 3), (999, 12, 31), (1970, 1, 1), (2000, 2, 29), (9999, 12, 31)]
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
        for at in [leap, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
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

    proptest! {
        #[test]
        fn any_time_reads_as_chronos(seconds in -62_167_219_200i64..253_402_300_800, nanos in 0u32..1_000_000_000, width in 0usize..4) {
            // Fractions of each width, not only the 9-digit ones a uniform draw gives.
            let nanos = match width { 0 => 0, 1 => nanos / 1_000_000 * 1_000_000, 2 => nanos / 1_000 * 1_000, _ => nanos };
            let at = DateTime::from_timestamp(seconds, nanos).expect("in range");
            prop_assert_eq!(fast(&at), chrono(&at));
        }
    }
}
