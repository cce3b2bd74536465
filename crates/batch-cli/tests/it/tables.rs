//! `batch run batch_process` between PostgreSQL tables: `--input postgres://…` with its table, and
//! `--output postgres://…` with its table, from the options the kind's params generate; a bad
//! address is one coded line that never shows the password. On a throwaway server from
//! batch-testkit (skipped in one line without PostgreSQL, unless `PUMP_REQUIRE_PG=1`).

use crate::support::Sandbox;

/// A fresh database on the shared test server holding the tables `setup` creates, with a runtime and
/// a client to query it; `None` (the test skipped in one line) without PostgreSQL.
struct Tables {
    runtime: tokio::runtime::Runtime,
    database: batch_testkit::TestDatabase,
    client: tokio_postgres::Client,
}

impl Tables {
    fn new(test: &str, setup: &str) -> Option<Tables> {
        let cluster = batch_testkit::shared_or_skip(test)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let database = runtime.block_on(cluster.create_database()).unwrap();
        let client = runtime.block_on(cluster.connect(&database.name)).unwrap();
        runtime.block_on(client.batch_execute(setup)).unwrap();
        Some(Tables { runtime, database, client })
    }
}

#[test]
fn batch_process_copies_a_table_into_a_table_from_the_command_line() {
    let Some(Tables { runtime, database, client }) = Tables::new(
        "batch_process_copies_a_table_into_a_table_from_the_command_line",
        "CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, amount numeric(12,2) NOT NULL);
         INSERT INTO orders SELECT g, 'r' || g % 3, g * 1.25 FROM generate_series(1, 5000) AS g;
         CREATE TABLE big (LIKE orders INCLUDING ALL);",
    ) else {
        return;
    };
    let sandbox = Sandbox::new();
    let url = database.url.as_str();
    let ran = sandbox.run(&[
        "run",
        "batch_process",
        "--input",
        url,
        "--input-table",
        "orders",
        "--output",
        url,
        "--output-table",
        "big",
        "--dead-letter",
        "bad.jsonl",
        "--filter",
        "amount >= 1000",
        "--batch-size",
        "500",
        "--json",
    ]);
    let report = ran.json();
    assert_eq!(report["status"], "completed", "{}", ran.stderr);
    // amount = id × 1.25 ≥ 1000 from id 800 on.
    assert_eq!(
        (report["progress"]["processed"].as_u64(), report["progress"]["skipped"].as_u64()),
        (Some(4201), Some(799))
    );
    let row = runtime
        .block_on(client.query_one("SELECT count(*), min(id), sum(amount)::text FROM big", &[]))
        .unwrap();
    let (count, min, sum): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    let expected: i64 = (800..=5000).map(|id| id * 125).sum();
    assert_eq!((count, min, sum), (4201, 800, format!("{}.{:02}", expected / 100, expected % 100)));
    assert_eq!(crate::support::read(&sandbox.path("bad.jsonl")), "");
}

#[test]
fn a_bad_table_address_is_one_configuration_error_without_the_password() {
    let sandbox = Sandbox::new();
    let ran = sandbox.run(&[
        "run",
        "batch_process",
        "--input",
        "postgres://app:hunter2@db:port/sales",
        "--input-table",
        "orders",
        "--output",
        "out.jsonl",
    ]);
    let message = ran.one_error_line(2, "CONFIGURATION_ERROR");
    assert!(
        message.contains(": input: postgres://app@db:port/sales is not a valid PostgreSQL URL"),
        "{message}"
    );
    assert!(message.ends_with("(set it with --input)"), "{message}");
    assert!(!ran.stderr.contains("hunter2"), "{}", ran.stderr);
    let ran =
        sandbox.run(&["run", "batch_process", "--input", "postgres://app@db/sales", "--output", "out.jsonl"]);
    let message = ran.one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains(": input_table: missing;"), "{message}");
    assert!(message.ends_with("(set it with --input-table)"), "{message}");
}

