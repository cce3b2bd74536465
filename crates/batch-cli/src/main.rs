//! `batch`: the command line of the pump batch system — runs tasks on the embedded SQLite store with
//! live progress, generates sample data, and lists, shows, stops and resumes tasks.
//!
//! Exit codes: 0 when the command (and its task) succeeded — a task that completed with
//! dead-lettered records succeeded; 1 when a task failed or was cancelled, or storage failed; 2 for
//! usage and configuration errors (bad options, an unknown task, a task in the wrong state). A
//! failure is one line on stderr: `error: CODE: message`, usage errors included; the one exception
//! is a command given without its subcommand, which prints its help (exit 2).

mod cli;
mod commands;
mod failure;
mod follow;
mod kinds;
mod logging;
mod report;
mod store;
mod terminal;

use std::process::ExitCode;
use std::time::Duration;

use batch::model::ErrorCode;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::{Cli, Command, TasksCommand};
use crate::failure::{coded, configuration};
use crate::follow::View;
use crate::store::StoreAddress;

/// How long the runtime waits, once the command is done, for blocking work it no longer needs (a
/// read of an input abandoned by an aborted task) before the process exits anyway.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return failure::report(&coded(
                ErrorCode::ProcessingError,
                format!("cannot start the runtime: {error}"),
            ));
        }
    };
    let exit = match parse() {
        Ok((cli, db_given)) => match runtime.block_on(dispatch(cli, db_given)) {
            Ok(code) => code,
            Err(error) => failure::report(&error),
        },
        Err(exit) => exit,
    };
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    exit
}

/// Parses the command line and installs the log subscriber. A usage error is reported as one line;
/// help and version are printed as asked. Also says whether `--db` was given on the command line.
fn parse() -> Result<(Cli, bool), ExitCode> {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return Err(usage_error(&error)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|error| usage_error(&error))?;
    let db_given = given_on_command_line(&matches, "db");
    let rust_log = std::env::var("RUST_LOG").ok();
    // A worker's log is its output: one line per task start and end, and a status line.
    let level = match cli.command {
        Command::Worker(_) if cli.verbose == 0 && !cli.quiet => logging::level(2, false),
        _ => logging::level(cli.verbose, cli.quiet),
    };
    logging::init(level, rust_log.as_deref(), cli.log_format).map_err(|error| failure::report(&error))?;
    Ok((cli, db_given))
}

/// Whether the global option `id` was given on the command line (at any level of subcommands).
fn given_on_command_line(matches: &clap::ArgMatches, id: &str) -> bool {
    let mut level = Some(matches);
    while let Some(matches) = level {
        if matches.try_get_raw(id).is_ok_and(|raw| raw.is_some())
            && matches.value_source(id) == Some(ValueSource::CommandLine)
        {
            return true;
        }
        level = matches.subcommand().map(|(_, sub)| sub);
    }
    false
}

/// Prints help or the version as asked (exit 0), the help of a command given without its
/// subcommand (exit 2), and any other usage error as one line (exit 2).
fn usage_error(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => failure::report(&configuration(failure::usage_message(error))),
    }
}

async fn dispatch(cli: Cli, db_given: bool) -> anyhow::Result<ExitCode> {
    let view = View::detect(cli.progress_interval);
    let db = || StoreAddress::parse(&cli.db);
    match cli.command {
        Command::Demo(args) => {
            let db = if db_given { Some(db()?) } else { None };
            commands::demo::demo(args, db.as_ref(), view).await
        }
        Command::Gen(args) => {
            if db_given {
                return Err(configuration(
                    "--db does not apply to gen, which writes a data file and no task",
                ));
            }
            commands::generate::gen_command(&args)
        }
        Command::Run(args) => commands::run::run(&db()?, &args, view).await,
        Command::Submit(args) => commands::run::submit(&db()?, &args).await,
        Command::Worker(args) => commands::worker::worker(&db()?, args).await,
        Command::Tasks(TasksCommand::List(args)) => commands::tasks::list(&db()?, args).await,
        Command::Tasks(TasksCommand::Show(args)) => commands::tasks::show(&db()?, args).await,
        Command::Tasks(TasksCommand::Stop(args)) => commands::tasks::stop(&db()?, args).await,
        Command::Tasks(TasksCommand::Resume(args)) => commands::tasks::resume(&db()?, args, view).await,
        Command::Tasks(TasksCommand::Restart(args)) => commands::tasks::restart(&db()?, args, view).await,
        Command::Tasks(TasksCommand::Wait(args)) => commands::tasks::wait(&db()?, args).await,
        Command::Metrics(args) => commands::tasks::metrics(&db()?, args).await,
    }
}
