//! Quick start: a manager on a SQLite database in a temporary folder, a generated training set, a
//! `train` task created with a `BatchConfig`, processed, and followed until it ends.
//!
//! `cargo run -p batch --example quickstart`

#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use batch::prelude::*;
use batch::tasks::train::{Generator, GeneratorConfig, LABEL};

/// What the quick start ends with: the finished task and its result summary.
struct Finished {
    task: BatchTask,
    result: serde_json::Value,
}

/// Generates the data, runs the task in `dir`, and reports progress on stdout as it goes.
async fn run(dir: &Path) -> Result<Finished, Box<dyn Error>> {
    // The embedded store: one SQLite file, created and migrated on open.
    let store = SqliteStore::open(dir.join("batch.db"), SqliteOptions::default())?;
    let manager = BatchManager::new(Arc::new(store), builtin_registry(), ManagerConfig::default())?;

    // 5,000 rows, 4 features, 3 classes (Gaussian blobs), always the same for seed 7.
    let input = dir.join("points.csv");
    Generator::new(GeneratorConfig::blobs(5_000, 4, 3, 7)).write_file(&input)?;

    let config = BatchConfig { batch_size: 64, concurrency: 2, ..BatchConfig::default() };
    let params = serde_json::json!({
        "input": input,
        "label": LABEL,
        "model_out": dir.join("model.json"),
        "epochs": 5,
        "seed": 1,
    });
    let created = manager
        .create_task(CreateTaskRequest::new(TaskType::Train).with_config(config).with_params(params))
        .await?;
    println!("created task {} ({})", created.id, created.status);

    manager.process_task(&created.id).await?;
    let task = loop {
        let task = manager.get_task(&created.id).await?;
        if task.status.is_terminal() {
            break task;
        }
        let progress = &task.progress;
        println!(
            "{}: {} done, {:.0}% {}",
            task.status,
            progress.processed + progress.failed + progress.skipped,
            progress.percentage.unwrap_or(0.0),
            progress.message.as_deref().unwrap_or(""),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let result = manager.task_result(&task.id).await?.map(|record| record.result).unwrap_or_default();
    manager.shutdown().await;
    Ok(Finished { task, result })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let Finished { task, result } = run(dir.path()).await?;
    println!("task {} ended {}", task.id, task.status);
    if let Some(error) = &task.error {
        println!("error: {}: {}", error.code, error.message);
    }
    println!("hold-out accuracy: {}", result["holdout_accuracy"]);
    println!("result: {}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_quickstart_trains_a_model_that_learned() -> Result<(), Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let Finished { task, result } = run(dir.path()).await?;
        assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.error);
        let accuracy = result["holdout_accuracy"].as_f64().ok_or("no hold-out accuracy")?;
        assert!(accuracy > 0.8, "hold-out accuracy {accuracy}");
        assert!(dir.path().join("model.json").exists());
        Ok(())
    }
}
