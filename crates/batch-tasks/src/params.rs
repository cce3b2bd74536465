//! What a task kind tells its users about itself: its parameters ([`ParamSpec`]), the
//! [`BatchConfig`] settings it honours ([`ConfigSetting`]) and its default config, gathered in a
//! [`KindSpec`] ([`TaskKind::spec`](crate::TaskKind::spec)) and served whole as a
//! [`KindDescription`].
//!
//! The descriptions are data, so every front end is generated from them rather than written per
//! kind: the `batch run <kind>` options and their help, the hints that name the option to fix, the
//! HTTP API's `GET /api/v1/kinds` and the dashboard's submit form. Adding a kind touches one place:
//! the kind.
//!
//! A description documents what the kind's own parsing accepts; it does not replace it. The kind's
//! [`validate`](crate::TaskKind::validate) stays the judge of a task's params (bounds, paths that
//! must differ, expressions), and its errors name the param, which front ends map back to their
//! option or field through the description.

use batch_model::{BatchConfig, Durability, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a parameter's value, as it is written in the task's JSON params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ParamType {
    /// A JSON string.
    String,
    /// A file path (or, for a kind that reads one, an address such as `postgres://…`): a JSON
    /// string. Front ends resolve relative paths before they submit the task, and a server confines
    /// them to its data roots.
    Path,
    /// A whole number (JSON number).
    Integer,
    /// A number (JSON number).
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON array of strings (a kind may also accept a single string).
    StringList,
    /// A duration: a humantime string such as `"30s"` or `"1m 30s"`.
    Duration,
    /// One of the strings in [`ParamSpec::choices`].
    Choice,
}

impl ParamType {
    /// The spelling in JSON: `string`, `path`, `integer`, `number`, `boolean`, `string_list`,
    /// `duration`, `choice`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Path => "path",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::StringList => "string_list",
            ParamType::Duration => "duration",
            ParamType::Choice => "choice",
        }
    }
}

/// What a parameter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ParamRole {
    /// Names data the task reads: an input file or address, a table it loads.
    Input,
    /// Names a file or address the task writes (created or truncated).
    Output,
    /// Any other setting.
    Setting,
}

/// One parameter of a task kind: how it is named, typed and documented.
///
/// Serialised as `{"name", "type", "required", "help", "default", "aliases", "role", "choices"}`,
/// every key always present (`default` is `null` when the kind has none, or when it is derived from
/// other params, which `help` then says).
///
/// ```
/// use batch_tasks::{ParamRole, ParamSpec, ParamType};
///
/// let spec = ParamSpec::new("input", ParamType::Path, "The trades to read (JSON lines).").required().input();
/// assert_eq!(spec.option_name(), "input");
/// let json = serde_json::to_value(&spec)?;
/// assert_eq!(json["type"], "path");
/// assert_eq!(json["role"], "input");
/// assert_eq!(json["default"], serde_json::Value::Null);
///
/// let epochs = ParamSpec::new("learning_rate", ParamType::Number, "The SGD step size.").with_default(0.1);
/// assert_eq!((epochs.role, epochs.required), (ParamRole::Setting, false));
/// assert_eq!(epochs.option_name(), "learning-rate");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParamSpec {
    /// The key in the task's params (snake_case).
    pub name: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub param_type: ParamType,
    /// Whether a task must set it.
    pub required: bool,
    /// One or two sentences for a user: what it does, its unit or syntax, a derived default.
    pub help: String,
    /// The value the kind uses when the param is absent, when it is a constant.
    #[serde(default)]
    pub default: Option<Value>,
    /// Other keys the kind accepts for the same param (older or alternative spellings).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What the param is for.
    pub role: ParamRole,
    /// The accepted values of a [`ParamType::Choice`] (empty for other types).
    #[serde(default)]
    pub choices: Vec<String>,
}

