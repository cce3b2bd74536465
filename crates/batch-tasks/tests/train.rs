//! The `train` task kind end to end, as a user would check it: it learns (a generated binary dataset,
//! generated blobs in JSON lines, the real Iris data), a run killed after any checkpoint and resumed
//! ends with the very same model, bad rows land in the dead-letter file and are counted, the same
//! seed gives the same bits whatever the concurrency, and bad params are refused by name.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ErrorCode, Progress, TaskError, TaskId, TaskType,
};
use batch_tasks::testing::MemoryControl;
use batch_tasks::train::{DataFormat, Generator, GeneratorConfig, TrainKind, TrainedModel};
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------
// Helpers.

fn task(params: Value, config: BatchConfig) -> BatchTask {
    let request = CreateTaskRequest::new(TaskType::Train).with_params(params).with_config(config);
    BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap()
}

fn config(batch_size: u32) -> BatchConfig {
    BatchConfig { batch_size, concurrency: 1, ..BatchConfig::default() }
}

async fn run(
    params: &Value,
    config: &BatchConfig,
    checkpoint: Option<Checkpoint>,
    control: Arc<MemoryControl>,
) -> Result<JobOutcome, TaskError> {
    TrainKind::new().run(JobContext::new(task(params.clone(), config.clone()), checkpoint, control)).await
}

/// Runs to completion and returns the summary.
async fn complete(params: &Value, config: &BatchConfig) -> (Value, Arc<MemoryControl>) {
    let recorder = Arc::new(MemoryControl::new());
    match run(params, config, None, Arc::clone(&recorder)).await {
        Ok(JobOutcome::Completed { summary, .. }) => (summary, recorder),
        other => panic!("expected a completed run, got {other:?}"),
    }
}

/// Runs until the `commit`-th commit, where the process dies; returns what the manager recorded.
async fn kill_at(params: &Value, config: &BatchConfig, commit: u64) -> Arc<MemoryControl> {
    let recorder = Arc::new(MemoryControl::hanging_at(commit));
    let context =
        JobContext::new(task(params.clone(), config.clone()), None, recorder.clone() as Arc<dyn JobControl>);
    let mut handle = tokio::spawn(async move { TrainKind::new().run(context).await });
    tokio::select! {
        () = recorder.hung() => handle.abort(),
        finished = &mut handle => panic!("the run ended before commit {commit}: {finished:?}"),
    }
    assert!(handle.await.unwrap_err().is_cancelled());
    recorder
}

fn accuracy(summary: &Value, key: &str) -> f64 {
    summary[key].as_f64().unwrap_or_else(|| panic!("no {key} in {summary}"))
}

fn weight_bits(model: &TrainedModel) -> Vec<u64> {
    model.weights.iter().flatten().chain(&model.bias).map(|weight| weight.to_bits()).collect()
}

fn iris() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/iris.csv")
}

// ---------------------------------------------------------------------------------------------------
// It learns.

#[tokio::test]
async fn learns_a_generated_binary_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("binary.csv");
    let generator = Generator::new(GeneratorConfig::binary(4_000, 10, 11));
    generator.write_file(&input).unwrap();
    let model_out = dir.path().join("binary-model.json");
    let params = json!({
        "input": input, "label": "label", "model_out": model_out,
        "epochs": 5, "learning_rate": 0.1, "seed": 3, "holdout": 0.25,
    });
    let (summary, _) = complete(&params, &config(32)).await;

    let holdout = accuracy(&summary, "holdout_accuracy");
    assert!(holdout >= 0.9, "hold-out accuracy {holdout}");
    assert_eq!(summary["model"], "logistic");
    assert_eq!(summary["classes"], json!(["negative", "positive"]));
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 5);
    let rows = &summary["rows"];
    assert_eq!(rows["input"], 4_000);
    assert_eq!(rows["train"].as_u64().unwrap() + rows["holdout"].as_u64().unwrap(), 4_000);
    let holdout_rows = rows["holdout"].as_u64().unwrap();
    assert!((800..1_200).contains(&holdout_rows), "{holdout_rows} rows held out of 4000 at 0.25");

    // The model points where the generator's hyperplane does.
    let model = TrainedModel::load(&model_out).unwrap();
    let learned = &model.weights[0];
    let truth = generator.latent_weights();
    let cosine = learned.iter().zip(truth).map(|(a, b)| a * b).sum::<f64>()
        / (learned.iter().map(|a| a * a).sum::<f64>().sqrt()
            * truth.iter().map(|b| b * b).sum::<f64>().sqrt());
    assert!(cosine > 0.98, "cosine {cosine} between learned and true weights");
    // The loss went down.
    let epochs = model.metrics.epochs;
    assert!(epochs[4].loss < epochs[0].loss, "{epochs:?}");
}

