//! The time operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).
//!
//! The examples run on paused tokio time, so the instants they assert are exact.

macro_rules! time_methods {
    ($item:ty) => {
        /// Limits the rate of elements with a token bucket (see [`Throttle`](crate::flow::time::Throttle)
        /// for the configuration): in [`Backpressure`](crate::flow::time::ThrottleMode::Backpressure)
        /// mode the stage waits for a token before pulling the next element; in
        /// [`Drop`](crate::flow::time::ThrottleMode::Drop) mode elements arriving without a token are
        /// dropped and counted in the stage's `dropped`. Holds no element.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::flow::time::Throttle;
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroU32;
        /// use tokio::time::{Duration, Instant};
        ///
        /// let start = Instant::now();
        /// let out = source::iter(1..=3)
        ///     .throttle(Throttle::per_second(NonZeroU32::new(2).unwrap()))
        ///     .map(move |x| (x, start.elapsed()))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// let ms = Duration::from_millis;
        /// assert_eq!(out.value, vec![(1, ms(0)), (2, ms(500)), (3, ms(1000))]);
        /// # }
        /// ```
        fn throttle(
            self,
            throttle: $crate::flow::time::Throttle,
        ) -> $crate::flow::Via<Self, $crate::flow::time::Throttle> {
            self.via(throttle)
        }

        /// Emits `Ok(element)`, or `Err(Elapsed)` when upstream has produced no element within
        /// `per_element` of downstream asking for one; after an `Elapsed` the stage goes on waiting for
        /// the same element with a fresh time limit. Each `Elapsed` is counted in the stage's `errors`.
        ///
        /// The run does not fail on a timeout: handle the `Err` downstream (`filter_map(Result::ok)` to
        /// skip it, `try_map` with an [`ErrorPolicy`](crate::ErrorPolicy) to stop or count it), or use
        /// [`idle_timeout`](Self::idle_timeout) to fail the run.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::flow::time::Elapsed;
        /// use pump_core::prelude::*;
        /// use std::time::Duration;
        ///
        /// // The second element takes 3 s to come.
        /// let slow = source::unfold(0u32, |n| async move {
        ///     if n == 1 {
        ///         tokio::time::sleep(Duration::from_secs(3)).await;
        ///     }
        ///     (n < 3).then_some((n, n + 1))
        /// });
        /// let out = slow.timeout(Duration::from_secs(2)).to(sink::collect()).run().await.unwrap();
        /// let limit = Elapsed { after: Duration::from_secs(2) };
        /// assert_eq!(out.value, vec![Ok(0), Err(limit), Ok(1), Ok(2)]);
        /// # }
        /// ```
        fn timeout(
            self,
            per_element: std::time::Duration,
        ) -> $crate::flow::Via<Self, $crate::flow::time::Timeout> {
            self.via($crate::flow::time::Timeout::new(per_element))
        }

        /// Fails the run when upstream has produced no element within `idle` of downstream asking
        /// for one. The run ends with [`PipelineError::Io`](crate::PipelineError::Io) whose cause is an
        /// [`Elapsed`](crate::flow::time::Elapsed). See [`timeout`](Self::timeout) to go on instead.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::time::Duration;
        ///
        /// let (sender, input) = source::channel::<u32>(4);
        /// sender.send(1).await.unwrap();
        /// let error = input.idle_timeout(Duration::from_secs(5)).to(sink::collect()).run().await.unwrap_err();
        /// assert!(matches!(error, PipelineError::Io { .. }));
        /// assert_eq!(error.to_string(), "1:idle_timeout: upstream produced no element within 5s");
        /// # drop(sender);
        /// # }
        /// ```
        fn idle_timeout(
            self,
            idle: std::time::Duration,
        ) -> $crate::flow::Via<Self, $crate::flow::time::IdleTimeout> {
            self.via($crate::flow::time::IdleTimeout::new(idle))
        }

        /// Emits an element only once `quiet` has passed without a newer one; a newer element
        /// replaces the held one (counted in the stage's `dropped`). When upstream ends, the held
        /// element is emitted at once. Holds at most one element.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::time::Duration;
        ///
        /// // Keystrokes: "r", "ru", "rus" 100 ms apart, a pause, then "rust" and the end.
        /// let typed = source::unfold(0usize, |n| async move {
        ///     let text = ["r", "ru", "rus", "rust"].get(n)?;
        ///     let gap = if n == 3 { 1000 } else { 100 };
        ///     tokio::time::sleep(Duration::from_millis(gap)).await;
        ///     Some((*text, n + 1))
        /// });
        /// let out = typed.debounce(Duration::from_millis(300)).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec!["rus", "rust"]);
        /// assert_eq!(out.stats.metrics.stage("debounce").unwrap().dropped, 2);
        /// # }
        /// ```
        fn debounce(
            self,
            quiet: std::time::Duration,
        ) -> $crate::flow::Via<Self, $crate::flow::time::Debounce> {
            self.via($crate::flow::time::Debounce::new(quiet))
        }

        /// Emits each element `by` after the stage received it (or later, if downstream asks later),
        /// in order. Holds at most `max_in_flight` elements: when that many are waiting, the stage
        /// stops pulling from upstream until the oldest has been emitted.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// use tokio::time::{Duration, Instant};
        ///
        /// let start = Instant::now();
        /// let out = source::iter(1..=3)
        ///     .delay(Duration::from_millis(250), NonZeroUsize::new(16).unwrap())
        ///     .map(move |x| (x, start.elapsed()))
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// let at = Duration::from_millis(250);
        /// assert_eq!(out.value, vec![(1, at), (2, at), (3, at)]);
        /// # }
        /// ```
        fn delay(
            self,
            by: std::time::Duration,
            max_in_flight: std::num::NonZeroUsize,
        ) -> $crate::flow::Via<Self, $crate::flow::time::Delay> {
            self.via($crate::flow::time::Delay::new(by, max_in_flight))
        }
    };
}

pub(crate) use time_methods;
