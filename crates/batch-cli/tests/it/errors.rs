//! Bad arguments, bad configuration and missing stores: exit 2 and one line, `error: CODE: message`,
//! naming what to fix — clap's usage errors included — and a task that fails: exit 1.

use crate::support::Sandbox;

/// The youzan_order options around `extra`.
fn youzan(extra: &[&'static str]) -> Vec<&'static str> {
    ["run", "youzan_order", "--input", "t.jsonl", "--output", "o.jsonl", "--dead-letter", "d.jsonl"]
        .iter()
        .chain(extra)
        .copied()
        .collect()
}

#[test]
fn bad_settings_are_one_configuration_error_line_naming_the_option() {
    let sandbox = Sandbox::new();
    sandbox.generate("youzan_order", 20, "t.jsonl", &[]);
    let message = sandbox.run(&youzan(&["--batch-size", "0"])).one_error_line(2, "CONFIGURATION_ERROR");
    assert_eq!(
        message,
        "invalid configuration: batch_size must be at least 1, got 0 (set it with --batch-size)"
    );
    let message = sandbox.run(&youzan(&["--concurrency", "0"])).one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("concurrency") && message.contains("--concurrency"), "{message}");
    let message = sandbox.run(&youzan(&["--timeout", "0s"])).one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("timeout must be at least 1ms"), "{message}");
    let same =
        ["run", "youzan_order", "--input", "t.jsonl", "--output", "o.jsonl", "--dead-letter", "o.jsonl"];
    let message = sandbox.run(&same).one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("dead_letter") && message.contains("(set it with --dead-letter)"), "{message}");
    assert!(
        !sandbox.path("batch.db").exists() || sandbox.run(&["tasks", "list", "--json"]).json()["total"] == 0
    );
}

#[test]
fn a_kinds_error_carries_its_code_once() {
    let sandbox = Sandbox::new();
    let ran = sandbox.run(&[
        "run",
        "batch_process",
        "--input",
        "r.jsonl",
        "--output",
        "o.jsonl",
        "--filter",
        "amount >> 5",
    ]);
    let message = ran.one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.starts_with("invalid batch_process task: filter: "), "{message}");
    assert!(message.contains("column 9") && message.ends_with("(set it with --filter)"), "{message}");
}

#[test]
fn usage_errors_are_one_line_too() {
    let sandbox = Sandbox::new();
    let usage = |args: &[&str]| sandbox.run(args).one_error_line(2, "CONFIGURATION_ERROR");
    let message = usage(&["run", "youzan_order", "--input", "t.jsonl"]);
    assert!(
        message.starts_with("the following required arguments were not provided: --output <FILE>"),
        "{message}"
    );
    assert!(usage(&["run", "nonsense"]).contains("unrecognized subcommand 'nonsense'"));
    assert!(usage(&youzan(&["--timeout", "soon"])).contains("'--timeout <DURATION>'"));
    assert!(usage(&youzan(&["--bogus"])).contains("unexpected argument '--bogus'"));
    let message = usage(&["tasks", "list", "--status", "sleeping"]);
    assert!(
        message.contains("[possible values: pending, processing, completed, failed, cancelled]"),
        "{message}"
    );
    let message = usage(&["tasks", "list", "--type", "sleep"]);
    assert!(message.contains("[possible values: batch_process, train, youzan_order]"), "{message}");
    let message = usage(&["gen", "youzan_order", "--count", "5", "--invalid-ratio", "2", "--output", "x"]);
    assert!(message.contains("--invalid-ratio"), "{message}");
    let ran = sandbox.run(&["tasks", "show", "not-an-id"]);
    assert!(ran.one_error_line(2, "VALIDATION_ERROR").contains("not-an-id"));
    // The exceptions: help as asked, and a command without its subcommand shows its help.
    assert_eq!(sandbox.run(&["run", "train", "--help"]).code, 0);
    let bare = sandbox.run(&["tasks"]);
    assert_eq!(bare.code, 2);
    assert!(bare.stderr.contains("Usage: batch tasks"), "{}", bare.stderr);
}