#[tokio::test]
async fn learns_iris_with_softmax() {
    let dir = tempfile::tempdir().unwrap();
    let model_out = dir.path().join("iris.json");
    let params = json!({
        "input": iris(), "label": "species", "model_out": model_out,
        "epochs": 60, "learning_rate": 0.1, "l2": 0.0001, "seed": 7, "holdout": 0.2,
    });
    let (summary, _) = complete(&params, &config(10)).await;

    assert_eq!(summary["model"], "softmax");
    assert_eq!(summary["classes"], json!(["setosa", "versicolor", "virginica"]));
    assert_eq!(summary["features"], json!(["sepal_length", "sepal_width", "petal_length", "petal_width"]));
    assert_eq!(summary["rows"]["input"], 150);
    assert_eq!(summary["bad_rows"], 0);
    let holdout = accuracy(&summary, "holdout_accuracy");
    assert!(holdout >= 0.9, "hold-out accuracy {holdout}");

    let model = TrainedModel::load(&model_out).unwrap();
    // The textbook flowers: a small-petalled setosa, a long-petalled virginica.
    assert_eq!(model.predict(&[5.1, 3.5, 1.4, 0.2]), Some("setosa"));
    assert_eq!(model.predict(&[7.7, 3.0, 6.1, 2.3]), Some("virginica"));
    assert_eq!(model.predict(&[1.0]), None);
    assert!(model.metrics.epochs.last().unwrap().accuracy > 0.9);
}

#[tokio::test]
async fn learns_blobs_from_json_lines_and_scores_an_eval_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("blobs.jsonl");
    let eval = dir.path().join("blobs-eval.jsonl");
    Generator::new(GeneratorConfig::blobs(3_000, 6, 4, 21).with_format(DataFormat::JsonLines))
        .write_file(&input)
        .unwrap();
    // Same structure (same seed), more rows: the first 3,000 are the training file's.
    Generator::new(GeneratorConfig::blobs(4_000, 6, 4, 21).with_format(DataFormat::JsonLines))
        .write_file(&eval)
        .unwrap();
    let params = json!({
        "input": input, "label": "label", "model_out": dir.path().join("blobs.json"), "eval_input": eval,
        "epochs": 3, "seed": 5,
    });
    let (summary, _) = complete(&params, &config(50)).await;
    assert_eq!(summary["classes"], json!(["class_0", "class_1", "class_2", "class_3"]));
    assert_eq!(summary["features"], json!(["x0", "x1", "x2", "x3", "x4", "x5"]));
    // With an eval file, no row of the input is held out: all of them train.
    assert_eq!(summary["holdout_accuracy"], Value::Null);
    assert_eq!(
        (summary["rows"]["holdout"].as_u64(), summary["rows"]["train"].as_u64()),
        (Some(0), Some(3_000))
    );
    // The blobs overlap (see BLOB_SEPARATION): four classes are far above chance (0.25), not perfect.
    let eval_accuracy = accuracy(&summary, "eval_accuracy");
    assert!((0.65..0.95).contains(&eval_accuracy), "{summary}");
    assert_eq!(summary["rows"]["eval"], 4_000);
}

