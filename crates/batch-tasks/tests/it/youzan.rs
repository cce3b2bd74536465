//! The `youzan_order` kind end to end: generated files through the kind and the chunk runner (with a
//! job control kept in memory), resumes, user tables through the params, and arbitrary input never
//! panicking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use batch_model::{BatchConfig, BatchTask, Checkpoint, CreateTaskRequest, ErrorCode, TaskId, TaskType};
use batch_tasks::records::DeadLetterRecord;
use batch_tasks::testing::MemoryControl;
use batch_tasks::youzan::generator::{GeneratedStats, GeneratorConfig, Malformation, generate};
use batch_tasks::youzan::{
    EnrichedOrder, Money, YouzanError, YouzanOrderKind, YouzanParams, YouzanProcessor, YouzanSummary,
};
use batch_tasks::{JobContext, JobControl, JobOutcome, TaskKind};
use proptest::prelude::*;

struct Files {
    input: PathBuf,
    output: PathBuf,
    dead_letter: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            input: dir.join("trades.jsonl"),
            output: dir.join("enriched.jsonl"),
            dead_letter: dir.join("invalid.jsonl"),
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "input": self.input, "output": self.output, "dead_letter": self.dead_letter })
    }
}

fn task(params: serde_json::Value, concurrency: u32, batch_size: u32) -> BatchTask {
    let config = BatchConfig { concurrency, batch_size, ..BatchConfig::default() };
    let request = CreateTaskRequest::new(TaskType::YouzanOrder).with_config(config).with_params(params);
    BatchTask::new(TaskId::new(), request, chrono::Utc::now()).unwrap()
}

/// Runs the kind on `task` from `checkpoint`; returns the summary and the checkpoints committed.
async fn run_kind(task: &BatchTask, checkpoint: Option<Checkpoint>) -> (YouzanSummary, Vec<Checkpoint>) {
    let kind = YouzanOrderKind::default();
    kind.validate(&task.params, &task.config).unwrap();
    let control = Arc::new(MemoryControl::new());
    let context = JobContext::new(task.clone(), checkpoint, Arc::clone(&control) as Arc<dyn JobControl>);
    match kind.run(context).await.unwrap() {
        JobOutcome::Completed { summary, .. } => {
            let checkpoints = control.checkpoints();
            (serde_json::from_value(summary).unwrap(), checkpoints)
        }
        other => panic!("the run did not complete: {other:?}"),
    }
}

