//! A fleet of real `batch worker` processes on one store: tasks submitted with `batch submit` are
//! shared out, each completed exactly once; a worker killed, paused past its lease or terminated
//! hands its task to another that finishes it byte-identical to an uninterrupted run; a stop from
//! another process reaches the task within a chunk. Every scenario is written once ([`Scenarios`])
//! and run on SQLite (one host) and on PostgreSQL (a throwaway server).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Sandbox, read};

/// The lease the fleet's workers hold (short, so that takeovers are quick to test).
pub(crate) const LEASE: Duration = Duration::from_secs(2);

/// A store the fleet shares: its `--db` address.
pub(crate) struct Fleet {
    pub(crate) sandbox: Sandbox,
    pub(crate) db: String,
    /// On PostgreSQL: a client of the fleet's database, to read the store's audit trail.
    audit: Option<Audit>,
    /// A PostgreSQL server of the fleet's own (to restart it), dropped last.
    server: Option<batch_testkit::PgCluster>,
}

/// Reads `batch.task_events`, the PostgreSQL store's audit trail (one row per claim, checkpoint,
/// end and release, written in the transaction that made it).
struct Audit {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Audit {
    /// Per task: its events as `(event, epoch, worker)`, in the order they were committed.
    fn events(&self) -> BTreeMap<String, Vec<(String, i64, Option<String>)>> {
        let rows =
            self.runtime
                .block_on(self.client.query(
                    "SELECT task_id::text, event, epoch, worker FROM batch.task_events ORDER BY id",
                    &[],
                ))
                .unwrap();
        let mut events: BTreeMap<String, Vec<(String, i64, Option<String>)>> = BTreeMap::new();
        for row in rows {
            events.entry(row.get(0)).or_default().push((row.get(1), row.get(2), row.get(3)));
        }
        events
    }
}

/// One `batch worker` process and what it logged (JSON lines, read as they come).
pub(crate) struct Worker {
    pub(crate) name: String,
    child: Child,
    log: Arc<Mutex<Vec<Value>>>,
    arrived: mpsc::Receiver<()>,
}

impl Fleet {
    /// A fleet on a SQLite file in a fresh sandbox.
    pub(crate) fn sqlite() -> Fleet {
        let sandbox = Sandbox::new();
        let db = sandbox.path("fleet.db").display().to_string();
        Fleet { sandbox, db, audit: None, server: None }
    }

    /// A fleet on a fresh database of the test PostgreSQL server (`None`, said on stderr, when
    /// PostgreSQL is not installed and not required).
    pub(crate) fn postgres(test: &str) -> Option<Fleet> {
        let cluster = batch_testkit::shared_or_skip(test)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let database = runtime.block_on(cluster.create_database()).unwrap();
        let client = runtime.block_on(cluster.connect(&database.name)).unwrap();
        let audit = Some(Audit { runtime, client });
        Some(Fleet { sandbox: Sandbox::new(), db: database.url, audit, server: None })
    }

    /// A fleet on a PostgreSQL server of its own, which the test may stop and start again (`None`,
    /// said on stderr, when PostgreSQL is not installed and not required).
    pub(crate) fn postgres_own_server(test: &str) -> Option<Fleet> {
        let server = batch_testkit::own_or_skip(test)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let database = runtime.block_on(server.create_database()).unwrap();
        Some(Fleet { sandbox: Sandbox::new(), db: database.url, audit: None, server: Some(server) })
    }

    /// `batch args... --db <the store>`, to its end.
    pub(crate) fn run(&self, args: &[&str]) -> crate::support::Ran {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--db", &self.db]);
        self.sandbox.run(&all)
    }

    /// `batch submit kind args...`: the new task's id.
    pub(crate) fn submit(&self, kind: &str, args: &[&str]) -> String {
        let mut all = vec!["submit", kind];
        all.extend_from_slice(args);
        let ran = self.run(&all);
        assert_eq!(ran.code, 0, "submit failed: {}", ran.stderr);
        let id = ran.stdout.trim().to_owned();
        assert_eq!(id.len(), 36, "submit prints the id: {}", ran.stdout);
        id
    }

    /// `batch tasks show id --json`.
    pub(crate) fn show(&self, id: &str) -> Value {
        self.run(&["tasks", "show", id, "--json"]).json()
    }

