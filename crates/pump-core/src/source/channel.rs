//! A source fed by a bounded tokio channel.

use tokio::sync::mpsc;

use crate::source::{Source, SourceStage};
use crate::stage::StageContext;

/// A source yielding what is sent on a tokio `mpsc` channel. Built by [`channel`].
#[derive(Debug)]
#[must_use = "sources do nothing unless run"]
pub struct Channel<T> {
    receiver: mpsc::Receiver<T>,
}

/// A bounded channel whose receiving end is a source: senders wait while the pipeline is behind.
///
/// The source ends when every sender is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let (sender, source) = source::channel::<u32>(8);
/// tokio::spawn(async move {
///     for x in 0..3 {
///         sender.send(x).await.unwrap();
///     }
/// });
/// let out = source.to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![0, 1, 2]);
/// # }
/// ```
///
/// # Panics
///
/// Panics if `capacity` is zero, as `tokio::sync::mpsc::channel` does.
pub fn channel<T: Send + 'static>(capacity: usize) -> (mpsc::Sender<T>, Channel<T>) {
    let (sender, receiver) = mpsc::channel(capacity);
    (sender, Channel { receiver })
}

impl<T: Send + 'static> Channel<T> {
    /// A source over an existing receiver.
    pub fn from_receiver(receiver: mpsc::Receiver<T>) -> Self {
        Channel { receiver }
    }
}

impl<T: Send + 'static> Source for Channel<T> {
    type Item = T;
    type Stream = SourceStage<ReceiverStream<T>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("channel");
        stage.metrics().set_buffer_capacity(self.receiver.max_capacity());
        SourceStage::new(ReceiverStream::new(self.receiver), &stage, ctx)
    }
}

/// A minimal `Stream` over `mpsc::Receiver` (what `tokio-stream` offers, without the dependency).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    /// The receiving half of a channel as a stream.
    #[derive(Debug)]
    pub struct ReceiverStream<T> {
        receiver: mpsc::Receiver<T>,
    }

    impl<T> ReceiverStream<T> {
        pub(crate) fn new(receiver: mpsc::Receiver<T>) -> Self {
            ReceiverStream { receiver }
        }
    }

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.receiver.poll_recv(cx)
        }
    }
}

pub use tokio_stream_shim::ReceiverStream;
