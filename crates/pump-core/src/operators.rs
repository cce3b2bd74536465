//! The operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).
//!
//! Both traits offer the same catalogue; each method is a one-liner that appends a flow stage with
//! `via`. A macro writes the list once so the two traits cannot drift apart. The examples use a source;
//! on a flow the same call appends the stage to the flow.

macro_rules! operator_methods {
    ($item:ty) => {
        /// Transforms each element with `f`.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=3).map(|x| x * 10).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![10, 20, 30]);
        /// # }
        /// ```
        fn map<U, F>(self, f: F) -> $crate::flow::Via<Self, $crate::flow::Map<F>>
        where
            F: FnMut($item) -> U + Send + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::Map::new(f))
        }

        /// Keeps the elements for which `predicate` returns `true`.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=6).filter(|x| x % 2 == 0).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![2, 4, 6]);
        /// # }
        /// ```
        fn filter<P>(self, predicate: P) -> $crate::flow::Via<Self, $crate::flow::Filter<P>>
        where
            P: FnMut(&$item) -> bool + Send + 'static,
        {
            self.via($crate::flow::Filter::new(predicate))
        }

        /// Transforms each element with `f`, keeping the `Some` results.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(["1", "x", "3"])
        ///     .filter_map(|s| s.parse::<u32>().ok())
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![1, 3]);
        /// # }
        /// ```
        fn filter_map<U, F>(self, f: F) -> $crate::flow::Via<Self, $crate::flow::FilterMap<F>>
        where
            F: FnMut($item) -> Option<U> + Send + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::FilterMap::new(f))
        }

        /// Maps each element to an iterator and emits its items in order.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=3).flat_map(|x| vec![x; x]).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 2, 2, 3, 3, 3]);
        /// # }
        /// ```
        fn flat_map<I, F>(self, f: F) -> $crate::flow::Via<Self, $crate::flow::FlatMap<F, I::IntoIter>>
        where
            F: FnMut($item) -> I + Send + 'static,
            I: IntoIterator,
            I::IntoIter: Send + 'static,
            I::Item: Send + 'static,
        {
            self.via($crate::flow::FlatMap::new(f))
        }

        /// Calls `f` on each element as it passes.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::sync::atomic::{AtomicU32, Ordering};
        /// use std::sync::Arc;
        /// let seen = Arc::new(AtomicU32::new(0));
        /// let counter = seen.clone();
        /// source::iter(1..=4)
        ///     .inspect(move |_| { counter.fetch_add(1, Ordering::Relaxed); })
        ///     .to(sink::ignore())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(seen.load(Ordering::Relaxed), 4);
        /// # }
        /// ```
        fn inspect<F>(self, f: F) -> $crate::flow::Via<Self, $crate::flow::Inspect<F>>
        where
            F: FnMut(&$item) + Send + 'static,
        {
            self.via($crate::flow::Inspect::new(f))
        }

        /// Threads a state through the elements; ends the stream when `f` returns `None`.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=4)
        ///     .scan(0, |total, x| { *total += x; Some(*total) })
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![1, 3, 6, 10]);
        /// # }
        /// ```
        fn scan<St, U, F>(self, initial: St, f: F) -> $crate::flow::Via<Self, $crate::flow::Scan<St, F>>
        where
            St: Send + 'static,
            F: FnMut(&mut St, $item) -> Option<U> + Send + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::Scan::new(initial, f))
        }

        /// Emits the first `n` elements, then ends (and stops pulling from upstream).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..).take(3).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 2, 3]);
        /// # }
        /// ```
        fn take(self, n: u64) -> $crate::flow::Via<Self, $crate::flow::Take> {
            self.via($crate::flow::Take::new(n))
        }

        /// Discards the first `n` elements.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=5).skip(3).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![4, 5]);
        /// # }
        /// ```
        fn skip(self, n: u64) -> $crate::flow::Via<Self, $crate::flow::Skip> {
            self.via($crate::flow::Skip::new(n))
        }

        /// Emits elements while `predicate` holds, then ends.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter([1, 2, 5, 1]).take_while(|x| *x < 3).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 2]);
        /// # }
        /// ```
        fn take_while<P>(self, predicate: P) -> $crate::flow::Via<Self, $crate::flow::TakeWhile<P>>
        where
            P: FnMut(&$item) -> bool + Send + 'static,
        {
            self.via($crate::flow::TakeWhile::new(predicate))
        }

        /// Discards elements while `predicate` holds, then emits the rest.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter([1, 2, 5, 1]).skip_while(|x| *x < 3).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![5, 1]);
        /// # }
        /// ```
        fn skip_while<P>(self, predicate: P) -> $crate::flow::Via<Self, $crate::flow::SkipWhile<P>>
        where
            P: FnMut(&$item) -> bool + Send + 'static,
        {
            self.via($crate::flow::SkipWhile::new(predicate))
        }

        /// Drops an element whose key equals the previous element's key (consecutive duplicates).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter([1, 1, 2, 3, 3, 1]).dedup_by_key(|x| *x).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 2, 3, 1]);
        /// # }
        /// ```
        fn dedup_by_key<K, F>(self, key: F) -> $crate::flow::Via<Self, $crate::flow::DedupByKey<F, K>>
        where
            F: FnMut(&$item) -> K + Send + 'static,
            K: PartialEq + Send + 'static,
        {
            self.via($crate::flow::DedupByKey::new(key))
        }

        /// Runs up to `parallelism` futures at once and emits their results in input order.
        ///
        /// At most `parallelism` results are held while an earlier one is still running. On abort the
        /// futures are dropped.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=4u64)
        ///     .map_async(NonZeroUsize::new(4).unwrap(), |x| async move {
        ///         tokio::time::sleep(std::time::Duration::from_millis(10 * (5 - x))).await;
        ///         x * 2
        ///     })
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![2, 4, 6, 8]);
        /// # }
        /// ```
        fn map_async<U, Fut, F>(
            self,
            parallelism: std::num::NonZeroUsize,
            f: F,
        ) -> $crate::flow::Via<Self, $crate::flow::MapAsync<F, $crate::flow::Ordered>>
        where
            F: FnMut($item) -> Fut + Send + 'static,
            Fut: std::future::Future<Output = U> + Send + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::MapAsync::ordered(parallelism, f))
        }

        /// Runs up to `parallelism` futures at once and emits results as they complete.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let mut out = source::iter(1..=4u64)
        ///     .map_async_unordered(NonZeroUsize::new(4).unwrap(), |x| async move { x * 2 })
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap()
        ///     .value;
        /// out.sort();
        /// assert_eq!(out, vec![2, 4, 6, 8]);
        /// # }
        /// ```
        fn map_async_unordered<U, Fut, F>(
            self,
            parallelism: std::num::NonZeroUsize,
            f: F,
        ) -> $crate::flow::Via<Self, $crate::flow::MapAsync<F, $crate::flow::Unordered>>
        where
            F: FnMut($item) -> Fut + Send + 'static,
            Fut: std::future::Future<Output = U> + Send + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::MapAsync::unordered(parallelism, f))
        }

        /// Runs up to `parallelism` futures at once, keeping input order among elements of the same key.
        ///
        /// Elements are assigned to `parallelism` lanes by the hash of their key; a lane runs one future
        /// at a time, so elements of one key complete in order. At most `parallelism` elements wait for
        /// a busy lane.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter([("a", 1), ("b", 1), ("a", 2), ("b", 2)])
        ///     .map_async_partitioned(NonZeroUsize::new(2).unwrap(), |(key, _)| *key, |pair| async move { pair })
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap()
        ///     .value;
        /// let a: Vec<_> = out.iter().filter(|(k, _)| *k == "a").map(|(_, v)| *v).collect();
        /// assert_eq!(a, vec![1, 2]);
        /// # }
        /// ```
        fn map_async_partitioned<K, KF, U, Fut, F>(
            self,
            parallelism: std::num::NonZeroUsize,
            key: KF,
            f: F,
        ) -> $crate::flow::Via<Self, $crate::flow::MapAsyncPartitioned<KF, F>>
        where
            KF: FnMut(&$item) -> K + Send + 'static,
            K: std::hash::Hash,
            F: FnMut($item) -> Fut + Send + 'static,
            Fut: std::future::Future<Output = U> + Send + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::MapAsyncPartitioned::new(parallelism, key, f))
        }

        /// Runs CPU-heavy `f` on `parallelism` worker threads from tokio's blocking pool, keeping order.
        ///
        /// Elements that are ready together are sent to the workers as one chunk, sized to carry
        /// about 4 ms of work (at most 8192 elements), so the cost of a thread hand-off is shared by
        /// many elements. Each worker has at most two chunks in flight (one running, one queued), so it
        /// starts the next chunk without waiting for the pipeline's task. Workers start when there is
        /// work and leave after a millisecond without any, and when the stage is dropped (end,
        /// failure or abort of the run): an idle stage holds no thread, and tokio's paused test
        /// clock (which stands still while a blocking task runs) keeps working. To bound the
        /// elements in flight when each element is large, see
        /// [`MapBlocking::max_chunk`](crate::flow::MapBlocking::max_chunk).
        ///
        /// ```
        /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=1000u64)
        ///     .map_blocking(NonZeroUsize::new(2).unwrap(), |x| x * x)
        ///     .to(sink::fold(0u64, |sum, x| sum + x))
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, (1..=1000u64).map(|x| x * x).sum::<u64>());
        /// # }
        /// ```
        fn map_blocking<U, F>(
            self,
            parallelism: std::num::NonZeroUsize,
            f: F,
        ) -> $crate::flow::Via<Self, $crate::flow::MapBlocking<F>>
        where
            F: Fn($item) -> U + Send + Sync + 'static,
            U: Send + 'static,
        {
            self.via($crate::flow::MapBlocking::new(parallelism, f))
        }

        /// Groups elements into vectors of at most `max_size`, emitting a partial batch when
        /// `max_wait` has passed since its first element. Never emits an empty batch.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::{num::NonZeroUsize, time::Duration};
        /// let out = source::iter(1..=5)
        ///     .batch(NonZeroUsize::new(2).unwrap(), Duration::from_secs(1))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![vec![1, 2], vec![3, 4], vec![5]]);
        /// # }
        /// ```
        fn batch(
            self,
            max_size: std::num::NonZeroUsize,
            max_wait: std::time::Duration,
        ) -> $crate::flow::Via<Self, $crate::flow::Batch> {
            self.via($crate::flow::Batch::new(max_size, max_wait))
        }

        /// Flattens batches (any `IntoIterator` element) back into elements.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter([vec![1, 2], vec![3]]).unbatch().to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 2, 3]);
        /// # }
        /// ```
        fn unbatch(self) -> $crate::flow::Via<Self, $crate::flow::Unbatch>
        where
            $item: IntoIterator,
            <$item as IntoIterator>::IntoIter: Send + 'static,
            <$item as IntoIterator>::Item: Send + 'static,
        {
            self.via($crate::flow::Unbatch::new())
        }

        /// A fallible transformation under an [`ErrorPolicy`](crate::ErrorPolicy).
        ///
        /// `f` borrows the element, so a failed element can be retried or handed to the dead-letter
        /// output whole. A panic in `f` counts as a failure of that element.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let (dead_letters, mut rejected) = DeadLetters::channel(16);
        /// let out = source::iter(["1", "x", "3"])
        ///     .try_map(|s: &&str| s.parse::<u32>(), ErrorPolicy::resume(dead_letters))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![1, 3]);
        /// assert_eq!(rejected.recv().await.unwrap().element, "x");
        /// assert_eq!(out.stats.metrics.stage("try_map").unwrap().errors, 1);
        /// # }
        /// ```
        fn try_map<U, E, F>(
            self,
            f: F,
            policy: $crate::ErrorPolicy<$item, E>,
        ) -> $crate::flow::Via<Self, $crate::flow::TryMap<F, $item, E>>
        where
            F: FnMut(&$item) -> Result<U, E> + Send + 'static,
            U: Send + 'static,
            E: Into<$crate::BoxError> + std::fmt::Display + Send + 'static,
        {
            self.via($crate::flow::TryMap::new(f, policy))
        }

        /// A fallible async transformation, `parallelism` at once, results in input order, under an
        /// [`ErrorPolicy`](crate::ErrorPolicy) (retries re-run `f` on a clone of the element).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter([1u32, 2, 3])
        ///     .try_map_async(
        ///         NonZeroUsize::new(2).unwrap(),
        ///         |x| async move { if x == 2 { Err("two") } else { Ok(x) } },
        ///         ErrorPolicy::resume(DeadLetters::discard()),
        ///     )
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![1, 3]);
        /// assert_eq!(out.stats.metrics.stage("try_map_async").unwrap().dropped, 1);
        /// # }
        /// ```
        fn try_map_async<U, E, Fut, F>(
            self,
            parallelism: std::num::NonZeroUsize,
            f: F,
            policy: $crate::ErrorPolicy<$item, E>,
        ) -> $crate::flow::Via<Self, $crate::flow::TryMapAsync<F, $item, E>>
        where
            $item: Clone,
            F: Fn($item) -> Fut + Send + Sync + 'static,
            Fut: std::future::Future<Output = Result<U, E>> + Send + 'static,
            U: Send + 'static,
            E: Into<$crate::BoxError> + std::fmt::Display + Send + 'static,
        {
            self.via($crate::flow::TryMapAsync::new(parallelism, f, policy))
        }

        /// Runs everything upstream on its own task, handing elements over through a buffer of
        /// `capacity` with backpressure. Use it to let two CPU-bound sections run in parallel.
        ///
        /// ```
        /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=100)
        ///     .map(|x| x + 1)
        ///     .async_boundary(NonZeroUsize::new(16).unwrap())
        ///     .to(sink::count())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, 100);
        /// # }
        /// ```
        fn async_boundary(
            self,
            capacity: std::num::NonZeroUsize,
        ) -> $crate::flow::Via<Self, $crate::flow::Buffer> {
            self.via($crate::flow::Buffer::new(capacity, $crate::OverflowStrategy::Backpressure))
        }

        /// Like [`async_boundary`](Self::async_boundary), with an explicit overflow strategy for when
        /// the buffer is full.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=10)
        ///     .buffer(NonZeroUsize::new(4).unwrap(), OverflowStrategy::Backpressure)
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, (1..=10).collect::<Vec<_>>());
        /// # }
        /// ```
        fn buffer(
            self,
            capacity: std::num::NonZeroUsize,
            overflow: $crate::OverflowStrategy,
        ) -> $crate::flow::Via<Self, $crate::flow::Buffer> {
            self.via($crate::flow::Buffer::new(capacity, overflow))
        }
    };
}

pub(crate) use operator_methods;
