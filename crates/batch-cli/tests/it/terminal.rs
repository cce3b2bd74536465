//! The terminal view: `batch run` under a pseudo-terminal draws a progress bar, redraws it in place
//! (with log lines printed above it, not through it), and ends with the task's summary — checked on
//! the screen a terminal emulator shows for the bytes the command wrote.

use std::io::Read as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::Sandbox;

const ROWS: u16 = 50;
const COLUMNS: u16 = 140;

/// Runs `batch args...` with stdin, stdout and stderr on a new pseudo-terminal of `ROWS` ×
/// `COLUMNS`; returns its exit code and every byte it wrote.
fn run_in_terminal(sandbox: &Sandbox, args: &[&str]) -> (i32, Vec<u8>) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new().read(true).write(true).open(name.to_str().unwrap()).unwrap();
    let size = rustix::termios::Winsize { ws_row: ROWS, ws_col: COLUMNS, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(&terminal, size).unwrap();

    let mut child = {
        let mut command = sandbox.command(args);
        command
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(terminal.try_clone().unwrap()))
            .stdout(Stdio::from(terminal.try_clone().unwrap()))
            .stderr(Stdio::from(terminal));
        command.spawn().unwrap()
        // The command, holding this process's copies of the terminal, is dropped here: the master
        // then reads the end of output (EIO) once the child has exited.
    };
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut master = std::fs::File::from(master);
        let mut output = Vec::new();
        // Ends with EIO when the last holder of the terminal has gone; what was read is kept.
        let _ = master.read_to_end(&mut output);
        let _ = sender.send(output);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the command did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = received.recv_timeout(Duration::from_secs(10)).expect("the terminal's output");
    (code, output)
}

#[test]
fn the_bar_redraws_in_place_and_ends_with_the_summary() {
    let sandbox = Sandbox::new();
    sandbox.generate("youzan_order", 5_000, "trades.jsonl", &[]);
    let (code, output) = run_in_terminal(
        &sandbox,
        &[
            "run",
            "youzan_order",
            "--input",
            "trades.jsonl",
            "--output",
            "orders.jsonl",
            "--dead-letter",
            "bad.jsonl",
            "--batch-size",
            "100",
            "--concurrency",
            "1",
            "-vv",
        ],
    );
    let text = String::from_utf8_lossy(&output);
    assert_eq!(code, 0, "{text}");

    // The bar was drawn more than once...
    let draws = bar_draws(&output);
    assert!(draws >= 2, "the bar was drawn {draws} time(s): {text:?}");

    // ... yet no copy of it is left on the screen: every draw replaced the last one, and the last
    // gave way to the task's final line.
    let mut screen = vt100::Parser::new(ROWS, COLUMNS, 0);
    screen.process(&output);
    let contents = screen.screen().contents();
    let lines: Vec<&str> = contents.lines().map(str::trim_end).filter(|line| !line.is_empty()).collect();
    assert!(!lines.iter().any(|line| line.contains("] ")), "a bar is left on the screen:\n{contents}");
    let last = lines.iter().position(|line| line.starts_with("youzan_order completed: 5000/5000 (100.0%)"));
    let Some(last) = last else { panic!("no final progress line:\n{contents}") };

    // Log lines went above the bar, whole.
    let created = lines.iter().position(|line| line.contains("INFO batch_manager::manager: task created"));
    assert!(created.is_some_and(|at| at < last), "the log line is not above the progress:\n{contents}");

    // The summary comes last, on lines of its own.
    let summary = lines
        .iter()
        .position(|line| line.starts_with("task ") && line.contains("(youzan_order): completed in"));
    assert!(summary.is_some_and(|at| at > last), "no summary below the progress:\n{contents}");
    assert!(lines.iter().any(|line| line.starts_with("  orders") && line.contains("valid")), "{contents}");
}

/// How many times a bar of the task was drawn: its label followed by padding and the bar's `[`.
fn bar_draws(output: &[u8]) -> usize {
    let text = String::from_utf8_lossy(output);
    text.match_indices("youzan_order")
        .filter(|(at, _)| text[at + "youzan_order".len()..].trim_start_matches(' ').starts_with('['))
        .count()
}
