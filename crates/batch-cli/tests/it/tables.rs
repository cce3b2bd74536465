//! `batch run batch_process` between PostgreSQL tables: `--input postgres://…` with its table, and
//! `--output postgres://…` with its table, from the options the kind's params generate; a bad
//! address is one coded line that never shows the password. On a throwaway server from
//! batch-testkit (skipped in one line without PostgreSQL, unless `PUMP_REQUIRE_PG=1`).

use crate::support::Sandbox;

#[test]
fn batch_process_copies_a_table_into_a_table_from_the_command_line() {
    let Some(cluster) =
        batch_testkit::shared_or_skip("batch_process_copies_a_table_into_a_table_from_the_command_line")
    else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let database = runtime.block_on(cluster.create_database()).unwrap();
    let client = runtime.block_on(cluster.connect(&database.name)).unwrap();
    runtime
        .block_on(client.batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, amount numeric(12,2) NOT NULL);
             INSERT INTO orders SELECT g, 'r' || g % 3, g * 1.25 FROM generate_series(1, 5000) AS g;
             CREATE TABLE big (LIKE orders INCLUDING ALL);",
        ))
        .unwrap();
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
