//! `batch worker`: one member of a fleet of workers sharing a store. It claims tasks (oldest first,
//! woken by the store's change feed), runs up to `--concurrency` at once, and on SIGTERM or SIGINT
//! stops claiming, lets its tasks reach a checkpoint and hands them back for another worker to
//! resume at once, then exits 0. A second signal aborts the in-flight work (the tasks are handed
//! back all the same, from their last checkpoints).

use std::process::ExitCode;

use batch::model::TaskType;
use batch::tasks::Registry;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::WorkerArgs;
use crate::failure::{ManagerResultExt, coded, configuration};
use crate::store::{Access, StoreAddress, command_line_config, open_manager_with};

/// Runs the worker on the store at `db` until a signal.
pub(crate) async fn worker(db: &StoreAddress, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let registry = registry_of(&args.types)?;
    let kinds: Vec<&str> = registry.names().collect();
    let kinds = kinds.join(",");
    let mut config = command_line_config().with_lease_ttl(args.lease_ttl);
    config.max_concurrent_tasks = usize::try_from(args.concurrency).unwrap_or(1);
    config.claims_in_flight = usize::try_from(args.claims_in_flight).unwrap_or(1);
    if let Some(name) = &args.name {
        config = config.with_worker_id(name.clone());
    }
    let worker_id = config.worker_id.clone();
    let access = Access::Work { writers: usize::try_from(args.writers).unwrap_or(1) };
    let manager = open_manager_with(db, access, registry, config).await?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    tracing::info!(
        worker = %worker_id,
        store = %db,
        slots = args.concurrency,
        writers = args.writers,
        kinds = %kinds,
        "worker started"
    );

    let mut run = std::pin::pin!(manager.run_worker());
    let mut status = tokio::time::interval(args.status_interval);
    status.tick().await;
    let signal_name = loop {
        tokio::select! {
            ended = &mut run => {
                ended.coded()?;
                return Ok(ExitCode::SUCCESS);
            }
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = status.tick() => status_line(&manager),
        }
    };
    let running = manager.running_tasks().len();
    tracing::info!(
        worker = %worker_id,
        signal = signal_name,
        running,
        "stopping: no new claims; running tasks reach a checkpoint and are handed back"
    );
    let shutdown = manager.shutdown();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = terminate.recv() => abort_all(&manager),
            _ = interrupt.recv() => abort_all(&manager),
        }
    }
    status_line(&manager);
    tracing::info!(worker = %worker_id, "worker stopped");
    Ok(ExitCode::SUCCESS)
}

/// The built-in kinds, or those of `types`.
fn registry_of(types: &[TaskType]) -> anyhow::Result<Registry> {
    let all = crate::kinds::registry();
    if types.is_empty() {
        return Ok(all);
    }
    let mut chosen = Registry::new();
    for task_type in types {
        let Some(kind) = all.get(task_type) else {
            return Err(configuration(format!("--types: no kind {task_type} in this batch command")));
        };
        chosen.register_shared(kind);
    }
    Ok(chosen)
}

/// A second signal: abort the in-flight work of every running task now (they are handed back from
/// their last checkpoints all the same).
fn abort_all(manager: &batch::prelude::BatchManager) {
    tracing::warn!("second signal: aborting the in-flight work of the running tasks");
    manager.abort_running();
}

/// The periodic status line: tasks running and how the runs ended so far.
fn status_line(manager: &batch::prelude::BatchManager) {
    let counts = manager.run_counts();
    tracing::info!(
        running = manager.running_tasks().len(),
        started = counts.started,
        completed = counts.completed,
        failed = counts.failed,
        cancelled = counts.cancelled,
        released = counts.released,
        split = counts.parked,
        dropped = counts.dropped,
        "worker status"
    );
}

fn signal_error(error: std::io::Error) -> anyhow::Error {
    coded(batch::model::ErrorCode::ProcessingError, format!("cannot listen for signals: {error}"))
}
