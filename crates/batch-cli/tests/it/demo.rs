//! `batch demo` on a small scale: all three kinds complete, each summary says where its output is, and
//! the store is the one `--db` names.

use crate::support::Sandbox;

#[test]
fn the_demo_runs_the_three_kinds_to_completion() {
    let sandbox = Sandbox::new();
    let ran = sandbox.run(&[
        "demo",
        "--dir",
        "demo",
        "--scale",
        "0.02",
        "--progress-interval",
        "100ms",
        "--db",
        "store.db",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for kind in ["(train): completed", "(youzan_order): completed", "(batch_process): completed"] {
        assert!(ran.stdout.contains(kind), "{kind} not in {}", ran.stdout);
    }
    assert!(ran.stdout.contains("accuracy"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("see the tasks again with: batch tasks list --db store.db"),
        "{}",
        ran.stdout
    );
    for file in ["out/model.json", "out/orders.enriched.jsonl", "out/orders.dead_letters.jsonl"] {
        assert!(sandbox.path("demo").join(file).exists(), "{file}");
    }
    assert!(!sandbox.path("demo/batch.db").exists(), "--db was given: the store is store.db");
    let metrics = sandbox.run(&["metrics", "--json", "--db", "store.db"]).json();
    assert_eq!(metrics["completed_tasks"], 3);
    assert_eq!(metrics["success_rate"], 1.0);
    // Each task got its kind's default config: chunks of 64 rows for train, 1000 records otherwise.
    let listing = sandbox.run(&["tasks", "list", "--json", "--db", "store.db"]).json();
    for task in listing["tasks"].as_array().unwrap() {
        let expected = if task["task_type"] == "train" { 64 } else { 1000 };
        assert_eq!(task["config"]["batch_size"], expected, "{}", task["task_type"]);
    }
}
