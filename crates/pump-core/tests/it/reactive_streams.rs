//! The Reactive Streams rules that apply to a pull-based pipeline, one test per rule.
//!
//! Demand is a poll: a stage asks upstream for an element only when it can hold it. The rules are
//! those of the Reactive Streams 1.0.4 specification, numbered as there and paraphrased in each test's
//! doc; a rule about `request(n)` reads here as "no more is pulled than the stages' declared buffers
//! can hold", and cancellation is `abort`/`drain`.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use pump_core::Graph;
use pump_core::prelude::*;

const HANG_LIMIT: Duration = Duration::from_secs(10);

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// Counts how many elements downstream pulled out of `0..`.
fn counted_naturals(pulled: &Arc<AtomicU64>) -> impl Iterator<Item = u64> + Send + 'static {
    let pulled = Arc::clone(pulled);
    (0u64..).inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

/// How many elements the `count` sink of a spawned run has taken so far (0 before the run starts).
fn counted_so_far<R>(handle: &pump_core::RunHandle<R>) -> u64 {
    handle.metrics().stage("count").map_or(0, |stage| stage.elements_in)
}

/// Drains `stream`, then checks that it keeps answering `None`.
async fn assert_completes_for_good<S: Stream>(stream: S) -> Vec<S::Item> {
    let mut stream = std::pin::pin!(stream);
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    for _ in 0..3 {
        assert!(stream.next().await.is_none(), "an element after completion");
    }
    items
}

/// Rule 1.1: a publisher signals no more elements than were requested. `take(5)` behind a fused
/// `map`/`filter` pulls exactly the elements needed for five outputs.
#[tokio::test]
async fn rule_1_1_take_pulls_no_more_than_it_needs() {
    let pulled = Arc::new(AtomicU64::new(0));
    let outcome = source::iter(counted_naturals(&pulled))
        .map(|x| x * 10)
        .filter(|x| x % 20 == 0)
        .take(5)
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.value, vec![0, 20, 40, 60, 80]);
    // 0, 2, 4, 6, 8 pass the filter: nine elements pulled, not one more.
    assert_eq!(pulled.load(Ordering::SeqCst), 9);
}

/// Rule 1.1, with an async stage: `map_async(4)` never holds more than four elements that were pulled
/// and not yet handed downstream, and `take` after it pulls at most three beyond what it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_1_1_map_async_holds_at_most_parallelism_elements() {
    let pulled = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let most_outstanding = Arc::new(AtomicU64::new(0));
    let (pulled_probe, delivered_probe, most) =
        (Arc::clone(&pulled), Arc::clone(&delivered), Arc::clone(&most_outstanding));
    let source = (0u64..5_000).inspect(move |_| {
        let pulled = pulled_probe.fetch_add(1, Ordering::SeqCst) + 1;
        let outstanding = pulled - delivered_probe.load(Ordering::SeqCst);
        most.fetch_max(outstanding, Ordering::SeqCst);
    });
    let delivered_counter = Arc::clone(&delivered);
    source::iter(source)
        .map_async(nz(4), |x| async move {
            for _ in 0..(x * 7 % 5) {
                tokio::task::yield_now().await;
            }
            x
        })
        .to(sink::for_each(move |_| {
            delivered_counter.fetch_add(1, Ordering::SeqCst);
        }))
        .run()
        .await
        .unwrap();
    assert_eq!(delivered.load(Ordering::SeqCst), 5_000);
    assert_eq!(
        most_outstanding.load(Ordering::SeqCst),
        4,
        "outstanding demand must reach, and never pass, the parallelism"
    );

    let pulled = Arc::new(AtomicU64::new(0));
    let outcome = source::iter(counted_naturals(&pulled))
        .map_async(nz(4), |x| async move { x })
        .take(5)
        .to(sink::collect())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.value, vec![0, 1, 2, 3, 4]);
    let pulled = pulled.load(Ordering::SeqCst);
    assert!((5..=8).contains(&pulled), "pulled {pulled} elements for take(5) behind map_async(4)");
}

