//! A custom processor, as the Go original's `BatchProcessor` composed one: a source, a validation
//! flow and a processing sink, chosen at run time and joined with
//! `with_source().with_flow().with_sink()` — here over generated order records, with the records
//! that fail validation collected as dead letters.
//!
//! `cargo run -p batch --example custom_processor`

#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::{Arc, Mutex};

use batch::prelude::*;
use batch::tasks::batch_process::{GeneratorConfig, generate};
use serde_json::Value;

/// A record that passed validation.
#[derive(Debug, Clone)]
struct Order {
    region: String,
    /// The amount in cents (the generator writes at most two fraction digits).
    amount_cents: i64,
}

/// Orders and their amount per region.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RegionTotals {
    orders: u64,
    amount_cents: i64,
}

/// What a run ends with.
struct Report {
    totals: BTreeMap<String, RegionTotals>,
    /// Each rejected record's id and why it was rejected.
    dead_letters: Vec<(String, String)>,
    records_in: u64,
}

/// The validation step: a record needs a region and a non-negative numeric amount.
fn validate(record: &Value) -> Result<Order, String> {
    let region = record["region"].as_str().ok_or("region is missing")?;
    let amount = match &record["amount"] {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.parse::<f64>().ok(),
        Value::Null => return Err("amount is missing".to_owned()),
        _ => None,
    };
    let amount = amount.filter(|amount| amount.is_finite() && *amount >= 0.0);
    let amount = amount.ok_or_else(|| format!("amount is not a number: {}", record["amount"]))?;
    Ok(Order { region: region.to_owned(), amount_cents: (amount * 100.0).round() as i64 })
}

/// Runs the processor over `records` generated records.
async fn run(records: usize) -> Result<Report, Box<dyn Error>> {
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let sink_for_rejects = Arc::clone(&rejected);
    let dead_letters = DeadLetters::callback(move |letter: DeadLetter<Value, String>| {
        let id = letter.element["id"].as_str().unwrap_or("?").to_owned();
        if let Ok(mut rejected) = sink_for_rejects.lock() {
            rejected.push((id, letter.error.to_string()));
        }
    });

    // The three parts, each a value that could have been picked from configuration.
    let source = source::iter(generate(&GeneratorConfig { records, seed: 7, ..GeneratorConfig::default() }));
    let validation = flow::identity::<Value>().try_map(validate, ErrorPolicy::resume(dead_letters));
    let processor = sink::fold(BTreeMap::<String, RegionTotals>::new(), |mut totals, order: Order| {
        let entry = totals.entry(order.region).or_default();
        entry.orders += 1;
        entry.amount_cents += order.amount_cents;
        totals
    });

    let outcome = BatchProcessor::named("custom_processor")
        .with_source(source)
        .with_flow(validation)
        .with_sink(processor)
        .run()
        .await?;
    let records_in = outcome.stats.metrics.stage("try_map").map_or(0, |stage| stage.elements_in);
    let dead_letters = rejected.lock().map(|rejected| rejected.clone()).unwrap_or_default();
    Ok(Report { totals: outcome.value, dead_letters, records_in })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let report = run(10_000).await?;
    println!("{} records in; per region:", report.records_in);
    for (region, totals) in &report.totals {
        let (yuan, fen) = (totals.amount_cents / 100, totals.amount_cents % 100);
        println!("  {region}: {} orders, {yuan}.{fen:02}", totals.orders);
    }
    println!("{} dead letters, the first five:", report.dead_letters.len());
    for (id, error) in report.dead_letters.iter().take(5) {
        println!("  {id}: {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_record_is_either_counted_or_a_dead_letter() -> Result<(), Box<dyn Error>> {
        let report = run(2_000).await?;
        let valid: u64 = report.totals.values().map(|totals| totals.orders).sum();
        assert!(!report.dead_letters.is_empty(), "the generator writes some invalid records");
        assert_eq!(valid + report.dead_letters.len() as u64, 2_000);
        assert_eq!(report.records_in, 2_000);
        assert!(report.totals.len() > 1);
        Ok(())
    }
}
