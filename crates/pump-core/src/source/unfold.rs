//! A source built from a state and an async step function.

use std::future::Future;

use futures::stream::{self, Unfold as StreamUnfold};

use crate::source::{Source, SourceStage};
use crate::stage::StageContext;

/// A source driven by an async step function. Built by [`unfold`].
#[derive(Debug)]
#[must_use = "sources do nothing unless run"]
pub struct Unfold<St, F> {
    state: St,
    step: F,
}

/// Calls `step(state)` each time downstream wants an element; `Some((item, next_state))` yields
/// the item, `None` ends the source. Only one step runs at a time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let pages = source::unfold(0u32, |page| async move { (page < 3).then(|| (page, page + 1)) });
/// let out = pages.to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![0, 1, 2]);
/// # }
/// ```
pub fn unfold<St, F, Fut, T>(state: St, step: F) -> Unfold<St, F>
where
    St: Send + 'static,
    F: FnMut(St) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(T, St)>> + Send + 'static,
    T: Send + 'static,
{
    Unfold { state, step }
}

impl<St, F, Fut, T> Source for Unfold<St, F>
where
    St: Send + 'static,
    F: FnMut(St) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(T, St)>> + Send + 'static,
    T: Send + 'static,
{
    type Item = T;
    type Stream = SourceStage<StreamUnfold<St, F, Fut>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("unfold");
        SourceStage::new(stream::unfold(self.state, self.step), &stage, ctx)
    }
}
