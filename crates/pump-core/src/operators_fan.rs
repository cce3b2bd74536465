//! The fan operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).
//!
//! Each takes another [`Source`](crate::Source), opened in the same run as the stream it joins.
//! Fan-out (`broadcast`, `balance`, `partition`) is made of sinks, in [`fan`](crate::fan).

macro_rules! fan_methods {
    ($item:ty) => {
        /// Merges `other` into this stream: elements are taken round-robin from whichever input has
        /// one ready, so neither starves the other; each input's own order is kept; the result ends
        /// when both have ended.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(vec![1, 2, 3]).merge(source::iter(vec![10, 20])).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 10, 2, 20, 3]);
        /// # }
        /// ```
        fn merge<O>(self, other: O) -> $crate::flow::Via<Self, $crate::fan::Merge<O>>
        where
            O: $crate::Source<Item = $item>,
        {
            self.via($crate::fan::Merge::new(other))
        }

        /// Pairs each element with the next element of `other`; ends as soon as either input ends,
        /// dropping the other.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=3).zip(source::iter(["a", "b"])).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![(1, "a"), (2, "b")]);
        /// # }
        /// ```
        fn zip<O>(self, other: O) -> $crate::flow::Via<Self, $crate::fan::Zip<O>>
        where
            O: $crate::Source,
        {
            self.via($crate::fan::Zip::new(other))
        }

        /// Emits all of this stream, then all of `other`. `other` is opened only when this stream
        /// has ended, so none of it runs before.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// let out = source::iter(1..=2).concat(source::iter(7..=8)).to(sink::collect()).run().await.unwrap();
        /// assert_eq!(out.value, vec![1, 2, 7, 8]);
        /// # }
        /// ```
        fn concat<O>(self, other: O) -> $crate::flow::Via<Self, $crate::fan::Concat<O>>
        where
            O: $crate::Source<Item = $item>,
        {
            self.via($crate::fan::Concat::new(other))
        }

        /// Emits `segment_size` elements of this stream, then `segment_size` of `other`, and so on;
        /// when one ends (even mid-segment), the rest of the other follows.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() {
        /// use pump_core::prelude::*;
        /// use std::num::NonZeroUsize;
        /// let out = source::iter(1..=5)
        ///     .interleave(source::iter(10..=11), NonZeroUsize::new(2).unwrap())
        ///     .to(sink::collect())
        ///     .run()
        ///     .await
        ///     .unwrap();
        /// assert_eq!(out.value, vec![1, 2, 10, 11, 3, 4, 5]);
        /// # }
        /// ```
        fn interleave<O>(
            self,
            other: O,
            segment_size: std::num::NonZeroUsize,
        ) -> $crate::flow::Via<Self, $crate::fan::Interleave<O>>
        where
            O: $crate::Source<Item = $item>,
        {
            self.via($crate::fan::Interleave::new(other, segment_size))
        }
    };
}

pub(crate) use fan_methods;
