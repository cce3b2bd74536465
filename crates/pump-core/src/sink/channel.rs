//! `sender`: forward every element to a bounded tokio channel.

use std::future::Future;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::stage::StageContext;

/// The channel sink. Built by [`sender`].
#[derive(Debug)]
#[must_use = "sinks do nothing unless run"]
pub struct Sender<T> {
    sender: mpsc::Sender<T>,
}

/// Sends every element on `sender`, waiting for room (backpressure). The run fails with an `Io`
/// error if the receiver is dropped while elements remain.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let (tx, mut rx) = tokio::sync::mpsc::channel(2);
/// let run = tokio::spawn(source::iter(1..=3).to(sink::sender(tx)).run());
/// let mut got = Vec::new();
/// while let Some(x) = rx.recv().await { got.push(x); }
/// run.await.unwrap().unwrap();
/// assert_eq!(got, vec![1, 2, 3]);
/// # }
/// ```
pub fn sender<T>(sender: mpsc::Sender<T>) -> Sender<T> {
    Sender { sender }
}

impl<T: Send + 'static> Sink<T> for Sender<T> {
    type Output = ();

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<(), PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let stage = ctx.register("sender");
        stage.metrics().set_buffer_capacity(self.sender.max_capacity());
        let mut probe = stage.probe();
        async move {
            let mut input = std::pin::pin!(input);
            while let Some(item) = input.next().await {
                probe.record_in();
                if self.sender.send(item).await.is_err() {
                    return Err(PipelineError::io(stage.name(), "channel receiver dropped"));
                }
            }
            Ok(())
        }
    }
}
