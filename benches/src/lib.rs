//! Shared workloads and baselines for the criterion benchmarks (`benches/`) and the memory and CPU
//! probes (`src/bin/rss_10m.rs`, `src/bin/m1_cpu.rs`).
//!
//! Each workload exists once here, in every flavour a benchmark compares, so the flavours do the same
//! work and a ratio between them means something.

pub mod latency;
pub mod m3;
pub mod manager_workloads;
pub mod pg_probe;
pub mod river_sql;

use std::hint::black_box;

/// Roughly 2 µs of integer work on this machine (xorshift rounds), for the CPU-parallelism benchmark.
pub fn cpu_work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..1_400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// The w1 workload as a hand-written loop: `x * 2`, keep multiples of 3, sum.
pub fn w1_hand_loop(n: u64) -> u64 {
    let mut sum = 0u64;
    for x in 0..n {
        let doubled = black_box(x) * 2;
        if doubled % 3 == 0 {
            sum = sum.wrapping_add(doubled);
        }
    }
    sum
}

/// The number in environment variable `name` (a probe's setting), or `default` when it is unset or
/// not a number.
pub fn number_from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Peak resident set size of this process in KiB (`VmHWM` from `/proc/self/status`), where available.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The sum of one w6 window (wrapping, as the pipeline's fold does).
pub fn w6_window_sum(items: &[u64]) -> u64 {
    items.iter().fold(0u64, |sum, x| sum.wrapping_add(*x))
}

/// The w6 workload as a hand-written loop: `0..n` cut into consecutive windows of `window` items (the
/// last may be shorter), each collected into a buffer and summed, the sums added up.
pub fn w6_hand_loop(n: u64, window: usize) -> u64 {
    let mut buffer = Vec::with_capacity(window);
    let mut total = 0u64;
    for x in 0..n {
        buffer.push(black_box(x));
        if buffer.len() == window {
            total = total.wrapping_add(w6_window_sum(&buffer));
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        total = total.wrapping_add(w6_window_sum(&buffer));
    }
    total
}

/// The m1 workload's input record: an order as a shop system exports it, about 200 bytes of JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The order's number.
    pub id: u64,
    /// Who bought.
    pub customer: String,
    /// Where it ships.
    pub province: String,
    /// The line items.
    pub items: Vec<OrderItem>,
    /// Free text.
    pub note: String,
}

/// One line item of an [`Order`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderItem {
    /// The product.
    pub sku: String,
    /// How many.
    pub qty: u32,
    /// Unit price in cents.
    pub price_cents: u64,
}

/// The m1 workload's output record: the order, lightly transformed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderTotal {
    /// The order's number.
    pub id: u64,
    /// Who bought.
    pub customer: String,
    /// The region of the province.
    pub region: &'static str,
    /// Units over all items.
    pub units: u32,
    /// Sum of qty × price, in cents.
    pub total_cents: u64,
}

const PROVINCES: [(&str, &str); 6] = [
    ("浙江", "华东"),
    ("江苏", "华东"),
    ("北京", "华北"),
    ("广东", "华南"),
    ("四川", "西南"),
    ("湖北", "华中"),
];

/// Order `id` of the m1 workload (deterministic).
pub fn order(id: u64) -> Order {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % bound
    };
    let items = (0..1 + next(3))
        .map(|_| OrderItem {
            sku: format!("SKU-{:05}", next(100_000)),
            qty: 1 + next(5) as u32,
            price_cents: 100 + next(50_000),
        })
        .collect();
    Order {
        id,
        customer: format!("customer-{:06}", next(1_000_000)),
        province: PROVINCES[next(PROVINCES.len() as u64) as usize].0.to_owned(),
        items,
        note: "leave at the door, ring twice".to_owned(),
    }
}

/// Writes orders `1..=n` as JSON lines to `path` (about 200 bytes each).
pub fn write_orders(path: &std::path::Path, n: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for id in 1..=n {
        serde_json::to_writer(&mut file, &order(id)).map_err(std::io::Error::other)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}

/// The m1 transformation: parse an order line and total it.
pub fn total_order(line: &str) -> Result<OrderTotal, serde_json::Error> {
    let order: Order = serde_json::from_str(line)?;
    let region = PROVINCES
        .iter()
        .find(|(province, _)| *province == order.province)
        .map_or("其他", |(_, region)| region);
    Ok(OrderTotal {
        id: order.id,
        customer: order.customer,
        region,
        units: order.items.iter().map(|item| item.qty).sum(),
        total_cents: order.items.iter().map(|item| u64::from(item.qty) * item.price_cents).sum(),
    })
}
