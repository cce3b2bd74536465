//! `pump-core`: typed, demand-driven, bounded-memory stream processing in the
//! Source -> Flow -> Sink style.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use pump_core::prelude::*;
//!
//! let outcome = source::iter(1..=1_000_000u64)
//!     .map(|x| x * 2)
//!     .filter(|x| x % 3 == 0)
//!     .to(sink::fold(0u64, |sum, x| sum + x))
//!     .run()
//!     .await
//!     .unwrap();
//! assert_eq!(outcome.value, (1..=1_000_000u64).map(|x| x * 2).filter(|x| x % 3 == 0).sum::<u64>());
//! # }
//! ```
//!
//! # Key design decisions
//!
//! - **Built on `futures::Stream`.** A [`Source`] opens into a stream, a [`Flow`] maps a stream to a
//!   stream, a [`Sink`] consumes a stream into a value. Any stream is a source
//!   ([`source::from_stream`]), any `futures::Sink` is a sink ([`sink::from_sink`]), any source is a
//!   stream again ([`SourceExt::into_stream`]), and any sink can be fed as a `futures::Sink`
//!   ([`sink::SinkExt::into_futures_sink`]).
//! - **Pull-based backpressure.** Nothing is produced before downstream polls for it. The only
//!   places that hold elements ahead of demand are explicit and bounded: `map_async` (its
//!   parallelism), `map_blocking` (2 × parallelism chunks), `batch` (the batch), `async_boundary`/`buffer`
//!   (capacity, with an [`OverflowStrategy`]), `delay` (its `max_in_flight`), `debounce` (one element),
//!   windows (`max_elements` × `max_open_windows`), keyed state (`max_keys`), fan-out lanes (capacity
//!   per consumer), file sources (three chunks of 1024 records). Memory is bounded by those numbers,
//!   whatever the input.
//! - **Fusion by default.** Synchronous operators are stream adapters polled by one task, so a chain
//!   of them costs about what the hand-written loop costs. Concurrency is opt-in and explicit.
//! - **Typed end to end, statically and dynamically.** Generic composition is zero-cost; boxed
//!   [`flow::BoxFlow`], [`source::BoxSource`], [`sink::BoxSink`] and the [`BatchProcessor`] builder
//!   compose stages chosen at run time. No `Any`, no casts.
//! - **Failures are values, never silent.** A fallible stage ([`SourceExt::try_map`],
//!   [`SourceExt::try_map_async`]) follows an [`ErrorPolicy`]: stop the run, resume (the element and
//!   its error go to [`DeadLetters`] and are counted), or retry with exponential backoff and jitter.
//!   A panic in user code becomes an error; a pipeline never hangs on one.
//! - **A run is a handle.** [`Graph::run`] drives the pipeline on the calling task; [`Graph::spawn`]
//!   gives a [`RunHandle`] with `drain` (stop the sources, finish in-flight work), `abort` (stop now)
//!   and live [`metrics`](RunHandle::metrics). Every stage and async user function sees the run's
//!   cancellation token ([`current_cancellation_token`]).
//! - **Cheap, live metrics.** Per-stage counters (in, out, errors, dropped, retried, buffer depth,
//!   busy time) are single-writer atomics published with plain stores; see [`metrics`].
//! - **The catalogue of the big stream libraries.** Time ([`flow::time`]: throttle, timeout,
//!   debounce, delay), windows and keyed state ([`flow::window`]), fan-in and fan-out ([`fan`]), and
//!   restartable sections ([`restart`]), each bounded and each counting what it drops.
//! - **Contexts for acknowledgements.** [`Ctx`] carries a source position beside each element so a
//!   sink can commit "done up to here" only after its write is durable.
//!
//! # Features
//!
//! - `json` (default): JSON-lines file source and writer (serde, serde_json).
//! - `csv` (default): CSV file source and writer (serde, csv).
//!
//! Without them the crate depends on no serialisation library.

mod context;
mod error;
pub mod fan;
pub mod flow;
mod guard;
pub mod metrics;
mod operators;
mod operators_fan;
mod operators_time;
mod operators_window;
mod overflow;
mod pipeline;
mod policy;
pub mod restart;
pub mod sink;
pub mod source;
mod stage;
mod timer;

pub use context::Ctx;
pub use error::{BoxError, PipelineError};
pub use flow::{Flow, FlowExt};
pub use overflow::OverflowStrategy;
pub use pipeline::{
    BatchProcessor, Graph, ProcessorWithSource, RunControls, RunHandle, RunOutcome, RunStats,
};
pub use policy::{DeadLetter, DeadLetters, ErrorPolicy, Failure, OnFailure, RetryPolicy};
pub use sink::{Sink, SinkExt};
pub use source::{Source, SourceExt};
pub use stage::{Stage, StageContext, current_cancellation_token};
pub use tokio_util::sync::CancellationToken;

/// The names most pipelines need: the traits, the policy types, and the `source`, `flow` and `sink`
/// modules.
pub mod prelude {
    pub use crate::{
        Ctx, DeadLetter, DeadLetters, ErrorPolicy, Flow, FlowExt, OverflowStrategy, PipelineError,
        RetryPolicy, Sink, Source, SourceExt, flow, sink, source,
    };
}
