//! `fold`: combine every element into one value.

use std::future::Future;

use futures::{FutureExt, Stream};

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::sink::drive::drive;
use crate::stage::StageContext;

/// The `fold` sink. Built by [`fold`].
#[must_use = "sinks do nothing unless run"]
pub struct Fold<A, F> {
    initial: A,
    f: F,
}

impl<A, F> std::fmt::Debug for Fold<A, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fold")
    }
}

/// Folds the elements into an accumulator, starting from `initial`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = source::iter(1..=4u64).to(sink::fold(0, |sum, x| sum + x)).run().await.unwrap();
/// assert_eq!(out.value, 10);
/// # }
/// ```
pub fn fold<A, T, F>(initial: A, f: F) -> Fold<A, F>
where
    F: FnMut(A, T) -> A,
{
    Fold { initial, f }
}

impl<T, A, F> Sink<T> for Fold<A, F>
where
    T: Send + 'static,
    A: Send + 'static,
    F: FnMut(A, T) -> A + Send + 'static,
{
    type Output = A;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<A, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let metrics = ctx.register("fold").metrics().clone();
        let Fold { initial, mut f } = self;
        // The accumulator is moved through `f`; an `Option` lets `drive` hold it by `&mut`.
        drive(
            input,
            metrics,
            Some(initial),
            move |accumulator: &mut Option<A>, item| {
                *accumulator = accumulator.take().map(|value| f(value, item));
            },
            |accumulator| accumulator,
        )
        .map(|result| result.and_then(|accumulator| accumulator.ok_or_else(fold_lost_its_accumulator)))
    }
}

/// `fold`'s accumulator is only absent if `f` panicked mid-element, which fails the run first; this
/// turns the impossible case into an error instead of a panic.
fn fold_lost_its_accumulator() -> PipelineError {
    PipelineError::io("fold", "the accumulator was lost after a panic in the fold function")
}
