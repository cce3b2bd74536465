//! `ignore`: consume and discard.

use std::future::Future;

use futures::Stream;

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::sink::drive::drive;
use crate::stage::StageContext;

/// The `ignore` sink. Built by [`ignore`].
#[derive(Debug, Clone, Default)]
#[must_use = "sinks do nothing unless run"]
pub struct Ignore;

/// Pulls every element and discards it (side effects upstream still happen; the sink's `in`
/// counter still counts).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = source::iter(1..=5).to(sink::ignore()).run().await.unwrap();
/// assert_eq!(out.stats.metrics.stage("ignore").unwrap().elements_in, 5);
/// # }
/// ```
pub fn ignore() -> Ignore {
    Ignore
}

impl<T: Send + 'static> Sink<T> for Ignore {
    type Output = ();

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<(), PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let metrics = ctx.register("ignore").metrics().clone();
        drive(input, metrics, (), |(), _item| {}, |()| ())
    }
}
