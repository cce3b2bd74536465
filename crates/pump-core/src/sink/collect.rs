//! `collect`: gather every element into a `Vec`.

use std::future::Future;
use std::marker::PhantomData;

use futures::Stream;

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::sink::drive::drive;
use crate::stage::StageContext;

/// The `collect` sink. Built by [`collect`].
#[must_use = "sinks do nothing unless run"]
pub struct Collect<T> {
    marker: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for Collect<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collect")
    }
}

/// Collects every element into a `Vec`. Its memory grows with the input: for unbounded inputs use
/// [`fold`](crate::sink::fold) or a writer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = source::iter(1..=3).to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![1, 2, 3]);
/// # }
/// ```
pub fn collect<T>() -> Collect<T> {
    Collect { marker: PhantomData }
}

impl<T: Send + 'static> Sink<T> for Collect<T> {
    type Output = Vec<T>;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Vec<T>, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let metrics = ctx.register("collect").metrics().clone();
        let items = Vec::with_capacity(input.size_hint().0);
        drive(
            input,
            metrics,
            items,
            |items, item| {
                items.push(item);
            },
            |items| items,
        )
    }
}