    /// Starts `batch worker --name name` with `concurrency` slots.
    pub(crate) fn worker(&self, name: &str, concurrency: u32) -> Worker {
        self.worker_with(name, concurrency, &[])
    }

    /// Starts `batch worker --name name` with `concurrency` slots and the `extra` arguments.
    pub(crate) fn worker_with(&self, name: &str, concurrency: u32, extra: &[&str]) -> Worker {
        let concurrency = concurrency.to_string();
        let lease = format!("{}ms", LEASE.as_millis());
        let mut args = vec![
            "worker",
            "--db",
            &self.db,
            "--name",
            name,
            "--concurrency",
            &concurrency,
            "--lease-ttl",
            &lease,
            "--status-interval",
            "500ms",
            "--log-format",
            "json",
        ];
        args.extend_from_slice(extra);
        let mut child =
            self.sandbox.command(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (sender, arrived) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let event =
                    serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                lines.lock().unwrap().push(event);
                let _ = sender.send(());
            }
        });
        let worker = Worker { name: name.to_owned(), child, log, arrived };
        worker.wait_for(|event| event["message"] == "worker started", "its start");
        worker
    }

    /// Polls `batch tasks show id` until `done` holds of the task (or `within` passes).
    pub(crate) fn wait_task(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let task = self.show(id);
            if done(&task) {
                return task;
            }
            assert!(Instant::now() < deadline, "the task never got there: {task}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// On PostgreSQL: how many sessions the store's connections (application name `batch`) hold on
    /// the fleet's database.
    fn store_sessions(&self) -> i64 {
        let audit = self.audit.as_ref().expect("a fleet on the shared PostgreSQL server");
        let row = audit
            .runtime
            .block_on(audit.client.query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'batch'",
                &[],
            ))
            .unwrap();
        row.get(0)
    }

    /// `batch tasks wait id --json` (exit code and document).
    pub(crate) fn wait(&self, id: &str) -> (i32, Value) {
        let ran = self.run(&["tasks", "wait", id, "--json"]);
        let document = serde_json::from_str(&ran.stdout).unwrap_or(Value::Null);
        (ran.code, document)
    }
}

impl Worker {
    /// Every event logged so far.
    pub(crate) fn events(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until an event satisfies `matches` (60 s at most); returns it.
    pub(crate) fn wait_for(&self, matches: impl Fn(&Value) -> bool, what: &str) -> Value {
        self.wait_for_after(0, matches, what)
    }

    /// Waits until an event after the first `skip` satisfies `matches` (60 s at most); returns it.
    pub(crate) fn wait_for_after(&self, skip: usize, matches: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(event) = self.events().into_iter().skip(skip).find(|event| matches(event)) {
                return event;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "worker {} never logged {what}: {:#?}", self.name, self.events());
            let _ = self.arrived.recv_timeout(left.min(Duration::from_millis(200)));
        }
    }

    /// The ids of the tasks this worker logged `message` for.
    pub(crate) fn tasks_with(&self, message: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|event| event["message"] == message)
            .filter_map(|event| event["span"]["task_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Sends `signal` to the process.
    pub(crate) fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal).unwrap();
    }

