//! Integration tests of the batch process kind through its public API: filters and aggregates on
//! generated data against plain reference computations, select/rename/dedup on real JSON-lines and
//! CSV files read with pump-core's sources, and the kind end to end through the chunk runner
//! (including a stop and a resume from its checkpoint).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers too panic as the failure report")]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use batch_model::{
    BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ErrorCode, TaskError, TaskId, TaskType,
};
use batch_tasks::batch_process::{
    Admitted, BatchProcess, BatchProcessKind, CSV_COLUMNS, FieldPath, GeneratorConfig, REGIONS, csv_cells,
    generate, record_from_csv, write_csv, write_json_lines,
};
use batch_tasks::records::DeadLetterRecord;
use batch_tasks::testing::MemoryControl;
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use proptest::prelude::*;
use pump_core::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The CSV form of a generated record, as a CSV source would read it back.
fn as_csv_record(record: &Value) -> Value {
    let columns: Vec<FieldPath> =
        CSV_COLUMNS.iter().map(|column| FieldPath::parse(column).unwrap()).collect();
    let cells = csv_cells(record, &columns);
    record_from_csv(CSV_COLUMNS.iter().map(|column| (*column).to_owned()).zip(cells))
}

/// The reference reading of a generated amount, written for the test: the generator writes
/// amounts as `digits.dd` strings or JSON numbers; anything else is not a number.
fn reference_amount(value: Option<&Value>) -> Option<Decimal> {
    match value? {
        Value::Number(number) => Decimal::from_str(&number.to_string()).ok(),
        Value::String(text) => {
            let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
            if plain { Decimal::from_str(text).ok() } else { None }
        }
        _ => None,
    }
}

/// The region of a record, or `None` (missing, or an empty CSV cell).
fn reference_region(record: &Value) -> Option<&str> {
    record.get("region").and_then(Value::as_str).filter(|region| !region.is_empty())
}

/// Runs `records` through `process` the way a runner does: the rows written (or group rows), and
/// the number of dead letters.
fn run(process: &BatchProcess, records: impl IntoIterator<Item = Value>) -> (Vec<Value>, usize) {
    let mut state = process.state();
    let mut written = Vec::new();
    let mut dead_letters = 0;
    for record in records {
        match process.process_record(record) {
            Err(_) => dead_letters += 1,
            Ok(None) => {}
            Ok(Some(row)) => match state.add(row).unwrap() {
                Err(_) => dead_letters += 1,
                Ok(Admitted::Write(row)) => written.push(row),
                Ok(Admitted::Duplicate | Admitted::Grouped) => {}
            },
        }
    }
    written.extend(state.finish().rows);
    (written, dead_letters)
}

