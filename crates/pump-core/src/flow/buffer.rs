//! `async_boundary` and `buffer`: run upstream on its own task behind a bounded buffer.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::poll_fn;
use futures::{FutureExt, Stream, StreamExt};
use tokio::task::JoinHandle;

use crate::error::PipelineError;
use crate::flow::Flow;
use crate::guard::{Guarded, PanicPayload};
use crate::metrics::StageProbe;
use crate::overflow::{BoundedQueue, Offer, OverflowStrategy};
use crate::stage::{Stage, StageContext, scope_token};

/// The `async_boundary` / `buffer` flow. Built by those methods on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Buffer {
    capacity: NonZeroUsize,
    overflow: OverflowStrategy,
}

impl Buffer {
    pub(crate) fn new(capacity: NonZeroUsize, overflow: OverflowStrategy) -> Self {
        Buffer { capacity, overflow }
    }
}

/// The stream of the `async_boundary` flow: the consuming side of the buffer. Dropping it aborts the
/// upstream task.
#[must_use = "streams do nothing unless polled"]
pub struct BufferStream<T> {
    queue: BoundedQueue<T>,
    producer: Option<JoinHandle<Result<(), PanicPayload>>>,
    stage: Stage,
    probe: StageProbe,
    done: bool,
}

impl<T> std::fmt::Debug for BufferStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferStream").field("stage", &self.stage.name()).field("done", &self.done).finish()
    }
}

impl<T> Drop for BufferStream<T> {
    fn drop(&mut self) {
        self.queue.close_consumer();
        if let Some(producer) = self.producer.take() {
            producer.abort();
        }
    }
}

impl<T> Stream for BufferStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.queue.poll_take(cx) {
            Poll::Ready(Some(item)) => {
                this.probe.record_out();
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                // The producer closed the queue; find out whether it ended or panicked.
                if let Some(producer) = this.producer.as_mut() {
                    match producer.poll_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(Ok(()))) => {}
                        Poll::Ready(Ok(Err(payload))) => {
                            this.stage.fail(PipelineError::from_panic(this.stage.name(), payload.as_ref()));
                        }
                        Poll::Ready(Err(join_error)) => {
                            if join_error.is_panic() {
                                this.stage.fail(PipelineError::Panicked {
                                    stage: this.stage.name(),
                                    message: "upstream task panicked".into(),
                                });
                            }
                        }
                    }
                    this.producer = None;
                }
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Closes the queue's producing side when the producer task ends, however it ends.
struct CloseOnDrop<T>(BoundedQueue<T>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close_producer();
    }
}

impl<In: Send + 'static> Flow<In> for Buffer {
    type Out = In;
    type Stream<S>
        = BufferStream<In>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("async_boundary");
        let capacity = self.capacity.get();
        stage.metrics().set_buffer_capacity(capacity);
        let queue = BoundedQueue::new(capacity, self.overflow);
        let producer_queue = queue.clone();
        let producer_stage = stage.clone();
        let producer = async move {
            let _close = CloseOnDrop(producer_queue.clone());
            let mut probe = producer_stage.probe();
            let mut upstream = std::pin::pin!(upstream);
            while let Some(item) = upstream.next().await {
                probe.record_in();
                let mut pending = Some(item);
                let outcome = poll_fn(|cx| match pending.take() {
                    Some(item) => match producer_queue.offer(item, cx) {
                        Offer::Full(item) => {
                            pending = Some(item);
                            Poll::Pending
                        }
                        other => Poll::Ready(other),
                    },
                    None => Poll::Ready(Offer::Closed),
                })
                .await;
                producer_stage.metrics().set_buffer_depth(producer_queue.len());
                match outcome {
                    Offer::Accepted => {}
                    Offer::DroppedOldest | Offer::DroppedNewest => producer_stage.metrics().record_dropped(1),
                    Offer::Overflow => {
                        producer_stage.metrics().record_dropped(1);
                        producer_stage
                            .fail(PipelineError::Overflow { stage: producer_stage.name(), capacity });
                        return;
                    }
                    Offer::Closed | Offer::Full(_) => return,
                }
            }
        };
        let guarded = Guarded::new(producer, stage.metrics().clone());
        let handle = tokio::spawn(scope_token(ctx.cancellation_token().clone(), guarded));
        BufferStream { queue, producer: Some(handle), probe: stage.probe(), stage, done: false }
    }
}