// ---------------------------------------------------------------------------------------------------
// Resuming.

/// A dataset with bad rows in its middle and an eval file with bad rows at its start (so that
/// checkpoints follow both), and params that make many checkpoints in every pass.
fn resumable_task(dir: &Path, name: &str) -> Value {
    let input = dir.join("resume.csv");
    if !input.exists() {
        let mut generated = Vec::new();
        Generator::new(GeneratorConfig::blobs(600, 3, 3, 8)).write(&mut generated).unwrap();
        let generated = String::from_utf8(generated).unwrap();
        let mut lines: Vec<&str> = generated.lines().collect();
        lines.splice(301..301, ["1.0,oops,2.0,class_1", ",1,1,class_0", "1,2,3"]);
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let mut generated = Vec::new();
        Generator::new(GeneratorConfig::blobs(150, 3, 3, 8)).write(&mut generated).unwrap();
        let generated = String::from_utf8(generated).unwrap();
        let mut lines: Vec<&str> = generated.lines().collect();
        lines.splice(1..1, ["1,2,3,class_9", "1,2,x,class_0"]);
        std::fs::write(dir.join("resume-eval.csv"), lines.join("\n") + "\n").unwrap();
    }
    json!({
        "input": input, "label": "label", "eval_input": dir.join("resume-eval.csv"),
        "model_out": dir.join(format!("{name}.json")), "dead_letter": dir.join(format!("{name}.dead.jsonl")),
        "epochs": 3, "learning_rate": 0.2, "seed": 99, "holdout": 0.2,
        "shuffle_batches": 2, "checkpoint_batches": 4,
    })
}

#[tokio::test]
async fn a_run_killed_after_any_checkpoint_resumes_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(16);
    let reference = resumable_task(dir.path(), "reference");
    let (reference_summary, recorder) = complete(&reference, &config).await;
    let commits = recorder.checkpoints().len() as u64;
    assert!(commits >= 40, "only {commits} checkpoints");
    let reference_model = std::fs::read(dir.path().join("reference.json")).unwrap();
    let reference_letters = std::fs::read_to_string(dir.path().join("reference.dead.jsonl")).unwrap();
    assert_eq!(reference_letters.lines().count(), 5, "{reference_letters}");

    // Every checkpoint of every pass: the scan, each epoch, the hold-out and eval passes.
    for kill in 1..=commits {
        let name = format!("killed-{kill}");
        let params = resumable_task(dir.path(), &name);
        let killed = kill_at(&params, &config, kill).await;
        let checkpoint = killed.last_checkpoint();
        assert_eq!(checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.sequence), kill - 1);

        // The resumed run may use other threads: the result does not depend on them.
        let resumed_config = BatchConfig { concurrency: 3, ..config.clone() };
        let recorder = Arc::new(MemoryControl::new());
        let outcome = run(&params, &resumed_config, checkpoint, Arc::clone(&recorder)).await.unwrap();
        let JobOutcome::Completed { summary, .. } = outcome else { panic!("{outcome:?}") };
        if let Some(first) = recorder.checkpoints().first() {
            assert_eq!(first.sequence, kill, "sequence numbers go on from the checkpoint");
        }

        let model = std::fs::read(dir.path().join(format!("{name}.json"))).unwrap();
        assert!(model == reference_model, "killed at commit {kill}: the model file differs");
        let resumed = TrainedModel::load(&dir.path().join(format!("{name}.json"))).unwrap();
        let expected = TrainedModel::load(&dir.path().join("reference.json")).unwrap();
        assert_eq!(weight_bits(&resumed), weight_bits(&expected), "killed at commit {kill}");
        let letters = std::fs::read_to_string(dir.path().join(format!("{name}.dead.jsonl"))).unwrap();
        assert_eq!(letters, reference_letters, "killed at commit {kill}: the dead letters differ");
        for key in ["epochs", "holdout_accuracy", "eval_accuracy", "rows", "bad_rows"] {
            assert_eq!(summary[key], reference_summary[key], "killed at commit {kill}: {key}");
        }
    }
}

