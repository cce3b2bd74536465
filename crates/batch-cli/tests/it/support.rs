//! Running the `batch` binary in a temporary folder and reading what it says.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// A temporary folder to run `batch` in; its store is `batch.db` there (the default).
pub(crate) struct Sandbox {
    pub(crate) dir: tempfile::TempDir,
}

/// What one command did.
pub(crate) struct Ran {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    fn from(output: Output) -> Ran {
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts a success and returns stdout as JSON.
    pub(crate) fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("{error}: {}", self.stdout))
    }

    /// The id in the `task <ID> created` line.
    pub(crate) fn task_id(&self) -> String {
        task_id_in(&self.stderr).unwrap_or_else(|| panic!("no task id in: {}", self.stderr))
    }
}

/// The id in a `task <ID> created (...)` line.
pub(crate) fn task_id_in(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| {
            line.strip_prefix("task ").and_then(|rest| rest.strip_suffix(')')).map(str::to_owned)
        })
        .and_then(|rest| rest.split_once(" created").map(|(id, _)| id.to_owned()))
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().unwrap() }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `batch args...` in the sandbox, with none of the caller's `BATCH_DB` or `RUST_LOG`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_batch"));
        command.current_dir(self.dir.path()).args(args).env_remove("BATCH_DB").env_remove("RUST_LOG");
        command
    }

    /// Runs `batch args...` to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Ran {
        Ran::from(self.command(args).output().unwrap())
    }

    /// Runs `batch args...` to its end with the environment variables `env` set.
    pub(crate) fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Ran {
        Ran::from(self.command(args).envs(env.iter().copied()).output().unwrap())
    }

    /// Starts `batch args...` with stdout and stderr piped.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// `batch gen kind --count n --output file` (plus `extra`), asserting success. `kind` is a kind's
    /// name: `youzan_order`, `train`, `batch_process`.
    pub(crate) fn generate(&self, kind: &str, count: u64, file: &str, extra: &[&str]) {
        let count = count.to_string();
        let mut args = vec!["gen", kind, "--count", &count, "--output", file];
        args.extend_from_slice(extra);
        let ran = self.run(&args);
        assert_eq!(ran.code, 0, "gen failed: {}", ran.stderr);
    }

    /// `batch tasks show id --json`.
    pub(crate) fn show(&self, id: &str) -> Value {
        self.run(&["tasks", "show", id, "--json"]).json()
    }
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

impl Ran {
    /// Asserts that the command failed with exit `exit` and said so in exactly one line on stderr,
    /// `error: CODE: message`, with the code once; returns the message.
    pub(crate) fn one_error_line(&self, exit: i32, code: &str) -> String {
        assert_eq!(self.code, exit, "stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, not: {}", self.stderr);
        let message = lines[0]
            .strip_prefix(&format!("error: {code}: "))
            .unwrap_or_else(|| panic!("not `error: {code}: ...`: {}", lines[0]));
        assert!(!message.contains(code), "the code twice: {}", lines[0]);
        message.to_owned()
    }
}

/// Sends SIGINT (a Ctrl-C) to `child`.
pub(crate) fn interrupt(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
}
