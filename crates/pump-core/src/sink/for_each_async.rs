//! `for_each_async`: run an async function on every element, bounded concurrency.

use std::future::Future;
use std::num::NonZeroUsize;

use futures::{Stream, StreamExt};

use crate::error::PipelineError;
use crate::guard::Guarded;
use crate::sink::Sink;
use crate::stage::StageContext;

/// The `for_each_async` sink. Built by [`for_each_async`].
#[must_use = "sinks do nothing unless run"]
pub struct ForEachAsync<F> {
    parallelism: NonZeroUsize,
    f: F,
}

impl<F> std::fmt::Debug for ForEachAsync<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForEachAsync").field("parallelism", &self.parallelism).finish()
    }
}

/// Runs `f` on every element, up to `parallelism` at once; completes when all have finished. A panic
/// in `f` fails the run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// let total = Arc::new(AtomicU64::new(0));
/// let adder = total.clone();
/// source::iter(1..=10u64)
///     .to(sink::for_each_async(std::num::NonZeroUsize::new(3).unwrap(), move |x| {
///         let adder = adder.clone();
///         async move { adder.fetch_add(x, Ordering::Relaxed); }
///     }))
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(total.load(Ordering::Relaxed), 55);
/// # }
/// ```
pub fn for_each_async<T, F, Fut>(parallelism: NonZeroUsize, f: F) -> ForEachAsync<F>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()>,
{
    ForEachAsync { parallelism, f }
}

impl<T, F, Fut> Sink<T> for ForEachAsync<F>
where
    T: Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Output = ();

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl Future<Output = Result<(), PipelineError>> + Send + 'static
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let stage = ctx.register("for_each_async");
        stage.metrics().set_buffer_capacity(self.parallelism.get());
        let mut probe = stage.probe();
        let metrics = stage.metrics().clone();
        let mut f = self.f;
        let parallelism = self.parallelism.get();
        async move {
            let futures = input.map(move |item| Guarded::new(f(item), metrics.clone()));
            let mut done = std::pin::pin!(futures.buffer_unordered(parallelism));
            while let Some(result) = done.next().await {
                if let Err(payload) = result {
                    let error = PipelineError::from_panic(stage.name(), payload.as_ref());
                    stage.fail(PipelineError::from_panic(stage.name(), payload.as_ref()));
                    return Err(error);
                }
                probe.record_in();
            }
            Ok(())
        }
    }
}
