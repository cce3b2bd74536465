//! The SQL behind each store operation, run on the writer thread inside its group transaction:
//! loading and saving task rows, checkpoints and results, listings, claim candidates and metrics.

use std::str::FromStr;
use std::time::Duration;

use batch_model::{
    BatchMetrics, BatchTask, ListTasksRequest, ProcessingMetrics, StatusCount, TaskId, TaskStatus, TaskType,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::error::{corrupt_record, sqlite_error};
use crate::store::rules::TaskRow;
use crate::store::{Checkpoint, StoreError, TaskPage, TaskResultRecord, WorkerId};
use crate::store::{json, record};

/// The columns [`StoredRow::read`] reads, in its order.
const ROW_COLUMNS: &str =
    "record, lease_owner, lease_expires_at, stop_requested, epoch, lost_leases, waiting";

/// A `tasks` row as read, before its record is parsed.
struct StoredRow {
    record: String,
    lease_owner: Option<String>,
    lease_expires: Option<i64>,
    stop_requested: bool,
    epoch: i64,
    lost_leases: i64,
    waiting: bool,
}

impl StoredRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
        Ok(StoredRow {
            record: row.get(0)?,
            lease_owner: row.get(1)?,
            lease_expires: row.get(2)?,
            stop_requested: row.get(3)?,
            epoch: row.get(4)?,
            lost_leases: row.get(5)?,
            waiting: row.get(6)?,
        })
    }
}

/// The write connection, with what its errors need to say where and how long they waited.
#[derive(Debug)]
pub(super) struct Db {
    pub(super) conn: Connection,
    pub(super) location: String,
    pub(super) busy_timeout: Duration,
}

fn seconds_and_nanos(run_time: Option<Duration>) -> (Option<i64>, Option<i64>) {
    match run_time {
        Some(run_time) => (
            Some(i64::try_from(run_time.as_secs()).unwrap_or(i64::MAX)),
            Some(i64::from(run_time.subsec_nanos())),
        ),
        None => (None, None),
    }
}

/// The two queries of [`Db::oldest_claimable`] for `types` task types (`?1` to `?types`; the
/// abandoned-task query binds the store's time after them): the oldest pending task, and the oldest
/// processing task with no live lease.
///
/// `INDEXED BY tasks_by_status`: the rows of one status in claim order, so the first row of a
/// wanted type is the answer. Left to itself, SQLite picks `tasks_by_type` for the `IN` and walks
/// every finished task of the type before the first pending one: a claim then costs a scan of the
/// table (10,000 tasks in a worker loop took a minute). A test counts a claim's steps beside many
/// finished tasks.
fn claim_queries(types: usize) -> (String, String) {
    let type_filter = if types == 0 {
        String::new()
    } else {
        let placeholders: Vec<String> = (1..=types).map(|idx| format!("?{idx}")).collect();
        format!("AND task_type IN ({})", placeholders.join(", "))
    };
    let now = format!("?{}", types + 1);
    let pending = format!(
        "SELECT created_at, id FROM tasks INDEXED BY tasks_by_status WHERE status = 'pending' {type_filter} \
         ORDER BY created_at, id LIMIT 1"
    );
    let abandoned = format!(
        "SELECT created_at, id FROM tasks INDEXED BY tasks_by_status WHERE status = 'processing' AND waiting = 0 \
         AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < {now}) {type_filter} \
         ORDER BY created_at, id LIMIT 1"
    );
    (pending, abandoned)
}

impl Db {
    /// Maps a SQLite error met while `doing` something.
    pub(super) fn error(&self, doing: &str, error: rusqlite::Error) -> StoreError {
        sqlite_error(&self.location, doing, self.busy_timeout, error)
    }

    /// `value` as JSON text, without the struct fields that are `None` (`store::skip_nulls`).
    fn write_json<T: serde::Serialize>(&self, what: &str, value: &T) -> Result<String, StoreError> {
        json::to_string(value).map_err(|source| self.unwritable(what, source))
    }