    /// Waits for the process to exit; its exit code (`None` when killed by a signal).
    pub(crate) fn exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "worker {} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When the task `id` was claimed by `worker` (its "task claimed" event) with `resumed`.
fn claimed(worker: &Worker, id: &str, resumed: bool) -> Value {
    worker.wait_for(
        |event| {
            event["message"] == "task claimed"
                && event["span"]["task_id"] == id
                && event["resumed"] == resumed
        },
        &format!("a claim of {id} (resumed {resumed})"),
    )
}

/// The youzan_order options of a task writing `name.jsonl` (and its dead letters) in the sandbox.
fn youzan_args(fleet: &Fleet, input: &str, name: &str, batch_size: u32) -> Vec<String> {
    let path = |file: String| fleet.sandbox.path(&file).display().to_string();
    vec![
        "--input".to_owned(),
        path(input.to_owned()),
        "--output".to_owned(),
        path(format!("{name}.jsonl")),
        "--dead-letter".to_owned(),
        path(format!("{name}.dead.jsonl")),
        "--batch-size".to_owned(),
        batch_size.to_string(),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Runs the same youzan task uninterrupted with `batch run` into `reference.*` and returns its
/// output and dead letters.
fn reference(fleet: &Fleet, input: &str, batch_size: u32) -> (String, String) {
    let reference = Sandbox::new();
    let args = youzan_args(fleet, input, "reference", batch_size);
    let mut all = vec!["run", "youzan_order"];
    all.extend(strs(&args));
    all.extend(["--db", "reference.db"]);
    let ran = reference.run(&all);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    (read(&fleet.sandbox.path("reference.jsonl")), read(&fleet.sandbox.path("reference.dead.jsonl")))
}

/// Runs `batch run kind args` uninterrupted on a store of its own; the task as `--json` prints it.
fn reference_run(kind: &str, args: &[String]) -> Value {
    let reference = Sandbox::new();
    let mut all = vec!["run", kind];
    all.extend(strs(args));
    all.extend(["--db", "reference.db", "--json"]);
    let ran = reference.run(&all);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    ran.json()
}

fn output_of(fleet: &Fleet, name: &str) -> (String, String) {
    (
        read(&fleet.sandbox.path(&format!("{name}.jsonl"))),
        read(&fleet.sandbox.path(&format!("{name}.dead.jsonl"))),
    )
}

/// The scenarios, each run on every store.
pub(crate) struct Scenarios;

impl Scenarios {
    /// Three workers share 200 submitted tasks: each task completes exactly once (one claim and one
    /// finish in the workers' logs, none refused), with exact counts.
    pub(crate) fn three_workers_share_200_tasks(fleet: &Fleet) -> BTreeMap<String, u64> {
        fleet.sandbox.generate("batch_process", 50, "records.jsonl", &["--invalid-ratio", "0"]);
        let input = fleet.sandbox.path("records.jsonl").display().to_string();
        let mut ids = Vec::new();
        for idx in 0..200 {
            let output = fleet.sandbox.path(&format!("out-{idx}.jsonl")).display().to_string();
            let filter = format!("amount >= {}", idx * 50);
            ids.push(fleet.submit(
                "batch_process",
                &["--input", &input, "--output", &output, "--filter", &filter, "--batch-size", "10"],
            ));
        }
        // One, two (the default) and four claims in flight: the audit below holds for each.
        let workers: Vec<Worker> = ["1", "2", "4"]
            .iter()
            .enumerate()
            .map(|(idx, claims)| fleet.worker_with(&format!("w{idx}"), 2, &["--claims-in-flight", claims]))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let listing =
                fleet.run(&["tasks", "list", "--status", "completed", "--limit", "1000", "--json"]).json();
            if listing["total"] == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "not every task completed: {}", listing["total"]);
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut finished_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut per_worker = BTreeMap::new();
        for worker in &workers {
            let finished = worker.tasks_with("task finished");
            per_worker.insert(worker.name.clone(), finished.len() as u64);
            for id in finished {
                finished_by.entry(id).or_default().push(worker.name.clone());
            }
            let refused: Vec<Value> = worker
                .events()
                .into_iter()
                .filter(|event| event["message"].as_str().is_some_and(|message| message.contains("refused")))
                .collect();
            assert!(refused.is_empty(), "no write of a live fleet is refused: {refused:#?}");
        }
        for id in &ids {
            let finishers = finished_by.get(id).cloned().unwrap_or_default();
            assert_eq!(finishers.len(), 1, "task {id} finished by {finishers:?}");
            let claims: usize = workers
                .iter()
                .map(|worker| worker.tasks_with("task claimed").iter().filter(|c| *c == id).count())
                .sum();
            assert_eq!(claims, 1, "task {id} claimed {claims} times");
        }
        // On PostgreSQL, the store's own audit trail says the same: per task one claim and one
        // completion, every checkpoint and the completion under the claim's epoch by its worker.
        if let Some(audit) = &fleet.audit {
            let trail = audit.events();
            for id in &ids {
                let events = trail.get(id).cloned().unwrap_or_default();
                let claims: Vec<_> = events.iter().filter(|(event, ..)| event == "claimed").collect();
                assert_eq!(claims.len(), 1, "task {id}: {events:?}");
                let (_, epoch, worker) = claims[0].clone();
                let completions = events.iter().filter(|(event, ..)| event == "completed").count();
                assert_eq!(completions, 1, "task {id}: {events:?}");
                for (event, at_epoch, by) in &events {
                    if event == "checkpoint" || event == "completed" {
                        assert_eq!((*at_epoch, by), (epoch, &worker), "task {id}: {events:?}");
                    }
                }
            }
        }
        // Exact counts: task idx keeps the records with amount >= idx * 50.
        let records: Vec<Value> = read(&fleet.sandbox.path("records.jsonl"))
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for (idx, id) in ids.iter().enumerate() {
            let threshold = idx as f64 * 50.0;
            // The filter's coercion: a number, or a string holding one.
            let amount = |record: &Value| match &record["amount"] {
                Value::String(text) => text.parse::<f64>().ok(),
                other => other.as_f64(),
            };
            let kept = records.iter().filter(|record| amount(record).is_some_and(|a| a >= threshold)).count();
            let task = fleet.show(id);
            assert_eq!(task["progress"]["processed"], kept, "task {idx}");
            let lines = read(&fleet.sandbox.path(&format!("out-{idx}.jsonl"))).lines().count();
            assert_eq!(lines, kept, "task {idx}'s output");
        }
        per_worker
    }

    /// A worker killed with SIGKILL mid-task: another worker takes the task over within the lease
    /// (plus the poll) and finishes it byte-identical to an uninterrupted run.
    pub(crate) fn a_killed_worker_is_taken_over_within_the_bound(fleet: &Fleet) -> Duration {
        fleet.sandbox.generate("youzan_order", 30_000, "trades.jsonl", &[]);
        let args = youzan_args(fleet, "trades.jsonl", "killed", 300);
        let mut first = fleet.worker("first", 1);
        let id = fleet.submit("youzan_order", &strs(&args));
        claimed(&first, &id, false);
        fleet.wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64() > Some(2000)
        });
        let second = fleet.worker("second", 1);
        first.signal(rustix::process::Signal::KILL);
        let killed_at = Instant::now();
        assert_eq!(first.exit(), None, "killed");
        claimed(&second, &id, true);
        let takeover = killed_at.elapsed();
        let (code, document) = fleet.wait(&id);
        assert_eq!((code, &document["status"]), (0, &Value::from("completed")), "{document}");
        assert_eq!(
            output_of(fleet, "killed"),
            reference(fleet, "trades.jsonl", 300),
            "byte-identical after a takeover"
        );
        // The bound: the lease (from the last heartbeat, at most a third of it before the kill) plus
        // the idle worker's poll (100 ms), with slack for a loaded machine.
        assert!(takeover < LEASE + Duration::from_secs(2), "took over after {takeover:?}");
        takeover
    }

