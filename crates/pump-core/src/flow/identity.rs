//! The empty flow, the start of a named, reusable flow.

use std::marker::PhantomData;

use futures::Stream;

use crate::flow::Flow;
use crate::stage::StageContext;

/// A flow that passes its elements through. Built by [`identity`].
#[must_use = "flows do nothing unless run"]
pub struct Identity<T> {
    marker: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for Identity<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity")
    }
}

impl<T> Clone for Identity<T> {
    fn clone(&self) -> Self {
        identity()
    }
}

/// The flow of `T` that changes nothing: start a reusable flow from it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let evens = flow::identity::<u32>().filter(|x| x % 2 == 0);
/// let out = source::iter(1..=4).via(evens).to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![2, 4]);
/// # }
/// ```
pub fn identity<T>() -> Identity<T> {
    Identity { marker: PhantomData }
}

impl<T: Send + 'static> Flow<T> for Identity<T> {
    type Out = T;
    type Stream<S>
        = S
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, _ctx: &StageContext) -> S
    where
        S: Stream<Item = T> + Send + 'static,
    {
        upstream
    }
}
