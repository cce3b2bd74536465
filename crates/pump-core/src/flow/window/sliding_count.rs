//! `sliding_count`: windows of a fixed number of elements, a new one every `step` elements.

use std::collections::VecDeque;
use std::num::NonZeroUsize;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::{Clock, Emit, Window, WindowSpec, WindowState, WindowStream};
use crate::stage::StageContext;

/// The `sliding_count` flow: windows of `size` elements starting every `step` elements. Built by
/// `sliding_count` on sources and flows, or by [`SlidingCount::new`] for
/// [`KeyBy::window`](super::KeyBy::window).
///
/// Window `k` holds the elements with sequence numbers `k * step .. k * step + size`. It is emitted when
/// full. When the stream ends, the first window not yet full is emitted too, if it holds an element that
/// no emitted window held (as Akka's and Scala's `sliding` do): every element that belongs to a window is
/// emitted at least once, and no trailing window repeats only what was already seen. With `step > size`
/// the elements between windows belong to none and are counted as `dropped`.
#[derive(Debug, Clone, Copy)]
#[must_use = "flows do nothing unless run"]
pub struct SlidingCount {
    size: NonZeroUsize,
    step: NonZeroUsize,
}

impl SlidingCount {
    /// Windows of `size` elements, one starting every `step` elements.
    pub fn new(size: NonZeroUsize, step: NonZeroUsize) -> Self {
        SlidingCount { size, step }
    }
}

/// The state of a `sliding_count` operator: the last `size` elements.
#[derive(Debug)]
pub struct SlidingCountState<T> {
    size: usize,
    step: usize,
    buffer: VecDeque<T>,
    /// The sequence number of `buffer[0]` (the start of the next window).
    buffer_start: u64,
    /// The sequence number of the next element.
    next_seq: u64,
    /// Elements before this sequence number are in an emitted window.
    emitted_up_to: u64,
}

impl<T> Sealed for SlidingCountState<T> {}

impl<T: Clone + Send + 'static> WindowSpec<T> for SlidingCount {
    type Bound = u64;
    type State = SlidingCountState<T>;

    fn new_state(&self) -> Self::State {
        SlidingCountState {
            size: self.size.get(),
            step: self.step.get(),
            buffer: VecDeque::new(),
            buffer_start: 0,
            next_seq: 0,
            emitted_up_to: 0,
        }
    }
}

impl<T: Clone + Send + 'static> WindowState<T> for SlidingCountState<T> {
    type Bound = u64;
    const USES_CLOCK: bool = false;

    fn on_element(&mut self, item: T, _clock: &mut Clock, out: &mut impl Emit<T, u64>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if seq < self.buffer_start {
            // Between two windows (step > size).
            out.dropped(1);
            return;
        }
        self.buffer.push_back(item);
        if self.buffer.len() < self.size {
            return;
        }
        let start = self.buffer_start;
        let end = start + self.size as u64;
        let items: Vec<T> = if self.step >= self.size {
            // No overlap: the window takes the elements.
            self.buffer.drain(..).collect()
        } else {
            let items = self.buffer.iter().cloned().collect();
            self.buffer.drain(..self.step);
            items
        };
        self.emitted_up_to = end;
        self.buffer_start += self.step as u64;
        out.emit(Window { start, end, items, truncated: false });
    }

    fn flush(&mut self, out: &mut impl Emit<T, u64>) {
        if self.next_seq > self.emitted_up_to && !self.buffer.is_empty() {
            let start = self.buffer_start;
            let items: Vec<T> = self.buffer.drain(..).collect();
            self.emitted_up_to = self.next_seq;
            self.buffer_start = self.next_seq;
            out.emit(Window { start, end: self.next_seq, items, truncated: false });
        }
    }

    fn held(&self) -> usize {
        self.buffer.len()
    }

    fn capacity(&self) -> usize {
        self.size
    }
}

impl<T: Clone + Send + 'static> Flow<T> for SlidingCount {
    type Out = Window<T, u64>;
    type Stream<S>
        = WindowStream<S, SlidingCountState<T>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        WindowStream::new(upstream, self.new_state(), &ctx.register("sliding_count"))
    }
}
