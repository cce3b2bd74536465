//! Sources: where elements come from.
//!
//! A [`Source`] is opened once per run and yields a `futures::Stream`. Every root source is wrapped
//! in a stage that counts its elements, stops on drain, and yields to the executor every few hundred
//! elements so that an always-ready source cannot starve the runtime or hide an abort.

mod boxed;
mod channel;
#[cfg(feature = "csv")]
mod csv;
#[cfg(any(feature = "json", feature = "csv"))]
pub mod file;
mod interval;
mod iter;
#[cfg(feature = "json")]
mod json_lines;
mod polling;
mod stage;
mod stream;
mod unfold;

use futures::Stream;

use crate::flow::{Flow, Via};
use crate::pipeline::Graph;
use crate::sink::Sink;
use crate::stage::StageContext;

pub use boxed::BoxSource;
pub use channel::{Channel, ReceiverStream, channel};
#[cfg(feature = "csv")]
pub use csv::{CsvFields, CsvRecord, CsvScanOptions, CsvScanner, CsvSource, csv};
#[cfg(any(feature = "json", feature = "csv"))]
pub use file::{FilePosition, LineScanner, Record, RecordError, Scanned, TextLinesSource, text_lines};
pub use interval::{Interval, interval};
pub use iter::{Iter, iter};
#[cfg(feature = "json")]
pub use json_lines::{JsonLinesSource, json_lines};
pub use polling::{Polled, Polling, polling};
pub use stage::SourceStage;
pub use stream::{FromStream, from_stream};
pub use unfold::{Unfold, unfold};

/// Something that produces a stream of elements when a run opens it.
///
/// Implement it for a new kind of source; most users build sources with the functions of this
/// module ([`iter`], [`from_stream`], [`channel`], ...). A source must not produce ahead of demand
/// except into a bounded buffer of its own.
pub trait Source: Send + Sized + 'static {
    /// The elements.
    type Item: Send + 'static;
    /// The stream a run pulls from.
    type Stream: Stream<Item = Self::Item> + Send + 'static;

    /// Opens the source for one run, registering its stage(s) in `ctx`.
    fn open(self, ctx: &StageContext) -> Self::Stream;
}

/// Composition and operators for every [`Source`].
pub trait SourceExt: Source {
    /// Appends a flow: the result is a source of the flow's output.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use pump_core::prelude::*;
    /// let double = flow::identity::<u32>().map(|x| x * 2);
    /// let out = source::iter([1, 2]).via(double).to(sink::collect()).run().await.unwrap();
    /// assert_eq!(out.value, vec![2, 4]);
    /// # }
    /// ```
    fn via<F: Flow<Self::Item>>(self, flow: F) -> Via<Self, F> {
        Via::new(self, flow)
    }

    /// Connects a sink, giving a runnable [`Graph`].
    fn to<K: Sink<Self::Item>>(self, sink: K) -> Graph<Self, K> {
        Graph::new(self, sink)
    }

    /// Boxes the source, erasing its type (for sources chosen at run time).
    fn boxed(self) -> BoxSource<Self::Item> {
        BoxSource::new(self)
    }

    /// Opens the source outside any pipeline and returns it as a plain `futures::Stream`.
    ///
    /// Stages that fail the run end the stream early; use a [`Graph`] when the failure matters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures::StreamExt;
    /// use pump_core::prelude::*;
    /// let items: Vec<u32> = source::iter(1..=3).map(|x| x + 1).into_stream().collect().await;
    /// assert_eq!(items, vec![2, 3, 4]);
    /// # }
    /// ```
    fn into_stream(self) -> Self::Stream {
        self.open(&StageContext::default())
    }

    crate::operators::operator_methods!(Self::Item);
    crate::operators_time::time_methods!(Self::Item);
    crate::operators_window::window_methods!(Self::Item);
    crate::operators_fan::fan_methods!(Self::Item);
}

impl<S: Source> SourceExt for S {}

impl<Src, F> Source for Via<Src, F>
where
    Src: Source,
    F: Flow<Src::Item>,
{
    type Item = F::Out;
    type Stream = F::Stream<Src::Stream>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let (source, flow) = self.into_parts();
        let upstream = source.open(ctx);
        flow.apply(upstream, ctx)
    }
}