    /// A worker paused (SIGSTOP) past its lease: another takes the task over; when the first wakes
    /// (SIGCONT) its commits are refused and logged, it drops the task, and the output is
    /// byte-identical.
    pub(crate) fn a_paused_worker_is_fenced(fleet: &Fleet) {
        fleet.sandbox.generate("youzan_order", 30_000, "trades.jsonl", &[]);
        let args = youzan_args(fleet, "trades.jsonl", "paused", 300);
        let first = fleet.worker("first", 1);
        let id = fleet.submit("youzan_order", &strs(&args));
        claimed(&first, &id, false);
        fleet.wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64() > Some(2000)
        });
        let second = fleet.worker("second", 1);
        let is_claim = |event: &Value| {
            event["message"] == "task claimed" && event["span"]["task_id"] == id && event["resumed"] == true
        };
        // On SQLite, a pause that lands inside the first worker's write transaction keeps the file
        // locked until the process resumes (nothing can break another process's SQLite lock: the
        // store's documented limit), and the second cannot claim anything. Then the first is
        // resumed (it still holds the task: nobody took it) and paused again once it committed
        // more.
        let locked = |event: &Value| {
            event["message"] == "worker cannot claim tasks"
                && event["error"].as_str().is_some_and(|error| error.contains("database is locked"))
        };
        for pause in 1.. {
            let events = second.events();
            let from = events.len();
            if events.iter().any(is_claim) {
                break;
            }
            first.signal(rustix::process::Signal::STOP);
            let seen =
                second.wait_for_after(from, |event| is_claim(event) || locked(event), "a claim or a lock");
            first.signal(rustix::process::Signal::CONT);
            if is_claim(&seen) {
                break;
            }
            eprintln!("pause {pause} caught the first worker inside a write transaction: {seen}");
            assert!(pause < 5, "every pause caught the first worker holding the store's lock");
            let processed = fleet.show(&id)["progress"]["processed"].as_u64();
            fleet.wait_task(&id, Duration::from_secs(60), |task| {
                task["progress"]["processed"].as_u64() > processed || task["status"] != "processing"
            });
        }
        // The stale holder learns at its next write (a checkpoint, a heartbeat or its end) and drops
        // the task: logged as refused, and no more of its writes land.
        let refused = first.wait_for(
            |event| {
                event["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("refused: this worker's claim is stale"))
            },
            "a refused write",
        );
        // The refusal names the task in its own fields (a heartbeat's refusal is logged outside the
        // task's span) or through the span.
        let named = [&refused["task_id"], &refused["span"]["task_id"]];
        assert!(named.iter().any(|task| **task == id.as_str()), "{refused}");
        let (code, document) = fleet.wait(&id);
        assert_eq!((code, &document["status"]), (0, &Value::from("completed")), "{document}");
        assert_eq!(
            output_of(fleet, "paused"),
            reference(fleet, "trades.jsonl", 300),
            "nothing stale reached the output"
        );
        assert!(first.tasks_with("task finished").is_empty(), "the stale worker recorded no end");
        first.wait_for(
            |event| event["message"] == "worker status" && event["dropped"] == 1,
            "the task dropped",
        );
    }

    /// `batch tasks stop` from another process cancels a task running in a worker within about a
    /// chunk (the worker's next heartbeat, a third of the lease).
    pub(crate) fn a_stop_from_another_process_reaches_the_worker(fleet: &Fleet) {
        fleet.sandbox.generate("youzan_order", 30_000, "trades.jsonl", &[]);
        let args = youzan_args(fleet, "trades.jsonl", "stopped", 300);
        let worker = fleet.worker("w", 1);
        let id = fleet.submit("youzan_order", &strs(&args));
        claimed(&worker, &id, false);
        fleet.wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64() > Some(1000)
        });
        let stopped_at = Instant::now();
        let ran = fleet.run(&["tasks", "stop", &id]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let task = fleet.wait_task(&id, Duration::from_secs(30), |task| task["status"] != "processing");
        let took = stopped_at.elapsed();
        assert_eq!(task["status"], "cancelled", "{task}");
        assert!(took < LEASE + Duration::from_secs(2), "stopped after {took:?}");
        let processed = task["progress"]["processed"].as_u64().unwrap();
        assert!(processed < 30_000, "stopped before the end: {processed}");
    }

    /// SIGTERM: the worker stops claiming, checkpoints and hands its task back, exits 0; a worker
    /// already idle resumes the task at once (well before the lease would have run out) and finishes
    /// it byte-identical.
    pub(crate) fn sigterm_hands_the_task_back(fleet: &Fleet) -> Duration {
        fleet.sandbox.generate("youzan_order", 30_000, "trades.jsonl", &[]);
        let args = youzan_args(fleet, "trades.jsonl", "handed", 300);
        let mut first = fleet.worker("first", 1);
        let id = fleet.submit("youzan_order", &strs(&args));
        claimed(&first, &id, false);
        let second = fleet.worker("second", 1);
        fleet.wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64() > Some(2000)
        });
        first.signal(rustix::process::Signal::TERM);
        let terminated_at = Instant::now();
        assert_eq!(first.exit(), Some(0), "a terminated worker exits 0");
        first
            .wait_for(|event| event["message"] == "worker status" && event["released"] == 1, "the hand-back");
        claimed(&second, &id, true);
        let resumed = terminated_at.elapsed();
        let (code, document) = fleet.wait(&id);
        assert_eq!((code, &document["status"]), (0, &Value::from("completed")), "{document}");
        assert_eq!(output_of(fleet, "handed"), reference(fleet, "trades.jsonl", 300));
        assert!(resumed < LEASE, "resumed {resumed:?} after the SIGTERM: not at once");
        resumed
    }

    /// A task stopped mid-run and restarted (`tasks restart --detach`, run by a worker) continues from
    /// its last checkpoint as attempt 2 and ends byte-identical to an uninterrupted run.
    pub(crate) fn a_stopped_task_restarts_from_its_checkpoint(fleet: &Fleet) {
        fleet.sandbox.generate("youzan_order", 30_000, "trades.jsonl", &[]);
        let args = youzan_args(fleet, "trades.jsonl", "restarted", 300);
        let worker = fleet.worker("w", 1);
        let id = fleet.submit("youzan_order", &strs(&args));
        claimed(&worker, &id, false);
        fleet.wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64() > Some(1000)
        });
        assert_eq!(fleet.run(&["tasks", "stop", &id]).code, 0);
        let stopped = fleet.wait_task(&id, Duration::from_secs(30), |task| task["status"] == "cancelled");
        let done_before = stopped["progress"]["processed"].as_u64().unwrap();
        let restarted = fleet.run(&["tasks", "restart", &id, "--detach", "--json"]).json();
        assert_eq!((&restarted["status"], &restarted["attempt"]), (&Value::from("pending"), &Value::from(2)));
        assert_eq!(restarted["attempts"][0]["status"], "cancelled");
        let (code, document) = fleet.wait(&id);
        assert_eq!((code, &document["status"]), (0, &Value::from("completed")), "{document}");
        assert!(done_before < 30_000);
        assert_eq!(output_of(fleet, "restarted"), reference(fleet, "trades.jsonl", 300));
        // A completed task is final.
        let refused = fleet.run(&["tasks", "restart", &id]);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(refused.stderr.starts_with("error: INVALID_STATE: "), "{}", refused.stderr);
    }

    /// One task in four partitions over two workers, one of them killed (SIGKILL) while it runs a
    /// partition and replaced: the parent completes with the output, the dead letters and the result
    /// of one uninterrupted, unpartitioned run, and the killed worker's partition was taken over.
    /// `args` are the kind's options writing `name.jsonl` and `name.dead.jsonl`; `reference_args`
    /// the same writing `reference.*`.
    fn partitioned_with_a_kill_equals_one_run(
        fleet: &Fleet,
        kind: &str,
        args: &[String],
        reference_args: &[String],
        name: &str,
    ) {
        let mut first = fleet.worker("first", 1);
        let second = fleet.worker("second", 1);
        let mut all = strs(args);
        all.extend(["--partitions", "4"]);
        let id = fleet.submit(kind, &all);
        // A partition `first` runs, once it has committed some of its records.
        let deadline = Instant::now() + Duration::from_secs(120);
        let partition = loop {
            let running = first.tasks_with("task claimed").into_iter().filter(|claimed| *claimed != id).find(
                |claimed| {
                    let task = fleet.show(claimed);
                    task["status"] == "processing" && task["progress"]["processed"].as_u64() > Some(300)
                },
            );
            if let Some(partition) = running {
                break partition;
            }
            assert!(Instant::now() < deadline, "worker first never ran a partition: {:#?}", first.events());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(fleet.show(&partition)["parent_id"], id.as_str());
        first.signal(rustix::process::Signal::KILL);
        assert_eq!(first.exit(), None, "killed");
        let third = fleet.worker("third", 1);
        let (code, document) = fleet.wait(&id);
        assert_eq!((code, &document["status"]), (0, &Value::from("completed")), "{document}");
        let taken_over = [&second, &third].iter().any(|worker| {
            worker.events().iter().any(|event| {
                event["message"] == "task claimed"
                    && event["span"]["task_id"] == partition.as_str()
                    && event["resumed"] == true
            })
        });
        assert!(taken_over, "the killed worker's partition {partition} was resumed by another worker");
        let reference = reference_run(kind, reference_args);
        assert_eq!(output_of(fleet, name), output_of(fleet, "reference"), "byte-identical to one run");
        assert_eq!(document["result"], reference["result"], "the same result as one run");
        assert_eq!(document["progress"]["processed"], reference["progress"]["processed"]);
        assert_eq!(document["progress"]["failed"], reference["progress"]["failed"]);
    }

    /// `youzan_order` (with invalid records) in four partitions over two workers with a kill.
    pub(crate) fn a_partitioned_youzan_task_equals_one_run(fleet: &Fleet) {
        fleet.sandbox.generate("youzan_order", 40_000, "trades.jsonl", &["--invalid-ratio", "0.05"]);
        let args = youzan_args(fleet, "trades.jsonl", "split", 200);
        let reference_args = youzan_args(fleet, "trades.jsonl", "reference", 200);
        Self::partitioned_with_a_kill_equals_one_run(fleet, "youzan_order", &args, &reference_args, "split");
    }

    /// `batch_process` with a filter, de-duplication and a group-by (and malformed records) in four
    /// partitions over two workers with a kill.
    pub(crate) fn a_partitioned_batch_process_task_equals_one_run(fleet: &Fleet) {
        fleet.sandbox.generate("batch_process", 40_000, "records.jsonl", &["--invalid-ratio", "0.02"]);
        let args = |name: &str| {
            let path = |file: String| fleet.sandbox.path(&file).display().to_string();
            vec![
                "--input".to_owned(),
                path("records.jsonl".to_owned()),
                "--output".to_owned(),
                path(format!("{name}.jsonl")),
                "--dead-letter".to_owned(),
                path(format!("{name}.dead.jsonl")),
                "--filter".to_owned(),
                "amount >= 1000 && active == true".to_owned(),
                "--dedup-key".to_owned(),
                "id".to_owned(),
                "--group-by".to_owned(),
                "region,category".to_owned(),
                "--aggregates".to_owned(),
                "orders=count,total=sum:amount,largest=max:amount,avg:quantity".to_owned(),
                "--batch-size".to_owned(),
                "200".to_owned(),
            ]
        };
        Self::partitioned_with_a_kill_equals_one_run(
            fleet,
            "batch_process",
            &args("split"),
            &args("reference"),
            "split",
        );
    }

    /// The PostgreSQL server restarted (fast shutdown: every connection dropped) while two workers
    /// run a task: they reconnect and the task completes byte-identical to an uninterrupted run.
    pub(crate) fn the_database_restarted_mid_run(fleet: &Fleet) {
        let Some(server) = &fleet.server else { panic!("a fleet on a server of its own") };
        fleet.sandbox.generate("youzan_order", 30_000, "trades.jsonl", &[]);
        let args = youzan_args(fleet, "trades.jsonl", "restarted", 300);
        let first = fleet.worker("first", 1);
        let id = fleet.submit("youzan_order", &strs(&args));
        claimed(&first, &id, false);
        let _second = fleet.worker("second", 1);
        fleet.wait_task(&id, Duration::from_secs(60), |task| {
            task["progress"]["processed"].as_u64() > Some(2000)
        });
        server.stop(batch_testkit::StopMode::Fast).unwrap();
        server.start_again().unwrap();
        let (code, document) = fleet.wait(&id);
        assert_eq!((code, &document["status"]), (0, &Value::from("completed")), "{document}");
        assert_eq!(output_of(fleet, "restarted"), reference(fleet, "trades.jsonl", 300));
    }

    /// A task submitted with `--json` prints itself; `tasks wait` exits as `run` would.
    pub(crate) fn submit_and_wait_exit_codes(fleet: &Fleet) {
        fleet.sandbox.generate("youzan_order", 300, "small.jsonl", &["--invalid-ratio", "0.5"]);
        let args = youzan_args(fleet, "small.jsonl", "strict", 50);
        let mut all = vec!["submit", "youzan_order"];
        all.extend(strs(&args));
        all.extend(["--skip-limit", "0", "--json"]);
        let submitted = fleet.run(&all).json();
        assert_eq!(submitted["status"], "pending");
        let id = submitted["id"].as_str().unwrap().to_owned();
        let _worker = fleet.worker("w", 1);
        let (code, document) = fleet.wait(&id);
        assert_eq!(code, 1, "a failed task exits 1: {document}");
        assert_eq!(document["status"], "failed");
        assert_eq!(document["error"]["code"], "PROCESSING_ERROR");
    }
}