fn process(params: Value) -> BatchProcess {
    BatchProcess::from_params(&params).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_filter_agrees_with_plain_iteration(seed in any::<u64>(), threshold_cents in 0i64..1_100_000, region in 0..REGIONS.len()) {
        let threshold = Decimal::new(threshold_cents, 2);
        let region = REGIONS[region];
        let filter = format!("amount >= {threshold} && region == \"{region}\"");
        let process = process(json!({ "input": "in.jsonl", "output": "out.jsonl", "filter": filter }));
        let records: Vec<Value> = generate(&GeneratorConfig { records: 300, seed, ..GeneratorConfig::default() }).collect();
        for record in [records.clone(), records.iter().map(as_csv_record).collect()] {
            let expected: Vec<Value> = record
                .iter()
                .filter(|record| {
                    reference_amount(record.get("amount")).is_some_and(|amount| amount >= threshold)
                        && reference_region(record) == Some(region)
                })
                .cloned()
                .collect();
            let (kept, dead_letters) = run(&process, record);
            prop_assert_eq!(dead_letters, 0);
            prop_assert_eq!(kept, expected);
        }
    }

    #[test]
    fn group_by_aggregates_agree_with_a_btreemap_fold(seed in any::<u64>(), csv in any::<bool>()) {
        let process = process(json!({
            "input": "in.jsonl",
            "output": "out.jsonl",
            "group_by": "region",
            "aggregates": ["count", "sum:amount", "min:amount", "max:amount", "values=count:amount"],
        }));
        let mut records: Vec<Value> = generate(&GeneratorConfig { records: 400, seed, ..GeneratorConfig::default() }).collect();
        if csv {
            records = records.iter().map(as_csv_record).collect();
        }

        // The reference: rows whose amount is present but not a number are rejected; an absent
        // amount (missing, null, empty) counts the row but adds nothing.
        #[derive(Default, Debug)]
        struct Totals { count: u64, values: u64, sum: Decimal, min: Option<Decimal>, max: Option<Decimal> }
        let mut expected: BTreeMap<String, Totals> = BTreeMap::new();
        let mut rejected = 0;
        for record in &records {
            let amount = record.get("amount").filter(|value| !value.is_null() && value.as_str() != Some(""));
            let parsed = reference_amount(amount);
            if amount.is_some() && parsed.is_none() {
                rejected += 1;
                continue;
            }
            let key = reference_region(record).map_or("null".to_owned(), |region| format!("\"{region}\""));
            let totals = expected.entry(key).or_default();
            totals.count += 1;
            if let Some(amount) = parsed {
                totals.values += 1;
                totals.sum += amount;
                totals.min = Some(totals.min.map_or(amount, |min| min.min(amount)));
                totals.max = Some(totals.max.map_or(amount, |max| max.max(amount)));
            }
        }

        let (rows, dead_letters) = run(&process, records);
        prop_assert_eq!(dead_letters, rejected);
        prop_assert_eq!(rows.len(), expected.len());
        for (row, (key, totals)) in rows.iter().zip(&expected) {
            prop_assert_eq!(&row["region"].to_string(), key);
            prop_assert_eq!(row["count"].as_u64(), Some(totals.count));
            prop_assert_eq!(row["values"].as_u64(), Some(totals.values));
            let decimal = |value: &Value| value.as_str().map(|text| Decimal::from_str(text).unwrap());
            prop_assert_eq!(decimal(&row["sum_amount"]), Some(totals.sum));
            prop_assert_eq!(decimal(&row["min_amount"]), totals.min);
            prop_assert_eq!(decimal(&row["max_amount"]), totals.max);
        }
    }
}

/// Reads a JSON-lines file with pump-core's source: every record (a bad line fails the test).
async fn read_json_lines(path: &Path) -> Vec<Value> {
    let out = pump_core::source::json_lines::<Value>(path).to(sink::collect()).run().await.unwrap();
    out.value.into_iter().map(|record| record.unwrap().value).collect()
}

/// Reads a CSV file with pump-core's source, each row as an object of strings.
async fn read_csv(path: &Path) -> Vec<Value> {
    let out =
        pump_core::source::csv::<BTreeMap<String, String>>(path).to(sink::collect()).run().await.unwrap();
    out.value.into_iter().map(|record| record_from_csv(record.unwrap().value)).collect()
}

/// The expected output of select id, amount, customer.address.city; rename the city to `city`;
/// dedup by id — computed directly: the first record of each id, its three fields read by
/// `field(record, name)`, `absent` for a field it lacks.
fn expected_projection(
    records: &[Value],
    field: fn(&Value, &str) -> Option<Value>,
    absent: &Value,
) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for record in records {
        let id = record["id"].as_str().unwrap().to_owned();
        if !seen.insert(id) {
            continue;
        }
        let get = |name: &str| field(record, name).unwrap_or_else(|| absent.clone());
        out.push(json!({ "id": get("id"), "amount": get("amount"), "city": get("customer.address.city") }));
    }
    out
}

/// A field of a JSON record by nesting.
fn nested_field(record: &Value, name: &str) -> Option<Value> {
    record.pointer(&format!("/{}", name.replace('.', "/"))).cloned()
}

/// A field of a CSV record: a flat key.
fn flat_field(record: &Value, name: &str) -> Option<Value> {
    record.get(name).cloned()
}