impl ParamSpec {
    /// An optional setting `name` of `param_type`, with no default.
    pub fn new(name: impl Into<String>, param_type: ParamType, help: impl Into<String>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            param_type,
            required: false,
            help: help.into(),
            default: None,
            aliases: Vec::new(),
            role: ParamRole::Setting,
            choices: Vec::new(),
        }
    }

    /// The same param, required.
    #[must_use]
    pub fn required(self) -> ParamSpec {
        ParamSpec { required: true, ..self }
    }

    /// The same param, naming data the task reads.
    #[must_use]
    pub fn input(self) -> ParamSpec {
        ParamSpec { role: ParamRole::Input, ..self }
    }

    /// The same param, naming a file the task writes.
    #[must_use]
    pub fn output(self) -> ParamSpec {
        ParamSpec { role: ParamRole::Output, ..self }
    }

    /// The same param with a constant default.
    #[must_use]
    pub fn with_default(self, default: impl Into<Value>) -> ParamSpec {
        ParamSpec { default: Some(default.into()), ..self }
    }

    /// The same param, also accepted under `alias`.
    #[must_use]
    pub fn with_alias(mut self, alias: impl Into<String>) -> ParamSpec {
        self.aliases.push(alias.into());
        self
    }

    /// The same param, a [`ParamType::Choice`] among `choices`.
    #[must_use]
    pub fn with_choices<I, S>(self, choices: I) -> ParamSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ParamSpec {
            param_type: ParamType::Choice,
            choices: choices.into_iter().map(Into::into).collect(),
            ..self
        }
    }

    /// The command-line spelling of the name: `_` becomes `-` (`model_out` -> `model-out`).
    pub fn option_name(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Whether `key` names this param: its name or one of its aliases.
    pub fn is_named(&self, key: &str) -> bool {
        self.name == key || self.aliases.iter().any(|alias| alias == key)
    }
}

/// A setting of [`BatchConfig`]. A kind lists those it honours
/// ([`KindSpec::settings`]); front ends refuse the others for that kind, so a setting is never
/// accepted and silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConfigSetting {
    /// [`BatchConfig::batch_size`].
    BatchSize,
    /// [`BatchConfig::max_retries`].
    MaxRetries,
    /// [`BatchConfig::timeout`].
    Timeout,
    /// [`BatchConfig::concurrency`].
    Concurrency,
    /// [`BatchConfig::skip_limit`].
    SkipLimit,
    /// [`BatchConfig::durability`].
    Durability,
    /// [`BatchConfig::partitions`]: honoured only by kinds that can split their input
    /// ([`TaskKind::can_partition`](crate::TaskKind::can_partition)).
    Partitions,
}

impl ConfigSetting {
    /// Every setting, in the order of [`BatchConfig`]'s fields.
    pub const ALL: [ConfigSetting; 7] = [
        ConfigSetting::BatchSize,
        ConfigSetting::MaxRetries,
        ConfigSetting::Timeout,
        ConfigSetting::Concurrency,
        ConfigSetting::SkipLimit,
        ConfigSetting::Durability,
        ConfigSetting::Partitions,
    ];

    /// The settings of a kind on the standard chunk runner that cannot split its input: every
    /// setting but [`Partitions`](ConfigSetting::Partitions).
    pub const RECORDS: [ConfigSetting; 6] = [
        ConfigSetting::BatchSize,
        ConfigSetting::MaxRetries,
        ConfigSetting::Timeout,
        ConfigSetting::Concurrency,
        ConfigSetting::SkipLimit,
        ConfigSetting::Durability,
    ];

