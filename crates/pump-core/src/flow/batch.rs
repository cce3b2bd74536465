//! `batch`: group elements into bounded vectors, by size or by time.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::flow::Flow;
use crate::metrics::StageProbe;
use crate::stage::StageContext;
use crate::timer::timer_at;

/// The `batch` flow. Built by `batch` on sources and flows.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Batch {
    max_size: NonZeroUsize,
    max_wait: Duration,
}

impl Batch {
    pub(crate) fn new(max_size: NonZeroUsize, max_wait: Duration) -> Self {
        Batch { max_size, max_wait }
    }
}

pin_project! {
    /// The stream of the `batch` flow.
    ///
    /// A batch is emitted when it holds `max_size` elements, when `max_wait` has passed since its
    /// first element arrived (checked whenever upstream has nothing ready), or when upstream ends.
    /// The timer is armed once per batch, not per element.
    #[must_use = "streams do nothing unless polled"]
    pub struct BatchStream<S: Stream> {
        #[pin]
        upstream: S,
        items: Vec<S::Item>,
        max_size: usize,
        max_wait: Duration,
        deadline: Option<Pin<Box<Sleep>>>,
        armed: bool,
        done: bool,
        probe: StageProbe,
    }
}

impl<S: Stream> BatchStream<S> {
    fn take_batch(items: &mut Vec<S::Item>, max_size: usize) -> Vec<S::Item> {
        std::mem::replace(items, Vec::with_capacity(max_size))
    }
}

impl<S: Stream> Stream for BatchStream<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    if this.items.is_empty() {
                        *this.armed = false;
                    }
                    this.items.push(item);
                    if this.items.len() >= *this.max_size {
                        *this.armed = false;
                        this.probe.record_out();
                        return Poll::Ready(Some(Self::take_batch(this.items, *this.max_size)));
                    }
                    if this.items.len() == 1 {
                        // Arm the timer lazily: a batch filled by a ready upstream never reads the clock
                        // beyond this once.
                        timer_at(this.deadline, Instant::now() + *this.max_wait);
                        *this.armed = true;
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    if this.items.is_empty() {
                        return Poll::Ready(None);
                    }
                    this.probe.record_out();
                    return Poll::Ready(Some(std::mem::take(this.items)));
                }
                Poll::Pending => {
                    if *this.armed
                        && let Some(sleep) = this.deadline.as_mut()
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        *this.armed = false;
                        this.probe.record_out();
                        return Poll::Ready(Some(Self::take_batch(this.items, *this.max_size)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<In: Send + 'static> Flow<In> for Batch {
    type Out = Vec<In>;
    type Stream<S>
        = BatchStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("batch");
        stage.metrics().set_buffer_capacity(self.max_size.get());
        BatchStream {
            upstream,
            items: Vec::with_capacity(self.max_size.get()),
            max_size: self.max_size.get(),
            max_wait: self.max_wait,
            deadline: None,
            armed: false,
            done: false,
            probe: stage.probe(),
        }
    }
}
