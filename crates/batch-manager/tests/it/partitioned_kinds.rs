//! The built-in kinds partitioned through the manager: `youzan_order` and `batch_process` tasks
//! split into partitions that several workers run, merged into files byte-identical to an
//! unpartitioned run's, with equal summaries and counts; and a partition whose worker process is
//! killed (SIGKILL) resumes elsewhere and still merges exactly.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::TaskStore;
use batch_manager::store::memory::MemoryStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_manager::{BatchManager, ManagerConfig};
use batch_model::{
    BatchConfig, BatchTask, CreateTaskRequest, ListTasksRequest, TaskId, TaskStatus, TaskType,
};
use batch_tasks::youzan::generator::{GeneratorConfig, generate};
use serde_json::{Value, json};

/// A worker with the built-in kinds on `store`.
fn worker(store: &Arc<dyn TaskStore>, name: &str, lease_ttl: Duration) -> BatchManager {
    let config = ManagerConfig::default()
        .with_worker_id(name)
        .with_lease_ttl(lease_ttl)
        .with_poll_interval(Duration::from_millis(20))
        .with_max_concurrent_tasks(2);
    BatchManager::new(Arc::clone(store), batch_tasks::builtin_registry(), config).unwrap()
}

/// Runs `request` to its end on two workers sharing `store`; the task and its result.
async fn run_on_two_workers(store: &Arc<dyn TaskStore>, request: CreateTaskRequest) -> (BatchTask, Value) {
    let workers = [worker(store, "w1", Duration::from_secs(5)), worker(store, "w2", Duration::from_secs(5))];
    let created = workers[0].create_task(request).await.unwrap();
    let loops: Vec<_> = workers
        .iter()
        .map(|manager| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.run_worker().await })
        })
        .collect();
    let task = tokio::time::timeout(Duration::from_secs(120), workers[0].wait(&created.id))
        .await
        .expect("the task ends within 2 minutes")
        .unwrap();
    let result = workers[0].task_result(&task.id).await.unwrap().map(|record| record.result);
    for manager in &workers {
        manager.shutdown().await;
    }
    for handle in loops {
        handle.await.unwrap().unwrap();
    }
    assert_eq!((task.status, &task.error), (TaskStatus::Completed, &None), "{}", task.id);
    (task, result.unwrap_or(Value::Null))
}

/// The same task with `params` and `config`, once as one task and once in `partitions` partitions;
/// asserts identical files, equal results and counts, and that no partition file is left.
async fn check_partitioned_equals_one_run(
    dir: &Path,
    task_type: TaskType,
    params: impl Fn(&str) -> Value,
    config: BatchConfig,
    partitions: u32,
) -> Value {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let single = CreateTaskRequest::new(task_type.clone())
        .with_config(BatchConfig { partitions: 1, ..config.clone() })
        .with_params(params("one"));
    let (one, one_result) = run_on_two_workers(&store, single).await;
    let split = CreateTaskRequest::new(task_type)
        .with_config(BatchConfig { partitions, ..config })
        .with_params(params("many"));
    let (many, many_result) = run_on_two_workers(&store, split).await;

    let children = store
        .list_tasks(&ListTasksRequest { parent_id: Some(many.id), ..ListTasksRequest::default() })
        .await
        .unwrap();
    assert_eq!(children.total, u64::from(partitions), "the input is large enough for every partition");
    assert_eq!(many_result, one_result, "the merged summary is the one run's");
    assert_eq!(
        (many.progress.processed, many.progress.failed, many.progress.skipped),
        (one.progress.processed, one.progress.failed, one.progress.skipped),
        "the merged counts are the one run's"
    );
    assert_eq!(many.progress.total, one.progress.total);
    for (name, key) in [("output", "output"), ("dead letters", "dead_letter")] {
        let one_file = PathBuf::from(params("one")[key].as_str().unwrap());
        let many_file = PathBuf::from(params("many")[key].as_str().unwrap());
        let (one_bytes, many_bytes) = (std::fs::read(&one_file).unwrap(), std::fs::read(&many_file).unwrap());
        assert!(
            one_bytes == many_bytes,
            "the merged {name} differs from the one run's ({})",
            many_file.display()
        );
    }
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partition") || name.ends_with(".part"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "partition and staged files left behind: {left:?}");
    one_result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn youzan_in_four_partitions_with_invalid_records_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trades.jsonl");
    let generated = GeneratorConfig { count: 6_000, seed: 11, invalid_ratio: 0.05 };
    let stats = generate(&generated, std::fs::File::create(&input).unwrap()).unwrap();
    let params = |name: &str| {
        json!({
            "input": input,
            "output": dir.path().join(format!("{name}.enriched.jsonl")),
            "dead_letter": dir.path().join(format!("{name}.invalid.jsonl")),
        })
    };
    let config = BatchConfig { batch_size: 250, concurrency: 2, ..BatchConfig::default() };
    let result = check_partitioned_equals_one_run(dir.path(), TaskType::YouzanOrder, params, config, 4).await;
    assert_eq!(result, serde_json::to_value(&stats.expected).unwrap(), "and both are the generator's");
    assert!(stats.expected.invalid > 100, "invalid records in every partition");
}

