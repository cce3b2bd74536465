//! m3's store flows against River's statements in the same minutes, round after round (issue 11).
//!
//! criterion (`cargo bench -p benches --bench pg -- m3_pg_task_throughput`) times each flavour for
//! about a minute before the next, and this machine's speed drifts by a quarter within minutes, so
//! the ratio of two flavours from one criterion run is partly the drift. Here each round runs every
//! flow once, back to back, on one throwaway server (default settings), in an order that rotates
//! from round to round: River's statements driven by a minimal client (`sql_river_statements`, a
//! ceiling of River's rate on the machine of the round), the store with one worker
//! (`batch_pg_1_worker`) and with four workers of one writer lane each
//! (`batch_pg_4_workers_1_lane`), the flows of `benches::m3` that criterion runs. After a round
//! that is not counted (warming the server's caches and the process's allocator), it prints each
//! round's rates and the store's ratios to River's in that round, then per flow the median, lowest
//! and highest rate and ratio, and how many rounds reached 15,000 tasks/s and River's rate.
//!
//! Each run works on a fresh database, made after a checkpoint and dropped afterwards (outside the
//! timing). Not a benchmark of its own: it says how the ratios criterion reports spread.
//!
//! Run: `cargo run --release -p benches --bin m3_rounds -- [ROUNDS]` (default 10; about 3 s a round
//! on this machine). `M3_FLOWS` lists other flows, comma-separated: `river`, or `WxL` for W workers
//! of L writer lanes each, or `WxLxC` with C claims in flight each (default `river,1x2,4x1`). Needs PostgreSQL's server binaries.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use batch_manager::ManagerConfig;
use batch_testkit::PgCluster;
use benches::m3::{self, M3_TASKS};

type Failure = Box<dyn std::error::Error>;

/// A flow of a round: River's statements, or the store with `workers` workers of `lanes` writer
/// lanes and `claims` claims in flight each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    River,
    Store { workers: usize, lanes: usize, claims: usize },
}

/// The flows by default: River's, one worker of two lanes (`batch_pg_1_worker`), four of one
/// (`batch_pg_4_workers_1_lane`).
const DEFAULT_FLOWS: &str = "river,1x2,4x1";

/// The rate River reached in the issue on a machine of this kind (its lower end).
const RIVERS_RATE: f64 = 15_000.0;

impl Flow {
    /// `river`, or `WxL` (W workers of L lanes each) or `WxLxC` (and C claims in flight each;
    /// the manager's default otherwise).
    fn parse(text: &str) -> Result<Flow, String> {
        if text == "river" {
            return Ok(Flow::River);
        }
        let numbers: Option<Vec<usize>> = text.split('x').map(|number| number.parse().ok()).collect();
        let default_claims = ManagerConfig::default().claims_in_flight;
        match numbers.as_deref() {
            Some(&[workers, lanes]) if workers > 0 && lanes > 0 => {
                Ok(Flow::Store { workers, lanes, claims: default_claims })
            }
            Some(&[workers, lanes, claims]) if workers > 0 && lanes > 0 && claims > 0 => {
                Ok(Flow::Store { workers, lanes, claims })
            }
            _ => Err(format!("M3_FLOWS: `{text}` is neither `river` nor WORKERSxLANES[xCLAIMS] (e.g. 4x1)")),
        }
    }

    fn name(self) -> String {
        match self {
            Flow::River => "sql_river_statements".to_owned(),
            Flow::Store { workers, lanes, claims } => {
                let name =
                    format!("batch_pg_{workers}_worker{}_{lanes}_lane{}", plural(workers), plural(lanes));
                if claims == ManagerConfig::default().claims_in_flight {
                    name
                } else {
                    format!("{name}_{claims}_claims")
                }
            }
        }
    }

    async fn run(self, cluster: &PgCluster) -> Result<Duration, String> {
        match self {
            Flow::River => m3::run_sql_river_statements(cluster).await,
            Flow::Store { workers, lanes, claims } => {
                m3::run_batch_pg_with(cluster, workers, lanes, claims).await
            }
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn rate(elapsed: Duration) -> f64 {
    M3_TASKS as f64 / elapsed.as_secs_f64()
}

/// The median, lowest and highest of `values` (not empty).
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    };
    (median, sorted[0], sorted[sorted.len() - 1])
}

fn main() -> Result<(), Failure> {
    let rounds: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(10);
    if rounds == 0 {
        return Err("at least one round".into());
    }
    let spec = std::env::var("M3_FLOWS").unwrap_or_else(|_| DEFAULT_FLOWS.to_owned());
    let flows = spec.split(',').map(|flow| Flow::parse(flow.trim())).collect::<Result<Vec<_>, _>>()?;
    let cluster = PgCluster::start()?;
    // Two runtime threads, as m3's criterion bench and `batch worker` on this machine.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(measure(&cluster, &flows, rounds))
}

async fn measure(cluster: &PgCluster, flows: &[Flow], rounds: usize) -> Result<(), Failure> {
    for flow in flows {
        flow.run(cluster).await?;
    }
    // Ratios are to River's rate in the same round, when River's flow is among them.
    let river = flows.iter().position(|flow| *flow == Flow::River);
    println!("{rounds} rounds of {M3_TASKS} tasks after one not counted; rates in tasks/s");
    println!();
    let names: Vec<String> = flows.iter().map(|flow| flow.name()).collect();
    println!("| round | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(flows.len()));
    // Per flow each round's rate.
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); flows.len()];
    for round in 0..rounds {
        let mut this_round = vec![0.0; flows.len()];
        for step in 0..flows.len() {
            let at = (round + step) % flows.len();
            this_round[at] = rate(flows[at].run(cluster).await?);
        }
        let cells: Vec<String> = this_round
            .iter()
            .enumerate()
            .map(|(at, own)| match river {
                Some(river) if river != at => format!("{own:.0} ({:.2}×)", own / this_round[river]),
                _ => format!("{own:.0}"),
            })
            .collect();
        println!("| {} | {} |", round + 1, cells.join(" | "));
        for (all, one) in rates.iter_mut().zip(this_round) {
            all.push(one);
        }
    }
    println!();
    println!(
        "| flow | median rate | lowest | highest | rounds ≥ 15,000/s | median × River | lowest × | highest × | \
         rounds ≥ River |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, flow_rates) in names.iter().zip(&rates) {
        let (median, low, high) = spread(flow_rates);
        let reached = flow_rates.iter().filter(|rate| **rate >= RIVERS_RATE).count();
        let against_river = match river {
            Some(river) => {
                let ratios: Vec<f64> =
                    flow_rates.iter().zip(&rates[river]).map(|(own, river)| own / river).collect();
                let (ratio, low, high) = spread(&ratios);
                let at_least = ratios.iter().filter(|ratio| **ratio >= 1.0).count();
                format!("{ratio:.2}× | {low:.2}× | {high:.2}× | {at_least} of {rounds}")
            }
            None => "— | — | — | —".to_owned(),
        };
        println!("| {name} | {median:.0} | {low:.0} | {high:.0} | {reached} of {rounds} | {against_river} |");
    }
    Ok(())
}