#[tokio::test]
async fn a_stop_commits_and_a_resume_finishes_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(16);
    let (_, _) = complete(&resumable_task(dir.path(), "reference"), &config).await;
    let params = resumable_task(dir.path(), "stopped");
    let mut checkpoint = None;
    let mut stops = 0;
    // Stop after every 7 commits until the task completes.
    loop {
        let recorder = Arc::new(MemoryControl::stopping_after(7));
        match run(&params, &config, checkpoint.clone(), Arc::clone(&recorder)).await.unwrap() {
            JobOutcome::Stopped => {
                stops += 1;
                let last = recorder.last_checkpoint().expect("a stop commits a checkpoint first");
                assert_eq!(last.sequence, checkpoint.as_ref().map_or(0, |c: &Checkpoint| c.sequence) + 7);
                checkpoint = Some(last);
            }
            JobOutcome::Completed { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(stops >= 5, "{stops} stops");
    let stopped = std::fs::read(dir.path().join("stopped.json")).unwrap();
    let reference = std::fs::read(dir.path().join("reference.json")).unwrap();
    assert!(stopped == reference, "the model after {stops} stops differs");
}

#[tokio::test]
async fn a_checkpoint_of_other_params_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let params = resumable_task(dir.path(), "a");
    let killed = kill_at(&params, &config(16), 3).await;
    let mut changed = params.clone();
    changed["seed"] = json!(100);
    let error = run(&changed, &config(16), killed.last_checkpoint(), Arc::new(MemoryControl::new()))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidState);
    assert!(error.message.contains("seed changed"), "{}", error.message);
}

#[tokio::test]
async fn progress_counts_rows_per_pass_and_tells_the_epoch_and_loss() {
    let dir = tempfile::tempdir().unwrap();
    let params = resumable_task(dir.path(), "progress");
    let recorder = Arc::new(MemoryControl::new());
    let outcome = run(&params, &config(16), None, Arc::clone(&recorder)).await.unwrap();
    let JobOutcome::Completed { summary, progress: last } = outcome else { panic!("{outcome:?}") };
    let progress = recorder.progress();
    let message = |progress: &Progress| progress.message.clone().unwrap();
    let rows = &summary["rows"];
    let (input, train, holdout, bad) = (
        rows["input"].as_u64().unwrap(),
        rows["train"].as_u64().unwrap(),
        rows["holdout"].as_u64().unwrap(),
        rows["bad"].as_u64().unwrap(),
    );
    let (eval, eval_bad) = (rows["eval"].as_u64().unwrap(), rows["eval_bad"].as_u64().unwrap());

    // The scan: rows read so far, of a total estimated from the bytes read.
    let scanning = &progress[0];
    assert!(
        message(scanning).starts_with("scanning ") && message(scanning).ends_with(" rows"),
        "{scanning:?}"
    );
    assert!(scanning.processed > 0 && scanning.processed < input);
    let estimate = scanning.total.unwrap();
    assert!(estimate.abs_diff(input) * 10 < input, "estimated {estimate} of {input} rows");

    // An epoch: the rows trained in it, of the training rows (bad rows count as failed), never rows
    // times epochs.
    let epoch_two: Vec<&Progress> =
        progress.iter().filter(|progress| message(progress).starts_with("epoch 2/3: loss ")).collect();
    assert!(!epoch_two.is_empty());
    for progress in &epoch_two {
        assert_eq!(progress.total, Some(train + bad));
        assert!(progress.processed <= train && progress.failed == bad, "{progress:?}");
        assert!(message(progress).contains(", accuracy 0."));
    }
    // The whole run's share only goes up.
    let shares: Vec<f64> = progress.iter().map(|progress| progress.percentage.unwrap_or(0.0)).collect();
    assert!(shares.windows(2).all(|pair| pair[0] <= pair[1]), "{shares:?}");
    assert!(progress.iter().any(|progress| message(progress).starts_with("evaluating ")
        && message(progress).ends_with(" held-out rows")
        && progress.total == Some(holdout + bad)));

    // At the end: every row of both files, once.
    assert_eq!(last.total, Some(input + eval + eval_bad));
    assert_eq!(last.processed, train + holdout + eval);
    assert_eq!(last.failed, 5);
    assert_eq!(last.percentage, Some(100.0));
    assert!(message(&last).starts_with("done: holdout accuracy 0."), "{:?}", last.message);
}