#[test]
fn each_kind_shows_the_settings_it_honours_with_its_defaults() {
    // A kind that ignored a setting would have it refused (the unit tests of `kinds` show it with such
    // a kind); the built-in kinds honour every setting, train included (its mini-batch timeout and
    // retries), with their own defaults.
    let sandbox = Sandbox::new();
    let help = sandbox.run(&["run", "train", "--help"]).stdout;
    assert!(help.contains("--batch-size") && help.contains("[default: 64]"), "{help}");
    assert!(help.contains("--timeout") && help.contains("--max-retries"), "{help}");
    let help = sandbox.run(&["run", "youzan_order", "--help"]).stdout;
    assert!(help.contains("--timeout") && help.contains("[default: 1000]"), "{help}");
}

#[test]
fn commands_that_read_refuse_a_missing_store_and_say_which_db_to_pass() {
    let sandbox = Sandbox::new();
    let id = "01a2298f-a5e5-770f-8e80-9df25c3ea44f";
    for args in [&["tasks", "list"][..], &["tasks", "show", id], &["metrics"], &["tasks", "stop", id]] {
        let message = sandbox.run(args).one_error_line(2, "CONFIGURATION_ERROR");
        assert!(message.starts_with("no task store at batch.db: pass --db"), "{args:?}: {message}");
    }
    assert!(!sandbox.path("batch.db").exists(), "a reading command created the store");

    // After `batch demo` (its store is pump-demo/batch.db), the hint names that store.
    sandbox.generate("youzan_order", 10, "t.jsonl", &[]);
    let ran = sandbox.run(&youzan(&["--db", "pump-demo/batch.db"]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let message = sandbox.run(&["tasks", "list"]).one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("pass --db pump-demo/batch.db"), "{message}");
    // BATCH_DB is --db's default.
    let listed = sandbox.run_with(&[("BATCH_DB", "pump-demo/batch.db")], &["tasks", "list", "--json"]);
    assert_eq!(listed.json()["total"], 1);
    let shown = sandbox.run_with(&[("BATCH_DB", "pump-demo/batch.db")], &["tasks", "show", id]);
    assert!(shown.one_error_line(2, "NOT_FOUND").contains(id));
}

#[test]
fn db_is_an_address_and_gen_refuses_it() {
    let sandbox = Sandbox::new();
    // A PostgreSQL server that is not there: a storage error naming the server, not the password.
    let message = sandbox
        .run(&["tasks", "list", "--db", "postgres://batch:s3cret@127.0.0.1:1/tasks"])
        .one_error_line(1, "STORAGE_ERROR");
    assert!(message.contains("connection refused: is PostgreSQL running on 127.0.0.1:1"), "{message}");
    assert!(
        message.contains("postgres://batch@127.0.0.1:1/tasks") && !message.contains("s3cret"),
        "{message}"
    );
    let message = sandbox
        .run(&["tasks", "list", "--db", "mysql://batch:s3cret@localhost/tasks"])
        .one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("unknown store scheme mysql://") && !message.contains("s3cret"), "{message}");
    let message = sandbox
        .run(&["gen", "youzan_order", "--count", "5", "--output", "t.jsonl", "--db", "x.db"])
        .one_error_line(2, "CONFIGURATION_ERROR");
    assert_eq!(message, "--db does not apply to gen, which writes a data file and no task");
    // ... but BATCH_DB set for the other commands does not get in gen's way.
    let ran = sandbox
        .run_with(&[("BATCH_DB", "x.db")], &["gen", "youzan_order", "--count", "5", "--output", "t.jsonl"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

#[test]
fn a_missing_input_is_refused_when_the_task_is_created() {
    let sandbox = Sandbox::new();
    let refused = sandbox.run(&["run", "youzan_order", "--input", "missing.jsonl", "--output", "o.jsonl"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let message = refused.one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("--input") && message.contains("missing.jsonl"), "{message}");
    assert_eq!(sandbox.run(&["tasks", "list", "--json"]).json()["total"], 0, "no task was created");
}

#[test]
fn a_task_that_fails_exits_1_with_its_error_code() {
    let sandbox = Sandbox::new();
    sandbox.generate("youzan_order", 200, "t.jsonl", &["--invalid-ratio", "0.5"]);
    let ran = sandbox.run(&youzan(&["--skip-limit", "0", "--batch-size", "10", "--json"]));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let document: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(document["status"], "failed");
    assert_eq!(document["error"]["code"], "PROCESSING_ERROR");
    let errors: Vec<&str> = ran.stderr.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", ran.stderr);
    assert!(
        errors[0].starts_with(&format!("error: PROCESSING_ERROR: task {} failed: ", ran.task_id())),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("more than the skip limit of 0"), "{}", errors[0]);
}