    /// A task's record: [`Db::write_json`]'s text, written field by field (`store::record`).
    fn write_task_json(&self, task: &BatchTask) -> Result<String, StoreError> {
        let mut out = Vec::with_capacity(512);
        record::write_task(task, false, &mut out)
            .and_then(|()| json::into_string(out))
            .map_err(|source| self.unwritable("the task", source))
    }

    /// A result's metrics, as [`Db::write_task_json`] writes a task.
    fn write_metrics_json(&self, metrics: &ProcessingMetrics) -> Result<String, StoreError> {
        let mut out = Vec::with_capacity(192);
        record::write_metrics(metrics, &mut out);
        json::into_string(out).map_err(|source| self.unwritable("the metrics", source))
    }

    fn unwritable(&self, what: &str, source: json::JsonError) -> StoreError {
        StoreError::Storage {
            location: self.location.clone(),
            message: format!("{what} cannot be written as JSON ({source})"),
            source: Some(Box::new(source)),
        }
    }

    fn parse_json<T: serde::de::DeserializeOwned>(&self, what: &str, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|source| corrupt_record(&self.location, what, source))
    }

    /// Inserts a new task; `Duplicate` if the id exists.
    pub(super) fn insert(&self, task: &BatchTask) -> Result<(), StoreError> {
        let row = TaskRow::new(task.clone());
        let record = self.write_task_json(&row.task)?;
        let (run_seconds, run_nanos) = seconds_and_nanos(row.run_time());
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO tasks (id, task_type, status, created_at, lease_owner, lease_expires_at, \
                 stop_requested, run_seconds, run_nanos, record, parent_id) \
                 VALUES (?1, ?2, ?3, ?4, NULL, NULL, 0, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    task.id.to_string(),
                    task.task_type.as_str(),
                    task.status.as_str(),
                    crate::store::rules::time_key(task.created_at),
                    run_seconds,
                    run_nanos,
                    record,
                    task.parent_id.map(|parent_id| parent_id.to_string()),
                ])
            })
            .map_err(|error| self.error("inserting a task", error))?;
        if inserted == 0 {
            return Err(StoreError::Duplicate { id: task.id });
        }
        Ok(())
    }

    /// The task's row, if it exists.
    pub(super) fn load(&self, id: &TaskId) -> Result<Option<TaskRow>, StoreError> {
        let stored = self
            .conn
            .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM tasks WHERE id = ?1"))
            .and_then(|mut statement| statement.query_row([id.to_string()], StoredRow::read).optional())
            .map_err(|error| self.error("reading a task", error))?;
        stored.map(|stored| self.row_of(stored)).transpose()
    }

    /// The rows of the partitions of `parent_id`.
    pub(super) fn load_children(&self, parent_id: &TaskId) -> Result<Vec<TaskRow>, StoreError> {
        let stored: Vec<StoredRow> = self
            .conn
            .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM tasks WHERE parent_id = ?1"))
            .and_then(|mut statement| {
                statement.query_map([parent_id.to_string()], StoredRow::read)?.collect()
            })
            .map_err(|error| self.error("reading the partitions of a task", error))?;
        stored.into_iter().map(|stored| self.row_of(stored)).collect()
    }

    /// Whether `parent_id` has partitions.
    pub(super) fn has_children(&self, parent_id: &TaskId) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = ?1)")
            .and_then(|mut statement| statement.query_row([parent_id.to_string()], |row| row.get(0)))
            .map_err(|error| self.error("reading the partitions of a task", error))
    }

    fn row_of(&self, stored: StoredRow) -> Result<TaskRow, StoreError> {
        let task: BatchTask = self.parse_json("the record of a task", &stored.record)?;
        Ok(TaskRow {
            task,
            lease_owner: stored.lease_owner.map(WorkerId),
            lease_expires: stored.lease_expires,
            stop_requested: stored.stop_requested,
            epoch: u64::try_from(stored.epoch).unwrap_or(0),
            lost_leases: u32::try_from(stored.lost_leases).unwrap_or(u32::MAX),
            waiting: stored.waiting,
        })
    }

    /// SQLite's count of commits by *other* connections to the file (`PRAGMA data_version`): it changes
    /// when another process wrote.
    pub(super) fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .map_err(|error| self.error("reading the data version", error))
    }

    /// The task's row; `NotFound` if it does not exist.
    pub(super) fn load_existing(&self, id: &TaskId) -> Result<TaskRow, StoreError> {
        self.load(id)?.ok_or(StoreError::NotFound { id: *id })
    }

    /// Saves a changed row: status, lease, stop flag, run time and record.
    pub(super) fn save(&self, row: &TaskRow) -> Result<(), StoreError> {
        let record = self.write_task_json(&row.task)?;
        let (run_seconds, run_nanos) = seconds_and_nanos(row.run_time());
        self.conn
            .prepare_cached(
                "UPDATE tasks SET status = ?2, lease_owner = ?3, lease_expires_at = ?4, stop_requested = ?5, \
                 run_seconds = ?6, run_nanos = ?7, record = ?8, epoch = ?9, lost_leases = ?10, waiting = ?11 \
                 WHERE id = ?1",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    row.task.id.to_string(),
                    row.task.status.as_str(),
                    row.lease_owner.as_ref().map(|worker| worker.0.as_str()),
                    row.lease_expires,
                    row.stop_requested,
                    run_seconds,
                    run_nanos,
                    record,
                    i64::try_from(row.epoch).unwrap_or(i64::MAX),
                    i64::from(row.lost_leases),
                    row.waiting,
                ])
            })
            .map_err(|error| self.error("saving a task", error))?;
        Ok(())
    }

    /// Saves only the lease of a row whose record did not change (heartbeat, release).
    pub(super) fn save_lease(&self, row: &TaskRow) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE tasks SET lease_owner = ?2, lease_expires_at = ?3 WHERE id = ?1")
            .and_then(|mut statement| {
                statement.execute(params![
                    row.task.id.to_string(),
                    row.lease_owner.as_ref().map(|worker| worker.0.as_str()),
                    row.lease_expires,
                ])
            })
            .map_err(|error| self.error("renewing a lease", error))?;
        Ok(())
    }

    /// One page of tasks, newest first, and the number of matching tasks.
    pub(super) fn list(&self, request: &ListTasksRequest) -> Result<TaskPage, StoreError> {
        let mut filters = Vec::new();
        let mut values = Vec::new();
        if let Some(status) = request.status {
            values.push(Value::Text(status.as_str().to_owned()));
            filters.push(format!("status = ?{}", values.len()));
        }
        if let Some(task_type) = &request.task_type {
            values.push(Value::Text(task_type.as_str().to_owned()));
            filters.push(format!("task_type = ?{}", values.len()));
        }
        if let Some(parent_id) = &request.parent_id {
            values.push(Value::Text(parent_id.to_string()));
            filters.push(format!("parent_id = ?{}", values.len()));
        }
        let filter =
            if filters.is_empty() { String::new() } else { format!("WHERE {}", filters.join(" AND ")) };
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM tasks {filter}"))
            .and_then(|mut statement| statement.query_row(params_from_iter(&values), |row| row.get(0)))
            .map_err(|error| self.error("counting tasks", error))?;
        let page_sql = format!(
            "SELECT id, record FROM tasks {filter} ORDER BY created_at DESC, id DESC LIMIT ?{} OFFSET ?{}",
            values.len() + 1,
            values.len() + 2
        );
        values.push(Value::Integer(i64::from(request.limit)));
        values.push(Value::Integer(i64::try_from(request.offset).unwrap_or(i64::MAX)));
        let records: Vec<(String, String)> = self
            .conn
            .prepare_cached(&page_sql)
            .and_then(|mut statement| {
                statement
                    .query_map(params_from_iter(&values), |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .map_err(|error| self.error("listing tasks", error))?;
        let tasks = records
            .iter()
            .map(|(id, record)| self.parse_json(&format!("the record of task {id}"), record))
            .collect::<Result<Vec<BatchTask>, StoreError>>()?;
        Ok(TaskPage { tasks, total: u64::try_from(total).unwrap_or(0) })
    }

    /// The oldest claimable task of one of `task_types` (any when empty) at `now_key`: the older of
    /// the oldest `pending` task and the oldest `processing` task with no live lease. The conditions
    /// are those of [`TaskRow::is_claimable`].
    pub(super) fn oldest_claimable(
        &self,
        task_types: &[TaskType],
        now_key: i64,
    ) -> Result<Option<TaskId>, StoreError> {
        let type_values: Vec<Value> =
            task_types.iter().map(|task_type| Value::Text(task_type.as_str().to_owned())).collect();
        let mut abandoned_values = type_values.clone();
        abandoned_values.push(Value::Integer(now_key));
        let (pending, abandoned) = claim_queries(task_types.len());
        let mut oldest: Option<(i64, String)> = None;
        for (sql, values) in [(pending, type_values), (abandoned, abandoned_values)] {
            let candidate: Option<(i64, String)> = self
                .conn
                .prepare_cached(&sql)
                .and_then(|mut statement| {
                    statement
                        .query_row(params_from_iter(&values), |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()
                })
                .map_err(|error| self.error("finding a task to claim", error))?;
            if let Some(candidate) = candidate
                && oldest.as_ref().is_none_or(|oldest| candidate < *oldest)
            {
                oldest = Some(candidate);
            }
        }
        oldest
            .map(|(_, id)| {
                TaskId::from_str(&id).map_err(|source| corrupt_record(&self.location, "a task id", source))
            })
            .transpose()
    }

    /// The task's last checkpoint.
    pub(super) fn checkpoint(&self, id: &TaskId) -> Result<Option<Checkpoint>, StoreError> {
        let record: Option<String> = self
            .conn
            .prepare_cached("SELECT record FROM checkpoints WHERE task_id = ?1")
            .and_then(|mut statement| statement.query_row([id.to_string()], |row| row.get(0)).optional())
            .map_err(|error| self.error("reading a checkpoint", error))?;
        record.map(|record| self.parse_json(&format!("the checkpoint of task {id}"), &record)).transpose()
    }

    /// The sequence of the task's last checkpoint.
    pub(super) fn checkpoint_sequence(&self, id: &TaskId) -> Result<Option<u64>, StoreError> {
        let sequence: Option<i64> = self
            .conn
            .prepare_cached("SELECT sequence FROM checkpoints WHERE task_id = ?1")
            .and_then(|mut statement| statement.query_row([id.to_string()], |row| row.get(0)).optional())
            .map_err(|error| self.error("reading a checkpoint", error))?;
        Ok(sequence.map(|sequence| u64::try_from(sequence).unwrap_or(0)))
    }

    /// Replaces the task's checkpoint.
    pub(super) fn save_checkpoint(&self, id: &TaskId, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let record = self.write_json("the checkpoint", checkpoint)?;
        self.conn
            .prepare_cached(
                "INSERT INTO checkpoints (task_id, sequence, record) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (task_id) DO UPDATE SET sequence = excluded.sequence, record = excluded.record",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    id.to_string(),
                    i64::try_from(checkpoint.sequence).unwrap_or(i64::MAX),
                    record
                ])
            })
            .map_err(|error| self.error("writing a checkpoint", error))?;
        Ok(())
    }

    /// The finished task's result.
    pub(super) fn result(&self, id: &TaskId) -> Result<Option<TaskResultRecord>, StoreError> {
        let stored: Option<(String, String)> = self
            .conn
            .prepare_cached("SELECT result, metrics FROM results WHERE task_id = ?1")
            .and_then(|mut statement| {
                statement.query_row([id.to_string()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
            })
            .map_err(|error| self.error("reading a result", error))?;
        let Some((result, metrics)) = stored else {
            return Ok(None);
        };
        Ok(Some(TaskResultRecord {
            result: self.parse_json(&format!("the result of task {id}"), &result)?,
            metrics: self.parse_json(&format!("the metrics of task {id}"), &metrics)?,
        }))
    }

    /// Stores the finished task's result.
    pub(super) fn save_result(&self, id: &TaskId, record: &TaskResultRecord) -> Result<(), StoreError> {
        let result = self.write_json("the result", &record.result)?;
        let metrics = self.write_metrics_json(&record.metrics)?;
        self.conn
            .prepare_cached(
                "INSERT INTO results (task_id, result, metrics) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (task_id) DO UPDATE SET result = excluded.result, metrics = excluded.metrics",
            )
            .and_then(|mut statement| statement.execute(params![id.to_string(), result, metrics]))
            .map_err(|error| self.error("writing a result", error))?;
        Ok(())
    }

    /// Counts by status and run times, by SQL aggregates; the same numbers as
    /// [`BatchMetrics::from_tasks`] over every task.
    pub(super) fn metrics(&self) -> Result<BatchMetrics, StoreError> {
        let groups: Vec<(String, i64, i64, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT status, COUNT(*), COALESCE(SUM(run_seconds), 0), COALESCE(SUM(run_nanos), 0), \
                 COUNT(run_seconds) FROM tasks GROUP BY status",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                    })?
                    .collect()
            })
            .map_err(|error| self.error("computing metrics", error))?;
        let counts = groups
            .into_iter()
            .map(|(status, count, seconds, nanos, timed)| {
                let status = TaskStatus::from_str(&status)
                    .map_err(|source| corrupt_record(&self.location, "a task status", source))?;
                let run_time = Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
                    .saturating_add(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)));
                Ok(StatusCount {
                    status,
                    tasks: u64::try_from(count).unwrap_or(0),
                    timed_tasks: u64::try_from(timed).unwrap_or(0),
                    run_time,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(BatchMetrics::from_counts(counts))
    }
}

#[cfg(test)]
mod tests {
    use batch_model::{CreateTaskRequest, TaskStatus, TaskType};
    use rusqlite::StatementStatus;

    use super::*;
    use crate::store::sqlite::SqliteOptions;
    use crate::store::sqlite::schema::open;

    /// A claim reads a few index entries, not the finished tasks before the claimable one: its two
    /// queries' virtual-machine steps stay small beside 20,000 finished tasks of the same type (a
    /// walk of `tasks_by_type` or of the table takes several steps per finished task).
    #[test]
    fn a_claim_does_not_walk_the_finished_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("tasks.db"), &SqliteOptions::default()).unwrap();
        let created = chrono::Utc::now();
        db.conn.execute_batch("BEGIN").unwrap();
        for idx in 0..20_000i64 {
            let request = CreateTaskRequest::new(TaskType::YouzanOrder);
            let at = created + chrono::Duration::milliseconds(idx);
            let mut task = BatchTask::new(TaskId::new(), request, at).unwrap();
            task.status = TaskStatus::Completed;
            db.insert(&task).unwrap();
        }
        let pending = BatchTask::new(
            TaskId::new(),
            CreateTaskRequest::new(TaskType::YouzanOrder),
            created + chrono::Duration::seconds(60),
        )
        .unwrap();
        db.insert(&pending).unwrap();
        db.conn.execute_batch("COMMIT").unwrap();

        let types = [TaskType::YouzanOrder];
        let now_key = crate::store::rules::time_key(created + chrono::Duration::seconds(120));
        assert_eq!(db.oldest_claimable(&types, now_key).unwrap(), Some(pending.id));
        let (pending_sql, abandoned_sql) = claim_queries(types.len());
        for sql in [pending_sql, abandoned_sql] {
            // The statement `oldest_claimable` ran, from the cache, with its counters.
            let statement = db.conn.prepare_cached(&sql).unwrap();
            let steps = statement.get_status(StatementStatus::VmStep);
            let full_scan_steps = statement.get_status(StatementStatus::FullscanStep);
            assert!(steps < 500, "{steps} steps for {sql}");
            assert_eq!(full_scan_steps, 0, "{sql}");
        }
    }
}
