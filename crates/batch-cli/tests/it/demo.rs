//! `batch demo` on a small scale: all three kinds complete and each summary says where its output is.

use crate::support::Sandbox;

#[test]
fn the_demo_runs_the_three_kinds_to_completion() {
    let sandbox = Sandbox::new();
    let ran = sandbox.run(&["demo", "--dir", "demo", "--scale", "0.02", "--progress-interval", "100ms"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for kind in ["(train): completed", "(youzan_order): completed", "(batch_process): completed"] {
        assert!(ran.stdout.contains(kind), "{kind} not in {}", ran.stdout);
    }
    assert!(ran.stdout.contains("accuracy"), "{}", ran.stdout);
    for file in ["batch.db", "out/model.json", "out/orders.enriched.jsonl", "out/orders.dead_letters.jsonl"] {
        assert!(sandbox.path("demo").join(file).exists(), "{file}");
    }
    let metrics = sandbox.run(&["metrics", "--json", "--db", "demo/batch.db"]).json();
    assert_eq!(metrics["completed_tasks"], 3);
    assert_eq!(metrics["success_rate"], 1.0);
}
