//! The `train` task's params ([`TrainParams`]): reading them from the task's JSON with errors that
//! name the param, their defaults and bounds, and the data formats ([`DataFormat`]).

use std::fmt;
use std::path::{Path, PathBuf};

use batch_model::{BatchConfig, json_kind};
use serde_json::{Map, Value};

use crate::train::error::TrainError;

/// The params `from_json` knows, in the order it reads them.
const PARAMS: [&str; 16] = [
    "input",
    "label",
    "features",
    "epochs",
    "tolerance",
    "patience",
    "learning_rate",
    "l2",
    "seed",
    "holdout",
    "eval_input",
    "model_out",
    "dead_letter",
    "format",
    "shuffle_batches",
    "checkpoint_batches",
];

/// The most rows the shuffle buffer may hold (it holds them as `f64` features in memory).
pub const SHUFFLE_ROWS_MAX: u64 = 1_000_000;

/// The most epochs a task may ask for.
pub const EPOCHS_MAX: u32 = 100_000;

/// The defaults of the params, in one place (the table at [`TrainParams`] shows them too).
pub mod defaults {
    /// The most passes over the training rows (the stopping rule usually ends training sooner).
    pub const EPOCHS: u32 = 100;
    /// The least improvement of the epoch's objective that counts as progress.
    pub const TOLERANCE: f64 = 1e-4;
    /// Epochs in a row without progress after which training stops.
    pub const PATIENCE: u32 = 5;
    /// AdaGrad's base step size.
    pub const LEARNING_RATE: f64 = 0.3;
    /// The share of `input` held out when there is no `eval_input`.
    pub const HOLDOUT: f64 = 0.2;
    /// Mini-batches per shuffle window (capped at 1,000,000 rows).
    pub const SHUFFLE_BATCHES: u64 = 10;
    /// Mini-batches read between two checkpoints, at least.
    pub const CHECKPOINT_BATCHES: u64 = 100;
}

/// The layout of a data file, from its extension or the `format` param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// Comma-separated values with a header row naming the columns (`.csv`). Quoted fields (with
    /// `""` for a quote, and newlines inside quotes) are read as RFC 4180 says.
    Csv,
    /// One JSON object per line (`.jsonl`, `.ndjson`); keys name the columns.
    #[serde(rename = "jsonl")]
    JsonLines,
}

