//! `batch run <kind>`: one subcommand per registered kind, generated at run time from the kind's
//! description ([`TaskKind::spec`](batch::tasks::TaskKind::spec)) — its params become options with
//! their types, help and defaults, the config settings it honours become the run settings — and
//! the options given read back into the task's params and config ([`Invocation`]).
//!
//! Nothing here is written per kind: a kind registered in [`registry`] gets its subcommand, its
//! options, its validation and its error hints from its description alone.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::Path;

use batch::model::{BatchConfig, ErrorCode, TaskType};
use batch::tasks::{ConfigSetting, KindDescription, ParamSpec, ParamType, Registry, builtin_registry};
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, ValueHint};
use serde_json::{Map, Value};

use crate::failure::{CodedError, coded, configuration};

/// Older names of kinds the command still takes (besides each name with `-` for `_`).
const LEGACY_NAMES: [(&str, &str); 2] = [("youzan_order", "youzan"), ("batch_process", "records")];

/// The id of `--json`.
const JSON: &str = "json";

/// The kinds this command runs.
pub(crate) fn registry() -> Registry {
    builtin_registry()
}

/// The other names `kind` is known by on the command line: its name with `-` for `_`, and older
/// names.
pub(crate) fn aliases(kind: &str) -> Vec<String> {
    let dashed = kind.replace('_', "-");
    let mut aliases: Vec<String> = (dashed != kind).then_some(dashed).into_iter().collect();
    aliases
        .extend(LEGACY_NAMES.iter().filter(|(name, _)| *name == kind).map(|(_, alias)| (*alias).to_owned()));
    aliases
}

/// `command` (`batch run`) with a subcommand per registered kind.
pub(crate) fn run_subcommands(command: Command) -> Command {
    subcommands_for(&registry(), command)
}

/// `command` with a subcommand per kind of `registry`.
fn subcommands_for(registry: &Registry, command: Command) -> Command {
    let command = command.subcommand_required(true).arg_required_else_help(true);
    registry.descriptions().iter().fold(command, |command, kind| command.subcommand(kind_command(kind)))
}

fn param_id(name: &str) -> String {
    format!("param:{name}")
}

fn setting_id(setting: ConfigSetting) -> String {
    format!("setting:{}", setting.name())
}

/// The option of `setting` for a kind whose params take the options `taken`: `--batch-size`, or
/// `--config-batch-size` should a param of the kind be called that.
fn setting_option(setting: ConfigSetting, taken: &BTreeSet<String>) -> String {
    let option = setting.name().replace('_', "-");
    if taken.contains(&option) { format!("config-{option}") } else { option }
}

/// The options every param of `kind` takes (names and aliases).
fn param_options(kind: &KindDescription) -> BTreeSet<String> {
    kind.params
        .iter()
        .flat_map(|param| {
            std::iter::once(param.option_name())
                .chain(param.aliases.iter().map(|alias| alias.replace('_', "-")))
        })
        .collect()
}

/// `batch run <kind>`: the kind's params, the settings it honours, and `--json`. The settings it
/// does not honour are there too, hidden, so that giving one is refused with a message saying so
/// rather than as an unknown option.
fn kind_command(kind: &KindDescription) -> Command {
    let name = kind.task_type.as_str().to_owned();
    let mut command =
        Command::new(name.clone()).about(kind.description.clone()).visible_aliases(aliases(&name));
    for param in &kind.params {
        command = command.arg(
            value_arg(param_id(&param.name), param.option_name(), param).help_heading("Task parameters"),
        );
    }
    let taken = param_options(kind);
    for setting in ConfigSetting::ALL {
        let option = setting_option(setting, &taken);
        let arg = match kind.settings.iter().find(|spec| spec.name == setting.name()) {
            Some(spec) => value_arg(setting_id(setting), option, spec),
            None => Arg::new(setting_id(setting)).long(option).hide(true).value_name("VALUE"),
        };
        command = command.arg(arg.help_heading("Run settings"));
    }
    command.arg(
        Arg::new(JSON)
            .long("json")
            .action(ArgAction::SetTrue)
            .help("Print one JSON document (the task, its progress, metrics and result) on stdout at the end")
            .help_heading("Output"),
    )
}

