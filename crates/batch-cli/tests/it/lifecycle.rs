//! `batch tasks list|show|stop|resume` and `batch metrics` across processes: a stop from a second
//! process, Ctrl-C twice, and a resume after the running process was killed with SIGKILL.

use std::io::{BufRead as _, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Sandbox, interrupt, read, task_id_in};

/// Reads the child's stderr on a thread, line by line.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The next line satisfying `wanted` within 30 s.
fn wait_for_line(lines: &mpsc::Receiver<String>, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(_) => {}
            Err(error) => panic!("no such line: {error}"),
        }
    }
}

/// Waits for the child to exit within 30 s and returns its exit code.
fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A progress line saying some items are done: `<kind> processing: N/...` with N > 0.
fn made_progress(line: &str) -> bool {
    line.split_once("processing: ")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|done| done.parse::<u64>().ok())
        .is_some_and(|done| done > 0)
}

#[test]
fn list_show_and_metrics_report_the_store() {
    let sandbox = Sandbox::new();
    sandbox.generate("batch_process", 100, "r.jsonl", &[]);
    sandbox.generate("youzan_order", 100, "t.jsonl", &["--invalid-ratio", "0.5"]);
    let run = |output: &str| sandbox.run(&["run", "batch_process", "--input", "r.jsonl", "--output", output]);
    let first = run("a.jsonl");
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("completed"), "{}", first.stdout);
    // A task that fails: more bad trades than its skip limit.
    let second = sandbox.run(&[
        "run",
        "youzan_order",
        "--input",
        "t.jsonl",
        "--output",
        "b.jsonl",
        "--dead-letter",
        "b.dead.jsonl",
        "--skip-limit",
        "0",
    ]);
    assert_eq!(second.code, 1, "{}", second.stderr);

    let listing = sandbox.run(&["tasks", "list", "--json"]).json();
    assert_eq!(listing["total"], 2);
    assert_eq!(listing["tasks"][0]["id"].as_str(), Some(second.task_id().as_str()), "newest first");
    let completed = sandbox.run(&["tasks", "list", "--status", "completed", "--json"]).json();
    assert_eq!(completed["total"], 1);
    assert_eq!(completed["tasks"][0]["id"].as_str(), Some(first.task_id().as_str()));
    let by_type =
        sandbox.run(&["tasks", "list", "--type", "youzan_order", "--limit", "1", "--offset", "0", "--json"]);
    assert_eq!(by_type.json()["tasks"][0]["status"], "failed");
    let table = sandbox.run(&["tasks", "list"]);
    assert!(
        table.stdout.contains(&first.task_id()) && table.stdout.contains("batch_process"),
        "{}",
        table.stdout
    );

    let shown = sandbox.show(&first.task_id());
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["progress"]["total"], 100);
    assert_eq!(shown["metrics"]["total_items"], 100);
    assert!(shown["result"].is_object());
    let text = sandbox.run(&["tasks", "show", &first.task_id()]);
    assert!(text.stdout.contains("completed") && text.stdout.contains("a.jsonl"), "{}", text.stdout);

    let metrics = sandbox.run(&["metrics", "--json"]).json();
    assert_eq!((metrics["total_tasks"].as_u64(), metrics["completed_tasks"].as_u64()), (Some(2), Some(1)));
    assert_eq!(metrics["failed_tasks"], 1);
    assert_eq!(metrics["success_rate"], 0.5);
    assert!(sandbox.run(&["metrics"]).stdout.contains("success rate 50.0%"));
}

#[test]
fn a_stop_from_another_process_cancels_the_running_task() {
    let sandbox = Sandbox::new();
    // train stops by itself once its loss settles (its stopping rule), whatever --epochs says: the
    // file's size is what keeps this run going until the stop arrives.
    sandbox.generate("train", 200_000, "train.csv", &["--features", "4"]);
    let mut child = sandbox.spawn(&[
        "run",
        "train",
        "--input",
        "train.csv",
        "--label",
        "label",
        "--model-out",
        "model.json",
        "--epochs",
        "100000",
        "--progress-interval",
        "100ms",
    ]);
    let lines = stderr_lines(&mut child);
    let id = task_id_in(&wait_for_line(&lines, |line| task_id_in(line).is_some())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.show(&id)["status"] != "processing" {
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(50));
    }

    let stop = sandbox.run(&["tasks", "stop", &id]);
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert!(stop.stderr.contains("stop requested"), "{}", stop.stderr);
    assert_eq!(wait_exit(&mut child), 1, "a cancelled task is not a success");
    let task = sandbox.show(&id);
    assert_eq!(task["status"], "cancelled");
    assert_eq!(task["error"]["code"], "CANCELLED");
    assert!(!sandbox.path("model.json").exists(), "a stopped training writes no model");
    let again = sandbox.run(&["tasks", "stop", &id]);
    assert_eq!(again.code, 2, "a finished task cannot be stopped: {}", again.stderr);
    assert!(again.stderr.contains("INVALID_STATE"), "{}", again.stderr);
}