fn generate_file(path: &Path, config: GeneratorConfig) -> GeneratedStats {
    generate(&config, std::fs::File::create(path).unwrap()).unwrap()
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_file_gives_the_generators_exact_totals_at_each_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let config = GeneratorConfig { count: 3_000, seed: 42, invalid_ratio: 0.1 };
    let stats = generate_file(&files.input, config);
    for concurrency in [1, 2, 4] {
        let (summary, _) = run_kind(&task(files.params(), concurrency, 500), None).await;

        assert_eq!(summary.valid + summary.invalid, stats.lines);
        assert_eq!((summary.valid, summary.invalid), (2_700, 300));
        // GMV per region (and everything else) exactly as the generator summed it.
        assert_eq!(summary, stats.expected);
        for (region, totals) in &stats.expected.regions {
            assert_eq!(summary.regions[region].gmv, totals.gmv, "{region}");
        }
        assert!(summary.unresolved_province > 0 && summary.regions.contains_key("未知"));
        assert_eq!(summary.regions.len(), 8, "seven regions and 未知");
        assert_eq!(summary.categories.len(), 9, "eight categories and the fallback");

        let orders: Vec<EnrichedOrder> = read_lines(&files.output);
        assert_eq!(orders.len() as u64, summary.valid);
        let output_gmv: Money = orders.iter().map(|order| order.gmv).sum();
        assert_eq!(output_gmv, stats.expected.gmv);
        let dead_letters: Vec<DeadLetterRecord> = read_lines(&files.dead_letter);
        assert_eq!(dead_letters.len() as u64, summary.invalid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_line_its_number_offset_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let stats = generate_file(&files.input, GeneratorConfig { count: 1_700, seed: 3, invalid_ratio: 0.2 });
    // Every malformation the format rejects is in the file.
    assert_eq!(stats.malformations.len(), Malformation::ALL.len());
    run_kind(&task(files.params(), 2, 100), None).await;

    let input = std::fs::read_to_string(&files.input).unwrap();
    let mut starts = BTreeMap::new();
    let mut offset = 0u64;
    for (idx, line) in input.split_inclusive('\n').enumerate() {
        starts.insert(idx as u64 + 1, (offset, line.trim_end_matches('\n')));
        offset += line.len() as u64;
    }
    let dead_letters: Vec<DeadLetterRecord> = read_lines(&files.dead_letter);
    assert_eq!(dead_letters.len() as u64, stats.expected.invalid);
    let mut blank = 0;
    for dead_letter in &dead_letters {
        let (offset, raw) = starts[&dead_letter.line];
        assert_eq!((dead_letter.offset, dead_letter.raw.as_str()), (offset, raw));
        assert_eq!(dead_letter.code, ErrorCode::ValidationError);
        let field = dead_letter.field.as_deref().unwrap();
        assert!(dead_letter.message.starts_with(field), "{}", dead_letter.message);
        blank += u64::from(dead_letter.message == "record is a blank line");
    }
    assert_eq!(blank, stats.malformations[&Malformation::BlankLine]);
    // In input order.
    assert!(dead_letters.windows(2).all(|pair| pair[0].line < pair[1].line));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_writes_the_same_files_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let stats = generate_file(&files.input, GeneratorConfig { count: 600, seed: 5, invalid_ratio: 0.1 });
    let task = task(files.params(), 2, 50);
    let (summary, checkpoints) = run_kind(&task, None).await;
    assert_eq!(summary, stats.expected);
    let (output, dead_letters) =
        (std::fs::read(&files.output).unwrap(), std::fs::read(&files.dead_letter).unwrap());
    for checkpoint in checkpoints.iter().step_by(4) {
        let (resumed, _) = run_kind(&task, Some(checkpoint.clone())).await;
        assert_eq!(resumed, summary, "resumed from checkpoint {}", checkpoint.sequence);
        assert_eq!(std::fs::read(&files.output).unwrap(), output);
        assert_eq!(std::fs::read(&files.dead_letter).unwrap(), dead_letters);
    }
}

#[tokio::test]
async fn unreadable_lines_and_crlf_endings_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    let mut generated = Vec::new();
    let stats = generate(&GeneratorConfig { count: 5, seed: 9, invalid_ratio: 0.0 }, &mut generated).unwrap();
    let text = String::from_utf8(generated).unwrap();
    let mut bytes = Vec::new();
    for line in text.lines() {
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"{\"order_info\": \xff}\r\n\r\n");
    std::fs::write(&files.input, &bytes).unwrap();
    let (summary, _) = run_kind(&task(files.params(), 1, 10), None).await;
    assert_eq!((summary.valid, summary.invalid), (5, 2));
    assert_eq!(summary.gmv, stats.expected.gmv);
    let dead_letters: Vec<DeadLetterRecord> = read_lines(&files.dead_letter);
    assert_eq!((dead_letters[0].line, dead_letters[0].code), (6, ErrorCode::ValidationError));
    assert_eq!((dead_letters[1].line, dead_letters[1].message.as_str()), (7, "record is a blank line"));
}

#[test]
fn the_generator_is_deterministic() {
    let config = GeneratorConfig { count: 200, seed: 11, invalid_ratio: 0.3 };
    let (mut first, mut second, mut other) = (Vec::new(), Vec::new(), Vec::new());
    let stats = generate(&config, &mut first).unwrap();
    assert_eq!(generate(&config, &mut second).unwrap(), stats);
    assert_eq!(first, second);
    generate(&GeneratorConfig { seed: 12, ..config }, &mut other).unwrap();
    assert_ne!(first, other);
    assert_eq!(stats.bytes, first.len() as u64);
    assert_eq!(stats.expected.invalid, 60);
    assert!(stats.wrapped > 0);
}

#[test]
fn a_users_rules_and_provinces_files_replace_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"fallback": "杂货", "match_fields": ["title", "sku_properties_name"],
            "rules": [{"category": "乳制品", "keywords": ["牛奶", "酸奶"]},
                      {"category": "烘焙", "keywords": ["蛋糕"]}]}"#,
    )
    .unwrap();
    let provinces = dir.path().join("provinces.csv");
    std::fs::write(&provinces, "code,name,short_name,region\n51,四川省,川,西部\n44,广东省,粤,南部\n")
        .unwrap();
    let params = YouzanParams::from_json(&serde_json::json!({
        "input": "in.jsonl", "output": "out.jsonl", "dead_letter": "dead.jsonl",
        "rules": rules, "provinces": provinces,
    }))
    .unwrap();
    let processor = params.processor().unwrap();
    let line = r#"{"order_info": {"tid": "E1", "status": "TRADE_PAID", "created": "2024-11-04 14:37:13"},
        "address_info": {"delivery_province": "川"}, "pay_info": {"payment": "30.00"},
        "orders": [{"title": "奶油蛋糕", "num": 1, "payment": "10.00"},
                   {"title": "纯牛奶", "num": 2, "payment": "20.00"},
                   {"title": "猫粮", "num": 1, "payment": "0.00"}]}"#;
    let order = processor.process_line(line).unwrap();
    assert_eq!((order.region.as_str(), order.province.as_deref()), ("西部", Some("四川省")));
    let categories: Vec<&str> = order.items.iter().map(|item| item.category.as_str()).collect();
    assert_eq!(categories, ["烘焙", "乳制品", "杂货"]);
    assert_eq!(order.main_category, "乳制品");
    // 四川 (the default short name) is not in the user's table.
    let order = processor.process_line(&line.replace("\"川\"", "\"四川\"")).unwrap();
    assert_eq!(order.region, "未知");
}

