//! A fan-out consumer's lane: the bounded queue between the distributor and one consumer, and the
//! stream the consumer reads it through.
//!
//! The distributor pushes whole chunks under one lock; the consumer's stream swaps the whole queue
//! out under one lock and then yields from its own copy without locking. So the lock is taken about
//! twice per chunk, not per element, and no allocation happens per chunk (the two `VecDeque`s trade
//! places). The elements the consumer has taken out but not yet yielded still count against the
//! capacity (`in_hand`), so "produced but not yet yielded to this consumer" never exceeds it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;

struct LaneState<T> {
    queue: VecDeque<T>,
    /// Elements the consumer's stream took out of `queue` and has not all yielded yet.
    in_hand: usize,
    /// No more elements will come (the input ended, or the lane was detached).
    producer_done: bool,
    /// The consumer's stream is gone, or the distributor gave up on this consumer.
    consumer_gone: bool,
    /// The consumer, waiting for elements.
    consumer_waker: Option<Waker>,
    /// The distributor, waiting for room.
    producer_waker: Option<Waker>,
}

/// The shared state of one lane.
pub(crate) struct Lane<T> {
    state: Mutex<LaneState<T>>,
    capacity: usize,
}

/// Room in a lane, as seen by the distributor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// This many elements fit (possibly zero; the distributor's waker is then registered).
    Free(usize),
    /// The consumer's stream is gone: nothing pushed would ever be read.
    Gone,
}

/// What was left in a lane when its consumer was detached.
pub(crate) struct Leftovers<T> {
    /// Elements still queued, in order: they never reached the consumer.
    pub(crate) queued: VecDeque<T>,
    /// Elements the consumer's stream had taken out but, as far as the lane knows, not yielded.
    pub(crate) in_hand: usize,
}

impl<T> Lane<T> {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        let state = LaneState {
            queue: VecDeque::with_capacity(capacity.min(4096)),
            in_hand: 0,
            producer_done: false,
            consumer_gone: false,
            consumer_waker: None,
            producer_waker: None,
        };
        Arc::new(Lane { state: Mutex::new(state), capacity })
    }

    fn lock(&self) -> MutexGuard<'_, LaneState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many elements fit now. When none do, `producer` is registered to be woken when room
    /// appears or the consumer goes away.
    pub(crate) fn room(&self, producer: &Waker) -> Room {
        let mut state = self.lock();
        if state.consumer_gone {
            return Room::Gone;
        }
        let room = self.capacity.saturating_sub(state.queue.len() + state.in_hand);
        if room == 0 {
            match &state.producer_waker {
                Some(waker) if waker.will_wake(producer) => {}
                _ => state.producer_waker = Some(producer.clone()),
            }
        }
        Room::Free(room)
    }

    /// Registers `producer` to be woken when room appears, whatever the room is now.
    pub(crate) fn watch(&self, producer: &Waker) {
        let mut state = self.lock();
        match &state.producer_waker {
            Some(waker) if waker.will_wake(producer) => {}
            _ => state.producer_waker = Some(producer.clone()),
        }
    }

    /// Appends `items` (the caller checked the room). Returns the consumer's waker if it was
    /// waiting; the caller decides whether waking it is needed.
    pub(crate) fn push(&self, items: impl Iterator<Item = T>) -> Option<Waker> {
        let mut state = self.lock();
        state.queue.extend(items);
        state.consumer_waker.take()
    }

    /// Marks the end of the input; returns the consumer's waker if it was waiting.
    pub(crate) fn close(&self) -> Option<Waker> {
        let mut state = self.lock();
        state.producer_done = true;
        state.consumer_waker.take()
    }

    /// Gives up on the consumer: takes back what it has not received and ends its stream.
    pub(crate) fn detach(&self) -> Leftovers<T> {
        let mut state = self.lock();
        state.consumer_gone = true;
        state.producer_done = true;
        let leftovers = Leftovers { queued: std::mem::take(&mut state.queue), in_hand: state.in_hand };
        state.in_hand = 0;
        let consumer = state.consumer_waker.take();
        drop(state);
        if let Some(waker) = consumer {
            waker.wake();
        }
        leftovers
    }
}

/// The stream a fan-out consumer reads its lane through.
#[must_use = "streams do nothing unless polled"]
pub(crate) struct LaneStream<T> {
    lane: Arc<Lane<T>>,
    local: VecDeque<T>,
    done: bool,
}

impl<T> LaneStream<T> {
    pub(crate) fn new(lane: Arc<Lane<T>>) -> Self {
        LaneStream { lane, local: VecDeque::new(), done: false }
    }
}

impl<T> std::fmt::Debug for LaneStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneStream").field("local", &self.local.len()).field("done", &self.done).finish()
    }
}

impl<T> Stream for LaneStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if let Some(item) = this.local.pop_front() {
            return Poll::Ready(Some(item));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut state = this.lane.lock();
        // Everything taken last time has been yielded: that room is free again.
        let freed = std::mem::take(&mut state.in_hand) > 0;
        let outcome = if state.consumer_gone {
            this.done = true;
            Poll::Ready(None)
        } else if !state.queue.is_empty() {
            std::mem::swap(&mut state.queue, &mut this.local);
            state.in_hand = this.local.len();
            Poll::Ready(this.local.pop_front())
        } else if state.producer_done {
            this.done = true;
            Poll::Ready(None)
        } else {
            match &state.consumer_waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.consumer_waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        };
        let producer = if freed { state.producer_waker.take() } else { None };
        drop(state);
        if let Some(waker) = producer {
            waker.wake();
        }
        outcome
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done { (self.local.len(), Some(self.local.len())) } else { (self.local.len(), None) }
    }
}

impl<T> Drop for LaneStream<T> {
    fn drop(&mut self) {
        let mut state = self.lane.lock();
        state.consumer_gone = true;
        // Put back what was taken and not yielded, in front, so the distributor can account for it
        // (or hand it to another consumer).
        if !self.local.is_empty() {
            let mut rest = std::mem::take(&mut state.queue);
            let mut queue = std::mem::take(&mut self.local);
            queue.append(&mut rest);
            state.queue = queue;
        }
        state.in_hand = 0;
        let producer = state.producer_waker.take();
        drop(state);
        if let Some(waker) = producer {
            waker.wake();
        }
    }
}

// The stream owns its buffer and never pins an element, so it is `Unpin` whatever `T` is.
impl<T> Unpin for LaneStream<T> {}
