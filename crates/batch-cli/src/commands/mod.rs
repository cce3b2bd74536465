//! The subcommands, one module each, and what they share: following a task to its end and
//! printing it.

pub(crate) mod demo;
pub(crate) mod generate;
pub(crate) mod run;
pub(crate) mod tasks;
pub(crate) mod worker;

use std::process::ExitCode;

use batch::model::TaskId;
use batch::prelude::BatchManager;

use crate::follow::{View, follow};
use crate::report::Finished;

/// A line for the user on stderr (ids, notices), apart from the results on stdout and above any
/// progress bars.
pub(crate) fn announce(line: &str) {
    crate::terminal::eprint_line(line);
}

/// A result on stdout. A closed stdout (`batch tasks list | head -1`) ends the output quietly
/// rather than in a panic, as `println!` would.
pub(crate) fn print(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Follows task `id` until it ends, prints it (`json`: one document), and maps its end to the exit
/// code; a task that did not complete is also reported as one `error:` line on stderr.
pub(crate) async fn finish_following(
    manager: &BatchManager,
    id: TaskId,
    label: &str,
    json: bool,
    view: View,
) -> anyhow::Result<ExitCode> {
    let mut tasks = follow(manager, &[(id, label.to_owned())], view).await?;
    let Some(task) = tasks.pop() else {
        anyhow::bail!("task {id} was lost while following it");
    };
    let finished = Finished::load(manager, task).await?;
    if json {
        print(&serde_json::to_string_pretty(&finished.document())?);
    } else {
        print(&finished.summary(false));
    }
    report_unfinished(&finished);
    Ok(finished.exit_code())
}

/// The `error:` line for a task that ended failed or cancelled.
pub(crate) fn report_unfinished(finished: &Finished) {
    let task = &finished.task;
    if task.status != batch::model::TaskStatus::Completed {
        match &task.error {
            Some(error) => announce(&format!(
                "error: {}: task {} {}: {}",
                error.code, task.id, task.status, error.message
            )),
            None => announce(&format!("error: task {} ended {}", task.id, task.status)),
        }
    }
}