/// Asserts `got == expected`, reporting the first differing row rather than both lists.
fn assert_rows(got: &[Value], expected: &[Value]) {
    if let Some(index) = got.iter().zip(expected).position(|(got, expected)| got != expected) {
        panic!("row {index}: got {}, expected {}", got[index], expected[index]);
    }
    assert_eq!(got.len(), expected.len());
}

#[tokio::test]
async fn select_rename_and_dedup_on_json_lines_and_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1, 2, 3] {
        let config =
            GeneratorConfig { records: 500, seed, duplicates_per_mille: 150, ..GeneratorConfig::default() };
        let generated: Vec<Value> = generate(&config).collect();
        let params = |input: &Path| {
            json!({
                "input": input,
                "output": dir.path().join("out.jsonl"),
                "select": ["id", "amount", "customer.address.city"],
                "rename": ["customer.address.city=city"],
                "dedup_key": "id",
            })
        };

        let jsonl = dir.path().join("in.jsonl");
        write_json_lines(&jsonl, &config).unwrap();
        let records = read_json_lines(&jsonl).await;
        assert_rows(&records, &generated);
        let (rows, dead_letters) = run(&process(params(&jsonl)), records.clone());
        assert_eq!(dead_letters, 0);
        let expected = expected_projection(&generated, nested_field, &Value::Null);
        assert!(expected.len() < generated.len(), "the data has duplicates");
        assert!(expected.iter().any(|row| row["city"].is_null()), "some records lack the address");
        assert_rows(&rows, &expected);

        let csv = dir.path().join("in.csv");
        write_csv(&csv, &config).unwrap();
        let records = read_csv(&csv).await;
        assert_rows(&records, &generated.iter().map(as_csv_record).collect::<Vec<_>>());
        let (rows, dead_letters) = run(&process(params(&csv)), records.clone());
        assert_eq!(dead_letters, 0);
        // In CSV everything is a string and an absent field is an empty cell.
        assert_rows(&rows, &expected_projection(&records, flat_field, &json!("")));
        assert!(rows.iter().all(|row| row["amount"].is_string() && row["city"].is_string()));
    }
}

#[tokio::test]
async fn grouped_csv_output_round_trips_through_the_writers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let output = dir.path().join("totals.csv");
    write_csv(&input, &GeneratorConfig { records: 300, seed: 9, ..GeneratorConfig::default() }).unwrap();
    let process = process(json!({
        "input": input,
        "output": output,
        "filter": "active == true && tags contains 'sale'",
        "group_by": ["region", "customer.address.city"],
        "aggregates": ["orders=count", "total=sum:amount"],
    }));
    let (rows, dead_letters) = run(&process, read_csv(&input).await);
    assert!(dead_letters > 0, "invalid amounts go to the dead letters");
    assert!(!rows.is_empty());

    let columns = process.output_columns().unwrap();
    let header: Vec<String> = columns.iter().map(ToString::to_string).collect();
    assert_eq!(header, ["region", "customer.address.city", "orders", "total"]);
    let mut writer = pump_core::sink::CsvWriter::create(&output).unwrap();
    pump_core::sink::RecordWriter::write(&mut writer, &header).unwrap();
    for row in &rows {
        pump_core::sink::RecordWriter::write(&mut writer, &csv_cells(row, &columns)).unwrap();
    }
    pump_core::sink::RecordWriter::flush(&mut writer).unwrap();

    let back = read_csv(&output).await;
    assert_eq!(back.len(), rows.len());
    for (read, row) in back.iter().zip(&rows) {
        assert_eq!(read["customer.address.city"], row["customer"]["address"]["city"]);
        assert_eq!(read["total"], row["total"]);
        assert_eq!(read["orders"], json!(row["orders"].to_string()));
    }
}

