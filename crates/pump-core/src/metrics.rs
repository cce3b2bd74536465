//! Per-stage counters, readable while a pipeline runs.
//!
//! Each stage owns one [`StageMetrics`]. Counters that change per element (`in`, `out`) are written by
//! exactly one task, so they are never updated with a locked read-modify-write. Fused synchronous
//! stages count in plain fields ([`DeferredProbe`]) and publish when they wait or end, so a fused loop
//! keeps its counts in registers; other stages publish per element with a relaxed load and store
//! ([`StageProbe`]). Rare events (errors, drops, retries) use `fetch_add` because they may be recorded
//! from several futures of one stage.
//!
//! Busy time is measured per task (a fused segment, an async boundary's upstream, a blocking worker)
//! and per async user future, not per fused synchronous stage: reading the clock around each element of
//! a `map` would cost more than the `map`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Live counters of one stage.
#[derive(Debug, Default)]
pub struct StageMetrics {
    name: Arc<str>,
    elements_in: AtomicU64,
    elements_out: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    retried: AtomicU64,
    restarts: AtomicU64,
    buffer_depth: AtomicU64,
    buffer_capacity: AtomicU64,
    busy_nanos: AtomicU64,
    one_to_one: std::sync::atomic::AtomicBool,
}

impl StageMetrics {
    pub(crate) fn new(name: Arc<str>) -> Self {
        StageMetrics { name, ..StageMetrics::default() }
    }