/// Rule 1.7: once a terminal state is signalled, no further signals occur. Every stream a source
/// opens into answers `None` again after its end, whatever the operators in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_1_7_no_element_after_completion() {
    let expected: Vec<u32> = (1..=10).collect();
    assert_eq!(assert_completes_for_good(source::iter(1..=10u32).into_stream()).await, expected);
    assert_eq!(
        assert_completes_for_good(
            source::iter(1..=20u32).map(|x| x * 2).filter(|x| x % 4 == 0).take(3).into_stream()
        )
        .await,
        vec![4, 8, 12]
    );
    assert_eq!(
        assert_completes_for_good(
            source::iter(1..=10u32).map_async(nz(3), |x| async move { x }).into_stream()
        )
        .await,
        expected
    );
    assert_eq!(
        assert_completes_for_good(
            source::iter(1..=10u32)
                .map_async_unordered(nz(3), |x| async move { x })
                .map(|_| ())
                .into_stream()
        )
        .await
        .len(),
        10
    );
    assert_eq!(
        assert_completes_for_good(
            source::iter(1..=10u32).batch(nz(4), Duration::from_secs(1)).unbatch().into_stream()
        )
        .await,
        expected
    );
    assert_eq!(
        assert_completes_for_good(source::iter(1..=10u32).async_boundary(nz(2)).into_stream()).await,
        expected
    );
    assert_eq!(
        assert_completes_for_good(source::iter(1..=10u32).map_blocking(nz(2), |x| x).into_stream()).await,
        expected
    );
    // Operators that end before their upstream does stay ended.
    assert_eq!(
        assert_completes_for_good(source::iter(1..=10u32).take_while(|x| *x < 4).into_stream()).await,
        vec![1, 2, 3]
    );
    assert_eq!(
        assert_completes_for_good(
            source::iter(1..=10u32).scan((), |(), x| (x < 4).then_some(x)).into_stream()
        )
        .await,
        vec![1, 2, 3]
    );
    assert_eq!(
        assert_completes_for_good(
            source::iter(1..=10u32)
                .try_map_async(
                    nz(2),
                    |x| async move { if x % 2 == 0 { Err("even") } else { Ok(x) } },
                    ErrorPolicy::resume(DeadLetters::discard()),
                )
                .into_stream()
        )
        .await,
        vec![1, 3, 5, 7, 9]
    );
}

/// A stream that breaks the `Stream` contract: it yields again after answering `None`.
struct Relapsing {
    polls: u32,
}

impl Stream for Relapsing {
    type Item = u32;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u32>> {
        self.polls += 1;
        Poll::Ready(if self.polls % 2 == 1 { Some(self.polls) } else { None })
    }
}

/// Rule 1.7, for a foreign stream: `from_stream` fuses it, so a stream that would relapse after its
/// end cannot push elements after completion into the pipeline.
#[tokio::test]
async fn rule_1_7_from_stream_never_relapses_after_completion() {
    let items =
        assert_completes_for_good(source::from_stream(Relapsing { polls: 0 }).map(|x| x * 10).into_stream())
            .await;
    assert_eq!(items, vec![10]);
}

#[derive(Debug, PartialEq, Eq)]
enum SinkEvent {
    Element(u32),
    Close,
}

/// A `futures::Sink` that records what it is told.
struct Recorder {
    events: Arc<Mutex<Vec<SinkEvent>>>,
}

impl futures::Sink<u32> for Recorder {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: u32) -> Result<(), Self::Error> {
        self.events.lock().unwrap().push(SinkEvent::Element(item));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.events.lock().unwrap().push(SinkEvent::Close);
        Poll::Ready(Ok(()))
    }
}

