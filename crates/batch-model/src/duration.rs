//! How the model writes durations in JSON: one rule for every `Duration` field.
//!
//! A duration is serialised as a humantime string (`"30s"`, `"1m 30s"`, `"500ms"`), readable in stored
//! tasks and CLI output and exact to the nanosecond. Deserialising also accepts a non-negative integer
//! number of milliseconds (`30000`), the form most HTTP clients produce.
//!
//! The text is humantime's, written here into a stack buffer: humantime's `Display` writes each
//! part through `write!`, 800 instructions for `"30s"`, and a stored task's record holds its timeout
//! at every write (docs/BENCHMARKS.md, m3). Microseconds take the unit humantime gives them (`us`,
//! or `µs` with its feature `mu`), asked of it once.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `duration` as a humantime string.
pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    match DurationText::new(*duration).as_str() {
        Some(text) => serializer.serialize_str(text),
        None => serializer.collect_str(&humantime::format_duration(*duration)),
    }
}

/// A duration's JSON text, without its quotes, as the model writes it (humantime's): for writers
/// that build JSON themselves (the stores' records). Made on the stack.
///
/// ```
/// use std::time::Duration;
/// use batch_model::DurationText;
///
/// assert_eq!(DurationText::new(Duration::from_millis(90_500)).as_bytes(), b"1m 30s 500ms");
/// assert_eq!(DurationText::new(Duration::ZERO).as_bytes(), b"0s");
/// ```
#[derive(Debug, Clone)]
pub struct DurationText(Text);

#[derive(Debug, Clone)]
enum Text {
    Written([u8; LONGEST], usize),
    Humantime(String),
}

impl DurationText {
    /// The text of `duration`.
    pub fn new(duration: Duration) -> DurationText {
        let mut text = Written::default();
        match humantime_text(duration, &mut text) {
            Some(()) => DurationText(Text::Written(text.bytes, text.len)),
            None => DurationText(Text::Humantime(humantime::format_duration(duration).to_string())),
        }
    }

    /// The duration of a humantime text, as the model reads one; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Duration> {
        parse(text).ok()
    }

    /// The text: UTF-8 (ASCII but for humantime's `µs`), with nothing a JSON string escapes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Text::Written(text, len) => text.get(..*len).unwrap_or_default(),
            Text::Humantime(text) => text.as_bytes(),
        }
    }

    /// The text as a `str` (checked: the bytes written here are digits, letters and spaces).
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }
}

/// Room for the longest text [`humantime_text`] writes: 64 bytes, twelve digits of years, then
/// `" 11months 30days 23h 59m 59s 999ms 999µs 999ns"`.
const LONGEST: usize = 72;

/// A stack buffer for a duration's text.
struct Written {
    bytes: [u8; LONGEST],
    len: usize,
}

impl Default for Written {
    fn default() -> Written {
        Written { bytes: [0; LONGEST], len: 0 }
    }
}

impl Written {
    #[cfg(test)]
    fn written(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Appends `bytes`; `None` when they do not fit (never, for the texts written here).
    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.bytes.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// Appends `value`'s decimal digits, written in place from the last.
    fn push_number(&mut self, value: u64) -> Option<()> {
        let digits = value.checked_ilog10().unwrap_or(0) as usize + 1;
        let end = self.len.checked_add(digits)?;
        let mut rest = value;
        for byte in self.bytes.get_mut(self.len..end)?.iter_mut().rev() {
            // A digit: below 10.
            *byte = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        self.len = end;
        Some(())
    }

    /// humantime's part: `" "` unless first, the value and its unit, nothing when the value is 0.
    #[inline(always)]
    fn part(&mut self, value: u64, unit: &[u8], plural: bool) -> Option<()> {
        if value == 0 {
            return Some(());
        }
        if self.len > 0 {
            self.push(b" ")?;
        }
        self.push_number(value)?;
        self.push(unit)?;
        if plural && value > 1 {
            self.push(b"s")?;
        }
        Some(())
    }
}

/// How humantime spells a microsecond (`us`, or `µs` with its feature `mu`), asked of it once.
fn micros_unit() -> &'static [u8] {
    static UNIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    UNIT.get_or_init(|| {
        let text = humantime::format_duration(Duration::from_micros(1)).to_string();
        text.strip_prefix('1').unwrap_or("us").to_owned()
    })
    .as_bytes()
}

/// Writes `duration` as humantime's `format_duration` does (`None` if the text would not fit,
/// which it always does).
fn humantime_text(duration: Duration, text: &mut Written) -> Option<()> {
    let (secs, nanos) = (duration.as_secs(), duration.subsec_nanos());
    if secs == 0 && nanos == 0 {
        return text.push(b"0s");
    }
    // humantime's calendar: a year of 365.25 days, a month of 30.44.
    let (years, year_secs) = (secs / 31_557_600, secs % 31_557_600);
    let (months, month_secs) = (year_secs / 2_630_016, year_secs % 2_630_016);
    let (days, day_secs) = (month_secs / 86_400, month_secs % 86_400);
    text.part(years, b"year", true)?;
    text.part(months, b"month", true)?;
    text.part(days, b"day", true)?;
    text.part(day_secs / 3_600, b"h", false)?;
    text.part(day_secs % 3_600 / 60, b"m", false)?;
    text.part(day_secs % 60, b"s", false)?;
    text.part(u64::from(nanos / 1_000_000), b"ms", false)?;
    text.part(u64::from(nanos / 1_000 % 1_000), micros_unit(), false)?;
    text.part(u64::from(nanos % 1_000), b"ns", false)
}

/// Reads a humantime string or an integer number of milliseconds.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// Parses the text form, with the message the model uses everywhere for a bad duration.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("is not a duration ({text:?}: {error})"))
}

