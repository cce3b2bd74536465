//! Sinks: where elements end up, and what a run returns.
//!
//! A [`Sink`] consumes the stream a pipeline built and yields the run's value: a collection, a fold,
//! a count, a write summary. A flow followed by a sink is again a sink ([`FlowSink`]).

mod boxed;
mod channel;
mod collect;
mod count;
mod drive;
mod fold;
mod for_each;
mod for_each_async;
mod from_sink;
mod ignore;
mod reduce;
#[cfg(any(feature = "json", feature = "csv"))]
pub mod writer;

use std::future::Future;

use futures::Stream;

use crate::error::PipelineError;
use crate::flow::Flow;
use crate::stage::StageContext;

pub use boxed::BoxSink;
pub use channel::{Sender, sender};
pub use collect::{Collect, collect};
pub use count::{Count, count};
pub use fold::{Fold, fold};
pub use for_each::{ForEach, for_each};
pub use for_each_async::{ForEachAsync, for_each_async};
pub use from_sink::{FromSink, from_sink};
pub use ignore::{Ignore, ignore};
pub use reduce::{Reduce, reduce};
#[cfg(feature = "csv")]
pub use writer::CsvWriter;
#[cfg(feature = "json")]
pub use writer::JsonLinesWriter;
#[cfg(any(feature = "json", feature = "csv"))]
pub use writer::{RecordWriter, Write, WriteAcked, WriteError, WriteSummary, write, write_acked};

/// Something that consumes a stream of `In` and produces the run's value.
pub trait Sink<In>: Send + Sized + 'static {
    /// What a successful run returns.
    type Output: Send + 'static;

    /// Consumes `input` to its end (or until the sink decides to stop), registering its stage in `ctx`.
    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Self::Output, PipelineError>> + Send + 'static
    where
        S: Stream<Item = In> + Send + 'static;
}

/// Conversions for every [`Sink`].
pub trait SinkExt<In>: Sink<In> {
    /// Boxes the sink, erasing its type.
    fn boxed(self) -> BoxSink<In, Self::Output>
    where
        In: Send + 'static,
    {
        BoxSink::new(self)
    }

    /// Runs this sink on its own task behind a bounded channel and returns the channel's sending end
    /// as a `futures::Sink`, with the handle of the run. Close the `futures::Sink` to end the run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures::SinkExt as _;
    /// use pump_core::prelude::*;
    /// use pump_core::sink::SinkExt as _;
    /// let (mut input, handle) = sink::collect::<u32>().into_futures_sink(4);
    /// input.send(1).await.unwrap();
    /// input.send(2).await.unwrap();
    /// futures::SinkExt::close(&mut input).await.unwrap();
    /// assert_eq!(handle.await.unwrap().value, vec![1, 2]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is zero, or outside a tokio runtime.
    fn into_futures_sink(
        self,
        capacity: usize,
    ) -> (tokio_util::sync::PollSender<In>, crate::pipeline::RunHandle<Self::Output>)
    where
        In: Send + 'static,
    {
        let (sender, source) = crate::source::channel(capacity);
        let handle = crate::SourceExt::to(source, self).spawn();
        (tokio_util::sync::PollSender::new(sender), handle)
    }
}

impl<In, K: Sink<In>> SinkExt<In> for K {}

/// A flow followed by a sink: a sink of the flow's input. Built by [`FlowExt::to`](crate::FlowExt::to).
#[derive(Debug)]
#[must_use = "sinks do nothing unless run"]
pub struct FlowSink<F, K> {
    flow: F,
    sink: K,
}

impl<F, K> FlowSink<F, K> {
    pub(crate) fn new(flow: F, sink: K) -> Self {
        FlowSink { flow, sink }
    }
}

impl<In, F, K> Sink<In> for FlowSink<F, K>
where
    F: Flow<In>,
    K: Sink<F::Out>,
{
    type Output = K::Output;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Self::Output, PipelineError>> + Send + 'static
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stream = self.flow.apply(input, ctx);
        self.sink.consume(stream, ctx)
    }
}
