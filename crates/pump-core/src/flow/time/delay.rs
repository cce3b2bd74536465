//! `delay`: emit each element a fixed time after it was received, keeping order.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::flow::Flow;
use crate::flow::time::deadline_after;
use crate::metrics::StageProbe;
use crate::stage::StageContext;
use crate::timer::timer_at;

/// The `delay` flow. Built by `delay` on sources and flows.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct Delay {
    by: Duration,
    max_in_flight: NonZeroUsize,
}

impl Delay {
    pub(crate) fn new(by: Duration, max_in_flight: NonZeroUsize) -> Self {
        Delay { by, max_in_flight }
    }
}

pin_project! {
    /// The stream of the `delay` flow.
    ///
    /// Pulls from upstream while it holds fewer than `max_in_flight` elements, stamping each with
    /// the time it was received; emits the oldest once `by` has passed since its stamp (later, if
    /// downstream asks later). When full, it stops pulling until the oldest element has gone, so it
    /// never holds more than `max_in_flight` elements. One timer serves the whole queue.
    #[must_use = "streams do nothing unless polled"]
    pub struct DelayStream<S: Stream> {
        #[pin]
        upstream: S,
        by: Duration,
        max_in_flight: usize,
        queue: VecDeque<(Instant, S::Item)>,
        sleep: Option<Pin<Box<Sleep>>>,
        upstream_done: bool,
        probe: StageProbe,
    }
}

impl<S: Stream> std::fmt::Debug for DelayStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayStream")
            .field("by", &self.by)
            .field("max_in_flight", &self.max_in_flight)
            .field("held", &self.queue.len())
            .field("upstream_done", &self.upstream_done)
            .finish()
    }
}

impl<S: Stream> Stream for DelayStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        while !*this.upstream_done && this.queue.len() < *this.max_in_flight {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    this.queue.push_back((deadline_after(Instant::now(), *this.by), item));
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        this.probe.metrics().set_buffer_depth(this.queue.len());
        let Some(&(due, _)) = this.queue.front() else {
            return if *this.upstream_done { Poll::Ready(None) } else { Poll::Pending };
        };
        // Check the clock first: a timer reset to a past instant would still wait for the timer
        // driver's next tick.
        if due > Instant::now() && timer_at(this.sleep, due).as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let Some((_, item)) = this.queue.pop_front() else {
            return Poll::Pending;
        };
        this.probe.metrics().set_buffer_depth(this.queue.len());
        this.probe.record_out();
        Poll::Ready(Some(item))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let held = self.queue.len();
        let (lower, upper) = if self.upstream_done { (0, Some(0)) } else { self.upstream.size_hint() };
        (lower.saturating_add(held), upper.and_then(|upper| upper.checked_add(held)))
    }
}

impl<In: Send + 'static> Flow<In> for Delay {
    type Out = In;
    type Stream<S>
        = DelayStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("delay");
        stage.metrics().set_buffer_capacity(self.max_in_flight.get());
        DelayStream {
            upstream,
            by: self.by,
            max_in_flight: self.max_in_flight.get(),
            queue: VecDeque::new(),
            sleep: None,
            upstream_done: false,
            probe: stage.probe(),
        }
    }
}
