//! The `youzan_order` kind's params (`input`, `output`, `dead_letter`, `rules`, `provinces`) and
//! loading the tables they name.

use std::path::PathBuf;

use serde::Deserialize;

use crate::records::InputRange;
use crate::youzan::api::{API_PARAMS, ApiParams, TokenSource};
use crate::youzan::categories::Categories;
use crate::youzan::enrich::YouzanProcessor;
use crate::youzan::error::YouzanError;
use crate::youzan::provinces::Provinces;

/// Every param the kind reads (`input_range` is set by the kind's split on its partitions).
const PARAMS: [&str; 7] =
    ["input", "output", "dead_letter", "dead_letters", "rules", "provinces", "input_range"];

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
pub struct YouzanParams {
    /// The JSON-lines file of trades to read.
    pub input: PathBuf,
    /// The JSON-lines file of enriched orders to write.
    pub output: PathBuf,
    /// The JSON-lines file of invalid records to write (param `dead_letter`, alias `dead_letters`;
    /// default `<output's stem>.dead_letters.jsonl` beside the output).
    #[serde(default)]
    pub dead_letter: PathBuf,
    /// A category rules file replacing the compiled-in `categories.json`.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// A provinces CSV file replacing the compiled-in `cn-provinces.csv`.
    #[serde(default)]
    pub provinces: Option<PathBuf>,
    /// Only the lines of this part of `input` (a partition of a partitioned task: set by the
    /// kind's split; `{"start": bytes, "line": n, "end": bytes}`).
    #[serde(default)]
    pub input_range: Option<InputRange>,
    /// When `input` is the YouZan open API's base URL (`https://…`): what to list, and how.
    #[serde(skip)]
    pub api: Option<ApiParams>,
}

impl YouzanParams {
    /// Reads and checks the params: every path is a non-empty string, `input` and `output` are
    /// present, `output` and `dead_letter` differ from each other and from `input`, and no other
    /// key is present. Does not touch the files ([`check_files`](YouzanParams::check_files) does).
    pub fn from_json(params: &serde_json::Value) -> Result<YouzanParams, YouzanError> {
        let Some(object) = params.as_object() else {
            return Err(invalid("params", "must be a JSON object"));
        };
        if object.get("dead_letter").is_some_and(|value| !value.is_null())
            && object.get("dead_letters").is_some_and(|value| !value.is_null())
        {
            return Err(invalid("dead_letter", "is also given as dead_letters; give one"));
        }
        for (name, required) in [
            ("input", true),
            ("output", true),
            ("dead_letter", false),
            ("dead_letters", false),
            ("rules", false),
            ("provinces", false),
        ] {
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
        if let Some(range) = object.get("input_range").filter(|value| !value.is_null()) {
            let range = InputRange::deserialize(range).map_err(|error| {
                invalid(
                    "input_range",
                    format!("must be {{\"start\": bytes, \"line\": n, \"end\": bytes}}: {error}"),
                )
            })?;
            range.check().map_err(|reason| invalid("input_range", reason))?;
        }
        if let Some(unknown) =
            object.keys().find(|key| !PARAMS.contains(&key.as_str()) && !API_PARAMS.contains(&key.as_str()))
        {
            return Err(invalid(unknown, "is not a parameter of youzan_order"));
        }
        let input = object.get("input").and_then(serde_json::Value::as_str).unwrap_or_default();
        let api = if ApiParams::is_api(input) {
            if object.get("input_range").is_some_and(|value| !value.is_null()) {
                return Err(invalid("input_range", "applies to a file input, not to the YouZan API"));
            }
            Some(ApiParams::from_params(input, object)?)
        } else {
            if let Some(name) =
                API_PARAMS.iter().find(|name| object.get(**name).is_some_and(|value| !value.is_null()))
            {
                return Err(invalid(
                    name,
                    "applies only when input is the YouZan open API (an https:// URL such as https://open.youzan.com)",
                ));
            }
            None
        };
        let mut object = object.clone();
        if let Some(alias) = object.remove("dead_letters") {
            object.insert("dead_letter".to_owned(), alias);
        }
        for name in ["dead_letter", "input_range"] {
            if object.get(name).is_some_and(serde_json::Value::is_null) {
                object.remove(name);
            }
        }
        object.retain(|key, _| PARAMS.contains(&key.as_str()));
        let mut params = YouzanParams::deserialize(serde_json::Value::Object(object))
            .map_err(|error| invalid("params", error.to_string()))?;
        params.api = api;
        if params.dead_letter.as_os_str().is_empty() {
            params.dead_letter = crate::records::dead_letters_beside(&params.output);
        }
        if params.output == params.input {
            return Err(invalid("output", "must differ from input"));
        }
        if params.dead_letter == params.input || params.dead_letter == params.output {
            return Err(invalid("dead_letter", "must differ from input and output"));
        }
        Ok(params)
    }

    /// Checks the files when the task is created: `input` is a readable file (or, for the API,
    /// `token_file` is), the folders of `output` and `dead_letter` exist. The error names the param.
    pub fn check_files(&self) -> Result<(), YouzanError> {
        match &self.api {
            None => {
                crate::records::check_input_file(&self.input).map_err(|reason| invalid("input", reason))?
            }
            Some(ApiParams { token: TokenSource::File(path), .. }) => {
                crate::records::check_input_file(path).map_err(|reason| invalid("token_file", reason))?;
            }
            Some(_) => {}
        }
        crate::records::check_output_folder(&self.output).map_err(|reason| invalid("output", reason))?;
        crate::records::check_output_folder(&self.dead_letter)
            .map_err(|reason| invalid("dead_letter", reason))
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
