//! Fan-in (`merge`, `zip`, `concat`, `interleave`) and fan-out (`broadcast`, `balance`, `partition`).
//!
//! # Fan-in
//!
//! The two-input forms are methods on every source and flow (`source.merge(other)`, `.zip(other)`,
//! `.concat(other)`, `.interleave(other, segment_size)`), where `other` is a [`Source`](crate::Source)
//! opened in the same run. The N-input forms are sources: [`merge_all`], [`concat_all`],
//! [`interleave_all`]. None of them buffers: an input is polled only when downstream asks, and
//! `concat` opens its second source only once the first has ended.
//!
//! # Fan-out
//!
//! [`broadcast`] (every element to every consumer), [`balance`] (each element to one consumer with
//! room) and [`partition`] (each element to the consumer a function picks) are sinks whose
//! consumers are sinks too, so a consumer can be a whole section: `flow.to(sink)`. Their output is
//! each consumer's result, in order.
//!
//! How consumers are driven: the fan-out's future pulls the input, hands elements to per-consumer
//! bounded lanes (capacity [`FanOutConfig::capacity`] each), and polls the consumers' futures
//! itself, all on the task that runs the pipeline. Elements move in chunks, and a consumer is
//! polled only when its lane got elements or it was woken, so a fan-out costs about what the
//! consumers' own work costs, with no channel operation or cross-thread wake-up per element. The
//! consumers therefore share one thread; to give a CPU-heavy consumer a thread of its own, start
//! it with `async_boundary` (its section then runs on its own task, reading its lane from there),
//! or use `map_blocking` inside it.
//!
//! Memory: at most `capacity` elements per consumer are buffered (produced and not yet yielded to
//! that consumer), plus, for `partition`, one element waiting for its consumer's room, and for
//! `balance` under `ContinueWithout`, the buffer of a detached consumer while it is handed to the
//! others.
//!
//! Each consumer runs in a child context of the run: its stages appear in the run's metrics and
//! see its abort and drain, while its own failure (an error, a panic, a stage failing it) is
//! handled by the fan-out's [`FanOutPolicy`]. The fan-out registers one stage (`fan_broadcast`,
//! `fan_balance`, `fan_partition`) with `in` (elements pulled), `out` (elements handed to
//! consumers, each copy counted), `dropped`, `errors` (failed consumers), and buffer depth and
//! capacity (summed over the consumers).

mod balance;
mod broadcast;
mod concat;
mod config;
mod driver;
mod error;
mod interleave;
mod lane;
mod merge;
mod partition;
mod zip;

pub use balance::{Balance, balance};
pub use broadcast::{Broadcast, Broadcast2, broadcast, broadcast2};
pub use concat::{Concat, ConcatAll, ConcatAllStream, ConcatStream, concat_all};
pub use config::{FanOutConfig, FanOutPolicy};
pub use error::FanOutError;
pub use interleave::{Interleave, InterleaveAll, InterleaveStream, interleave_all};
pub use merge::{Merge, MergeAll, MergeStream, merge_all};
pub use partition::{Partition, partition};
pub use zip::{Zip, ZipStream};