#[tokio::test]
async fn a_cancelled_run_fails_as_cancelled_without_committing() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(MemoryControl::new());
    recorder.cancellation_token().cancel();
    let error = run(&resumable_task(dir.path(), "cancelled"), &config(16), None, Arc::clone(&recorder))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Cancelled);
    assert!(recorder.checkpoints().is_empty());
}

// ---------------------------------------------------------------------------------------------------
// Bad rows.

#[tokio::test]
async fn bad_rows_go_to_the_dead_letter_file_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("flowers.csv");
    let iris_text = std::fs::read_to_string(iris()).unwrap();
    let mut text: String = iris_text.lines().take(101).map(|line| format!("{line}\n")).collect();
    // Lines 102..=105: bad in four ways.
    text.push_str("5.0,,1.4,0.2,setosa\n5.0,3.1,wide,0.2,setosa\n5.0,3.1,1.4,0.2\n6.0,3.0,4.8,1.8,\n");
    text.push_str(&iris_text.lines().skip(101).map(|line| format!("{line}\n")).collect::<String>());
    std::fs::write(&input, &text).unwrap();
    let eval = dir.path().join("eval.csv");
    let setosas = "0.2,1.4,3.5,5.1,setosa\n".repeat(9);
    std::fs::write(&eval, format!("petal_width,petal_length,sepal_width,sepal_length,species\n0.2,1.4,3.5,5.1,setosa\n0.2,1.4,3.5,5.1,rose\n{setosas}")).unwrap();
    let params = json!({
        "input": input, "label": "species", "model_out": dir.path().join("model.json"), "eval_input": eval,
        "epochs": 2,
    });
    let (summary, recorder) = complete(&params, &config(10)).await;

    assert_eq!(summary["rows"]["bad"], 4);
    assert_eq!(summary["rows"]["eval_bad"], 1);
    assert_eq!(summary["bad_rows"], 5);
    assert_eq!(summary["rows"]["eval"], 10);
    assert_eq!(summary["eval_accuracy"], 1.0);
    let letters_path = dir.path().join("model.dead_letters.jsonl");
    assert_eq!(summary["dead_letters"], json!(letters_path));
    let letters: Vec<Value> = std::fs::read_to_string(&letters_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let described: Vec<(u64, &str, &str)> = letters
        .iter()
        .map(|letter| {
            (
                letter["line"].as_u64().unwrap(),
                letter["code"].as_str().unwrap(),
                letter["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        described,
        vec![
            (102, "VALIDATION_ERROR", "missing value for feature `sepal_width`"),
            (103, "VALIDATION_ERROR", "feature `petal_length` is not a number: \"wide\""),
            (104, "VALIDATION_ERROR", "found 4 fields, expected 5"),
            (105, "VALIDATION_ERROR", "missing label `species`"),
            (3, "VALIDATION_ERROR", "label \"rose\" is not one of the trained classes"),
        ]
    );
    // Offsets point at the rows themselves.
    let offset = letters[0]["offset"].as_u64().unwrap() as usize;
    assert!(text[offset..].starts_with("5.0,,1.4"));
    assert_eq!(letters[1]["raw"], "5.0,3.1,wide,0.2,setosa");
    assert_eq!(letters[4]["file"], json!(eval.display().to_string()));
    // The manager saw them too.
    let last = recorder.checkpoints().last().cloned().unwrap();
    assert_eq!(last.counters.failed, 4);
}

#[tokio::test]
async fn a_quote_left_open_is_dead_lettered_naming_where_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let iris_text = std::fs::read_to_string(iris()).unwrap();
    let lines: Vec<&str> = iris_text.lines().collect();
    // Line 141 opens a quote that nothing closes: it and the 10 lines after it are one bad record.
    let mut broken: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    broken[140] = broken[140].replacen(',', ",\"", 1);
    let input = dir.path().join("broken.csv");
    std::fs::write(&input, broken.join("\n") + "\n").unwrap();
    let params =
        json!({ "input": input, "label": "species", "model_out": dir.path().join("m.json"), "seed": 1 });
    let (summary, _) = complete(&params, &config(10)).await;
    assert_eq!((summary["rows"]["input"].as_u64(), summary["rows"]["bad"].as_u64()), (Some(140), Some(1)));
    let letters = std::fs::read_to_string(dir.path().join("m.dead_letters.jsonl")).unwrap();
    let letter: Value = serde_json::from_str(letters.trim()).unwrap();
    assert_eq!(letter["line"], 141);
    assert_eq!(letter["code"], "VALIDATION_ERROR");
    assert_eq!(
        letter["message"],
        "the quote opened on line 141 is never closed: the record runs to the end of the file (11 lines from there)"
    );

    // Early in the file, the same mistake leaves too few rows to learn from: the task fails, clearly.
    broken = lines.iter().map(|line| (*line).to_owned()).collect();
    broken[4] = broken[4].replacen(',', ",\"", 1);
    std::fs::write(&input, broken.join("\n") + "\n").unwrap();
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert_eq!(error.details["purpose"], "train on");
    assert!(
        error.message.contains(" usable row(s) to train on (1 bad); at least 10 are needed"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn too_few_rows_to_measure_accuracy_on_fail_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let eval = dir.path().join("eval.csv");
    std::fs::write(
        &eval,
        "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n",
    )
    .unwrap();
    let params = json!({ "input": iris(), "label": "species", "model_out": dir.path().join("m.json"), "eval_input": eval });
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert!(
        error.message.ends_with("has 1 usable row(s) to evaluate on (0 bad); at least 10 are needed"),
        "{}",
        error.message
    );

    // Thirty rows: a fifth held out is about six, too few to judge a model by.
    let small = dir.path().join("small.csv");
    let iris_text = std::fs::read_to_string(iris()).unwrap();
    let rows: Vec<&str> = iris_text.lines().collect();
    let picked: Vec<&str> = std::iter::once(rows[0]).chain(rows[1..].iter().step_by(5).copied()).collect();
    std::fs::write(&small, picked.join("\n") + "\n").unwrap();
    let params = json!({ "input": small, "label": "species", "model_out": dir.path().join("m.json") });
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert_eq!(error.details["purpose"], "hold out");
    assert!(
        error.message.ends_with("set holdout to 0 (or give eval_input) to train on every row"),
        "{}",
        error.message
    );
    let params =
        json!({ "input": small, "label": "species", "model_out": dir.path().join("m.json"), "holdout": 0 });
    complete(&params, &config(10)).await;
}

#[tokio::test]
async fn a_mini_batch_over_the_timeout_is_retried_from_the_last_checkpoint_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.csv");
    Generator::new(GeneratorConfig::binary(20_000, 20, 3)).write_file(&input).unwrap();
    let params = json!({ "input": input, "label": "label", "model_out": dir.path().join("m.json") });
    // Reading one mini-batch of 20,000 rows takes far longer than a millisecond.
    let slow = |max_retries| BatchConfig {
        batch_size: 20_000,
        timeout: std::time::Duration::from_millis(1),
        max_retries,
        ..config(10)
    };
    let started = std::time::Instant::now();
    let error = run(&params, &slow(2), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::TimeoutError);
    assert_eq!(error.message, "a mini-batch of the scan took longer than the timeout of 1ms, 3 time(s)");
    assert_eq!((error.details["attempts"].as_u64(), error.details["pass"].as_str()), (Some(3), Some("scan")));
    // Two backoffs, 100 ms then 200 ms (less up to a fifth of jitter), between the three attempts.
    assert!(started.elapsed() >= std::time::Duration::from_millis(240), "{:?}", started.elapsed());

    let error = run(&params, &slow(0), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.details["attempts"], 1);
    // A generous timeout lets the same task complete.
    let relaxed = BatchConfig { timeout: std::time::Duration::from_secs(60), ..slow(0) };
    let params =
        json!({ "input": input, "label": "label", "model_out": dir.path().join("m.json"), "epochs": 2 });
    complete(&params, &relaxed).await;
}

#[tokio::test]
async fn more_bad_rows_than_the_skip_limit_fail_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data.csv");
    std::fs::write(&input, "a,b,y\n1,2,p\n1,x,q\n2,1,q\n,1,p\n3,3,p\n").unwrap();
    let params =
        json!({ "input": input, "label": "y", "model_out": dir.path().join("m.json"), "holdout": 0.0 });
    let config = BatchConfig { skip_limit: Some(1), ..config(10) };
    let error = run(&params, &config, None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert!(error.message.starts_with("2 bad rows exceed the skip limit of 1"), "{}", error.message);
}

#[tokio::test]
async fn a_dataset_without_two_classes_or_the_label_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("one.csv");
    std::fs::write(&input, format!("a,y\n{}", "1,p\n2,p\n".repeat(6))).unwrap();
    let params =
        json!({ "input": input, "label": "y", "model_out": dir.path().join("m.json"), "holdout": 0.0 });
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert!(
        error.message.ends_with("has 1 class(es) in column `y`; training needs at least 2"),
        "{}",
        error.message
    );

    let params = json!({ "input": input, "label": "species", "model_out": dir.path().join("m.json") });
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ConfigurationError);
    assert_eq!(error.details["param"], "label");

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "a,y\n\n").unwrap();
    let params = json!({ "input": empty, "label": "y", "model_out": dir.path().join("m.json") });
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert!(error.message.ends_with("has no rows to train on (0 bad, 0 held out)"), "{}", error.message);

    let params = json!({ "input": dir.path().join("missing.csv"), "label": "y", "model_out": dir.path().join("m.json") });
    let error = run(&params, &config(10), None, Arc::new(MemoryControl::new())).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
}