#[test]
fn the_generator_is_deterministic_and_irregular_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = GeneratorConfig { records: 2000, seed: 123, ..GeneratorConfig::default() };
    let (first, second) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    write_json_lines(&first, &config).unwrap();
    write_json_lines(&second, &config).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    let other: Vec<Value> = generate(&GeneratorConfig { seed: 124, ..config.clone() }).collect();
    let records: Vec<Value> = generate(&config).collect();
    assert_ne!(records, other);

    let ids: HashSet<&str> = records.iter().filter_map(|record| record["id"].as_str()).collect();
    let duplicates = records.len() - ids.len();
    let missing = records
        .iter()
        .filter(|record| record.get("amount").is_none() || record.get("region").is_none())
        .count();
    let invalid = records
        .iter()
        .filter(|record| record.get("amount").is_some_and(|amount| reference_amount(Some(amount)).is_none()))
        .count();
    let numbers = records.iter().filter(|record| record.get("amount").is_some_and(Value::is_number)).count();
    // 5%, 5% (half of it amount or region), 2% and half: loose bounds around the configured rates.
    assert!((50..=150).contains(&duplicates), "{duplicates} duplicates");
    assert!((20..=80).contains(&missing), "{missing} records missing amount or region");
    assert!((15..=70).contains(&invalid), "{invalid} invalid amounts");
    assert!((800..=1200).contains(&numbers), "{numbers} numeric amounts");
    assert!(records.iter().all(|record| record["id"].as_str().is_some_and(|id| id.starts_with('R'))));
}

#[test]
fn bad_params_are_configuration_errors_pointing_at_the_problem() {
    let error = BatchProcess::from_params(&json!({
        "input": "orders.jsonl",
        "output": "out.jsonl",
        "filter": "amount >= 100 && region = \"华东\"",
    }))
    .unwrap_err();
    let recorded = TaskError::from(&error);
    assert_eq!(recorded.code, ErrorCode::ConfigurationError);
    assert_eq!(recorded.message, "filter: unexpected character '=' (did you mean '=='?) at column 25");
    assert_eq!(recorded.details["param"], "filter");
    assert_eq!(recorded.details["column"], 25);
    assert_eq!(recorded.details["offset"], 24);
    assert_eq!(recorded.details["caret"], "amount >= 100 && region = \"华东\"\n                        ^");

    let error = BatchProcess::from_params(
        &json!({ "input": "a.jsonl", "output": "b.jsonl", "group_by": "region", "aggregates": ["sum"] }),
    )
    .unwrap_err();
    assert_eq!(error.param(), Some("aggregates"));
    assert_eq!(TaskError::from(&error).details["param"], "aggregates");
}

/// Runs the kind on `params` through the chunk runner, from `checkpoint`: the outcome and the
/// control (with its commits).
async fn run_kind(
    params: &Value,
    checkpoint: Option<Checkpoint>,
    stop_after: Option<u64>,
) -> (Result<JobOutcome, TaskError>, Arc<MemoryControl>) {
    let kind = BatchProcessKind::default();
    let config = BatchConfig { batch_size: 37, concurrency: 3, ..BatchConfig::default() };
    kind.validate(params, &config).unwrap();
    let request =
        CreateTaskRequest::new(TaskType::BatchProcess).with_config(config).with_params(params.clone());
    let task = BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap();
    let control = Arc::new(stop_after.map_or_else(MemoryControl::new, MemoryControl::stopping_after));
    let context = JobContext::new(task, checkpoint, Arc::clone(&control) as Arc<dyn JobControl>);
    (kind.run(context).await, control)
}