/// `(count(*), count(DISTINCT id), md5 of every row in id order)` of `relation`.
fn checksum(
    runtime: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    relation: &str,
) -> (i64, i64, String) {
    let row = runtime
        .block_on(client.query_one(
            &format!(
                "SELECT count(*), count(DISTINCT id), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) \
                 FROM {relation} AS t"
            ),
            &[],
        ))
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// The task's last checkpoint: its sequence, the rows its output position covers, and how many
/// rows of `t2` were written by the transaction that committed it.
fn committed(
    runtime: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    id: &str,
) -> (i64, i64, i64) {
    let row = runtime
        .block_on(client.query_opt(
            "SELECT c.sequence, (c.record->'sink'->>'output')::bigint, \
               (SELECT count(*) FROM t2 WHERE t2.xmin::text = c.xmin::text) \
             FROM batch.checkpoints c WHERE c.task_id = $1::text::uuid",
            &[&id],
        ))
        .unwrap();
    row.map_or((0, 0, 0), |row| (row.get(0), row.get(1), row.get(2)))
}

/// The new guarantee of a table output in the store's own database: `batch worker` processes on a
/// PostgreSQL store copying a table into a table of the same database, SIGKILLed mid-chunk and right
/// after a checkpoint, leave after each kill *exactly* the rows the last checkpoint covers (the
/// first rows of the source, nothing beyond, the last chunks written by the checkpoint's own
/// transaction); the last worker finishes the copy with every row exactly once.
#[test]
fn a_table_copy_into_the_stores_database_killed_anywhere_holds_exactly_the_checkpointed_rows() {
    const ROWS: i64 = 40_000;
    let columns =
        "id bigint PRIMARY KEY, name text NOT NULL, amount numeric(16,2), at timestamptz, doc jsonb";
    let Some(Tables { runtime, database, client }) = Tables::new(
        "a_table_copy_into_the_stores_database_killed_anywhere_holds_exactly_the_checkpointed_rows",
        &format!(
            "CREATE TABLE t1 ({columns});
             INSERT INTO t1 SELECT g, 'name ' || g, CASE WHEN g % 13 = 0 THEN NULL ELSE g * 1000003.17 END, \
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', jsonb_build_object('g', g) \
             FROM generate_series(1, {ROWS}) AS g;
             CREATE TABLE t2 ({columns});"
        ),
    ) else {
        return;
    };
    let sandbox = Sandbox::new();
    let url = database.url.as_str();
    let submitted = sandbox.run(&[
        "--db",
        url,
        "submit",
        "batch_process",
        "--input",
        url,
        "--input-table",
        "t1",
        "--output",
        url,
        "--output-table",
        "t2",
        "--dead-letter",
        "dead.jsonl",
        "--batch-size",
        "500",
        "--json",
    ]);
    assert_eq!(submitted.code, 0, "{}", submitted.stderr);
    let id = submitted.json()["id"].as_str().unwrap().to_owned();

    // (checkpoints to wait for after the worker's first, extra delay): right after a checkpoint,
    // and mid-chunk.
    let points = [(2, 0), (1, 7), (3, 0), (0, 25), (5, 3)];
    let mut log = Vec::new();
    for (checkpoints, delay_ms) in points {
        let (before, _, _) = committed(&runtime, &client, &id);
        let mut worker = sandbox.spawn(&["--db", url, "worker", "--concurrency", "1"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        // The worker's first checkpoint shows it holds the task (a takeover waits for the lease).
        let wanted = before + 1 + checkpoints;
        loop {
            assert!(worker.try_wait().unwrap().is_none(), "the worker exited before checkpoint {wanted}");
            assert!(std::time::Instant::now() < deadline, "checkpoint {wanted} never came ({log:?})");
            if committed(&runtime, &client, &id).0 >= wanted {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
        let task = sandbox.run(&["--db", url, "tasks", "show", &id, "--json"]).json();
        assert_eq!(task["status"], "processing", "killed before the end: {task}");
        let (sequence, rows, in_checkpoint_transaction) = committed(&runtime, &client, &id);
        assert!(rows > 0 && rows < ROWS, "checkpoint {sequence} covers {rows} rows");
        // Exactly the rows the checkpoint covers, before any resume: the source's first `rows`.
        assert_eq!(
            checksum(&runtime, &client, "t2"),
            checksum(&runtime, &client, &format!("(SELECT * FROM t1 WHERE id <= {rows})")),
            "killed at checkpoint {sequence} + {delay_ms} ms ({log:?})"
        );
        // The last checkpoint's transaction wrote its chunk: alone, or with the chunks whose
        // checkpoints queued behind the commit before it (up to five, committed together).
        assert!(
            in_checkpoint_transaction % 500 == 0 && (500..=2_500).contains(&in_checkpoint_transaction),
            "the last chunks were written by the checkpoint's transaction: {in_checkpoint_transaction} rows"
        );
        log.push((sequence, rows));
    }

    let resumed = sandbox.run(&["--db", url, "tasks", "resume", &id, "--wait", "--json"]);
    let document = resumed.json();
    assert_eq!(document["status"], "completed", "{}", resumed.stderr);
    assert_eq!(document["progress"]["processed"].as_i64(), Some(ROWS));
    let copied = checksum(&runtime, &client, "t2");
    assert_eq!(copied.0, ROWS, "kills: {log:?}");
    assert_eq!(copied, checksum(&runtime, &client, "t1"), "kills: {log:?}");
    assert_eq!(crate::support::read(&sandbox.path("dead.jsonl")), "");
}

/// `--output-mode`: refused for a file output when the task is created; `transactional` with a
/// store in another database (SQLite here) fails the task with one coded line saying why, before a
/// row is written; `upsert` writes through the output's own connection.
#[test]
fn output_mode_transactional_needs_the_store_in_the_tables_database() {
    let Some(Tables { runtime, database, client }) = Tables::new(
        "output_mode_transactional_needs_the_store_in_the_tables_database",
        "CREATE TABLE t1 (id bigint PRIMARY KEY, name text);
         INSERT INTO t1 SELECT g, 'n' || g FROM generate_series(1, 300) AS g;
         CREATE TABLE t2 (LIKE t1 INCLUDING ALL);",
    ) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.generate("batch_process", 10, "in.jsonl", &[]);
    let ran = sandbox.run(&[
        "run",
        "batch_process",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
        "--output-mode",
        "upsert",
    ]);
    let message = ran.one_error_line(2, "CONFIGURATION_ERROR");
    assert!(message.contains("output_mode: applies to a table only"), "{message}");

    let url = database.url.as_str();
    let copy = |mode: &str| {
        sandbox.run(&[
            "run",
            "batch_process",
            "--input",
            url,
            "--input-table",
            "t1",
            "--output",
            url,
            "--output-table",
            "t2",
            "--dead-letter",
            "dead.jsonl",
            "--output-mode",
            mode,
        ])
    };
    let ran = copy("transactional");
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("CONFIGURATION_ERROR"), "{}", ran.stderr);
    assert!(ran.stderr.contains("output_mode transactional: the table t2 at"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("the task's store cannot commit rows with its checkpoints"),
        "{}",
        ran.stderr
    );
    let count = |client: &tokio_postgres::Client| -> i64 {
        runtime.block_on(client.query_one("SELECT count(*) FROM t2", &[])).unwrap().get(0)
    };
    assert_eq!(count(&client), 0);
    let ran = copy("upsert");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(count(&client), 300);
}
