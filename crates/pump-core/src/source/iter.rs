//! A source over an iterator.

use crate::source::{Source, SourceStage};
use crate::stage::StageContext;

/// A source yielding the items of an iterator. Built by [`iter`].
#[derive(Debug, Clone)]
#[must_use = "sources do nothing unless run"]
pub struct Iter<I> {
    iter: I,
}

/// A source over any `IntoIterator`; it yields an item only when downstream asks for one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pump_core::prelude::*;
/// let out = source::iter(vec!["a", "b"]).to(sink::collect()).run().await.unwrap();
/// assert_eq!(out.value, vec!["a", "b"]);
/// # }
/// ```
pub fn iter<I>(items: I) -> Iter<I::IntoIter>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    Iter { iter: items.into_iter() }
}

impl<I> Source for Iter<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Item = I::Item;
    type Stream = SourceStage<futures::stream::Iter<I>>;

    fn open(self, ctx: &StageContext) -> Self::Stream {
        let stage = ctx.register("iter");
        SourceStage::new(futures::stream::iter(self.iter), &stage, ctx)
    }
}
