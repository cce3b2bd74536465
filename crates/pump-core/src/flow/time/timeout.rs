//! `timeout`: report, as an element, that upstream produced nothing within a time limit.

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

/// Upstream produced no element within the time limit. Emitted by
/// [`timeout`](crate::SourceExt::timeout) in place of an element; also the cause of the run failure
/// raised by [`idle_timeout`](crate::SourceExt::idle_timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("upstream produced no element within {after:?}")]
pub struct Elapsed {
    /// The time limit that passed.
    pub after: Duration,
}

/// The `timeout` flow. Built by `timeout` on sources and flows.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct Timeout {
    per_element: Duration,
}

impl Timeout {
    pub(crate) fn new(per_element: Duration) -> Self {
        Timeout { per_element }
    }
}

pin_project! {
    /// The stream of the `timeout` flow.
    ///
    /// The clock starts when downstream asks for an element; if upstream has produced none when the
    /// time limit passes, the stream yields `Err(Elapsed)` and, when asked again, starts a fresh
    /// limit while it goes on waiting for the same upstream element. Nothing is held.
    #[must_use = "streams do nothing unless polled"]
    pub struct TimeoutStream<S> {
        #[pin]
        upstream: S,
        per_element: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        armed: bool,
        done: bool,
        probe: StageProbe,
    }
}

impl<S> std::fmt::Debug for TimeoutStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutStream")
            .field("per_element", &self.per_element)
            .field("armed", &self.armed)
            .field("done", &self.done)
            .finish()
    }
}

/// Starts a time limit of `after` from now, reusing `sleep`'s timer when there is one.
pub(super) fn arm(sleep: &mut Option<Pin<Box<Sleep>>>, after: Duration) {
    timer_at(sleep, deadline_after(Instant::now(), after));
}

/// Whether the armed limit has passed (registering the waker when it has not).
pub(super) fn poll_elapsed(sleep: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    sleep.as_mut().is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
}

impl<S: Stream> Stream for TimeoutStream<S> {
    type Item = Result<S::Item, Elapsed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if !*this.armed {
            arm(this.sleep, *this.per_element);
            *this.armed = true;
        }
        match this.upstream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                *this.armed = false;
                this.probe.record_in();
                this.probe.record_out();
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if poll_elapsed(this.sleep, cx) {
                    *this.armed = false;
                    this.probe.metrics().record_error();
                    this.probe.record_out();
                    return Poll::Ready(Some(Err(Elapsed { after: *this.per_element })));
                }
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Any number of `Elapsed` may come between the elements.
        (self.upstream.size_hint().0, None)
    }
}

impl<In: Send + 'static> Flow<In> for Timeout {
    type Out = Result<In, Elapsed>;
    type Stream<S>
        = TimeoutStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("timeout");
        TimeoutStream {
            upstream,
            per_element: self.per_element,
            sleep: None,
            armed: false,
            done: false,
            probe: stage.probe(),
        }
    }
}
