//! `batch demo`: generates sample data for the three kinds and runs them side by side on
//! `DIR/batch.db` (or the store `--db` names), with live progress, then summarises each task.

use std::path::Path;
use std::process::ExitCode;

use batch::model::{CreateTaskRequest, ErrorCode, TaskType};
use serde_json::json;

use crate::cli::{DemoArgs, GenArgs, GenKind};
use crate::commands::generate::write_sample;
use crate::commands::run::absolute;
use crate::commands::{announce, print, report_unfinished};
use crate::failure::{ManagerResultExt, coded};
use crate::follow::{View, follow};
use crate::report::{Finished, documents};
use crate::store::{Access, StoreAddress, open_manager};

/// YouZan trades in the demo (5% malformed).
const TRADES: u64 = 30_000;
/// Rows of the demo's training set (3 classes, 8 features).
const TRAIN_ROWS: u64 = 20_000;
/// Generic records in the demo.
const RECORDS: u64 = 50_000;

/// Runs the demo in `args.dir`, on the store `db` when given (else `DIR/batch.db`).
pub(crate) async fn demo(args: DemoArgs, db: Option<&StoreAddress>, view: View) -> anyhow::Result<ExitCode> {
    if !(args.scale > 0.0 && args.scale <= 100.0) {
        return Err(crate::failure::configuration(format!(
            "--scale must be greater than 0 and at most 100, got {}",
            args.scale
        )));
    }
    let scaled = |count: u64| ((count as f64 * args.scale).round() as u64).max(10);
    let dir = absolute(&args.dir)?;
    let data = dir.join("data");
    let out = dir.join("out");
    announce(&format!("generating sample data in {}", data.display()));
    let sample = |kind, count, file: &str, ratio| {
        let args = GenArgs {
            kind,
            count,
            seed: 42,
            invalid_ratio: Some(ratio),
            features: 8,
            classes: 3,
            output: data.join(file),
        };
        write_sample(kind, &args, ratio)
    };
    sample(GenKind::YouzanOrder, scaled(TRADES), "trades.jsonl", 0.05)?;
    sample(GenKind::Train, scaled(TRAIN_ROWS), "train.csv", 0.001)?;
    sample(GenKind::BatchProcess, scaled(RECORDS), "records.jsonl", 0.02)?;
    let path = |folder: &Path, file: &str| folder.join(file);

    let requests = [
        (
            "train",
            CreateTaskRequest::new(TaskType::Train).with_params(json!({
                "input": path(&data, "train.csv"),
                "label": "label",
                "model_out": path(&out, "model.json"),
                "epochs": 5,
                "seed": 1,
            })),
        ),
        (
            "youzan_order",
            CreateTaskRequest::new(TaskType::YouzanOrder).with_params(json!({
                "input": path(&data, "trades.jsonl"),
                "output": path(&out, "orders.enriched.jsonl"),
                "dead_letter": path(&out, "orders.dead_letters.jsonl"),
            })),
        ),
        (
            "batch_process",
            CreateTaskRequest::new(TaskType::BatchProcess).with_params(json!({
                "input": path(&data, "records.jsonl"),
                "output": path(&out, "records.big.jsonl"),
                "dead_letter": path(&out, "records.dead_letters.jsonl"),
                "filter": "amount >= 100",
                "dedup_key": "id",
                "group_by": "region",
                "aggregates": ["count", "sum:amount", "avg:amount"],
            })),
        ),
    ];
    std::fs::create_dir_all(&out).map_err(|error| {
        coded(ErrorCode::StorageError, format!("cannot create the output folder {}: {error}", out.display()))
    })?;

    let db = db.cloned().unwrap_or_else(|| StoreAddress::Sqlite(dir.join("batch.db")));
    let manager = open_manager(&db, Access::Create)?;
    announce(&format!("task store {db}"));
    let mut followed = Vec::new();
    for (label, request) in requests {
        let created = manager.create_task(request).await.coded()?;
        announce(&format!("task {} created ({label})", created.id));
        manager.process_task(&created.id).await.coded()?;
        followed.push((created.id, label.to_owned()));
    }
    let tasks = follow(&manager, &followed, view).await?;
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(Finished::load(&manager, task).await?);
    }
    manager.shutdown().await;

    if args.json {
        print(&serde_json::to_string_pretty(&documents(&finished))?);
    } else {
        for one in &finished {
            print(&one.summary(false));
        }
        print(&format!("see the tasks again with: batch tasks list --db {db}"));
    }
    for one in &finished {
        report_unfinished(one);
    }
    let all_completed = finished.iter().all(|one| one.task.status == batch::model::TaskStatus::Completed);
    Ok(if all_completed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
