//! `scan`: thread a state through the elements.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `scan` flow. Built by `scan` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct Scan<St, F> {
    state: St,
    f: F,
}

impl<St, F> Scan<St, F> {
    pub(crate) fn new(state: St, f: F) -> Self {
        Scan { state, f }
    }
}

impl<St, F> std::fmt::Debug for Scan<St, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scan")
    }
}

pin_project! {
    /// The stream of the `scan` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct ScanStream<S, St, F> {
        #[pin]
        upstream: S,
        state: St,
        f: F,
        done: bool,
        probe: DeferredProbe,
    }
}

impl<S, St, F, U> Stream for ScanStream<S, St, F>
where
    S: Stream,
    F: FnMut(&mut St, S::Item) -> Option<U>,
{
    type Item = U;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match crate::metrics::ready_or_publish!(this.probe, this.upstream.poll_next(cx)) {
            Some(item) => {
                this.probe.record_in();
                let out = (this.f)(this.state, item);
                if out.is_some() {
                    this.probe.record_out();
                } else {
                    *this.done = true;
                }
                Poll::Ready(out)
            }
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }
}

impl<In, St, F, U> Flow<In> for Scan<St, F>
where
    St: Send + 'static,
    F: FnMut(&mut St, In) -> Option<U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Stream<S>
        = ScanStream<S, St, F>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        ScanStream {
            upstream,
            state: self.state,
            f: self.f,
            done: false,
            probe: DeferredProbe::new(ctx.register("scan").metrics().clone()),
        }
    }
}
