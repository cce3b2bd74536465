//! Tidy checks: every `.rs` file documents its purpose; library code has no debugging leftovers;
//! no test hides behind `#[ignore]`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Macros that must not appear in library code.
const FORBIDDEN_IN_LIBRARY: [&str; 3] = ["dbg!(", "todo!(", "unimplemented!("];

pub(crate) fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches"] {
        collect_rs(&root.join(dir), &mut files)?;
    }
    for file in &files {
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let relative = file.strip_prefix(root).unwrap_or(file);
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a `//!` line saying what it is for",
                relative.display()
            ));
        }
        for (idx, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[ignore") {
                problems.push(format!(
                    "{}:{}: ignored test; fix the test instead",
                    relative.display(),
                    idx + 1
                ));
            }
        }
        if is_library_code(relative) {
            for (idx, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for forbidden in FORBIDDEN_IN_LIBRARY {
                    if code.contains(forbidden) {
                        problems.push(format!(
                            "{}:{}: `{forbidden}` in library code",
                            relative.display(),
                            idx + 1
                        ));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        bail!("{} tidy problem(s)", problems.len());
    }
    println!("tidy: {} files checked", files.len());
    Ok(())
}

/// Library code: `src/` of a crate under `crates/`, outside `#[cfg(test)]` files named `tests.rs`.
fn is_library_code(relative: &Path) -> bool {
    let mut parts = relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned());
    parts.next().as_deref() == Some("crates")
        && parts.nth(1).as_deref() == Some("src")
        && relative.file_name().is_some_and(|name| name != "tests.rs")
}

fn collect_rs(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "target") {
                continue;
            }
            collect_rs(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}