/// JSON-lines records whose ids repeat across the whole file (so duplicates span partitions),
/// with rows failing the filter, rows without the key and rows whose amount is not a number.
fn write_records(path: &Path, count: u64) {
    let regions = ["华东", "华北", "华南", "西南"];
    let mut text = String::new();
    for idx in 0..count {
        let record = match idx % 97 {
            13 => json!({ "amount": idx % 500, "region": "华东" }),
            41 => json!({ "id": idx % 1_500, "amount": "n/a", "region": "华北" }),
            _ => json!({
                "id": (idx * 7) % 1_500,
                "amount": format!("{}.{:02}", idx % 500, idx % 100),
                "region": regions[(idx % 4) as usize],
                "note": format!("record {idx}"),
            }),
        };
        writeln!(text, "{record}").unwrap();
        if idx % 211 == 0 {
            text.push('\n');
        }
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_process_with_filter_dedup_and_group_by_in_four_partitions_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    write_records(&input, 8_000);
    let config = BatchConfig { batch_size: 300, concurrency: 2, ..BatchConfig::default() };
    // Each shape merges its own way: group rows recomputed, rows selected by key, rows concatenated.
    let shapes = [
        (
            "grouped",
            json!({ "filter": "amount >= 10", "dedup_key": "id", "group_by": "region",
                            "aggregates": ["count", "sum:amount", "min:amount", "max:amount", "avg:amount"] }),
        ),
        (
            "grouped_no_dedup",
            json!({ "filter": "amount >= 10", "group_by": "region", "aggregates": ["count", "sum:amount"] }),
        ),
        (
            "deduplicated",
            json!({ "filter": "amount >= 10", "dedup_key": "id", "select": ["id", "amount", "region"] }),
        ),
        ("filtered", json!({ "filter": "amount >= 250" })),
    ];
    for (shape, extra) in shapes {
        let params = |name: &str| {
            let mut params = json!({
                "input": input,
                "output": dir.path().join(format!("{shape}.{name}.jsonl")),
                "dead_letter": dir.path().join(format!("{shape}.{name}.dead.jsonl")),
            });
            params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            params
        };
        let result =
            check_partitioned_equals_one_run(dir.path(), TaskType::BatchProcess, params, config.clone(), 4)
                .await;
        if shape == "deduplicated" {
            // 1,500 ids repeat all along the file: most rows are duplicates of rows in earlier partitions.
            let distinct = result["dedup"]["distinct_keys"].as_u64().unwrap();
            assert!((1_400..=1_500).contains(&distinct), "{result}");
            assert!(result["dedup"]["duplicates"].as_u64().unwrap() > 4_000, "{result}");
        }
        if shape == "grouped" {
            assert_eq!(result["groups"], 4, "{result}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_process_csv_with_quoted_multi_line_fields_in_three_partitions_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.csv");
    let mut text = String::from("id,amount,region,note\n");
    for idx in 0..3_000u64 {
        let note = match idx % 5 {
            0 => format!("\"line one of {idx}\nline two, with a comma\nand \"\"quotes\"\"\""),
            1 => format!("\"{idx}\n\""),
            _ => format!("plain {idx}"),
        };
        let row = if idx % 173 == 0 {
            format!("{},{}\n", idx % 700, idx) // the wrong width: a dead letter
        } else {
            format!("{},{}.5,{},{note}\n", (idx * 3) % 700, idx % 300, ["华东", "华北"][(idx % 2) as usize])
        };
        text.push_str(&row);
    }
    std::fs::write(&input, text).unwrap();
    let config = BatchConfig { batch_size: 100, concurrency: 2, ..BatchConfig::default() };
    for (shape, extra) in [
        ("rows", json!({ "dedup_key": "id" })),
        ("groups", json!({ "dedup_key": "id", "group_by": "region", "aggregates": ["count", "avg:amount"] })),
    ] {
        let params = |name: &str| {
            let mut params = json!({
                "input": input,
                "output": dir.path().join(format!("{shape}.{name}.jsonl")),
                "dead_letter": dir.path().join(format!("{shape}.{name}.dead.jsonl")),
            });
            params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            params
        };
        let result =
            check_partitioned_equals_one_run(dir.path(), TaskType::BatchProcess, params, config.clone(), 3)
                .await;
        assert_eq!(result["dedup"]["distinct_keys"], 700, "{result}");
    }
    // The dead letters name the lines where the bad rows start in the whole file.
    let dead = std::fs::read_to_string(dir.path().join("rows.many.dead.jsonl")).unwrap();
    let lines: Vec<u64> = dead
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines.len(), 18);
    assert_eq!(lines[0], 2, "row 0 is on line 2");
}

// ---------------------------------------------------------------------------------------------------
// A partition's worker killed.

/// Set in a child process: the SQLite store whose tasks it works on.
const CHILD_ENV: &str = "BATCH_MANAGER_PARTITION_CHILD";

/// The child's test, as the test harness names it.
const CHILD_TEST: &str = "partitioned_kinds::child_works_on_the_store";

/// The lease of the workers in the kill test: a killed worker's partition is taken over after it.
const LEASE_TTL: Duration = Duration::from_secs(1);

/// In a child process (when [`CHILD_ENV`] is set): a worker on the shared store, until killed.
/// Without the variable it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_works_on_the_store() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(db, SqliteOptions::default()).unwrap());
    let manager = worker(&store, &format!("child-{}", std::process::id()), LEASE_TTL);
    manager.run_worker().await.unwrap();
}

fn spawn_child(db: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_worker_is_killed_resumes_elsewhere_and_merges_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trades.jsonl");
    let generated = GeneratorConfig { count: 30_000, seed: 5, invalid_ratio: 0.03 };
    generate(&generated, std::fs::File::create(&input).unwrap()).unwrap();
    let params = |name: &str| {
        json!({
            "input": input,
            "output": dir.path().join(format!("{name}.enriched.jsonl")),
            "dead_letter": dir.path().join(format!("{name}.invalid.jsonl")),
        })
    };
    let config = BatchConfig { batch_size: 200, concurrency: 1, ..BatchConfig::default() };

    // The reference: one run, in memory.
    let memory: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let single =
        CreateTaskRequest::new(TaskType::YouzanOrder).with_config(config.clone()).with_params(params("one"));
    let (one, one_result) = run_on_two_workers(&memory, single).await;

    // The partitioned task on SQLite: a child process works on it until it has committed a few
    // checkpoints of a partition, and is killed.
    let db = dir.path().join("tasks.db");
    let store: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
    let here = worker(&store, "here", LEASE_TTL);
    let request = CreateTaskRequest::new(TaskType::YouzanOrder)
        .with_config(BatchConfig { partitions: 4, ..config })
        .with_params(params("many"));
    let parent = here.create_task(request).await.unwrap().id;
    let mut child = spawn_child(&db);
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_partition = loop {
        assert!(child.try_wait().unwrap().is_none(), "the worker process exited by itself");
        assert!(Instant::now() < deadline, "no partition got three checkpoints");
        if let Some(id) = partition_with_checkpoints(&*store, parent, 3).await {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let stranded = store.task(&killed_partition).await.unwrap().unwrap();
    assert_eq!(stranded.status, TaskStatus::Processing, "killed mid-partition");

    // Two workers here take the partitions over (the killed one once its lease expired) and merge.
    let workers = [here, worker(&store, "there", LEASE_TTL)];
    let loops: Vec<_> = workers
        .iter()
        .map(|manager| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.run_worker().await })
        })
        .collect();
    let many =
        tokio::time::timeout(Duration::from_secs(120), workers[0].wait(&parent)).await.unwrap().unwrap();
    assert_eq!((many.status, &many.error), (TaskStatus::Completed, &None));
    let resumed = store.task(&killed_partition).await.unwrap().unwrap();
    assert_eq!(resumed.status, TaskStatus::Completed);
    let many_result = workers[0].task_result(&parent).await.unwrap().unwrap().result;
    for manager in &workers {
        manager.shutdown().await;
    }
    for handle in loops {
        handle.await.unwrap().unwrap();
    }
    assert_eq!(many_result, one_result);
    assert_eq!(
        (many.progress.processed, many.progress.failed),
        (one.progress.processed, one.progress.failed)
    );
    for key in ["output", "dead_letter"] {
        let one_bytes = std::fs::read(params("one")[key].as_str().unwrap()).unwrap();
        let many_bytes = std::fs::read(params("many")[key].as_str().unwrap()).unwrap();
        assert!(one_bytes == many_bytes, "the merged {key} differs from the one run's");
    }
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partition") || name.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A partition of `parent` with at least `n` checkpoints, if any.
async fn partition_with_checkpoints(store: &dyn TaskStore, parent: TaskId, n: u64) -> Option<TaskId> {
    let children = store
        .list_tasks(&ListTasksRequest { parent_id: Some(parent), ..ListTasksRequest::default() })
        .await
        .ok()?;
    for child in children.tasks {
        let sequence = store.checkpoint(&child.id).await.ok()??.sequence;
        if sequence >= n && child.status == TaskStatus::Processing {
            return Some(child.id);
        }
    }
    None
}
