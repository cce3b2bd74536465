//! Bounded hand-over buffers and what they do when full.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What a bounded buffer does with a new element when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowStrategy {
    /// Wait for room: the producer slows to the consumer's pace. Nothing is lost.
    #[default]
    Backpressure,
    /// Drop the oldest buffered element to make room (counted as `dropped`).
    DropOldest,
    /// Drop the new element (counted as `dropped`).
    DropNewest,
    /// Fail the pipeline with [`PipelineError::Overflow`](crate::PipelineError::Overflow).
    Fail,
}

/// The outcome of offering an element to a full-or-not buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer<T> {
    /// The element is in the buffer.
    Accepted,
    /// The element is in the buffer and an older one was dropped.
    DroppedOldest,
    /// The buffer was full and the element was dropped.
    DroppedNewest,
    /// The buffer is full; try again when woken (backpressure).
    Full(T),
    /// The buffer is full and the strategy is `Fail`.
    Overflow,
    /// The consumer is gone.
    Closed,
}

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    producer_done: bool,
    consumer_gone: bool,
    producer_waker: Option<Waker>,
    consumer_waker: Option<Waker>,
}

/// A bounded single-producer, single-consumer queue with an overflow strategy.
pub(crate) struct BoundedQueue<T> {
    state: Arc<Mutex<State<T>>>,
    strategy: OverflowStrategy,
}

impl<T> Clone for BoundedQueue<T> {
    fn clone(&self) -> Self {
        BoundedQueue { state: self.state.clone(), strategy: self.strategy }
    }
}

impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize, strategy: OverflowStrategy) -> Self {
        let state = State {
            items: VecDeque::with_capacity(capacity),
            capacity,
            producer_done: false,
            consumer_gone: false,
            producer_waker: None,
            consumer_waker: None,
        };
        BoundedQueue { state: Arc::new(Mutex::new(state)), strategy }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offers `item`; with backpressure a full queue registers the producer's waker.
    pub(crate) fn offer(&self, item: T, cx: &mut Context<'_>) -> Offer<T> {
        let mut state = self.lock();
        if state.consumer_gone {
            return Offer::Closed;
        }
        let outcome = if state.items.len() < state.capacity {
            state.items.push_back(item);
            Offer::Accepted
        } else {
            match self.strategy {
                OverflowStrategy::Backpressure => {
                    state.producer_waker = Some(cx.waker().clone());
                    return Offer::Full(item);
                }
                OverflowStrategy::DropOldest => {
                    state.items.pop_front();
                    state.items.push_back(item);
                    Offer::DroppedOldest
                }
                OverflowStrategy::DropNewest => return Offer::DroppedNewest,
                OverflowStrategy::Fail => return Offer::Overflow,
            }
        };
        if let Some(waker) = state.consumer_waker.take() {
            drop(state);
            waker.wake();
        }
        outcome
    }

    /// Takes the next element; `Ready(None)` once the producer is done and the queue is empty.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.lock();
        match state.items.pop_front() {
            Some(item) => {
                let waker = state.producer_waker.take();
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                Poll::Ready(Some(item))
            }
            None if state.producer_done => Poll::Ready(None),
            None => {
                state.consumer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Elements currently buffered.
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Marks the producer finished (its end, or its failure) and wakes the consumer.
    pub(crate) fn close_producer(&self) {
        let mut state = self.lock();
        state.producer_done = true;
        if let Some(waker) = state.consumer_waker.take() {
            drop(state);
            waker.wake();
        }
    }

    /// Marks the consumer gone and wakes the producer.
    pub(crate) fn close_consumer(&self) {
        let mut state = self.lock();
        state.consumer_gone = true;
        state.items.clear();
        if let Some(waker) = state.producer_waker.take() {
            drop(state);
            waker.wake();
        }
    }
}
