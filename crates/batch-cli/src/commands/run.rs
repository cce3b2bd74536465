//! `batch run <kind>`: create one task from the options, run it here with progress, report its end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use batch::model::CreateTaskRequest;
use batch::prelude::BatchManager;

use crate::cli::RunArgs;
use crate::commands::{announce, finish_following};
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

/// Creates the task, says so on stderr, runs it and follows it to its end.
async fn start_and_follow(
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

/// `path` made absolute, so the task can be resumed from any folder.
pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).map_err(|error| {
        crate::failure::configuration(format!("cannot resolve the path {}: {error}", path.display()))
    })
}
