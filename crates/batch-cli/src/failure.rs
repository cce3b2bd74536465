//! How the command fails: an error with a stable code ([`CodedError`]), the one line printed for it,
//! and the exit code it maps to.

use std::fmt;
use std::process::ExitCode;

use batch::manager::ManagerError;
use batch::model::{ErrorCode, ModelError, TaskError};

/// An error the user sees as `error: CODE: message`.
#[derive(Debug)]
pub(crate) struct CodedError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl fmt::Display for CodedError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CodedError {}

/// An error with `code` and `message`, as an `anyhow` error.
pub(crate) fn coded(code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CodedError { code, message: message.into() })
}

/// A configuration error (exit 2) naming what to fix.
pub(crate) fn configuration(message: impl Into<String>) -> anyhow::Error {
    coded(ErrorCode::ConfigurationError, message)
}

impl From<ManagerError> for CodedError {
    fn from(error: ManagerError) -> CodedError {
        let task_error = error.to_task_error();
        CodedError { code: error.code(), message: with_option_hint(error.to_string(), &task_error) }
    }
}

impl From<ModelError> for CodedError {
    fn from(error: ModelError) -> CodedError {
        let task_error = TaskError::from(&error);
        CodedError { code: error.code(), message: with_option_hint(error.to_string(), &task_error) }
    }
}

/// `message`, followed by the option that sets the offending setting or param when the error names
/// one (`details.field` or `details.param`), as the kinds' descriptions spell it.
fn with_option_hint(message: String, error: &TaskError) -> String {
    let named =
        ["field", "param"].iter().find_map(|key| error.details.get(key).and_then(|name| name.as_str()));
    match named.and_then(crate::kinds::option_for) {
        Some(option) => format!("{message} (set it with {option})"),
        None => message,
    }
}

/// The one line for a usage error clap found (an unknown option, a missing or bad value): its
/// first line, the arguments it lists, and where to read more.
pub(crate) fn usage_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let lines: Vec<&str> = rendered.lines().collect();
    let first = lines.first().map_or("invalid usage", |line| line.trim());
    let mut message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    // The indented lines right below: the missing arguments, or the possible values.
    let details: Vec<&str> =
        lines.iter().skip(1).take_while(|line| line.starts_with("  ")).map(|line| line.trim()).collect();
    if !details.is_empty() {
        let separator = if message.ends_with(':') { ", " } else { " " };
        message.push(' ');
        message.push_str(&details.join(separator));
    }
    for tip in lines.iter().filter_map(|line| line.trim().strip_prefix("tip: ")) {
        message.push_str(&format!(" ({tip})"));
    }
    let more = lines.iter().map(|line| line.trim()).find(|line| line.starts_with("For more information"));
    match more {
        Some(more) => format!("{message}; {}", lowercase_first(more.trim_end_matches('.'))),
        None => message,
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The exit code for a failed command: 2 for what the user must fix in the command (configuration,
/// validation, an unknown task, a task in the wrong state), 1 for the rest (storage, processing).
pub(crate) fn exit_code(code: ErrorCode) -> ExitCode {
    match code {
        ErrorCode::ConfigurationError
        | ErrorCode::ValidationError
        | ErrorCode::NotFound
        | ErrorCode::InvalidState => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// The code of any error: its own if it carries one, `PROCESSING_ERROR` otherwise.
pub(crate) fn code_of(error: &anyhow::Error) -> ErrorCode {
    for cause in error.chain() {
        if let Some(coded) = cause.downcast_ref::<CodedError>() {
            return coded.code;
        }
        if let Some(manager) = cause.downcast_ref::<ManagerError>() {
            return manager.code();
        }
    }
    ErrorCode::ProcessingError
}

/// The one line for `error`: `CODE: message: cause: cause`, each cause once (a cause whose text
/// the message already holds is left out) and the code once.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let code = code_of(error);
    let code_prefix = format!("{code}: ");
    let mut message = String::new();
    for cause in error.chain() {
        let text = match cause.downcast_ref::<CodedError>() {
            Some(coded) => coded.message.clone(),
            None => cause.to_string(),
        };
        let text = text.strip_prefix(&code_prefix).unwrap_or(&text).trim();
        if text.is_empty() || message.contains(text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(text);
    }
    format!("{code}: {message}")
}

/// Reports `error` on stderr as one line, `error: CODE: message` ([`one_line`]), and returns the
/// exit code.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    crate::terminal::eprint_line(&format!("error: {}", one_line(error)));
    exit_code(code_of(error))
}

/// Turns a manager's error into a [`CodedError`] naming the option to fix.
pub(crate) trait ManagerResultExt<T> {
    /// The result, its error coded.
    fn coded(self) -> anyhow::Result<T>;
}

impl<T> ManagerResultExt<T> for Result<T, ManagerError> {
    fn coded(self) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::Error::new(CodedError::from(error)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its cause in its own message and also gives it as its source.
    #[derive(Debug)]
    struct Outer {
        source: std::io::Error,
    }

    impl fmt::Display for Outer {
        fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(formatter, "cannot read the input in.jsonl: {}", self.source)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_and_the_code_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(Outer { source: io });
        assert_eq!(
            one_line(&error),
            "PROCESSING_ERROR: cannot read the input in.jsonl: No such file or directory"
        );

        let error = coded(ErrorCode::ConfigurationError, "CONFIGURATION_ERROR: filter: unexpected `>`");
        assert_eq!(one_line(&error), "CONFIGURATION_ERROR: filter: unexpected `>`");
        let error = configuration("--scale must be positive").context("demo");
        assert_eq!(one_line(&error), "CONFIGURATION_ERROR: demo: --scale must be positive");
    }

    #[test]
    fn usage_errors_fit_on_one_line() {
        use clap::CommandFactory as _;
        let usage = |args: &[&str]| {
            let error = crate::cli::Cli::command()
                .try_get_matches_from(std::iter::once("batch").chain(args.iter().copied()))
                .err()
                .map(|error| usage_message(&error));
            error.unwrap_or_default()
        };
        assert_eq!(
            usage(&["tasks", "list", "--status", "sleeping"]),
            "invalid value 'sleeping' for '--status <STATUS>' [possible values: pending, processing, \
             completed, failed, cancelled]; for more information, try '--help'"
        );
        assert_eq!(
            usage(&["run", "train", "--input", "a.csv"]),
            "the following required arguments were not provided: --label <TEXT>, --model-out <FILE>; for more \
             information, try '--help'"
        );
        assert_eq!(
            usage(&["run", "train", "--inpt", "a.csv"]),
            "unexpected argument '--inpt' found (a similar argument exists: '--input'); for more information, \
             try '--help'"
        );
    }
}
