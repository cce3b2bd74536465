//! `skip_while`: discard elements while a predicate holds.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `skip_while` flow. Built by `skip_while` on sources and flows.
#[derive(Clone)]
#[must_use = "flows do nothing unless run"]
pub struct SkipWhile<P> {
    predicate: P,
}

impl<P> SkipWhile<P> {
    pub(crate) fn new(predicate: P) -> Self {
        SkipWhile { predicate }
    }
}

impl<P> std::fmt::Debug for SkipWhile<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkipWhile")
    }
}

pin_project! {
    /// The stream of the `skip_while` flow.
    #[must_use = "streams do nothing unless polled"]
    pub struct SkipWhileStream<S, P> {
        #[pin]
        upstream: S,
        predicate: P,
        skipping: bool,
        probe: DeferredProbe,
    }
}

impl<S, P> Stream for SkipWhileStream<S, P>
where
    S: Stream,
    P: FnMut(&S::Item) -> bool,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(item) => {
                    this.probe.record_in();
                    if *this.skipping && (this.predicate)(&item) {
                        continue;
                    }
                    *this.skipping = false;
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<In, P> Flow<In> for SkipWhile<P>
where
    In: Send + 'static,
    P: FnMut(&In) -> bool + Send + 'static,
{
    type Out = In;
    type Stream<S>
        = SkipWhileStream<S, P>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        SkipWhileStream {
            upstream,
            predicate: self.predicate,
            skipping: true,
            probe: DeferredProbe::new(ctx.register("skip_while").metrics().clone()),
        }
    }
}
