//! De-duplication by key: the first row with a key is kept, later ones are dropped.
//!
//! # Memory and exactness
//!
//! Exact de-duplication of an arbitrary file has to remember every key seen. [`Dedup`] remembers
//! each key's 128-bit hash (see [`key`]), not the key itself: 16 bytes a key, about
//! 40 bytes with the hash set's overhead, whatever the key's size. Two different keys share a hash
//! with a probability below 10⁻¹⁸ for a billion keys, so in practice the result is exact. The
//! number of distinct keys is bounded by `dedup_max_keys` (default 1 000 000, at most
//! 100 000 000): one key more fails the task with `CONFIGURATION_ERROR` rather than letting memory
//! grow without bound or de-duplicating inexactly.
//!
//! # Checkpoints
//!
//! [`DedupState`] is the set as checkpoint state: the sorted hashes as one hex string (32
//! characters a key) and the count of duplicates dropped. For large key sets this is the bulk of a
//! checkpoint; a runner may instead rebuild the set after a restart by feeding [`Dedup::add`] the
//! output rows written up to the checkpoint (the key fields are in them), which gives the same set.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch_process::config::DedupConfig;
use crate::batch_process::error::{BatchProcessError, RecordIssue};
use crate::batch_process::key;

/// The de-duplication stage: its key fields, its bound and the keys seen so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dedup {
    config: DedupConfig,
    seen: HashSet<u128>,
    duplicates: u64,
}

/// A row's key, computed by [`Dedup::key`] and remembered by [`Dedup::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DedupKey(u128);

impl DedupKey {
    /// The key's stable 128-bit hash (what a dedup key log stores).
    pub(crate) fn hash(self) -> u128 {
        self.0
    }
}

/// What [`Dedup`] puts in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct DedupState {
    /// The hashes of the keys seen, sorted, each as 32 lowercase hex digits, concatenated.
    pub hashes: String,
    /// Rows dropped as duplicates so far.
    pub duplicates: u64,
}

/// What de-duplication did, for the task's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DedupSummary {
    /// Distinct keys seen (rows kept).
    pub distinct_keys: u64,
    /// Rows dropped as duplicates.
    pub duplicates: u64,
}

impl Dedup {
    /// A stage that has seen nothing yet.
    pub(crate) fn new(config: DedupConfig) -> Dedup {
        Dedup { config, seen: HashSet::new(), duplicates: 0 }
    }

    /// The stage as a checkpoint left it. Fails with `STORAGE_ERROR` when the state is malformed
    /// or holds more keys than the bound.
    pub(crate) fn restore(config: DedupConfig, state: &DedupState) -> Result<Dedup, BatchProcessError> {
        let invalid = |reason: String| BatchProcessError::InvalidState { reason: format!("dedup: {reason}") };
        if !state.hashes.len().is_multiple_of(32) || !state.hashes.is_ascii() {
            return Err(invalid("the key hashes are not a list of 32-digit hex numbers".to_owned()));
        }
        let count = state.hashes.len() / 32;
        if count > config.max_keys {
            return Err(invalid(format!("{count} keys, more than dedup_max_keys ({})", config.max_keys)));
        }
        let mut seen = HashSet::with_capacity(count);
        for index in 0..count {
            let digits = &state.hashes[index * 32..(index + 1) * 32];
            let hash = u128::from_str_radix(digits, 16)
                .map_err(|_| invalid(format!("key hash {index} is not hex: {digits:?}")))?;
            seen.insert(hash);
        }
        Ok(Dedup { config, seen, duplicates: state.duplicates })
    }

    /// The key of `row`: the values of the key fields. A key field without a value (missing,
    /// `null`, blank) is a [`RecordIssue::MissingKey`]: such a row cannot be de-duplicated and goes
    /// to the dead letters.
    pub(crate) fn key(&self, row: &Value) -> Result<DedupKey, RecordIssue> {
        let mut values = Vec::with_capacity(self.config.key.len());
        for path in &self.config.key {
            match path.present(row) {
                Some(value) => values.push(value),
                None => return Err(RecordIssue::MissingKey { field: path.to_string() }),
            }
        }
        Ok(DedupKey(key::hash(&key::canonical_text(values))))
    }

    /// Remembers `key`: `true` the first time (keep the row), `false` after (drop it). Fails when
    /// a new key would pass `max_keys`; the set is then unchanged.
    pub(crate) fn insert(&mut self, key: DedupKey) -> Result<bool, BatchProcessError> {
        if self.seen.contains(&key.0) {
            self.duplicates += 1;
            return Ok(false);
        }
        if self.seen.len() >= self.config.max_keys {
            return Err(BatchProcessError::TooManyKeys { max_keys: self.config.max_keys });
        }
        self.seen.insert(key.0);
        Ok(true)
    }

    /// Forgets `key`, newly inserted by a row that a later stage then failed on.
    pub(crate) fn forget(&mut self, key: DedupKey) {
        self.seen.remove(&key.0);
    }

    /// [`key`](Dedup::key) then [`insert`](Dedup::insert): `Ok(Ok(true))` keep the row,
    /// `Ok(Ok(false))` drop it as a duplicate, `Ok(Err(issue))` send it to the dead letters,
    /// `Err(error)` fail the task.
    #[cfg(test)]
    pub(crate) fn add(&mut self, row: &Value) -> Result<Result<bool, RecordIssue>, BatchProcessError> {
        match self.key(row) {
            Ok(key) => self.insert(key).map(Ok),
            Err(issue) => Ok(Err(issue)),
        }
    }

    /// Distinct keys seen.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }

    /// Rows dropped as duplicates.
    #[cfg(test)]
    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The checkpoint state (deterministic: hashes sorted).
    pub(crate) fn state(&self) -> DedupState {
        let mut hashes: Vec<u128> = self.seen.iter().copied().collect();
        hashes.sort_unstable();
        let mut text = String::with_capacity(hashes.len() * 32);
        for hash in hashes {
            let _infallible = write!(text, "{hash:032x}");
        }
        DedupState { hashes: text, duplicates: self.duplicates }
    }

    /// What the stage did.
    pub(crate) fn finish(&self) -> DedupSummary {
        DedupSummary { distinct_keys: self.seen.len() as u64, duplicates: self.duplicates }
    }
}
