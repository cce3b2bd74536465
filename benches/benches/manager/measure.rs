//! Criterion measurements beside wall time, for figures that must hold on a machine with noisy
//! neighbours: the process's CPU time, and a ratio measured in interleaved rounds.

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};
use rustix::time::{ClockId, clock_gettime};

/// CPU time used by the whole process (every thread: tokio's workers, the blocking pool, the SQLite
/// writer), in nanoseconds, from `CLOCK_PROCESS_CPUTIME_ID`. Time the machine gave to other tenants
/// is not counted, so the figure moves far less than wall time when the machine is shared; time
/// spent waiting (for a commit, for the disk) is not counted either, which is why it is reported
/// beside wall time, not instead of it.
pub(crate) struct ProcessCpuTime;

fn process_cpu_nanos() -> u64 {
    let now = clock_gettime(ClockId::ProcessCPUTime);
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

impl Measurement for ProcessCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        process_cpu_nanos()
    }

    fn end(&self, started: u64) -> u64 {
        process_cpu_nanos().saturating_sub(started)
    }

    fn add(&self, v1: &u64, v2: &u64) -> u64 {
        v1.saturating_add(*v2)
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats nanoseconds of CPU time ("ms cpu"), and throughput per CPU second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_value: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_value < 1e3 {
            (1.0, "ns cpu")
        } else if typical_value < 1e6 {
            (1e-3, "µs cpu")
        } else if typical_value < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical_value: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match throughput {
            Throughput::Elements(n)
            | Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Bits(n)
            | Throughput::ElementsAndBytes { elements: n, .. } => *n as f64,
        };
        for value in values {
            // Elements (or bytes) per CPU second, in thousands.
            *value = per_iteration * 1e9 / *value / 1e3;
        }
        "K/cpu-s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns cpu"
    }
}

/// A dimensionless ratio, for benches that time two flavours back to back in each round and report
/// `slower / faster` of that round (`iter_custom` returns the sum of the rounds' ratios; criterion
/// divides by the rounds). A noisy moment of the machine hits both flavours of a round, so the
/// ratio is steadier than a ratio of two medians taken minutes apart. Criterion still plans the
/// rounds by wall time.
pub(crate) struct Ratio;

impl Measurement for Ratio {
    type Intermediate = ();
    type Value = f64;

    fn start(&self) {}

    /// Only `iter_custom` gives a ratio; a plain `iter` measures nothing.
    fn end(&self, (): ()) -> f64 {
        0.0
    }

    fn add(&self, v1: &f64, v2: &f64) -> f64 {
        v1 + v2
    }

    fn zero(&self) -> f64 {
        0.0
    }

    fn to_f64(&self, value: &f64) -> f64 {
        *value
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &RatioFormatter
    }
}

/// Formats a ratio as is ("×").
struct RatioFormatter;

impl ValueFormatter for RatioFormatter {
    fn scale_values(&self, _typical_value: f64, _values: &mut [f64]) -> &'static str {
        "×"
    }

    fn scale_throughputs(
        &self,
        _typical_value: f64,
        _throughput: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        "×"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ratio"
    }
}
