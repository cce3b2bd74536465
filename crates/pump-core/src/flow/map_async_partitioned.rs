//! `map_async_partitioned`: bounded concurrency with order kept per key.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::FuturesUnordered;
use pin_project_lite::pin_project;

use crate::error::PipelineError;
use crate::flow::Flow;
use crate::guard::{Guarded, PanicPayload};
use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext};

/// The `map_async_partitioned` flow. Built by `map_async_partitioned` on sources and flows.
#[must_use = "flows do nothing unless run"]
pub struct MapAsyncPartitioned<KF, F> {
    parallelism: NonZeroUsize,
    key: KF,
    f: F,
}

impl<KF, F> MapAsyncPartitioned<KF, F> {
    pub(crate) fn new(parallelism: NonZeroUsize, key: KF, f: F) -> Self {
        MapAsyncPartitioned { parallelism, key, f }
    }
}

impl<KF, F> std::fmt::Debug for MapAsyncPartitioned<KF, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapAsyncPartitioned").field("parallelism", &self.parallelism).finish()
    }
}

pin_project! {
    /// A lane's running future, tagged with the lane.
    #[must_use = "futures do nothing unless polled"]
    pub struct LaneFuture<Fut> {
        lane: usize,
        #[pin]
        inner: Guarded<Fut>,
    }
}

impl<Fut: Future> Future for LaneFuture<Fut> {
    type Output = (usize, Result<Fut::Output, PanicPayload>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.inner.poll(cx).map(|result| (*this.lane, result))
    }
}

struct Lane<T> {
    waiting: VecDeque<T>,
    busy: bool,
}

pin_project! {
    /// The stream of the `map_async_partitioned` flow.
    ///
    /// Elements go to one of `parallelism` lanes by key hash; each lane runs one future at a time.
    /// At most `parallelism` elements wait for a busy lane; past that, upstream is not polled.
    #[must_use = "streams do nothing unless polled"]
    pub struct MapAsyncPartitionedStream<S: Stream, KF, F, Fut> {
        #[pin]
        upstream: S,
        key: KF,
        f: F,
        hasher: RandomState,
        lanes: Vec<Lane<S::Item>>,
        running: FuturesUnordered<LaneFuture<Fut>>,
        waiting: usize,
        upstream_done: bool,
        failed: bool,
        stage: Stage,
        probe: StageProbe,
    }
}

impl<S, KF, K, F, Fut> Stream for MapAsyncPartitionedStream<S, KF, F, Fut>
where
    S: Stream,
    KF: FnMut(&S::Item) -> K,
    K: Hash,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        let n_lanes = this.lanes.len();
        while !*this.upstream_done && *this.waiting < n_lanes {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.probe.record_in();
                    let key = (this.key)(&item);
                    let lane_idx = (this.hasher.hash_one(&key) % n_lanes as u64) as usize;
                    let lane = &mut this.lanes[lane_idx];
                    if lane.busy {
                        lane.waiting.push_back(item);
                        *this.waiting += 1;
                    } else {
                        lane.busy = true;
                        let inner = Guarded::new((this.f)(item), this.stage.metrics().clone());
                        this.running.push(LaneFuture { lane: lane_idx, inner });
                    }
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        this.stage.metrics().set_buffer_depth(this.running.len() + *this.waiting);
        match Pin::new(&mut *this.running).poll_next(cx) {
            Poll::Ready(Some((lane_idx, Ok(out)))) => {
                let lane = &mut this.lanes[lane_idx];
                match lane.waiting.pop_front() {
                    Some(next) => {
                        *this.waiting -= 1;
                        let inner = Guarded::new((this.f)(next), this.stage.metrics().clone());
                        this.running.push(LaneFuture { lane: lane_idx, inner });
                    }
                    None => lane.busy = false,
                }
                this.probe.record_out();
                Poll::Ready(Some(out))
            }
            Poll::Ready(Some((_, Err(payload)))) => {
                *this.failed = true;
                this.stage.fail(PipelineError::from_panic(this.stage.name(), payload.as_ref()));
                Poll::Ready(None)
            }
            Poll::Ready(None) if *this.upstream_done => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<In, KF, K, F, Fut, U> Flow<In> for MapAsyncPartitioned<KF, F>
where
    In: Send + 'static,
    KF: FnMut(&In) -> K + Send + 'static,
    K: Hash,
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;
    type Stream<S>
        = MapAsyncPartitionedStream<S, KF, F, Fut>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("map_async_partitioned");
        let parallelism = self.parallelism.get();
        stage.metrics().set_buffer_capacity(parallelism * 2);
        MapAsyncPartitionedStream {
            upstream,
            key: self.key,
            f: self.f,
            hasher: RandomState::new(),
            lanes: (0..parallelism).map(|_| Lane { waiting: VecDeque::new(), busy: false }).collect(),
            running: FuturesUnordered::new(),
            waiting: 0,
            upstream_done: false,
            failed: false,
            probe: stage.probe(),
            stage,
        }
    }
}
