//! t2: the `train` task kind against an in-run peer, `linfa-logistic`, on the same rows — time and
//! test accuracy side by side.
//!
//! Each dataset is generated once (seeded) as 120,000 rows × 20 features and cut in two CSV files:
//! the first 100,000 rows to train on, the last 20,000 to test on.
//!
//! - `binary`: two classes (logistic regression), labels from a hidden hyperplane, 5% flipped.
//! - `ten_classes`: ten overlapping Gaussian blobs (softmax regression).
//!
//! The two functions of each group do the same job, learn an L2-regularised logistic regression of
//! the same objective (mean log-loss + ‖W‖²/2n on standardised features: `train`'s default `l2`,
//! linfa's `alpha = 1`):
//!
//! - `train`: the task run end to end through its `TaskKind` contract with a manager that keeps
//!   nothing, with its **default** params (AdaGrad steps, the stopping rule, at most 100 epochs),
//!   mini-batches of 100 rows, one thread: it streams and parses the CSV file in every pass (the scan,
//!   each epoch, the eval file) and writes the model.
//! - `linfa_lbfgs`: `linfa-logistic` (L-BFGS, its default 100 iterations at most) on the same rows
//!   **already parsed and standardised** into an `ndarray` (that work is done once, outside the
//!   timing), then its predictions on the test rows. It is the in-memory, second-order limit:
//!   `train`'s time includes reading the file every pass, the peer's does not.
//!
//! Throughput is training rows per second. Before timing, each is run once and its test accuracy
//! printed (`t2_train/binary: test accuracy train 0.9473 (8 epochs), linfa-logistic 0.9475`), so a
//! run shows what each one's time buys.
//!
//! Run: `cargo bench -p benches --bench tasks -- t2_train`. Figures go to docs/BENCHMARKS.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use batch_model::{BatchConfig, BatchTask, CreateTaskRequest, TaskId, TaskType};
use batch_tasks::testing::MemoryControl;
use batch_tasks::train::{Generator, GeneratorConfig, TrainKind};
use batch_tasks::{JobContext, JobOutcome, TaskKind};
use criterion::{Criterion, Throughput};
use linfa::Dataset;
use linfa::traits::{Fit, Predict};
use linfa_logistic::{LogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};

/// Rows trained on.
const ROWS: u64 = 100_000;

/// Rows tested on.
const TEST_ROWS: u64 = 20_000;

/// Features per row.
const FEATURES: usize = 20;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the tokio runtime: {error}"),
    }
}

/// One dataset's two files.
struct Files {
    train: PathBuf,
    test: PathBuf,
}

/// Writes `config`'s rows: the first [`ROWS`] to `NAME.train.csv`, the rest to `NAME.test.csv`.
fn write_files(dir: &Path, name: &str, config: GeneratorConfig) -> Files {
    let mut all = Vec::new();
    if let Err(error) = Generator::new(config).write(&mut all) {
        panic!("cannot generate {name}: {error}");
    }
    let files =
        Files { train: dir.join(format!("{name}.train.csv")), test: dir.join(format!("{name}.test.csv")) };
    let mut lines = all.split(|&byte| byte == b'\n').filter(|line| !line.is_empty());
    let header = lines.next().unwrap_or_default().to_vec();
    let write = |path: &Path, rows: &mut dyn Iterator<Item = &[u8]>| {
        let written = std::fs::File::create(path).and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            out.write_all(&header)?;
            out.write_all(b"\n")?;
            for row in rows {
                out.write_all(row)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        });
        if let Err(error) = written {
            panic!("cannot write {}: {error}", path.display());
        }
    };
    write(&files.train, &mut lines.by_ref().take(ROWS as usize));
    write(&files.test, &mut lines);
    files
}

/// The task: `train`'s defaults, mini-batches of 100, one thread, scored on the test file.
fn task(files: &Files, model_out: &Path) -> BatchTask {
    let params = serde_json::json!({
        "input": files.train, "eval_input": files.test, "label": "label", "model_out": model_out, "seed": 1,
    });
    let config = BatchConfig { batch_size: 100, concurrency: 1, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::Train).with_params(params).with_config(config);
    match BatchTask::new(TaskId::new(), request, chrono::Utc::now()) {
        Ok(task) => task,
        Err(error) => panic!("the bench task is invalid: {error}"),
    }
}

/// Runs the task to completion: its test accuracy and the epochs it ran.
async fn train_once(task: BatchTask) -> (f64, u64) {
    match TrainKind::new().run(JobContext::new(task, None, Arc::new(MemoryControl::new()))).await {
        Ok(JobOutcome::Completed { summary, .. }) => {
            assert_eq!(summary["rows"]["train"].as_u64(), Some(ROWS));
            (summary["eval_accuracy"].as_f64().unwrap_or(0.0), summary["epochs_run"].as_u64().unwrap_or(0))
        }
        other => panic!("the train task did not complete: {other:?}"),
    }
}

