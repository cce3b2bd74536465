//! Bounded memory: however long the input, the elements held inside a pipeline never exceed what its
//! configured buffers can hold.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use pump_core::prelude::*;

const ELEMENTS: u64 = 10_000_000;
const MAP_ASYNC_PARALLELISM: usize = 8;
const BATCH_SIZE: usize = 1000;
const BOUNDARY_CAPACITY: usize = 64;

/// Ten million elements through every kind of buffer, with a consumer slower than the producer, so
/// that every buffer fills. The source counts what it produces, the sink (and the filter, for the
/// elements it discards) counts what it has finished with; at each new element the source records
/// how many are alive inside the pipeline.
///
/// Where an element can be, between being produced and being consumed, and how many can be there
/// when the source produces one more (read from the operators' code):
///
/// - `map` and `filter` are fused and hold nothing; a filtered-out element is consumed on the spot.
/// - `map_async(8)` holds at most 8 elements, running or finished but not yet emitted, and it pulls
///   only when it holds fewer than 8: the new element is one of those 8.
/// - `batch(1000, _)` holds at most 999 elements: it emits as soon as it has 1000.
/// - `async_boundary(64)` holds 64 batches in its queue. Its producer task holds one more batch
///   while it waits for room, but then it is not pulling from upstream, so no element is produced
///   meanwhile.
/// - Downstream of the boundary, the slow `map_async(1)` and the fold between them hold one batch:
///   the fold counts a batch in one call, and `map_async(1)` takes the next only after that.
///
/// The source's yield every 256 elements holds nothing. Hence the bound below.
#[tokio::test(start_paused = true)]
async fn ten_million_elements_stay_within_the_configured_buffers() {
    let bound = MAP_ASYNC_PARALLELISM as u64
        + (BATCH_SIZE as u64 - 1)
        + (BOUNDARY_CAPACITY * BATCH_SIZE) as u64
        + BATCH_SIZE as u64;

    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let most_alive = Arc::new(AtomicU64::new(0));
    let instrumented = {
        let (produced, consumed, most_alive) =
            (Arc::clone(&produced), Arc::clone(&consumed), Arc::clone(&most_alive));
        futures::stream::iter(0..ELEMENTS).map(move |x| {
            let produced = produced.fetch_add(1, Ordering::SeqCst) + 1;
            let alive = produced.saturating_sub(consumed.load(Ordering::SeqCst));
            most_alive.fetch_max(alive, Ordering::SeqCst);
            x
        })
    };
    let filtered_out = Arc::clone(&consumed);
    let counted = Arc::clone(&consumed);

    let outcome = source::from_stream(instrumented)
        .map(|x| x * 3)
        .filter(move |x| {
            let keep = x % 5 != 0;
            if !keep {
                filtered_out.fetch_add(1, Ordering::SeqCst);
            }
            keep
        })
        .map_async(NonZeroUsize::new(MAP_ASYNC_PARALLELISM).unwrap(), |x| async move { x + 1 })
        .batch(NonZeroUsize::new(BATCH_SIZE).unwrap(), Duration::from_millis(100))
        .async_boundary(NonZeroUsize::new(BOUNDARY_CAPACITY).unwrap())
        // The slow consumer: a (paused-time) millisecond per batch, during which the producer runs
        // until the boundary is full.
        .map_async(NonZeroUsize::MIN, |batch: Vec<u64>| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            batch
        })
        .to(sink::fold(0u64, move |sum, batch: Vec<u64>| {
            let mut sum = sum;
            for x in batch {
                sum = sum.wrapping_add(x);
                counted.fetch_add(1, Ordering::SeqCst);
            }
            sum
        }))
        .run()
        .await
        .unwrap();

    let expected_sum =
        (0..ELEMENTS).map(|x| x * 3).filter(|x| x % 5 != 0).map(|x| x + 1).fold(0u64, u64::wrapping_add);
    assert_eq!(outcome.value, expected_sum);
    assert_eq!(produced.load(Ordering::SeqCst), ELEMENTS);
    assert_eq!(consumed.load(Ordering::SeqCst), ELEMENTS);

    let most_alive = most_alive.load(Ordering::SeqCst);
    assert!(most_alive <= bound, "{most_alive} elements were alive at once, more than the buffers' {bound}");
    // The slow consumer kept the boundary full, so the bound was really put to the test.
    assert!(
        most_alive >= (BOUNDARY_CAPACITY * BATCH_SIZE) as u64,
        "only {most_alive} elements were ever alive: the buffers never filled"
    );
}