/// Rule 1.7, at the sink: completion reaches the sink exactly once, after the last element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_1_7_the_sink_completes_exactly_once_after_the_last_element() {
    let events = Arc::new(Mutex::new(Vec::new()));
    source::iter(1..=50u32)
        .map_async(nz(4), |x| async move {
            tokio::task::yield_now().await;
            x
        })
        .async_boundary(nz(3))
        .to(sink::from_sink(Recorder { events: Arc::clone(&events) }))
        .run()
        .await
        .unwrap();
    let mut expected: Vec<SinkEvent> = (1..=50).map(SinkEvent::Element).collect();
    expected.push(SinkEvent::Close);
    assert_eq!(*events.lock().unwrap(), expected);
}

/// Rules 1.4 and 1.7: a failure is signalled as an error (never as a normal completion), and nothing
/// follows it: no element after the failing one reaches the sink, and the source is not pulled again.
#[tokio::test]
async fn rule_1_7_nothing_after_failure() {
    let pulled = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&delivered);
    let result = source::iter(counted_naturals(&pulled))
        .try_map(|x| if *x == 5 { Err("five is right out") } else { Ok(*x) }, ErrorPolicy::stop())
        .to(sink::for_each(move |x| log.lock().unwrap().push(x)))
        .run()
        .await;
    let Err(PipelineError::Stage { stage, source }) = result else {
        panic!("expected a stage error, got {result:?}");
    };
    assert_eq!(&*stage, "1:try_map");
    assert_eq!(source.to_string(), "five is right out");
    assert_eq!(*delivered.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(pulled.load(Ordering::SeqCst), 6);

    // The same through `into_stream`: the failure ends the stream, for good.
    let items = assert_completes_for_good(
        source::iter(0u64..100)
            .try_map(|x| if *x == 3 { Err("three") } else { Ok(*x) }, ErrorPolicy::stop())
            .into_stream(),
    )
    .await;
    assert_eq!(items, vec![0, 1, 2]);
}

/// Rule 3.5 (and 3.7): cancelling is idempotent. Aborting twice, draining twice, or draining and then
/// aborting is harmless, and an aborted run ends with `Aborted`, never with a truncated result.
#[tokio::test]
async fn rule_3_5_abort_and_drain_are_idempotent() {
    let handle = source::iter(0u64..).map_async(nz(2), |x| async move { x }).to(sink::count()).spawn();
    tokio::task::yield_now().await;
    handle.abort();
    handle.abort();
    let result = tokio::time::timeout(HANG_LIMIT, handle).await.expect("abort did not end the run");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");

    let handle = source::iter(0u64..).to(sink::count()).spawn();
    tokio::task::yield_now().await;
    handle.drain();
    handle.drain();
    let counted_before_end = counted_so_far(&handle);
    let outcome = tokio::time::timeout(HANG_LIMIT, handle).await.expect("drain did not end the run").unwrap();
    assert!(outcome.value >= counted_before_end);
    assert_eq!(outcome.value, outcome.stats.metrics.stage("iter").unwrap().elements_out);

    let handle = source::iter(0u64..).to(sink::count()).spawn();
    let controls = handle.controls().clone();
    tokio::task::yield_now().await;
    controls.drain();
    handle.abort();
    controls.abort();
    let result = tokio::time::timeout(HANG_LIMIT, handle).await.expect("abort did not end the run");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
    // After the end, further calls are no-ops.
    controls.abort();
    controls.drain();
    assert!(controls.cancellation_token().is_cancelled());
}