impl DataFormat {
    /// The format a file's extension names: `.csv`, or `.jsonl`/`.ndjson` (any case).
    ///
    /// ```
    /// use batch_tasks::train::DataFormat;
    ///
    /// assert_eq!(DataFormat::from_path("data/iris.CSV".as_ref()), Some(DataFormat::Csv));
    /// assert_eq!(DataFormat::from_path("rows.jsonl".as_ref()), Some(DataFormat::JsonLines));
    /// assert_eq!(DataFormat::from_path("rows.txt".as_ref()), None);
    /// ```
    pub fn from_path(path: &Path) -> Option<DataFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "csv" => Some(DataFormat::Csv),
            "jsonl" | "ndjson" => Some(DataFormat::JsonLines),
            _ => None,
        }
    }

    /// The spelling of the `format` param: `csv` or `jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::JsonLines => "jsonl",
        }
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A `train` task's params, read and checked by [`TrainParams::from_json`].
///
/// # JSON
///
/// | param                | type              | default                         | bounds                    |
/// |----------------------|-------------------|---------------------------------|---------------------------|
/// | `input`              | path              | required                        | `.csv`, `.jsonl`, `.ndjson` unless `format` |
/// | `label`              | column name       | required                        | not a feature             |
/// | `features`           | column names      | every other numeric column      | non-empty, distinct       |
/// | `epochs`             | integer           | 100 (the most; see `patience`)  | 1 ..= 100,000             |
/// | `tolerance`          | number            | 0.0001                          | ≥ 0, finite               |
/// | `patience`           | integer           | 5 (0: run every epoch)          | ≥ 0                       |
/// | `learning_rate`      | number            | 0.3 (AdaGrad's base step)       | > 0, finite               |
/// | `l2`                 | number            | 1 / training rows               | ≥ 0, finite               |
/// | `seed`               | integer           | 0                               | 0 ..= 2^64 − 1            |
/// | `holdout`            | number            | 0.2, or 0 with `eval_input`     | 0 ≤ holdout < 1           |
/// | `eval_input`         | path              | none                            | same formats as `input`   |
/// | `model_out`          | path              | required                        |                           |
/// | `dead_letter`        | path              | `<model_out stem>.dead_letters.jsonl` beside `model_out` | |
/// | `format`             | `csv` or `jsonl`  | from each file's extension      |                           |
/// | `shuffle_batches`    | integer           | 10 (capped at 1,000,000 rows)   | ≥ 1; × `batch_size` ≤ 1,000,000 |
/// | `checkpoint_batches` | integer           | 100                             | ≥ 1                       |
///
/// # How training converges with these defaults
///
/// The objective is the mean log-loss plus `l2/2 · ‖W‖²` (biases are not penalised). Its default
/// `l2 = 1/n` for `n` training rows makes it exactly the objective of scikit-learn's
/// `LogisticRegression()` (`C = 1`) on standardised features, so a run with the defaults ends near
/// the same model (`docs/BENCHMARKS.md`, "train quality", compares them on public datasets).
/// Each mini-batch step is AdaGrad's: every weight's step is `learning_rate / √(sum of its squared
/// gradients so far)`, a step size that shrinks as training goes and so converges, whatever the
/// batch size or the scale of the data. Training stops when the epoch's objective (its mean loss as
/// SGD met the rows, plus the penalty) has not improved on the best so far by more than `tolerance`
/// for `patience` epochs in a row, or after `epochs` epochs. With an `eval_input`, no row of `input`
/// is held out unless `holdout` says so.
///
/// `features` default: the columns other than the label whose values are numbers in more than half
/// of the first 100 rows (CSV: in header order; JSON lines: in order of first appearance). A row
/// whose feature is missing or not a finite number is bad, whatever decided the feature list.
///
/// The classes are every label of the input's good rows, sorted (as strings).
///
/// A row is held out when a hash of `(seed, the line it starts on)` falls below `holdout`, so the
/// split needs no state and is the same in every epoch and after every resume (and, the line numbers
/// being different, not the same for a CSV file and its JSON-lines twin).
///
/// Unknown params are refused, so that a misspelt one is not silently ignored.
///
/// ```
/// use batch_model::BatchConfig;
/// use batch_tasks::train::{DataFormat, TrainParams};
///
/// let params = TrainParams::from_json(
///     &serde_json::json!({ "input": "data/iris.csv", "label": "species", "model_out": "iris.json",
///                          "epochs": 50 }),
///     &BatchConfig::default(),
/// )?;
/// assert_eq!(params.format, DataFormat::Csv);
/// assert_eq!((params.epochs, params.learning_rate, params.l2, params.holdout), (50, 0.3, None, 0.2));
/// assert_eq!(params.dead_letter, std::path::Path::new("iris.dead_letters.jsonl"));
///
/// let error = TrainParams::from_json(
///     &serde_json::json!({ "input": "a.csv", "label": "y", "model_out": "m.json", "holdout": 1.0 }),
///     &BatchConfig::default(),
/// ).unwrap_err();
/// assert_eq!(error.to_string(), "invalid train param: holdout must be at least 0 and less than 1, got 1.0");
/// # Ok::<(), batch_tasks::train::TrainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TrainParams {
    /// The dataset to train on.
    pub input: PathBuf,
    /// `input`'s format.
    pub format: DataFormat,
    /// The label column.
    pub label: String,
    /// The feature columns; `None` for every other numeric column.
    pub features: Option<Vec<String>>,
    /// The most passes over the training rows.
    pub epochs: u32,
    /// The least improvement of the epoch's objective that counts as progress.
    pub tolerance: f64,
    /// Epochs in a row without progress after which training stops; 0 runs every epoch.
    pub patience: u32,
    /// AdaGrad's base step size.
    pub learning_rate: f64,
    /// The L2 penalty `λ`: the objective is the mean log-loss plus `λ/2 · ‖W‖²` (biases are not
    /// penalised); `None` for `1 / training rows`.
    pub l2: Option<f64>,
    /// Seeds the hold-out split and the shuffle.
    pub seed: u64,
    /// The share of rows held out of training to measure accuracy on.
    pub holdout: f64,
    /// A second dataset, with the same columns, to measure accuracy on after training.
    pub eval_input: Option<PathBuf>,
    /// `eval_input`'s format.
    pub eval_format: Option<DataFormat>,
    /// Where the model (JSON) is written.
    pub model_out: PathBuf,
    /// Where bad rows are written (JSON lines).
    pub dead_letter: PathBuf,
    /// Mini-batches per shuffle window (the shuffle buffer holds `shuffle_batches × batch_size`
    /// training rows).
    pub shuffle_batches: u32,
    /// A checkpoint is committed once at least `checkpoint_batches × batch_size` rows were read since
    /// the last one (at the next shuffle-window boundary), and at the end of every pass.
    pub checkpoint_batches: u32,
}

