//! Elements that carry a context (a source offset, say) through the stages.

/// An element with a context travelling beside it.
///
/// Map the value and keep the context, and a sink can acknowledge "done up to this context" after
/// writing — the basis of checkpoints. Contexts are plain data: order-keeping stages keep them in
/// order, so the last context of a written chunk covers everything before it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use std::num::NonZeroUsize;
/// let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let log = acked.clone();
/// source::iter(["a", "b", "c"].into_iter().enumerate().map(|(offset, v)| Ctx::new(offset, v)))
///     .map(|element| element.map(str::to_uppercase))
///     .map_async(NonZeroUsize::new(2).unwrap(), |element| async move { element })
///     .batch(NonZeroUsize::new(2).unwrap(), std::time::Duration::from_secs(1))
///     .to(sink::for_each(move |chunk: Vec<Ctx<usize, String>>| {
///         // write the values, then acknowledge the last offset of the chunk
///         let last = chunk.last().map(|element| element.context);
///         log.lock().unwrap().push(last);
///     }))
///     .run()
///     .await
///     .unwrap();
/// assert_eq!(*acked.lock().unwrap(), vec![Some(1), Some(2)]);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ctx<C, T> {
    /// The context (offset, id, acknowledgement token).
    pub context: C,
    /// The element.
    pub value: T,
}

impl<C, T> Ctx<C, T> {
    /// Pairs `value` with `context`.
    pub fn new(context: C, value: T) -> Self {
        Ctx { context, value }
    }

    /// Maps the value, keeping the context.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Ctx<C, U> {
        Ctx { context: self.context, value: f(self.value) }
    }

    /// Maps the value with a fallible function, keeping the context on both sides.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Ctx<C, U>, Ctx<C, E>> {
        match f(self.value) {
            Ok(value) => Ok(Ctx { context: self.context, value }),
            Err(error) => Err(Ctx { context: self.context, value: error }),
        }
    }

    /// Borrows the value, keeping a copy of the context.
    pub fn as_ref(&self) -> Ctx<C, &T>
    where
        C: Clone,
    {
        Ctx { context: self.context.clone(), value: &self.value }
    }

    /// Splits into `(context, value)`.
    pub fn into_parts(self) -> (C, T) {
        (self.context, self.value)
    }
}