/// Sets a flag when dropped: shows that a source was released.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Rule 3.13: cancelling makes the publisher drop its references. After abort, the source (and every
/// stage, on both sides of an async boundary) has been dropped by the time the run's result is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_3_13_abort_releases_the_source() {
    let released = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&released));
    let stream = futures::stream::iter(0u64..).map(move |x| {
        let _keep_alive = &flag;
        x
    });
    let handle = source::from_stream(stream)
        .async_boundary(nz(8))
        .map_async(nz(2), |x| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            x
        })
        .to(sink::count())
        .spawn();
    while counted_so_far(&handle) < 10 {
        tokio::task::yield_now().await;
    }
    assert!(!released.load(Ordering::SeqCst));
    handle.abort();
    let result = tokio::time::timeout(HANG_LIMIT, handle).await.expect("abort did not end the run");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
    // The upstream task of the boundary is aborted when the consuming side is dropped; it drops the
    // source as it ends, which may be a moment after the run's result.
    tokio::time::timeout(HANG_LIMIT, async {
        while !released.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the source was never released");
}

/// Runs `graph` (over a source counted by `pulled`) to its end on the current task, with another task
/// spawned beside it, and checks that the other task got to run before the pipeline finished.
async fn assert_does_not_starve_the_runtime<Src, Snk>(
    graph: Graph<Src, Snk>,
    pulled: &Arc<AtomicU64>,
    expected: u64,
) where
    Src: Source,
    Snk: Sink<Src::Item, Output = u64>,
{
    let progress = Arc::clone(pulled);
    let bystander = tokio::spawn(async move { progress.load(Ordering::SeqCst) });
    let outcome = graph.run().await.unwrap();
    assert_eq!(outcome.value, expected);
    let progress_when_bystander_ran = bystander.await.unwrap();
    assert!(
        progress_when_bystander_ran < pulled.load(Ordering::SeqCst),
        "the spawned task only ran after the pipeline finished: the source never yielded"
    );
}

const MILLION: u64 = 1_000_000;

fn counted_million(
    pulled: &Arc<AtomicU64>,
) -> pump_core::source::Iter<impl Iterator<Item = u64> + Send + 'static> {
    source::iter(counted_naturals(pulled).take(MILLION as usize))
}

/// Rule 3.3: the recursion between producer and consumer is bounded. An always-ready source yields
/// to the executor every few hundred elements, so on a single-threaded runtime another task still
/// runs while a million-element pipeline does, also when a stage between source and sink holds
/// finished results it could hand out instead of passing the source's yield on.
#[tokio::test]
async fn rule_3_3_an_always_ready_source_does_not_starve_the_runtime() {
    let pulled = Arc::new(AtomicU64::new(0));
    let fused = counted_million(&pulled).map(|x| x + 1).filter(|x| x % 2 == 0).to(sink::count());
    assert_does_not_starve_the_runtime(fused, &pulled, MILLION / 2).await;

    let pulled = Arc::new(AtomicU64::new(0));
    let concurrent = counted_million(&pulled).map_async(nz(4), |x| async move { x }).to(sink::count());
    assert_does_not_starve_the_runtime(concurrent, &pulled, MILLION).await;

    let pulled = Arc::new(AtomicU64::new(0));
    let fallible = counted_million(&pulled)
        .try_map_async(nz(4), |x| async move { Ok::<_, String>(x) }, ErrorPolicy::stop())
        .to(sink::count());
    assert_does_not_starve_the_runtime(fallible, &pulled, MILLION).await;

    let pulled = Arc::new(AtomicU64::new(0));
    let partitioned = counted_million(&pulled)
        .map_async_partitioned(nz(4), |x| x % 7, |x| async move { x })
        .to(sink::count());
    assert_does_not_starve_the_runtime(partitioned, &pulled, MILLION).await;

    let pulled = Arc::new(AtomicU64::new(0));
    let batched =
        counted_million(&pulled).batch(nz(100), Duration::from_secs(3600)).unbatch().to(sink::count());
    assert_does_not_starve_the_runtime(batched, &pulled, MILLION).await;
}

/// Rule 3.3, for cancellation: an abort of a pipeline over an always-ready infinite source takes
/// effect, on a single-threaded runtime.
#[tokio::test]
async fn rule_3_3_abort_of_an_always_ready_pipeline_takes_effect() {
    let handle =
        source::iter(0u64..).map(|x| x.wrapping_mul(3)).filter(|x| x % 2 == 0).to(sink::count()).spawn();
    while counted_so_far(&handle) < 10_000 {
        tokio::task::yield_now().await;
    }
    handle.abort();
    let result = tokio::time::timeout(HANG_LIMIT, handle).await.expect("abort did not take effect");
    assert!(matches!(result, Err(PipelineError::Aborted)), "expected Aborted, got {result:?}");
}
