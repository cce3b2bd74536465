//! `flat_map`: map each element to an iterator and emit its items.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `flat_map` flow. Built by `flat_map` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct FlatMap<F, I> {
    f: F,
    marker: PhantomData<fn() -> I>,
}

impl<F, I> FlatMap<F, I> {
    pub(crate) fn new(f: F) -> Self {
        FlatMap { f, marker: PhantomData }
    }
}

impl<F, I> std::fmt::Debug for FlatMap<F, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlatMap")
    }
}

pin_project! {
    /// The stream of the `flat_map` flow. It holds at most one element's iterator.
    #[must_use = "streams do nothing unless polled"]
    pub struct FlatMapStream<S, F, I> {
        #[pin]
        upstream: S,
        f: F,
        current: Option<I>,
        probe: DeferredProbe,
    }
}

impl<S, F, I, It> Stream for FlatMapStream<S, F, It>
where
    S: Stream,
    F: FnMut(S::Item) -> I,
    I: IntoIterator<IntoIter = It>,
    It: Iterator,
{
    type Item = It::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<It::Item>> {
        let mut this = self.project();
        loop {
            if let Some(iter) = this.current.as_mut() {
                if let Some(item) = iter.next() {
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                *this.current = None;
            }
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(item) => {
                    this.probe.record_in();
                    *this.current = Some((this.f)(item).into_iter());
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<In, F, I> Flow<In> for FlatMap<F, I::IntoIter>
where
    F: FnMut(In) -> I + Send + 'static,
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    type Stream<S>
        = FlatMapStream<S, F, I::IntoIter>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        FlatMapStream {
            upstream,
            f: self.f,
            current: None,
            probe: DeferredProbe::new(ctx.register("flat_map").metrics().clone()),
        }
    }
}
