//! `reduce`: combine the elements pairwise, without an initial value.

use std::future::Future;

use futures::{Stream, StreamExt};

use crate::error::PipelineError;
use crate::sink::Sink;
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
        let mut probe = ctx.register("reduce").probe();
        let mut f = self.f;
        async move {
            let mut input = std::pin::pin!(input);
            let mut accumulator: Option<T> = None;
            while let Some(item) = input.next().await {
                probe.record_in();
                accumulator = Some(match accumulator {
                    Some(previous) => f(previous, item),
                    None => item,
                });
            }
            Ok(accumulator)
        }
    }
}
