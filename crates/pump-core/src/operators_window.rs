//! The window operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).
//!
//! Semantics, time notions and bounds are described once, in [`flow::window`](crate::flow::window).

macro_rules! window_methods {
    ($item:ty) => {
        /// Groups consecutive elements into windows of `size`; the last window may be smaller.
        ///
        /// Windows are `Window<T, u64>` whose bounds are element sequence numbers from 0
        /// (`end - start == items.len()`). Holds at most `size` elements.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=5)
        ///     .tumbling_count(NonZeroUsize::new(2).unwrap())
        ///     .map(|window| (window.start, window.items))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![(0, vec![1, 2]), (2, vec![3, 4]), (4, vec![5])]);
        /// # }
        /// ```
        fn tumbling_count(
            self,
            size: std::num::NonZeroUsize,
        ) -> $crate::flow::Via<Self, $crate::flow::window::TumblingCount> {
            self.via($crate::flow::window::TumblingCount::new(size))
        }

        /// Windows of `size` consecutive elements, a new one starting every `step` elements.
        ///
        /// Each element is cloned into every window that holds it. When the stream ends, the first
        /// window not yet full is emitted if it holds an element no emitted window held. With
        /// `step > size`, the elements between windows are counted as `dropped`. See
        /// [`SlidingCount`](crate::flow::window::SlidingCount).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=6)
        ///     .sliding_count(NonZeroUsize::new(3).unwrap(), NonZeroUsize::new(2).unwrap())
        ///     .map(|window| window.items)
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![vec![1, 2, 3], vec![3, 4, 5], vec![5, 6]]);
        /// # }
        /// ```
        fn sliding_count(
            self,
            size: std::num::NonZeroUsize,
            step: std::num::NonZeroUsize,
        ) -> $crate::flow::Via<Self, $crate::flow::window::SlidingCount>
        where
            $item: Clone,
        {
            self.via($crate::flow::window::SlidingCount::new(size, step))
        }

        /// Groups elements by the `size` slot of processing time they arrive in, on a grid that starts
        /// when the run does. A window is emitted at its end; empty slots emit nothing.
        ///
        /// Bounded by `config` ([`WindowConfig`](crate::flow::window::WindowConfig)); see
        /// [`TumblingTime`](crate::flow::window::TumblingTime).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::flow::window::WindowConfig;
        /// use pump_core::prelude::*;
        /// use std::{num::NonZeroUsize, time::Duration};
        /// let start = tokio::time::Instant::now();
        /// // Elements at 0 ms, 400 ms and 1 200 ms.
        /// let arrivals = source::iter([0u64, 400, 1_200])
        ///     .map_async(NonZeroUsize::MIN, move |at| async move {
        ///         tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        ///         at
        ///     });
        /// let out = arrivals
        ///     .tumbling_time(Duration::from_secs(1), WindowConfig::default())
        ///     .map(move |window| (window.start - start, window.items))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// let one_second = Duration::from_secs(1);
        /// assert_eq!(out.value, vec![(Duration::ZERO, vec![0, 400]), (one_second, vec![1_200])]);
        /// # }
        /// ```
        fn tumbling_time(
            self,
            size: std::time::Duration,
            config: $crate::flow::window::WindowConfig,
        ) -> $crate::flow::Via<Self, $crate::flow::window::TumblingTime> {
            self.via($crate::flow::window::TumblingTime::new(size, config))
        }

        /// Windows of `size` processing time, one starting every `slide`, on a grid that starts when
        /// the run does. Each element is cloned into every window containing its arrival.
        ///
        /// Bounded by `config`; see [`SlidingTime`](crate::flow::window::SlidingTime).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::flow::window::WindowConfig;
        /// use pump_core::prelude::*;
        /// use std::{num::NonZeroUsize, time::Duration};
        /// let start = tokio::time::Instant::now();
        /// let arrivals = source::iter([0u64, 600, 1_100])
        ///     .map_async(NonZeroUsize::MIN, move |at| async move {
        ///         tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        ///         at
        ///     });
        /// let out = arrivals
        ///     .sliding_time(Duration::from_secs(1), Duration::from_millis(500), WindowConfig::default())
        ///     .map(move |window| ((window.start - start).as_millis(), window.items))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![(0, vec![0, 600]), (500, vec![600, 1_100]), (1_000, vec![1_100])]);
        /// # }
        /// ```
        fn sliding_time(
            self,
            size: std::time::Duration,
            slide: std::time::Duration,
            config: $crate::flow::window::WindowConfig,
        ) -> $crate::flow::Via<Self, $crate::flow::window::SlidingTime>
        where
            $item: Clone,
        {
            self.via($crate::flow::window::SlidingTime::new(size, slide, config))
        }

        /// Groups elements that arrive less than `gap` apart (processing time) into sessions, each
        /// emitted `gap` after its last element.
        ///
        /// Bounded by `config`; see [`SessionTime`](crate::flow::window::SessionTime).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::flow::window::WindowConfig;
        /// use pump_core::prelude::*;
        /// use std::{num::NonZeroUsize, time::Duration};
        /// let start = tokio::time::Instant::now();
        /// let arrivals = source::iter([0u64, 50, 90, 400])
        ///     .map_async(NonZeroUsize::MIN, move |at| async move {
        ///         tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        ///         at
        ///     });
        /// let out = arrivals
        ///     .session_time(Duration::from_millis(100), WindowConfig::default())
        ///     .map(|window| window.items)
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![vec![0, 50, 90], vec![400]]);
        /// # }
        /// ```
        fn session_time(
            self,
            gap: std::time::Duration,
            config: $crate::flow::window::WindowConfig,
        ) -> $crate::flow::Via<Self, $crate::flow::window::SessionTime> {
            self.via($crate::flow::window::SessionTime::new(gap, config))
        }

        /// Groups elements by the `size` slot of *event* time their `timestamp` falls in. A window is
        /// emitted once the watermark (the largest timestamp seen minus the allowed lateness) reaches
        /// its end; later elements for it are counted as `dropped` and handed to the lateness side
        /// output.
        ///
        /// Timestamps and lengths are `u64` in one unit of your choice. Bounded by `config`; see
        /// [`TumblingEventTime`](crate::flow::window::TumblingEventTime).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::flow::window::{LateElement, Lateness, WindowConfig};
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroU64;
        /// use std::sync::{Arc, Mutex};
        /// let late = Arc::new(Mutex::new(Vec::new()));
        /// let late_sink = late.clone();
        /// // (timestamp in ms, value); 1 500 arrives after 2 700 moved the watermark past 1 000..2 000.
        /// let out = source::iter([(100u64, 'a'), (1_200, 'b'), (900, 'c'), (2_700, 'd'), (1_500, 'e')])
        ///     .tumbling_event_time(
        ///         NonZeroU64::new(1_000).unwrap(),
        ///         |(timestamp, _)| *timestamp,
        ///         Lateness::allowed(500).with_side_output(move |late: LateElement<(u64, char)>| {
        ///             late_sink.lock().unwrap().push(late.element.1)
        ///         }),
        ///         WindowConfig::default(),
        ///     )
        ///     .map(|window| (window.start, window.items.iter().map(|(_, v)| *v).collect::<String>()))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// let expected = [(0, "ac"), (1_000, "b"), (2_000, "d")].map(|(start, v)| (start, v.to_string()));
        /// assert_eq!(out.value, expected);
        /// assert_eq!(*late.lock().unwrap(), vec!['e']);
        /// assert_eq!(out.stats.metrics.stage("tumbling_event_time").unwrap().dropped, 1);
        /// # }
        /// ```
        fn tumbling_event_time<F>(
            self,
            size: std::num::NonZeroU64,
            timestamp: F,
            lateness: $crate::flow::window::Lateness<$item>,
            config: $crate::flow::window::WindowConfig,
        ) -> $crate::flow::Via<Self, $crate::flow::window::TumblingEventTime<$item, F>>
        where
            F: Fn(&$item) -> u64 + Send + Sync + 'static,
        {
            self.via($crate::flow::window::TumblingEventTime::new(size, timestamp, lateness, config))
        }

        /// Windows of `size` event time, one starting every `slide`, closed by the watermark as in
        /// [`tumbling_event_time`](Self::tumbling_event_time). Each element is cloned into every open
        /// window containing its timestamp; it is late only when all of them were emitted.
        ///
        /// See [`SlidingEventTime`](crate::flow::window::SlidingEventTime).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::flow::window::{Lateness, WindowConfig};
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroU64;
        /// let out = source::iter([5u64, 12, 17, 26])
        ///     .sliding_event_time(
        ///         NonZeroU64::new(10).unwrap(),
        ///         NonZeroU64::new(5).unwrap(),
        ///         |timestamp| *timestamp,
        ///         Lateness::allowed(0),
        ///         WindowConfig::default(),
        ///     )
        ///     .map(|window| (window.start, window.items))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(
        ///     out.value,
        ///     vec![
        ///         (0, vec![5]),
        ///         (5, vec![5, 12]),
        ///         (10, vec![12, 17]),
        ///         (15, vec![17]),
        ///         (20, vec![26]),
        ///         (25, vec![26]),
        ///     ]
        /// );
        /// # }
        /// ```
        fn sliding_event_time<F>(
            self,
            size: std::num::NonZeroU64,
            slide: std::num::NonZeroU64,
            timestamp: F,
            lateness: $crate::flow::window::Lateness<$item>,
            config: $crate::flow::window::WindowConfig,
        ) -> $crate::flow::Via<Self, $crate::flow::window::SlidingEventTime<$item, F>>
        where
            $item: Clone,
            F: Fn(&$item) -> u64 + Send + Sync + 'static,
        {
            self.via($crate::flow::window::SlidingEventTime::new(size, slide, timestamp, lateness, config))
        }

        /// Groups elements whose *event* timestamps are less than `gap` apart into sessions
        /// `[first, last + gap)`, merging sessions an out-of-order element bridges; a session is emitted
        /// once the watermark reaches its end.
        ///
        /// See [`SessionEventTime`](crate::flow::window::SessionEventTime).
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::flow::window::{Lateness, WindowConfig};
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroU64;
        /// // 19 arrives out of order (within the allowed lateness) and bridges the sessions of 10 and 28.
        /// let out = source::iter([10u64, 28, 19, 100])
        ///     .session_event_time(
        ///         NonZeroU64::new(10).unwrap(),
        ///         |t| *t,
        ///         Lateness::allowed(50),
        ///         WindowConfig::default(),
        ///     )
        ///     .map(|window| (window.start, window.end, window.items))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![(10, 38, vec![10, 28, 19]), (100, 110, vec![100])]);
        /// # }
        /// ```
        fn session_event_time<F>(
            self,
            gap: std::num::NonZeroU64,
            timestamp: F,
            lateness: $crate::flow::window::Lateness<$item>,
            config: $crate::flow::window::WindowConfig,
        ) -> $crate::flow::Via<Self, $crate::flow::window::SessionEventTime<$item, F>>
        where
            F: Fn(&$item) -> u64 + Send + Sync + 'static,
        {
            self.via($crate::flow::window::SessionEventTime::new(gap, timestamp, lateness, config))
        }

        /// Splits the stream by `key_fn` for per-key windows, folds or scans, holding the state of at
        /// most `config.max_keys` keys (least recently used evicted first, its pending state emitted)
        /// and evicting keys idle for `config.idle_timeout`.
        ///
        /// See [`KeyBy`](crate::flow::window::KeyBy) for what can follow.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::flow::window::KeyedConfig;
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let mut out = source::iter(["apple", "avocado", "banana", "blueberry", "cherry"])
        ///     .key_by(|fruit| fruit.chars().next(), KeyedConfig::new(NonZeroUsize::new(1_000).unwrap()))
        ///     .fold(0usize, |count, _| count + 1)
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap()
        ///     .value;
        /// out.sort();
        /// assert_eq!(out, vec![(Some('a'), 2), (Some('b'), 2), (Some('c'), 1)]);
        /// # }
        /// ```
        fn key_by<K, KF>(
            self,
            key_fn: KF,
            config: $crate::flow::window::KeyedConfig,
        ) -> $crate::flow::window::KeyBy<Self, $item, K, KF>
        where
            KF: FnMut(&$item) -> K + Send + 'static,
            K: std::hash::Hash + Eq + Clone + Send + 'static,
        {
            $crate::flow::window::KeyBy::new(self, key_fn, config)
        }
    };
}

pub(crate) use window_methods;
