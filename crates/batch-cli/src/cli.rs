//! The command line's grammar: the subcommands and options as clap derive types, except the
//! options of `batch run <kind>`, which are generated from each kind's description
//! ([`crate::kinds`]).

use std::path::PathBuf;
use std::time::Duration;

use batch::model::{TaskStatus, TaskType};
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Run pump batch tasks — train, youzan_order, batch_process — on an embedded SQLite store, with
/// progress bars; list, inspect, stop and resume them.
///
/// Errors are one line on stderr, `error: CODE: message`, usage errors included; exit codes: 0
/// success, 1 a task that failed or was cancelled (or storage failed), 2 usage and configuration
/// errors. The one exception: a command given without its subcommand (`batch`, `batch tasks`,
/// `batch run`) prints its help on stderr and exits 2.
#[derive(Debug, Parser)]
#[command(name = "batch", version, about, long_about)]
pub(crate) struct Cli {
    /// The task store's address: a SQLite file (created by the commands that run tasks; the others
    /// need it to exist; one host), or a postgres:// or postgresql:// URL of a PostgreSQL database
    /// shared by workers on many machines (its schema `batch` is created on first use).
    #[arg(long, global = true, value_name = "ADDRESS", env = "BATCH_DB", default_value = "batch.db")]
    pub(crate) db: String,
    /// How often progress is logged when stderr is not a terminal (a terminal gets live bars).
    #[arg(long, global = true, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) progress_interval: Duration,
    /// More log output on stderr: -v warnings, -vv info, -vvv debug, -vvvv trace (default: errors).
    /// RUST_LOG directives (e.g. batch_manager=debug) add to or override it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// No log output.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// The format of log lines on stderr.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate sample data and run all three kinds on DIR/batch.db (or --db), with live progress.
    Demo(DemoArgs),
    /// Generate a deterministic sample data file for a kind.
    Gen(GenArgs),
    /// Run one task to its end, showing its progress.
    Run(RunArgs),
    /// Create a pending task without running it, for workers to run (prints its id on stdout).
    Submit(SubmitArgs),
    /// Claim and run tasks from the store until SIGINT or SIGTERM: one of a fleet of workers.
    Worker(WorkerArgs),
    /// List, show, stop and resume tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Counts by status, success rate and durations across the store's tasks.
    Metrics(JsonFlag),
    /// Serve the JSON API, live events, Prometheus metrics and the dashboard over HTTP.
    Serve(crate::commands::serve::ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the data, the outputs and the store (DIR/batch.db unless --db is given) go.
    #[arg(long, value_name = "DIR", default_value = "pump-demo")]
    pub(crate) dir: PathBuf,
    /// Scale the sample data (1 = 30,000 trades, a 20,000-row training set, 50,000 records).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub(crate) scale: f64,
    /// Print one JSON document with the three tasks at the end.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The kinds `gen` writes data for, named as the kinds are everywhere (the old spellings are
/// aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GenKind {
    /// YouZan trades, one JSON object per line.
    #[value(name = "youzan_order", alias = "youzan", alias = "youzan-order")]
    YouzanOrder,
    /// A classification dataset (CSV, or JSON lines for a .jsonl output).
    Train,
    /// Generic order records (JSON lines, or CSV for a .csv output).
    #[value(name = "batch_process", alias = "records", alias = "batch-process")]
    BatchProcess,
}

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// The kind to write data for.
    pub(crate) kind: GenKind,
    /// Records (lines, rows) to write.
    #[arg(long, value_name = "N")]
    pub(crate) count: u64,
    /// The seed: the same seed writes the same bytes.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub(crate) seed: u64,
    /// The share of malformed records, from 0 to 1 [default: youzan_order 0.05, batch_process 0.02,
    /// train 0].
    #[arg(long, value_name = "R")]
    pub(crate) invalid_ratio: Option<f64>,
    /// Feature columns (train).
    #[arg(long, value_name = "F", default_value_t = 8)]
    pub(crate) features: usize,
    /// Classes (train): 2 for a hyperplane split, more for Gaussian blobs.
    #[arg(long, value_name = "C", default_value_t = 2)]
    pub(crate) classes: usize,
    /// The file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: PathBuf,
}

/// `batch run <kind> [options]`: one subcommand per registered kind, its options generated from the
/// kind's description; what was given is read back by [`crate::kinds::Invocation`].
#[derive(Debug, Clone)]
pub(crate) struct RunArgs {
    /// The kind's type name (aliases resolved).
    pub(crate) kind: String,
    /// The kind's options as given.
    pub(crate) matches: ArgMatches,
}

