//! `batch tasks list|show|stop|resume|restart|wait` and `batch metrics`: the store's tasks, looked at
//! and controlled from any process.

use std::process::ExitCode;
use std::time::Instant;

use batch::model::{ListTasksRequest, StopTaskRequest, TaskId, TaskStatus};
use batch::prelude::{BatchManager, ManagerError};

use crate::cli::{JsonFlag, ListArgs, RestartArgs, ResumeArgs, StopArgs, TaskIdArgs};
use crate::commands::{announce, finish_following, print, report_unfinished};
use crate::failure::{CodedError, ManagerResultExt};
use crate::follow::{View, done};
use crate::report::Finished;
use crate::store::{Access, LEASE_TTL, POLL_INTERVAL, StoreAddress, open_manager};

fn parse_id(id: &str) -> anyhow::Result<TaskId> {
    id.parse::<TaskId>().map_err(|error| anyhow::Error::new(CodedError::from(error)))
}

pub(crate) async fn list(db: &StoreAddress, args: ListArgs) -> anyhow::Result<ExitCode> {
    let (status, task_type) = (args.status, args.task_type);
    let request = ListTasksRequest {
        status,
        task_type,
        limit: args.limit,
        offset: args.offset,
        ..ListTasksRequest::default()
    };
    request.validate().map_err(|error| anyhow::Error::new(CodedError::from(error)))?;
    let manager = open_manager(db, Access::Existing).await?;
    let page = manager.list_tasks(request).await.coded()?;
    if args.json {
        print(&serde_json::to_string_pretty(&page)?);
    } else {
        print(&format!(
            "{:<36}  {:<13}  {:<10}  {:>19}  {:>6}  CREATED",
            "ID", "TYPE", "STATUS", "DONE/TOTAL", "FAILED"
        ));
        for task in &page.tasks {
            let progress = &task.progress;
            let total = progress.total.map_or_else(|| "?".to_owned(), |total| total.to_string());
            print(&format!(
                "{:<36}  {:<13}  {:<10}  {:>19}  {:>6}  {}",
                task.id.to_string(),
                task.task_type.to_string(),
                task.status.to_string(),
                format!("{}/{total}", done(progress)),
                progress.failed,
                task.created_at.format("%Y-%m-%d %H:%M:%S"),
            ));
        }
        announce(&format!("{} of {} tasks", page.tasks.len(), page.total));
    }
    manager.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn show(db: &StoreAddress, args: TaskIdArgs) -> anyhow::Result<ExitCode> {
    let id = parse_id(&args.id)?;
    let manager = open_manager(db, Access::Existing).await?;
    let task = manager.get_task(&id).await.coded()?;
    let finished = Finished::load(&manager, task).await?;
    if args.json {
        print(&serde_json::to_string_pretty(&finished.document())?);
    } else {
        print(&finished.summary(true));
        print(&format!("  params       {}", finished.task.params));
        print(&format!("  created      {}", finished.task.created_at.to_rfc3339()));
    }
    manager.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn stop(db: &StoreAddress, args: StopArgs) -> anyhow::Result<ExitCode> {
    let id = parse_id(&args.id)?;
    let manager = open_manager(db, Access::Existing).await?;
    let reason = args.reason.unwrap_or_else(|| "stopped with `batch tasks stop`".to_owned());
    let response = manager.stop_task(StopTaskRequest { id, reason: Some(reason) }).await.coded()?;
    match response.status {
        TaskStatus::Processing => announce(&format!(
            "stop requested: task {id} will end cancelled at its next chunk (its process looks every {}s)",
            (LEASE_TTL / 3).as_secs_f64()
        )),
        status => announce(&format!("task {id} is {status}")),
    }
    manager.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn resume(db: &StoreAddress, args: ResumeArgs, view: View) -> anyhow::Result<ExitCode> {
    let id = parse_id(&args.id)?;
    let manager = open_manager(db, Access::Existing).await?;
    let deadline = Instant::now() + LEASE_TTL * 2;
    let task = loop {
        match manager.resume_task(&id).await {
            Ok(task) => break task,
            Err(error) if args.wait && lease_may_expire(&error) && Instant::now() < deadline => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(error) => {
                manager.shutdown().await;
                return Err(anyhow::Error::new(CodedError::from(error)));
            }
        }
    };
    announce(&format!("task {} resumed ({})", task.id, task.task_type));
    let exit = finish_following(&manager, id, &task.task_type.to_string(), args.json, view).await;
    manager.shutdown().await;
    exit
}

/// `batch tasks restart ID`: a cancelled or failed task continues from its last checkpoint as a new
/// attempt, run here with progress (a partitioned task's restarted partitions and merge too), or
/// left pending for a worker with `--detach`.
pub(crate) async fn restart(db: &StoreAddress, args: RestartArgs, view: View) -> anyhow::Result<ExitCode> {
    let id = parse_id(&args.id)?;
    let manager = open_manager(db, Access::Existing).await?;
    let exit = restart_with(&manager, id, &args, view).await;
    manager.shutdown().await;
    exit
}

async fn restart_with(
    manager: &BatchManager,
    id: TaskId,
    args: &RestartArgs,
    view: View,
) -> anyhow::Result<ExitCode> {
    let task = manager.restart_task(&id).await.coded()?;
    announce(&format!("task {id} restarted as attempt {} ({})", task.attempt, task.task_type));
    if args.detach {
        if args.json {
            print(&serde_json::to_string_pretty(&task)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let started = manager.process_task(&id).await.coded()?;
    let partitions = (started.config.partitions > 1).then(|| {
        let manager = manager.clone();
        tokio::spawn(async move { manager.run_partitions(&id).await })
    });
    let exit = finish_following(manager, id, &task.task_type.to_string(), args.json, view).await;
    if let Some(partitions) = partitions {
        partitions.abort();
    }
    exit
}

/// `batch tasks wait ID`: waits for the task to end wherever it runs (through the store's change
/// feed), prints it as `show` does, and exits as `run` would for it.
pub(crate) async fn wait(db: &StoreAddress, args: TaskIdArgs) -> anyhow::Result<ExitCode> {
    let id = parse_id(&args.id)?;
    let manager = open_manager(db, Access::Wait).await?;
    let waited = manager.wait(&id).await.coded();
    let exit = match waited {
        Ok(task) => {
            let finished = Finished::load(&manager, task).await?;
            if args.json {
                print(&serde_json::to_string_pretty(&finished.document())?);
            } else {
                print(&finished.summary(false));
            }
            report_unfinished(&finished);
            Ok(finished.exit_code())
        }
        Err(error) => Err(error),
    };
    manager.shutdown().await;
    exit
}

/// Whether a refused resume may succeed later: the task is processing under a lease still live.
fn lease_may_expire(error: &ManagerError) -> bool {
    matches!(error, ManagerError::NotRunnable { status: TaskStatus::Processing, .. })
}

pub(crate) async fn metrics(db: &StoreAddress, args: JsonFlag) -> anyhow::Result<ExitCode> {
    let manager = open_manager(db, Access::Existing).await?;
    let metrics = manager.metrics().await.coded()?;
    if args.json {
        print(&serde_json::to_string_pretty(&metrics)?);
    } else {
        print(&format!(
            "tasks        {} ({} pending, {} processing, {} completed, {} failed, {} cancelled)",
            metrics.total_tasks,
            metrics.pending_tasks,
            metrics.processing_tasks,
            metrics.completed_tasks,
            metrics.failed_tasks,
            metrics.cancelled_tasks
        ));
        print(&format!("success rate {:.1}%", metrics.success_rate * 100.0));
        print(&format!("avg duration {:.2}s", metrics.avg_duration.as_secs_f64()));
        print(&format!("total        {:.2}s", metrics.total_duration.as_secs_f64()));
    }
    manager.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