impl TrainParams {
    /// Reads the params from the task's JSON object, reporting the first problem as
    /// [`TrainError::InvalidParam`] naming the param. `config` bounds the shuffle window.
    pub fn from_json(value: &Value, config: &BatchConfig) -> Result<TrainParams, TrainError> {
        let Value::Object(object) = value else {
            return Err(invalid("params", format!("must be a JSON object, got {}", json_kind(value))));
        };
        if let Some(unknown) = object.keys().find(|key| !PARAMS.contains(&key.as_str())) {
            return Err(invalid(
                unknown,
                format!("is not a known param (expected one of {})", PARAMS.join(", ")),
            ));
        }
        let input = required_path(object, "input")?;
        let label = required_string(object, "label")?;
        let features = optional_names(object, "features")?;
        if features.as_ref().is_some_and(|features| features.contains(&label)) {
            return Err(invalid("features", format!("must not contain the label `{label}`")));
        }
        let epochs = optional_integer(object, "epochs", 1, u64::from(EPOCHS_MAX))?
            .unwrap_or(u64::from(defaults::EPOCHS));
        let tolerance = optional_number(object, "tolerance")?.unwrap_or(defaults::TOLERANCE);
        if tolerance < 0.0 {
            return Err(invalid("tolerance", format!("must not be negative, got {tolerance:?}")));
        }
        let patience = optional_integer(object, "patience", 0, u64::from(EPOCHS_MAX))?
            .unwrap_or(u64::from(defaults::PATIENCE));
        let learning_rate = optional_number(object, "learning_rate")?.unwrap_or(defaults::LEARNING_RATE);
        if learning_rate <= 0.0 {
            return Err(invalid("learning_rate", format!("must be greater than 0, got {learning_rate:?}")));
        }
        let l2 = optional_number(object, "l2")?;
        if let Some(l2) = l2.filter(|l2| *l2 < 0.0) {
            return Err(invalid("l2", format!("must not be negative, got {l2:?}")));
        }
        let seed = optional_integer(object, "seed", 0, u64::MAX)?.unwrap_or(0);
        let eval_input = optional_path(object, "eval_input")?;
        let holdout = optional_number(object, "holdout")?.unwrap_or(if eval_input.is_some() {
            0.0
        } else {
            defaults::HOLDOUT
        });
        if !(0.0..1.0).contains(&holdout) {
            return Err(invalid("holdout", format!("must be at least 0 and less than 1, got {holdout:?}")));
        }
        let model_out = required_path(object, "model_out")?;
        let dead_letter =
            optional_path(object, "dead_letter")?.unwrap_or_else(|| dead_letter_beside(&model_out));
        let format_param = optional_format(object)?;
        let format = file_format("input", &input, format_param)?;
        let eval_format = match &eval_input {
            Some(path) => Some(file_format("eval_input", path, format_param)?),
            None => None,
        };
        let batch_size = u64::from(config.batch_size.max(1));
        let shuffle_batches = match optional_integer(object, "shuffle_batches", 1, u64::from(u32::MAX))? {
            Some(batches) if batches.saturating_mul(batch_size) > SHUFFLE_ROWS_MAX => {
                return Err(invalid(
                    "shuffle_batches",
                    format!(
                        "times batch_size ({batch_size}) must be at most {SHUFFLE_ROWS_MAX} rows, got {batches}"
                    ),
                ));
            }
            Some(batches) => batches,
            None => (SHUFFLE_ROWS_MAX / batch_size).clamp(1, defaults::SHUFFLE_BATCHES),
        };
        let checkpoint_batches = optional_integer(object, "checkpoint_batches", 1, u64::from(u32::MAX))?
            .unwrap_or(defaults::CHECKPOINT_BATCHES);
        Ok(TrainParams {
            input,
            format,
            label,
            features,
            epochs: to_u32(epochs),
            tolerance,
            patience: to_u32(patience),
            learning_rate,
            l2,
            seed,
            holdout,
            eval_input,
            eval_format,
            model_out,
            dead_letter,
            shuffle_batches: to_u32(shuffle_batches),
            checkpoint_batches: to_u32(checkpoint_batches),
        })
    }
}

