//! A deterministic generator of generic records for demos, tests and benchmarks: the same config
//! and seed give the same records, byte for byte, on every platform.
//!
//! Each record is an order-like JSON object:
//!
//! ```json
//! {"id":"R000007","region":"华东","amount":"123.45","quantity":3,"category":"books",
//!  "tags":["sale","gift"],"active":true,"created_at":"2024-03-05T10:20:30Z",
//!  "customer":{"id":"C00042","name":"王芳","vip":false,"address":{"city":"上海","zip":"200042"}}}
//! ```
//!
//! `amount` is a decimal string with two places or a JSON number (half each). Some records are
//! irregular, at rates set in [`GeneratorConfig`]: a *duplicate* repeats the id (and the rest) of
//! one of the last 64 records with a different amount; a record with a *missing field* lacks one of
//! `amount`, `region`, `tags` or `customer.address`; an *invalid amount* is one of `"n/a"`, `""`,
//! `"1,234.00"`, `"abc"` or `true`.
//!
//! As CSV (with [`CSV_COLUMNS`]), nested fields become dotted columns, `tags` is its JSON text and a
//! missing field an empty cell.

use std::collections::VecDeque;
use std::path::Path;

use pump_core::sink::{CsvWriter, JsonLinesWriter, RecordWriter, WriteError};
use serde_json::{Map, Value, json};

use crate::batch_process::path::FieldPath;
use crate::batch_process::project::csv_cells;

/// The regions records are spread over.
pub const REGIONS: [&str; 7] = ["华东", "华北", "华南", "华中", "西南", "西北", "东北"];

/// The categories records are spread over.
pub const CATEGORIES: [&str; 6] = ["electronics", "books", "grocery", "apparel", "toys", "home"];

/// The columns of the CSV form, in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "id",
    "region",
    "amount",
    "quantity",
    "category",
    "tags",
    "active",
    "created_at",
    "customer.id",
    "customer.name",
    "customer.vip",
    "customer.address.city",
    "customer.address.zip",
];

/// A city of each region (same order as [`REGIONS`]).
const CITIES: [&str; 7] = ["上海", "北京", "广州", "武汉", "成都", "西安", "沈阳"];
const NAMES: [&str; 8] = ["王芳", "李伟", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "Alice Smith"];
const TAGS: [&str; 5] = ["new", "sale", "gift", "bulk", "vip"];
const INVALID_AMOUNTS: [&str; 4] = ["n/a", "", "1,234.00", "abc"];
/// How many recent records a duplicate may repeat.
const RECENT: usize = 64;

/// What to generate. Rates are per thousand records.
///
/// ```
/// use batch_tasks::batch_process::{GeneratorConfig, generate};
///
/// let config = GeneratorConfig { records: 100, seed: 7, ..GeneratorConfig::default() };
/// let records: Vec<_> = generate(&config).collect();
/// assert_eq!(records.len(), 100);
/// assert_eq!(records, generate(&config).collect::<Vec<_>>()); // deterministic
/// assert_eq!(records[0]["id"], "R000000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// How many records.
    pub records: usize,
    /// The seed of the random sequence.
    pub seed: u64,
    /// Records repeating a recent id, per thousand.
    pub duplicates_per_mille: u32,
    /// Records lacking a field, per thousand.
    pub missing_per_mille: u32,
    /// Records with a non-numeric amount, per thousand.
    pub invalid_amount_per_mille: u32,
}

impl Default for GeneratorConfig {
    /// 1 000 records, seed 42, 5% duplicates, 5% with a missing field, 2% with an invalid amount.
    fn default() -> Self {
        GeneratorConfig {
            records: 1000,
            seed: 42,
            duplicates_per_mille: 50,
            missing_per_mille: 50,
            invalid_amount_per_mille: 20,
        }
    }
}

/// The records `config` describes, generated one at a time (memory stays small whatever the count).
pub fn generate(config: &GeneratorConfig) -> Generator {
    Generator {
        config: config.clone(),
        rng: fastrand::Rng::with_seed(config.seed),
        produced: 0,
        next_id: 0,
        recent: VecDeque::with_capacity(RECENT),
    }
}

/// The iterator [`generate`] returns.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    rng: fastrand::Rng,
    produced: usize,
    next_id: u64,
    recent: VecDeque<Value>,
}

