//! The `train` kind described for its users ([`spec`]): its params as
//! [`TrainParams::from_json`](super::TrainParams::from_json) reads them, the config settings it
//! honours, and its default config.

use batch_model::BatchConfig;

use crate::params::{ConfigSetting, KindSpec, ParamSpec, ParamType};
use crate::train::config::{DataFormat, EPOCHS_MAX, defaults};

/// `batch_size` of a train task created without a config: the mini-batch.
const BATCH_SIZE: u32 = 64;

/// What `train` tells front ends. It honours every setting: `batch_size` (the mini-batch),
/// `concurrency` (threads computing a mini-batch's gradient), `timeout` (each mini-batch's work),
/// `max_retries` (an overrun retried from the last checkpoint), `skip_limit` and `durability`.
pub(crate) fn spec() -> KindSpec {
    KindSpec::new(
        "Train a logistic (binary) or softmax (multi-class) regression model by mini-batch SGD over a \
         CSV or JSON-lines dataset, and save it as JSON.",
    )
    .with_params(vec![
        ParamSpec::new("input", ParamType::Path, "The dataset to train on (.csv, .jsonl or .ndjson).")
            .required()
            .input(),
        ParamSpec::new("label", ParamType::String, "The label column.").required(),
        ParamSpec::new("model_out", ParamType::Path, "Where the model is written (JSON).")
            .required()
            .output(),
        ParamSpec::new(
            "features",
            ParamType::StringList,
            "The feature columns; default: every other column that holds numbers.",
        ),
        ParamSpec::new(
            "epochs",
            ParamType::Integer,
            format!(
                "The most passes over the training rows, 1 to {EPOCHS_MAX}; the stopping rule (tolerance, \
                 patience) usually ends training sooner."
            ),
        )
        .with_default(defaults::EPOCHS),
        ParamSpec::new(
            "learning_rate",
            ParamType::Number,
            "AdaGrad's base step size (greater than 0); each weight's step shrinks with its gradients.",
        )
        .with_default(defaults::LEARNING_RATE),
        ParamSpec::new(
            "l2",
            ParamType::Number,
            "The L2 penalty on the weights (0 or more); default: 1/n for n training rows, the objective of \
             scikit-learn's LogisticRegression() (C=1).",
        ),
        ParamSpec::new(
            "tolerance",
            ParamType::Number,
            "The least drop of the epoch's objective that counts as progress (0 or more).",
        )
        .with_default(defaults::TOLERANCE),
        ParamSpec::new(
            "patience",
            ParamType::Integer,
            "Epochs in a row without progress after which training stops (0: run every epoch).",
        )
        .with_default(defaults::PATIENCE),
        ParamSpec::new("seed", ParamType::Integer, "Seeds the hold-out split and the shuffle.")
            .with_default(0),
        ParamSpec::new(
            "holdout",
            ParamType::Number,
            "The share of rows held out of training to measure accuracy on, from 0 to below 1; default: \
             0.2, or 0 when eval_input is given.",
        ),
        ParamSpec::new(
            "eval_input",
            ParamType::Path,
            "A second dataset, with the same columns, to measure accuracy on after training.",
        )
        .input(),
        ParamSpec::new(
            "dead_letter",
            ParamType::Path,
            "Where bad rows are written (JSON lines); default: MODEL.dead_letters.jsonl beside model_out.",
        )
        .output(),
        ParamSpec::new(
            "format",
            ParamType::Choice,
            "The data files' format; default: from each file's extension.",
        )
        .with_choices([DataFormat::Csv, DataFormat::JsonLines].map(DataFormat::as_str)),
        ParamSpec::new(
            "shuffle_batches",
            ParamType::Integer,
            "Mini-batches per shuffle window; default: 10, fewer if the window would pass 1,000,000 rows.",
        ),
        ParamSpec::new(
            "checkpoint_batches",
            ParamType::Integer,
            "Mini-batches read between two checkpoints (and one at the end of every pass).",
        )
        .with_default(100),
    ])
    .with_settings([
        ConfigSetting::BatchSize,
        ConfigSetting::MaxRetries,
        ConfigSetting::Timeout,
        ConfigSetting::Concurrency,
        ConfigSetting::SkipLimit,
        ConfigSetting::Durability,
    ])
    .with_default_config(BatchConfig { batch_size: BATCH_SIZE, ..BatchConfig::default() })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::train::TrainParams;

    /// The params `from_json` knows, read from its own message for an unknown one.
    fn known_params() -> Vec<String> {
        let error =
            TrainParams::from_json(&json!({ "undescribed": 1 }), &super::spec().default_config).unwrap_err();
        let message = error.to_string();
        let list = message.split_once("expected one of ").unwrap().1.trim_end_matches(')');
        list.split(", ").map(str::to_owned).collect()
    }

    #[test]
    fn every_param_the_parser_knows_is_described_and_no_other() {
        let spec = super::spec();
        let mut described: Vec<String> = spec
            .params
            .iter()
            .flat_map(|param| std::iter::once(&param.name).chain(&param.aliases))
            .cloned()
            .collect();
        described.sort_unstable();
        let mut known = known_params();
        known.sort_unstable();
        assert_eq!(described, known);
    }

    #[test]
    fn constant_defaults_are_the_parsers() {
        let spec = super::spec();
        let params = TrainParams::from_json(
            &json!({ "input": "a.csv", "label": "y", "model_out": "m.json" }),
            &spec.default_config,
        )
        .unwrap();
        let parsed = serde_json::to_value(&params).unwrap();
        for param in spec.params.iter().filter(|param| param.default.is_some()) {
            let default = param.default.clone().unwrap();
            assert_eq!(
                parsed[&param.name].as_f64(),
                default.as_f64(),
                "{}: the parser defaults to {}, the description says {default}",
                param.name,
                parsed[&param.name]
            );
        }
        assert_ne!(parsed["epochs"], Value::Null);
    }
}
