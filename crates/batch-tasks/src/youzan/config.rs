//! The `youzan_order` kind's params (`input`, `output`, `dead_letter`, `rules`, `provinces`) and
//! loading the tables they name.

use std::path::PathBuf;

use serde::Deserialize;

use crate::youzan::categories::Categories;
use crate::youzan::enrich::YouzanProcessor;
use crate::youzan::error::YouzanError;
use crate::youzan::provinces::Provinces;

/// The params of a `youzan_order` task (a JSON object).
///
/// ```
/// use batch_tasks::youzan::YouzanParams;
///
/// let params = YouzanParams::from_json(&serde_json::json!({
///     "input": "trades.jsonl",
///     "output": "enriched.jsonl",
///     "dead_letter": "invalid.jsonl",
/// }))
/// .unwrap();
/// assert!(params.rules.is_none()); // the compiled-in categories.json
///
/// let error = YouzanParams::from_json(&serde_json::json!({ "input": "", "output": "o", "dead_letter": "d" }))
///     .unwrap_err();
/// assert_eq!(error.param(), "input");
/// assert_eq!(error.to_string(), "invalid parameter input: must not be empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YouzanParams {
    /// The JSON-lines file of trades to read.
    pub input: PathBuf,
    /// The JSON-lines file of enriched orders to write.
    pub output: PathBuf,
    /// The JSON-lines file of invalid records to write.
    pub dead_letter: PathBuf,
    /// A category rules file replacing the compiled-in `categories.json`.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// A provinces CSV file replacing the compiled-in `cn-provinces.csv`.
    #[serde(default)]
    pub provinces: Option<PathBuf>,
}

impl YouzanParams {
    /// Reads and checks the params: every path is a non-empty string, `input`, `output` and
    /// `dead_letter` are present, `output` and `dead_letter` differ from each other and from
    /// `input`, and no other key is present. Does not touch the files.
    pub fn from_json(params: &serde_json::Value) -> Result<YouzanParams, YouzanError> {
        let Some(object) = params.as_object() else {
            return Err(invalid("params", "must be a JSON object"));
        };
        for (name, required) in
            [("input", true), ("output", true), ("dead_letter", true), ("rules", false), ("provinces", false)]
        {
            match object.get(name) {
                None | Some(serde_json::Value::Null) if required => return Err(invalid(name, "is required")),
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(path)) if path.is_empty() => {
                    return Err(invalid(name, "must not be empty"));
                }
                Some(serde_json::Value::String(_)) => {}
                Some(_) => return Err(invalid(name, "must be a path (a string)")),
            }
        }
        if let Some(unknown) = object
            .keys()
            .find(|key| !["input", "output", "dead_letter", "rules", "provinces"].contains(&key.as_str()))
        {
            return Err(invalid(unknown, "is not a parameter of youzan_order"));
        }
        let params =
            YouzanParams::deserialize(params).map_err(|error| invalid("params", error.to_string()))?;
        if params.output == params.input {
            return Err(invalid("output", "must differ from input"));
        }
        if params.dead_letter == params.input || params.dead_letter == params.output {
            return Err(invalid("dead_letter", "must differ from input and output"));
        }
        Ok(params)
    }

    /// Loads the tables: the user's `rules` and `provinces` files when given (read and checked),
    /// the compiled-in ones otherwise.
    pub fn processor(&self) -> Result<YouzanProcessor, YouzanError> {
        let provinces = match &self.provinces {
            Some(path) => Provinces::from_file(path)?,
            None => Provinces::defaults(),
        };
        let categories = match &self.rules {
            Some(path) => Categories::from_file(path)?,
            None => Categories::defaults(),
        };
        Ok(YouzanProcessor::new(provinces, categories))
    }
}

fn invalid(param: &str, reason: impl Into<String>) -> YouzanError {
    YouzanError::InvalidParam { param: param.to_owned(), reason: reason.into() }
}