/// A file's rows as a feature matrix and class indices (classes in sorted order, as `train` has
/// them).
fn parse(path: &Path, classes: &mut Vec<String>) -> (Array2<f64>, Array1<usize>) {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => panic!("cannot open {}: {error}", path.display()),
    };
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for line in BufReader::new(file).lines().skip(1) {
        let line = match line {
            Ok(line) => line,
            Err(error) => panic!("cannot read {}: {error}", path.display()),
        };
        let mut fields = line.split(',');
        for field in fields.by_ref().take(FEATURES) {
            values.push(field.parse::<f64>().unwrap_or_else(|error| panic!("{field:?}: {error}")));
        }
        let label = fields.next().unwrap_or_default().to_owned();
        labels.push(label);
    }
    if classes.is_empty() {
        classes.extend(labels.iter().cloned());
        classes.sort();
        classes.dedup();
    }
    let labels = labels.iter().map(|label| classes.binary_search(label).unwrap_or(0)).collect();
    let rows = values.len() / FEATURES;
    match Array2::from_shape_vec((rows, FEATURES), values) {
        Ok(records) => (records, labels),
        Err(error) => panic!("bad shape: {error}"),
    }
}

/// The peer's data: standardised with the training rows' means and standard deviations.
struct Arrays {
    train: Dataset<f64, usize, ndarray::Ix1>,
    test: Array2<f64>,
    test_labels: Array1<usize>,
    classes: usize,
}

fn arrays(files: &Files) -> Arrays {
    let mut classes = Vec::new();
    let (mut train, train_labels) = parse(&files.train, &mut classes);
    let (mut test, test_labels) = parse(&files.test, &mut classes);
    for column in 0..FEATURES {
        let values = train.column(column);
        let mean = values.mean().unwrap_or(0.0);
        let std = values.std(0.0);
        let std = if std > 0.0 { std } else { 1.0 };
        for matrix in [&mut train, &mut test] {
            matrix.column_mut(column).mapv_inplace(|value| (value - mean) / std);
        }
    }
    Arrays { train: Dataset::new(train, train_labels), test, test_labels, classes: classes.len() }
}

/// linfa's fit on the training rows, then its accuracy on the test rows.
fn linfa_once(arrays: &Arrays) -> f64 {
    let predicted: Array1<usize> = if arrays.classes == 2 {
        match LogisticRegression::default().alpha(1.0).fit(&arrays.train) {
            Ok(model) => model.predict(&arrays.test),
            Err(error) => panic!("linfa-logistic failed: {error}"),
        }
    } else {
        match MultiLogisticRegression::default().alpha(1.0).fit(&arrays.train) {
            Ok(model) => model.predict(&arrays.test),
            Err(error) => panic!("linfa-logistic failed: {error}"),
        }
    };
    let right = predicted.iter().zip(&arrays.test_labels).filter(|(a, b)| a == b).count();
    right as f64 / arrays.test_labels.len() as f64
}

/// Prints a line beside criterion's own output.
#[allow(clippy::print_stderr, reason = "the accuracies belong beside criterion's timings")]
fn report(line: &str) {
    eprintln!("{line}");
}

/// The t2 group: `binary` and `ten_classes`, each `train` and `linfa_lbfgs`.
pub fn t2_train(c: &mut Criterion) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary folder: {error}"),
    };
    let datasets = [
        ("binary", GeneratorConfig::binary(ROWS + TEST_ROWS, FEATURES, 1)),
        ("ten_classes", GeneratorConfig::blobs(ROWS + TEST_ROWS, FEATURES, 10, 2)),
    ];
    let rt = runtime();
    let mut group = c.benchmark_group("t2_train");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    for (name, config) in datasets {
        let files = write_files(dir.path(), name, config);
        let model_out = dir.path().join(format!("{name}-model.json"));
        let peer = arrays(&files);
        let (accuracy, epochs) = rt.block_on(train_once(task(&files, &model_out)));
        let peer_accuracy = linfa_once(&peer);
        report(&format!(
            "t2_train/{name}: test accuracy train {accuracy:.4} ({epochs} epochs), linfa-logistic {peer_accuracy:.4}"
        ));
        assert!(accuracy > peer_accuracy - 0.02, "train {accuracy} is well below linfa's {peer_accuracy}");
        group.bench_function(format!("{name}/train"), |b| {
            b.to_async(&rt).iter(|| async { train_once(task(&files, &model_out)).await })
        });
        group.bench_function(format!("{name}/linfa_lbfgs"), |b| b.iter(|| linfa_once(&peer)));
    }
    group.finish();
}