    /// The stage's name (`"<index>:<operator>"`, unique within a pipeline).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// Counts one element that failed (whatever the policy then did with it).
    #[inline]
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` elements the stage dropped (resumed past, filtered by an overflow strategy, ...).
    #[inline]
    pub fn record_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one retry attempt.
    #[inline]
    pub fn record_retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one restart of a source or flow section.
    #[inline]
    pub fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds busy time.
    #[inline]
    pub fn record_busy(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Sets the current depth of the stage's buffer (elements held, or futures in flight).
    #[inline]
    pub fn set_buffer_depth(&self, depth: usize) {
        self.buffer_depth.store(depth as u64, Ordering::Relaxed);
    }

    /// Sets the capacity of the stage's buffer.
    #[inline]
    pub fn set_buffer_capacity(&self, capacity: usize) {
        self.buffer_capacity.store(capacity as u64, Ordering::Relaxed);
    }

    /// A consistent-enough copy of the counters (each counter is read atomically, not all together).
    pub fn snapshot(&self) -> StageSnapshot {
        let elements_in = self.elements_in.load(Ordering::Relaxed);
        let one_to_one = self.one_to_one.load(Ordering::Relaxed);
        StageSnapshot {
            name: self.name.to_string(),
            elements_in,
            elements_out: if one_to_one { elements_in } else { self.elements_out.load(Ordering::Relaxed) },
            errors: self.errors.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            buffer_depth: self.buffer_depth.load(Ordering::Relaxed),
            buffer_capacity: self.buffer_capacity.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// The single-writer side of a stage's `in`/`out` counters, held by the stage's adapter.
///
/// Only the stage's own task writes these counters, so an increment is a relaxed load and a relaxed
/// store (plain moves) rather than a locked read-modify-write. Sources count locally and publish
/// every 32 elements and whenever they stop or wait ([`publish_in_out`](Self::publish_in_out)).
#[derive(Debug, Clone)]
pub struct StageProbe {
    shared: Arc<StageMetrics>,
}

#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl StageProbe {
    /// A probe publishing to `shared`.
    pub fn new(shared: Arc<StageMetrics>) -> Self {
        StageProbe { shared }
    }

    /// A probe for a stage that passes on exactly what it takes (the sources): it counts each element
    /// once, with [`publish_in_out`](Self::publish_in_out), and its snapshot reports the count as both
    /// `in` and `out`.
    pub fn one_to_one(shared: Arc<StageMetrics>) -> Self {
        shared.one_to_one.store(true, Ordering::Relaxed);
        StageProbe::new(shared)
    }

    /// The shared counters (for rare events and gauges).
    pub fn metrics(&self) -> &Arc<StageMetrics> {
        &self.shared
    }

    /// Nothing to do: this probe publishes every count at once. It exists so that
    /// `ready_or_publish!` serves stages with either kind of probe.
    #[inline]
    pub fn publish(&mut self) {}

    /// Publishes the absolute count of a one-to-one stage that keeps its own total (the sources do).
    #[inline]
    pub fn publish_in_out(&mut self, total: u64) {
        self.shared.elements_in.store(total, Ordering::Relaxed);
    }

    /// Counts one element taken from upstream.
    #[inline]
    pub fn record_in(&mut self) {
        bump(&self.shared.elements_in, 1);
    }

    /// Counts `n` elements taken from upstream.
    #[inline]
    pub fn record_in_n(&mut self, n: u64) {
        bump(&self.shared.elements_in, n);
    }

    /// Counts one element passed downstream.
    #[inline]
    pub fn record_out(&mut self) {
        bump(&self.shared.elements_out, 1);
    }

    /// Counts `n` elements passed downstream.
    #[inline]
    pub fn record_out_n(&mut self, n: u64) {
        bump(&self.shared.elements_out, n);
    }
}

/// The counters of a fused synchronous stage (`map`, `filter`, ...), kept in plain fields of the
/// stage's adapter and published to the shared atomics only when the stage waits on upstream
/// ([`publish`](Self::publish), which the stage calls whenever upstream is pending) and when it is
/// dropped.
///
/// A fused chain runs many stages in one loop; an atomic store per element and stage would chain each
/// element to the previous one through memory and cost more than the stages' work, while plain fields
/// stay in registers for the whole loop. The price: while a fused stage is busy, its published counts
/// lag by at most what it handled since it last waited — an always-ready source makes the task wait at
/// least every 4096 elements (tokio's cooperative budget) — and an idle or finished stage's counts are
/// exact.
#[derive(Debug)]
pub struct DeferredProbe {
    shared: Arc<StageMetrics>,
    pending_in: u64,
    pending_out: u64,
}

impl DeferredProbe {
    /// A probe publishing to `shared`.
    pub fn new(shared: Arc<StageMetrics>) -> Self {
        DeferredProbe { shared, pending_in: 0, pending_out: 0 }
    }

    /// A probe for a stage that passes on exactly what it takes: one count, reported as `in` and `out`.
    pub fn one_to_one(shared: Arc<StageMetrics>) -> Self {
        shared.one_to_one.store(true, Ordering::Relaxed);
        DeferredProbe::new(shared)
    }

    /// The shared counters (for rare events and gauges).
    pub fn metrics(&self) -> &Arc<StageMetrics> {
        &self.shared
    }

    /// Counts one element taken and passed on (one-to-one stages).
    #[inline]
    pub fn record_in_out(&mut self) {
        self.pending_in += 1;
    }

    /// Counts one element taken from upstream.
    #[inline]
    pub fn record_in(&mut self) {
        self.pending_in += 1;
    }

    /// Counts one element passed downstream.
    #[inline]
    pub fn record_out(&mut self) {
        self.pending_out += 1;
    }

    /// Publishes what was counted since the last publication.
    #[inline]
    pub fn publish(&mut self) {
        if self.pending_in > 0 {
            bump(&self.shared.elements_in, self.pending_in);
            self.pending_in = 0;
        }
        if self.pending_out > 0 {
            bump(&self.shared.elements_out, self.pending_out);
            self.pending_out = 0;
        }
    }
}

impl Drop for DeferredProbe {
    fn drop(&mut self) {
        self.publish();
    }
}

/// Like `ready!` for a stage's upstream poll: on `Pending`, publishes the probe's counts first, so an
/// idle stage's metrics are exact.
macro_rules! ready_or_publish {
    ($probe:expr, $poll:expr) => {
        match $poll {
            ::std::task::Poll::Ready(value) => value,
            ::std::task::Poll::Pending => {
                $probe.publish();
                return ::std::task::Poll::Pending;
            }
        }
    };
}

pub(crate) use ready_or_publish;

/// A copy of one stage's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSnapshot {
    /// The stage's name.
    pub name: String,
    /// Elements taken from upstream.
    pub elements_in: u64,
    /// Elements passed downstream (or consumed, for a sink).
    pub elements_out: u64,
    /// Elements that failed.
    pub errors: u64,
    /// Elements dropped (after an error, or by an overflow strategy), each also counted here.
    pub dropped: u64,
    /// Retry attempts.
    pub retried: u64,
    /// Restarts of a restartable section.
    pub restarts: u64,
    /// Elements held in the stage's buffer, or futures in flight.
    pub buffer_depth: u64,
    /// The buffer's capacity (0 for stages without one).
    pub buffer_capacity: u64,
    /// Time spent working (see the module docs for what is timed).
    pub busy: Duration,
}

/// The stages of one pipeline, in the order they were built (source first).
#[derive(Debug, Clone, Default)]
pub struct MetricsRegistry {
    stages: Arc<Mutex<Vec<Arc<StageMetrics>>>>,
}

impl MetricsRegistry {
    pub(crate) fn register(&self, operator: &str) -> Arc<StageMetrics> {
        let mut stages = self.stages.lock().unwrap_or_else(PoisonError::into_inner);
        let name: Arc<str> = format!("{}:{}", stages.len(), operator).into();
        let metrics = Arc::new(StageMetrics::new(name));
        stages.push(metrics.clone());
        metrics
    }

    /// A snapshot of every stage.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let stages = self.stages.lock().unwrap_or_else(PoisonError::into_inner);
        MetricsSnapshot { stages: stages.iter().map(|stage| stage.snapshot()).collect() }
    }
}

/// Every stage's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// One entry per stage, source first.
    pub stages: Vec<StageSnapshot>,
}

impl MetricsSnapshot {
    /// The first stage whose name ends with `:operator` (e.g. `"map"`).
    pub fn stage(&self, operator: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|stage| stage.name.rsplit(':').next() == Some(operator))
    }

    /// Total errors across stages.
    pub fn total_errors(&self) -> u64 {
        self.stages.iter().map(|stage| stage.errors).sum()
    }

    /// Total dropped elements across stages.
    pub fn total_dropped(&self) -> u64 {
        self.stages.iter().map(|stage| stage.dropped).sum()
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for stage in &self.stages {
            writeln!(
                f,
                "{:<24} in={:<10} out={:<10} err={:<6} dropped={:<6} retried={:<6} buffer={}/{} busy={:?}",
                stage.name,
                stage.elements_in,
                stage.elements_out,
                stage.errors,
                stage.dropped,
                stage.retried,
                stage.buffer_depth,
                stage.buffer_capacity,
                stage.busy
            )?;
        }
        Ok(())
    }
}