impl FromArgMatches for RunArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<RunArgs, clap::Error> {
        match matches.subcommand() {
            Some((kind, matches)) => Ok(RunArgs { kind: kind.to_owned(), matches: matches.clone() }),
            None => {
                Err(clap::Error::raw(clap::error::ErrorKind::MissingSubcommand, "a task kind is required"))
            }
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = RunArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for RunArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        crate::kinds::run_subcommands(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        RunArgs::augment_args(command)
    }
}

/// The kind and options of `batch submit <kind>`: the same as `batch run <kind>`.
#[derive(Debug, Clone)]
pub(crate) struct SubmitArgs(pub(crate) RunArgs);

impl FromArgMatches for SubmitArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<SubmitArgs, clap::Error> {
        RunArgs::from_arg_matches(matches).map(SubmitArgs)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = SubmitArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for SubmitArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        crate::kinds::run_subcommands(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        SubmitArgs::augment_args(command)
    }
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Tasks this worker runs at once (task slots).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) concurrency: u32,
    /// Claims kept in flight at once: 2 hide a claim's commit behind the next; in a large fleet on a
    /// busy database, 1 saves the database the rows each claim skips because another holds them.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub(crate) claims_in_flight: u32,
    /// On PostgreSQL, the connections that commit this worker's changes in groups (its writer
    /// lanes): a fleet does best when its lanes together are about the database server's cores
    /// (four workers on a two-core server: 1 each). SQLite has one writer and ignores it.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) writers: u32,
    /// Only claim tasks of these kinds (comma-separated) [default: every kind].
    #[arg(long, value_name = "KIND,...", value_delimiter = ',', value_parser = kind_parser())]
    pub(crate) types: Vec<TaskType>,
    /// This worker's name in leases and logs; unique in the fleet [default: HOST:PID:RANDOM].
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// How long a claim lasts without a heartbeat: a dead worker's tasks are taken over this long
    /// after its last heartbeat (renewed every third of it).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub(crate) lease_ttl: Duration,
    /// How often the worker logs a status line.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) status_interval: Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TasksCommand {
    /// List tasks, newest first.
    List(ListArgs),
    /// Show one task: status, progress, error, metrics and result.
    Show(TaskIdArgs),
    /// Ask a task to stop; a running task (in any process) ends `cancelled` at its next chunk.
    Stop(StopArgs),
    /// Take over a task whose process died (its lease expired) and finish it, with progress.
    Resume(ResumeArgs),
    /// Continue a cancelled or failed task from its last checkpoint, as a new attempt (run here with
    /// progress, or left for a worker with --detach).
    Restart(RestartArgs),
    /// Wait for a task to end, wherever it runs; exit codes as `run`.
    Wait(TaskIdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks with this status.
    #[arg(long, value_name = "STATUS", value_parser = status_parser())]
    pub(crate) status: Option<TaskStatus>,
    /// Only tasks of this kind.
    #[arg(long = "type", value_name = "KIND", value_parser = kind_parser())]
    pub(crate) task_type: Option<TaskType>,
    /// Most tasks to list.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub(crate) limit: u32,
    /// Tasks to skip.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) offset: u64,
    /// Print the listing as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The statuses, as `--status` takes them.
fn status_parser() -> impl clap::builder::TypedValueParser<Value = TaskStatus> {
    PossibleValuesParser::new(TaskStatus::ALL.map(TaskStatus::as_str))
        .try_map(|status| status.parse::<TaskStatus>())
}

/// The registered kinds' names, as `--type` takes them.
fn kind_parser() -> impl clap::builder::TypedValueParser<Value = TaskType> {
    let registry = crate::kinds::registry();
    let names: Vec<String> = registry.names().map(str::to_owned).collect();
    PossibleValuesParser::new(names).try_map(|name| name.parse::<TaskType>())
}

#[derive(Debug, Args)]
pub(crate) struct TaskIdArgs {
    /// The task's id.
    pub(crate) id: String,
    /// Print the task as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// The task's id.
    pub(crate) id: String,
    /// Why, recorded in the task's error.
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The task's id.
    pub(crate) id: String,
    /// If another process's lease is still live, wait for it to expire (up to twice the lease time).
    #[arg(long)]
    pub(crate) wait: bool,
    /// Print one JSON document at the end, as `run --json` does.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
    pub(crate) id: String,
    /// Only make it pending again, for a worker to run, instead of running it here.
    #[arg(long)]
    pub(crate) detach: bool,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}
