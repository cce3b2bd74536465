//! Flows: transformations from a stream of `In` to a stream of `Out`.
//!
//! A [`Flow`] is a recipe applied once per run to its upstream stream. Synchronous operators are
//! plain stream adapters, so a chain of them is *fused*: one task polls the whole chain, with no
//! channel or task hop between stages. Concurrency only appears where an operator asks for it
//! (`map_async`, `map_blocking`, `async_boundary`), and each such place has a bounded buffer.

mod batch;
mod boxed;
mod buffer;
mod dedup_by_key;
mod filter;
mod filter_map;
mod flat_map;
mod identity;
mod inspect;
mod map;
mod map_async;
mod map_async_partitioned;
mod map_blocking;
mod scan;
mod skip;
mod skip_while;
mod supervise;
mod take;
mod take_while;
pub mod time;
mod try_map;
mod try_map_async;
mod unbatch;
mod via;
pub mod window;

use futures::Stream;

use crate::stage::StageContext;

pub use batch::{Batch, BatchStream};
pub use boxed::BoxFlow;
pub use buffer::{Buffer, BufferStream};
pub use dedup_by_key::{DedupByKey, DedupByKeyStream};
pub use filter::{Filter, FilterStream};
pub use filter_map::{FilterMap, FilterMapStream};
pub use flat_map::{FlatMap, FlatMapStream};
pub use identity::{Identity, identity};
pub use inspect::{Inspect, InspectStream};
pub use map::{Map, MapStream};
pub use map_async::{MapAsync, MapAsyncStream, Ordered, Unordered};
pub use map_async_partitioned::{MapAsyncPartitioned, MapAsyncPartitionedStream};
pub use map_blocking::{MapBlocking, MapBlockingStream};
pub use scan::{Scan, ScanStream};
pub use skip::{Skip, SkipStream};
pub use skip_while::{SkipWhile, SkipWhileStream};
pub use supervise::Supervise;
pub use take::{Take, TakeStream};
pub use take_while::{TakeWhile, TakeWhileStream};
pub use try_map::{TryMap, TryMapStream};
pub use try_map_async::TryMapAsync;
pub use unbatch::{Unbatch, UnbatchStream};
pub use via::Via;

/// A transformation of a stream of `In` into a stream of [`Out`](Flow::Out).
///
/// Flows are values: build one, name it, test it alone, and attach it to any source with
/// [`SourceExt::via`](crate::SourceExt::via) or to another flow with [`FlowExt::via`].
pub trait Flow<In>: Send + Sized + 'static {
    /// The elements the flow emits.
    type Out: Send + 'static;
    /// The stream the flow builds over an upstream stream `S`.
    type Stream<S>: Stream<Item = Self::Out> + Send + 'static
    where
        S: Stream<Item = In> + Send + 'static;

    /// Builds the flow over `upstream` for one run, registering its stage(s) in `ctx`.
    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static;
}

/// Composition and operators for every [`Flow`].
pub trait FlowExt<In>: Flow<In> {
    /// Appends `next` after this flow.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let parse = flow::identity::<&str>().filter_map(|s| s.parse::<i64>().ok());
    /// let double = flow::identity::<i64>().map(|x| x * 2);
    /// let out = source::iter(["1", "x", "2"]).via(parse.via(double)).to(sink::collect()).run().await.unwrap();
    /// assert_eq!(out.value, vec![2, 4]);
    /// # }
    /// ```
    fn via<F: Flow<Self::Out>>(self, next: F) -> Via<Self, F> {
        Via::new(self, next)
    }

    /// Attaches a sink, giving a sink of `In`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let sum_of_squares = flow::identity::<u64>().map(|x| x * x).to(sink::fold(0, |a, x| a + x));
    /// let out = source::iter(1..=3).to(sum_of_squares).run().await.unwrap();
    /// assert_eq!(out.value, 14);
    /// # }
    /// ```
    fn to<K: crate::Sink<Self::Out>>(self, sink: K) -> crate::sink::FlowSink<Self, K> {
        crate::sink::FlowSink::new(self, sink)
    }

    /// Boxes the flow, erasing its type (for flows chosen at run time).
    fn boxed(self) -> BoxFlow<In, Self::Out>
    where
        In: Send + 'static,
    {
        BoxFlow::new(self)
    }

    crate::operators::operator_methods!(Self::Out);
    crate::operators_time::time_methods!(Self::Out);
    crate::operators_window::window_methods!(Self::Out);
    crate::operators_fan::fan_methods!(Self::Out);
}

impl<In, F: Flow<In>> FlowExt<In> for F {}
