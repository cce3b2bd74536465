//! `cargo xtask`: the checks that say "this is shippable".
//!
//! `cargo xtask ci` runs, in order: rustfmt check, clippy (all targets, all features, warnings denied),
//! the tidy checks, the dependency-direction checks, all tests (doctests included), schemathesis
//! against the HTTP server's OpenAPI document, rustdoc with warnings denied, and a compile of every
//! benchmark. If it passes locally, CI passes.
//!
//! The test steps share one throwaway PostgreSQL cluster, started here (its address exported as
//! `PUMP_TEST_PG_URL`) and stopped and removed afterwards, also when a step fails. Without PostgreSQL
//! installed the PostgreSQL tests skip, visibly; with `PUMP_REQUIRE_PG=1` (CI) that is an error.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod deps;
mod fuzz;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tidy") => tidy::check(&root),
        Some("deps") => deps::check(&root),
        Some("fuzz-api") => fuzz::run(&root),
        Some("fmt") => run(&root, "cargo", &["fmt", "--all"]),
        _ => {
            eprintln!("usage: cargo xtask <ci|tidy|deps|fuzz-api|fmt>");
            eprintln!("  ci    fmt check, clippy, tidy, dependency direction, tests, docs, benches compiled");
            eprintln!(
                "  tidy  module docs present, no dbg!/todo!/unimplemented! in library code, no #[ignore]"
            );
            eprintln!("  deps  dependency-direction invariants (docs/ARCHITECTURE.md)");
            eprintln!("  fuzz-api  schemathesis against `batch serve`'s OpenAPI document");
            eprintln!("  fmt   format the workspace");
            bail!("unknown or missing command")
        }
    }
}

fn ci(root: &Path) -> Result<()> {
    let started = Instant::now();
    step("rustfmt", || run(root, "cargo", &["fmt", "--all", "--check"]))?;
    step("tidy", || tidy::check(root))?;
    step("dependency direction", || deps::check(root))?;
    step("clippy", || {
        run(
            root,
            "cargo",
            &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        )
    })?;
    let postgres = test_cluster()?;
    let pg_env: Vec<(&str, String)> =
        postgres.iter().map(|cluster| ("PUMP_TEST_PG_URL", cluster.url("postgres"))).collect();
    let pg_env: Vec<(&str, &str)> = pg_env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let tests = step("tests", || {
        run_env(root, "cargo", &["test", "--workspace", "--all-features", "--no-fail-fast"], &pg_env)
    });
    if tests.is_err()
        && let Some(cluster) = &postgres
    {
        println!("--- the test cluster's server log (last lines) ---\n{}", cluster.log_tail(40));
    }
    tests?;
    step("tests without default features", || {
        run(root, "cargo", &["test", "-p", "pump-core", "--no-default-features", "--lib", "--tests"])
    })?;
    step("api fuzzing (schemathesis)", || fuzz::run(root))?;
    // Stops the server and removes its directory.
    drop(postgres);
    step("docs", || {
        run_env(
            root,
            "cargo",
            &["doc", "--workspace", "--no-deps", "--all-features"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    // Compiled and linked in the dev profile, beside the tests' build: what a release build would
    // add is the optimiser's time (many minutes on two cores), not a check. `cargo bench` builds them
    // optimised when they are run.
    step("benches compile", || run(root, "cargo", &["build", "--workspace", "--benches", "--all-features"]))?;
    println!("xtask ci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The throwaway PostgreSQL cluster the test steps share, or `None` (after one line saying so) when
/// PostgreSQL is not installed and `PUMP_REQUIRE_PG` is not `1`.
fn test_cluster() -> Result<Option<batch_testkit::PgCluster>> {
    match batch_testkit::PgCluster::start() {
        Ok(cluster) => {
            println!("xtask ci: test PostgreSQL cluster on 127.0.0.1:{}", cluster.port());
            Ok(Some(cluster))
        }
        Err(error) if error.is_not_installed() && !batch_testkit::pg_required() => {
            println!(
                "xtask ci: PostgreSQL is not installed, so the PostgreSQL tests will skip: install it with \
                 `apt-get install postgresql`"
            );
            Ok(None)
        }
        Err(error) => Err(anyhow::Error::new(error).context("cannot start the test PostgreSQL cluster")),
    }
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    f().with_context(|| format!("step `{name}` failed"))?;
    println!("<== {name} ok ({:.1?})", started.elapsed());
    Ok(())
}

pub(crate) fn run(root: &Path, program: &str, args: &[&str]) -> Result<()> {
    run_env(root, program, args, &[])
}

fn run_env(root: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let mut command = Command::new(program);
    command.args(args).current_dir(root);
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command.status().with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("`{program} {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

pub(crate) fn output(root: &Path, program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("run through `cargo xtask`")?;
    Path::new(&manifest_dir).parent().map(Path::to_path_buf).context("xtask has no parent directory")
}