/// The same test for `store`: `sqlite` or `postgres`.
macro_rules! fleet_tests {
    ($fleet:expr) => {
        #[test]
        fn three_workers_share_200_tasks_each_completing_exactly_once() {
            if let Some(fleet) = $fleet {
                let per_worker = crate::fleet::Scenarios::three_workers_share_200_tasks(&fleet);
                eprintln!("tasks finished per worker: {per_worker:?}");
            }
        }

        #[test]
        fn a_worker_killed_mid_task_is_taken_over_within_the_bound_byte_identical() {
            if let Some(fleet) = $fleet {
                let takeover =
                    crate::fleet::Scenarios::a_killed_worker_is_taken_over_within_the_bound(&fleet);
                eprintln!("taken over {takeover:?} after the kill");
            }
        }

        #[test]
        fn a_worker_paused_past_its_lease_is_fenced_and_changes_nothing() {
            if let Some(fleet) = $fleet {
                crate::fleet::Scenarios::a_paused_worker_is_fenced(&fleet);
            }
        }

        #[test]
        fn a_stop_from_another_process_cancels_the_task_within_about_a_chunk() {
            if let Some(fleet) = $fleet {
                crate::fleet::Scenarios::a_stop_from_another_process_reaches_the_worker(&fleet);
            }
        }

        #[test]
        fn sigterm_hands_the_task_back_and_another_worker_resumes_it_at_once() {
            if let Some(fleet) = $fleet {
                let resumed = crate::fleet::Scenarios::sigterm_hands_the_task_back(&fleet);
                eprintln!("resumed {resumed:?} after the SIGTERM");
            }
        }

        #[test]
        fn a_stopped_task_restarts_from_its_checkpoint_byte_identical() {
            if let Some(fleet) = $fleet {
                crate::fleet::Scenarios::a_stopped_task_restarts_from_its_checkpoint(&fleet);
            }
        }

        #[test]
        fn a_partitioned_youzan_task_over_two_workers_with_a_kill_equals_one_run() {
            if let Some(fleet) = $fleet {
                crate::fleet::Scenarios::a_partitioned_youzan_task_equals_one_run(&fleet);
            }
        }

        #[test]
        fn a_partitioned_batch_process_task_over_two_workers_with_a_kill_equals_one_run() {
            if let Some(fleet) = $fleet {
                crate::fleet::Scenarios::a_partitioned_batch_process_task_equals_one_run(&fleet);
            }
        }

        #[test]
        fn submit_json_and_wait_exit_codes() {
            if let Some(fleet) = $fleet {
                crate::fleet::Scenarios::submit_and_wait_exit_codes(&fleet);
            }
        }
    };
}

