//! The kinds' side of partitions without a manager: split, run each partition, merge; the merged
//! files against one run's; a merge whose holder died after its final checkpoint, finished by the
//! next claim from that checkpoint alone; and the adoption of the first partition's output by the
//! merge, fenced against a stale merger (a [`Fence`] refuses commits as the store does).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ErrorCode, Partition, Progress, TaskError, TaskId,
    TaskType,
};
use batch_tasks::batch_process::BatchProcessKind;
use batch_tasks::records::staged_path;
use batch_tasks::testing::MemoryControl;
use batch_tasks::youzan::YouzanOrderKind;
use batch_tasks::youzan::generator::{GeneratorConfig, generate};
use batch_tasks::{JobContext, JobControl, JobOutcome, PartitionResult, TaskKind};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn task(params: Value, parent: Option<(TaskId, u32, u32)>) -> BatchTask {
    typed_task(TaskType::YouzanOrder, params, parent)
}

fn typed_task(task_type: TaskType, params: Value, parent: Option<(TaskId, u32, u32)>) -> BatchTask {
    let config = BatchConfig { batch_size: 100, concurrency: 2, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(task_type).with_config(config).with_params(params);
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
    // Split, and each partition run under a claim of its own.
    let case = Partitioned::youzan(3).await;
    assert_eq!(case.partitions[1].task.params["output"], json!(case.path("many.partition-2-of-3.jsonl")));
    let control = Arc::new(MemoryControl::new());

    // The merge under the parent's third claim: the files published, the partitions' removed.
    let merging =
        JobContext::new(case.parent.clone(), None, Arc::clone(&control) as Arc<dyn JobControl>).with_epoch(3);
    let JobOutcome::Completed { summary, progress } = case.merge(merging).await.unwrap() else {
        panic!("the merge did not complete");
    };
    assert_eq!(summary, case.one_result);
    assert_eq!(progress.done(), 3_000);
    assert_merged_as_one_run(case.dir.path());
    let final_checkpoint = control.last_checkpoint().unwrap();
    assert_eq!(final_checkpoint.sink["final"], true);
    assert_eq!(final_checkpoint.sink["epoch"], 3);

    // As if the merging holder had died between its final checkpoint and its renames: the merged
    // files under their staged names, and (partly) gone partition files. The next claim finishes
    // from the checkpoint alone.
    for name in ["many.jsonl", "many.dead.jsonl"] {
        let path = case.path(name);
        std::fs::rename(&path, staged_path(&path, 3)).unwrap();
    }
    let next = JobContext::new(
        case.parent.clone(),
        Some(final_checkpoint),
        Arc::clone(&control) as Arc<dyn JobControl>,
    )
    .with_epoch(4);
    let commits_before = control.checkpoints().len();
    let JobOutcome::Completed { summary: again, .. } = case.merge(next).await.unwrap() else {
        panic!("the second merge did not complete");
    };
    assert_eq!(again, case.one_result);
    assert_eq!(control.checkpoints().len(), commits_before, "nothing more to commit");
    assert_merged_as_one_run(case.dir.path());
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

// ---------------------------------------------------------------------------------------------------
// The merge adopts the first partition's output.

/// A store's fencing, in memory: a claim bumps the epoch, and a commit under another epoch is
/// refused (`INVALID_STATE`, as the store's lease-lost), as is one out of sequence.
#[derive(Default)]
struct Fence {
    epoch: AtomicU64,
    checkpoints: Mutex<Vec<Checkpoint>>,
}

impl Fence {
    /// A claim of the parent under `epoch`: its context, with the last committed checkpoint.
    fn claim(self: &Arc<Self>, task: &BatchTask, epoch: u64, gate: Option<Gate>) -> JobContext {
        self.epoch.store(epoch, Ordering::SeqCst);
        let control = FencedControl { fence: Arc::clone(self), epoch, gate, commits: AtomicU64::new(0) };
        JobContext::new(task.clone(), self.last(), Arc::new(control)).with_epoch(epoch)
    }

    fn checkpoints(&self) -> Vec<Checkpoint> {
        self.checkpoints.lock().unwrap().clone()
    }

    fn last(&self) -> Option<Checkpoint> {
        self.checkpoints().last().cloned()
    }
}

/// Holds a claim's commit number `at` (from 1) until released: the holder paused (SIGSTOP) there.
#[derive(Clone)]
struct Gate {
    at: u64,
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    fn at(at: u64) -> Gate {
        Gate { at, reached: Arc::new(Notify::new()), release: Arc::new(Notify::new()) }
    }
}

/// One claim's side of a [`Fence`].
struct FencedControl {
    fence: Arc<Fence>,
    epoch: u64,
    gate: Option<Gate>,
    commits: AtomicU64,
}

#[async_trait]
impl JobControl for FencedControl {
    async fn commit(&self, checkpoint: Checkpoint, _progress: Progress) -> Result<(), TaskError> {
        let commit = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(gate) = self.gate.as_ref().filter(|gate| gate.at == commit) {
            gate.reached.notify_one();
            gate.release.notified().await;
        }
        if self.fence.epoch.load(Ordering::SeqCst) != self.epoch {
            return Err(TaskError::new(ErrorCode::InvalidState, "the task's lease was lost"));
        }
        let mut checkpoints = self.fence.checkpoints.lock().unwrap();
        let expected = checkpoints.last().map_or(0, |last| last.sequence) + 1;
        if checkpoint.sequence != expected {
            return Err(TaskError::new(ErrorCode::StorageError, "a checkpoint out of sequence"));
        }
        let text = serde_json::to_string(&checkpoint).unwrap();
        checkpoints.push(serde_json::from_str(&text).unwrap());
        Ok(())
    }

    async fn report_progress(&self, _progress: Progress) {}

    fn stop_requested(&self) -> bool {
        false
    }

    fn cancellation_token(&self) -> CancellationToken {
        CancellationToken::new()
    }
}

/// A youzan_order task over generated trades, run once whole (`one.*`) and split in `count`
/// partitions, each run to completion: the parent (`many.*`) waits for its merge.
struct Partitioned {
    dir: tempfile::TempDir,
    kind: Arc<dyn TaskKind>,
    parent: BatchTask,
    partitions: Vec<PartitionResult>,
    one_result: Value,
}

impl Partitioned {
    async fn youzan(count: u32) -> Partitioned {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("trades.jsonl");
        generate(
            &GeneratorConfig { count: 3_000, seed: 11, invalid_ratio: 0.1 },
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
        let (one, many) = (params("one"), params("many"));
        Partitioned::run(dir, Arc::new(YouzanOrderKind::default()), TaskType::YouzanOrder, one, many, count)
            .await
    }

    async fn run(
        dir: tempfile::TempDir,
        kind: Arc<dyn TaskKind>,
        task_type: TaskType,
        one: Value,
        many: Value,
        count: u32,
    ) -> Partitioned {
        let (one_result, _) = run(&*kind, &typed_task(task_type.clone(), one, None), 0).await;
        let parent = typed_task(task_type.clone(), many, None);
        let control: Arc<dyn JobControl> = Arc::new(MemoryControl::new());
        let children = kind.split(&JobContext::new(parent.clone(), None, control), count).await.unwrap();
        assert_eq!(children.len(), count as usize);
        let mut partitions = Vec::new();
        for (index, params) in (0..).zip(children) {
            let mut child = typed_task(task_type.clone(), params, Some((parent.id, index, count)));
            let (result, progress) = run(&*kind, &child, 5).await;
            child.progress = progress;
            partitions.push(PartitionResult { task: child, result });
        }
        Partitioned { dir, kind, parent, partitions, one_result }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The first partition's output, the file a merge adopts.
    fn p0(&self) -> PathBuf {
        PathBuf::from(self.partitions[0].task.params["output"].as_str().unwrap())
    }

    async fn merge(&self, job: JobContext) -> Result<JobOutcome, TaskError> {
        self.kind.merge(job, self.partitions.clone()).await
    }

    /// A merge under `epoch` on a task of its own, paused at its commit number `at` (returns once
    /// it is there): a holder stopped (SIGSTOP) at that commit. Release the gate to go on.
    async fn paused_merge(
        &self,
        fence: &Arc<Fence>,
        epoch: u64,
        at: u64,
    ) -> (Gate, tokio::task::JoinHandle<Result<JobOutcome, TaskError>>) {
        let gate = Gate::at(at);
        let (kind, partitions) = (Arc::clone(&self.kind), self.partitions.clone());
        let job = fence.claim(&self.parent, epoch, Some(gate.clone()));
        let merge = tokio::spawn(async move { kind.merge(job, partitions).await });
        gate.reached.notified().await;
        (gate, merge)
    }

    /// The merge completed with one run's summary and files, and nothing else is left.
    fn assert_one_run(&self, outcome: Result<JobOutcome, TaskError>) {
        let JobOutcome::Completed { summary, .. } = outcome.unwrap() else { panic!("not completed") };
        assert_eq!(summary, self.one_result);
        assert_merged_as_one_run(self.dir.path());
    }
}

/// An adoption checkpoint, as a merge under `epoch` commits it before it renames `adopted`.
fn adoption_checkpoint(epoch: u64, adopted: &Path) -> Checkpoint {
    let len = std::fs::metadata(adopted).unwrap().len();
    Checkpoint {
        sequence: 1,
        source: Value::Null,
        sink: json!({ "epoch": epoch, "adopted": { "path": adopted, "len": len } }),
        counters: batch_model::Counters::default(),
        state: Value::Null,
        committed_at: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_youzan_merge_adopts_the_first_partitions_output_after_a_checkpoint_recording_it() {
    let case = Partitioned::youzan(3).await;
    let p0 = case.p0();
    let (inode, len0) = {
        let metadata = std::fs::metadata(&p0).unwrap();
        (metadata.ino(), metadata.len())
    };
    let fence = Arc::new(Fence::default());
    case.assert_one_run(case.merge(fence.claim(&case.parent, 1, None)).await);
    // Renamed, not copied: the published output is the first partition's file.
    assert_eq!(std::fs::metadata(case.path("many.jsonl")).unwrap().ino(), inode);
    let checkpoints = fence.checkpoints();
    assert_eq!(checkpoints.len(), 2);
    assert_eq!(checkpoints[0].sink, json!({ "epoch": 1, "adopted": { "path": p0, "len": len0 } }));
    assert_eq!(checkpoints[1].sink["final"], true);
    assert_eq!(checkpoints[1].sink["epoch"], 1);
}

// On a current-thread runtime: the adoption's commit is awaited from the merge's blocking thread.
#[tokio::test]
async fn a_batch_process_merge_without_dedup_or_groups_adopts_and_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trades.jsonl");
    let mut text = String::new();
    for idx in 0..4_000u64 {
        if idx % 97 == 0 {
            text.push_str("not json\n");
        } else {
            text.push_str(&format!("{{\"id\":{idx},\"amount\":{}}}\n", idx % 500));
        }
    }
    std::fs::write(&input, text).unwrap();
    let params = |name: &str| {
        json!({
            "input": input,
            "output": dir.path().join(format!("{name}.jsonl")),
            "dead_letter": dir.path().join(format!("{name}.dead.jsonl")),
            "filter": "amount >= 100",
        })
    };
    let (one, many) = (params("one"), params("many"));
    let kind = Arc::new(BatchProcessKind::default());
    let case = Partitioned::run(dir, kind, TaskType::BatchProcess, one, many, 3).await;
    let inode = std::fs::metadata(case.p0()).unwrap().ino();
    let fence = Arc::new(Fence::default());
    case.assert_one_run(case.merge(fence.claim(&case.parent, 1, None)).await);
    assert_eq!(std::fs::metadata(case.path("many.jsonl")).unwrap().ino(), inode);
    assert_eq!(fence.checkpoints().len(), 2, "the adoption, then the final checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_that_died_after_adopting_and_appending_part_is_redone_from_the_adopted_bytes() {
    let case = Partitioned::youzan(3).await;
    let p0 = case.p0();
    let output = case.path("many.jsonl");
    // Epoch 1's steps, by hand: the adoption committed, P0 renamed, part of P1 appended; then it died.
    let fence = Arc::new(Fence::default());
    let first_claim = fence.claim(&case.parent, 1, None);
    first_claim
        .control()
        .commit(adoption_checkpoint(1, &p0), Progress::zero(chrono::Utc::now()))
        .await
        .unwrap();
    let staged_1 = staged_path(&output, 1);
    std::fs::rename(&p0, &staged_1).unwrap();
    let p1 = std::fs::read(case.partitions[1].task.params["output"].as_str().unwrap()).unwrap();
    let mut partial = std::fs::OpenOptions::new().append(true).open(&staged_1).unwrap();
    std::io::Write::write_all(&mut partial, &p1[..p1.len() / 2]).unwrap();
    drop(partial);

    let outcome = case.merge(fence.claim(&case.parent, 2, None)).await;
    // Its own file, published; epoch 1's removed with the partitions' files.
    case.assert_one_run(outcome);
    let checkpoints = fence.checkpoints();
    assert_eq!(checkpoints.len(), 2, "epoch 2 does not adopt: no second adoption checkpoint");
    assert_eq!((checkpoints[1].sink["epoch"].as_u64(), checkpoints[1].sequence), (Some(2), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_that_died_after_the_adoption_checkpoint_but_before_the_rename_copies_from_the_partition() {
    let case = Partitioned::youzan(2).await;
    let p0 = case.p0();
    let inode = std::fs::metadata(&p0).unwrap().ino();
    let fence = Arc::new(Fence::default());
    let first_claim = fence.claim(&case.parent, 1, None);
    first_claim
        .control()
        .commit(adoption_checkpoint(1, &p0), Progress::zero(chrono::Utc::now()))
        .await
        .unwrap();

    case.assert_one_run(case.merge(fence.claim(&case.parent, 2, None)).await);
    assert_ne!(std::fs::metadata(case.path("many.jsonl")).unwrap().ino(), inode, "copied, not adopted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_file_found_nowhere_is_a_storage_error_and_nothing_is_published() {
    let case = Partitioned::youzan(2).await;
    let p0 = case.p0();
    let fence = Arc::new(Fence::default());
    let first_claim = fence.claim(&case.parent, 1, None);
    first_claim
        .control()
        .commit(adoption_checkpoint(1, &p0), Progress::zero(chrono::Utc::now()))
        .await
        .unwrap();
    std::fs::remove_file(&p0).unwrap();

    let error = case.merge(fence.claim(&case.parent, 2, None)).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::StorageError, "{error:?}");
    assert!(error.message.contains("many.partition-1-of-2.jsonl"), "{}", error.message);
    assert!(error.message.contains("neither file exists"), "{}", error.message);
    assert!(!case.path("many.jsonl").exists() && !case.path("many.dead.jsonl").exists());
    assert_eq!(fence.checkpoints().len(), 1, "no final checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_adopter_that_wakes_and_appends_changes_nothing_and_its_final_commit_is_refused() {
    let case = Partitioned::youzan(3).await;
    let output = case.path("many.jsonl");
    let staged_1 = staged_path(&output, 1);
    let fence = Arc::new(Fence::default());
    // Epoch 1 adopts, appends the rest, and pauses at its final commit (its second).
    let (gate, stale) = case.paused_merge(&fence, 1, 2).await;
    // What it holds open; it writes more before epoch 2 claims the task, and more after.
    let mut held = std::fs::OpenOptions::new().append(true).open(&staged_1).unwrap();
    std::io::Write::write_all(&mut held, b"{\"stale\":\"before\"}\n").unwrap();

    let newer = fence.claim(&case.parent, 2, None);
    assert!(newer.checkpoint().unwrap().sink.get("adopted").is_some());
    case.assert_one_run(case.merge(newer).await);
    std::io::Write::write_all(&mut held, b"{\"stale\":\"after\"}\n").unwrap();
    assert!(!staged_1.exists(), "epoch 2's publish removed epoch 1's file");

    gate.release.notify_one();
    let refused = stale.await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidState, "{refused:?}");
    assert_merged_as_one_run(case.dir.path());
    let checkpoints = fence.checkpoints();
    assert_eq!(checkpoints.len(), 2, "epoch 1's adoption, epoch 2's final; nothing of epoch 1's after");
    assert_eq!(checkpoints[1].sink["epoch"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merger_stale_before_its_adoption_commit_renames_nothing() {
    let case = Partitioned::youzan(2).await;
    let p0 = case.p0();
    let inode = std::fs::metadata(&p0).unwrap().ino();
    let fence = Arc::new(Fence::default());
    // Epoch 1 pauses at its first commit, the adoption's: it has renamed nothing.
    let (gate, stale) = case.paused_merge(&fence, 1, 1).await;
    // Epoch 2 finds no adoption recorded and adopts P0 itself.
    case.assert_one_run(case.merge(fence.claim(&case.parent, 2, None)).await);
    assert_eq!(std::fs::metadata(case.path("many.jsonl")).unwrap().ino(), inode);

    gate.release.notify_one();
    let refused = stale.await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidState, "{refused:?}");
    assert_merged_as_one_run(case.dir.path());
    assert_eq!(
        fence.checkpoints().iter().map(|checkpoint| checkpoint.sink["epoch"].as_u64()).collect::<Vec<_>>(),
        [Some(2), Some(2)]
    );
}
