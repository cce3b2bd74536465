//! Sequential composition: a source or flow followed by a flow.

use futures::Stream;

use crate::flow::Flow;
use crate::stage::StageContext;

/// `first` followed by `second`. Built by `via` on sources and flows; it is a
/// [`Source`](crate::Source) when `first` is one and a [`Flow`] when `first` is one.
#[derive(Debug, Clone)]
#[must_use = "flows do nothing unless run"]
pub struct Via<A, B> {
    first: A,
    second: B,
}

impl<A, B> Via<A, B> {
    pub(crate) fn new(first: A, second: B) -> Self {
        Via { first, second }
    }

    pub(crate) fn into_parts(self) -> (A, B) {
        (self.first, self.second)
    }
}

impl<In, A, B> Flow<In> for Via<A, B>
where
    A: Flow<In>,
    B: Flow<A::Out>,
{
    type Out = B::Out;
    type Stream<S>
        = B::Stream<A::Stream<S>>
    where
        S: Stream<Item = In> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = In> + Send + 'static,
    {
        let middle = self.first.apply(upstream, ctx);
        self.second.apply(middle, ctx)
    }
}