impl Iterator for Generator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if self.produced >= self.config.records {
            return None;
        }
        self.produced += 1;
        let duplicate = !self.recent.is_empty() && self.chance(self.config.duplicates_per_mille);
        let mut record = if duplicate {
            let index = self.rng.usize(..self.recent.len());
            let mut copy = self.recent[index].clone();
            if let Value::Object(map) = &mut copy {
                map.insert("amount".to_owned(), self.amount());
            }
            copy
        } else {
            let record = self.fresh();
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(record.clone());
            record
        };
        if let Value::Object(map) = &mut record {
            if self.chance(self.config.invalid_amount_per_mille) {
                let invalid = match self.rng.usize(..=INVALID_AMOUNTS.len()) {
                    index if index < INVALID_AMOUNTS.len() => json!(INVALID_AMOUNTS[index]),
                    _ => json!(true),
                };
                map.insert("amount".to_owned(), invalid);
            }
            if self.chance(self.config.missing_per_mille) {
                match self.rng.u8(..4) {
                    0 => {
                        map.remove("amount");
                    }
                    1 => {
                        map.remove("region");
                    }
                    2 => {
                        map.remove("tags");
                    }
                    _ => {
                        if let Some(Value::Object(customer)) = map.get_mut("customer") {
                            customer.remove("address");
                        }
                    }
                }
            }
        }
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.config.records - self.produced;
        (left, Some(left))
    }
}

impl Generator {
    fn chance(&mut self, per_mille: u32) -> bool {
        self.rng.u32(..1000) < per_mille
    }

    /// An amount from 0.01 to 10 000.00: a decimal string or a JSON number.
    fn amount(&mut self) -> Value {
        let cents = self.rng.u64(1..=1_000_000);
        let text = format!("{}.{:02}", cents / 100, cents % 100);
        if self.rng.bool() {
            Value::String(text)
        } else {
            // The shortest text of the nearest f64 to `cents / 100` is the same two-place decimal.
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }

    fn fresh(&mut self) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let region = self.rng.usize(..REGIONS.len());
        let customer = self.rng.u32(..100_000);
        let mut tags: Vec<&str> = Vec::new();
        for _ in 0..self.rng.usize(..=3) {
            let tag = TAGS[self.rng.usize(..TAGS.len())];
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let mut record = Map::new();
        record.insert("id".to_owned(), json!(format!("R{id:06}")));
        record.insert("region".to_owned(), json!(REGIONS[region]));
        record.insert("amount".to_owned(), self.amount());
        record.insert("quantity".to_owned(), json!(self.rng.u32(1..=20)));
        record.insert("category".to_owned(), json!(CATEGORIES[self.rng.usize(..CATEGORIES.len())]));
        record.insert("tags".to_owned(), json!(tags));
        record.insert("active".to_owned(), json!(self.rng.u8(..10) < 8));
        record.insert(
            "created_at".to_owned(),
            json!(format!(
                "2024-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                self.rng.u8(1..=12),
                self.rng.u8(1..=28),
                self.rng.u8(..24),
                self.rng.u8(..60),
                self.rng.u8(..60)
            )),
        );
        record.insert(
            "customer".to_owned(),
            json!({
                "id": format!("C{customer:05}"),
                "name": NAMES[self.rng.usize(..NAMES.len())],
                "vip": self.rng.u8(..10) == 0,
                "address": { "city": CITIES[region], "zip": format!("{:06}", 100_000 + customer) },
            }),
        );
        Value::Object(record)
    }
}

/// What a generator wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the records `config` describes to `path` as JSON lines.
///
/// ```
/// use batch_tasks::batch_process::{GeneratorConfig, write_json_lines};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("records.jsonl");
/// let written = write_json_lines(&path, &GeneratorConfig { records: 10, ..GeneratorConfig::default() }).unwrap();
/// assert_eq!(written.records, 10);
/// assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10);
/// ```
pub fn write_json_lines(path: &Path, config: &GeneratorConfig) -> Result<Generated, WriteError> {
    let mut writer = JsonLinesWriter::create(path)?;
    let mut records = 0;
    for record in generate(config) {
        writer.write(&record)?;
        records += 1;
    }
    let bytes = writer.flush()?;
    Ok(Generated { records, bytes })
}

/// Writes the records `config` describes to `path` as CSV: a header row of [`CSV_COLUMNS`], then
/// one row per record.
///
/// ```
/// use batch_tasks::batch_process::{GeneratorConfig, write_csv};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("records.csv");
/// write_csv(&path, &GeneratorConfig { records: 3, ..GeneratorConfig::default() }).unwrap();
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.starts_with("id,region,amount,quantity,category,tags,active,created_at,customer.id,"));
/// assert_eq!(text.lines().count(), 4);
/// ```
pub fn write_csv(path: &Path, config: &GeneratorConfig) -> Result<Generated, WriteError> {
    let columns: Vec<FieldPath> = CSV_COLUMNS.iter().filter_map(|column| FieldPath::parse(column)).collect();
    let mut writer = CsvWriter::create(path)?;
    writer.write(&CSV_COLUMNS.map(str::to_owned).to_vec())?;
    let mut records = 0;
    for record in generate(config) {
        writer.write(&csv_cells(&record, &columns))?;
        records += 1;
    }
    let bytes = writer.flush()?;
    Ok(Generated { records, bytes })
}