#[test]
fn a_killed_run_is_resumed_to_byte_identical_output() {
    let sandbox = Sandbox::new();
    sandbox.generate("youzan_order", 6000, "trades.jsonl", &["--invalid-ratio", "0.05"]);
    let args = |output: &str, dead: &str| -> Vec<String> {
        ["run", "youzan_order", "--input", "trades.jsonl", "--output", output, "--dead-letter", dead]
            .into_iter()
            .chain(["--batch-size", "10", "--concurrency", "1", "--progress-interval", "50ms"])
            .map(str::to_owned)
            .collect()
    };
    let whole = args("whole.jsonl", "whole.dead.jsonl");
    let whole: Vec<&str> = whole.iter().map(String::as_str).collect();
    let uninterrupted = sandbox.run(&whole);
    assert_eq!(uninterrupted.code, 0, "{}", uninterrupted.stderr);

    let killed = args("resumed.jsonl", "resumed.dead.jsonl");
    let killed: Vec<&str> = killed.iter().map(String::as_str).collect();
    let mut child = sandbox.spawn(&killed);
    let lines = stderr_lines(&mut child);
    let id = task_id_in(&wait_for_line(&lines, |line| task_id_in(line).is_some())).unwrap();
    wait_for_line(&lines, made_progress);
    child.kill().unwrap(); // SIGKILL: no chance to release the task
    child.wait().unwrap();
    let task = sandbox.show(&id);
    assert_eq!(task["status"], "processing", "killed before the end: {task}");
    let partial = std::fs::metadata(sandbox.path("resumed.jsonl")).map(|meta| meta.len()).unwrap_or(0);
    assert!(partial < std::fs::metadata(sandbox.path("whole.jsonl")).unwrap().len());

    let resumed = sandbox.run(&["tasks", "resume", &id, "--wait", "--json"]);
    let document = resumed.json();
    assert_eq!(document["status"], "completed");
    assert_eq!(document["result"]["invalid"], 300);
    assert_eq!(read(&sandbox.path("resumed.jsonl")), read(&sandbox.path("whole.jsonl")));
    assert_eq!(read(&sandbox.path("resumed.dead.jsonl")), read(&sandbox.path("whole.dead.jsonl")));
    let again = sandbox.run(&["tasks", "resume", &id]);
    assert_eq!(again.code, 2, "a finished task cannot be resumed: {}", again.stderr);
}

/// Opens the FIFO at `path` for writing (which waits for its reader), writes `bytes`, and keeps it
/// open — the reader sees no end of input — until `close` is sent or dropped.
fn feed_fifo(path: std::path::PathBuf, bytes: Vec<u8>) -> mpsc::Sender<()> {
    let (close, closed) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut fifo = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        // The reader may be gone (the test failed); nothing to do about it here.
        let _ = fifo.write_all(&bytes).and_then(|()| fifo.flush());
        let _ = closed.recv();
    });
    close
}

#[test]
fn a_second_ctrl_c_aborts_a_stopping_task_at_once() {
    let sandbox = Sandbox::new();
    // 1024 records (the file source's hand-over chunk), then an input that never ends: after its
    // first chunk the task waits for records that do not come, so a stop has no chunk boundary to
    // stop at and would wait out its whole grace period (10 s).
    sandbox.generate("batch_process", 1024, "records.jsonl", &["--invalid-ratio", "0"]);
    let fifo = sandbox.path("input.jsonl");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR).unwrap();
    let close = feed_fifo(fifo, std::fs::read(sandbox.path("records.jsonl")).unwrap());
    let mut child = sandbox.spawn(&[
        "run",
        "batch_process",
        "--input",
        "input.jsonl",
        "--output",
        "out.jsonl",
        "--format",
        "json_lines",
        "--progress-interval",
        "100ms",
    ]);
    let lines = stderr_lines(&mut child);
    let id = task_id_in(&wait_for_line(&lines, |line| task_id_in(line).is_some())).unwrap();
    wait_for_line(&lines, |line| line.contains("processing: 1024/"));

    let first = Instant::now();
    interrupt(&child);
    wait_for_line(&lines, |line| line.starts_with(&format!("stopping task {id} at its next chunk")));
    interrupt(&child);
    wait_for_line(&lines, |line| line.starts_with(&format!("aborting the in-flight work of task {id}")));
    assert_eq!(wait_exit(&mut child), 1, "a cancelled task is not a success");
    let took = first.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the second Ctrl-C did not cut the 10 s grace period short: {took:?}"
    );
    drop(close);

    // Recorded as a stop whose grace ran out: cancelled, the last checkpoint kept, nothing more.
    let task = sandbox.show(&id);
    assert_eq!(task["status"], "cancelled", "{task}");
    assert_eq!(task["error"]["code"], "CANCELLED");
    let message = task["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("interrupted (Ctrl-C); in-flight work was aborted"), "{message}");
    assert_eq!(task["progress"]["processed"], 1024);
    // Unfinished output stays staged under the claim's epoch (1) until a restart completes it.
    assert!(!sandbox.path("out.jsonl").exists(), "nothing is published before the task completes");
    assert_eq!(read(&sandbox.path("out.jsonl.e1.part")).lines().count(), 1024);
}
