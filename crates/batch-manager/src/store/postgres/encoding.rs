//! Column values in PostgreSQL's binary format beyond what tokio-postgres maps: JSON documents kept
//! in `text` columns (a task's record, result and metrics), written by serialising straight into the
//! statement's buffer and read by deserialising the column's bytes (the store is their only writer
//! and reader, so the server need not parse them as `json` on every write); and task ids as `uuid`
//! values, in parameters, in results and in binary COPY.
//!
//! A task's record leaves out the fields its row's columns hold (`record::COLUMN_FIELDS`: its id, type
//! and status, 90 bytes of an empty task's 530), since schema 6: [`read_task`] puts them back from
//! the columns. A row is written whole at a task's creation, claim and end, so its bytes count
//! (docs/BENCHMARKS.md, m3). Records written before carry the fields themselves and read as they
//! are.

use std::error::Error;

use batch_model::{BatchTask, ProcessingMetrics, TaskId};
use bytes::{BufMut as _, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::store::{json, record};

/// A task's record as the `record` column keeps it: its JSON without the fields of
/// `record::COLUMN_FIELDS` and without the struct fields that are `None`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskRecord<'a>(pub(super) &'a BatchTask);

impl ToSql for TaskRecord<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        // `json::write(self.0, record::COLUMN_FIELDS, out)`, field by field.
        record::write_task(self.0, true, out)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

/// The task of a row: its `record` with the id, type and status of its columns put back. A record
/// written before schema 6 has them (first, as a task serialises) and is read as it is.
pub(super) fn read_task(
    id: TaskId,
    task_type: &str,
    status: &str,
    record: &str,
) -> Result<BatchTask, serde_json::Error> {
    if record.starts_with(r#"{"id":"#) {
        return serde_json::from_str(record);
    }
    // The layout this store writes, read key by key; anything else through serde below.
    if let Some(task) = record::read_task(id, task_type, status, record) {
        return Ok(task);
    }
    let Some(rest) = record.strip_prefix('{') else {
        return Err(serde::de::Error::custom("a task record that is not a JSON object"));
    };
    // The three fields first, as a task serialises them, then the record's own.
    let mut text = Vec::with_capacity(record.len() + 96);
    text.extend_from_slice(br#"{"id":"#);
    serde_json::to_writer(&mut text, &id)?;
    text.extend_from_slice(br#","task_type":"#);
    serde_json::to_writer(&mut text, task_type)?;
    text.extend_from_slice(br#","status":"#);
    serde_json::to_writer(&mut text, status)?;
    if !rest.trim_start().starts_with('}') {
        text.push(b',');
    }
    text.extend_from_slice(rest.as_bytes());
    // Read as a `str`: checked as UTF-8 here once (the pieces are), instead of string by string.
    let text = String::from_utf8(text).map_err(serde::de::Error::custom)?;
    serde_json::from_str(&text)
}

/// A value stored as its JSON text, without the struct fields that are `None` (`store::skip_nulls`).
#[derive(Debug, Clone, Copy)]
pub(super) struct JsonText<T>(pub(super) T);

impl<T: Serialize + std::fmt::Debug> ToSql for JsonText<T> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        json::write(&self.0, &[], out)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

impl<'a, T: DeserializeOwned> FromSql<'a> for JsonText<T> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<JsonText<T>, Box<dyn Error + Sync + Send>> {
        Ok(JsonText(serde_json::from_slice(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }
}

/// A result's metrics as its `metrics` column keeps them: [`JsonText`]'s text, written field by
/// field.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetricsText<'a>(pub(super) &'a ProcessingMetrics);

impl ToSql for MetricsText<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        record::write_metrics(self.0, out);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

/// A task id as a `uuid` value (16 bytes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Uuid(pub(super) TaskId);

impl ToSql for Uuid {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Uuid {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Uuid, Box<dyn Error + Sync + Send>> {
        let bytes: [u8; 16] =
            raw.try_into().map_err(|_| format!("a uuid value of {} bytes instead of 16", raw.len()))?;
        Ok(Uuid(TaskId::from_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

/// Task ids as the `uuid[]` of a parameter.
pub(super) fn uuids(ids: impl IntoIterator<Item = TaskId>) -> Vec<Uuid> {
    ids.into_iter().map(Uuid).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use batch_model::{
        AttemptRecord, BatchTask, CreateTaskRequest, ErrorCode, Partition, ProcessingMetrics, TaskError,
        TaskStatus, TaskType,
    };
    use chrono::{DateTime, TimeDelta, Utc};
    use serde_json::json;

    use super::*;

    /// `value` written as a `text` parameter and read back from the bytes written.
    fn stored<T: Serialize + DeserializeOwned + std::fmt::Debug>(value: &T) -> (String, T) {
        let mut out = BytesMut::new();
        JsonText(value).to_sql(&Type::TEXT, &mut out).expect("written");
        let JsonText(read) = JsonText::<T>::from_sql(&Type::TEXT, &out).expect("read back");
        (String::from_utf8(out.to_vec()).expect("JSON text"), read)
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 123_456_000).expect("a valid time")
    }

    fn new_task() -> BatchTask {
        let request = CreateTaskRequest::new(TaskType::Custom("stored".to_owned()));
        BatchTask::new(TaskId::new(), request, at(0)).expect("a valid request")
    }

    #[test]
    fn a_new_task_is_stored_without_its_unset_fields_and_read_back_equal() {
        let task = new_task();
        let (text, read) = stored(&task);
        assert_eq!(read, task);
        assert!(!text.contains("null"), "{text}");
        let plain = serde_json::to_string(&task).expect("JSON");
        assert_eq!(plain.matches(":null").count(), 11, "{plain}");
        assert!(text.len() + 130 < plain.len(), "{} bytes stored, {} in plain JSON", text.len(), plain.len());
    }

    #[test]
    fn a_task_with_every_optional_field_set_and_null_values_in_its_data_reads_back_equal() {
        let mut task = new_task();
        task.status = TaskStatus::Failed;
        task.config.skip_limit = Some(7);
        // Nulls that are values, not unset fields: written as they are.
        task.params = json!({"input": null, "nested": {"key": null}, "list": [null, 1]});
        task.metadata.insert("owner".to_owned(), "ops".to_owned());
        task.progress.total = Some(10);
        task.progress.processed = 4;
        task.progress.percentage = Some(40.0);
        task.progress.message = Some("reading".to_owned());
        task.progress.throughput = Some(2.5);
        task.progress.eta = Some(Duration::from_secs(3));
        let error = TaskError::new(ErrorCode::ProcessingError, "broken").with_timestamp(at(5));
        task.error = Some(error.clone());
        task.started_at = Some(at(1));
        task.completed_at = Some(at(6));
        task.attempt = 2;
        task.attempts.push(AttemptRecord {
            attempt: 1,
            status: TaskStatus::Failed,
            // An error without details: `details` is a null value, kept.
            error: Some(TaskError::new(ErrorCode::TimeoutError, "slow").with_timestamp(at(2))),
            started_at: None,
            ended_at: Some(at(3)),
            progress: task.progress.clone(),
        });
        task.parent_id = Some(TaskId::new());
        task.partition = Some(Partition { index: 1, count: 4 });
        let (text, read) = stored(&task);
        assert_eq!(read, task);
        assert!(text.contains(r#""params":{"input":null,"list":[null,1],"nested":{"key":null}}"#), "{text}");
        assert!(text.contains(r#""details":null"#), "{text}");
        assert!(!text.contains(r#""started_at":null"#), "{text}");

        let mut detailed = task;
        detailed.error = Some(error.with_details(json!({"line": 3, "field": null})));
        assert_eq!(stored(&detailed).1, detailed);
    }

    /// `task` written as its `record` column and read back with its row's id, type and status.
    fn stored_record(task: &BatchTask) -> (String, BatchTask) {
        let mut out = BytesMut::new();
        TaskRecord(task).to_sql(&Type::TEXT, &mut out).expect("written");
        let text = String::from_utf8(out.to_vec()).expect("JSON text");
        let read =
            read_task(task.id, task.task_type.as_str(), task.status.as_str(), &text).expect("read back");
        (text, read)
    }

    #[test]
    fn a_record_leaves_the_id_type_and_status_to_the_columns_and_reads_back_equal() {
        let mut task = new_task();
        let (text, read) = stored_record(&task);
        assert_eq!(read, task);
        assert!(text.starts_with(r#"{"config":"#), "{text}");
        for field in crate::store::record::COLUMN_FIELDS {
            assert!(!text.contains(&format!(r#""{field}":"#)), "{field} in {text}");
        }
        let (with_columns, _) = stored(&task);
        let columns = format!(r#"{{"id":"{}","task_type":"stored","status":"pending","#, task.id);
        assert_eq!(with_columns, format!("{columns}{}", &text[1..]));

        // Nested structs keep fields of the same names (an attempt's status, a partition's parent).
        task.status = TaskStatus::Processing;
        task.attempts.push(AttemptRecord {
            attempt: 1,
            status: TaskStatus::Failed,
            error: None,
            started_at: Some(at(1)),
            ended_at: Some(at(2)),
            progress: task.progress.clone(),
        });
        task.parent_id = Some(TaskId::new());
        let (text, read) = stored_record(&task);
        assert_eq!(read, task);
        assert!(text.contains(r#""attempts":[{"attempt":1,"status":"failed""#), "{text}");
    }

    #[test]
    fn a_record_written_before_schema_6_reads_as_it_is_whatever_the_columns_say() {
        let task = new_task();
        for record in [serde_json::to_string(&task).expect("plain JSON"), stored(&task).0] {
            let read = read_task(task.id, "another_type", "failed", &record).expect("read");
            assert_eq!(read, task);
        }
    }

    #[test]
    fn a_record_that_is_not_an_object_or_lacks_a_field_is_an_error() {
        let task = new_task();
        for record in ["[]", "", "null"] {
            let error = read_task(task.id, "stored", "pending", record).expect_err(record);
            assert!(!error.to_string().is_empty());
        }
        let error = read_task(task.id, "stored", "pending", "{}").expect_err("no config");
        assert!(error.to_string().contains("missing field `config`"), "{error}");
        let error = read_task(task.id, "stored", "unknown", &stored_record(&task).0).expect_err("a status");
        assert!(error.to_string().contains("unknown variant `unknown`"), "{error}");
    }

    #[test]
    fn results_and_metrics_read_back_equal() {
        let mut metrics = ProcessingMetrics {
            processed_items: 3,
            duration: Duration::from_millis(1_500),
            ..ProcessingMetrics::default()
        };
        let (text, read) = stored(&metrics);
        assert_eq!(read, metrics);
        assert!(!text.contains("null"), "{text}");
        metrics.start_time = Some(at(0));
        metrics.end_time = Some(at(1) + TimeDelta::milliseconds(500));
        assert_eq!(stored(&metrics).1, metrics);
        for result in [json!(null), json!({"rows": 3, "skipped": null}), json!([null])] {
            let (text, read) = stored(&result);
            assert_eq!(read, result);
            assert_eq!(text, result.to_string());
        }
    }

    #[test]
    fn a_task_id_is_written_as_the_16_bytes_of_its_uuid() {
        let id: TaskId = "01a24c1e-ac14-7366-aef5-ac730e4420ba".parse().expect("a task id");
        let mut out = BytesMut::new();
        Uuid(id).to_sql(&Type::UUID, &mut out).expect("written");
        assert_eq!(
            out.as_ref(),
            [0x01, 0xa2, 0x4c, 0x1e, 0xac, 0x14, 0x73, 0x66, 0xae, 0xf5, 0xac, 0x73, 0x0e, 0x44, 0x20, 0xba]
        );
        let Uuid(read) = Uuid::from_sql(&Type::UUID, &out).expect("read");
        assert_eq!(read, id);
    }

    #[test]
    fn a_uuid_value_of_another_length_is_an_error() {
        let error = Uuid::from_sql(&Type::UUID, &[1, 2, 3]).expect_err("13 bytes short");
        assert_eq!(error.to_string(), "a uuid value of 3 bytes instead of 16");
    }
}
