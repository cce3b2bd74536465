//! CPU probe for m1: runs the bare pipeline (on the calling thread, as criterion's `bare` does), the
//! same pipeline inside a spawned task (where a managed task's pipeline runs), and the managed task
//! on the same 1,000,000 orders, in rounds, and prints the median wall time and the process's CPU
//! time over each run (user + system, from `/proc/self/stat`). Wall time on a 2-core machine hides
//! work done on the second core; the CPU time shows what each path costs in total.
//!
//! Run: `cargo run --release -p benches --bin m1_cpu [rounds]` (default 9 rounds of one run each).

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use batch_model::Durability;
use benches::manager_workloads::{M1_N, OrdersParams, manager, run_bare, run_managed};
use benches::write_orders;

/// One way to run the m1 workload once.
type Run<'a> = Box<dyn Fn() + 'a>;

/// User + system CPU time of this process so far (`/proc/self/stat` fields 14 and 15).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports clock ticks; Linux's USER_HZ is 100 on every architecture Rust targets.
    Some(Duration::from_millis(ticks * 10))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).map(|runs| runs.parse()).transpose()?.unwrap_or(9).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = std::env::temp_dir().join(format!("m1_cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("orders.jsonl");
    write_orders(&input, M1_N)?;
    let params = OrdersParams {
        input: input.clone(),
        output: dir.join("managed.jsonl"),
        dead_letters: dir.join("managed.dead.jsonl"),
    };
    let managed = runtime.block_on(async { manager(&dir.join("tasks.db"), Durability::Process, 4) });
    let bare_output = dir.join("bare.jsonl");
    let spawned_output = dir.join("spawned.jsonl");
    let flavours: [(&str, Run<'_>); 3] = [
        ("bare", Box::new(|| runtime.block_on(run_bare(&input, &bare_output)))),
        (
            "spawned",
            Box::new(|| {
                let (input, output) = (input.clone(), spawned_output.clone());
                let _ = runtime.block_on(runtime.spawn(async move { run_bare(&input, &output).await }));
            }),
        ),
        ("managed", Box::new(|| runtime.block_on(run_managed(&managed, &params, Durability::Process)))),
    ];
    // Rounds of one run of each flavour, so that a noisy moment of the machine hits all three.
    let mut measured: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); flavours.len()];
    for _ in 0..runs {
        for ((_, run), times) in flavours.iter().zip(&mut measured) {
            let (started, cpu_before) = (Instant::now(), cpu_time().unwrap_or_default());
            run();
            times.push((started.elapsed(), cpu_time().unwrap_or_default().saturating_sub(cpu_before)));
        }
    }
    let median = |mut values: Vec<Duration>| {
        values.sort();
        values[values.len() / 2]
    };
    for ((name, _), times) in flavours.iter().zip(&measured) {
        println!(
            "{name:>8}: median wall {:>4} ms, median CPU {:>4} ms",
            median(times.iter().map(|(wall, _)| *wall).collect()).as_millis(),
            median(times.iter().map(|(_, cpu)| *cpu).collect()).as_millis(),
        );
    }
    // The per-round ratio is steadier than a ratio of medians on a machine with noisy neighbours.
    let ratios: Vec<f64> = measured[2]
        .iter()
        .zip(&measured[0])
        .map(|((managed, _), (bare, _))| managed.as_secs_f64() / bare.as_secs_f64())
        .collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!("managed / bare, per round: median {:.3} (rounds: {runs})", sorted[runs / 2]);
    runtime.block_on(managed.shutdown());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
