//! Dependency-direction invariants (see docs/ARCHITECTURE.md): layers point one way, the core stays
//! light, and the model does no I/O.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, bail};

use crate::output;

/// Crates that would mean storage, a runtime or I/O in a place that must have none.
const DATABASE_CRATES: [&str; 5] = ["rusqlite", "sqlx", "libsqlite3-sys", "postgres", "tokio-postgres"];

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
const LAYERS: [(&str, &[&str]); 7] = [
    ("pump-core", &[]),
    ("batch-model", &[]),
    ("batch-tasks", &["batch-model", "pump-core"]),
    ("batch-manager", &["batch-tasks", "batch-model", "pump-core"]),
    ("batch", &["batch-manager", "batch-tasks", "batch-model", "pump-core"]),
    ("batch-server", &["batch-manager", "batch-tasks", "batch-model", "pump-core"]),
    ("batch-cli", &["batch", "batch-server", "batch-manager", "batch-tasks", "batch-model", "pump-core"]),
];

pub(crate) fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let members: BTreeSet<String> = LAYERS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .filter(|name| root.join("crates").join(name).join("Cargo.toml").exists())
        .collect();

    for (name, allowed) in LAYERS {
        if !members.contains(name) {
            continue;
        }
        let deps = normal_deps(root, name, &[])?;
        for dep in &deps {
            let is_internal = members.contains(dep) && dep != name;
            if is_internal && !allowed.contains(&dep.as_str()) {
                problems.push(format!("{name} must not depend on {dep}"));
            }
        }
    }

    if members.contains("pump-core") {
        let deps = normal_deps(root, "pump-core", &[])?;
        for dep in &deps {
            if dep.starts_with("batch") {
                problems.push(format!("pump-core must not depend on {dep}"));
            }
            if DATABASE_CRATES.contains(&dep.as_str()) {
                problems.push(format!("pump-core must not depend on a database ({dep})"));
            }
        }
        let lean = normal_deps(root, "pump-core", &["--no-default-features"])?;
        for format_crate in ["serde", "serde_json", "csv"] {
            if lean.contains(format_crate) {
                problems.push(format!(
                    "pump-core without default features depends on {format_crate}; it must be an optional feature"
                ));
            }
        }
    }

    if members.contains("batch-model") {
        let deps = normal_deps(root, "batch-model", &[])?;
        for dep in &deps {
            let forbidden = ["tokio", "futures", "async-trait", "pump-core", "tokio-util"]
                .contains(&dep.as_str())
                || DATABASE_CRATES.contains(&dep.as_str());
            if forbidden {
                problems.push(format!("batch-model must do no async and no I/O, but depends on {dep}"));
            }
        }
    }

    if members.contains("batch-manager") {
        // Store backends weigh only on those who use them: SQLite is the default store (feature
        // `sqlite`), PostgreSQL an option (feature `postgres`), and neither pulls in the other.
        let deps = normal_deps(root, "batch-manager", &[])?;
        for client in ["tokio-postgres", "deadpool-postgres", "postgres", "sqlx"] {
            if deps.contains(client) {
                problems.push(format!(
                    "batch-manager without feature `postgres` depends on {client}; it must be optional"
                ));
            }
        }
        if !deps.contains("rusqlite") {
            problems.push(
                "batch-manager by default lacks rusqlite: SQLite must stay the default store".to_owned(),
            );
        }
        let postgres_only =
            normal_deps(root, "batch-manager", &["--no-default-features", "--features", "postgres"])?;
        for sqlite in ["rusqlite", "libsqlite3-sys"] {
            if postgres_only.contains(sqlite) {
                problems.push(format!(
                    "batch-manager with only feature `postgres` depends on {sqlite}; it must come with `sqlite` only"
                ));
            }
        }
        if !postgres_only.contains("tokio-postgres") {
            problems.push("batch-manager with feature `postgres` lacks tokio-postgres".to_owned());
        }
    }

    if members.contains("batch-tasks") {
        // PostgreSQL tables as kinds' endpoints weigh only on those who use them (feature `postgres`).
        let deps = normal_deps(root, "batch-tasks", &[])?;
        for client in ["tokio-postgres", "postgres", "sqlx"] {
            if deps.contains(client) {
                problems.push(format!(
                    "batch-tasks without feature `postgres` depends on {client}; it must be optional"
                ));
            }
        }
        let with_tables = normal_deps(root, "batch-tasks", &["--features", "postgres"])?;
        if !with_tables.contains("tokio-postgres") {
            problems.push("batch-tasks with feature `postgres` lacks tokio-postgres".to_owned());
        }
        if with_tables.contains("rusqlite") {
            problems.push("batch-tasks with feature `postgres` depends on rusqlite".to_owned());
        }
    }

    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("deps: {problem}");
        }
        bail!("{} dependency-direction problem(s)", problems.len());
    }
    println!("deps: {} crates checked", members.len());
    Ok(())
}

/// Every crate in `package`'s normal (non-dev, non-build) dependency tree, by name.
fn normal_deps(root: &Path, package: &str, extra: &[&str]) -> Result<BTreeSet<String>> {
    let mut args = vec!["tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"];
    args.extend_from_slice(extra);
    let tree = output(root, "cargo", &args)?;
    Ok(tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_owned)
        .collect())
}
