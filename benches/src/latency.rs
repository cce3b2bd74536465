//! A fixed-size latency histogram for the HTTP load tools: buckets 1 % wide from 1 µs to 100 s, so
//! a run of any length keeps the same few kilobytes and reports percentiles within 1 %.

use std::time::Duration;

/// Buckets: `1.01^i` microseconds for `i` in `0..BUCKETS` (1 µs to about 100 s).
const BUCKETS: usize = 1860;

/// Counts of latencies by bucket.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: Duration,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: Duration::ZERO }
    }
}

impl Histogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = latency.as_secs_f64() * 1e6;
        let index = if micros <= 1.0 { 0 } else { (micros.ln() / 1.01f64.ln()) as usize };
        let index = index.min(BUCKETS - 1);
        self.counts[index] += 1;
        self.total += 1;
        self.max = self.max.max(latency);
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency counted.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The latency below which `quantile` (0..=1) of the counts lie (the bucket's upper bound).
    pub fn quantile(&self, quantile: f64) -> Duration {
        let wanted = ((self.total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                let micros = 1.01f64.powi(i32::try_from(index + 1).unwrap_or(i32::MAX));
                return Duration::from_secs_f64(micros / 1e6).min(self.max);
            }
        }
        self.max
    }
}

/// Whether `url` is an `http://` URL of this machine's loopback: the load tools send traffic nowhere
/// else.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_pass() {
        for url in ["http://127.0.0.1:8080/x", "http://localhost/", "http://[::1]:80/a"] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:8080/",
            "https://127.0.0.1/",
            "http://example.com/",
            "http://127.0.0.1.evil.com/",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn quantiles_are_within_a_percent() {
        let mut histogram = Histogram::default();
        for micros in 1..=10_000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        let p99 = histogram.quantile(0.99).as_secs_f64() * 1e6;
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.011, "{p99}");
        assert_eq!(histogram.count(), 10_000);
        assert_eq!(histogram.max(), Duration::from_micros(10_000));
    }
}
