//! Bad arguments and bad configuration: exit 2 and one `error:` line naming what to fix.

use crate::support::Sandbox;

fn assert_usage_error(sandbox: &Sandbox, args: &[&str], expected: &[&str]) {
    let ran = sandbox.run(args);
    assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
    for text in expected {
        assert!(ran.stderr.contains(text), "{args:?}: {text:?} not in {}", ran.stderr);
    }
}

#[test]
fn bad_arguments_and_settings_exit_2_naming_the_option() {
    let sandbox = Sandbox::new();
    sandbox.generate("youzan", 20, "t.jsonl", &[]);
    let youzan = ["run", "youzan_order", "--input", "t.jsonl", "--output", "o.jsonl"];
    let with =
        |extra: &[&'static str]| -> Vec<&'static str> { youzan.iter().chain(extra).copied().collect() };
    assert_usage_error(
        &sandbox,
        &with(&["--batch-size", "0"]),
        &["error: CONFIGURATION_ERROR: ", "batch_size", "--batch-size"],
    );
    assert_usage_error(&sandbox, &with(&["--concurrency", "0"]), &["CONFIGURATION_ERROR", "concurrency"]);
    assert_usage_error(&sandbox, &with(&["--timeout", "0s"]), &["CONFIGURATION_ERROR", "timeout"]);
    assert_usage_error(&sandbox, &with(&["--timeout", "soon"]), &["--timeout"]);
    assert_usage_error(
        &sandbox,
        &with(&["--dead-letter", "o.jsonl"]),
        &["CONFIGURATION_ERROR", "dead_letter"],
    );
    assert_usage_error(&sandbox, &["run", "youzan_order", "--input", "t.jsonl"], &["--output"]);
    assert_usage_error(&sandbox, &["run", "nonsense"], &["nonsense"]);
    assert_usage_error(
        &sandbox,
        &["run", "batch_process", "--input", "t.jsonl", "--output", "o.jsonl", "--filter", "amount >> 5"],
        &["CONFIGURATION_ERROR", "filter", "column"],
    );
    assert_usage_error(
        &sandbox,
        &["gen", "youzan", "--count", "5", "--invalid-ratio", "2", "--output", "x"],
        &["--invalid-ratio"],
    );
    assert_usage_error(&sandbox, &["tasks", "show", "not-an-id"], &["VALIDATION_ERROR"]);
    assert_usage_error(&sandbox, &["tasks", "show", "01a2298f-a5e5-770f-8e80-9df25c3ea44f"], &["NOT_FOUND"]);
    assert_usage_error(
        &sandbox,
        &["tasks", "list", "--status", "sleeping"],
        &["CONFIGURATION_ERROR", "--status"],
    );
    assert_eq!(sandbox.run(&["tasks", "list", "--json"]).json()["total"], 0, "no task was created");
}

#[test]
fn a_task_that_fails_exits_1_with_its_error_code() {
    let sandbox = Sandbox::new();
    // A missing input is refused when the task is created: exit 2, the option named, no task.
    let refused = sandbox.run(&["run", "youzan_order", "--input", "missing.jsonl", "--output", "o.jsonl"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("CONFIGURATION_ERROR") && refused.stderr.contains("--input"),
        "{}",
        refused.stderr
    );
    assert_eq!(sandbox.run(&["tasks", "list", "--json"]).json()["total"], 0, "no task was created");
    // A task that fails while it runs: more invalid records than its skip limit allows.
    sandbox.generate("youzan", 200, "t.jsonl", &["--invalid-ratio", "0.2"]);
    let ran = sandbox.run(&[
        "run",
        "youzan_order",
        "--input",
        "t.jsonl",
        "--output",
        "o.jsonl",
        "--skip-limit",
        "0",
        "--json",
    ]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let document: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(document["status"], "failed");
    let code = document["error"]["code"].as_str().unwrap();
    assert!(ran.stderr.contains(&format!("error: {code}: task ")), "{}", ran.stderr);
}
