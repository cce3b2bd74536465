//! `reduce`: combine the elements pairwise, without an initial value.

use std::future::Future;

use futures::Stream;

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::sink::drive::drive;
use crate::stage::StageContext;

/// The `reduce` sink. Built by [`reduce`].
#[must_use = "sinks do nothing unless run"]
pub struct Reduce<F> {
    f: F,
}

impl<F> std::fmt::Debug for Reduce<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reduce")
    }
}

/// Reduces the elements with `f`; `None` for an empty stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = source::iter([3, 9, 4]).to(sink::reduce(|a: i32, b| a.max(b))).run().await.unwrap();
/// assert_eq!(out.value, Some(9));
/// # }
/// ```
pub fn reduce<T, F>(f: F) -> Reduce<F>
where
    F: FnMut(T, T) -> T,
{
    Reduce { f }
}

impl<T, F> Sink<T> for Reduce<F>
where
    T: Send + 'static,
    F: FnMut(T, T) -> T + Send + 'static,
{
    type Output = Option<T>;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<Option<T>, PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let metrics = ctx.register("reduce").metrics().clone();
        let mut f = self.f;
        drive(
            input,
            metrics,
            None,
            move |accumulator: &mut Option<T>, item| {
                *accumulator = Some(match accumulator.take() {
                    Some(previous) => f(previous, item),
                    None => item,
                });
            },
            |accumulator| accumulator,
        )
    }
}