/// The default dead-letter file: `<stem of model_out>.dead_letters.jsonl` in `model_out`'s folder.
fn dead_letter_beside(model_out: &Path) -> PathBuf {
    let stem = model_out.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    model_out.with_file_name(format!("{stem}.dead_letters.jsonl"))
}

/// A value already bounded by a `u32` maximum, as a `u32`.
fn to_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn invalid(param: &str, reason: impl Into<String>) -> TrainError {
    TrainError::InvalidParam { param: param.to_owned(), reason: reason.into() }
}

/// `object[name]`, with `null` meaning absent.
fn present<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|value| !value.is_null())
}

fn required_string(object: &Map<String, Value>, name: &str) -> Result<String, TrainError> {
    match present(object, name) {
        None => Err(invalid(name, "is required")),
        Some(Value::String(text)) if text.trim().is_empty() => Err(invalid(name, "must not be empty")),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(invalid(name, format!("must be a string, got {}", json_kind(other)))),
    }
}

fn required_path(object: &Map<String, Value>, name: &str) -> Result<PathBuf, TrainError> {
    required_string(object, name).map(PathBuf::from)
}

fn optional_path(object: &Map<String, Value>, name: &str) -> Result<Option<PathBuf>, TrainError> {
    match present(object, name) {
        None => Ok(None),
        Some(_) => required_path(object, name).map(Some),
    }
}

/// A non-empty list of distinct, non-empty strings.
fn optional_names(object: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, TrainError> {
    let Some(value) = present(object, name) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(invalid(name, format!("must be an array of strings, got {}", json_kind(value))));
    };
    if items.is_empty() {
        return Err(invalid(name, "must not be empty"));
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(text) if text.is_empty() => {
                return Err(invalid(name, "must not contain an empty name"));
            }
            Value::String(text) if names.contains(text) => {
                return Err(invalid(name, format!("names `{text}` twice")));
            }
            Value::String(text) => names.push(text.clone()),
            other => {
                return Err(invalid(
                    name,
                    format!("must be an array of strings, got {} in it", json_kind(other)),
                ));
            }
        }
    }
    Ok(Some(names))
}

/// A whole number in `min ..= max`.
fn optional_integer(
    object: &Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, TrainError> {
    let Some(value) = present(object, name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(invalid(name, format!("must be a whole number, got {}", json_kind(value))));
    };
    let Some(whole) = number.as_u64() else {
        return Err(if number.as_i64().is_some() {
            invalid(name, format!("must not be negative, got {number}"))
        } else {
            invalid(name, format!("must be a whole number, got {number}"))
        });
    };
    if whole < min {
        return Err(invalid(name, format!("must be at least {min}, got {whole}")));
    }
    if whole > max {
        return Err(invalid(name, format!("must be at most {max}, got {whole}")));
    }
    Ok(Some(whole))
}

/// A finite number.
fn optional_number(object: &Map<String, Value>, name: &str) -> Result<Option<f64>, TrainError> {
    let Some(value) = present(object, name) else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(number) if number.is_finite() => Ok(Some(number)),
        Some(number) => Err(invalid(name, format!("must be a finite number, got {number}"))),
        None => Err(invalid(name, format!("must be a number, got {}", json_kind(value)))),
    }
}

fn optional_format(object: &Map<String, Value>) -> Result<Option<DataFormat>, TrainError> {
    let Some(value) = present(object, "format") else {
        return Ok(None);
    };
    match value.as_str() {
        Some("csv") => Ok(Some(DataFormat::Csv)),
        Some("jsonl") => Ok(Some(DataFormat::JsonLines)),
        Some(other) => Err(invalid("format", format!("must be \"csv\" or \"jsonl\", got {other:?}"))),
        None => Err(invalid("format", format!("must be a string, got {}", json_kind(value)))),
    }
}

/// The format of the file named by `param`: the `format` param, or the file's extension.
fn file_format(param: &str, path: &Path, format: Option<DataFormat>) -> Result<DataFormat, TrainError> {
    if let Some(format) = format {
        return Ok(format);
    }
    DataFormat::from_path(path).ok_or_else(|| {
        invalid(
            param,
            format!(
                "must end in .csv, .jsonl or .ndjson (or set format to \"csv\" or \"jsonl\"), got {}",
                path.display()
            ),
        )
    })
}
