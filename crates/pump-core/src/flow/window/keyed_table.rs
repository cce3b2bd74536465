//! Per-key state bounded by a number of keys: least-recently-used order, idle times, per-key timers.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::flow::window::engine::instant_after;

#[derive(Debug)]
struct Entry<V> {
    value: V,
    /// The entry's place in the recency order (larger is more recent).
    stamp: u64,
    /// A stable identity for the timer index.
    id: u64,
    /// When the key last saw an element (tracked only with an idle timeout).
    seen: Option<Instant>,
    timer: Option<Instant>,
}

/// The state of each key, with the indexes that find the least recently used key and the earliest
/// timer without a scan.
#[derive(Debug)]
pub(crate) struct KeyedTable<K, V> {
    entries: HashMap<K, Entry<V>>,
    recency: BTreeMap<u64, K>,
    timers: BTreeMap<(Instant, u64), K>,
    next_stamp: u64,
}

impl<K, V> Default for KeyedTable<K, V> {
    fn default() -> Self {
        KeyedTable {
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_stamp: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V> KeyedTable<K, V> {
    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn stamp(&mut self) -> u64 {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        stamp
    }

    /// The state of `key`, marked as the most recently used, if the key is held.
    pub(crate) fn touch(&mut self, key: &K, now: Option<Instant>) -> Option<&mut V> {
        let newest = self.next_stamp.wrapping_sub(1);
        let entry = self.entries.get_mut(key)?;
        entry.seen = now;
        if entry.stamp != newest {
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            if let Some(key) = self.recency.remove(&entry.stamp) {
                self.recency.insert(stamp, key);
            }
            entry.stamp = stamp;
        }
        Some(&mut entry.value)
    }

    /// Adds `key` (which must not be held) as the most recently used.
    pub(crate) fn insert(&mut self, key: K, value: V, now: Option<Instant>) -> &mut V {
        if let Some(old) = self.remove(&key) {
            // Not expected: the caller checks first. Keep the indexes consistent anyway.
            drop(old);
        }
        let stamp = self.stamp();
        self.recency.insert(stamp, key.clone());
        let entry = Entry { value, stamp, id: stamp, seen: now, timer: None };
        &mut self.entries.entry(key).insert_entry(entry).into_mut().value
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.recency.remove(&entry.stamp);
        if let Some(timer) = entry.timer {
            self.timers.remove(&(timer, entry.id));
        }
        Some(entry.value)
    }

    /// Removes the least recently used key.
    pub(crate) fn pop_least_recent(&mut self) -> Option<(K, V)> {
        let (_, key) = self.recency.first_key_value()?;
        let key = key.clone();
        let value = self.remove(&key)?;
        Some((key, value))
    }

    /// When the least recently used key becomes idle.
    pub(crate) fn next_idle(&self, idle_timeout: Duration) -> Option<Instant> {
        let (_, key) = self.recency.first_key_value()?;
        let seen = self.entries.get(key)?.seen?;
        Some(instant_after(seen, idle_timeout))
    }

    /// Removes the least recently used key if it has been idle for `idle_timeout` at `now`.
    pub(crate) fn pop_idle(&mut self, now: Instant, idle_timeout: Duration) -> Option<(K, V)> {
        if self.next_idle(idle_timeout)? <= now { self.pop_least_recent() } else { None }
    }

    /// Sets (or clears) `key`'s timer.
    pub(crate) fn set_timer(&mut self, key: &K, timer: Option<Instant>) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if entry.timer == timer {
            return;
        }
        if let Some(old) = entry.timer {
            self.timers.remove(&(old, entry.id));
        }
        if let Some(new) = timer {
            self.timers.insert((new, entry.id), key.clone());
        }
        entry.timer = timer;
    }

    /// The earliest timer.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|((timer, _), _)| *timer)
    }

    /// Clears and returns the key of the earliest timer if it is due at `now`.
    pub(crate) fn pop_due_timer(&mut self, now: Instant) -> Option<K> {
        let entry = self.timers.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let key = entry.remove();
        if let Some(state) = self.entries.get_mut(&key) {
            state.timer = None;
        }
        Some(key)
    }

    /// The state of `key`, without changing its recency.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|entry| &mut entry.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_key() {
        let mut table = KeyedTable::default();
        table.insert("a", 1, None);
        table.insert("b", 2, None);
        table.insert("c", 3, None);
        assert!(table.touch(&"a", None).is_some());
        assert_eq!(table.pop_least_recent(), Some(("b", 2)));
        assert_eq!(table.pop_least_recent(), Some(("c", 3)));
        assert_eq!(table.pop_least_recent(), Some(("a", 1)));
        assert_eq!(table.pop_least_recent(), None);
        assert!(table.recency.is_empty());
    }

    #[test]
    fn timers_follow_their_keys() {
        let start = Instant::now();
        let mut table = KeyedTable::default();
        table.insert("a", (), None);
        table.insert("b", (), None);
        table.set_timer(&"a", Some(start + Duration::from_secs(2)));
        table.set_timer(&"b", Some(start + Duration::from_secs(1)));
        assert_eq!(table.next_timer(), Some(start + Duration::from_secs(1)));
        assert_eq!(table.pop_due_timer(start), None);
        assert_eq!(table.pop_due_timer(start + Duration::from_secs(5)), Some("b"));
        assert!(table.remove(&"a").is_some());
        assert_eq!(table.next_timer(), None);
    }
}
