//! The adapter every root source is wrapped in: counts elements, stops on drain, yields on a budget.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{FutureExt, Stream};
use pin_project_lite::pin_project;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext};

/// How many elements a source hands out in one go before it yields to the executor, so that a
/// pipeline over an always-ready source still notices aborts and lets other tasks run.
pub(crate) const YIELD_BUDGET: u32 = 256;

pin_project! {
    /// A root source's stream, as seen by the rest of the pipeline.
    #[must_use = "streams do nothing unless polled"]
    pub struct SourceStage<S> {
        #[pin]
        upstream: S,
        probe: StageProbe,
        drain: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        drain_token: tokio_util::sync::CancellationToken,
        cancel_token: tokio_util::sync::CancellationToken,
        budget: u32,
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
            probe: stage.probe(),
            drain: None,
            drain_token: ctx.drain_token().clone(),
            cancel_token: ctx.cancellation_token().clone(),
            budget: YIELD_BUDGET,
            done: false,
        }
    }
}

impl<S: Stream> Stream for SourceStage<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if *this.budget == 0 {
            *this.budget = YIELD_BUDGET;
            if this.drain_token.is_cancelled() || this.cancel_token.is_cancelled() {
                *this.done = true;
                return Poll::Ready(None);
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The yield above is not enough on its own: a stage holding finished results (`map_async`,
        // `map_blocking`, ...) answers our `Pending` with one of them, and the sink polls it, and so
        // us, again within the same task poll, so the task would never return to the scheduler. The
        // task's cooperative budget belongs to the task poll: once it is used up, every source of the
        // task answers `Pending` until the task has really yielded.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        match this.upstream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                coop.made_progress();
                *this.budget -= 1;
                this.probe.record_in();
                this.probe.record_out();
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                *this.budget = YIELD_BUDGET;
                let drain =
                    this.drain.get_or_insert_with(|| Box::pin(this.drain_token.clone().cancelled_owned()));
                ready!(drain.poll_unpin(cx));
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done { (0, Some(0)) } else { (0, self.upstream.size_hint().1) }
    }
}
