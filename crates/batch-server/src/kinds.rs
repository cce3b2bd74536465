//! What each task kind takes, as the kinds describe themselves (`TaskKind::spec`): `GET
//! /api/v1/kinds`, the dashboard's submit form and the data-root check all read it from here.
//!
//! A parameter whose role is input or output names a file the task reads or writes, so it is
//! confined to the data roots — under its name and under every alias the kind accepts.

use batch_model::TaskType;
use batch_tasks::{KindDescription, ParamRole, Registry};
use serde::{Deserialize, Serialize};

/// The answer of `GET /api/v1/kinds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindsResponse {
    /// Every registered kind, by name.
    pub kinds: Vec<KindDescription>,
}

impl KindsResponse {
    /// The description of `task_type`, if it is registered.
    pub fn kind(&self, task_type: &TaskType) -> Option<&KindDescription> {
        self.kinds.iter().find(|kind| &kind.task_type == task_type)
    }

    /// Every key (name or alias) of `task_type`'s path parameters (inputs and outputs).
    pub fn path_params(&self, task_type: &TaskType) -> Vec<String> {
        let Some(kind) = self.kind(task_type) else {
            return Vec::new();
        };
        kind.params
            .iter()
            .filter(|param| matches!(param.role, ParamRole::Input | ParamRole::Output))
            .flat_map(|param| std::iter::once(param.name.clone()).chain(param.aliases.iter().cloned()))
            .collect()
    }

    /// Where a task's dead letters are: its dead-letter parameter (by name or alias), or the kind's
    /// default beside its output; with the key it was found under. `None` when the kind has no known
    /// dead-letter file.
    pub fn dead_letter_path(
        &self,
        task_type: &TaskType,
        params: &serde_json::Value,
    ) -> Option<(String, String)> {
        let text = |name: &str| params.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        let mut keys: Vec<String> = vec!["dead_letter".to_owned(), "dead_letters".to_owned()];
        if let Some(kind) = self.kind(task_type) {
            for param in kind
                .params
                .iter()
                .filter(|param| param.is_named("dead_letter") || param.is_named("dead_letters"))
            {
                keys.push(param.name.clone());
                keys.extend(param.aliases.iter().cloned());
            }
        }
        if let Some((key, path)) = keys.iter().find_map(|key| text(key).map(|path| (key.clone(), path))) {
            return Some((key, path));
        }
        // The kinds' documented defaults (their params' help says so): beside the model or output.
        let beside = |base: &str, suffix: &str| {
            let base = std::path::Path::new(base);
            let stem = base.file_stem()?.to_string_lossy().into_owned();
            Some(base.with_file_name(format!("{stem}{suffix}")).to_string_lossy().into_owned())
        };
        match task_type {
            TaskType::Train => text("model_out")
                .and_then(|model| beside(&model, ".dead_letters.jsonl"))
                .map(|path| ("dead_letter".to_owned(), path)),
            TaskType::BatchProcess => text("output")
                .and_then(|output| beside(&output, ".dead.jsonl"))
                .map(|path| ("dead_letters".to_owned(), path)),
            _ => None,
        }
    }
}

/// Every kind in `registry`, described.
pub fn describe_all(registry: &Registry) -> KindsResponse {
    KindsResponse { kinds: registry.descriptions() }
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
        let paths = kinds.path_params(&TaskType::YouzanOrder);
        for name in ["input", "output", "dead_letter", "rules", "provinces"] {
            assert!(paths.iter().any(|path| path == name), "{name} in {paths:?}");
        }
        assert!(kinds.path_params(&TaskType::Custom("nope".to_owned())).is_empty());
    }

    #[test]
    fn dead_letters_default_beside_the_output() {
        let kinds = describe_all(&batch_tasks::builtin_registry());
        let params = serde_json::json!({ "output": "/d/big.jsonl" });
        assert_eq!(
            kinds.dead_letter_path(&TaskType::BatchProcess, &params).map(|(_, path)| path),
            Some("/d/big.dead.jsonl".to_owned())
        );
        let params = serde_json::json!({ "model_out": "/d/m.json" });
        assert_eq!(
            kinds.dead_letter_path(&TaskType::Train, &params).map(|(_, path)| path),
            Some("/d/m.dead_letters.jsonl".to_owned())
        );
        let params = serde_json::json!({ "dead_letter": "/d/x.jsonl" });
        assert_eq!(
            kinds.dead_letter_path(&TaskType::YouzanOrder, &params).map(|(_, path)| path),
            Some("/d/x.jsonl".to_owned())
        );
    }
}
