//! `from_sink`: any `futures::Sink` as a pump sink.

use std::future::Future;

use futures::{Stream, StreamExt};

use crate::error::{BoxError, PipelineError};
use crate::sink::Sink;
use crate::stage::StageContext;

/// A `futures::Sink` as a pump sink. Built by [`from_sink`].
#[derive(Debug)]
#[must_use = "sinks do nothing unless run"]
pub struct FromSink<K> {
    sink: K,
}

/// Forwards every element into a `futures::Sink` (honouring its `poll_ready` backpressure), then
/// closes it. The sink's error fails the run as an `Io` error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let (tx, mut rx) = futures::channel::mpsc::channel::<u32>(4);
/// source::iter([5, 6]).to(sink::from_sink(tx)).run().await.unwrap();
/// use futures::StreamExt;
/// assert_eq!(rx.next().await, Some(5));
/// # }
/// ```
pub fn from_sink<K>(sink: K) -> FromSink<K> {
    FromSink { sink }
}

impl<T, K> Sink<T> for FromSink<K>
where
    T: Send + 'static,
    K: futures::Sink<T> + Send + Unpin + 'static,
    K::Error: Into<BoxError>,
{
    type Output = ();

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<(), PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let stage = ctx.register("futures_sink");
        let mut probe = stage.probe();
        let mut sink = self.sink;
        async move {
            let counted = input.map(move |item| {
                probe.record_in();
                Ok(item)
            });
            counted.forward(&mut sink).await.map_err(|error| PipelineError::io(stage.name(), error))
        }
    }
}
