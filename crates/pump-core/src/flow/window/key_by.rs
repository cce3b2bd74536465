//! `key_by`: the builder of the keyed operators.

use std::hash::Hash;
use std::marker::PhantomData;

use crate::flow::Via;
use crate::flow::window::{KeyedConfig, KeyedFold, KeyedScan, KeyedWindows, WindowSpec};

/// A stream split by key, waiting for what to do per key. Built by `key_by` on sources and flows.
///
/// Each method appends one keyed stage to the source or flow `key_by` was called on. The state of at
/// most [`max_keys`](KeyedConfig::max_keys) keys is held; see [`KeyedConfig`] for eviction.
#[must_use = "a keyed stream does nothing until `window`, `fold` or `scan` is called on it"]
pub struct KeyBy<Up, T, K, KF> {
    upstream: Up,
    key_fn: KF,
    config: KeyedConfig,
    marker: PhantomData<fn(T) -> K>,
}

impl<Up, T, K, KF> KeyBy<Up, T, K, KF> {
    pub(crate) fn new(upstream: Up, key_fn: KF, config: KeyedConfig) -> Self {
        KeyBy { upstream, key_fn, config, marker: PhantomData }
    }
}

impl<Up, T, K, KF> std::fmt::Debug for KeyBy<Up, T, K, KF> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBy").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<Up, T, K, KF> KeyBy<Up, T, K, KF>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    KF: FnMut(&T) -> K + Send + 'static,
{
    /// Windows per key, emitted as `(key, window)`: any window kind, built with its `new` function.
    ///
    /// Each key has its own windows: its own count (sequence numbers start at 0 per key), its own
    /// timers on the shared processing-time grid, its own watermark in event time (the key's largest
    /// timestamp minus the allowed lateness, as in Kafka Streams rather than Flink's operator-wide
    /// watermark). An evicted key's open windows are emitted before it goes; if it comes back it starts
    /// afresh.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::flow::window::{KeyedConfig, TumblingCount};
    /// use pump_core::prelude::*;
    /// use std::num::NonZeroUsize;
    /// let two = NonZeroUsize::new(2).unwrap();
    /// let out = source::iter([("a", 1), ("b", 10), ("a", 2), ("a", 3), ("b", 20)])
    ///     .key_by(|(key, _)| *key, KeyedConfig::new(NonZeroUsize::new(100).unwrap()))
    ///     .window(TumblingCount::new(two))
    ///     .map(|(key, window)| (key, window.items.iter().map(|(_, x)| x).sum::<i32>()))
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// // Full windows as they fill, then the partial ones when the stream ends.
    /// assert_eq!(out.value, vec![("a", 3), ("b", 30), ("a", 3)]);
    /// # }
    /// ```
    pub fn window<Spec: WindowSpec<T>>(self, spec: Spec) -> Via<Up, KeyedWindows<T, K, KF, Spec>> {
        Via::new(self.upstream, KeyedWindows::new(self.key_fn, spec, self.config))
    }

    /// Folds each key's elements into an accumulator starting from `init`, emitting `(key, acc)` when the
    /// key leaves: evicted as the least recently used at `max_keys`, idle past `idle_timeout`, or at the
    /// end of the stream (least recently used first). Like Akka's `groupBy(..).fold(..)`, with the
    /// substream ended by eviction.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::flow::window::KeyedConfig;
    /// use pump_core::prelude::*;
    /// use std::num::NonZeroUsize;
    /// let out = source::iter([("a", 1), ("b", 10), ("a", 2), ("c", 5)])
    ///     // Two keys at most: "c" evicts "b", the least recently used.
    ///     .key_by(|(key, _)| *key, KeyedConfig::new(NonZeroUsize::new(2).unwrap()))
    ///     .fold(0, |sum, (_, x)| sum + x)
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value, vec![("b", 10), ("a", 3), ("c", 5)]);
    /// # }
    /// ```
    pub fn fold<Acc, F>(self, init: Acc, f: F) -> Via<Up, KeyedFold<T, K, KF, Acc, F>>
    where
        Acc: Clone + Send + 'static,
        F: FnMut(Acc, T) -> Acc + Send + 'static,
    {
        Via::new(self.upstream, KeyedFold::new(self.key_fn, init, f, self.config))
    }

    /// Keeps a running state per key (starting from `init`) and emits `(key, f(&mut state, element))`
    /// for every element, like Flink's rolling `keyBy(..).reduce(..)`. An evicted key's state is
    /// dropped; if the key comes back it starts again from `init`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::flow::window::KeyedConfig;
    /// use pump_core::prelude::*;
    /// use std::num::NonZeroUsize;
    /// let out = source::iter([("a", 1), ("b", 10), ("a", 2)])
    ///     .key_by(|(key, _)| *key, KeyedConfig::new(NonZeroUsize::new(16).unwrap()))
    ///     .scan(0, |total, (_, x)| { *total += x; *total })
    ///     .to(sink::collect())
    ///     .run()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.value, vec![("a", 1), ("b", 10), ("a", 3)]);
    /// # }
    /// ```
    pub fn scan<Acc, U, F>(self, init: Acc, f: F) -> Via<Up, KeyedScan<T, K, KF, Acc, F>>
    where
        Acc: Clone + Send + 'static,
        F: FnMut(&mut Acc, T) -> U + Send + 'static,
        U: Send + 'static,
    {
        Via::new(self.upstream, KeyedScan::new(self.key_fn, init, f, self.config))
    }
}
