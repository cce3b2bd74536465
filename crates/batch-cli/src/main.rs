//! `batch`: the command line of the pump batch system — runs tasks on the embedded SQLite store with
//! live progress, generates sample data, and lists, shows, stops and resumes tasks.
//!
//! Exit codes: 0 when the command (and its task) succeeded — a task that completed with
//! dead-lettered records succeeded; 1 when a task failed or was cancelled, or storage failed; 2 for
//! usage and configuration errors (bad options, an unknown task, a task in the wrong state). A
//! failure is one line on stderr: `error: CODE: message`.

mod cli;
mod commands;
mod failure;
mod follow;
mod report;
mod store;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command, TasksCommand};
use crate::follow::View;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => failure::report(&error),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let view = View::detect(cli.progress_interval);
    let db = cli.db;
    match cli.command {
        Command::Demo(args) => commands::demo::demo(args, view).await,
        Command::Gen(args) => commands::generate::gen_command(&args),
        Command::Run(args) => commands::run::run(&db, args.kind, view).await,
        Command::Tasks(TasksCommand::List(args)) => commands::tasks::list(&db, args).await,
        Command::Tasks(TasksCommand::Show(args)) => commands::tasks::show(&db, args).await,
        Command::Tasks(TasksCommand::Stop(args)) => commands::tasks::stop(&db, args).await,
        Command::Tasks(TasksCommand::Resume(args)) => commands::tasks::resume(&db, args, view).await,
        Command::Metrics(args) => commands::tasks::metrics(&db, args).await,
        Command::Serve(args) => commands::serve::serve(&db, args).await,
    }
}
