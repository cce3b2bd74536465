//! The `youzan_order` kind described for its users ([`spec`]): its params as
//! [`YouzanParams::from_json`](super::YouzanParams::from_json) reads them, and its default config.

use crate::params::{ConfigSetting, KindSpec, ParamSpec, ParamType};
use crate::youzan::api::ApiParams;
use crate::youzan::validate::TradeStatus;

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
            "The trades to read: a file of YouZan full_order_info records, one JSON object per line; or the \
             open API's base URL (https://open.youzan.com) to page through youzan.trades.sold.get, with the \
             params marked API.",
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
        ParamSpec::new(
            "token_file",
            ParamType::Path,
            "API: a file holding the access token, read when a run starts (or token_env).",
        )
        .input(),
        ParamSpec::new(
            "token_env",
            ParamType::String,
            "API: the environment variable holding the access token in the worker's process (or token_file).",
        ),
        ParamSpec::new(
            "start_created",
            ParamType::String,
            "API: the trades created from this time on, yyyy-MM-dd HH:mm:ss in Beijing time; required.",
        ),
        ParamSpec::new(
            "end_created",
            ParamType::String,
            "API: the trades created up to this time, in the past (a closed window pages exactly); required.",
        ),
        ParamSpec::new("page_size", ParamType::Integer, "API: trades per page, 1 to 100.")
            .with_default(ApiParams::PAGE_SIZE),
        ParamSpec::new(
            "requests_per_second",
            ParamType::Integer,
            "API: the most page requests started per second (the shop's call limit).",
        )
        .with_default(ApiParams::REQUESTS_PER_SECOND),
        ParamSpec::new(
            "api_version",
            ParamType::String,
            "API: the version of youzan.trades.sold.get to call.",
        )
        .with_default(ApiParams::API_VERSION),
        ParamSpec::new(
            "trade_status",
            ParamType::Choice,
            "API: only the trades of this status; all by default.",
        )
        .with_choices(TradeStatus::ALL.map(TradeStatus::as_str)),
    ])
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use crate::params::{ParamSpec, ParamType};
    use crate::youzan::YouzanParams;
    use crate::youzan::api::API_PARAMS;

    /// The params every test object starts from: the required ones, set.
    fn required() -> Map<String, Value> {
        let mut params = Map::new();
        for param in super::spec().params.iter().filter(|param| param.required) {
            params.insert(param.name.clone(), json!(format!("{}.jsonl", param.name)));
        }
        params
    }

    /// A value of `param`'s type that the parser accepts.
    fn value_for(param: &ParamSpec) -> Value {
        match (param.name.as_str(), param.param_type) {
            ("start_created", _) => json!("2024-01-01 00:00:00"),
            ("end_created", _) => json!("2024-01-02 00:00:00"),
            (_, ParamType::Integer) => json!(10),
            (_, ParamType::Choice) => json!(param.choices[0]),
            (name, _) => json!(format!("{name}.json")),
        }
    }

    /// The required params, plus the API's when `api`.
    fn base(api: bool) -> Map<String, Value> {
        let mut params = required();
        if api {
            params.insert("input".to_owned(), json!("https://open.youzan.com"));
            params.insert("token_env".to_owned(), json!("YOUZAN_TOKEN"));
            params.insert("start_created".to_owned(), json!("2024-01-01 00:00:00"));
            params.insert("end_created".to_owned(), json!("2024-01-02 00:00:00"));
        }
        params
    }

    #[test]
    fn the_description_matches_what_the_params_parser_accepts() {
        assert!(YouzanParams::from_json(&Value::Object(required())).is_ok());
        for param in super::spec().params {
            let api = API_PARAMS.contains(&param.name.as_str());
            for name in std::iter::once(&param.name).chain(&param.aliases) {
                let mut params = base(api);
                if name == "token_file" {
                    params.remove("token_env");
                }
                params.insert(name.clone(), value_for(&param));
                let parsed = YouzanParams::from_json(&Value::Object(params));
                assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
            }
            if api && param.name != "token_file" && param.name != "token_env" {
                // The API's params belong to the API input only.
                let mut params = base(false);
                params.insert(param.name.clone(), value_for(&param));
                assert!(YouzanParams::from_json(&Value::Object(params)).is_err(), "{}", param.name);
            }
            if param.required {
                let mut params = required();
                params.remove(&param.name);
                let error = YouzanParams::from_json(&Value::Object(params)).unwrap_err();
                assert_eq!(error.param(), param.name);
            }
            if let Some(default) = &param.default {
                let parsed = YouzanParams::from_json(&Value::Object(base(true))).unwrap().api.unwrap();
                let actual = match param.name.as_str() {
                    "page_size" => json!(parsed.page_size),
                    "requests_per_second" => json!(parsed.requests_per_second),
                    "api_version" => json!(parsed.api_version),
                    other => panic!("no check for the default of {other}"),
                };
                assert_eq!(&actual, default, "{}", param.name);
            }
        }
        let spec = super::spec();
        let described: Vec<&str> = spec.params.iter().map(|param| param.name.as_str()).collect();
        assert!(API_PARAMS.iter().all(|name| described.contains(name)), "every API param is described");
        let mut params = required();
        params.insert("undescribed".to_owned(), json!("x"));
        assert!(YouzanParams::from_json(&Value::Object(params)).is_err(), "unknown params are refused");
    }
}
