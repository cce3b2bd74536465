//! `tumbling_count`: consecutive, non-overlapping windows of a fixed number of elements.

use std::num::NonZeroUsize;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::{Clock, Emit, Window, WindowSpec, WindowState, WindowStream};
use crate::stage::StageContext;

/// The `tumbling_count` flow: windows of `size` consecutive elements. Built by `tumbling_count` on
/// sources and flows, or by [`TumblingCount::new`] for [`KeyBy::window`](super::KeyBy::window).
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct TumblingCount {
    size: NonZeroUsize,
}

impl TumblingCount {
    /// Windows of `size` elements; the last one may be smaller.
    pub fn new(size: NonZeroUsize) -> Self {
        TumblingCount { size }
    }
}

/// The state of a `tumbling_count` operator: the window being filled.
#[derive(Debug)]
pub struct TumblingCountState<T> {
    size: usize,
    start: u64,
    items: Vec<T>,
}

impl<T> Sealed for TumblingCountState<T> {}

impl<T: Send + 'static> WindowSpec<T> for TumblingCount {
    type Bound = u64;
    type State = TumblingCountState<T>;

    fn new_state(&self) -> Self::State {
        TumblingCountState { size: self.size.get(), start: 0, items: Vec::new() }
    }
}

impl<T: Send + 'static> WindowState<T> for TumblingCountState<T> {
    type Bound = u64;
    const USES_CLOCK: bool = false;

    #[inline]
    fn on_element(&mut self, item: T, _clock: &mut Clock, out: &mut impl Emit<T, u64>) {
        if self.items.is_empty() {
            // Allocate per window, not per key: a keyed operator may hold many empty states.
            self.items.reserve_exact(self.size.min(PREALLOCATE));
        }
        self.items.push(item);
        if self.items.len() == self.size {
            let items = std::mem::take(&mut self.items);
            let start = self.start;
            self.start += self.size as u64;
            out.emit(Window { start, end: self.start, items, truncated: false });
        }
    }

    fn flush(&mut self, out: &mut impl Emit<T, u64>) {
        if !self.items.is_empty() {
            let items = std::mem::take(&mut self.items);
            let start = self.start;
            self.start += items.len() as u64;
            out.emit(Window { start, end: self.start, items, truncated: false });
        }
    }

    fn held(&self) -> usize {
        self.items.len()
    }

    fn capacity(&self) -> usize {
        self.size
    }
}

/// The most elements a window allocates room for up front; larger windows grow as they fill.
const PREALLOCATE: usize = 4096;

impl<T: Send + 'static> Flow<T> for TumblingCount {
    type Out = Window<T, u64>;
    type Stream<S>
        = WindowStream<S, TumblingCountState<T>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("tumbling_count"))
    }
}
