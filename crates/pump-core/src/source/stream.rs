//! A source over any `futures::Stream`.

use futures::Stream;
use futures::StreamExt;
use futures::stream::Fuse;

use crate::source::{Source, SourceStage};
use crate::stage::StageContext;

/// A source yielding a stream's items. Built by [`from_stream`].
#[derive(Debug)]
#[must_use = "sources do nothing unless run"]
pub struct FromStream<S> {
    stream: S,
}

/// Any `futures::Stream` as a source. The stream is fused, so it is never polled after its end.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let stream = futures::stream::iter([1, 2, 3]);
/// let out = source::from_stream(stream).to(sink::count()).run().await.unwrap();
/// assert_eq!(out.value, 3);
/// # }
/// ```
pub fn from_stream<S>(stream: S) -> FromStream<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    FromStream { stream }
}

impl<S> Source for FromStream<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Item = S::Item;
    type Stream = SourceStage<Fuse<S>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("stream");
        SourceStage::new(self.stream.fuse(), &stage, ctx)
    }
}