fn json_lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test]
async fn the_kind_projects_and_dedups_a_json_lines_file_through_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let config =
        GeneratorConfig { records: 600, seed: 5, duplicates_per_mille: 150, ..GeneratorConfig::default() };
    write_json_lines(&input, &config).unwrap();
    let generated: Vec<Value> = generate(&config).collect();
    let params = json!({
        "input": input,
        "output": output,
        "select": ["id", "amount", "customer.address.city"],
        "rename": ["customer.address.city=city"],
        "dedup_key": "id",
    });
    let (outcome, control) = run_kind(&params, None, None).await;
    let JobOutcome::Completed { summary, .. } = outcome.unwrap() else { panic!("the task did not complete") };
    let expected = expected_projection(&generated, nested_field, &Value::Null);
    let duplicates = generated.len() - expected.len();
    assert_eq!(summary, json!({ "dedup": { "distinct_keys": expected.len(), "duplicates": duplicates } }));
    assert!(!dir.path().join("out.jsonl.keys").exists(), "the key log goes when the task completes");
    assert_rows(&json_lines_of(&output), &expected);
    let last = control.last_checkpoint().unwrap();
    assert_eq!(last.counters.processed, expected.len() as u64);
    assert_eq!(last.counters.skipped, (generated.len() - expected.len()) as u64);
    assert_eq!(last.counters.failed, 0);
}

#[tokio::test]
async fn the_kind_aggregates_a_csv_file_and_resumes_after_a_stop_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let output = dir.path().join("kept.jsonl");
    write_csv(&input, &GeneratorConfig { records: 500, seed: 11, ..GeneratorConfig::default() }).unwrap();
    let params = json!({
        "input": input,
        "output": output,
        "filter": "active == true",
        "dedup_key": "id",
        "group_by": "region",
        "aggregates": ["count", "sum:amount", "max:amount"],
    });
    // The core, on the rows a CSV source reads (checked against plain references above).
    let process = BatchProcess::from_params(&params).unwrap();
    let (expected_groups, expected_failed) = run(&process, read_csv(&input).await);

    let (outcome, control) = run_kind(&params, None, None).await;
    let JobOutcome::Completed { summary, .. } = outcome.unwrap() else { panic!("the task did not complete") };
    assert_eq!(summary["rows"], json!(expected_groups));
    assert_eq!(summary["groups"], json!(expected_groups.len()));
    // The output holds one row per group, written at the end of the input.
    assert_eq!(json_lines_of(&output), expected_groups);
    let uninterrupted_output = std::fs::read(&output).unwrap();
    let dead_letters: Vec<DeadLetterRecord> = json_lines_of(&dir.path().join("kept.dead_letters.jsonl"))
        .into_iter()
        .map(|value| serde_json::from_value(value).unwrap())
        .collect();
    assert_eq!(dead_letters.len(), expected_failed);
    assert!(dead_letters.iter().all(|letter| letter.code == ErrorCode::ValidationError));
    assert!(dead_letters.iter().any(|letter| letter.field.as_deref() == Some("amount")));
    let last = control.last_checkpoint().unwrap();
    assert_eq!(last.counters.failed, expected_failed as u64);

    // Stop after the second checkpoint, then resume from it: same output, same groups.
    std::fs::remove_file(&output).unwrap();
    let (stopped, control) = run_kind(&params, None, Some(2)).await;
    assert_eq!(stopped.unwrap(), JobOutcome::Stopped);
    let checkpoint = control.last_checkpoint().unwrap();
    assert_eq!(checkpoint.sequence, 2);
    assert!(
        checkpoint.state["grouping"]["groups"]["groups"].as_array().is_some_and(|groups| !groups.is_empty())
    );
    assert!(
        checkpoint.sink["log"].as_u64().is_some_and(|len| len > 0 && len % 33 == 0),
        "{}",
        checkpoint.sink
    );
    let (resumed, _) = run_kind(&params, Some(checkpoint), None).await;
    let JobOutcome::Completed { summary: resumed_summary, .. } = resumed.unwrap() else {
        panic!("not completed")
    };
    assert_eq!(resumed_summary, summary);
    assert_eq!(std::fs::read(&output).unwrap(), uninterrupted_output);
}