/// An option for `spec`, parsed into the JSON value the task's params or config take.
fn value_arg(id: String, long: String, spec: &ParamSpec) -> Arg {
    let mut help = spec.help.trim_end_matches('.').to_owned();
    if let Some(default) = &spec.default {
        let shown = default.as_str().map_or_else(|| default.to_string(), str::to_owned);
        help.push_str(&format!(" [default: {shown}]"));
    }
    let mut arg = Arg::new(id).long(long).help(help).required(spec.required);
    for alias in &spec.aliases {
        arg = arg.visible_alias(alias.replace('_', "-"));
    }
    match spec.param_type {
        ParamType::Path => arg.value_name("FILE").value_hint(ValueHint::AnyPath).value_parser(path_value),
        ParamType::Integer => arg.value_name("N").value_parser(integer_value),
        ParamType::Number => arg.value_name("X").value_parser(number_value),
        ParamType::Boolean => arg
            .value_name("BOOL")
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(boolean_value),
        ParamType::StringList => {
            arg.value_name("A,B").value_delimiter(',').action(ArgAction::Append).value_parser(string_value)
        }
        ParamType::Duration => arg.value_name("DURATION").value_parser(duration_value),
        ParamType::Choice => arg
            .value_name("VALUE")
            .value_parser(PossibleValuesParser::new(spec.choices.clone()).map(Value::String)),
        _ => arg.value_name("TEXT").value_parser(string_value),
    }
}

fn string_value(text: &str) -> Result<Value, Infallible> {
    Ok(Value::String(text.to_owned()))
}

/// A path made absolute (so the task can be resumed from any folder); an address (`scheme://…`)
/// as given.
fn path_value(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.contains("://") {
        return Ok(Value::String(text.to_owned()));
    }
    let absolute =
        std::path::absolute(Path::new(text)).map_err(|error| format!("cannot resolve the path: {error}"))?;
    absolute
        .to_str()
        .map(|path| Value::String(path.to_owned()))
        .ok_or_else(|| "must be valid UTF-8".to_owned())
}

fn integer_value(text: &str) -> Result<Value, String> {
    text.parse::<u64>()
        .map(Value::from)
        .or_else(|_| text.parse::<i64>().map(Value::from))
        .map_err(|_| "must be a whole number".to_owned())
}

fn number_value(text: &str) -> Result<Value, String> {
    match text.parse::<f64>() {
        Ok(number) => serde_json::Number::from_f64(number)
            .map(Value::Number)
            .ok_or_else(|| "must be a finite number".to_owned()),
        Err(_) => Err("must be a number".to_owned()),
    }
}

fn boolean_value(text: &str) -> Result<Value, String> {
    match text {
        "true" | "yes" | "1" => Ok(Value::Bool(true)),
        "false" | "no" | "0" => Ok(Value::Bool(false)),
        _ => Err("must be true or false".to_owned()),
    }
}

fn duration_value(text: &str) -> Result<Value, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{error} (write e.g. 30s, 500ms, 1m 30s)"))?;
    Ok(Value::String(humantime::format_duration(duration).to_string()))
}

/// A `batch run <kind>` as given: the task to create.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// The kind.
    pub(crate) task_type: TaskType,
    /// The kind's params, from its options.
    pub(crate) params: Value,
    /// The kind's default config with the settings given.
    pub(crate) config: BatchConfig,
    /// `--json`.
    pub(crate) json: bool,
}

impl Invocation {
    /// Reads the options of `batch run <kind>`: refuses a setting the kind does not honour, and
    /// checks the config (an error names the option).
    pub(crate) fn read(kind: &str, matches: &ArgMatches) -> anyhow::Result<Invocation> {
        Invocation::read_for(&registry(), kind, matches)
    }

