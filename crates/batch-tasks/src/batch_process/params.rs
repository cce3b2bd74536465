//! The `batch_process` kind described for its users ([`spec`]): its params as
//! [`BatchProcessConfig::from_params`](super::BatchProcessConfig::from_params) reads them (see the
//! module docs for their rules), and its default config.

use crate::batch_process::config::{DedupConfig, Format, GroupConfig};
use crate::params::{ConfigSetting, KindSpec, ParamSpec, ParamType};
use crate::records::postgres::OutputMode;

/// What `batch_process` tells front ends: every [`BatchConfig`](batch_model::BatchConfig) setting
/// honoured (the chunk runner, and `partitions`), chunks of 1,000 records.
pub(crate) fn spec() -> KindSpec {
    KindSpec::new(
        "Filter, project, de-duplicate and aggregate the records of a JSON-lines or CSV file or a PostgreSQL \
         table.",
    )
    .with_settings(ConfigSetting::ALL)
    .with_params(vec![
        ParamSpec::new(
            "input",
            ParamType::Path,
            "The records to read: JSON lines or CSV with a header row, or a PostgreSQL database \
                 (postgres://user@host:port/db; the password from PGPASSWORD when the URL has none) whose \
                 input_table or input_query is read in key order.",
        )
        .required()
        .input(),
        ParamSpec::new(
            "input_table",
            ParamType::String,
            "With a postgres:// input: the table to read (table or schema.table, as stored), each row a \
                 JSON object.",
        ),
        ParamSpec::new(
            "input_query",
            ParamType::String,
            "With a postgres:// input, instead of input_table: a SELECT whose rows are read (needs \
                 input_key).",
        ),
        ParamSpec::new(
            "input_key",
            ParamType::String,
            "With a postgres:// input: the unique, not-null column the rows are read in order of, a page \
                 at a time; default: the table's primary key.",
        ),
        ParamSpec::new(
            "output",
            ParamType::Path,
            "Where the kept rows are written: JSON lines, or a PostgreSQL database (postgres://…) whose \
                 output_table they go into.",
        )
        .required()
        .output(),
        ParamSpec::new(
            "output_table",
            ParamType::String,
            "With a postgres:// output: the table the rows go into, each field into the column of its \
                 name.",
        ),
        ParamSpec::new(
            "output_key",
            ParamType::String,
            "With a postgres:// output: the columns (comma-separated) of the unique key rows are upserted \
                 by when they go through the output's own connection, which makes a resume exact; default: \
                 the table's primary key.",
        ),
        ParamSpec::new(
            "output_mode",
            ParamType::Choice,
            "With a postgres:// output: how rows reach output_table. auto: in the transaction that commits \
                 the task's checkpoint when the task's store is the table's database (inserted: a crash \
                 leaves exactly the checkpointed rows, a stale worker writes nothing, a key the table already \
                 held fails the task), else upserted through the output's \
                 own connection; transactional: only with the checkpoint (fails if the store is another \
                 database); upsert: always through the output's own connection and user.",
        )
        .with_choices(OutputMode::ALL.map(OutputMode::as_str))
        .with_default(OutputMode::default().as_str()),
        ParamSpec::new(
            "dead_letter",
            ParamType::Path,
            "Where rejected records are written (JSON lines) with their line, code and reason; default: \
                 beside the output, <output stem>.dead_letters.jsonl (required when the output is a table).",
        )
        .with_alias("dead_letters")
        .output(),
        ParamSpec::new(
            "format",
            ParamType::Choice,
            "The input's format; default: from its extension (.csv; .jsonl, .ndjson, .json).",
        )
        .with_choices([Format::JsonLines, Format::Csv].map(Format::as_str)),
        ParamSpec::new(
            "filter",
            ParamType::String,
            "Keep the records matching this expression, e.g. amount >= 100 && region == \"华东\".",
        ),
        ParamSpec::new(
            "select",
            ParamType::StringList,
            "Keep only these fields (dotted paths), in this order.",
        ),
        ParamSpec::new("rename", ParamType::StringList, "Rename fields after select: from=to pairs."),
        ParamSpec::new(
            "dedup_key",
            ParamType::StringList,
            "Keep the first record of each key made of these fields.",
        ),
        ParamSpec::new(
            "dedup_max_keys",
            ParamType::Integer,
            "The most distinct keys remembered; one more fails the task (needs dedup_key).",
        )
        .with_default(DedupConfig::DEFAULT_MAX_KEYS),
        ParamSpec::new("group_by", ParamType::StringList, "Group the rows by these fields."),
        ParamSpec::new(
            "aggregates",
            ParamType::StringList,
            "Aggregates per group, [alias=]function[:field] with count, sum, min, max or avg; default: \
             count when grouping.",
        ),
        ParamSpec::new(
            "max_groups",
            ParamType::Integer,
            "The most groups kept; one more fails the task (needs group_by or aggregates).",
        )
        .with_default(GroupConfig::DEFAULT_MAX_GROUPS),
    ])
}

#[cfg(test)]
mod tests {
    use crate::batch_process::config::PARAMS;

    #[test]
    fn every_param_the_parser_knows_is_described_and_no_other() {
        let spec = super::spec();
        let mut described: Vec<&str> = spec
            .params
            .iter()
            .flat_map(|param| std::iter::once(&param.name).chain(&param.aliases))
            .map(String::as_str)
            .collect();
        described.sort_unstable();
        let mut known = PARAMS.to_vec();
        known.sort_unstable();
        assert_eq!(described, known);
    }

    #[test]
    fn a_table_is_accepted_only_with_the_postgres_feature() {
        let params = serde_json::json!({
            "input": "postgres://app@db/sales", "input_table": "orders", "output": "out.jsonl",
        });
        let parsed = crate::batch_process::BatchProcessConfig::from_params(&params);
        if cfg!(feature = "postgres") {
            let table = parsed.unwrap().input_table.unwrap();
            assert_eq!(table.describe(), "the table orders at postgres://app@db/sales");
        } else {
            let error = parsed.unwrap_err();
            assert!(
                error.to_string().starts_with("input: names a PostgreSQL table, but this build"),
                "{error}"
            );
        }
    }

    #[test]
    fn constant_defaults_are_the_parsers() {
        let spec = super::spec();
        let config = crate::batch_process::BatchProcessConfig::from_params(&serde_json::json!({
            "input": "in.jsonl", "output": "out.jsonl", "dedup_key": "id", "group_by": "region",
        }))
        .unwrap();
        let default = |name: &str| spec.param(name).unwrap().default.clone().unwrap();
        assert_eq!(default("dedup_max_keys"), config.dedup.unwrap().max_keys);
        assert_eq!(default("max_groups"), config.grouping.unwrap().max_groups);
        assert_eq!(default("output_mode"), config.output_mode.as_str());
    }
}
