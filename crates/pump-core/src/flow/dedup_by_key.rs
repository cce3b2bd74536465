//! `dedup_by_key`: drop consecutive elements with equal keys.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pin_project_lite::pin_project;

use crate::flow::Flow;
use crate::metrics::DeferredProbe;
use crate::stage::StageContext;

/// The `dedup_by_key` flow. Built by `dedup_by_key` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct DedupByKey<F, K> {
    key: F,
    marker: PhantomData<fn() -> K>,
}

impl<F, K> DedupByKey<F, K> {
    pub(crate) fn new(key: F) -> Self {
        DedupByKey { key, marker: PhantomData }
    }
}

impl<F, K> std::fmt::Debug for DedupByKey<F, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DedupByKey")
    }
}

pin_project! {
    /// The stream of the `dedup_by_key` flow. It remembers only the last key (constant memory).
    #[must_use = "streams do nothing unless polled"]
    pub struct DedupByKeyStream<S, F, K> {
        #[pin]
        upstream: S,
        key: F,
        last: Option<K>,
        probe: DeferredProbe,
    }
}

impl<S, F, K> Stream for DedupByKeyStream<S, F, K>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: PartialEq,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            match crate::metrics::ready_or_publish!(this.probe, this.upstream.as_mut().poll_next(cx)) {
                Some(item) => {
                    this.probe.record_in();
                    let key = (this.key)(&item);
                    if this.last.as_ref() == Some(&key) {
                        continue;
                    }
                    *this.last = Some(key);
                    this.probe.record_out();
                    return Poll::Ready(Some(item));
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<In, F, K> Flow<In> for DedupByKey<F, K>
where
    In: Send + 'static,
    F: FnMut(&In) -> K + Send + 'static,
    K: PartialEq + Send + 'static,
{
    type Out = In;
    type Stream<S>
        = DedupByKeyStream<S, F, K>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        DedupByKeyStream {
            upstream,
            key: self.key,
            last: None,
            probe: DeferredProbe::new(ctx.register("dedup_by_key").metrics().clone()),
        }
    }
}