#[test]
fn bad_params_and_tables_are_configuration_errors_naming_the_param() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "").unwrap();
    let base = serde_json::json!({
        "input": input, "output": dir.path().join("out.jsonl"), "dead_letter": dir.path().join("dead.jsonl"),
    });
    let with = |key: &str, value: serde_json::Value| {
        let mut params = base.clone();
        params[key] = value;
        params
    };
    // `dead_letter` may be left out (beside the output) or spelled `dead_letters`, not both.
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("dead_letter");
    let defaulted = YouzanParams::from_json(&missing).unwrap();
    assert_eq!(defaulted.dead_letter, dir.path().join("out.dead_letters.jsonl"));
    let mut alias = missing.clone();
    alias["dead_letters"] = serde_json::json!(dir.path().join("d.jsonl"));
    assert_eq!(YouzanParams::from_json(&alias).unwrap().dead_letter, dir.path().join("d.jsonl"));
    let both = with("dead_letters", serde_json::json!("other.jsonl"));
    for (params, param) in [
        (serde_json::json!([]), "params"),
        (both, "dead_letter"),
        (with("input", serde_json::json!(7)), "input"),
        (with("output", serde_json::json!("")), "output"),
        (with("output", serde_json::json!(input)), "output"),
        (with("dead_letter", base["output"].clone()), "dead_letter"),
        (with("rules", serde_json::json!(false)), "rules"),
        (with("batch", serde_json::json!(1)), "batch"),
    ] {
        let error = YouzanParams::from_json(&params).unwrap_err();
        assert_eq!((error.code(), error.param()), (ErrorCode::ConfigurationError, param), "{error}");
    }

    let bad_rules = dir.path().join("rules.json");
    std::fs::write(
        &bad_rules,
        r#"{"fallback": "x", "match_fields": ["title"], "rules": [{"category": "y", "keywords": [""]}]}"#,
    )
    .unwrap();
    let error = YouzanParams::from_json(&with("rules", serde_json::json!(bad_rules)))
        .unwrap()
        .processor()
        .unwrap_err();
    assert!(matches!(error, YouzanError::InvalidRules { .. }));
    assert_eq!((error.code(), error.param()), (ErrorCode::ConfigurationError, "rules"));
    assert!(error.to_string().contains("rule 1 (y): a keyword is empty"), "{error}");

    // The kind checks the same at the task's creation.
    let kind = YouzanOrderKind::default();
    let error =
        kind.validate(&with("rules", serde_json::json!(bad_rules)), &BatchConfig::default()).unwrap_err();
    assert_eq!((error.code, error.details["param"].as_str()), (ErrorCode::ConfigurationError, Some("rules")));
    let bad_config = BatchConfig { batch_size: 0, ..BatchConfig::default() };
    let error = kind.validate(&base, &bad_config).unwrap_err();
    assert_eq!(
        (error.code, error.details["field"].as_str()),
        (ErrorCode::ConfigurationError, Some("batch_size"))
    );

    // Files are checked at creation: a missing input, a missing output folder.
    let kind_error = |params: serde_json::Value| kind.validate(&params, &BatchConfig::default()).unwrap_err();
    let error = kind_error(with("input", serde_json::json!(dir.path().join("none.jsonl"))));
    assert_eq!((error.code, error.details["param"].as_str()), (ErrorCode::ConfigurationError, Some("input")));
    assert_eq!(
        error.message,
        format!(
            "invalid parameter input: cannot read {}: No such file or directory",
            dir.path().join("none.jsonl").display()
        )
    );
    let error = kind_error(with("output", serde_json::json!(dir.path().join("no/out.jsonl"))));
    assert_eq!(error.details["param"], "output");
    let error = kind_error(with("dead_letter", serde_json::json!(dir.path().join("no/dead.jsonl"))));
    assert_eq!(error.details["param"], "dead_letter");
    kind.validate(&base, &BatchConfig::default()).unwrap();

    let missing_file = dir.path().join("nope.csv");
    let error = YouzanParams::from_json(&with("provinces", serde_json::json!(missing_file)))
        .unwrap()
        .processor()
        .unwrap_err();
    assert!(matches!(error, YouzanError::ReadFile { param: "provinces", .. }));
    let recorded = batch_model::TaskError::from(&error);
    assert_eq!(recorded.code, ErrorCode::ConfigurationError);
    assert!(recorded.message.contains("nope.csv"), "{}", recorded.message);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_on_a_line_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let line = String::from_utf8_lossy(&bytes);
        let processor = YouzanProcessor::with_defaults();
        match processor.process_line(&line) {
            Ok(order) => prop_assert!(!order.items.is_empty()),
            Err(issue) => prop_assert_eq!(issue.code, ErrorCode::ValidationError),
        }
    }

    #[test]
    fn json_shaped_noise_never_panics(
        noise in proptest::string::string_regex(
            r#"(\{|\}|\[|\]|"|:|,|-|\.|[0-9]|null|true|"order_info"|"pay_info"|"orders"|"tid"|"num"|"payment"|"title"|"created"|"full_order_info"|"address_extra"|"areaCode"|\\u00e9| ){0,60}"#
        ).unwrap()
    ) {
        let processor = YouzanProcessor::with_defaults();
        if let Err(issue) = processor.process_line(&noise) {
            prop_assert!(issue.message.starts_with(&issue.field));
        }
    }
}

/// Without the `youzan-api` feature, a task naming the API is refused when it is created.
#[cfg(not(feature = "youzan-api"))]
#[test]
fn the_api_input_needs_the_youzan_api_feature() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token.txt");
    std::fs::write(&token, "secret").unwrap();
    let params = serde_json::json!({
        "input": "https://open.youzan.com",
        "output": dir.path().join("out.jsonl"),
        "token_file": token,
        "start_created": "2024-01-01 00:00:00",
        "end_created": "2024-01-02 00:00:00",
    });
    let error = YouzanOrderKind::default().validate(&params, &BatchConfig::default()).unwrap_err();
    assert_eq!(
        (error.code, &error.details["param"]),
        (ErrorCode::ConfigurationError, &serde_json::json!("input"))
    );
    assert!(error.message.contains("needs batch-tasks built with its youzan-api feature"), "{error}");
}
