//! The watermark and the open windows of the fixed-size event-time operators (tumbling and sliding).

use std::collections::BTreeMap;

use crate::flow::window::engine::OpenWindow;
use crate::flow::window::{Emit, LateElement, Lateness, WindowConfig};

/// Event time as an operator tracks it: the largest timestamp seen and how far windows are closed.
#[derive(Debug)]
pub(crate) struct Watermark {
    allowed_lateness: u64,
    max_timestamp: Option<u64>,
    /// Windows ending at or before this are closed: the watermark, or further when a window was closed
    /// early to respect `max_open_windows`.
    closed_up_to: u64,
}

impl Watermark {
    pub(crate) fn new(allowed_lateness: u64) -> Self {
        Watermark { allowed_lateness, max_timestamp: None, closed_up_to: 0 }
    }

    /// Takes `timestamp` into account; returns the new closing point if it moved.
    pub(crate) fn observe(&mut self, timestamp: u64) -> Option<u64> {
        if self.max_timestamp.is_some_and(|max| max >= timestamp) {
            return None;
        }
        self.max_timestamp = Some(timestamp);
        self.close_up_to(timestamp.saturating_sub(self.allowed_lateness))
    }

    /// Moves the closing point to `end` (never back); returns it if it moved.
    pub(crate) fn close_up_to(&mut self, end: u64) -> Option<u64> {
        if end > self.closed_up_to {
            self.closed_up_to = end;
            Some(end)
        } else {
            None
        }
    }

    /// Windows ending at or before this are closed.
    pub(crate) fn closed_up_to(&self) -> u64 {
        self.closed_up_to
    }

    /// Counts a late element and hands it to the side output.
    pub(crate) fn late<T, B>(
        &self,
        element: T,
        timestamp: u64,
        lateness: &Lateness<T>,
        out: &mut impl Emit<T, B>,
    ) {
        out.dropped(1);
        lateness.send(LateElement { element, timestamp, watermark: self.closed_up_to });
    }
}

/// Windows `[k * slide, k * slide + size)` of event time, open until the watermark passes their end.
#[derive(Debug)]
pub(crate) struct EventWindows<T> {
    pub(crate) size: u64,
    pub(crate) slide: u64,
    pub(crate) config: WindowConfig,
    pub(crate) watermark: Watermark,
    open: BTreeMap<u64, OpenWindow<T, u64>>,
}

impl<T> EventWindows<T> {
    pub(crate) fn new(size: u64, slide: u64, allowed_lateness: u64, config: WindowConfig) -> Self {
        EventWindows {
            size,
            slide,
            config,
            watermark: Watermark::new(allowed_lateness),
            open: BTreeMap::new(),
        }
    }

    /// Takes `timestamp` into account and emits the windows the watermark passed.
    pub(crate) fn advance(&mut self, timestamp: u64, out: &mut impl Emit<T, u64>) {
        if let Some(closed_up_to) = self.watermark.observe(timestamp) {
            self.close_up_to(closed_up_to, out);
        }
    }

    fn close_up_to(&mut self, closed_up_to: u64, out: &mut impl Emit<T, u64>) {
        // Fixed-size windows end in the order they start.
        while let Some(entry) = self.open.first_entry() {
            if entry.get().end > closed_up_to {
                break;
            }
            entry.remove().close(out);
        }
    }

    /// The grid indices of the windows that contain `timestamp`, whether open or closed (empty when it
    /// falls between windows).
    pub(crate) fn indices(&self, timestamp: u64) -> std::ops::RangeInclusive<u64> {
        let last = timestamp / self.slide;
        let first = if timestamp >= self.size { (timestamp - self.size) / self.slide + 1 } else { 0 };
        first..=last
    }

    /// The first grid index whose window is not closed.
    pub(crate) fn first_open_index(&self) -> u64 {
        let closed_up_to = self.watermark.closed_up_to();
        if closed_up_to < self.size { 0 } else { (closed_up_to - self.size) / self.slide + 1 }
    }

    /// The window of grid index `index`, opened if needed; `None` if it had to be closed at once to
    /// respect `max_open_windows` (it was older than every open window).
    pub(crate) fn window(
        &mut self,
        index: u64,
        out: &mut impl Emit<T, u64>,
    ) -> Option<&mut OpenWindow<T, u64>> {
        let start = index.saturating_mul(self.slide);
        let end = start.saturating_add(self.size);
        if !self.open.contains_key(&start) && self.open.len() >= self.config.max_open_windows.get() {
            let oldest_start = self.open.first_key_value().map_or(u64::MAX, |(start, _)| *start);
            if start < oldest_start {
                self.watermark.close_up_to(end);
                return None;
            }
            if let Some((_, oldest)) = self.open.pop_first() {
                let oldest_end = oldest.end;
                oldest.close_early(out);
                if let Some(closed_up_to) = self.watermark.close_up_to(oldest_end) {
                    self.close_up_to(closed_up_to, out);
                }
            }
        }
        Some(self.open.entry(start).or_insert_with(|| OpenWindow::new(start, end)))
    }

    /// Emits every open window, oldest first.
    pub(crate) fn flush(&mut self, out: &mut impl Emit<T, u64>) {
        while let Some((_, window)) = self.open.pop_first() {
            window.close(out);
        }
    }

    pub(crate) fn held(&self) -> usize {
        self.open.values().map(|window| window.items.len()).sum()
    }
}
