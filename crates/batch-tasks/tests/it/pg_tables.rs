//! PostgreSQL tables as `batch_process`'s input and output (feature `postgres`), on a throwaway
//! server from batch-testkit (skipped in one line without PostgreSQL, unless `PUMP_REQUIRE_PG=1`):
//! round trips table → table, table → file and file → table; a resume from every checkpoint, with
//! the rows a crash left after it, ends equal to an uninterrupted run; bad addresses, tables,
//! columns and logins give coded errors that never show the password.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use batch_model::{
    BatchConfig, BatchTask, Checkpoint, Counters, CreateTaskRequest, ErrorCode, Progress, TaskError, TaskId,
    TaskType,
};
use batch_tasks::batch_process::BatchProcessKind;
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use batch_testkit::{PgCluster, TestDatabase, shared_or_skip};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A job control that keeps every commit.
#[derive(Default)]
struct MemoryControl {
    commits: Mutex<Vec<Checkpoint>>,
    /// The progress total committed with each checkpoint.
    totals: Mutex<Vec<Option<u64>>>,
    token: CancellationToken,
}

#[async_trait]
impl JobControl for MemoryControl {
    async fn commit(&self, checkpoint: Checkpoint, progress: Progress) -> Result<(), TaskError> {
        self.commits.lock().unwrap().push(checkpoint);
        self.totals.lock().unwrap().push(progress.total);
        Ok(())
    }

    async fn report_progress(&self, _progress: Progress) {}

    fn stop_requested(&self) -> bool {
        false
    }

    fn cancellation_token(&self) -> CancellationToken {
        self.token.clone()
    }
}

/// The columns of the test tables: every kind of value the source renders.
const COLUMNS: &str = "id bigint PRIMARY KEY, name text NOT NULL, amount numeric(16,2), ok boolean, \
                       at timestamptz, doc jsonb, tags text[]";

/// Fills `table` with rows 1..=n: a NULL amount every 17th row, exact amounts (`id × 1000003.17`),
/// quotes and non-ASCII text, nested JSON, arrays.
async fn create_source(client: &tokio_postgres::Client, table: &str, n: i64) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} ({COLUMNS});
             INSERT INTO {table} SELECT g, 'name ' || g || ' \"q\" 华东', \
               CASE WHEN g % 17 = 0 THEN NULL ELSE g * 1000003.17 END, g % 2 = 0, \
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', \
               jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')), ARRAY['a', g::text] \
             FROM generate_series(1, {n}) AS g;"
        ))
        .await
        .unwrap();
}

/// `(count(*), count(DISTINCT id), md5 of every row in id order)` of `table`.
async fn checksum(client: &tokio_postgres::Client, table: &str) -> (i64, i64, String) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT id), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) \
                 FROM {table} AS t"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn task(params: Value, batch_size: u32) -> BatchTask {
    let config = BatchConfig { batch_size, concurrency: 2, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::BatchProcess).with_config(config).with_params(params);
    BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap()
}

/// Runs the kind on `task` from `checkpoint`: the outcome (or error) and the checkpoints committed.
async fn run(
    task: &BatchTask,
    checkpoint: Option<Checkpoint>,
) -> (Result<JobOutcome, TaskError>, Vec<Checkpoint>) {
    let (outcome, commits, _totals) = run_with_totals(task, checkpoint).await;
    (outcome, commits)
}

/// [`run`], with the progress total of each commit.
async fn run_with_totals(
    task: &BatchTask,
    checkpoint: Option<Checkpoint>,
) -> (Result<JobOutcome, TaskError>, Vec<Checkpoint>, Vec<Option<u64>>) {
    let kind = BatchProcessKind::default();
    kind.validate(&task.params, &task.config).unwrap();
    let control = Arc::new(MemoryControl::default());
    let context = JobContext::new(task.clone(), checkpoint, Arc::clone(&control) as Arc<dyn JobControl>);
    let outcome = kind.run(context).await;
    let commits = control.commits.lock().unwrap().clone();
    let totals = control.totals.lock().unwrap().clone();
    (outcome, commits, totals)
}