#[tokio::test]
async fn the_kind_fails_fast_on_too_many_dedup_keys_and_reads_bad_lines_as_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\":1}\n[1,2]\nnot json\n{\"id\":2}\n{\"id\":1}\n").unwrap();
    let params = json!({ "input": input, "output": dir.path().join("out.jsonl"), "dedup_key": "id", "dedup_max_keys": 1 });
    let (outcome, control) = run_kind(&params, None, None).await;
    let error = outcome.unwrap_err();
    assert_eq!(error.code, ErrorCode::ConfigurationError);
    assert_eq!(error.message, "dedup_key: more than 1 distinct keys; raise dedup_max_keys");
    assert!(control.checkpoints().is_empty());

    let params = json!({ "input": input, "output": dir.path().join("out.jsonl"), "dedup_key": "id" });
    let (outcome, _) = run_kind(&params, None, None).await;
    assert!(matches!(outcome.unwrap(), JobOutcome::Completed { .. }));
    assert_eq!(json_lines_of(&dir.path().join("out.jsonl")), [json!({ "id": 1 }), json!({ "id": 2 })]);
    let dead: Vec<Value> = json_lines_of(&dir.path().join("out.dead_letters.jsonl"));
    let messages: Vec<&str> = dead.iter().map(|letter| letter["message"].as_str().unwrap()).collect();
    assert_eq!(messages[0], "record is an array, not a JSON object");
    assert!(messages[1].starts_with("not a JSON value: "), "{}", messages[1]);
}

/// Quoted CSV fields holding line breaks, quotes and commas go through pump-core's CSV scanner: the
/// rows are de-duplicated and grouped as a hand computation says, the group rows are the output, and
/// a bad row's dead letter names the line it starts on.
#[tokio::test]
async fn quoted_multi_line_csv_fields_are_deduplicated_and_grouped_like_a_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let text = "id,region,amount,note\n\
                A1,华东,10.50,\"first\nline\"\n\
                A2,华北,3,\"has \"\"quotes\"\", and commas\"\n\
                A1,华东,99,dup\n\
                A3,华东,\"1,5\",bad amount\n\
                A4,华北,2.25,\"multi\r\nline\nnote\"\n\
                \n\
                A5,华北,1\n";
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("groups.jsonl");
    let params = json!({
        "input": input,
        "output": output,
        "dedup_key": "id",
        "group_by": "region",
        "aggregates": ["count", "sum:amount", "min:amount", "avg:amount"],
    });
    let (outcome, control) = run_kind(&params, None, None).await;
    let JobOutcome::Completed { summary, .. } = outcome.unwrap() else { panic!("not completed") };
    let expected = [
        json!({ "region": "华东", "count": 1, "sum_amount": "10.50", "min_amount": "10.50", "avg_amount": "10.5" }),
        json!({ "region": "华北", "count": 2, "sum_amount": "5.25", "min_amount": "2.25", "avg_amount": "2.625" }),
    ];
    let written = json_lines_of(&output);
    assert_eq!(written.len(), 2);
    for (row, expected) in written.iter().zip(&expected) {
        for field in ["region", "count", "sum_amount", "min_amount"] {
            assert_eq!(row[field], expected[field], "{field} of {row}");
        }
        let average: Decimal = row["avg_amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(average, expected["avg_amount"].as_str().unwrap().parse::<Decimal>().unwrap());
    }
    assert_eq!(summary["rows"], json!(written));
    assert_eq!(summary["dedup"], json!({ "distinct_keys": 3, "duplicates": 1 }));
    let dead: Vec<DeadLetterRecord> = json_lines_of(&dir.path().join("groups.dead_letters.jsonl"))
        .into_iter()
        .map(|value| serde_json::from_value(value).unwrap())
        .collect();
    let reasons: Vec<(u64, Option<&str>)> =
        dead.iter().map(|letter| (letter.line, letter.field.as_deref())).collect();
    // A3's amount is not a number; A5's row has three fields under a header of four.
    assert_eq!(reasons, [(6, Some("amount")), (11, None)]);
    assert_eq!(dead[1].message, "found 3 fields, expected 4");
    let last = control.last_checkpoint().unwrap();
    assert_eq!((last.counters.processed, last.counters.skipped, last.counters.failed), (3, 1, 2));
    assert_eq!(last.sink["final"], true, "the group rows are committed by a final checkpoint");
}
