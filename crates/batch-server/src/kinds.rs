//! What each task kind takes: its parameters with their type, whether required, help, and role
//! (an input path, an output path, or a setting). `GET /api/v1/kinds`, the dashboard's submit form and
//! the data-root check all read it from here.
//!
//! Interim: the kinds do not describe themselves yet (`TaskKind::params()` is being added on another
//! branch); until then the built-in kinds' parameters are written out below, and a kind without a
//! description has no path parameters checked. Switching means replacing [`describe`]'s body with a
//! conversion of `kind.params()`.

use batch_model::TaskType;
use batch_tasks::Registry;
use serde::{Deserialize, Serialize};

/// What a parameter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamRole {
    /// A file the task reads: confined to the data roots.
    Input,
    /// A file the task writes (or truncates): confined to the data roots.
    Output,
    /// Any other setting.
    Setting,
}

/// One parameter of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Its name in the task's `params`.
    pub name: String,
    /// Its JSON shape: `path`, `string`, `integer`, `number`, `boolean` or `string_list` (a JSON array
    /// of strings; the dashboard takes it comma-separated).
    #[serde(rename = "type")]
    pub param_type: String,
    /// Whether a task must give it.
    pub required: bool,
    /// What it does, for people.
    pub help: String,
    /// Input path, output path or setting.
    pub role: ParamRole,
}

/// A kind and its parameters, as `GET /api/v1/kinds` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindSpec {
    /// The kind's type name.
    pub task_type: TaskType,
    /// Its parameters, in the order a form shows them.
    pub params: Vec<ParamSpec>,
}

/// The answer of `GET /api/v1/kinds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindsResponse {
    /// Every registered kind, by name.
    pub kinds: Vec<KindSpec>,
}

/// Every kind in `registry`, described.
pub fn describe_all(registry: &Registry) -> KindsResponse {
    let kinds = registry
        .names()
        .filter_map(|name| name.parse::<TaskType>().ok())
        .map(|task_type| KindSpec { params: describe(&task_type), task_type })
        .collect();
    KindsResponse { kinds }
}

/// The parameters of `task_type` (empty for a kind that does not describe them).
pub fn describe(task_type: &TaskType) -> Vec<ParamSpec> {
    let table: &[(&str, &str, bool, ParamRole, &str)] = match task_type {
        TaskType::YouzanOrder => &[
            ("input", "path", true, ParamRole::Input, "The trades (JSON lines)."),
            ("output", "path", true, ParamRole::Output, "Where enriched orders go (JSON lines)."),
            (
                "dead_letter",
                "path",
                true,
                ParamRole::Output,
                "Where invalid records go, with their line numbers.",
            ),
            ("rules", "path", false, ParamRole::Input, "Category rules replacing the built-in table."),
            ("provinces", "path", false, ParamRole::Input, "Provinces replacing the built-in table."),
        ],
        TaskType::Train => &[
            ("input", "path", true, ParamRole::Input, "The dataset (.csv or .jsonl)."),
            ("label", "string", true, ParamRole::Setting, "The label column."),
            ("model_out", "path", true, ParamRole::Output, "Where the model (JSON) is written."),
            (
                "features",
                "string_list",
                false,
                ParamRole::Setting,
                "The feature columns (default: every other numeric column).",
            ),
            (
                "eval_input",
                "path",
                false,
                ParamRole::Input,
                "A second dataset to measure accuracy on after training.",
            ),
            (
                "dead_letter",
                "path",
                false,
                ParamRole::Output,
                "Where bad rows go (default: beside the model).",
            ),
            ("epochs", "integer", false, ParamRole::Setting, "Passes over the training rows (default 10)."),
            ("learning_rate", "number", false, ParamRole::Setting, "The SGD step size (default 0.1)."),
            ("l2", "number", false, ParamRole::Setting, "The L2 penalty (default 0.0001)."),
            (
                "seed",
                "integer",
                false,
                ParamRole::Setting,
                "Seeds the hold-out split and the shuffle (default 0).",
            ),
            (
                "holdout",
                "number",
                false,
                ParamRole::Setting,
                "The share of rows held out to measure accuracy on (default 0.2).",
            ),
            ("format", "string", false, ParamRole::Setting, "csv or jsonl (default: from the extension)."),
        ],
        TaskType::BatchProcess => &[
            ("input", "path", true, ParamRole::Input, "The records (JSON lines or CSV)."),
            ("output", "path", true, ParamRole::Output, "Where kept rows go (JSON lines)."),
            (
                "dead_letters",
                "path",
                false,
                ParamRole::Output,
                "Where rejected records go (default: beside the output).",
            ),
            (
                "format",
                "string",
                false,
                ParamRole::Setting,
                "json_lines or csv (default: from the extension).",
            ),
            (
                "filter",
                "string",
                false,
                ParamRole::Setting,
                "Keep records matching this expression, e.g. amount >= 100.",
            ),
            ("select", "string_list", false, ParamRole::Setting, "Keep only these fields."),
            ("rename", "string_list", false, ParamRole::Setting, "Rename fields: from=to pairs."),
            ("dedup_key", "string_list", false, ParamRole::Setting, "Keep the first record of each key."),
            ("group_by", "string_list", false, ParamRole::Setting, "Group rows by these fields."),
            (
                "aggregates",
                "string_list",
                false,
                ParamRole::Setting,
                "Aggregates per group: count, sum:f, min:f, max:f, avg:f.",
            ),
        ],
        TaskType::Custom(_) => &[],
    };
    table
        .iter()
        .map(|&(name, param_type, required, role, help)| ParamSpec {
            name: name.to_owned(),
            param_type: param_type.to_owned(),
            required,
            help: help.to_owned(),
            role,
        })
        .collect()
}

