//! The loop every simple sink runs: pull elements and fold them into a state, with the state held
//! in locals while elements are ready.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use futures::Stream;
use futures::future::poll_fn;

use crate::error::PipelineError;
use crate::metrics::{DeferredProbe, StageMetrics};

/// Pulls `input` to its end, counting each element in the stage `metrics` and applying `on_item` to a state, then
/// turns the state into the result.
///
/// Written as a hand-rolled poll loop rather than `while let Some(x) = input.next().await`: the
/// `async` form stores its state machine and the `Next` future to memory on every element, which
/// costs more than a fused `map`. Here the state lives in a local for as long as elements are ready
/// and is parked only when upstream is pending.
pub(crate) fn drive<S, St, R>(
    input: S,
    metrics: Arc<StageMetrics>,
    state: St,
    mut on_item: impl FnMut(&mut St, S::Item) + Send + 'static,
    finish: impl FnOnce(St) -> R + Send + 'static,
) -> impl Future<Output = Result<R, PipelineError>> + Send + 'static
where
    S: Stream + Send + 'static,
    St: Send + 'static,
    R: Send + 'static,
{
    let mut probe = DeferredProbe::new(metrics);
    let mut input = Box::pin(input);
    let mut parked = Some((state, finish));
    poll_fn(move |cx| {
        // Polled again after completion: stay pending rather than panic (a contract violation by
        // the caller, which the pipeline driver never commits).
        let Some((mut state, finish)) = parked.take() else {
            return Poll::Pending;
        };
        loop {
            match input.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    probe.record_in();
                    on_item(&mut state, item);
                }
                Poll::Ready(None) => return Poll::Ready(Ok(finish(state))),
                Poll::Pending => {
                    probe.publish();
                    parked = Some((state, finish));
                    return Poll::Pending;
                }
            }
        }
    })
}
