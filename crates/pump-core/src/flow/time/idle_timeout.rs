//! `idle_timeout`: fail the run when upstream produces nothing within a time limit.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::error::PipelineError;
use crate::flow::Flow;
use crate::flow::time::Elapsed;
use crate::flow::time::timeout::{arm, poll_elapsed};
use crate::metrics::StageProbe;
use crate::stage::{Stage, StageContext};

/// The `idle_timeout` flow. Built by `idle_timeout` on sources and flows.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct IdleTimeout {
    idle: Duration,
}

impl IdleTimeout {
    pub(crate) fn new(idle: Duration) -> Self {
        IdleTimeout { idle }
    }
}

pin_project! {
    /// The stream of the `idle_timeout` flow.
    ///
    /// The clock starts when downstream asks for an element; if upstream has produced none when the
    /// time limit passes, the stage fails the run with [`PipelineError::Io`] (its cause an
    /// [`Elapsed`]) and the stream ends. Nothing is held.
    #[must_use = "streams do nothing unless polled"]
    pub struct IdleTimeoutStream<S> {
        #[pin]
        upstream: S,
        idle: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        armed: bool,
        done: bool,
        stage: Stage,
        probe: StageProbe,
    }
}

impl<S> std::fmt::Debug for IdleTimeoutStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleTimeoutStream")
            .field("idle", &self.idle)
            .field("armed", &self.armed)
            .field("done", &self.done)
            .finish()
    }
}

impl<S: Stream> Stream for IdleTimeoutStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if !*this.armed {
            arm(this.sleep, *this.idle);
            *this.armed = true;
        }
        match this.upstream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                *this.armed = false;
                this.probe.record_in();
                this.probe.record_out();
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if poll_elapsed(this.sleep, cx) {
                    *this.done = true;
                    this.stage.metrics().record_error();
                    this.stage.fail(PipelineError::io(this.stage.name(), Elapsed { after: *this.idle }));
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.upstream.size_hint().1)
    }
}

impl<In: Send + 'static> Flow<In> for IdleTimeout {
    type Out = In;
    type Stream<S>
        = IdleTimeoutStream<S>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let stage = ctx.register("idle_timeout");
        IdleTimeoutStream {
            upstream,
            idle: self.idle,
            sleep: None,
            armed: false,
            done: false,
            probe: stage.probe(),
            stage,
        }
    }
}