/// The names of `task_type`'s path parameters (inputs and outputs).
pub fn path_params(task_type: &TaskType) -> Vec<String> {
    describe(task_type)
        .into_iter()
        .filter(|param| param.role != ParamRole::Setting)
        .map(|param| param.name)
        .collect()
}

/// Where a task's dead letters are: the `dead_letter`/`dead_letters` parameter, or the kind's default
/// beside its output. `None` when the kind has no known dead-letter file.
///
/// Interim, like the table above: the kinds should say where their dead letters go.
pub fn dead_letter_path(task_type: &TaskType, params: &serde_json::Value) -> Option<(String, String)> {
    let text = |name: &str| params.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    for name in ["dead_letter", "dead_letters"] {
        if let Some(path) = text(name) {
            return Some((name.to_owned(), path));
        }
    }
    let with_suffix = |base: &str, stem_suffix: &str| {
        let base = std::path::Path::new(base);
        let stem = base.file_stem()?.to_string_lossy().into_owned();
        Some(base.with_file_name(format!("{stem}{stem_suffix}")).to_string_lossy().into_owned())
    };
    match task_type {
        TaskType::Train => text("model_out")
            .and_then(|model| with_suffix(&model, ".dead_letters.jsonl"))
            .map(|path| ("dead_letter".to_owned(), path)),
        TaskType::BatchProcess => text("output")
            .and_then(|output| with_suffix(&output, ".dead.jsonl"))
            .map(|path| ("dead_letters".to_owned(), path)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_kind_is_described_with_its_paths() {
        let kinds = describe_all(&batch_tasks::builtin_registry());
        assert_eq!(kinds.kinds.len(), 3);
        for kind in &kinds.kinds {
            assert!(kind.params.iter().any(|param| param.name == "input" && param.role == ParamRole::Input));
        }
        assert_eq!(
            path_params(&TaskType::YouzanOrder),
            ["input", "output", "dead_letter", "rules", "provinces"]
        );
        let json = serde_json::to_value(&kinds).unwrap_or_default();
        assert_eq!(json["kinds"][0]["params"][0]["type"], "path");
    }

    #[test]
    fn dead_letters_default_beside_the_output() {
        let params = serde_json::json!({ "output": "/d/big.jsonl" });
        assert_eq!(
            dead_letter_path(&TaskType::BatchProcess, &params),
            Some(("dead_letters".to_owned(), "/d/big.dead.jsonl".to_owned()))
        );
        let params = serde_json::json!({ "model_out": "/d/m.json" });
        assert_eq!(
            dead_letter_path(&TaskType::Train, &params).map(|(_, path)| path),
            Some("/d/m.dead_letters.jsonl".to_owned())
        );
        let params = serde_json::json!({ "dead_letter": "/d/x.jsonl" });
        assert_eq!(
            dead_letter_path(&TaskType::YouzanOrder, &params).map(|(_, path)| path),
            Some("/d/x.jsonl".to_owned())
        );
    }
}
