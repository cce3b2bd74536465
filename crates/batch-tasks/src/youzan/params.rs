//! The `youzan_order` kind described for its users ([`spec`]): its params as
//! [`YouzanParams::from_json`](super::YouzanParams::from_json) reads them, and its default config.

use crate::params::{ConfigSetting, KindSpec, ParamSpec, ParamType};

/// What `youzan_order` tells front ends: every [`BatchConfig`](batch_model::BatchConfig) setting
/// honoured (the chunk runner, and `partitions`), chunks of 1,000 trades.
pub(crate) fn spec() -> KindSpec {
    KindSpec::new(
        "Validate YouZan trades, enrich each order with its region and product categories, and sum \
         orders and GMV per region and category with exact decimal money.",
    )
    .with_settings(ConfigSetting::ALL)
    .with_params(vec![
        ParamSpec::new(
            "input",
            ParamType::Path,
            "The trades to read: YouZan full_order_info records, one JSON object per line.",
        )
        .required()
        .input(),
        ParamSpec::new("output", ParamType::Path, "Where the enriched orders are written (JSON lines).")
            .required()
            .output(),
        ParamSpec::new(
            "dead_letter",
            ParamType::Path,
            "Where invalid records are written (JSON lines), with their line, code and the field at fault; \
             default: beside the output, <output stem>.dead_letters.jsonl.",
        )
        .with_alias("dead_letters")
        .output(),
        ParamSpec::new(
            "rules",
            ParamType::Path,
            "Category rules replacing the built-in table (the shape of categories.json).",
        )
        .input(),
        ParamSpec::new(
            "provinces",
            ParamType::Path,
            "Provinces replacing the built-in table (the shape of cn-provinces.csv).",
        )
        .input(),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in a test, a panic is the failure report")]
mod tests {
    use serde_json::{Map, Value, json};

    use crate::youzan::YouzanParams;

    /// The params every test object starts from: the required ones, set.
    fn required() -> Map<String, Value> {
        let mut params = Map::new();
        for param in super::spec().params.iter().filter(|param| param.required) {
            params.insert(param.name.clone(), json!(format!("{}.jsonl", param.name)));
        }
        params
    }

    #[test]
    fn the_description_matches_what_the_params_parser_accepts() {
        assert!(YouzanParams::from_json(&Value::Object(required())).is_ok());
        for param in super::spec().params {
            for name in std::iter::once(&param.name).chain(&param.aliases) {
                let mut params = required();
                params.insert(name.clone(), json!(format!("{name}.json")));
                assert!(YouzanParams::from_json(&Value::Object(params)).is_ok(), "{name}");
            }
            if param.required {
                let mut params = required();
                params.remove(&param.name);
                let error = YouzanParams::from_json(&Value::Object(params)).unwrap_err();
                assert_eq!(error.param(), param.name);
            }
        }
        let mut params = required();
        params.insert("undescribed".to_owned(), json!("x"));
        assert!(YouzanParams::from_json(&Value::Object(params)).is_err(), "unknown params are refused");
    }
}