    /// The setting's key in a JSON config (`batch_size`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ConfigSetting::BatchSize => "batch_size",
            ConfigSetting::MaxRetries => "max_retries",
            ConfigSetting::Timeout => "timeout",
            ConfigSetting::Concurrency => "concurrency",
            ConfigSetting::SkipLimit => "skip_limit",
            ConfigSetting::Durability => "durability",
            ConfigSetting::Partitions => "partitions",
        }
    }

    /// The setting named `name`, if any.
    ///
    /// ```
    /// use batch_tasks::ConfigSetting;
    ///
    /// assert_eq!(ConfigSetting::from_name("timeout"), Some(ConfigSetting::Timeout));
    /// assert_eq!(ConfigSetting::from_name("retries"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<ConfigSetting> {
        ConfigSetting::ALL.into_iter().find(|setting| setting.name() == name)
    }

    /// The setting's value in `config`, as JSON (the config's own serialisation: a humantime
    /// string for `timeout`, `null` for no skip limit).
    pub fn value(self, config: &BatchConfig) -> Value {
        match serde_json::to_value(config) {
            Ok(Value::Object(mut fields)) => fields.remove(self.name()).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// The setting described as a param, its default taken from `defaults` (a kind's default
    /// config), so that front ends generate settings and params alike.
    ///
    /// ```
    /// use batch_model::BatchConfig;
    /// use batch_tasks::{ConfigSetting, ParamType};
    ///
    /// let spec = ConfigSetting::Timeout.spec(&BatchConfig::default());
    /// assert_eq!((spec.name.as_str(), spec.param_type), ("timeout", ParamType::Duration));
    /// assert_eq!(spec.default, Some(serde_json::json!("30s")));
    /// ```
    pub fn spec(self, defaults: &BatchConfig) -> ParamSpec {
        let (param_type, help) = match self {
            ConfigSetting::BatchSize => (
                ParamType::Integer,
                "Items per chunk: the unit of writing and of a checkpoint (train: the mini-batch).",
            ),
            ConfigSetting::MaxRetries => {
                (ParamType::Integer, "Further attempts after a retryable failure of an item.")
            }
            ConfigSetting::Timeout => (
                ParamType::Duration,
                "Bound on one processing attempt of an item, e.g. 30s, 500ms, 1m 30s (TIMEOUT_ERROR past it).",
            ),
            ConfigSetting::Concurrency => {
                (ParamType::Integer, "Items processed in parallel within the task.")
            }
            ConfigSetting::SkipLimit => (
                ParamType::Integer,
                "Failed items tolerated before the task fails; none by default: the task completes and \
                 reports its failures.",
            ),
            ConfigSetting::Durability => (
                ParamType::Choice,
                "What a checkpoint survives: process (a killed process) or power_loss (fsync at every \
                 checkpoint; slower).",
            ),
            ConfigSetting::Partitions => (
                ParamType::Integer,
                "Split the input at record boundaries into up to this many partitions, each run by any \
                 worker as a task of its own, and merge them at the end into exactly what one run writes.",
            ),
        };
        let spec = ParamSpec::new(self.name(), param_type, help);
        let spec = match self {
            ConfigSetting::Durability => spec.with_choices(
                [Durability::Process, Durability::PowerLoss].map(|durability| durability.as_str()),
            ),
            _ => spec,
        };
        match self.value(defaults) {
            Value::Null => spec,
            default => spec.with_default(default),
        }
    }
}

/// What a kind says about itself ([`TaskKind::spec`](crate::TaskKind::spec)): a description, its
/// params, the config settings it honours, and the config a task gets when its request carries none.
///
/// [`KindSpec::default`] suits a kind on the standard chunk runner ([`records`](crate::records)):
/// every setting honoured but `partitions` ([`ConfigSetting::RECORDS`]), and
/// [`KindSpec::records_default_config`] (chunks of 1,000 records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindSpec {
    /// One sentence: what the kind does.
    pub description: String,
    /// Its params, required ones first.
    pub params: Vec<ParamSpec>,
    /// The [`BatchConfig`] settings it honours; front ends refuse the others.
    pub settings: Vec<ConfigSetting>,
    /// The config of a task created without one (`BatchManager::create_task`).
    pub default_config: BatchConfig,
}

impl Default for KindSpec {
    fn default() -> KindSpec {
        KindSpec {
            description: String::new(),
            params: Vec::new(),
            settings: ConfigSetting::RECORDS.to_vec(),
            default_config: KindSpec::records_default_config(),
        }
    }
}

impl KindSpec {
    /// `batch_size` of [`records_default_config`](Self::records_default_config).
    pub const RECORDS_BATCH_SIZE: u32 = 1000;

    /// A kind described by `description`, with no params, the settings of the chunk runner
    /// ([`ConfigSetting::RECORDS`]) honoured and the records default config.
    pub fn new(description: impl Into<String>) -> KindSpec {
        KindSpec { description: description.into(), ..KindSpec::default() }
    }

    /// The same, with `params`.
    #[must_use]
    pub fn with_params(self, params: Vec<ParamSpec>) -> KindSpec {
        KindSpec { params, ..self }
    }

    /// The same, honouring only `settings`.
    #[must_use]
    pub fn with_settings(self, settings: impl IntoIterator<Item = ConfigSetting>) -> KindSpec {
        KindSpec { settings: settings.into_iter().collect(), ..self }
    }

    /// The same, with `default_config`.
    #[must_use]
    pub fn with_default_config(self, default_config: BatchConfig) -> KindSpec {
        KindSpec { default_config, ..self }
    }

