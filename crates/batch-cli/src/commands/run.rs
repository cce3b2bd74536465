//! `batch run <kind>`: create one task from the options, run it here with progress, report its end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use batch::model::{BatchConfig, CreateTaskRequest, TaskType};
use batch::prelude::BatchManager;
use serde_json::{Map, Value, json};

use crate::cli::{BatchProcessArgs, CommonRunArgs, RunKind, TrainArgs, YouzanArgs};
use crate::commands::{announce, finish_following};
use crate::failure::{CodedError, ManagerResultExt};
use crate::follow::View;
use crate::store::open_manager;

/// Runs `kind` on the store at `db`.
pub(crate) async fn run(db: &Path, kind: RunKind, view: View) -> anyhow::Result<ExitCode> {
    let (task_type, params, common) = match kind {
        RunKind::Train(args) => (TaskType::Train, train_params(&args)?, args.common),
        RunKind::YouzanOrder(args) => (TaskType::YouzanOrder, youzan_params(&args)?, args.common),
        RunKind::BatchProcess(args) => (TaskType::BatchProcess, batch_process_params(&args)?, args.common),
    };
    let config = batch_config(&task_type, &common)?;
    let manager = open_manager(db)?;
    let request = CreateTaskRequest::new(task_type).with_config(config).with_params(params);
    let exit = start_and_follow(&manager, request, common.json, view).await;
    manager.shutdown().await;
    exit
}

/// Creates the task, says so on stderr, runs it and follows it to its end.
pub(crate) async fn start_and_follow(
    manager: &BatchManager,
    request: CreateTaskRequest,
    json: bool,
    view: View,
) -> anyhow::Result<ExitCode> {
    let task_type = request.task_type.clone();
    let created = manager.create_task(request).await.coded()?;
    announce(&format!("task {} created ({task_type})", created.id));
    manager.process_task(&created.id).await.coded()?;
    finish_following(manager, created.id, &task_type.to_string(), json, view).await
}

/// The task's `BatchConfig` from the options, checked (a bad value names its option).
pub(crate) fn batch_config(task_type: &TaskType, common: &CommonRunArgs) -> anyhow::Result<BatchConfig> {
    let default_batch_size = if *task_type == TaskType::Train { 64 } else { 1000 };
    let config = BatchConfig {
        batch_size: common.batch_size.unwrap_or(default_batch_size),
        max_retries: common.max_retries,
        timeout: common.timeout,
        concurrency: common.concurrency,
        skip_limit: common.skip_limit,
        ..BatchConfig::default()
    };
    config.validate().map_err(|error| anyhow::Error::new(CodedError::from(error)))?;
    Ok(config)
}

/// `path` made absolute, so the task can be resumed from any folder.
pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).map_err(|error| {
        crate::failure::configuration(format!("cannot resolve the path {}: {error}", path.display()))
    })
}

/// `path` with its extension replaced by `suffix` (`out.jsonl` -> `out.dead_letters.jsonl`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}{suffix}"))
}

fn insert_path(params: &mut Map<String, Value>, name: &str, path: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = path {
        params.insert(name.to_owned(), json!(absolute(path)?));
    }
    Ok(())
}

fn train_params(args: &TrainArgs) -> anyhow::Result<Value> {
    let mut params = Map::new();
    insert_path(&mut params, "input", Some(&args.input))?;
    params.insert("label".to_owned(), json!(args.label));
    insert_path(&mut params, "model_out", Some(&args.model_out))?;
    insert_path(&mut params, "eval_input", args.eval_input.as_deref())?;
    insert_path(&mut params, "dead_letter", args.dead_letter.as_deref())?;
    if let Some(features) = &args.features {
        params.insert("features".to_owned(), json!(features));
    }
    for (name, value) in [
        ("epochs", args.epochs.map(|value| json!(value))),
        ("learning_rate", args.learning_rate.map(|value| json!(value))),
        ("l2", args.l2.map(|value| json!(value))),
        ("seed", args.seed.map(|value| json!(value))),
        ("holdout", args.holdout.map(|value| json!(value))),
    ] {
        if let Some(value) = value {
            params.insert(name.to_owned(), value);
        }
    }
    Ok(Value::Object(params))
}

fn youzan_params(args: &YouzanArgs) -> anyhow::Result<Value> {
    let mut params = Map::new();
    insert_path(&mut params, "input", Some(&args.input))?;
    insert_path(&mut params, "output", Some(&args.output))?;
    let dead_letter = args.dead_letter.clone().unwrap_or_else(|| beside(&args.output, ".dead_letters.jsonl"));
    insert_path(&mut params, "dead_letter", Some(&dead_letter))?;
    insert_path(&mut params, "rules", args.rules.as_deref())?;
    insert_path(&mut params, "provinces", args.provinces.as_deref())?;
    Ok(Value::Object(params))
}

fn batch_process_params(args: &BatchProcessArgs) -> anyhow::Result<Value> {
    let mut params = Map::new();
    insert_path(&mut params, "input", Some(&args.input))?;
    insert_path(&mut params, "output", Some(&args.output))?;
    let dead_letters = args.dead_letter.clone().unwrap_or_else(|| beside(&args.output, ".dead.jsonl"));
    insert_path(&mut params, "dead_letters", Some(&dead_letters))?;
    if let Some(filter) = &args.filter {
        params.insert("filter".to_owned(), json!(filter));
    }
    if let Some(select) = &args.select {
        params.insert("select".to_owned(), json!(select));
    }
    if !args.rename.is_empty() {
        params.insert("rename".to_owned(), json!(args.rename));
    }
    if let Some(dedup_key) = &args.dedup_key {
        params.insert("dedup_key".to_owned(), json!(dedup_key));
    }
    if let Some(group_by) = &args.group_by {
        params.insert("group_by".to_owned(), json!(group_by));
    }
    if let Some(aggregates) = &args.agg {
        params.insert("aggregates".to_owned(), json!(aggregates));
    }
    Ok(Value::Object(params))
}
