//! Fills a SQLite task store with many tasks quickly, for the HTTP benchmarks of `batch serve`
//! (`GET /api/v1/tasks?limit=50` over 100,000 stored tasks).
//!
//! The tasks are `youzan_order` records, newest first like real ones: 94 % completed, 3 % failed,
//! 2 % cancelled, 1 % pending, with progress, error and timestamps filled in. They are inserted
//! through the store's own `insert_task` with many inserts in flight, so the store's writer commits
//! them in groups.
//!
//! Run: `cargo run --release -p benches --bin fill_store -- DB [COUNT]` (default 100,000).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Instant;

use batch_manager::store::TaskStore;
use batch_manager::store::sqlite::{SqliteOptions, SqliteStore};
use batch_model::{
    BatchTask, CreateTaskRequest, ErrorCode, Progress, TaskError, TaskId, TaskStatus, TaskType,
    TransitionCause,
};
use chrono::{TimeDelta, Utc};
use futures::StreamExt as _;

fn task(index: u64) -> Result<BatchTask, batch_model::ModelError> {
    let created_at =
        Utc::now() - TimeDelta::seconds(i64::try_from(100_000u64.saturating_sub(index)).unwrap_or(0));
    let request = CreateTaskRequest::new(TaskType::YouzanOrder).with_params(serde_json::json!({
        "input": format!("/data/trades-{index}.jsonl"),
        "output": format!("/data/orders-{index}.jsonl"),
        "dead_letter": format!("/data/orders-{index}.dead.jsonl"),
    }));
    let mut task = BatchTask::new(TaskId::new(), request, created_at)?;
    let status = match index % 100 {
        0 => TaskStatus::Pending,
        1..=3 => TaskStatus::Failed,
        4..=5 => TaskStatus::Cancelled,
        _ => TaskStatus::Completed,
    };
    if status != TaskStatus::Pending {
        task.transition(
            TaskStatus::Processing,
            TransitionCause::Requested,
            created_at + TimeDelta::milliseconds(5),
        )?;
        let finished_at = created_at + TimeDelta::milliseconds(900);
        task.transition(status, TransitionCause::Requested, finished_at)?;
        let total = 30_000;
        task.progress =
            Progress::compute(Some(total), 28_500, 1_500, 0, std::time::Duration::from_millis(895));
        task.progress.updated_at = finished_at;
        if status == TaskStatus::Failed {
            task.error = Some(TaskError::new(ErrorCode::StorageError, "cannot write the output: disk full"));
        } else if status == TaskStatus::Cancelled {
            task.error = Some(TaskError::new(ErrorCode::Cancelled, "stopped by request"));
        }
    }
    Ok(task)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(db) = args.next() else {
        eprintln!("usage: fill_store DB [COUNT]");
        std::process::exit(2);
    };
    let count: u64 = args.next().map(|text| text.parse()).transpose()?.unwrap_or(100_000);
    let store: Arc<dyn TaskStore> = Arc::new(SqliteStore::open(&db, SqliteOptions::default())?);
    let started = Instant::now();
    let inserted = futures::stream::iter(0..count)
        .map(|index| {
            let store = Arc::clone(&store);
            async move {
                let task = task(index).map_err(|error| error.to_string())?;
                store.insert_task(&task).await.map_err(|error| error.to_string())
            }
        })
        .buffer_unordered(512)
        .fold(Ok(0u64), |total, result| async move { Ok::<u64, String>(total? + u64::from(result.is_ok())) })
        .await?;
    println!("inserted {inserted} tasks into {db} in {:.1?}", started.elapsed());
    Ok(())
}
