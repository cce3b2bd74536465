//! The kinds' side of partitions without a manager: split, run each partition, merge; the merged
//! files against one run's; and a merge whose holder died after its final checkpoint, finished by
//! the next claim from that checkpoint alone.

use std::path::Path;
use std::sync::Arc;

use batch_model::{BatchConfig, BatchTask, CreateTaskRequest, Partition, Progress, TaskId, TaskType};
use batch_tasks::records::staged_path;
use batch_tasks::testing::MemoryControl;
use batch_tasks::youzan::YouzanOrderKind;
use batch_tasks::youzan::generator::{GeneratorConfig, generate};
use batch_tasks::{JobContext, JobControl, JobOutcome, PartitionResult, TaskKind};
use serde_json::{Value, json};

fn task(params: Value, parent: Option<(TaskId, u32, u32)>) -> BatchTask {
    let config = BatchConfig { batch_size: 100, concurrency: 2, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::YouzanOrder).with_config(config).with_params(params);
    let mut task = BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap();
    if let Some((parent, index, count)) = parent {
        task.parent_id = Some(parent);
        task.partition = Some(Partition { index, count });
    }
    task
}

/// Runs `task` to completion under `epoch`; its result and final progress.
async fn run(kind: &dyn TaskKind, task: &BatchTask, epoch: u64) -> (Value, Progress) {
    let control: Arc<dyn JobControl> = Arc::new(MemoryControl::new());
    match kind.run(JobContext::new(task.clone(), None, control).with_epoch(epoch)).await.unwrap() {
        JobOutcome::Completed { summary, progress } => (summary, progress),
        other => panic!("{other:?}"),
    }
}

/// The partitioned run's files (`many.*`) are byte for byte the single run's (`one.*`), and the
/// partitions' files are gone.
fn assert_merged_as_one_run(dir: &Path) {
    for name in ["jsonl", "dead.jsonl"] {
        let one = std::fs::read(dir.join(format!("one.{name}"))).unwrap();
        assert!(one == std::fs::read(dir.join(format!("many.{name}"))).unwrap(), "{name}");
    }
    assert_eq!(
        files_in(dir),
        ["many.dead.jsonl", "many.jsonl", "one.dead.jsonl", "one.jsonl", "trades.jsonl"]
    );
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_youzan_merge_that_died_after_its_final_checkpoint_is_finished_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trades.jsonl");
    generate(
        &GeneratorConfig { count: 3_000, seed: 9, invalid_ratio: 0.1 },
        std::fs::File::create(&input).unwrap(),
    )
    .unwrap();
    let params = |name: &str| {
        json!({
            "input": input,
            "output": dir.path().join(format!("{name}.jsonl")),
            "dead_letter": dir.path().join(format!("{name}.dead.jsonl")),
        })
    };
    let kind = YouzanOrderKind::default();
    let (one_result, _) = run(&kind, &task(params("one"), None), 0).await;

    // Split under the parent's first claim, run each partition under claims of their own.
    let parent = task(params("many"), None);
    let control = Arc::new(MemoryControl::new());
    let first_claim =
        JobContext::new(parent.clone(), None, Arc::clone(&control) as Arc<dyn JobControl>).with_epoch(1);
    let children = kind.split(&first_claim, 3).await.unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(children[1]["output"], json!(dir.path().join("many.partition-2-of-3.jsonl")));
    let mut partitions = Vec::new();
    for (index, params) in (0..).zip(children) {
        let mut child = task(params, Some((parent.id, index, 3)));
        let (result, progress) = run(&kind, &child, 2).await;
        child.progress = progress;
        partitions.push(PartitionResult { task: child, result });
    }

    // The merge under the parent's third claim: the files published, the partitions' removed.
    let merging =
        JobContext::new(parent.clone(), None, Arc::clone(&control) as Arc<dyn JobControl>).with_epoch(3);
    let JobOutcome::Completed { summary, progress } = kind.merge(merging, partitions.clone()).await.unwrap()
    else {
        panic!("the merge did not complete");
    };
    assert_eq!(summary, one_result);
    assert_eq!(progress.done(), 3_000);
    assert_merged_as_one_run(dir.path());
    let final_checkpoint = control.last_checkpoint().unwrap();
    assert_eq!(final_checkpoint.sink["final"], true);
    assert_eq!(final_checkpoint.sink["epoch"], 3);

    // As if the merging holder had died between its final checkpoint and its renames: the merged
    // files under their staged names, and (partly) gone partition files. The next claim finishes
    // from the checkpoint alone.
    for name in ["many.jsonl", "many.dead.jsonl"] {
        let path = dir.path().join(name);
        std::fs::rename(&path, staged_path(&path, 3)).unwrap();
    }
    let next = JobContext::new(parent, Some(final_checkpoint), Arc::clone(&control) as Arc<dyn JobControl>)
        .with_epoch(4);
    let commits_before = control.checkpoints().len();
    let JobOutcome::Completed { summary: again, .. } = kind.merge(next, partitions).await.unwrap() else {
        panic!("the second merge did not complete");
    };
    assert_eq!(again, one_result);
    assert_eq!(control.checkpoints().len(), commits_before, "nothing more to commit");
    assert_merged_as_one_run(dir.path());
}

#[tokio::test]
async fn only_a_regular_file_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let kind = YouzanOrderKind::default();
    // A pipe: splitting would consume it.
    let fifo = dir.path().join("trades.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let params = json!({ "input": fifo, "output": dir.path().join("out.jsonl") });
    kind.validate(&params, &BatchConfig::default()).unwrap();
    let error = kind.validate(&params, &BatchConfig { partitions: 2, ..BatchConfig::default() }).unwrap_err();
    assert_eq!(error.code, batch_model::ErrorCode::ConfigurationError);
    assert_eq!(error.details["param"], "partitions", "{error}");
    assert!(error.message.ends_with("is not a regular file, so it cannot be split"), "{error}");
    let control: Arc<dyn JobControl> = Arc::new(MemoryControl::new());
    let error = kind.split(&JobContext::new(task(params, None), None, control), 2).await.unwrap_err();
    assert_eq!(error.code, batch_model::ErrorCode::ConfigurationError);
    assert!(
        error.message.contains("is not a regular file, so it cannot be split into partitions"),
        "{error}"
    );
}