    /// The default config of a kind that processes short records on the chunk runner:
    /// [`BatchConfig::default`] with chunks of [`RECORDS_BATCH_SIZE`](Self::RECORDS_BATCH_SIZE)
    /// records. A checkpoint is a store transaction (a millisecond or more on SQLite); at
    /// `BatchConfig::default()`'s 10 records per chunk, commits would dominate the run.
    ///
    /// ```
    /// assert_eq!(batch_tasks::KindSpec::records_default_config().batch_size, 1000);
    /// ```
    pub fn records_default_config() -> BatchConfig {
        BatchConfig { batch_size: KindSpec::RECORDS_BATCH_SIZE, ..BatchConfig::default() }
    }

    /// The param named `key` (by name or alias).
    pub fn param(&self, key: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|param| param.is_named(key))
    }

    /// Whether the kind honours `setting`.
    pub fn honours(&self, setting: ConfigSetting) -> bool {
        self.settings.contains(&setting)
    }

    /// The honoured settings described as params, with the kind's defaults.
    pub fn setting_specs(&self) -> Vec<ParamSpec> {
        self.settings.iter().map(|setting| setting.spec(&self.default_config)).collect()
    }
}

/// A kind as the API serves it (`GET /api/v1/kinds`): its type name, its [`KindSpec`] with the
/// honoured settings described as params.
///
/// ```
/// let descriptions = batch_tasks::builtin_registry().descriptions();
/// let train = descriptions.iter().find(|kind| kind.task_type.as_str() == "train").unwrap();
/// let json = serde_json::to_value(train)?;
/// assert_eq!(json["params"][0]["name"], "input");
/// // train cannot split its input: `partitions` is not among its settings.
/// assert!(json["settings"].as_array().unwrap().iter().all(|setting| setting["name"] != "partitions"));
/// assert_eq!(json["default_config"]["batch_size"], 64);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindDescription {
    /// The type name tasks of this kind are created with.
    pub task_type: TaskType,
    /// What the kind does.
    pub description: String,
    /// Its params.
    pub params: Vec<ParamSpec>,
    /// The config settings it honours, as params with the kind's defaults.
    pub settings: Vec<ParamSpec>,
    /// The config of a task created without one.
    pub default_config: BatchConfig,
}

impl KindDescription {
    /// The description of a kind of `task_type` with `spec`.
    pub fn new(task_type: TaskType, spec: KindSpec) -> KindDescription {
        let settings = spec.setting_specs();
        KindDescription {
            task_type,
            description: spec.description,
            params: spec.params,
            settings,
            default_config: spec.default_config,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::builtin_registry;

    #[test]
    fn every_setting_is_described_with_its_default() {
        let config = BatchConfig { skip_limit: Some(5), ..BatchConfig::default() };
        for setting in ConfigSetting::ALL {
            let spec = setting.spec(&config);
            assert_eq!(spec.name, setting.name());
            assert_eq!(ConfigSetting::from_name(setting.name()), Some(setting));
            // The default is the config's own serialisation of the setting.
            assert_eq!(spec.default.as_ref(), serde_json::to_value(&config).unwrap().get(setting.name()));
        }
        assert_eq!(ConfigSetting::SkipLimit.spec(&BatchConfig::default()).default, None);
    }

    #[test]
    fn a_spec_serialises_every_key() {
        let spec = ParamSpec::new("format", ParamType::String, "The format.").with_choices(["csv", "jsonl"]);
        let json = serde_json::to_value(&spec).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 8, "{keys:?}");
        assert_eq!(json["type"], "choice");
        assert_eq!(json["choices"], json!(["csv", "jsonl"]));
        assert_eq!(serde_json::from_value::<ParamSpec>(json).unwrap(), spec);
    }

    #[test]
    fn builtin_kinds_describe_themselves() {
        let registry = builtin_registry();
        for description in registry.descriptions() {
            assert!(!description.description.is_empty(), "{}", description.task_type);
            assert!(!description.params.is_empty(), "{}", description.task_type);
            let mut names: Vec<&str> = description
                .params
                .iter()
                .flat_map(|param| {
                    std::iter::once(param.name.as_str()).chain(param.aliases.iter().map(String::as_str))
                })
                .collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count, "{}: a name is given twice", description.task_type);
            assert!(description.default_config.validate().is_ok());
            for param in &description.params {
                assert_eq!(
                    param.param_type == ParamType::Choice,
                    !param.choices.is_empty(),
                    "{}",
                    param.name
                );
                assert!(!(param.required && param.default.is_some()), "{}", param.name);
            }
            let round_trip: KindDescription =
                serde_json::from_value(serde_json::to_value(&description).unwrap()).unwrap();
            assert_eq!(round_trip, description);
        }
    }
}