// ---------------------------------------------------------------------------------------------------
// Determinism.

#[tokio::test]
async fn the_same_seed_gives_the_same_bits_whatever_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ten.csv");
    Generator::new(GeneratorConfig::blobs(12_000, 20, 10, 4)).write_file(&input).unwrap();
    let params = |name: &str, seed: u64| json!({ "input": input, "label": "label", "model_out": dir.path().join(name), "epochs": 2, "seed": seed });
    // 4,096-row mini-batches of 10 classes × 20 features are large enough to be split across threads.
    let one_thread = BatchConfig { batch_size: 4096, concurrency: 1, ..BatchConfig::default() };
    let three_threads = BatchConfig { concurrency: 3, ..one_thread.clone() };
    let (first, _) = complete(&params("first.json", 1), &one_thread).await;
    let (again, _) = complete(&params("again.json", 1), &one_thread).await;
    let (threaded, _) = complete(&params("threaded.json", 1), &three_threads).await;
    let (other_seed, _) = complete(&params("other.json", 2), &one_thread).await;

    let load = |name: &str| TrainedModel::load(&dir.path().join(name)).unwrap();
    assert_eq!(weight_bits(&load("first.json")), weight_bits(&load("again.json")));
    assert_eq!(weight_bits(&load("first.json")), weight_bits(&load("threaded.json")));
    assert_ne!(weight_bits(&load("first.json")), weight_bits(&load("other.json")));
    assert_eq!(first["epochs"], again["epochs"]);
    assert_eq!(first["epochs"], threaded["epochs"]);
    assert_ne!(first["rows"]["holdout"], json!(null));
    let holdout = accuracy(&other_seed, "holdout_accuracy");
    assert!((0.4..0.95).contains(&holdout), "ten overlapping blobs: hold-out accuracy {holdout}");
}

