//! A type-erased flow, for flows chosen at run time (from configuration, say).

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::flow::Flow;
use crate::stage::StageContext;

trait DynFlow<In, Out>: Send {
    fn apply_boxed(
        self: Box<Self>,
        upstream: BoxStream<'static, In>,
        ctx: &StageContext,
    ) -> BoxStream<'static, Out>;
}

impl<In: Send + 'static, F: Flow<In>> DynFlow<In, F::Out> for F {
    fn apply_boxed(
        self: Box<Self>,
        upstream: BoxStream<'static, In>,
        ctx: &StageContext,
    ) -> BoxStream<'static, F::Out> {
        (*self).apply(upstream, ctx).boxed()
    }
}

/// A boxed [`Flow`] from `In` to `Out`. Built by [`FlowExt::boxed`](crate::FlowExt::boxed).
///
/// Boxing costs one virtual call per element at each boxed boundary; fused static flows inside a
/// boxed flow stay fused.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::flow::BoxFlow;
/// let steps: Vec<BoxFlow<i32, i32>> = vec![
///     flow::identity::<i32>().map(|x| x + 1).boxed(),
///     flow::identity::<i32>().filter(|x| *x > 2).boxed(),
/// ];
/// let mut source = source::iter([1, 2, 3]).boxed();
/// for step in steps {
///     source = source.via(step).boxed();
/// }
/// let out = source.to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![3, 4]);
/// # }
/// ```
#[must_use = "flows do nothing unless run"]
pub struct BoxFlow<In, Out> {
    inner: Box<dyn DynFlow<In, Out>>,
}

impl<In, Out> std::fmt::Debug for BoxFlow<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxFlow")
    }
}

impl<In: Send + 'static, Out: Send + 'static> BoxFlow<In, Out> {
    /// Boxes `flow`.
    pub fn new<F: Flow<In, Out = Out>>(flow: F) -> Self {
        BoxFlow { inner: Box::new(flow) }
    }
}

impl<In: Send + 'static, Out: Send + 'static> Flow<In> for BoxFlow<In, Out> {
    type Out = Out;
    type Stream<S>
        = BoxStream<'static, Out>
    where
        S: futures::Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: futures::Stream<Item = In> + Send + 'static,
    {
        self.inner.apply_boxed(upstream.boxed(), ctx)
    }
}
