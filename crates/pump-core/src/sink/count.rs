//! `count`: count the elements.

use std::future::Future;

use futures::Stream;

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::sink::drive::drive;
use crate::stage::StageContext;

/// The `count` sink. Built by [`count`].
#[derive(Debug, Clone, Default)]
#[must_use = "sinks do nothing unless run"]
pub struct Count;

/// Counts the elements.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = source::iter(0..1000).filter(|x| x % 10 == 0).to(sink::count()).run().await.unwrap();
/// assert_eq!(out.value, 100);
/// # }
/// ```
pub fn count() -> Count {
    Count
}

impl<T: Send + 'static> Sink<T> for Count {
    type Output = u64;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<u64, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let metrics = ctx.register("count").metrics().clone();
        drive(
            input,
            metrics,
            0u64,
            |n, _item| {
                *n += 1;
            },
            |n| n,
        )
    }
}
