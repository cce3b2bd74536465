//! A task's record and a result's metrics written field by field: the bytes [`json::write`] writes
//! for them (serde_json's, without the struct fields that are `None`), with each field's name and
//! punctuation a constant. The PostgreSQL store writes a task's record at its creation, its claim
//! and its end, and its metrics at its end; through serde each field's name was escaped and copied
//! piece by piece, a third of a record's cost (docs/BENCHMARKS.md, m3). The parts that are rare or
//! free-form (an error, earlier attempts, params, a partition) still go through [`json::write`].
//!
//! The structs are taken apart whole (`let BatchTask { id, .. }` with every field named), so a field
//! added to the model does not compile here until it is written; the tests hold the bytes to
//! [`json::write`]'s on tasks with every optional field set and unset.
//!
//! [`read_task`] reads a record back the same way: the layout written here, key by key, with the
//! free-form parts handed to serde_json where they start. Anything else (another key order, spaces,
//! an escaped string, a value out of its bounds) makes it give up, and the caller reads the record
//! through serde as before: it is a shortcut for the records this module writes, never a second
//! judge of what a record means. A claim reads the task's record; through serde that took 13,000
//! instructions, a third of them for the config.

use std::time::Duration;

use batch_model::{
    BatchConfig, BatchTask, Durability, DurationText, ProcessingMetrics, Progress, TaskId, TaskStatus,
    TaskType, TimestampText,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::json::{self, JsonError, Out};

/// The fields of a task that [`write_task`] leaves out with `columns`.
#[cfg(test)]
pub(crate) const COLUMN_FIELDS: &[&str] = &["id", "task_type", "status"];

/// Writes `task` as [`json::write`] does; without its `id`, `task_type` and `status` when
/// `columns` (a store that keeps them in columns: `json::write(task, COLUMN_FIELDS)`).
pub(crate) fn write_task<O: Out>(task: &BatchTask, columns: bool, out: &mut O) -> Result<(), JsonError> {
    let BatchTask {
        id,
        task_type,
        status,
        config,
        params,
        progress,
        error,
        created_at,
        updated_at,
        started_at,
        completed_at,
        metadata,
        attempt,
        attempts,
        parent_id,
        partition,
    } = task;
    if columns {
        out.put(b"{\"config\":");
    } else {
        out.put(b"{\"id\":");
        task_id_text(id, out);
        out.put(b",\"task_type\":");
        json::write(task_type, &[], out)?;
        out.put(b",\"status\":");
        json::write(status, &[], out)?;
        out.put(b",\"config\":");
    }
    write_config(config, out);
    out.put(b",\"params\":");
    json::write(params, &[], out)?;
    out.put(b",\"progress\":");
    write_progress(progress, out);
    if let Some(error) = error {
        out.put(b",\"error\":");
        json::write(error, &[], out)?;
    }
    out.put(b",\"created_at\":");
    timestamp_text(created_at, out);
    out.put(b",\"updated_at\":");
    timestamp_text(updated_at, out);
    if let Some(started_at) = started_at {
        out.put(b",\"started_at\":");
        timestamp_text(started_at, out);
    }
    if let Some(completed_at) = completed_at {
        out.put(b",\"completed_at\":");
        timestamp_text(completed_at, out);
    }
    out.put(b",\"metadata\":{");
    for (at, (key, value)) in metadata.iter().enumerate() {
        if at > 0 {
            out.put(b",");
        }
        json::string(out, key);
        out.put(b":");
        json::string(out, value);
    }
    out.put(b"},\"attempt\":");
    json::integer(out, *attempt);
    out.put(b",\"attempts\":");
    if attempts.is_empty() {
        out.put(b"[]");
    } else {
        json::write(attempts, &[], out)?;
    }
    if let Some(parent_id) = parent_id {
        out.put(b",\"parent_id\":");
        task_id_text(parent_id, out);
    }
    if let Some(partition) = partition {
        out.put(b",\"partition\":");
        json::write(partition, &[], out)?;
    }
    out.put(b"}");
    Ok(())
}

/// Writes `metrics` as [`json::write`] does.
pub(crate) fn write_metrics<O: Out>(metrics: &ProcessingMetrics, out: &mut O) {
    let ProcessingMetrics {
        total_items,
        processed_items,
        failed_items,
        retried_items,
        skipped_items,
        start_time,
        end_time,
        duration,
    } = metrics;
    out.put(b"{\"total_items\":");
    json::integer(out, *total_items);
    out.put(b",\"processed_items\":");
    json::integer(out, *processed_items);
    out.put(b",\"failed_items\":");
    json::integer(out, *failed_items);
    out.put(b",\"retried_items\":");
    json::integer(out, *retried_items);
    out.put(b",\"skipped_items\":");
    json::integer(out, *skipped_items);
    if let Some(start_time) = start_time {
        out.put(b",\"start_time\":");
        timestamp_text(start_time, out);
    }
    if let Some(end_time) = end_time {
        out.put(b",\"end_time\":");
        timestamp_text(end_time, out);
    }
    out.put(b",\"duration\":");
    duration_text(duration, out);
    out.put(b"}");
}

fn write_config<O: Out>(config: &BatchConfig, out: &mut O) {
    let BatchConfig { batch_size, max_retries, timeout, concurrency, skip_limit, durability, partitions } =
        config;
    out.put(b"{\"batch_size\":");
    json::integer(out, *batch_size);
    out.put(b",\"max_retries\":");
    json::integer(out, *max_retries);
    out.put(b",\"timeout\":");
    duration_text(timeout, out);
    out.put(b",\"concurrency\":");
    json::integer(out, *concurrency);
    if let Some(skip_limit) = skip_limit {
        out.put(b",\"skip_limit\":");
        json::integer(out, *skip_limit);
    }
    out.put(b",\"durability\":");
    json::string(out, durability.as_str());
    out.put(b",\"partitions\":");
    json::integer(out, *partitions);
    out.put(b"}");
}

fn write_progress<O: Out>(progress: &Progress, out: &mut O) {
    let Progress { total, processed, failed, skipped, percentage, message, throughput, eta, updated_at } =
        progress;
    out.put(b"{");
    if let Some(total) = total {
        out.put(b"\"total\":");
        json::integer(out, *total);
        out.put(b",");
    }
    out.put(b"\"processed\":");
    json::integer(out, *processed);
    out.put(b",\"failed\":");
    json::integer(out, *failed);
    out.put(b",\"skipped\":");
    json::integer(out, *skipped);
    if let Some(percentage) = percentage {
        out.put(b",\"percentage\":");
        json::number_f64(out, *percentage);
    }
    if let Some(message) = message {
        out.put(b",\"message\":");
        json::string(out, message);
    }
    if let Some(throughput) = throughput {
        out.put(b",\"throughput\":");
        json::number_f64(out, *throughput);
    }
    if let Some(eta) = eta {
        out.put(b",\"eta\":");
        duration_text(eta, out);
    }
    out.put(b",\"updated_at\":");
    timestamp_text(updated_at, out);
    out.put(b"}");
}

/// A timestamp's JSON string (its text needs no escape).
fn timestamp_text<O: Out>(at: &DateTime<Utc>, out: &mut O) {
    quoted(TimestampText::new(at).as_bytes(), out);
}

/// A duration's JSON string (its text needs no escape).
fn duration_text<O: Out>(duration: &Duration, out: &mut O) {
    quoted(DurationText::new(*duration).as_bytes(), out);
}

/// A task id's JSON string, as it serialises (its text needs no escape).
fn task_id_text<O: Out>(id: &TaskId, out: &mut O) {
    quoted(id.encode(&mut [0; 36]).as_bytes(), out);
}

fn quoted<O: Out>(text: &[u8], out: &mut O) {
    out.put(b"\"");
    out.put(text);
    out.put(b"\"");
}

/// Reads a record [`write_task`] wrote with `columns`, given its row's id, type and status, as
/// serde reads it; `None` when the record is not exactly in that layout (the caller then reads it
/// through serde, which gives the same task or the error).
pub(crate) fn read_task(id: TaskId, task_type: &str, status: &str, record: &str) -> Option<BatchTask> {
    let task_type: TaskType = task_type.parse().ok()?;
    let status: TaskStatus = status.parse().ok()?;
    let mut at = Reader { text: record, at: 0 };
    at.literal("{\"config\":")?;
    let config = at.config()?;
    at.literal(",\"params\":")?;
    let params = at.value()?;
    at.literal(",\"progress\":")?;
    let progress = at.progress()?;
    let error = if at.maybe(",\"error\":") { Some(at.value()?) } else { None };
    at.literal(",\"created_at\":")?;
    let created_at = at.timestamp()?;
    at.literal(",\"updated_at\":")?;
    let updated_at = at.timestamp()?;
    let started_at = if at.maybe(",\"started_at\":") { Some(at.timestamp()?) } else { None };
    let completed_at = if at.maybe(",\"completed_at\":") { Some(at.timestamp()?) } else { None };
    at.literal(",\"metadata\":")?;
    let metadata = if at.maybe("{}") { Default::default() } else { at.value()? };
    at.literal(",\"attempt\":")?;
    let attempt = at.whole_u32()?;
    at.literal(",\"attempts\":")?;
    let attempts = if at.maybe("[]") { Vec::new() } else { at.value()? };
    let parent_id = if at.maybe(",\"parent_id\":") { Some(at.value()?) } else { None };
    let partition = if at.maybe(",\"partition\":") { Some(at.value()?) } else { None };
    at.literal("}")?;
    at.end()?;
    Some(BatchTask {
        id,
        task_type,
        status,
        config,
        params,
        progress,
        error,
        created_at,
        updated_at,
        started_at,
        completed_at,
        metadata,
        attempt,
        attempts,
        parent_id,
        partition,
    })
}

/// A cursor over a record's text; each read is `None` where the text is not what it expects.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.at..).unwrap_or_default()
    }

    /// Steps over `expected`.
    fn literal(&mut self, expected: &str) -> Option<()> {
        self.maybe(expected).then_some(())
    }

    /// Steps over `expected` if it is next.
    fn maybe(&mut self, expected: &str) -> bool {
        let found = self.rest().starts_with(expected);
        if found {
            self.at += expected.len();
        }
        found
    }

    fn end(&self) -> Option<()> {
        (self.at == self.text.len()).then_some(())
    }

    /// A whole number as serde_json writes one (no sign, no leading zero but for 0 itself).
    fn whole(&mut self) -> Option<u64> {
        let digits = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        let text = self.rest().get(..digits)?;
        if digits == 0 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        let value = text.parse().ok()?;
        self.at += digits;
        Some(value)
    }

    fn whole_u32(&mut self) -> Option<u32> {
        u32::try_from(self.whole()?).ok()
    }

    /// A string without escapes, its contents.
    fn plain_string(&mut self) -> Option<&str> {
        let rest = self.text.get(self.at..)?.strip_prefix('"')?;
        // The closing quote; an escape or a control character first is left to serde.
        let end = rest.bytes().position(|byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        if rest.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.at += end + 2;
        rest.get(..end)
    }

    fn timestamp(&mut self) -> Option<DateTime<Utc>> {
        TimestampText::parse(self.plain_string()?)
    }

    fn duration(&mut self) -> Option<Duration> {
        DurationText::parse(self.plain_string()?)
    }

    /// The JSON value that starts here, read by serde_json.
    fn value<T: DeserializeOwned>(&mut self) -> Option<T> {
        let mut values = serde_json::Deserializer::from_str(self.rest()).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }

    /// A config as [`write_config`] writes it, within its bounds (a config out of them is left to
    /// serde, for its error).
    fn config(&mut self) -> Option<BatchConfig> {
        self.literal("{\"batch_size\":")?;
        let batch_size = self.whole_u32()?;
        self.literal(",\"max_retries\":")?;
        let max_retries = self.whole_u32()?;
        self.literal(",\"timeout\":")?;
        let timeout = self.duration()?;
        self.literal(",\"concurrency\":")?;
        let concurrency = self.whole_u32()?;
        let skip_limit = if self.maybe(",\"skip_limit\":") { Some(self.whole()?) } else { None };
        self.literal(",\"durability\":")?;
        let durability = match self.plain_string()? {
            "process" => Durability::Process,
            "power_loss" => Durability::PowerLoss,
            _ => return None,
        };
        self.literal(",\"partitions\":")?;
        let partitions = self.whole_u32()?;
        self.literal("}")?;
        let config =
            BatchConfig { batch_size, max_retries, timeout, concurrency, skip_limit, durability, partitions };
        config.validate().ok()?;
        Some(config)
    }

    /// Progress as [`write_progress`] writes it without its rarer parts (a percentage, a message, a
    /// throughput, an estimate): a record with any of them is read through serde.
    fn progress(&mut self) -> Option<Progress> {
        self.literal("{")?;
        let total = if self.maybe("\"total\":") {
            let total = self.whole()?;
            self.literal(",")?;
            Some(total)
        } else {
            None
        };
        self.literal("\"processed\":")?;
        let processed = self.whole()?;
        self.literal(",\"failed\":")?;
        let failed = self.whole()?;
        self.literal(",\"skipped\":")?;
        let skipped = self.whole()?;
        self.literal(",\"updated_at\":")?;
        let updated_at = self.timestamp()?;
        self.literal("}")?;
        Some(Progress {
            total,
            processed,
            failed,
            skipped,
            percentage: None,
            message: None,
            throughput: None,
            eta: None,
            updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use batch_model::{
        AttemptRecord, CreateTaskRequest, Durability, ErrorCode, Partition, TaskError, TaskId, TaskStatus,
        TaskType,
    };
    use chrono::NaiveDate;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, nanos).expect("a valid time")
    }

    /// `task` as written here and by `json::write`, both with and without its column fields.
    fn check(task: &BatchTask) {
        for (columns, without) in [(false, &[][..]), (true, COLUMN_FIELDS)] {
            let mut written = Vec::new();
            write_task(task, columns, &mut written).expect("written");
            let mut reference = Vec::new();
            json::write(task, without, &mut reference).expect("reference");
            assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&reference));
        }
        let mut written = Vec::new();
        write_task(task, false, &mut written).expect("written");
        let read: BatchTask = serde_json::from_slice(&written).expect("read back");
        assert_eq!(&read, task);
    }

    fn check_metrics(metrics: &ProcessingMetrics) {
        let mut written = Vec::new();
        write_metrics(metrics, &mut written);
        let mut reference = Vec::new();
        json::write(metrics, &[], &mut reference).expect("reference");
        assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&reference));
    }

    /// A task with the optional parts chosen by `knobs` set, in the ways each can be set.
    fn task_with(knobs: [bool; 12], numbers: (u64, f64, u32), text: &str) -> BatchTask {
        let (number, float, small) = numbers;
        let request = CreateTaskRequest::new(TaskType::Custom("stored".to_owned()));
        let mut task =
            BatchTask::new(TaskId::new(), request, at(0, small % 1_000_000_000)).expect("a valid request");
        task.status = [TaskStatus::Pending, TaskStatus::Processing, TaskStatus::Failed][small as usize % 3];
        if knobs[0] {
            task.config.skip_limit = Some(number);
            task.config.durability = Durability::PowerLoss;
            // Within the config's bounds, so that it reads back.
            task.config.timeout =
                Duration::new(number % 86_000, small % 1_000_000_000).max(Duration::from_millis(1));
            task.config.batch_size = small % 1_000_000 + 1;
        }
        if knobs[1] {
            task.params = json!({"input": text, "n": number, "f": float, "list": [null, true]});
        }
        if knobs[2] {
            task.progress.total = Some(number);
            task.progress.processed = number / 2;
            task.progress.failed = u64::from(small);
        }
        if knobs[3] {
            task.progress.percentage = Some(float);
            task.progress.throughput = Some(-float);
            task.progress.message = Some(text.to_owned());
        }
        if knobs[4] {
            task.progress.eta = Some(Duration::new(number % 1_000_000, small % 1_000_000_000));
        }
        if knobs[5] {
            task.error = Some(
                TaskError::new(ErrorCode::ProcessingError, text)
                    .with_timestamp(at(5, small % 1_000_000_000))
                    .with_details(json!({"line": number, "field": null})),
            );
        }
        if knobs[6] {
            task.started_at = Some(at(1, 1));
        }
        if knobs[7] {
            task.completed_at = Some(at(6, 999_999_999));
        }
        if knobs[8] {
            task.metadata.insert(text.to_owned(), "ops\\team\n".to_owned());
            task.metadata.insert("owner".to_owned(), text.to_owned());
        }
        if knobs[9] {
            task.attempt = small.max(2);
            task.attempts.push(AttemptRecord {
                attempt: 1,
                status: TaskStatus::Failed,
                error: Some(TaskError::new(ErrorCode::TimeoutError, text).with_timestamp(at(2, 0))),
                started_at: None,
                ended_at: Some(at(3, 0)),
                progress: task.progress.clone(),
            });
        }
        if knobs[10] {
            task.parent_id = Some(TaskId::new());
        }
        if knobs[11] {
            task.partition = Some(Partition { index: small % 4, count: 4 });
        }
        task
    }

    #[test]
    fn a_new_task_and_a_task_with_everything_set_are_written_as_json_write_writes_them() {
        check(&task_with([false; 12], (0, 0.0, 0), ""));
        check(&task_with([true; 12], (u64::MAX, 1e300, u32::MAX), "in \"quoted\"\n\u{1}é \u{2028}"));
        // Times the model leaves to chrono, and a float JSON cannot hold.
        let mut task = task_with([true; 12], (7, f64::NAN, 3), "x");
        task.created_at = DateTime::<Utc>::MAX_UTC;
        task.updated_at = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        let mut written = Vec::new();
        write_task(&task, true, &mut written).expect("written");
        let mut reference = Vec::new();
        json::write(&task, COLUMN_FIELDS, &mut reference).expect("reference");
        assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&reference));
    }

    #[test]
    fn metrics_are_written_as_json_write_writes_them() {
        let mut metrics = ProcessingMetrics::default();
        check_metrics(&metrics);
        metrics = ProcessingMetrics {
            total_items: u64::MAX,
            processed_items: 3,
            failed_items: 1,
            retried_items: 2,
            skipped_items: 4,
            start_time: Some(at(0, 0)),
            end_time: Some(at(1, 500_000_000)),
            duration: Duration::new(1, 500_001_000),
        };
        check_metrics(&metrics);
    }

    /// `task`'s record read back here and through serde (with its column fields put back).
    fn read_both(task: &BatchTask, record: &str) -> (Option<BatchTask>, Result<BatchTask, String>) {
        let fast = read_task(task.id, task.task_type.as_str(), task.status.as_str(), record);
        let columns = format!(
            r#"{{"id":"{}","task_type":"{}","status":"{}",{}"#,
            task.id,
            task.task_type.as_str(),
            task.status.as_str(),
            record.strip_prefix('{').unwrap_or(record)
        );
        (fast, serde_json::from_str(&columns).map_err(|error| error.to_string()))
    }

    fn record_of(task: &BatchTask) -> String {
        let mut written = Vec::new();
        write_task(task, true, &mut written).expect("written");
        String::from_utf8(written).expect("UTF-8")
    }

    #[test]
    fn a_record_in_this_layout_reads_back_as_serde_reads_it_and_any_other_is_left_to_serde() {
        let new = task_with([false; 12], (0, 0.0, 0), "");
        let record = record_of(&new);
        assert_eq!(read_task(new.id, "stored", "pending", &record).as_ref(), Some(&new));
        // Everything but the progress's rarer parts: read here too.
        let mut full = task_with([true; 12], (u64::MAX, 1e300, u32::MAX), "in \"quoted\"\n\u{1}é");
        full.progress = task_with(
            [false, false, true, false, false, false, false, false, false, false, false, false],
            (9, 0.0, 7),
            "",
        )
        .progress;
        let (fast, serde) = read_both(&full, &record_of(&full));
        assert_eq!(fast.as_ref(), Some(&full));
        assert_eq!(serde.as_ref(), Ok(&full));

        // Other layouts, and values serde refuses or reads its own way: never read here.
        let others = [
            record.replacen(r#"{"config":{"#, r#"{ "config":{"#, 1),
            record.replacen(r#""max_retries":3"#, r#""max_retries":03"#, 1),
            record.replacen(r#""max_retries":3"#, r#""max_retries":-0"#, 1),
            record.replacen(r#""max_retries":3"#, r#""max_retries":3.0"#, 1),
            record.replacen(r#""max_retries":3"#, r#""max_retries":101"#, 1),
            record.replacen(r#""timeout":"30s""#, r#""timeout":30000"#, 1),
            record.replacen(r#""timeout":"30s""#, r#""timeout":"3\u0030s""#, 1),
            record.replacen(r#""timeout":"30s""#, r#""timeout":"soon""#, 1),
            record.replacen(r#""durability":"process""#, r#""durability":"disk""#, 1),
            record.replacen(r#""params":{}"#, r#""params":{},"extra":1"#, 1),
            record.replacen(r#""attempt":1"#, r#""attempt":4294967296"#, 1),
            record.replacen(r#""attempts":[]"#, r#""attempts":[1]"#, 1),
            record.replacen(r#"Z","updated_at""#, r#"+00:00","updated_at""#, 1),
            format!("{record} "),
            format!("{record}}}"),
            record.replacen(r#"{"config":"#, r#"{"params":{},"config":"#, 1),
        ];
        for other in others {
            assert_ne!(other, record);
            let (fast, serde) = read_both(&new, &other);
            assert_eq!(fast, None, "{other}");
            // What serde makes of it stands (read or refused), as the store's fallback.
            let _ = serde;
        }
        // A type or status the columns cannot hold: serde's error, not a task.
        assert_eq!(read_task(new.id, "Bad Name", "pending", &record), None);
        assert_eq!(read_task(new.id, "stored", "sleeping", &record), None);
    }

    proptest! {
        #[test]
        fn any_record_read_here_is_what_serde_reads(
            knobs in any::<[bool; 12]>(),
            number in any::<u64>(),
            float in any::<f64>().prop_filter("finite: a task's floats read back", |float| float.is_finite()),
            small in any::<u32>(),
            text in ".{0,12}",
        ) {
            let task = task_with(knobs, (number, float, small), &text);
            let (fast, serde) = read_both(&task, &record_of(&task));
            prop_assert_eq!(serde.as_ref(), Ok(&task));
            // Read here unless its progress has one of the rarer parts.
            let rare = task.progress.percentage.is_some() || task.progress.message.is_some()
                || task.progress.throughput.is_some() || task.progress.eta.is_some();
            prop_assert_eq!(fast.is_some(), !rare);
            if let Some(fast) = fast {
                prop_assert_eq!(fast, task);
            }
        }

        #[test]
        fn any_task_is_written_as_json_write_writes_it(
            knobs in any::<[bool; 12]>(),
            number in any::<u64>(),
            float in any::<f64>().prop_filter("finite: a task's floats read back", |float| float.is_finite()),
            small in any::<u32>(),
            text in ".{0,12}",
        ) {
            check(&task_with(knobs, (number, float, small), &text));
        }
    }
}
