//! What the command prints about a finished task: one JSON document (`--json`) or a short human
//! summary, and the exit code the task's end maps to.

use std::process::ExitCode;

use batch::manager::store::TaskResultRecord;
use batch::model::{BatchTask, TaskStatus, TaskType};
use batch::prelude::BatchManager;
use serde_json::{Value, json};

use crate::failure::ManagerResultExt;
use crate::follow::done;

/// A task and, once it finished, its result record.
pub(crate) struct Finished {
    pub(crate) task: BatchTask,
    pub(crate) result: Option<TaskResultRecord>,
}

impl Finished {
    /// Loads `task`'s result record.
    pub(crate) async fn load(manager: &BatchManager, task: BatchTask) -> anyhow::Result<Finished> {
        let result = manager.task_result(&task.id).await.coded()?;
        Ok(Finished { task, result })
    }

    /// The task as JSON, with `metrics` and `result` (the kind's summary) added; both `null` before
    /// the task finished.
    pub(crate) fn document(&self) -> Value {
        let mut document = serde_json::to_value(&self.task).unwrap_or(Value::Null);
        if let Value::Object(object) = &mut document {
            let metrics = self.result.as_ref().and_then(|record| serde_json::to_value(&record.metrics).ok());
            object.insert("metrics".to_owned(), metrics.unwrap_or(Value::Null));
            object.insert(
                "result".to_owned(),
                self.result.as_ref().map_or(Value::Null, |record| record.result.clone()),
            );
        }
        document
    }

    /// 0 for a completed task (dead-lettered records included), 1 otherwise.
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.task.status == TaskStatus::Completed { ExitCode::SUCCESS } else { ExitCode::from(1) }
    }

    /// A short human summary: status and duration, its error when `with_error` (a command that
    /// reports the error on its own `error:` line leaves it out, so it is printed once), items,
    /// throughput, outputs, the kind's figures.
    pub(crate) fn summary(&self, with_error: bool) -> String {
        let task = &self.task;
        let progress = &task.progress;
        let mut lines = Vec::new();
        let took = match (task.started_at, task.completed_at) {
            (Some(started), Some(completed)) => (completed - started)
                .to_std()
                .map(|took| format!(" in {:.2}s", took.as_secs_f64()))
                .unwrap_or_default(),
            _ => String::new(),
        };
        lines.push(format!("task {} ({}): {}{took}", task.id, task.task_type, task.status));
        if let Some(error) = task.error.as_ref().filter(|_| with_error) {
            lines.push(format!("  error        {}: {}", error.code, error.message));
        }
        let total = progress.total.map_or_else(String::new, |total| format!(" of {total}"));
        lines.push(format!(
            "  items        {} processed, {} failed, {} skipped{total}",
            progress.processed, progress.failed, progress.skipped
        ));
        let throughput = match &self.result {
            Some(record) if !record.metrics.duration.is_zero() => {
                Some(done(progress) as f64 / record.metrics.duration.as_secs_f64())
            }
            _ => progress.throughput,
        };
        if let Some(throughput) = throughput {
            lines.push(format!("  throughput   {throughput:.0} items/s"));
        }
        let params = &task.params;
        let result = self.result.as_ref().map_or(&Value::Null, |record| &record.result);
        match task.task_type {
            TaskType::Train => {
                push_path(&mut lines, "model", &params["model_out"]);
                push_path(&mut lines, "dead letters", &result["dead_letters"]);
                if let Some(accuracy) = result["holdout_accuracy"].as_f64() {
                    lines.push(format!("  accuracy     {:.4} on the hold-out rows", accuracy));
                }
                if let Some(accuracy) = result["eval_accuracy"].as_f64() {
                    lines.push(format!("  eval         {:.4} on the eval input", accuracy));
                }
            }
            TaskType::YouzanOrder => {
                push_path(&mut lines, "output", &params["output"]);
                push_path(&mut lines, "dead letters", dead_letter_param(params));
                if let Some(regions) = result["regions"].as_object() {
                    lines.push(format!(
                        "  orders       {} valid, {} invalid; per region:",
                        result["valid"], result["invalid"]
                    ));
                    for (region, totals) in regions {
                        lines.push(format!(
                            "    {region:<6} {:>7} orders  GMV {:>14}",
                            totals["orders"],
                            totals["gmv"].as_str().unwrap_or("?")
                        ));
                    }
                }
            }
            _ => {
                push_path(&mut lines, "output", &params["output"]);
                push_path(&mut lines, "dead letters", dead_letter_param(params));
                if let Some(rows) = result["rows"].as_array() {
                    lines.push(format!("  groups       {}", result["groups"]));
                    for row in rows.iter().take(20) {
                        lines.push(format!("    {row}"));
                    }
                }
            }
        }
        lines.join("\n")
    }
}

/// The dead-letter file a task's params name (`dead_letter`, or its alias `dead_letters`).
fn dead_letter_param(params: &Value) -> &Value {
    match &params["dead_letter"] {
        Value::Null => &params["dead_letters"],
        named => named,
    }
}

fn push_path(lines: &mut Vec<String>, name: &str, path: &Value) {
    if let Some(path) = path.as_str() {
        lines.push(format!("  {name:<12} {path}"));
    }
}

/// A summary document for several tasks.
pub(crate) fn documents(finished: &[Finished]) -> Value {
    json!({ "tasks": finished.iter().map(Finished::document).collect::<Vec<_>>() })
}
