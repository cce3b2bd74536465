//! The adapter every root source is wrapped in: counts elements, stops on drain, yields on a budget.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{FutureExt, Stream};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext};

/// How many elements a source hands out between two looks at the run's drain and cancellation tokens.
/// Reading a token takes a lock, so it is not done per element; a drain therefore takes effect within
/// this many elements of an always-ready source.
pub(crate) const CONTROL_INTERVAL: u32 = 256;

/// How many elements a source hands out per unit of tokio's cooperative task budget (128 units per
/// task poll): an always-ready source gives the runtime back control at least every 128 × 32 = 4096
/// elements, so it can neither starve other tasks nor hide an abort, while a fused pipeline pays for
/// the thread-local budget check only once per 32 elements.
const COOP_INTERVAL: u32 = 32;

pin_project! {
    /// A root source's stream, as seen by the rest of the pipeline.
    #[must_use = "streams do nothing unless polled"]
    pub struct SourceStage<S> {
        #[pin]
        upstream: S,
        probe: StageProbe,
        drain: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        drain_token: CancellationToken,
        cancel_token: CancellationToken,
        since_control: u32,
        produced: u64,
        done: bool,
    }
}

impl<S> std::fmt::Debug for SourceStage<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceStage").field("probe", &self.probe).field("done", &self.done).finish()
    }
}

impl<S: Stream> SourceStage<S> {
    /// Wraps `upstream` as the stage `stage` of the run `ctx`.
    pub fn new(upstream: S, stage: &Stage, ctx: &StageContext) -> Self {
        SourceStage {
            upstream,
            probe: StageProbe::one_to_one(stage.metrics().clone()),
            drain: None,
            drain_token: ctx.drain_token().clone(),
            cancel_token: ctx.cancellation_token().clone(),
            since_control: 0,
            produced: 0,
            done: false,
        }
    }
}

impl<S: Stream> Stream for SourceStage<S> {
    type Item = S::Item;

    // The hot path (an element is ready) is kept small so that it inlines into the fused chain; the
    // periodic checks and the idle path live in cold functions.
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if (*this.since_control).is_multiple_of(COOP_INTERVAL) {
            // The count is published here, every 32 elements and at every stop, rather than per element:
            // a per-element store to a shared counter makes a loop-carried dependency through memory.
            this.probe.publish_in_out(*this.produced);
            let proceed =
                ready!(periodic_check(*this.since_control, this.drain_token, this.cancel_token, cx));
            if !proceed {
                *this.done = true;
                return Poll::Ready(None);
            }
        }
        match this.upstream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                *this.since_control = (*this.since_control + 1) % CONTROL_INTERVAL;
                *this.produced += 1;
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.probe.publish_in_out(*this.produced);
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.probe.publish_in_out(*this.produced);
                let drained = ready!(poll_drain(this.drain, this.drain_token, cx));
                *this.done = drained;
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done { (0, Some(0)) } else { (0, self.upstream.size_hint().1) }
    }
}

/// Every [`COOP_INTERVAL`] elements: consume a unit of the task's budget, and every
/// [`CONTROL_INTERVAL`] elements look at the drain and cancellation tokens. `Ready(false)` ends the
/// source.
///
/// Yielding on our own count alone is not enough: a stage holding finished results (`map_async`,
/// `map_blocking`, ...) answers our `Pending` with one of them, the sink polls it, and so us, again
/// within the same task poll, and the task never returns to the scheduler. The task's cooperative
/// budget belongs to the task poll: once it is used up, every source of the task answers `Pending`
/// until the task has really yielded.
#[cold]
#[inline(never)]
fn periodic_check(
    since_control: u32,
    drain_token: &CancellationToken,
    cancel_token: &CancellationToken,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    if since_control == 0 && (drain_token.is_cancelled() || cancel_token.is_cancelled()) {
        return Poll::Ready(false);
    }
    ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
    Poll::Ready(true)
}

/// Upstream has nothing ready: wait for it or for a drain. `Ready(true)` means drained.
#[cold]
#[inline(never)]
fn poll_drain(
    drain: &mut Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    drain_token: &CancellationToken,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    let drain = drain.get_or_insert_with(|| Box::pin(drain_token.clone().cancelled_owned()));
    ready!(drain.poll_unpin(cx));
    Poll::Ready(true)
}
