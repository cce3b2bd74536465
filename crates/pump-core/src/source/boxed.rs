//! A type-erased source, for sources chosen at run time.

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::source::Source;
use crate::stage::StageContext;

trait DynSource<T>: Send {
    fn open_boxed(self: Box<Self>, ctx: &StageContext) -> BoxStream<'static, T>;
}

impl<S: Source> DynSource<S::Item> for S {
    fn open_boxed(self: Box<Self>, ctx: &StageContext) -> BoxStream<'static, S::Item> {
        (*self).open(ctx).boxed()
    }
}

/// A boxed [`Source`] of `T`. Built by [`SourceExt::boxed`](crate::SourceExt::boxed).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// use pump_core::source::BoxSource;
/// let from_config = true;
/// let source: BoxSource<u32> = if from_config { source::iter([1, 2]).boxed() } else { source::iter([3]).boxed() };
/// let out = source.to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec![1, 2]);
/// # }
/// ```
#[must_use = "sources do nothing unless run"]
pub struct BoxSource<T> {
    inner: Box<dyn DynSource<T>>,
}

impl<T> std::fmt::Debug for BoxSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxSource")
    }
}

impl<T: Send + 'static> BoxSource<T> {
    /// Boxes `source`.
    pub fn new<S: Source<Item = T>>(source: S) -> Self {
        BoxSource { inner: Box::new(source) }
    }
}

impl<T: Send + 'static> Source for BoxSource<T> {
    type Item = T;
    type Stream = BoxStream<'static, T>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        self.inner.open_boxed(ctx)
    }
}
