//! Logs: the libraries' events on stderr as `-v`/`-q`, `RUST_LOG` and `--log-format` say, never on
//! stdout, where `--json` documents stay pure.

use serde_json::Value;

use crate::support::Sandbox;

/// `batch run batch_process` over a small file, with `extra` options, and `--json`.
fn run_args(extra: &[&'static str]) -> Vec<&'static str> {
    ["run", "batch_process", "--input", "r.jsonl", "--output", "o.jsonl", "--json"]
        .iter()
        .chain(extra)
        .copied()
        .collect()
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.generate("batch_process", 50, "r.jsonl", &[]);
    sandbox
}

#[test]
fn by_default_no_log_lines_and_verbose_adds_them_on_stderr() {
    let sandbox = sandbox();
    let quiet = sandbox.run(&run_args(&[]));
    assert_eq!(quiet.json()["status"], "completed");
    assert!(!quiet.stderr.contains(" INFO ") && !quiet.stderr.contains(" WARN "), "{}", quiet.stderr);

    let verbose = sandbox.run(&run_args(&["-vv"]));
    assert_eq!(verbose.json()["status"], "completed", "stdout is the document alone");
    let logged: Vec<&str> = verbose.stderr.lines().filter(|line| line.contains(" INFO ")).collect();
    assert!(
        logged.iter().any(|line| line.contains("batch_manager::manager: task created")),
        "{}",
        verbose.stderr
    );
    assert!(logged.iter().any(|line| line.contains("task finished status=completed")), "{}", verbose.stderr);
}

#[test]
fn json_log_lines_and_rust_log_directives() {
    let sandbox = sandbox();
    let ran = sandbox.run(&run_args(&["-vv", "--log-format", "json"]));
    assert_eq!(ran.json()["status"], "completed");
    let events: Vec<Value> = ran
        .stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let created = events.iter().find(|event| event["message"] == "task created").unwrap();
    assert_eq!(
        (created["level"].as_str(), created["target"].as_str()),
        (Some("INFO"), Some("batch_manager::manager"))
    );
    assert_eq!(created["task_id"].as_str(), Some(ran.task_id().as_str()));

    // RUST_LOG adds to the level -v/-q set: here one target at info, even with -q.
    let ran = sandbox.run_with(&[("RUST_LOG", "batch_manager::run=info")], &run_args(&["-q"]));
    assert_eq!(ran.json()["status"], "completed");
    let logged: Vec<&str> = ran.stderr.lines().filter(|line| line.contains(" INFO ")).collect();
    assert!(
        !logged.is_empty() && logged.iter().all(|line| line.contains("batch_manager::run")),
        "{}",
        ran.stderr
    );

    let bad = sandbox.run_with(&[("RUST_LOG", "batch_manager=loud")], &["tasks", "list"]);
    assert!(bad.one_error_line(2, "CONFIGURATION_ERROR").starts_with("RUST_LOG: "));
}
