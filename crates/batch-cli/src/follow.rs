//! Following running tasks to their end: an indicatif bar per task on a terminal, plain periodic log
//! lines on stderr otherwise. A first Ctrl-C asks the tasks to stop at their next chunk; a second
//! one aborts their in-flight work at once (they end `cancelled` all the same, their last
//! checkpoints kept).

use std::time::{Duration, Instant};

use batch::model::{BatchTask, Progress, TaskId, TaskStatus};
use batch::prelude::{BatchManager, StopTaskRequest};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::announce;
use crate::failure::ManagerResultExt;
use crate::store::{POLL_INTERVAL, STOP_GRACE_PERIOD};
use crate::terminal;

/// How progress is shown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Bars (stderr is a terminal) or log lines.
    bars: bool,
    /// How often a log line is written per task.
    log_interval: Duration,
}

impl View {
    /// Bars when stderr is a terminal, else a log line per task every `log_interval`.
    pub(crate) fn detect(log_interval: Duration) -> View {
        View { bars: terminal::stderr_is_terminal(), log_interval }
    }
}

/// One task being followed.
struct Followed {
    id: TaskId,
    label: String,
    bar: Option<ProgressBar>,
    last_status: Option<TaskStatus>,
    finished: Option<BatchTask>,
}

/// Follows the tasks `ids` (shown as `labels`) until every one is finished, and returns them in the
/// same order. The first Ctrl-C asks the unfinished ones to stop (they end `cancelled` at their next
/// chunk); a second one aborts their in-flight work at once.
pub(crate) async fn follow(
    manager: &BatchManager,
    tasks: &[(TaskId, String)],
    view: View,
) -> anyhow::Result<Vec<BatchTask>> {
    let multi = terminal::bars();
    let style = ProgressStyle::with_template(
        "{prefix:<22} [{bar:30.cyan/blue}] {percent:>3}% {human_pos}/{human_len} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let label_width = tasks.iter().map(|(_, label)| label.chars().count()).max().unwrap_or(0);
    let mut followed: Vec<Followed> = tasks
        .iter()
        .map(|(id, label)| Followed {
            id: *id,
            label: format!("{label:<label_width$}"),
            bar: view.bars.then(|| {
                let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                bar.set_prefix(format!("{label:<label_width$}"));
                bar
            }),
            last_status: None,
            finished: None,
        })
        .collect();
    let mut last_log = Instant::now();
    let mut interrupts = Interrupts::new();
    loop {
        let log_now = last_log.elapsed() >= view.log_interval;
        if log_now {
            last_log = Instant::now();
        }
        for one in followed.iter_mut().filter(|one| one.finished.is_none()) {
            let task = manager.get_task(&one.id).await.coded()?;
            let changed = one.last_status != Some(task.status);
            one.last_status = Some(task.status);
            match &one.bar {
                Some(bar) => show_on_bar(bar, &task),
                None if log_now || changed => log_line(&one.label, &task),
                None => {}
            }
            if task.status.is_terminal() {
                // The bar gives way to a line that stays: what is printed after the bars (the
                // summary, log lines) must neither land on a bar's line nor be cleared with it.
                if let Some(bar) = &one.bar {
                    bar.finish_and_clear();
                    log_line(&one.label, &task);
                }
                one.finished = Some(task);
            }
        }
        if followed.iter().all(|one| one.finished.is_some()) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            interrupt = interrupts.next() => {
                let unfinished = followed.iter().filter(|one| one.finished.is_none());
                match interrupt {
                    Interrupt::Stop => {
                        for one in unfinished {
                            let request = StopTaskRequest { id: one.id, reason: Some(INTERRUPTED.to_owned()) };
                            announce(&format!(
                                "stopping task {} at its next chunk (Ctrl-C again to abort its in-flight work now; \
                                 otherwise after {}s)",
                                one.id,
                                STOP_GRACE_PERIOD.as_secs()
                            ));
                            if let Err(error) = manager.stop_task(request).await {
                                announce(&format!("cannot stop task {}: {error}", one.id));
                            }
                        }
                    }
                    Interrupt::Abort => {
                        for one in unfinished {
                            announce(&format!("aborting the in-flight work of task {}", one.id));
                            manager.abort_task(&one.id, Some(INTERRUPTED.to_owned())).await;
                        }
                    }
                }
            }
        }
    }
    Ok(followed.into_iter().filter_map(|one| one.finished).collect())
}

/// The reason recorded for a task interrupted with Ctrl-C.
const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// What a Ctrl-C asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// The first: stop at the next chunk.
    Stop,
    /// A later one: abort in-flight work now.
    Abort,
}

/// Ctrl-C presses, in order, from the moment this exists (the handler replaces the default, which
/// ends the process).
#[derive(Debug)]
struct Interrupts {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
    seen: u32,
}

impl Interrupts {
    fn new() -> Interrupts {
        Interrupts {
            // Without a handler (it could not be installed), Ctrl-C keeps ending the process.
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
            seen: 0,
        }
    }

    /// The next Ctrl-C. Cancel safe: a press that arrives while this is not polled is kept for the
    /// next call.
    async fn next(&mut self) -> Interrupt {
        #[cfg(unix)]
        let received = match &mut self.signal {
            Some(signal) => signal.recv().await.is_some(),
            None => false,
        };
        #[cfg(not(unix))]
        let received = tokio::signal::ctrl_c().await.is_ok();
        if !received {
            std::future::pending::<()>().await;
        }
        self.seen += 1;
        if self.seen == 1 { Interrupt::Stop } else { Interrupt::Abort }
    }
}

fn show_on_bar(bar: &ProgressBar, task: &BatchTask) {
    let progress = &task.progress;
    let done = done(progress);
    match progress.total {
        Some(total) => bar.set_length(total.max(done)),
        None => bar.unset_length(),
    }
    bar.set_position(done);
    bar.set_message(rates(progress));
}

/// `label status: done/total (percentage) rates`, on stderr above any bars.
fn log_line(label: &str, task: &BatchTask) {
    let progress = &task.progress;
    let total = progress.total.map_or_else(|| "?".to_owned(), |total| total.to_string());
    let percentage =
        progress.percentage.map_or_else(String::new, |percentage| format!(" ({percentage:.1}%)"));
    announce(&format!("{label} {}: {}/{total}{percentage} {}", task.status, done(progress), rates(progress)));
}

/// Items done: processed, failed or skipped.
pub(crate) fn done(progress: &Progress) -> u64 {
    progress.processed.saturating_add(progress.failed).saturating_add(progress.skipped)
}

/// `1234 items/s, ETA 3s, 5 failed, <message>`.
fn rates(progress: &Progress) -> String {
    let mut parts = Vec::new();
    if let Some(throughput) = progress.throughput {
        parts.push(format!("{throughput:.0} items/s"));
    }
    if let Some(eta) = progress.eta {
        parts.push(format!("ETA {}", humantime::format_duration(Duration::from_secs(eta.as_secs()))));
    }
    parts.push(format!("{} failed", progress.failed));
    if let Some(message) = progress.message.as_deref().filter(|message| !message.is_empty()) {
        parts.push(message.to_owned());
    }
    parts.join(", ")
}
