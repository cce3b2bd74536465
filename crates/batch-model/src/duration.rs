//! How the model writes durations in JSON: one rule for every `Duration` field.
//!
//! A duration is serialised as a humantime string (`"30s"`, `"1m 30s"`, `"500ms"`), readable in stored
//! tasks and CLI output and exact to the nanosecond. Deserialising also accepts a non-negative integer
//! number of milliseconds (`30000`), the form most HTTP clients produce.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `duration` as a humantime string.
pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*duration))
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