/// Converts the integer form (milliseconds); `None` when the number is negative.
pub(crate) fn from_millis(millis: i128) -> Option<Duration> {
    u64::try_from(millis).ok().map(Duration::from_millis)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a duration such as \"30s\" or \"1m 30s\", or a whole number of milliseconds")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(|reason| E::custom(format!("duration {reason}")))
    }

    fn visit_u64<E: de::Error>(self, millis: u64) -> Result<Duration, E> {
        Ok(Duration::from_millis(millis))
    }

    fn visit_i64<E: de::Error>(self, millis: i64) -> Result<Duration, E> {
        from_millis(i128::from(millis))
            .ok_or_else(|| E::custom(format!("duration must not be negative, got {millis}")))
    }
}

/// The same rule for `Option<Duration>`: `null` is `None`.
pub(crate) mod option {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `Some` as a humantime string, `None` as `null`.
    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null` or a duration as [`super::deserialize`] does.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("null or a duration")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<Duration>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<Duration>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(deserializer).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        duration: Duration,
        #[serde(with = "super::option", default)]
        maybe: Option<Duration>,
    }

    fn check(json: serde_json::Value, expected: Duration) {
        let holder: Holder = serde_json::from_value(json).unwrap();
        assert_eq!(holder.duration, expected);
    }

    #[test]
    fn writes_humantime_strings() {
        let holder = Holder { duration: Duration::from_millis(90_500), maybe: None };
        assert_eq!(
            serde_json::to_value(&holder).unwrap(),
            serde_json::json!({ "duration": "1m 30s 500ms", "maybe": null })
        );
        let zero = Holder { duration: Duration::ZERO, maybe: Some(Duration::from_secs(30)) };
        assert_eq!(
            serde_json::to_value(&zero).unwrap(),
            serde_json::json!({ "duration": "0s", "maybe": "30s" })
        );
    }

    /// The text the model's serde writes.
    fn text(duration: Duration) -> String {
        serde_json::to_value(Holder { duration, maybe: None }).unwrap()["duration"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_text_is_humantime_s_own() {
        let limits = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(1),
            Duration::new(59, 999_000_999),
            Duration::new(31_557_599, 0),
            Duration::new(31_557_600 * 2 + 2_630_016 * 2 + 86_400 * 2 + 3_661, 1_000_001),
            Duration::MAX,
            Duration::new(u64::MAX, 999_999_000),
            Duration::new(u64::MAX, 0),
        ];
        for duration in limits {
            assert_eq!(text(duration), humantime::format_duration(duration).to_string(), "{duration:?}");
        }
        // Twelve digits of years and every other part: well within the buffer.
        let long =
            Duration::new(584_542_046_089 * 31_557_600 + 11 * 2_630_016 + 29 * 86_400 + 86_399, 999_000_999);
        let mut written = super::Written::default();
        assert!(super::humantime_text(long, &mut written).is_some());
        assert_eq!(written.written(), b"584542046089years 11months 29days 23h 59m 59s 999ms 999ns");
    }

    proptest::proptest! {
        #[test]
        fn any_duration_reads_as_humantime_writes_it(secs in proptest::prelude::any::<u64>(), nanos in 0u32..1_000_000_000, small in 0u64..200_000) {
            for duration in [Duration::new(secs, nanos), Duration::new(small, nanos), Duration::new(small, nanos / 1_000_000 * 1_000_000)] {
                let humantime = humantime::format_duration(duration).to_string();
                proptest::prop_assert_eq!(text(duration), humantime.as_str());
                let written = super::DurationText::new(duration);
                proptest::prop_assert_eq!(written.as_bytes(), humantime.as_bytes());
                // Written here, never left to humantime.
                let mut written = super::Written::default();
                proptest::prop_assert!(super::humantime_text(duration, &mut written).is_some());
            }
        }
    }

    #[test]
    fn reads_strings_and_integer_milliseconds() {
        check(serde_json::json!({ "duration": "30s" }), Duration::from_secs(30));
        check(serde_json::json!({ "duration": "1m 30s" }), Duration::from_secs(90));
        check(serde_json::json!({ "duration": "500ms" }), Duration::from_millis(500));
        check(serde_json::json!({ "duration": 1500 }), Duration::from_millis(1500));
        check(serde_json::json!({ "duration": 0 }), Duration::ZERO);
        let holder: Holder = serde_json::from_str(r#"{"duration":"1s","maybe":250}"#).unwrap();
        assert_eq!(holder.maybe, Some(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_negative_fractional_and_malformed_durations() {
        for (json, needle) in [
            (r#"{"duration":-5}"#, "must not be negative, got -5"),
            (r#"{"duration":1.5}"#, "a whole number of milliseconds"),
            (r#"{"duration":"soon"}"#, "is not a duration (\"soon\""),
            (r#"{"duration":"30"}"#, "is not a duration (\"30\""),
            (r#"{"duration":true}"#, "a whole number of milliseconds"),
        ] {
            let error = serde_json::from_str::<Holder>(json).unwrap_err().to_string();
            assert!(error.contains(needle), "{json}: {error}");
        }
    }
}
