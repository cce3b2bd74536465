//! `batch gen` and `batch run` for each kind: outputs, dead letters, and the `--json` document.

use serde_json::Value;

use crate::support::{Sandbox, read};

#[test]
fn gen_writes_the_same_bytes_for_the_same_seed() {
    let sandbox = Sandbox::new();
    // Each kind by its name, then by its old spelling (an alias): the same bytes.
    for (kind, old_name, file) in [
        ("youzan_order", "youzan", "a.jsonl"),
        ("train", "train", "a.csv"),
        ("batch_process", "records", "r.jsonl"),
    ] {
        sandbox.generate(kind, 200, file, &["--seed", "9"]);
        let first = read(&sandbox.path(file));
        sandbox.generate(old_name, 200, file, &["--seed", "9"]);
        assert_eq!(read(&sandbox.path(file)), first, "{kind}");
        let data_lines = first.lines().count() - usize::from(kind == "train");
        assert_eq!(data_lines, 200, "{kind}");
    }
    sandbox.generate("train", 50, "b.csv", &["--features", "3", "--classes", "4"]);
    let text = read(&sandbox.path("b.csv"));
    assert_eq!(text.lines().next(), Some("x0,x1,x2,label"));
}

#[test]
fn youzan_order_completes_and_dead_letters_the_malformed_lines_with_their_numbers() {
    let sandbox = Sandbox::new();
    sandbox.generate("youzan_order", 400, "trades.jsonl", &["--invalid-ratio", "0.1"]);
    let ran = sandbox.run(&[
        "run",
        "youzan_order",
        "--input",
        "trades.jsonl",
        "--output",
        "orders.jsonl",
        "--dead-letter",
        "bad.jsonl",
        "--batch-size",
        "50",
        "--json",
    ]);
    let document = ran.json();
    assert_eq!(ran.code, 0, "a task with dead letters still succeeds");
    assert_eq!(document["id"].as_str(), Some(ran.task_id().as_str()));
    assert_eq!(document["status"], "completed");
    assert_eq!(document["progress"]["processed"], 360);
    assert_eq!(document["progress"]["failed"], 40);
    assert_eq!(document["metrics"]["failed_items"], 40);
    assert_eq!(document["result"]["valid"], 360);
    assert_eq!(document["result"]["invalid"], 40);
    let regions = document["result"]["regions"].as_object().unwrap();
    let orders: u64 = regions.values().map(|totals| totals["orders"].as_u64().unwrap()).sum();
    assert_eq!(orders, 360);
    assert!(regions.values().all(|totals| totals["gmv"].as_str().is_some_and(|gmv| gmv.contains('.'))));

    let input: Vec<String> = read(&sandbox.path("trades.jsonl")).lines().map(str::to_owned).collect();
    let dead_letters = read(&sandbox.path("bad.jsonl"));
    assert_eq!(dead_letters.lines().count(), 40);
    for line in dead_letters.lines() {
        let letter: Value = serde_json::from_str(line).unwrap();
        assert_eq!(letter["code"], "VALIDATION_ERROR");
        let number = letter["line"].as_u64().unwrap() as usize;
        assert_eq!(letter["raw"].as_str(), Some(input[number - 1].as_str()), "line {number}");
    }
    assert_eq!(read(&sandbox.path("orders.jsonl")).lines().count(), 360);
}

#[test]
fn train_reports_its_accuracies_and_writes_the_model() {
    let sandbox = Sandbox::new();
    sandbox.generate("train", 1500, "train.csv", &["--features", "4", "--seed", "1"]);
    sandbox.generate("train", 300, "eval.csv", &["--features", "4", "--seed", "1"]);
    let ran = sandbox.run(&[
        "run",
        "train",
        "--input",
        "train.csv",
        "--label",
        "label",
        "--eval-input",
        "eval.csv",
        "--model-out",
        "model.json",
        "--epochs",
        "3",
        "--learning-rate",
        "0.2",
        "--l2",
        "0.0001",
        "--seed",
        "3",
        "--json",
    ]);
    let document = ran.json();
    assert_eq!(document["status"], "completed");
    // With --eval-input no row of the input is held out (train's default), so there is no hold-out
    // accuracy.
    assert_eq!(document["result"]["holdout_accuracy"], serde_json::Value::Null, "{document}");
    assert!(document["result"]["eval_accuracy"].as_f64().unwrap() > 0.8, "{document}");
    assert!(document["metrics"]["processed_items"].as_u64().unwrap() > 0);
    let model: Value = serde_json::from_str(&read(&sandbox.path("model.json"))).unwrap();
    assert_eq!(model["classes"], serde_json::json!(["negative", "positive"]));
}

#[test]
fn batch_process_filters_renames_dedups_and_groups() {
    let sandbox = Sandbox::new();
    sandbox.generate("batch_process", 500, "records.jsonl", &[]);
    let ran = sandbox.run(&[
        "run",
        "batch_process",
        "--input",
        "records.jsonl",
        "--output",
        "kept.jsonl",
        "--filter",
        "amount >= 100",
        "--select",
        "id,region,amount",
        "--rename",
        "amount=total",
        "--dedup-key",
        "id",
        "--json",
    ]);
    let document = ran.json();
    assert_eq!(document["status"], "completed");
    let kept = read(&sandbox.path("kept.jsonl"));
    let first: Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    assert!(first.get("total").is_some() && first.get("amount").is_none(), "{first}");

    let ran = sandbox.run(&[
        "run",
        "batch_process",
        "--input",
        "records.jsonl",
        "--output",
        "groups.jsonl",
        "--group-by",
        "region",
        "--aggregates",
        "count,sum:amount",
        "--json",
    ]);
    let document = ran.json();
    let rows = document["result"]["rows"].as_array().unwrap();
    assert_eq!(document["result"]["groups"].as_u64(), Some(rows.len() as u64));
    assert!(rows.iter().all(|row| row.get("sum_amount").is_some() && row.get("count").is_some()));
}
