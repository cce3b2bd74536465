//! `batch run <kind>`: create one task from the options, run it here with progress, report its end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use batch::model::CreateTaskRequest;
use batch::prelude::BatchManager;

use crate::cli::{RunArgs, SubmitArgs};
use crate::commands::{announce, finish_following, print};
use crate::failure::ManagerResultExt;
use crate::follow::View;
use crate::kinds::Invocation;
use crate::store::{Access, StoreAddress, open_manager};

/// Runs the kind `args` names on the store at `db`.
pub(crate) async fn run(db: &StoreAddress, args: &RunArgs, view: View) -> anyhow::Result<ExitCode> {
    let invocation = Invocation::read(&args.kind, &args.matches)?;
    let manager = open_manager(db, Access::Create)?;
    let request = CreateTaskRequest::new(invocation.task_type)
        .with_config(invocation.config)
        .with_params(invocation.params);
    let exit = start_and_follow(&manager, request, invocation.json, view).await;
    manager.shutdown().await;
    exit
}

/// `batch submit <kind>`: creates the task from the options without running it and prints its id on
/// stdout (with `--json`, the task as JSON): a worker (`batch worker`) on the same store runs it.
pub(crate) async fn submit(db: &StoreAddress, args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let invocation = Invocation::read(&args.0.kind, &args.0.matches)?;
    let manager = open_manager(db, Access::Create)?;
    let request = CreateTaskRequest::new(invocation.task_type)
        .with_config(invocation.config)
        .with_params(invocation.params);
    let created = manager.create_task(request).await.coded();
    let exit = match created {
        Ok(created) => {
            if invocation.json {
                let task = manager.get_task(&created.id).await.coded()?;
                print(&serde_json::to_string_pretty(&task)?);
            } else {
                print(&created.id.to_string());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(error),
    };
    manager.shutdown().await;
    exit
}

/// Creates the task, says so on stderr, runs it and follows it to its end. A partitioned task's
/// partitions and merge run here too.
async fn start_and_follow(
    manager: &BatchManager,
    request: CreateTaskRequest,
    json: bool,
    view: View,
) -> anyhow::Result<ExitCode> {
    let task_type = request.task_type.clone();
    let created = manager.create_task(request).await.coded()?;
    announce(&format!("task {} created ({task_type})", created.id));
    let started = manager.process_task(&created.id).await.coded()?;
    let partitions = (started.config.partitions > 1).then(|| {
        let (manager, id) = (manager.clone(), created.id);
        tokio::spawn(async move { manager.run_partitions(&id).await })
    });
    let exit = finish_following(manager, created.id, &task_type.to_string(), json, view).await;
    if let Some(partitions) = partitions {
        partitions.abort();
    }
    exit
}

/// `path` made absolute, so the task can be resumed from any folder.
pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).map_err(|error| {
        crate::failure::configuration(format!("cannot resolve the path {}: {error}", path.display()))
    })
}