    /// [`read`](Invocation::read) for the kinds of `registry`.
    fn read_for(registry: &Registry, kind: &str, matches: &ArgMatches) -> anyhow::Result<Invocation> {
        let task_type: TaskType =
            kind.parse().map_err(|error| anyhow::Error::new(CodedError::from(error)))?;
        let Some(kind) = registry.get(&task_type) else {
            return Err(coded(
                ErrorCode::ValidationError,
                format!("no task kind is registered for type {task_type}"),
            ));
        };
        let spec = kind.spec();
        let description = KindDescription::new(task_type.clone(), spec.clone());
        let taken = param_options(&description);
        for setting in ConfigSetting::ALL {
            let given = matches.value_source(&setting_id(setting)) == Some(ValueSource::CommandLine);
            if given && !spec.honours(setting) {
                let honoured: Vec<String> = spec
                    .settings
                    .iter()
                    .map(|setting| format!("--{}", setting_option(*setting, &taken)))
                    .collect();
                return Err(configuration(format!(
                    "--{} does not apply to {task_type} tasks, which honour {}",
                    setting_option(setting, &taken),
                    if honoured.is_empty() { "no run setting".to_owned() } else { honoured.join(", ") }
                )));
            }
        }

        let mut params = Map::new();
        for param in &spec.params {
            let id = param_id(&param.name);
            let value = match param.param_type {
                ParamType::StringList => {
                    matches.get_many::<Value>(&id).map(|values| Value::Array(values.cloned().collect()))
                }
                _ => matches.get_one::<Value>(&id).cloned(),
            };
            if let Some(value) = value {
                params.insert(param.name.clone(), value);
            }
        }

        let mut config = match serde_json::to_value(&spec.default_config)? {
            Value::Object(config) => config,
            _ => Map::new(),
        };
        for setting in spec.settings.iter().copied() {
            if let Some(value) = matches.get_one::<Value>(&setting_id(setting)) {
                config.insert(setting.name().to_owned(), value.clone());
            }
        }
        let config = BatchConfig::from_json(&Value::Object(config))
            .map_err(|error| anyhow::Error::new(CodedError::from(error)))?;
        Ok(Invocation { task_type, params: Value::Object(params), config, json: matches.get_flag(JSON) })
    }
}