fn completed_counters(outcome: Result<JobOutcome, TaskError>, commits: &[Checkpoint]) -> Counters {
    match outcome.unwrap() {
        JobOutcome::Completed { .. } => {
            commits.last().map(|checkpoint| checkpoint.counters).unwrap_or_default()
        }
        other => panic!("the task did not complete: {other:?}"),
    }
}

struct Fixture {
    cluster: &'static PgCluster,
    db: TestDatabase,
    client: tokio_postgres::Client,
}

async fn fixture(test: &str) -> Option<Fixture> {
    let cluster = shared_or_skip(test)?;
    let db = cluster.create_database().await.unwrap();
    let client = cluster.connect(&db.name).await.unwrap();
    Some(Fixture { cluster, db, client })
}

/// `amount` of row `id` as the exact text PostgreSQL shows (`id × 1000003.17`), `None` every 17th.
fn amount(id: u64) -> Option<String> {
    (!id.is_multiple_of(17)).then(|| {
        let cents = id * 100_000_317;
        format!("{}.{:02}", cents / 100, cents % 100)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_copied_to_a_table_row_for_row() {
    let Some(fx) = fixture("a_table_is_copied_to_a_table_row_for_row").await else { return };
    create_source(&fx.client, "t1", 2_345).await;
    fx.client.batch_execute(&format!("CREATE TABLE t2 ({COLUMNS}); ANALYZE t1")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let params = json!({
        "input": fx.db.url, "input_table": "t1",
        "output": fx.db.url, "output_table": "public.t2",
        "dead_letter": dir.path().join("dead.jsonl"),
    });
    let (outcome, commits, totals) = run_with_totals(&task(params, 100), None).await;
    let counters = completed_counters(outcome, &commits);
    assert_eq!((counters.processed, counters.failed, counters.skipped), (2_345, 0, 0));
    // The progress total is the server's estimate of the table's rows (exact after ANALYZE).
    assert_eq!(totals[0], Some(2_345), "{totals:?}");
    assert_eq!(checksum(&fx.client, "t2").await, checksum(&fx.client, "t1").await);
    assert_eq!(checksum(&fx.client, "t2").await.0, 2_345);
    assert_eq!(std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap(), "");
    // The checkpoints carry the last key read and the rows sent.
    let last = commits.last().unwrap();
    assert_eq!(last.source, json!({ "key": "2345", "rows": 2_345 }));
    assert_eq!(last.sink["output"], 2_345);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_read_into_json_lines_with_typed_values() {
    let Some(fx) = fixture("a_table_is_read_into_json_lines_with_typed_values").await else { return };
    create_source(&fx.client, "src", 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rows.jsonl");
    // A query input, keyed by its id column.
    let params = json!({
        "input": fx.db.url, "input_query": "SELECT * FROM src WHERE id > 10", "input_key": "id",
        "output": output,
        "filter": "id <= 900",
    });
    let (outcome, commits) = run(&task(params, 64), None).await;
    let counters = completed_counters(outcome, &commits);
    assert_eq!((counters.processed, counters.skipped), (890, 100));
    let text = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(rows.len(), 890);
    for (row, id) in rows.iter().zip(11u64..) {
        assert_eq!(row["id"], json!(id), "rows in key order");
        assert_eq!(row["amount"], amount(id).map_or(Value::Null, Value::String), "row {id}");
        assert_eq!(row["name"], json!(format!("name {id} \"q\" 华东")));
        assert_eq!(row["ok"], json!(id % 2 == 0));
        assert_eq!(row["doc"], json!({ "g": id, "nested": [id, "x"] }));
        assert_eq!(row["tags"], json!(["a", id.to_string()]));
    }
    assert_eq!(rows[0]["at"], json!("2024-01-01T00:11:00+00:00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_are_loaded_into_a_table_and_bad_records_go_to_the_dead_letters() {
    let Some(fx) = fixture("json_lines_are_loaded_into_a_table_and_bad_records_go_to_the_dead_letters").await
    else {
        return;
    };
    fx.client.batch_execute(&format!("CREATE TABLE loaded ({COLUMNS})")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut lines = String::new();
    let mut expected_cents: u64 = 0;
    for id in 1..=3_000u64 {
        if id.is_multiple_of(500) {
            lines.push_str("[\"not an object\"]\n");
            continue;
        }
        if id.is_multiple_of(700) {
            // An object cut short: the rows pass through unparsed, but a broken one is refused first.
            lines.push_str(&format!("{{\"id\": {id}, \"name\": \n"));
            continue;
        }
        let cents = id * 100_000_317;
        expected_cents += cents;
        let row = json!({
            "id": id, "name": format!("n{id}"), "amount": format!("{}.{:02}", cents / 100, cents % 100),
            "ok": true, "at": "2024-06-01T12:00:00Z", "doc": { "id": id }, "tags": ["x"], "extra": "ignored",
        });
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let params = json!({
        "input": input, "output": fx.db.url, "output_table": "loaded", "output_key": "id",
        "dead_letter": dir.path().join("dead.jsonl"),
    });
    let (outcome, commits) = run(&task(params, 256), None).await;
    let counters = completed_counters(outcome, &commits);
    assert_eq!((counters.processed, counters.failed), (2_990, 10));
    let row = fx
        .client
        .query_one("SELECT count(*), count(DISTINCT id), sum(amount)::text, min(name) FROM loaded", &[])
        .await
        .unwrap();
    let (count, distinct, sum, name): (i64, i64, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((count, distinct), (2_990, 2_990));
    assert_eq!(sum, format!("{}.{:02}", expected_cents / 100, expected_cents % 100));
    assert_eq!(name, "n1");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 10);
    assert!(dead.lines().all(|line| line.contains("VALIDATION_ERROR")), "{dead}");
    assert_eq!(dead.lines().filter(|line| line.contains("not a JSON value")).count(), 4, "{dead}");
    assert_eq!(dead.lines().filter(|line| line.contains("not a JSON object")).count(), 6, "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_of_a_table_are_upserted_into_a_table_with_the_key_log_beside_the_dead_letters() {
    let Some(fx) =
        fixture("groups_of_a_table_are_upserted_into_a_table_with_the_key_log_beside_the_dead_letters").await
    else {
        return;
    };
    create_source(&fx.client, "t1", 1_000).await;
    fx.client
        .batch_execute(
            "CREATE TABLE groups (ok boolean PRIMARY KEY, count bigint NOT NULL, total numeric NOT NULL)",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let params = json!({
        "input": fx.db.url, "input_table": "t1",
        "output": fx.db.url, "output_table": "groups", "dead_letter": dead,
        "dedup_key": "id", "group_by": "ok", "aggregates": ["count", "total=sum:id"],
    });
    let (outcome, commits) = run(&task(params, 100), None).await;
    let counters = completed_counters(outcome, &commits);
    assert_eq!((counters.processed, counters.failed), (1_000, 0));
    let rows = fx.client.query("SELECT ok, count, total::text FROM groups ORDER BY ok", &[]).await.unwrap();
    let got: Vec<(bool, i64, String)> = rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect();
    let expected = fx
        .client
        .query("SELECT ok, count(*), sum(id)::text FROM t1 GROUP BY ok ORDER BY ok", &[])
        .await
        .unwrap();
    let expected: Vec<(bool, i64, String)> =
        expected.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect();
    assert_eq!(got, expected);
    // The dedup keys were logged beside the dead letters (the output is a table), and removed at
    // the end.
    assert!(!dir.path().join("dead.jsonl.keys").exists());
    assert!(commits[0].sink["log"].as_u64().is_some_and(|len| len > 0), "{}", commits[0].sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_every_checkpoint_ends_equal_to_an_uninterrupted_run() {
    let Some(fx) = fixture("a_resume_from_every_checkpoint_ends_equal_to_an_uninterrupted_run").await else {
        return;
    };
    const ROWS: i64 = 2_000;
    const CHUNK: u32 = 250;
    create_source(&fx.client, "t1", ROWS).await;
    fx.client.batch_execute(&format!("CREATE TABLE t2 ({COLUMNS})")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let params = json!({
        "input": fx.db.url, "input_table": "t1", "input_key": "id",
        "output": fx.db.url, "output_table": "t2",
        "dead_letter": dir.path().join("dead.jsonl"),
    });
    let task = task(params, CHUNK);
    let (outcome, commits) = run(&task, None).await;
    let reference_counters = completed_counters(outcome, &commits);
    let reference = checksum(&fx.client, "t2").await;
    assert_eq!(reference, checksum(&fx.client, "t1").await);
    assert_eq!(commits.len(), (ROWS / i64::from(CHUNK)) as usize);
    for checkpoint in &commits {
        let done = checkpoint.source["rows"].as_i64().unwrap();
        // What a crash after this checkpoint leaves: its rows, and those of the next chunk, written
        // before the next checkpoint could commit.
        fx.client.batch_execute("TRUNCATE t2").await.unwrap();
        fx.client
            .execute("INSERT INTO t2 SELECT * FROM t1 WHERE id <= $1", &[&(done + i64::from(CHUNK))])
            .await
            .unwrap();
        let (outcome, resumed) = run(&task, Some(checkpoint.clone())).await;
        let mut all = vec![checkpoint.clone()];
        all.extend(resumed.iter().cloned());
        let counters = completed_counters(outcome, &all);
        assert_eq!(counters, reference_counters, "resumed from checkpoint {}", checkpoint.sequence);
        assert_eq!(
            checksum(&fx.client, "t2").await,
            reference,
            "resumed from checkpoint {}",
            checkpoint.sequence
        );
        if let Some(first) = resumed.first() {
            assert_eq!(first.sequence, checkpoint.sequence + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_other_types_resume_exactly() {
    let Some(fx) = fixture("keys_of_other_types_resume_exactly").await else { return };
    fx.client
        .batch_execute(
            "CREATE TABLE chars (code char(6) PRIMARY KEY, v int NOT NULL);
             INSERT INTO chars SELECT 'k' || lpad(g::text, 3, '0'), g FROM generate_series(1, 40) AS g;
             CREATE TABLE times (at timestamptz PRIMARY KEY, v int NOT NULL);
             INSERT INTO times SELECT timestamptz '2024-03-01 00:00:00.123456+00' + g * interval '1 hour', g \
             FROM generate_series(1, 40) AS g;",
        )
        .await
        .unwrap();
    for table in ["chars", "times"] {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.jsonl");
        let task = task(json!({ "input": fx.db.url, "input_table": table, "output": output }), 7);
        let (outcome, commits) = run(&task, None).await;
        completed_counters(outcome, &commits);
        let reference = std::fs::read_to_string(&output).unwrap();
        assert_eq!(reference.lines().count(), 40, "{table}");
        for checkpoint in &commits {
            let (outcome, _) = run(&task, Some(checkpoint.clone())).await;
            assert!(matches!(outcome, Ok(JobOutcome::Completed { .. })), "{table}: {outcome:?}");
            let resumed = std::fs::read_to_string(&output).unwrap();
            assert_eq!(resumed, reference, "{table}, resumed from {}", checkpoint.source);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_tables_columns_and_logins_give_coded_errors_without_the_password() {
    let Some(fx) =
        fixture("bad_addresses_tables_columns_and_logins_give_coded_errors_without_the_password").await
    else {
        return;
    };
    create_source(&fx.client, "t1", 10).await;
    fx.client.batch_execute("CREATE TABLE nokey (id bigint, v text)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let kind = BatchProcessKind::default();
    let config = BatchConfig::default();

    // Known when the task is created: CONFIGURATION_ERROR naming the param.
    let refused = |params: Value| kind.validate(&params, &config).unwrap_err();
    let error = refused(
        json!({ "input": "postgres://app:hunter2@db:port/sales", "input_table": "t", "output": output }),
    );
    assert_eq!(error.code, ErrorCode::ConfigurationError);
    assert!(
        error.message.starts_with("input: postgres://app@db:port/sales is not a valid"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    let error = refused(json!({ "input": fx.db.url, "output": output }));
    assert_eq!(
        (error.code, error.message.split(':').next()),
        (ErrorCode::ConfigurationError, Some("input_table"))
    );
    let error = refused(json!({ "input": fx.db.url, "input_query": "SELECT 1 AS id", "output": output }));
    assert!(error.message.starts_with("input_key: missing"), "{}", error.message);
    let error = refused(json!({ "input": "in.jsonl", "input_table": "t1", "output": output }));
    assert!(error.message.starts_with("input_table: applies to a table only"), "{}", error.message);
    let error = refused(json!({ "input": "in.jsonl", "output": fx.db.url, "output_table": "t2" }));
    assert!(error.message.starts_with("dead_letter: missing"), "{}", error.message);
    let error = kind
        .validate(
            &json!({ "input": fx.db.url, "input_table": "t1", "output": output }),
            &BatchConfig { partitions: 2, ..BatchConfig::default() },
        )
        .unwrap_err();
    assert!(error.message.starts_with("partitions:"), "{}", error.message);

    // Known only when the task runs: STORAGE_ERROR saying what is wrong.
    let failed = |input: String, table: &str, key: Option<&str>| {
        let mut params = json!({ "input": input, "input_table": table, "output": output });
        if let Some(key) = key {
            params["input_key"] = json!(key);
        }
        let task = task(params, 10);
        async move { run(&task, None).await.0.unwrap_err() }
    };
    let error = failed(fx.db.url.clone(), "missing_table", None).await;
    assert_eq!(error.code, ErrorCode::StorageError);
    assert!(
        error.message.contains("missing_table") && error.message.contains("no such table"),
        "{}",
        error.message
    );
    let error = failed(fx.db.url.clone(), "t1", Some("nope")).await;
    assert_eq!(error.code, ErrorCode::StorageError);
    assert!(error.message.contains("has no column \"nope\""), "{}", error.message);
    let error = failed(fx.db.url.clone(), "nokey", None).await;
    assert!(error.message.contains("has no primary key"), "{}", error.message);
    let error = failed(fx.db.url.clone(), "nokey", Some("id")).await;
    assert!(error.message.contains("no unique index"), "{}", error.message);
    let wrong_user = format!("postgres://nobody:hunter2@127.0.0.1:{}/{}", fx.cluster.port(), fx.db.name);
    let error = failed(wrong_user, "t1", None).await;
    assert_eq!(error.code, ErrorCode::StorageError);
    assert!(error.message.contains("postgres://nobody@127.0.0.1"), "{}", error.message);
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = failed(format!("postgres://app:hunter2@127.0.0.1:{closed_port}/db"), "t1", None).await;
    assert_eq!(error.code, ErrorCode::StorageError);
    assert!(error.message.contains("connection refused"), "{}", error.message);
    assert!(!error.message.contains("hunter2"), "{}", error.message);

    // An output table without a unique key matching output_key.
    let task = task(
        json!({
            "input": fx.db.url, "input_table": "t1", "output": fx.db.url, "output_table": "nokey",
            "output_key": "id", "dead_letter": dir.path().join("dead.jsonl"),
        }),
        10,
    );
    let error = run(&task, None).await.0.unwrap_err();
    assert_eq!(error.code, ErrorCode::StorageError);
    assert!(error.message.contains("not a unique key"), "{}", error.message);

    // Two output rows with one key in a chunk: refused, not merged silently.
    fx.client.batch_execute("CREATE TABLE keyed (id bigint PRIMARY KEY, v text)").await.unwrap();
    let input = dir.path().join("twice.jsonl");
    std::fs::write(&input, "{\"id\": 1, \"v\": \"a\"}\n{\"id\": 1, \"v\": \"b\"}\n").unwrap();
    let twice = crate::pg_tables::task(
        json!({
            "input": input, "output": fx.db.url, "output_table": "keyed", "dead_letter": dir.path().join("dead.jsonl"),
        }),
        10,
    );
    let error = run(&twice, None).await.0.unwrap_err();
    assert_eq!(error.code, ErrorCode::StorageError);
    assert!(error.message.contains("the same output key"), "{}", error.message);
}

/// A column of every common type (and the odd values: NaN and infinite floats, padded `character`,
/// control characters, nested and NULL array elements, a row of NULLs) reads as `row_to_json`
/// shows it (`numeric` as the string of its digits), and a copy through the sink's COPY text
/// holds the same values as the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_reads_as_row_to_json_and_copies_unchanged() {
    let Some(fx) = fixture("every_column_type_reads_as_row_to_json_and_copies_unchanged").await else {
        return;
    };
    let columns = "id int PRIMARY KEY, s smallint, b bigint, r real, d double precision, n numeric, \
                   t text, v varchar(20), c character(5), ok boolean, day date, ts timestamp, tz timestamptz, \
                   span interval, u uuid, j json, jb jsonb, ints int[], texts text[], grid int[][]";
    fx.client
        .batch_execute(&format!("CREATE TABLE kinds ({columns}); CREATE TABLE kinds_copy ({columns});"))
        .await
        .unwrap();
    fx.client
        .batch_execute(
            r#"INSERT INTO kinds VALUES
               (1, -32768, 9223372036854775807, 1.5, 0.1, 12345678901234567890.123456789, E'tab\there "q" \\ 华东',
                'short', 'ab', true, '2024-02-29', '2024-01-01 10:00:00.123456', '2024-01-01 10:00:00+02',
                '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k" : [1, 2]}', '{"k": {"n": null}}',
                '{1,NULL,3}', '{"a b","q\"x",NULL,""}', '{{1,2},{3,4}}'),
               (2, 0, -1, 'NaN', 'Infinity', 'NaN', E'line\nbreak\rcr\x01', '', 'abcde', false, '0001-01-01',
                '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '-3 months', '00000000-0000-0000-0000-000000000000',
                '"text"', '[]', '{}', '{}', '{}'),
               (3, 1, 1, '-Infinity', '-0', '0.00', 'x', 'y', 'z', NULL, NULL, NULL, NULL, NULL, NULL,
                'null', 'null', NULL, NULL, NULL),
               (4, NULL, NULL, NULL, 1e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL, NULL);"#,
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rows.jsonl");
    let params = json!({ "input": fx.db.url, "input_table": "kinds", "output": output });
    let (outcome, commits) = run(&task(params, 3), None).await;
    assert_eq!(completed_counters(outcome, &commits).processed, 4);
    let expected = fx
        .client
        .query(
            "SELECT row_to_json(x)::text FROM kinds q CROSS JOIN LATERAL \
             (SELECT q.id, q.s, q.b, q.r, q.d, q.n::text AS n, q.t, q.v, q.c, q.ok, q.day, q.ts, q.tz, q.span, \
                     q.u, q.j, q.jb, q.ints, q.texts, q.grid) x ORDER BY q.id",
            &[],
        )
        .await
        .unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(rows.len(), expected.len());
    for (row, expected) in rows.iter().zip(&expected) {
        let expected: Value = serde_json::from_str(expected.get::<_, &str>(0)).unwrap();
        assert_eq!(row, &expected);
    }

    let params = json!({
        "input": fx.db.url, "input_table": "kinds", "output": fx.db.url, "output_table": "kinds_copy",
        "dead_letter": dir.path().join("dead.jsonl"),
    });
    let (outcome, commits) = run(&task(params, 3), None).await;
    assert_eq!(completed_counters(outcome, &commits).processed, 4);
    let same = fx
        .client
        .query_one(
            // `json` has no equality: compared as jsonb (the kind re-serialises a row's JSON, so a
            // json column's spacing is not kept). A row's JSON cannot tell a JSON `null` in a
            // json column from SQL NULL: both are `null`, written back as NULL.
            "SELECT count(*) FROM kinds src FULL JOIN kinds_copy dst USING (id) WHERE \
               (src.s, src.b, src.r, src.d, src.n, src.t, src.v, src.c, src.ok, src.day, src.ts, src.tz, src.span, \
                src.u, nullif(src.j::jsonb, 'null'), nullif(src.jb, 'null'), src.ints, src.texts, src.grid) IS DISTINCT FROM \
               (dst.s, dst.b, dst.r, dst.d, dst.n, dst.t, dst.v, dst.c, dst.ok, dst.day, dst.ts, dst.tz, dst.span, \
                dst.u, dst.j::jsonb, dst.jb, dst.ints, dst.texts, dst.grid)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(same.get::<_, i64>(0), 0, "rows differ between kinds and kinds_copy");
    let copied: i64 = fx.client.query_one("SELECT count(*) FROM kinds_copy", &[]).await.unwrap().get(0);
    assert_eq!(copied, 4);
}
