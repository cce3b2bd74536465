//! Unit tests of the batch process kind: params checking, projection, de-duplication, aggregation
//! and the stateful stages with their checkpoints.

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::batch_process::{
    Admitted, AggregateSpec, BatchProcess, BatchProcessConfig, BatchProcessError, Dedup, DedupConfig,
    DedupState, FieldPath, GroupBy, GroupConfig, GroupState, RecordIssue,
};

/// `params` merged over a minimal valid set (`in.jsonl` to `out.jsonl`).
fn params(extra: Value) -> Value {
    let mut params = json!({ "input": "in.jsonl", "output": "out.jsonl" });
    if let (Value::Object(base), Value::Object(extra)) = (&mut params, extra) {
        base.extend(extra);
    }
    params
}

fn paths(paths: &[FieldPath]) -> String {
    paths.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Reads `params`: a one-line summary of the config, or the error's message.
fn check_params(params: Value, expect: &str) {
    let got = match BatchProcessConfig::from_params(&params) {
        Err(error) => {
            assert_eq!(error.code(), batch_model::ErrorCode::ConfigurationError, "{error}");
            format!("error: {error}")
        }
        Ok(config) => {
            let mut parts = vec![format!(
                "{} {} -> {}, {}",
                config.format.as_str(),
                config.input.display(),
                config.output.display(),
                config.dead_letters.display()
            )];
            if let Some(filter) = &config.filter {
                parts.push(format!("filter {filter}"));
            }
            if !config.select.is_empty() {
                parts.push(format!("select {}", paths(&config.select)));
            }
            if !config.rename.is_empty() {
                let pairs: Vec<String> =
                    config.rename.iter().map(|pair| format!("{}={}", pair.from, pair.to)).collect();
                parts.push(format!("rename {}", pairs.join(",")));
            }
            if let Some(dedup) = &config.dedup {
                parts.push(format!("dedup {} max {}", paths(&dedup.key), dedup.max_keys));
            }
            if let Some(grouping) = &config.grouping {
                let aggregates: Vec<String> = grouping
                    .aggregates
                    .iter()
                    .map(|spec| {
                        let field = spec.field.as_ref().map(|field| format!(":{field}")).unwrap_or_default();
                        format!("{}={}{field}", spec.name, spec.function.as_str())
                    })
                    .collect();
                parts.push(format!(
                    "group [{}] {} max {}",
                    paths(&grouping.group_by),
                    aggregates.join(","),
                    grouping.max_groups
                ));
            }
            parts.join("; ")
        }
    };
    assert_eq!(got, expect, "params {params}");
}

#[test]
fn valid_params() {
    check_params(
        json!({ "input": "in.csv", "output": "out.jsonl" }),
        "csv in.csv -> out.jsonl, out.dead_letters.jsonl",
    );
    check_params(
        json!({ "input": "in.NDJSON", "output": "out.txt" }),
        "json_lines in.NDJSON -> out.txt, out.dead_letters.jsonl",
    );
    check_params(
        json!({ "input": "in.txt", "output": "out.txt", "format": "csv" }),
        "csv in.txt -> out.txt, out.dead_letters.jsonl",
    );
    check_params(
        json!({ "input": "in.csv", "output": "out.jsonl", "dead_letters": "bad.jsonl" }),
        "csv in.csv -> out.jsonl, bad.jsonl",
    );
    check_params(
        params(json!({ "filter": "  ", "select": null })),
        "json_lines in.jsonl -> out.jsonl, out.dead_letters.jsonl",
    );
    check_params(
        params(json!({
            "filter": "amount >= 100 && region == \"华东\"",
            "select": ["id", "region", "amount", "customer.address.city"],
            "rename": ["customer.address.city = city", "amount=total"],
            "dedup_key": "id",
            "dedup_max_keys": 10,
            "group_by": ["region", "city"],
            "aggregates": ["count", "sum:total", "n=count:total", "avg:total"],
            "max_groups": 50,
        })),
        "json_lines in.jsonl -> out.jsonl, out.dead_letters.jsonl; filter ((amount >= 100) && (region == \"华东\")); \
         select id,region,amount,customer.address.city; rename customer.address.city=city,amount=total; \
         dedup id max 10; group [region,city] count=count,sum_total=sum:total,n=count:total,avg_total=avg:total max 50",
    );
    check_params(
        params(json!({ "rename": { "b": "c", "a": "b" }, "dedup_key": ["b", "c"] })),
        "json_lines in.jsonl -> out.jsonl, out.dead_letters.jsonl; rename a=b,b=c; dedup b,c max 1000000",
    );
    check_params(
        params(
            json!({ "select": ["customer"], "rename": ["customer.name=name"], "group_by": "customer.city" }),
        ),
        "json_lines in.jsonl -> out.jsonl, out.dead_letters.jsonl; select customer; rename customer.name=name; group [customer.city] count=count max 100000",
    );
    check_params(
        params(json!({ "aggregates": "sum:customer.spent" })),
        "json_lines in.jsonl -> out.jsonl, out.dead_letters.jsonl; group [] sum_customer_spent=sum:customer.spent max 100000",
    );
}

#[test]
fn invalid_params_name_the_param() {
    check_params(json!([1]), "error: params must be a JSON object, got an array");
    check_params(
        params(json!({ "fitler": "a" })),
        "error: unknown param `fitler`; the known params are input, input_table, input_query, input_key, output, \
         output_table, output_key, output_mode, dead_letter, dead_letters, format, filter, select, rename, dedup_key, dedup_max_keys, \
         group_by, aggregates, max_groups",
    );
    check_params(json!({ "output": "out.csv" }), "error: input: missing; set it to a file path");
    check_params(
        json!({ "input": 5, "output": "out.csv" }),
        "error: input: must be a file path string, got a number",
    );
    check_params(json!({ "input": " ", "output": "out.csv" }), "error: input: must not be empty");
    check_params(json!({ "input": "a.csv", "output": "a.csv" }), "error: output: must differ from input");
    check_params(
        json!({ "input": "in.txt", "output": "out.csv" }),
        "error: format: not set, and the extension of `in.txt` does not tell; use .jsonl, .ndjson, .json or .csv, \
         or set format to json_lines or csv",
    );
    check_params(params(json!({ "format": "xml" })), "error: format: must be json_lines or csv, got \"xml\"");
    check_params(
        params(json!({ "dead_letters": 1 })),
        "error: dead_letters: must be a file path string, got a number",
    );
    check_params(
        params(json!({ "dead_letters": "in.jsonl" })),
        "error: dead_letter: must differ from input and output",
    );
    check_params(params(json!({ "filter": 5 })), "error: filter: must be a string, got a number");
    check_params(
        params(json!({ "filter": "amount >= && x" })),
        "error: filter: expected a value after '>=', found '&&' at column 11",
    );
    check_params(params(json!({ "select": [] })), "error: select: must name at least one field");
    check_params(
        params(json!({ "select": ["a..b"] })),
        "error: select: `a..b` is not a field path (empty name)",
    );
    check_params(
        params(json!({ "select": ["a", "a.b"] })),
        "error: select: `a.b` is inside `a`, which is also selected",
    );
    check_params(
        params(json!({ "select": ["a.b", "a"] })),
        "error: select: `a.b` is inside `a`, which is also selected",
    );
    check_params(params(json!({ "select": ["a", "a"] })), "error: select: `a` is listed twice");
    check_params(
        params(json!({ "select": [1] })),
        "error: select: must be a list of field path strings, got a number",
    );
    check_params(
        params(json!({ "select": {} })),
        "error: select: must be a field path or a list of them, got an object",
    );
    check_params(params(json!({ "rename": ["ab"] })), "error: rename: `ab` is not a `from=to` pair");
    check_params(params(json!({ "rename": ["a="] })), "error: rename: `` is not a field path (empty name)");
    check_params(params(json!({ "rename": [] })), "error: rename: must rename at least one field");
    check_params(params(json!({ "rename": ["a=b", "a=c"] })), "error: rename: `a` is listed twice");
    check_params(
        params(json!({ "rename": ["a=x", "b=x.y"] })),
        "error: rename: `x.y` is inside `x`, which is also a rename target",
    );
    check_params(
        params(json!({ "select": ["a"], "rename": ["b=c"] })),
        "error: rename: `b` is not among the selected fields",
    );
    check_params(
        params(json!({ "select": ["a", "b.c"], "rename": ["a=b"] })),
        "error: rename: `a=b` would overwrite the selected field `b.c`",
    );
    check_params(
        params(json!({ "rename": ["id=order_id"], "dedup_key": "id" })),
        "error: dedup_key: `id` is renamed by `id=order_id` before dedup_key sees the record; use the new name",
    );
    check_params(
        params(json!({ "select": ["amount"], "dedup_key": "id" })),
        "error: dedup_key: `id` is not among the selected fields",
    );
    check_params(
        params(json!({ "dedup_key": "id", "dedup_max_keys": 0 })),
        "error: dedup_max_keys: must be a whole number from 1 to 100000000, got 0",
    );
    check_params(
        params(json!({ "dedup_key": "id", "dedup_max_keys": 1.5 })),
        "error: dedup_max_keys: must be a whole number from 1 to 100000000, got 1.5",
    );
    check_params(params(json!({ "dedup_max_keys": 5 })), "error: dedup_max_keys: needs dedup_key");
    check_params(
        params(json!({ "aggregates": ["median:x"] })),
        "error: aggregates: `median:x`: unknown function `median`; use count, sum, min, max or avg",
    );
    check_params(
        params(json!({ "aggregates": ["sum"] })),
        "error: aggregates: `sum`: `sum` needs a field, as in `sum:amount`",
    );
    check_params(
        params(json!({ "aggregates": ["=sum:a"] })),
        "error: aggregates: `=sum:a`: the alias before `=` is empty",
    );
    check_params(params(json!({ "aggregates": [] })), "error: aggregates: must name at least one aggregate");
    check_params(
        params(json!({ "aggregates": ["count", "count"] })),
        "error: aggregates: two aggregates are named `count`",
    );
    check_params(
        params(json!({ "group_by": "region", "aggregates": ["region=count"] })),
        "error: aggregates: the aggregate name `region` is taken by the group_by field `region`",
    );
    check_params(
        params(json!({ "select": "region", "group_by": "region", "aggregates": ["sum:amount"] })),
        "error: aggregates: `amount` is not among the selected fields",
    );
    check_params(
        params(json!({ "group_by": ["customer", "customer.city"] })),
        "error: group_by: `customer.city` is inside `customer`, which is also grouped",
    );
    check_params(params(json!({ "max_groups": 5 })), "error: max_groups: needs group_by or aggregates");
    check_params(
        params(json!({ "group_by": "r", "max_groups": 10_000_001 })),
        "error: max_groups: must be a whole number from 1 to 10000000, got 10000001",
    );
}

/// Runs `record` through `process_record` with `extra` params: the row, `filtered`, or the issue.
fn check_projection(extra: Value, record: Value, expect: &str) {
    let process = BatchProcess::from_params(&params(extra)).unwrap();
    let got = match process.process_record(record.clone()) {
        Ok(Some(row)) => row.to_string(),
        Ok(None) => "filtered".to_owned(),
        Err(issue) => format!("issue: {issue}"),
    };
    assert_eq!(got, expect, "record {record}");
}

#[test]
fn select_keeps_the_listed_paths_as_nested_objects() {
    let record =
        json!({ "id": 1, "customer": { "name": "王", "city": "上海" }, "items": [{ "sku": "A" }], "x": 0 });
    check_projection(json!({}), record.clone(), &record.to_string());
    check_projection(
        json!({ "select": ["id", "customer.city", "items.0.sku", "missing.deep"] }),
        record.clone(),
        r#"{"customer":{"city":"上海"},"id":1,"items":{"0":{"sku":"A"}},"missing":{"deep":null}}"#,
    );
    check_projection(json!({ "select": "customer" }), record, r#"{"customer":{"city":"上海","name":"王"}}"#);
    // A CSV column named like the path is found and written nested.
    check_projection(
        json!({ "select": ["customer.city"] }),
        json!({ "customer.city": "上海", "id": "1" }),
        r#"{"customer":{"city":"上海"}}"#,
    );
}

#[test]
fn rename_moves_fields_all_at_once() {
    check_projection(json!({ "rename": ["a.b=c"] }), json!({ "a": { "b": 1 }, "d": 2 }), r#"{"c":1,"d":2}"#);
    check_projection(
        json!({ "rename": ["a.b=c"] }),
        json!({ "a": { "b": 1, "e": 3 } }),
        r#"{"a":{"e":3},"c":1}"#,
    );
    check_projection(json!({ "rename": ["a=b", "b=a"] }), json!({ "a": 1, "b": 2 }), r#"{"a":2,"b":1}"#);
    check_projection(json!({ "rename": ["a=b"] }), json!({ "a": 1, "b": 2 }), r#"{"b":1}"#);
    check_projection(json!({ "rename": ["missing=b"] }), json!({ "a": 1 }), r#"{"a":1}"#);
    check_projection(json!({ "rename": ["c=x.y"] }), json!({ "c": 1 }), r#"{"x":{"y":1}}"#);
    check_projection(
        json!({ "rename": ["c=a.b"] }),
        json!({ "a": 5, "c": 1 }),
        "issue: rename: cannot put `c` at `a.b`: a field on the way is not an object",
    );
    check_projection(
        json!({ "select": ["id", "customer"], "rename": ["customer.name=name", "id=order_id"] }),
        json!({ "id": 1, "customer": { "name": "王", "city": "上海" }, "x": 0 }),
        r#"{"customer":{"city":"上海"},"name":"王","order_id":1}"#,
    );
}

#[test]
fn the_filter_runs_before_projection_and_only_objects_pass() {
    let extra = json!({ "filter": "note == 'keep'", "select": ["id"] });
    check_projection(extra.clone(), json!({ "id": 1, "note": "keep" }), r#"{"id":1}"#);
    check_projection(extra.clone(), json!({ "id": 2, "note": "drop" }), "filtered");
    check_projection(extra.clone(), json!([1]), "issue: record is an array, not a JSON object");
    check_projection(extra, json!(null), "issue: record is null, not a JSON object");
}

fn dedup(key: &[&str]) -> Dedup {
    Dedup::new(DedupConfig::new(key.iter().map(|path| FieldPath::parse(path).unwrap()).collect()))
}

#[test]
fn dedup_keeps_the_first_row_of_each_key() {
    let mut by_id = dedup(&["id"]);
    let outcomes: Vec<String> = [
        json!({ "id": "1" }),
        json!({ "id": 1 }),
        json!({ "id": 1.0 }),
        json!({ "id": "1", "other": true }),
        json!({ "id": null }),
        json!({ "id": "  " }),
        json!({}),
        json!({ "id": { "b": 1, "a": 2 } }),
        json!({ "id": { "a": 2, "b": 1 } }),
    ]
    .iter()
    .map(|row| match by_id.add(row).unwrap() {
        Ok(first) => first.to_string(),
        Err(issue) => issue.to_string(),
    })
    .collect();
    assert_eq!(
        outcomes,
        [
            "true",
            "true",
            "true",
            "false",
            "dedup key field `id` has no value",
            "dedup key field `id` has no value",
            "dedup key field `id` has no value",
            "true",
            "false"
        ]
    );
    assert_eq!(by_id.finish().distinct_keys, 4);
    assert_eq!(by_id.finish().duplicates, 2);

    let mut pair = dedup(&["region", "customer.id"]);
    assert_eq!(pair.add(&json!({ "region": "a", "customer": { "id": "bc" } })), Ok(Ok(true)));
    assert_eq!(pair.add(&json!({ "region": "ab", "customer": { "id": "c" } })), Ok(Ok(true)));
    assert_eq!(pair.add(&json!({ "region": "a", "customer": { "id": "bc" } })), Ok(Ok(false)));
}

#[test]
fn dedup_refuses_a_key_past_its_bound_and_restores_from_its_state() {
    let config = DedupConfig::new(vec![FieldPath::parse("id").unwrap()]).with_max_keys(2);
    let mut stage = Dedup::new(config.clone());
    assert_eq!(stage.add(&json!({ "id": 1 })), Ok(Ok(true)));
    assert_eq!(stage.add(&json!({ "id": 2 })), Ok(Ok(true)));
    assert_eq!(stage.add(&json!({ "id": 1 })), Ok(Ok(false)));
    let error = stage.add(&json!({ "id": 3 })).unwrap_err();
    assert_eq!(error, BatchProcessError::TooManyKeys { max_keys: 2 });
    assert_eq!(error.to_string(), "dedup_key: more than 2 distinct keys; raise dedup_max_keys");
    assert_eq!(stage.len(), 2);

    let state: DedupState = serde_json::from_value(serde_json::to_value(stage.state()).unwrap()).unwrap();
    assert_eq!(state.hashes.len(), 64);
    let mut restored = Dedup::restore(config.clone(), &state).unwrap();
    assert_eq!(restored, stage);
    assert_eq!(restored.add(&json!({ "id": 2 })), Ok(Ok(false)));

    let bad = |hashes: &str| {
        Dedup::restore(config.clone(), &DedupState { hashes: hashes.to_owned(), duplicates: 0 })
    };
    assert!(matches!(bad("abc"), Err(BatchProcessError::InvalidState { .. })));
    assert!(matches!(bad(&"z".repeat(32)), Err(BatchProcessError::InvalidState { .. })));
    assert!(matches!(bad(&"0".repeat(96)), Err(BatchProcessError::InvalidState { .. })));
}

fn group_by(group_by: &[&str], aggregates: &[&str]) -> GroupBy {
    GroupBy::new(GroupConfig::new(
        group_by.iter().map(|path| FieldPath::parse(path).unwrap()).collect(),
        aggregates.iter().map(|spec| AggregateSpec::parse(spec).unwrap()).collect(),
    ))
}

/// Adds `rows` to a stage grouping by `keys` with `aggregates`: the group rows, then the issues.
fn check_groups(keys: &[&str], aggregates: &[&str], rows: &[Value], expect: &str) {
    let mut stage = group_by(keys, aggregates);
    let mut issues = Vec::new();
    for row in rows {
        if let Err(issue) = stage.add(row).unwrap() {
            issues.push(issue.to_string());
        }
    }
    let mut lines: Vec<String> = stage.finish().iter().map(ToString::to_string).collect();
    lines.extend(issues.into_iter().map(|issue| format!("issue: {issue}")));
    assert_eq!(lines.join("\n"), expect);
}

#[test]
fn aggregates_are_exact_and_skip_values_that_are_absent() {
    let rows = [
        json!({ "region": "华东", "amount": "0.10" }),
        json!({ "region": "华东", "amount": 0.2 }),
        json!({ "region": "华东", "amount": "  " }),
        json!({ "region": "华东" }),
        json!({ "region": "华北", "amount": "-5" }),
        json!({ "amount": "1e2" }),
    ];
    check_groups(
        &["region"],
        &["count", "count:amount", "sum:amount", "min:amount", "max:amount", "avg:amount"],
        &rows,
        [
            // Sorted by the key's canonical JSON: `"华东"` < `"华北"` (东 < 北) < `null`.
            r#"{"avg_amount":"0.15","count":4,"count_amount":2,"max_amount":"0.2","min_amount":"0.10","region":"华东","sum_amount":"0.30"}"#,
            r#"{"avg_amount":"-5","count":1,"count_amount":1,"max_amount":"-5","min_amount":"-5","region":"华北","sum_amount":"-5"}"#,
            r#"{"avg_amount":"100","count":1,"count_amount":1,"max_amount":"100","min_amount":"100","region":null,"sum_amount":"100"}"#,
        ]
        .join("\n")
        .as_str(),
    );
    check_groups(
        &["region"],
        &["sum:amount", "max:amount"],
        &[json!({ "region": "x" })],
        r#"{"max_amount":null,"region":"x","sum_amount":"0"}"#,
    );
    check_groups(
        &[],
        &["avg:v"],
        &[json!({ "v": 1 }), json!({ "v": 2 }), json!({ "v": 2 })],
        r#"{"avg_v":"1.666667"}"#,
    );
}

#[test]
fn a_non_numeric_aggregated_value_rejects_the_whole_row() {
    check_groups(
        &["region"],
        &["count", "sum:amount", "count:note"],
        &[
            json!({ "region": "a", "amount": "1,234.00", "note": "x" }),
            json!({ "region": "a", "amount": true }),
            json!({ "region": "a", "amount": [1] }),
            json!({ "region": "a", "amount": "1e-40" }),
            json!({ "region": "a", "amount": "2", "note": "counted, not summed" }),
        ],
        [
            r#"{"count":1,"count_note":1,"region":"a","sum_amount":"2"}"#,
            r#"issue: field `amount` is not a number: "1,234.00""#,
            "issue: field `amount` is not a number: true",
            "issue: field `amount` is not a number: [1]",
            r#"issue: field `amount` is outside the exact decimal range: "1e-40""#,
        ]
        .join("\n")
        .as_str(),
    );
}

#[test]
fn nested_group_fields_come_out_nested_and_sorted() {
    check_groups(
        &["customer.city", "tier"],
        &["n=count"],
        &[
            json!({ "customer": { "city": "上海" }, "tier": 2 }),
            json!({ "customer": { "city": "北京" }, "tier": 1 }),
            json!({ "customer": { "city": "上海" }, "tier": 2 }),
        ],
        [r#"{"customer":{"city":"上海"},"n":2,"tier":2}"#, r#"{"customer":{"city":"北京"},"n":1,"tier":1}"#]
            .join("\n")
            .as_str(),
    );
}

#[test]
fn group_bounds_and_overflow_fail_the_task_and_change_nothing() {
    let mut stage = GroupBy::new(
        GroupConfig::new(vec![FieldPath::parse("k").unwrap()], vec![AggregateSpec::parse("sum:v").unwrap()])
            .with_max_groups(1),
    );
    stage.add(&json!({ "k": 1, "v": "79228162514264337593543950335" })).unwrap().unwrap();
    let before = stage.clone();
    assert_eq!(
        stage.add(&json!({ "k": 2, "v": 1 })),
        Err(BatchProcessError::TooManyGroups { max_groups: 1 })
    );
    let overflow = stage.add(&json!({ "k": 1, "v": 1 })).unwrap_err();
    assert_eq!(overflow.to_string(), "aggregate `sum_v` of group [1] exceeds the exact decimal range");
    assert_eq!(overflow.code(), batch_model::ErrorCode::ProcessingError);
    assert_eq!(stage, before);
}

#[test]
fn group_state_must_fit_the_params() {
    let stage = group_by(&["r"], &["count", "sum:v"]);
    let state = stage.state();
    assert!(GroupBy::restore(group_by(&["r"], &["count", "sum:v"]).config().clone(), &state).is_ok());
    let mut filled = group_by(&["r"], &["count", "sum:v"]);
    filled.add(&json!({ "r": 1, "v": "2.50" })).unwrap().unwrap();
    let state = filled.state();
    let text = serde_json::to_value(&state).unwrap();
    assert_eq!(
        text,
        json!({ "groups": [{ "key": [1], "records": 1, "accumulators": [{ "count": { "n": 1 } }, { "sum": { "sum": "2.50" } }] }] })
    );
    let other = group_by(&["r"], &["count", "max:v"]);
    assert!(matches!(
        GroupBy::restore(other.config().clone(), &state),
        Err(BatchProcessError::InvalidState { .. })
    ));
    let other = group_by(&["r", "s"], &["count", "sum:v"]);
    assert!(matches!(
        GroupBy::restore(other.config().clone(), &state),
        Err(BatchProcessError::InvalidState { .. })
    ));
    let bad: Result<GroupState, _> = serde_json::from_value(
        json!({ "groups": [{ "key": [1], "records": 1, "accumulators": [{ "sum": { "sum": "x" } }] }] }),
    );
    assert!(bad.is_err());
}

#[test]
fn process_state_dedups_before_grouping_and_rejects_before_remembering() {
    let process = BatchProcess::from_params(&params(json!({
        "dedup_key": "id",
        "group_by": "region",
        "aggregates": ["count", "sum:amount"],
    })))
    .unwrap();
    let mut state = process.state();
    let mut outcomes = Vec::new();
    for row in [
        json!({ "id": 1, "region": "a", "amount": "n/a" }),
        json!({ "id": 1, "region": "a", "amount": "5" }),
        json!({ "id": 1, "region": "a", "amount": "7" }),
        json!({ "region": "a", "amount": "7" }),
        json!({ "id": 2, "region": "b", "amount": 1 }),
    ] {
        outcomes.push(match state.add(row).unwrap() {
            Ok(Admitted::Write(row)) => format!("write {row}"),
            Ok(other) => format!("{other:?}"),
            Err(issue) => format!("issue: {issue}"),
        });
    }
    assert_eq!(
        outcomes,
        [
            "issue: field `amount` is not a number: \"n/a\"",
            "Grouped",
            "Duplicate",
            "issue: dedup key field `id` has no value",
            "Grouped"
        ]
    );
    let finished = state.finish();
    assert_eq!(
        finished.rows,
        [
            json!({ "region": "a", "count": 1, "sum_amount": "5" }),
            json!({ "region": "b", "count": 1, "sum_amount": "1" })
        ]
    );
    assert_eq!(
        finished.summary,
        json!({
            "dedup": { "distinct_keys": 2, "duplicates": 1 },
            "groups": 2,
            "rows": finished.rows,
            "rows_truncated": false,
        })
    );

    let checkpoint = state.checkpoint();
    let restored = process.restore_state(&checkpoint).unwrap();
    assert_eq!(restored, state);
    assert_eq!(process.restore_state(&Value::Null).unwrap(), process.state());
    let without_dedup = BatchProcess::from_params(&params(json!({ "group_by": "region" }))).unwrap();
    let error = without_dedup.restore_state(&checkpoint).unwrap_err();
    assert_eq!(error.code(), batch_model::ErrorCode::StorageError);
    assert!(process.restore_state(&json!({ "what": 1 })).is_err());
}

#[test]
fn without_stateful_stages_every_row_is_written() {
    let process = BatchProcess::from_params(&params(json!({}))).unwrap();
    let mut state = process.state();
    assert_eq!(state.add(json!({ "a": 1 })), Ok(Ok(Admitted::Write(json!({ "a": 1 })))));
    assert_eq!(state.checkpoint(), json!({}));
    assert_eq!(state.finish().summary, json!({}));
}

#[test]
fn errors_become_task_errors_with_details() {
    let error = BatchProcess::from_params(&params(json!({ "select": ["a", "a"] }))).unwrap_err();
    let recorded = batch_model::TaskError::from(&error);
    assert_eq!(recorded.message, "select: `a` is listed twice");
    assert_eq!(recorded.details, json!({ "param": "select", "reason": "`a` is listed twice" }));
    assert!(!recorded.is_retryable());
    let issue = RecordIssue::NotANumber { field: "amount".into(), value: "\"x\"".into() };
    let recorded = batch_model::TaskError::from(&issue);
    assert_eq!(recorded.code, batch_model::ErrorCode::ValidationError);
    assert_eq!(recorded.details, json!({ "field": "amount", "value": "\"x\"" }));
}

/// Rows of a few regions with two-place amounts, some missing.
fn rows_strategy() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec((0..4usize, prop::option::of(-100_000i64..100_000), prop::bool::ANY), 0..60)
        .prop_map(|rows| {
            rows.into_iter()
                .map(|(region, cents, as_text)| {
                    let amount = cents.map(|cents| {
                        let text = Decimal::new(cents, 2).to_string();
                        if as_text { json!(text) } else { serde_json::from_str::<Value>(&text).unwrap() }
                    });
                    let region = ["a", "b", "c", "d"][region];
                    json!({ "region": region, "amount": amount })
                })
                .collect()
        })
}

const ALL_AGGREGATES: [&str; 6] =
    ["count", "count:amount", "sum:amount", "min:amount", "max:amount", "avg:amount"];

proptest! {
    #[test]
    fn merging_the_groups_of_two_parts_equals_grouping_the_whole(rows in rows_strategy(), cut in 0usize..60) {
        let cut = cut.min(rows.len());
        let mut whole = group_by(&["region"], &ALL_AGGREGATES);
        let mut left = group_by(&["region"], &ALL_AGGREGATES);
        let mut right = group_by(&["region"], &ALL_AGGREGATES);
        for (index, row) in rows.iter().enumerate() {
            whole.add(row).unwrap().unwrap();
            let part = if index < cut { &mut left } else { &mut right };
            part.add(row).unwrap().unwrap();
        }
        left.merge(&right).unwrap();
        prop_assert_eq!(left.finish(), whole.finish());
    }

    #[test]
    fn a_run_resumed_from_a_checkpoint_ends_like_an_uninterrupted_one(rows in rows_strategy(), cut in 0usize..60) {
        let process = BatchProcess::from_params(&params(json!({
            "dedup_key": ["region", "amount"],
            "group_by": "region",
            "aggregates": ALL_AGGREGATES,
        }))).unwrap();
        let cut = cut.min(rows.len());
        let mut uninterrupted = process.state();
        let mut first = process.state();
        for (index, row) in rows.iter().enumerate() {
            let expected = uninterrupted.add(row.clone()).unwrap();
            if index < cut {
                prop_assert_eq!(first.add(row.clone()).unwrap(), expected);
            }
        }
        let stored = serde_json::to_string(&first.checkpoint()).unwrap();
        let mut resumed = process.restore_state(&serde_json::from_str(&stored).unwrap()).unwrap();
        for row in &rows[cut..] {
            resumed.add(row.clone()).unwrap().ok();
        }
        prop_assert_eq!(resumed.finish(), uninterrupted.finish());
        prop_assert_eq!(resumed.checkpoint(), uninterrupted.checkpoint());
    }
}

#[test]
fn a_failing_group_leaves_the_dedup_key_unremembered() {
    let process = BatchProcess::from_params(&params(json!({
        "dedup_key": "id",
        "group_by": "k",
        "max_groups": 1,
    })))
    .unwrap();
    let mut state = process.state();
    assert_eq!(state.add(json!({ "id": 1, "k": "a" })), Ok(Ok(Admitted::Grouped)));
    let before = state.clone();
    assert_eq!(
        state.add(json!({ "id": 2, "k": "b" })),
        Err(BatchProcessError::TooManyGroups { max_groups: 1 })
    );
    assert_eq!(state, before);
    assert_eq!(state.dedup().unwrap().len(), 1);
}

#[test]
fn dedup_keeps_the_first_row_of_a_key_and_dead_letters_a_missing_key() {
    let mut dedup = Dedup::new(DedupConfig::new(vec![FieldPath::parse("id").unwrap()]));
    assert_eq!(dedup.add(&json!({ "id": "R1", "amount": 5 })), Ok(Ok(true)));
    assert_eq!(dedup.add(&json!({ "id": "R1", "amount": 7 })), Ok(Ok(false))); // first one wins
    assert!(matches!(dedup.add(&json!({ "amount": 9 })), Ok(Err(RecordIssue::MissingKey { .. }))));
    assert_eq!((dedup.len(), dedup.duplicates()), (1, 1));
}

#[test]
fn group_by_sums_and_averages_exactly_per_group_in_key_order() {
    let aggregates = ["count", "sum:amount", "avg:amount"]
        .iter()
        .map(|spec| AggregateSpec::parse(spec).unwrap())
        .collect();
    let mut groups = GroupBy::new(GroupConfig::new(vec![FieldPath::parse("region").unwrap()], aggregates));
    for row in [
        json!({ "region": "华东", "amount": "10.50" }),
        json!({ "region": "华东", "amount": 4 }),
        json!({ "region": "华北" }),
    ] {
        groups.add(&row).unwrap().unwrap();
    }
    assert!(groups.add(&json!({ "region": "华北", "amount": "n/a" })).unwrap().is_err());
    groups.add(&json!({ "region": "华北", "amount": "1" })).unwrap().unwrap();
    groups.add(&json!({ "region": "华北", "amount": "1" })).unwrap().unwrap();
    groups.add(&json!({ "region": "华北", "amount": "0" })).unwrap().unwrap();
    // Sorted by the key's canonical JSON text: "华东" before "华北" (东 U+4E1C < 北 U+5317).
    assert_eq!(
        groups.finish(),
        [
            json!({ "region": "华东", "count": 2, "sum_amount": "14.50", "avg_amount": "7.25" }),
            json!({ "region": "华北", "count": 4, "sum_amount": "2", "avg_amount": "0.666667" }),
        ]
    );
}
