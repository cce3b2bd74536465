//! The command line's grammar: every subcommand and option, as clap derive types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run pump batch tasks — train, youzan_order, batch_process — on an embedded SQLite store, with
/// progress bars; list, inspect, stop and resume them.
#[derive(Debug, Parser)]
#[command(name = "batch", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The task store (a SQLite file, created on first use).
    #[arg(long, global = true, value_name = "PATH", default_value = "batch.db")]
    pub(crate) db: PathBuf,
    /// How often progress is logged when stderr is not a terminal (a terminal gets live bars).
    #[arg(long, global = true, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) progress_interval: Duration,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate sample data and run all three kinds on DIR/batch.db, with live progress.
    Demo(DemoArgs),
    /// Generate a deterministic sample data file.
    Gen(GenArgs),
    /// Run one task to its end, showing its progress.
    Run(RunArgs),
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
    /// Where the data, the outputs and the store (DIR/batch.db) go.
    #[arg(long, value_name = "DIR", default_value = "pump-demo")]
    pub(crate) dir: PathBuf,
    /// Scale the sample data (1 = 30,000 trades, a 20,000-row training set, 50,000 records).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub(crate) scale: f64,
    /// Print one JSON document with the three tasks at the end.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GenKind {
    /// YouZan trades, one JSON object per line.
    Youzan,
    /// A classification dataset (CSV, or JSON lines for a .jsonl output).
    Train,
    /// Generic order records (JSON lines, or CSV for a .csv output).
    Records,
}

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// What to generate.
    pub(crate) kind: GenKind,
    /// Records (lines, rows) to write.
    #[arg(long, value_name = "N")]
    pub(crate) count: u64,
    /// The seed: the same seed writes the same bytes.
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub(crate) seed: u64,
    /// The share of malformed records, from 0 to 1 [default: youzan 0.05, records 0.02, train 0].
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

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(subcommand)]
    pub(crate) kind: RunKind,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunKind {
    /// Train a logistic or softmax regression model by mini-batch SGD.
    Train(TrainArgs),
    /// Validate and enrich YouZan trades; sum GMV per region and category.
    #[command(name = "youzan_order", alias = "youzan-order")]
    YouzanOrder(YouzanArgs),
    /// Filter, project, de-duplicate and aggregate JSON-lines or CSV records.
    #[command(name = "batch_process", alias = "batch-process")]
    BatchProcess(BatchProcessArgs),
}

/// The options every `run` takes: the task's `BatchConfig` and the output format.
#[derive(Debug, Args)]
pub(crate) struct CommonRunArgs {
    /// Items per chunk (a checkpoint per chunk; train: the mini-batch) [default: train 64, others 1000].
    #[arg(long, value_name = "N")]
    pub(crate) batch_size: Option<u32>,
    /// Items processed in parallel within the task.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) concurrency: u32,
    /// Further attempts after a retryable failure of an item.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) max_retries: u32,
    /// Bound on one attempt of an item, e.g. `30s`, `500ms`, `1m 30s`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Failed items tolerated before the task fails (default: no limit; failures are reported).
    #[arg(long, value_name = "N")]
    pub(crate) skip_limit: Option<u64>,
    /// Print one JSON document (the task, its progress, metrics and result) on stdout at the end.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The dataset (.csv or .jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// The label column.
    #[arg(long, value_name = "COL")]
    pub(crate) label: String,
    /// The feature columns, comma-separated (default: every other numeric column).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub(crate) features: Option<Vec<String>>,
    /// A second dataset to measure accuracy on after training.
    #[arg(long, value_name = "FILE")]
    pub(crate) eval_input: Option<PathBuf>,
    /// Where the model (JSON) is written.
    #[arg(long, value_name = "FILE")]
    pub(crate) model_out: PathBuf,
    /// Where bad rows go (default: beside the model, MODEL.dead_letters.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) dead_letter: Option<PathBuf>,
    /// Passes over the training rows [default: 10].
    #[arg(long, value_name = "E")]
    pub(crate) epochs: Option<u64>,
    /// The SGD step size [default: 0.1].
    #[arg(long, value_name = "LR")]
    pub(crate) learning_rate: Option<f64>,
    /// The L2 penalty [default: 0.0001].
    #[arg(long, value_name = "L")]
    pub(crate) l2: Option<f64>,
    /// Seeds the hold-out split and the shuffle [default: 0].
    #[arg(long, value_name = "S")]
    pub(crate) seed: Option<u64>,
    /// The share of rows held out to measure accuracy on [default: 0.2].
    #[arg(long, value_name = "H")]
    pub(crate) holdout: Option<f64>,
    #[command(flatten)]
    pub(crate) common: CommonRunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct YouzanArgs {
    /// The trades (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// Where enriched orders go (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Where invalid records go, with their line numbers (default: beside the output, OUTPUT.dead_letters.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) dead_letter: Option<PathBuf>,
    /// Category rules replacing the built-in table (categories.json shape).
    #[arg(long, value_name = "FILE")]
    pub(crate) rules: Option<PathBuf>,
    /// Provinces replacing the built-in table (cn-provinces.csv shape).
    #[arg(long, value_name = "FILE")]
    pub(crate) provinces: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) common: CommonRunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BatchProcessArgs {
    /// The records (JSON lines or CSV).
    #[arg(long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// Where kept rows go (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Where rejected records go (default: beside the output, OUTPUT.dead.jsonl).
    #[arg(long, value_name = "FILE")]
    pub(crate) dead_letter: Option<PathBuf>,
    /// Keep records matching this expression, e.g. `amount >= 100 && region == "华东"`.
    #[arg(long, value_name = "EXPR")]
    pub(crate) filter: Option<String>,
    /// Keep only these fields, comma-separated.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub(crate) select: Option<Vec<String>>,
    /// Rename fields: `from=to`, comma-separated or repeated.
    #[arg(long, value_name = "A=B", value_delimiter = ',')]
    pub(crate) rename: Vec<String>,
    /// Keep the first record of each key (comma-separated fields).
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub(crate) dedup_key: Option<Vec<String>>,
    /// Group rows by these fields (comma-separated).
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub(crate) group_by: Option<Vec<String>>,
    /// Aggregates per group: count, count:f, sum:f, min:f, max:f, avg:f, comma-separated.
    #[arg(long, value_name = "FN:FIELD", value_delimiter = ',')]
    pub(crate) agg: Option<Vec<String>>,
    #[command(flatten)]
    pub(crate) common: CommonRunArgs,
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
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks with this status (pending, processing, completed, failed, cancelled).
    #[arg(long, value_name = "S")]
    pub(crate) status: Option<String>,
    /// Only tasks of this type (train, youzan_order, batch_process, ...).
    #[arg(long = "type", value_name = "T")]
    pub(crate) task_type: Option<String>,
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
pub(crate) struct JsonFlag {
    /// Print as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
