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

/// Settings and params the command line sets with an option of (nearly) the same name.
const OPTIONS: [(&str, &str); 24] = [
    ("batch_size", "--batch-size"),
    ("max_retries", "--max-retries"),
    ("timeout", "--timeout"),
    ("concurrency", "--concurrency"),
    ("skip_limit", "--skip-limit"),
    ("input", "--input"),
    ("output", "--output"),
    ("dead_letter", "--dead-letter"),
    ("dead_letters", "--dead-letter"),
    ("rules", "--rules"),
    ("provinces", "--provinces"),
    ("label", "--label"),
    ("features", "--features"),
    ("epochs", "--epochs"),
    ("learning_rate", "--learning-rate"),
    ("l2", "--l2"),
    ("holdout", "--holdout"),
    ("eval_input", "--eval-input"),
    ("model_out", "--model-out"),
    ("filter", "--filter"),
    ("select", "--select"),
    ("rename", "--rename"),
    ("dedup_key", "--dedup-key"),
    ("group_by", "--group-by"),
];

/// `message`, followed by the option that sets the offending setting when the error names one
/// (`details.field` or `details.param`).
fn with_option_hint(message: String, error: &TaskError) -> String {
    let named =
        ["field", "param"].iter().find_map(|key| error.details.get(key).and_then(|name| name.as_str()));
    let option = named.and_then(|name| {
        if name == "aggregates" {
            return Some("--agg");
        }
        OPTIONS.iter().find(|(setting, _)| *setting == name).map(|(_, option)| *option)
    });
    match option {
        Some(option) => format!("{message} (set it with {option})"),
        None => message,
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

/// Reports `error` on stderr as one line, `error: CODE: message: cause: cause`, and returns the
/// exit code.
#[allow(clippy::print_stderr, reason = "the command's one line of failure")]
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    let code = code_of(error);
    let parts: Vec<String> = error
        .chain()
        .map(|cause| match cause.downcast_ref::<CodedError>() {
            Some(coded) => coded.message.clone(),
            None => cause.to_string(),
        })
        .collect();
    eprintln!("error: {code}: {}", parts.join(": "));
    exit_code(code)
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
