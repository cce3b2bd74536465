//! Task identifiers: UUID v7, so that ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::ModelError;

/// A task's identifier: a UUID version 7, written as the usual lowercase hyphenated string
/// (`"01890a5d-ac96-774b-bcce-b302099a8057"`).
///
/// Version 7 UUIDs start with a millisecond timestamp, and ids made by one process are ordered by
/// creation, so sorting ids (or their strings) sorts tasks by creation time, which the store's
/// `list_tasks` relies on.
///
/// Parsing accepts any UUID (any version; hyphenated, simple, braced or URN form, any case) and normalises
/// it to the hyphenated lowercase form; anything else is a `VALIDATION_ERROR`.
///
/// ```
/// use batch_model::TaskId;
///
/// let first = TaskId::new();
/// let second = TaskId::new();
/// assert!(first < second);
/// assert!(first.to_string() < second.to_string());
///
/// let parsed: TaskId = first.to_string().parse()?;
/// assert_eq!(parsed, first);
/// assert!("task-1".parse::<TaskId>().is_err());
/// # Ok::<(), batch_model::ModelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(Uuid);

/// The order of the ids' bytes (a UUID's own order; for version 7 ids, their creation order),
/// compared as one big-endian 128-bit number instead of byte slice by byte slice: the stores keep
/// ids in ordered maps and sets (their writes lock rows in id order), a dozen comparisons a task.
impl Ord for TaskId {
    fn cmp(&self, other: &TaskId) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for TaskId {
    fn partial_cmp(&self, other: &TaskId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TaskId {
    /// A fresh id for a task created now; later than every id this process made before.
    // No `Default`: a default id would be a fresh random one, which surprises inside
    // `..Default::default()` and in derived defaults of containing types.
    #[allow(clippy::new_without_default)]
    pub fn new() -> TaskId {
        TaskId(Uuid::now_v7())
    }

    /// The id's 16 bytes (a UUID's binary form, as PostgreSQL's `uuid` stores it).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The id of these 16 bytes (a UUID's binary form), as [`as_bytes`](TaskId::as_bytes) gives them.
    pub fn from_bytes(bytes: [u8; 16]) -> TaskId {
        TaskId(Uuid::from_bytes(bytes))
    }

    /// The id's text, as `Display` writes it, in `buffer`: for writers that build text themselves
    /// without the formatting machinery.
    ///
    /// ```
    /// let id: batch_model::TaskId = "01a24c1e-ac14-7366-aef5-ac730e4420ba".parse()?;
    /// assert_eq!(id.encode(&mut [0; 36]), id.to_string());
    /// # Ok::<(), batch_model::ModelError>(())
    /// ```
    pub fn encode<'b>(&self, buffer: &'b mut [u8; 36]) -> &'b str {
        self.0.hyphenated().encode_lower(buffer)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), formatter)
    }
}

impl FromStr for TaskId {
    type Err = ModelError;

    fn from_str(text: &str) -> Result<TaskId, ModelError> {
        Uuid::try_parse(text)
            .map(TaskId)
            .map_err(|source| ModelError::InvalidTaskId { value: text.to_owned(), source })
    }
}

impl Serialize for TaskId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TaskId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ErrorCode;

    proptest! {
        #[test]
        fn ids_order_as_their_uuids_do(first in any::<[u8; 16]>(), second in any::<[u8; 16]>(), shared in 0usize..=16) {
            // Ids that share their first `shared` bytes, so that every byte decides an order once.
            let mut second = second;
            second[..shared].copy_from_slice(&first[..shared]);
            let (a, b) = (TaskId::from_bytes(first), TaskId::from_bytes(second));
            prop_assert_eq!(a.cmp(&b), a.0.cmp(&b.0));
            prop_assert_eq!(a.partial_cmp(&b), Some(a.0.cmp(&b.0)));
            prop_assert_eq!(a.cmp(&b), first.cmp(&second));
        }
    }

    #[test]
    fn new_ids_are_version_7_and_strictly_increasing() {
        let ids: Vec<TaskId> = (0..2000).map(|_| TaskId::new()).collect();
        assert!(ids.iter().all(|id| id.0.get_version_num() == 7));
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let texts: Vec<String> = ids.iter().map(TaskId::to_string).collect();
        assert!(texts.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn bytes_round_trip() {
        let id = TaskId::new();
        assert_eq!(TaskId::from_bytes(*id.as_bytes()), id);
    }

    #[test]
    fn parsing_normalises_to_lowercase_hyphenated() {
        let canonical = "01890a5d-ac96-774b-bcce-b302099a8057";
        for form in [
            canonical,
            "01890A5D-AC96-774B-BCCE-B302099A8057",
            "01890a5dac96774bbcceb302099a8057",
            "{01890a5d-ac96-774b-bcce-b302099a8057}",
            "urn:uuid:01890a5d-ac96-774b-bcce-b302099a8057",
        ] {
            assert_eq!(form.parse::<TaskId>().unwrap().to_string(), canonical, "{form}");
        }
    }

    #[test]
    fn malformed_ids_are_validation_errors_naming_the_text() {
        for text in
            ["", "task-1", "01890a5d-ac96-774b-bcce-b302099a805", "01890a5d-ac96-774b-bcce-b302099a8057x"]
        {
            let error = text.parse::<TaskId>().unwrap_err();
            assert_eq!(error.code(), ErrorCode::ValidationError);
            assert!(matches!(&error, ModelError::InvalidTaskId { value, .. } if value == text));
            assert!(error.to_string().starts_with(&format!("invalid task id {text:?}")));
        }
    }

    #[test]
    fn serialises_as_a_plain_string() {
        let id: TaskId = "01890a5d-ac96-774b-bcce-b302099a8057".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""01890a5d-ac96-774b-bcce-b302099a8057""#);
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
        let error = serde_json::from_str::<TaskId>(r#""nope""#).unwrap_err().to_string();
        assert!(error.starts_with("invalid task id \"nope\""), "{error}");
    }
}
