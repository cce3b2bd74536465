//! Following running tasks to their end: an indicatif bar per task on a terminal, plain periodic log
//! lines on stderr otherwise; Ctrl-C asks the tasks to stop.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use batch::model::{BatchTask, Progress, TaskId, TaskStatus};
use batch::prelude::{BatchManager, StopTaskRequest};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::failure::ManagerResultExt;
use crate::store::POLL_INTERVAL;

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
        View { bars: std::io::stderr().is_terminal(), log_interval }
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
/// same order. The first Ctrl-C asks the unfinished ones to stop (they end `cancelled`).
pub(crate) async fn follow(
    manager: &BatchManager,
    tasks: &[(TaskId, String)],
    view: View,
) -> anyhow::Result<Vec<BatchTask>> {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
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
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stop_sent = false;
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
                if let Some(bar) = &one.bar {
                    bar.abandon_with_message(task.status.to_string());
                }
                one.finished = Some(task);
            }
        }
        if followed.iter().all(|one| one.finished.is_some()) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = &mut ctrl_c, if !stop_sent => {
                stop_sent = true;
                for one in followed.iter().filter(|one| one.finished.is_none()) {
                    let request = StopTaskRequest { id: one.id, reason: Some("interrupted (Ctrl-C)".to_owned()) };
                    let _ = multi.println(format!("stopping task {} at its next chunk", one.id));
                    if let Err(error) = manager.stop_task(request).await {
                        let _ = multi.println(format!("cannot stop task {}: {error}", one.id));
                    }
                }
            }
        }
    }
    Ok(followed.into_iter().filter_map(|one| one.finished).collect())
}

fn show_on_bar(bar: &ProgressBar, task: &BatchTask) {
    let progress = &task.progress;
    let done = done(progress);
    bar.set_length(progress.total.unwrap_or(done).max(done));
    bar.set_position(done);
    bar.set_message(rates(progress));
}

#[allow(clippy::print_stderr, reason = "progress is reported on stderr")]
fn log_line(label: &str, task: &BatchTask) {
    let progress = &task.progress;
    let total = progress.total.map_or_else(|| "?".to_owned(), |total| total.to_string());
    let percentage =
        progress.percentage.map_or_else(String::new, |percentage| format!(" ({percentage:.1}%)"));
    eprintln!("{label} {}: {}/{total}{percentage} {}", task.status, done(progress), rates(progress));
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
