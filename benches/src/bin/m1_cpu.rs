//! CPU probe for m1: runs the bare pipeline and the managed task on the same 1,000,000 orders, a few
//! times each, and prints each run's wall time and the process's CPU time over it (user + system,
//! from `/proc/self/stat`). Wall time on a 2-core machine hides work done on the second core; the CPU
//! time shows what each path costs in total.
//!
//! Run: `cargo run --release -p benches --bin m1_cpu [runs]` (default 5 runs of each).

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use batch_model::Durability;
use benches::manager_workloads::{M1_N, OrdersParams, manager, run_bare, run_managed};
use benches::write_orders;

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
    let runs: usize = std::env::args().nth(1).map(|runs| runs.parse()).transpose()?.unwrap_or(5);
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
    let measure = |name: &str, run: &dyn Fn()| {
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (started, cpu_before) = (Instant::now(), cpu_time().unwrap_or_default());
            run();
            walls.push(started.elapsed());
            cpus.push(cpu_time().unwrap_or_default().saturating_sub(cpu_before));
        }
        let each: Vec<String> = walls
            .iter()
            .zip(&cpus)
            .map(|(wall, cpu)| format!("{}/{}", wall.as_millis(), cpu.as_millis()))
            .collect();
        walls.sort();
        cpus.sort();
        println!(
            "{name:>8}: median wall {:>4} ms, median CPU {:>5} ms (each run, wall/CPU ms: {})",
            walls[runs / 2].as_millis(),
            cpus[runs / 2].as_millis(),
            each.join(" ")
        );
    };
    let bare_output = dir.join("bare.jsonl");
    measure("bare", &|| runtime.block_on(run_bare(&input, &bare_output)));
    let (spawned_input, spawned_output) = (input.clone(), dir.join("spawned.jsonl"));
    measure("spawned", &|| {
        let (input, output) = (spawned_input.clone(), spawned_output.clone());
        let _ = runtime.block_on(runtime.spawn(async move { run_bare(&input, &output).await }));
    });
    measure("managed", &|| runtime.block_on(run_managed(&managed, &params, Durability::Process)));
    runtime.block_on(managed.shutdown());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