mod sqlite {
    fleet_tests!(Some(crate::fleet::Fleet::sqlite()));
}

mod postgres {
    fleet_tests!(crate::fleet::Fleet::postgres(module_path!()));

    /// `--writers N`: the worker commits on N connections, made when it starts (with its
    /// listener's, N + 1 sessions), and runs tasks with one as with several.
    #[test]
    fn a_worker_commits_on_the_writer_lanes_it_is_given() {
        let Some(fleet) = crate::fleet::Fleet::postgres(module_path!()) else { return };
        fleet.sandbox.generate("batch_process", 200, "records.jsonl", &["--invalid-ratio", "0"]);
        let input = fleet.sandbox.path("records.jsonl").display().to_string();
        for writers in [1, 3] {
            let lanes = writers.to_string();
            let worker = fleet.worker_with(&format!("lanes-{writers}"), 2, &["--writers", &lanes]);
            let started = worker.wait_for(|event| event["message"] == "worker started", "its start");
            assert_eq!(started["writers"], writers, "{started}");
            // A status line comes after the claim loops ran: they use the lanes, nothing more.
            worker.wait_for(|event| event["message"] == "worker status", "a status line");
            assert_eq!(fleet.store_sessions(), i64::from(writers) + 1, "writers {writers}");
            let output = fleet.sandbox.path(&format!("out-{writers}.jsonl")).display().to_string();
            let id = fleet
                .submit("batch_process", &["--input", &input, "--output", &output, "--batch-size", "20"]);
            let (code, task) = fleet.wait(&id);
            assert_eq!((code, &task["status"]), (0, &serde_json::json!("completed")), "{task}");
            assert_eq!(task["progress"]["processed"], 200, "{task}");
            drop(worker);
            // The killed worker's sessions end after it: the next count starts from none.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while fleet.store_sessions() > 0 {
                assert!(std::time::Instant::now() < deadline, "the killed worker's sessions did not end");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let refused = fleet.run(&["worker", "--writers", "0"]);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(refused.stderr.contains("--writers"), "{}", refused.stderr);
    }

    #[test]
    fn the_server_restarted_mid_run_workers_reconnect_and_finish_byte_identical() {
        if let Some(fleet) = crate::fleet::Fleet::postgres_own_server("the_server_restarted_mid_run") {
            crate::fleet::Scenarios::the_database_restarted_mid_run(&fleet);
        }
    }
}