/// The option that sets the param or config setting `name` of any registered kind
/// (`model_out` -> `--model-out`), for hints in error messages.
pub(crate) fn option_for(name: &str) -> Option<String> {
    if ConfigSetting::from_name(name).is_some() {
        return Some(format!("--{}", name.replace('_', "-")));
    }
    registry()
        .descriptions()
        .iter()
        .flat_map(|kind| kind.params.iter())
        .find(|param| param.is_named(name))
        .map(|_| format!("--{}", name.replace('_', "-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `batch run` as the binary builds it, parsing `args`.
    fn parse(args: &[&str]) -> Result<Invocation, String> {
        let command = run_subcommands(Command::new("run"));
        let matches = command
            .try_get_matches_from(std::iter::once("run").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        let (kind, matches) = matches.subcommand().unwrap();
        Invocation::read(kind, matches).map_err(|error| error.to_string())
    }

    #[test]
    fn every_kind_gets_a_consistent_subcommand() {
        run_subcommands(Command::new("run")).debug_assert();
    }

    #[test]
    fn params_and_settings_come_from_the_description() {
        let invocation = parse(&[
            "train",
            "--input",
            "points.csv",
            "--label",
            "y",
            "--model-out",
            "m.json",
            "--features",
            "a,b",
            "--features",
            "c",
            "--epochs",
            "3",
            "--learning-rate",
            "0.5",
            "--batch-size",
            "8",
            "--durability",
            "power_loss",
        ])
        .unwrap();
        assert_eq!(invocation.task_type, TaskType::Train);
        let params = &invocation.params;
        assert!(params["input"].as_str().unwrap().ends_with("points.csv"));
        assert!(Path::new(params["input"].as_str().unwrap()).is_absolute());
        assert_eq!(params["features"], serde_json::json!(["a", "b", "c"]));
        assert_eq!((params["epochs"].clone(), params["learning_rate"].clone()), (3.into(), 0.5.into()));
        assert_eq!(params.get("holdout"), None, "an option not given is left to the kind's default");
        assert_eq!(invocation.config.batch_size, 8);
        assert_eq!(invocation.config.durability, batch::model::Durability::PowerLoss);
        assert!(!invocation.json);
    }

    #[test]
    fn a_kind_without_settings_given_gets_its_default_config() {
        let invocation = parse(&[
            "youzan",
            "--input",
            "t.jsonl",
            "--output",
            "o.jsonl",
            "--dead-letter",
            "d.jsonl",
            "--json",
        ])
        .unwrap();
        assert_eq!(invocation.task_type, TaskType::YouzanOrder);
        let spec = registry().get(&TaskType::YouzanOrder).unwrap().spec();
        assert_eq!(invocation.config, spec.default_config);
        assert!(invocation.json);
    }

    /// A kind that honours `batch_size` only: its run ignores every other setting.
    struct Sized;

    #[async_trait::async_trait]
    impl batch::tasks::TaskKind for Sized {
        fn task_type(&self) -> TaskType {
            TaskType::Custom("sized".to_owned())
        }
        fn validate(&self, _: &Value, _: &BatchConfig) -> Result<(), batch::model::TaskError> {
            Ok(())
        }
        async fn run(
            &self,
            _: batch::tasks::JobContext,
        ) -> Result<batch::tasks::JobOutcome, batch::model::TaskError> {
            Ok(batch::tasks::JobOutcome::Stopped)
        }
        fn spec(&self) -> batch::tasks::KindSpec {
            batch::tasks::KindSpec::new("sized").with_settings([ConfigSetting::BatchSize])
        }
    }

    #[test]
    fn settings_a_kind_ignores_are_refused() {
        let mut registry = Registry::new();
        registry.register(Sized);
        let parse = |args: &[&str]| {
            let matches = subcommands_for(&registry, Command::new("run"))
                .try_get_matches_from(std::iter::once("run").chain(args.iter().copied()))
                .map_err(|error| error.to_string())?;
            let (kind, matches) = matches.subcommand().unwrap();
            Invocation::read_for(&registry, kind, matches).map_err(|error| error.to_string())
        };
        let error = parse(&["sized", "--timeout", "5s"]).unwrap_err();
        assert_eq!(
            error,
            "CONFIGURATION_ERROR: --timeout does not apply to sized tasks, which honour --batch-size"
        );
        let error = parse(&["sized", "--max-retries", "1"]).unwrap_err();
        assert!(error.contains("--max-retries does not apply to sized tasks"), "{error}");
        assert_eq!(parse(&["sized", "--batch-size", "7"]).unwrap().config.batch_size, 7);
    }

    #[test]
    fn bad_values_are_refused_naming_the_option() {
        let error = parse(&[
            "train",
            "--input",
            "a.csv",
            "--label",
            "y",
            "--model-out",
            "m.json",
            "--epochs",
            "many",
        ])
        .unwrap_err();
        assert!(error.contains("--epochs") && error.contains("must be a whole number"), "{error}");
        let error = parse(&["batch_process", "--input", "a.csv", "--output", "b.jsonl", "--format", "xml"])
            .unwrap_err();
        assert!(error.contains("--format") && error.contains("json_lines, csv"), "{error}");
        let error = parse(&["batch_process", "--input", "a.csv", "--output", "b.jsonl", "--batch-size", "0"])
            .unwrap_err();
        assert!(
            error.starts_with("CONFIGURATION_ERROR: invalid configuration: batch_size must be at least 1"),
            "{error}"
        );
    }

    #[test]
    fn options_are_found_for_params_and_settings() {
        assert_eq!(option_for("model_out").as_deref(), Some("--model-out"));
        assert_eq!(option_for("skip_limit").as_deref(), Some("--skip-limit"));
        assert_eq!(option_for("nothing"), None);
    }
}