// ---------------------------------------------------------------------------------------------------
// Params.

#[test]
fn bad_params_are_refused_at_creation_naming_the_param() {
    let base = json!({ "input": "data.csv", "label": "y", "model_out": "model.json" });
    let with = |key: &str, value: Value| {
        let mut params = base.clone();
        if value.is_null() {
            params.as_object_mut().unwrap().remove(key);
        } else {
            params[key] = value;
        }
        params
    };
    let cases = [
        (with("label", Value::Null), "label", "is required"),
        (with("label", json!("")), "label", "must not be empty"),
        (with("input", Value::Null), "input", "is required"),
        (with("model_out", Value::Null), "model_out", "is required"),
        (with("epochs", json!(0)), "epochs", "must be at least 1, got 0"),
        (with("epochs", json!(-3)), "epochs", "must not be negative, got -3"),
        (with("epochs", json!(2.5)), "epochs", "must be a whole number, got 2.5"),
        (with("learning_rate", json!(0)), "learning_rate", "must be greater than 0, got 0.0"),
        (with("learning_rate", json!(-0.1)), "learning_rate", "must be greater than 0, got -0.1"),
        (with("learning_rate", json!("fast")), "learning_rate", "must be a number, got a string"),
        (with("l2", json!(-1)), "l2", "must not be negative, got -1.0"),
        (with("holdout", json!(1)), "holdout", "must be at least 0 and less than 1, got 1.0"),
        (with("holdout", json!(-0.1)), "holdout", "must be at least 0 and less than 1, got -0.1"),
        (with("features", json!([])), "features", "must not be empty"),
        (with("features", json!(["a", "a"])), "features", "names `a` twice"),
        (with("features", json!(["a", "y"])), "features", "must not contain the label `y`"),
        (with("input", json!("data.txt")), "input", "must end in .csv, .jsonl or .ndjson"),
        (with("format", json!("xml")), "format", "must be \"csv\" or \"jsonl\", got \"xml\""),
        (with("eval_input", json!("eval.parquet")), "eval_input", "must end in .csv"),
        (
            with("shuffle_batches", json!(1_000_000)),
            "shuffle_batches",
            "times batch_size (10) must be at most",
        ),
        (with("learning_rte", json!(0.1)), "learning_rte", "is not a known param"),
    ];
    for (params, param, reason) in cases {
        let error = TrainKind::new().validate(&params, &BatchConfig::default()).unwrap_err();
        assert_eq!(error.code, ErrorCode::ConfigurationError, "{params}");
        assert_eq!(error.details["param"], param, "{params}: {}", error.message);
        let text = error.details["reason"].as_str().unwrap();
        assert!(text.starts_with(reason), "{param}: {text:?} does not start with {reason:?}");
    }
    assert!(TrainKind::new().validate(&with("format", json!("csv")), &BatchConfig::default()).is_ok());
    assert!(
        TrainKind::new()
            .validate(&with("input", json!("rows.txt")).clone(), &BatchConfig::default())
            .is_err()
    );
    assert_eq!(TrainKind::new().task_type(), TaskType::Train);
}
