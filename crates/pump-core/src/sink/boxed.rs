//! A type-erased sink, for sinks chosen at run time.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};

use crate::error::PipelineError;
use crate::sink::Sink;
use crate::stage::StageContext;

trait DynSink<In, R>: Send {
    fn consume_boxed(
        self: Box<Self>,
        input: BoxStream<'static, In>,
        ctx: &StageContext,
    ) -> BoxFuture<'static, Result<R, PipelineError>>;
}

impl<In: Send + 'static, K: Sink<In>> DynSink<In, K::Output> for K {
    fn consume_boxed(
        self: Box<Self>,
        input: BoxStream<'static, In>,
        ctx: &StageContext,
    ) -> BoxFuture<'static, Result<K::Output, PipelineError>> {
        (*self).consume(input, ctx).boxed()
    }
}

/// A boxed [`Sink`] of `In` returning `R`. Built by [`SinkExt::boxed`](crate::sink::SinkExt::boxed).
#[must_use = "sinks do nothing unless run"]
pub struct BoxSink<In, R> {
    inner: Box<dyn DynSink<In, R>>,
}

impl<In, R> std::fmt::Debug for BoxSink<In, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxSink")
    }
}

impl<In: Send + 'static, R: Send + 'static> BoxSink<In, R> {
    /// Boxes `sink`.
    pub fn new<K: Sink<In, Output = R>>(sink: K) -> Self {
        BoxSink { inner: Box::new(sink) }
    }
}

impl<In: Send + 'static, R: Send + 'static> Sink<In> for BoxSink<In, R> {
    type Output = R;

    fn consume<S>(
        self,
        input: S,
        ctx: &StageContext,
    ) -> impl std::future::Future<Output = Result<R, PipelineError>> + Send + 'static
    where
        S: Stream<Item = In> + Send + 'static,
    {
        self.inner.consume_boxed(input.boxed(), ctx)
    }
}
