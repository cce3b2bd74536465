//! `for_each`: call a function on every element.

use std::future::Future;

use futures::Stream;

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::sink::drive::drive;
use crate::stage::StageContext;

/// The `for_each` sink. Built by [`for_each`].
#[must_use = "sinks do nothing unless run"]
pub struct ForEach<F> {
    f: F,
}

impl<F> std::fmt::Debug for ForEach<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForEach")
    }
}

/// Calls `f` on every element.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let (sender, mut receiver) = tokio::sync::mpsc::channel(8);
/// source::iter([1, 2]).to(sink::for_each(move |x| { sender.try_send(x).unwrap(); })).run().await.unwrap();
/// assert_eq!(receiver.recv().await, Some(1));
/// # }
/// ```
pub fn for_each<T, F>(f: F) -> ForEach<F>
where
    F: FnMut(T),
{
    ForEach { f }
}

impl<T, F> Sink<T> for ForEach<F>
where
    T: Send + 'static,
    F: FnMut(T) + Send + 'static,
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
        let metrics = ctx.register("for_each").metrics().clone();
        let mut f = self.f;
        drive(
            input,
            metrics,
            (),
            move |(), item| {
                f(item);
            },
            |()| (),
        )
    }
}
