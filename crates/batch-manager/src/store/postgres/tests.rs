//! Tests of the store's own SQL against a throwaway server: the plans its statements get, and
//! databases made by earlier schema versions migrated with nothing lost.

use std::time::Duration;

use batch_model::{
    BatchTask, Checkpoint, Counters, CreateTaskRequest, ListTasksRequest, ProcessingMetrics, Progress,
    TaskId, TaskStatus, TaskType, TransitionCause,
};
use chrono::{TimeDelta, Utc};
use tokio_postgres::types::Json;

use super::{GENERIC_PLANS, PgOptions, PgStore, queries, schema};
use crate::store::{LeaseRequest, StoreError, TaskStore, WorkerId};

fn task(created_at: chrono::DateTime<Utc>, status: TaskStatus) -> BatchTask {
    let mut task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), created_at)
        .expect("a valid task");
    if matches!(status, TaskStatus::Completed | TaskStatus::Failed) {
        task.transition(TaskStatus::Processing, TransitionCause::Requested, created_at).expect("started");
    }
    if status != TaskStatus::Pending {
        task.transition(status, TransitionCause::Requested, created_at).expect("a valid transition");
    }
    task
}

/// A store on a new database of the shared cluster and a connection of its own that planned
/// `statements` on the empty table, as the store plans (`GENERIC_PLANS`).
struct Planned {
    cluster: &'static batch_testkit::PgCluster,
    database: batch_testkit::TestDatabase,
    store: PgStore,
    client: tokio_postgres::Client,
}

async fn planned_on_an_empty_table(test: &str, statements: &str) -> Option<Planned> {
    let cluster = batch_testkit::shared_or_skip(test)?;
    let database = cluster.create_database().await.expect("a database");
    let store = PgStore::connect(&database.url, PgOptions::default()).await.expect("the store");
    let client = cluster.connect(&database.name).await.expect("a connection");
    let setting = GENERIC_PLANS.trim_start_matches("-c ");
    client
        .batch_execute(&format!("SET {setting}; {statements}"))
        .await
        .expect("the statements planned on an empty table");
    Some(Planned { cluster, database, store, client })
}

/// What `EXPLAIN ANALYZE` says of an `EXECUTE`: the plan, the scans of the table `tasks` (as
/// "<node type> using <index>") with how many times each ran, and the pages the statement read.
struct Explained {
    plan: serde_json::Value,
    scans: Vec<String>,
    loops: Vec<u64>,
    pages: u64,
}

async fn explain(client: &tokio_postgres::Client, execute: &str) -> Explained {
    let row = client
        .query_one(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {execute}"), &[])
        .await
        .expect("a plan");
    let plan: serde_json::Value = row.get(0);
    let (mut scans, mut loops) = (Vec::new(), Vec::new());
    scans_of_tasks(&plan[0]["Plan"], &mut scans, &mut loops);
    let top = &plan[0]["Plan"];
    let pages =
        top["Shared Hit Blocks"].as_u64().unwrap_or(0) + top["Shared Read Blocks"].as_u64().unwrap_or(0);
    Explained { plan, scans, loops, pages }
}

fn scans_of_tasks(node: &serde_json::Value, scans: &mut Vec<String>, loops: &mut Vec<u64>) {
    if node["Relation Name"] == "tasks" {
        let index = node["Index Name"].as_str().unwrap_or("(no index)");
        scans.push(format!("{} using {index}", node["Node Type"].as_str().unwrap_or("?")));
        loops.push(node["Actual Loops"].as_u64().unwrap_or(0));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans_of_tasks(child, scans, loops);
    }
}

/// The scans of the three status indexes that together cover every task, in a plan's order, as
/// [`scans_of_tasks`] names them (`node`: "Index Scan" or "Index Only Scan").
fn status_index_scans(node: &str) -> Vec<String> {
    ["tasks_pending", "tasks_processing", "tasks_finished"]
        .map(|index| format!("{node} using {index}"))
        .to_vec()
}

/// 5,000 tasks created a millisecond apart from a day ago, their statuses taken from `statuses` in
/// turn.
fn interleaved(statuses: &[TaskStatus]) -> Vec<BatchTask> {
    let base = Utc::now() - TimeDelta::days(1);
    (0..5_000_usize)
        .map(|idx| task(base + TimeDelta::milliseconds(idx as i64), statuses[idx % statuses.len()]))
        .collect()
}

/// The claim statements are planned as ordered scans of their partial indexes whatever the table
/// held when they were planned. A connection plans a statement once, at its first call, and keeps
/// the plan until the table's statistics change: a worker's first claim comes while the table is
/// empty, and planned on that alone, the claim reads and sorts every pending task once thousands
/// arrive (a bitmap scan and a sort, cheaper on an empty table). As the store plans it (generic
/// plans, `INDEX_PLANS`), a claim of 10 reads a few index pages and rows.
#[tokio::test]
async fn claims_scan_their_partial_index_in_order_whatever_the_table_held_when_planned() {
    let statements = format!(
        "PREPARE claim_pending(text[], int8, uuid[]) AS {};
         PREPARE claim_abandoned(text[], int8, uuid[], timestamptz) AS {};
         BEGIN; {};
         EXECUTE claim_pending('{{train}}', 10, '{{}}');
         EXECUTE claim_abandoned('{{train}}', 10, '{{}}', NULL);
         COMMIT",
        queries::CLAIM_PENDING,
        queries::CLAIM_ABANDONED,
        queries::INDEX_PLANS
    );
    let Some(Planned { cluster, database, store, client }) =
        planned_on_an_empty_table("claims_scan_their_partial_index_in_order", &statements).await
    else {
        return;
    };

    let base = Utc::now() - TimeDelta::days(1);
    let finished: Vec<BatchTask> =
        (0..2_000).map(|idx| task(base - TimeDelta::seconds(idx + 1), TaskStatus::Cancelled)).collect();
    assert!(store.insert_tasks(&finished).await.iter().all(Result::is_ok));
    let pending: Vec<BatchTask> =
        (0..5_000).map(|idx| task(base + TimeDelta::milliseconds(idx), TaskStatus::Pending)).collect();
    assert!(store.insert_tasks(&pending).await.iter().all(Result::is_ok));

    client.batch_execute(&format!("BEGIN; {}", queries::INDEX_PLANS)).await.expect("the claim plans");
    for (statement, index) in [
        ("claim_pending(NULL, 10, '{}')", "tasks_pending"),
        ("claim_pending('{train}', 10, '{}')", "tasks_pending"),
        ("claim_abandoned('{train}', 10, '{}', NULL)", "tasks_processing"),
    ] {
        let Explained { plan, scans, pages, .. } = explain(&client, statement).await;
        assert_eq!(scans, vec![format!("Index Scan using {index}")], "{statement}: {plan}");
        assert!(pages < 50, "{statement} touched {pages} pages to lock 10 of 5,000 pending tasks: {plan}");
    }
    client.batch_execute("ROLLBACK").await.expect("the end of the transaction");
    let lease = LeaseRequest::new(WorkerId("w".to_owned()), Duration::from_secs(30));
    let claimed = store.claim_many(&[TaskType::Train], &lease, 3).await.expect("claims");
    let ids: Vec<TaskId> = claimed.iter().map(|claim| claim.task.id).collect();
    assert_eq!(ids, pending[..3].iter().map(|task| task.id).collect::<Vec<_>>());
    drop(store);
    cluster.drop_database(&database.name).await.expect("the database dropped");
}

/// A listing reads the three partial indexes that together cover every task (pending, processing,
/// finished: no index holds every task, so that claims and ends write fewer index entries) and
/// merges them, whatever the table held when it was planned: planned on an empty table as the
/// store plans (generically), a page of 20 of 5,000 tasks is three backward index scans that read
/// a few pages, for every status filter (under `INDEX_PLANS`: without it the finished tasks are read
/// by a bitmap scan and sorted); the scans a status rules out are never run; a count by status
/// reads the three indexes alone; and the store's pages and counts, deep pages and filtered counts
/// included, are those of a sort of every task.
#[tokio::test]
async fn listings_merge_the_partial_indexes_in_order_whatever_the_table_held_when_planned() {
    let statements = format!(
        "PREPARE page(text, text, uuid, int8, int8, int8) AS {};
         PREPARE count_by_status(text) AS {};
         BEGIN; {};
         EXECUTE page(NULL, NULL, NULL, 20, 0, 20);
         EXECUTE count_by_status(NULL);
         COMMIT",
        queries::LIST_TASKS,
        queries::COUNT_BY_STATUS,
        queries::INDEX_PLANS
    );
    let Some(Planned { cluster, database, store, client }) =
        planned_on_an_empty_table("listings_merge_the_partial_indexes", &statements).await
    else {
        return;
    };

    let tasks = interleaved(&[
        TaskStatus::Completed,
        TaskStatus::Pending,
        TaskStatus::Failed,
        TaskStatus::Processing,
        TaskStatus::Cancelled,
    ]);
    assert!(store.insert_tasks(&tasks).await.iter().all(Result::is_ok));

    client.batch_execute(&format!("BEGIN; {}", queries::INDEX_PLANS)).await.expect("the listing's plans");
    let all_three = status_index_scans("Index Scan");
    for (arguments, run) in [
        ("NULL, NULL, NULL, 20, 0, 20", [true, true, true]),
        ("'pending', NULL, NULL, 20, 0, 20", [true, false, false]),
        ("'failed', 'train', NULL, 20, 0, 20", [false, false, true]),
    ] {
        let Explained { plan, scans, loops, pages } = explain(&client, &format!("page({arguments})")).await;
        assert_eq!(scans, all_three, "{arguments}: {plan}");
        assert_eq!(loops, run.map(u64::from).to_vec(), "the scans run for {arguments}: {plan}");
        assert!(
            pages < 50,
            "a page of ({arguments}) touched {pages} pages of a table of 5,000 tasks: {plan}"
        );
    }
    client.batch_execute("ROLLBACK").await.expect("the end of the transaction");

    // Counts without a type or parent filter read the three indexes alone once the table is
    // vacuumed (as autovacuum does): a small part of the table's pages.
    client.batch_execute("VACUUM batch.tasks").await.expect("the table vacuumed");
    let table_pages: i64 = client
        .query_one("SELECT pg_relation_size('batch.tasks') / 8192", &[])
        .await
        .expect("the table's size")
        .get(0);
    client.batch_execute(&format!("BEGIN; {}", queries::INDEX_PLANS)).await.expect("the count's plans");
    let index_only = status_index_scans("Index Only Scan");
    for (argument, run) in [("NULL", [true, true, true]), ("'failed'", [false, false, true])] {
        let Explained { plan, scans, loops, pages } =
            explain(&client, &format!("count_by_status({argument})")).await;
        assert_eq!(scans, index_only, "{argument}: {plan}");
        assert_eq!(loops, run.map(u64::from).to_vec(), "the scans run for {argument}: {plan}");
        assert!(
            i64::try_from(pages).unwrap_or(i64::MAX).saturating_mul(5) < table_pages,
            "a count of ({argument}) read {pages} pages of a table of {table_pages}: {plan}"
        );
    }
    client.batch_execute("ROLLBACK").await.expect("the end of the transaction");

    let mut newest_first: Vec<&BatchTask> = tasks.iter().collect();
    newest_first.sort_by_key(|task| std::cmp::Reverse((task.created_at, task.id)));
    for (status, offset) in [
        (None, 0),
        (None, 2_490),
        (None, 4_990),
        (Some(TaskStatus::Failed), 990),
        (Some(TaskStatus::Processing), 0),
        (Some(TaskStatus::Pending), 5_000),
    ] {
        let request = ListTasksRequest { status, task_type: None, parent_id: None, limit: 20, offset };
        let page = store.list_tasks(&request).await.expect("a page");
        let matching: Vec<TaskId> = newest_first
            .iter()
            .filter(|task| status.is_none_or(|status| task.status == status))
            .map(|task| task.id)
            .collect();
        let expected: Vec<TaskId> = matching.iter().skip(offset as usize).take(20).copied().collect();
        let listed: Vec<TaskId> = page.tasks.iter().map(|task| task.id).collect();
        assert_eq!(listed, expected, "{status:?} from {offset}");
        assert_eq!(page.total, matching.len() as u64, "{status:?}");
    }
    drop(store);
    cluster.drop_database(&database.name).await.expect("the database dropped");
}

/// The store's own connections run listings and claims as the ordered index scans the plan tests
/// above check, whatever the table held when they first ran: with `auto_explain` loaded for the
/// test's database alone, the plans the server logs for the store's statements (its first listing
/// and claim on an empty table, the next ones on 5,000 tasks) are read back from the cluster's log.
/// The tests above plan the store's statements on a connection of their own; this one fails when
/// the store's listing stops setting `INDEX_PLANS` (its finished tasks are then read by a bitmap
/// scan). A claim planned on an empty table here gets the ordered scan with or without the
/// settings; the statistics that make it need them are the claims' plan test's.
#[tokio::test]
async fn the_store_s_own_listings_and_claims_run_the_ordered_plans() {
    // A cluster of the test's own: the shared one may be a server the harness started elsewhere,
    // whose log the test cannot read.
    let Some(cluster) = batch_testkit::own_or_skip("the_store_s_own_listings_and_claims") else {
        return;
    };
    let Some(log) = cluster.log_path() else {
        panic!("a cluster of the test's own is local, so its log can be read");
    };
    let database = cluster.create_database().await.expect("a database");
    let client = cluster.connect(&database.name).await.expect("a connection");
    let name = &database.name;
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" SET session_preload_libraries = 'auto_explain';
             ALTER DATABASE \"{name}\" SET auto_explain.log_min_duration = 0;
             ALTER DATABASE \"{name}\" SET auto_explain.log_format = 'json'"
        ))
        .await
        .expect("auto_explain for the test's database");
    // One connection for the listings and one for the claims' groups, so that the statements run
    // on 5,000 tasks use the plans made on the empty table.
    let options = PgOptions { max_connections: 2, writers: 1, listen: false, ..PgOptions::default() };
    let store = PgStore::connect(&database.url, options).await.expect("the store");
    let first_page = ListTasksRequest { limit: 20, ..ListTasksRequest::default() };
    let lease = LeaseRequest::new(WorkerId("w".to_owned()), Duration::from_secs(30));
    store.list_tasks(&first_page).await.expect("a listing of an empty table");
    assert!(store.claim_many(&[], &lease, 10).await.expect("a claim of nothing").is_empty());

    let tasks = interleaved(&[TaskStatus::Completed, TaskStatus::Pending, TaskStatus::Failed]);
    assert!(store.insert_tasks(&tasks).await.iter().all(Result::is_ok));
    let logged_from = std::fs::metadata(log).expect("the cluster's log").len();
    assert_eq!(store.list_tasks(&first_page).await.expect("a listing").tasks.len(), 20);
    assert_eq!(store.claim_many(&[], &lease, 10).await.expect("a claim").len(), 10);
    drop(store);

    let text = std::fs::read(log).expect("the cluster's log");
    let start = usize::try_from(logged_from).unwrap_or(usize::MAX).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    let plans: Vec<serde_json::Value> = text
        .match_indices("plan:")
        .filter_map(|(at, marker)| {
            serde_json::Deserializer::from_str(&text[at + marker.len()..])
                .into_iter::<serde_json::Value>()
                .next()
                .and_then(Result::ok)
        })
        .collect();
    let scans_of = |query: &str| -> Vec<Vec<String>> {
        plans
            .iter()
            .filter(|plan| plan["Query Text"].as_str() == Some(query))
            .map(|plan| {
                let (mut scans, mut loops) = (Vec::new(), Vec::new());
                scans_of_tasks(&plan["Plan"], &mut scans, &mut loops);
                scans
            })
            .collect()
    };
    let listing = status_index_scans("Index Scan");
    assert_eq!(scans_of(queries::LIST_TASKS), vec![listing], "the listing's plan in {text}");
    let claim = vec!["Index Scan using tasks_pending".to_owned()];
    assert_eq!(scans_of(queries::CLAIM_PENDING), vec![claim], "the claim's plan in {text}");
}

/// Builds the schema as the released migrations `1..=version` left it, as a build of that version
/// made it.
async fn schema_at(client: &tokio_postgres::Client, version: usize) {
    client
        .batch_execute(
            "CREATE SCHEMA batch;
             CREATE TABLE batch.schema_migrations (
                 version    int8        NOT NULL PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .expect("the schema");
    for (idx, migration) in schema::MIGRATIONS[..version].iter().enumerate() {
        client.batch_execute(migration).await.expect("a released migration");
        let number = idx as i64 + 1;
        client
            .execute("INSERT INTO batch.schema_migrations (version) VALUES ($1)", &[&number])
            .await
            .expect("its version");
    }
}

/// A store connected to a database of an older schema, which it migrated to the current version.
async fn migrated(database: &batch_testkit::TestDatabase, client: &tokio_postgres::Client) -> PgStore {
    let store = PgStore::connect(&database.url, PgOptions::default()).await.expect("migrated");
    let version: i64 = client
        .query_one("SELECT max(version) FROM batch.schema_migrations", &[])
        .await
        .expect("the version")
        .get(0);
    assert_eq!(version, schema::SCHEMA_VERSION);
    store
}

fn saved_checkpoint(sequence: u64) -> Checkpoint {
    Checkpoint {
        sequence,
        source: serde_json::json!({ "line": sequence * 10 }),
        sink: serde_json::json!({ "bytes": sequence * 100 }),
        counters: Counters { processed: sequence * 10, ..Counters::default() },
        state: serde_json::Value::Null,
        committed_at: Utc::now(),
    }
}

/// A database that only migration 1 made, with a processing task and its checkpoint, is migrated:
/// the task is taken over from its checkpoint, and the sequence moved beside the row.
#[tokio::test]
async fn a_database_of_schema_version_1_is_migrated_and_keeps_its_tasks_and_checkpoints() {
    let Some(cluster) = batch_testkit::shared_or_skip("a_database_of_schema_version_1_is_migrated") else {
        return;
    };
    let database = cluster.create_database().await.expect("a database");
    let client = cluster.connect(&database.name).await.expect("a connection");
    schema_at(&client, 1).await;
    let mut task = task(Utc::now(), TaskStatus::Pending);
    task.transition(TaskStatus::Processing, TransitionCause::Requested, Utc::now()).expect("started");
    client
        .execute(
            "INSERT INTO batch.tasks (id, task_type, status, created_key, epoch, lease_owner, lease_expires_at, record)
             VALUES ($1::text::uuid, 'train', 'processing', 1, 4, 'gone', now() - interval '1 hour', $2)",
            &[&task.id.to_string(), &Json(&task)],
        )
        .await
        .expect("a v1 task");
    let saved = saved_checkpoint(3);
    client
        .execute(
            "INSERT INTO batch.checkpoints (task_id, sequence, record) VALUES ($1::text::uuid, 3, $2)",
            &[&task.id.to_string(), &Json(&saved)],
        )
        .await
        .expect("a v1 checkpoint");

    let store = migrated(&database, &client).await;
    let lease = LeaseRequest::new(WorkerId("b".to_owned()), Duration::from_secs(30));
    let taken = store.claim_next(&[], &lease).await.expect("a claim").expect("the task");
    assert_eq!((taken.task.id, taken.lease.epoch, taken.resumed), (task.id, 5, true));
    assert_eq!(taken.checkpoint, Some(saved));
    // The sequence moved beside the row: the next checkpoint must be 4.
    let progress = Progress::compute(Some(10), 1, 0, 0, Duration::from_secs(1));
    let error = store
        .commit_checkpoint(&task.id, &taken.lease.holder(), &saved_checkpoint(3), &progress)
        .await
        .expect_err("an old sequence");
    assert!(matches!(error, StoreError::CheckpointOutOfOrder { expected: 4, got: 3, .. }), "{error:?}");
    store
        .commit_checkpoint(&task.id, &taken.lease.holder(), &saved_checkpoint(4), &progress)
        .await
        .expect("the next checkpoint");
    drop(store);
    cluster.drop_database(&database.name).await.expect("the database dropped");
}

/// A database of schema version 2 (results in their own table, records as `json`, foreign keys)
/// with finished, running and pending tasks, checkpoints, results and an audit trail is migrated to
/// version 3 with nothing lost: every record, result, checkpoint and event reads back as written,
/// the running task is taken over from its checkpoint, the pending one is claimed, and new events
/// follow the old ones.
#[tokio::test]
async fn a_database_of_schema_version_2_is_migrated_with_nothing_lost() {
    let Some(cluster) = batch_testkit::shared_or_skip("a_database_of_schema_version_2_is_migrated") else {
        return;
    };
    let database = cluster.create_database().await.expect("a database");
    let client = cluster.connect(&database.name).await.expect("a connection");
    schema_at(&client, 2).await;
    let started = Utc::now() - TimeDelta::hours(2);
    let mut finished = task(started, TaskStatus::Pending);
    finished.transition(TaskStatus::Processing, TransitionCause::Requested, started).expect("started");
    finished.transition(TaskStatus::Completed, TransitionCause::Requested, Utc::now()).expect("completed");
    let mut running = task(started + TimeDelta::seconds(1), TaskStatus::Pending);
    running.transition(TaskStatus::Processing, TransitionCause::Requested, started).expect("started");
    let pending = task(started + TimeDelta::seconds(2), TaskStatus::Pending);
    let insert = "INSERT INTO batch.tasks (id, task_type, status, created_key, epoch, lease_owner, \
                  lease_expires_at, run_nanos, checkpoint_seq, record) \
                  VALUES ($1::text::uuid, 'train', $2, $3, $4, $5, now() - interval '1 hour', $6, $7, $8)";
    for (task, key, epoch, owner, run_nanos, sequence) in [
        (&finished, 1_i64, 1_i64, None, Some(5_000_i64), Some(2_i64)),
        (&running, 2, 3, Some("gone"), None, Some(7)),
        (&pending, 3, 0, None, None, None),
    ] {
        client
            .execute(
                insert,
                &[
                    &task.id.to_string(),
                    &task.status.as_str(),
                    &key,
                    &epoch,
                    &owner,
                    &run_nanos,
                    &sequence,
                    &Json(task),
                ],
            )
            .await
            .expect("a v2 task");
    }
    let (finished_checkpoint, running_checkpoint) = (saved_checkpoint(2), saved_checkpoint(7));
    for (task, checkpoint) in [(&finished, &finished_checkpoint), (&running, &running_checkpoint)] {
        client
            .execute(
                "INSERT INTO batch.checkpoints (task_id, sequence, record) VALUES ($1::text::uuid, $2, $3)",
                &[&task.id.to_string(), &(checkpoint.sequence as i64), &Json(checkpoint)],
            )
            .await
            .expect("a v2 checkpoint");
    }
    let result = serde_json::json!({ "rows": 20, "files": ["a", "b"] });
    let metrics = ProcessingMetrics { processed_items: 20, total_items: 20, ..ProcessingMetrics::default() };
    client
        .execute(
            "INSERT INTO batch.results (task_id, result, metrics) VALUES ($1::text::uuid, $2, $3)",
            &[&finished.id.to_string(), &Json(&result), &Json(&metrics)],
        )
        .await
        .expect("a v2 result");
    client
        .execute(
            "INSERT INTO batch.task_events (task_id, epoch, worker, event, sequence, at) VALUES
                 ($1::text::uuid, 1, 'a', 'claimed', NULL, now() - interval '2 hours'),
                 ($1::text::uuid, 1, 'a', 'completed', 2, now() - interval '1 hour'),
                 ($2::text::uuid, 3, 'gone', 'claimed', 6, now() - interval '2 hours')",
            &[&finished.id.to_string(), &running.id.to_string()],
        )
        .await
        .expect("a v2 audit trail");

    let store = migrated(&database, &client).await;
    for task in [&finished, &running, &pending] {
        assert_eq!(store.task(&task.id).await.expect("a read").as_ref(), Some(task));
    }
    let stored = store.task_result(&finished.id).await.expect("a read").expect("the result");
    assert_eq!((stored.result, stored.metrics), (result, metrics));
    assert_eq!(store.task_result(&running.id).await.expect("a read"), None);
    assert_eq!(store.checkpoint(&finished.id).await.expect("a read"), Some(finished_checkpoint));
    let metrics_now = store.metrics().await.expect("metrics");
    assert_eq!((metrics_now.completed_tasks, metrics_now.pending_tasks), (1, 1));
    let kinds = |events: Vec<super::TaskEvent>| -> Vec<(&'static str, u64)> {
        events.into_iter().map(|event| (event.kind.as_str(), event.epoch)).collect()
    };
    assert_eq!(
        kinds(store.task_events(&finished.id).await.expect("events")),
        vec![("claimed", 1), ("completed", 1)]
    );

    let lease = LeaseRequest::new(WorkerId("b".to_owned()), Duration::from_secs(30));
    let claimed = store.claim_many(&[], &lease, 5).await.expect("claims");
    let taken: Vec<(TaskId, u64, Option<Checkpoint>)> =
        claimed.iter().map(|claim| (claim.task.id, claim.lease.epoch, claim.checkpoint.clone())).collect();
    assert_eq!(taken, vec![(running.id, 4, Some(running_checkpoint)), (pending.id, 1, None)]);
    assert_eq!(
        kinds(store.task_events(&running.id).await.expect("events")),
        vec![("claimed", 3), ("claimed", 4)]
    );

    // A process of a schema-3 build still connected (it checked the version when it connected)
    // cannot change a row without bumping its version: its writes name the renamed column and fail.
    let schema_3_lease_update = "UPDATE batch.tasks AS t \
        SET lease_owner = u.lease_owner, lease_expires_at = u.lease_expires_at \
        FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, lease_owner, lease_expires_at) \
        WHERE t.id = u.id::uuid";
    let ids = vec![running.id.to_string()];
    let owners = vec![Some("old")];
    let expiries = vec![Some(Utc::now())];
    let refused =
        client.execute(schema_3_lease_update, &[&ids, &owners, &expiries]).await.expect_err("refused");
    assert_eq!(refused.code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_COLUMN), "{refused}");
    drop(store);
    cluster.drop_database(&database.name).await.expect("the database dropped");
}

/// A database of schema version 4 (an index of every task for listings; waiting parents outside
/// `tasks_processing`) is migrated to version 5 and on: the tasks list as before, newest first,
/// for every status; the indexes are the three partial ones of the statuses and the one of
/// partitions; a claim takes the abandoned task and the pending one, not the parent waiting for its
/// partitions; and the old records (whole tasks) read as they are beside those written since
/// (without the fields the columns hold).
#[tokio::test]
async fn a_database_of_schema_version_4_is_migrated_to_partial_listing_indexes() {
    let Some(cluster) = batch_testkit::shared_or_skip("a_database_of_schema_version_4_is_migrated") else {
        return;
    };
    let database = cluster.create_database().await.expect("a database");
    let client = cluster.connect(&database.name).await.expect("a connection");
    schema_at(&client, 4).await;
    let started = Utc::now() - TimeDelta::hours(2);
    let completed = task(started, TaskStatus::Completed);
    let waiting = task(started + TimeDelta::seconds(1), TaskStatus::Processing);
    let abandoned = task(started + TimeDelta::seconds(2), TaskStatus::Processing);
    let pending = task(started + TimeDelta::seconds(3), TaskStatus::Pending);
    let insert = "INSERT INTO batch.tasks (id, task_type, status, created_key, epoch, holder, lease_expires_at, \
                  waiting, record) VALUES ($1, 'train', $2, $3, $4, $5, now() - interval '1 hour', $6, $7)";
    for (task, key, epoch, holder, is_waiting) in [
        (&completed, 1_i64, 1_i64, None, false),
        (&waiting, 2, 1, None, true),
        (&abandoned, 3, 2, Some("gone"), false),
        (&pending, 4, 0, None, false),
    ] {
        let record = serde_json::to_string(task).expect("a record");
        client
            .execute(
                insert,
                &[
                    &super::encoding::Uuid(task.id),
                    &task.status.as_str(),
                    &key,
                    &epoch,
                    &holder,
                    &is_waiting,
                    &record,
                ],
            )
            .await
            .expect("a v4 task");
    }

    let store = migrated(&database, &client).await;
    let indexes: Vec<String> = client
        .query("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'batch' AND tablename = 'tasks' ORDER BY 1", &[])
        .await
        .expect("the indexes")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        indexes,
        ["tasks_by_parent", "tasks_finished", "tasks_pending", "tasks_pkey", "tasks_processing"]
    );
    for (status, expected) in [
        (None, vec![pending.id, abandoned.id, waiting.id, completed.id]),
        (Some(TaskStatus::Processing), vec![abandoned.id, waiting.id]),
        (Some(TaskStatus::Completed), vec![completed.id]),
    ] {
        let request = ListTasksRequest { status, task_type: None, parent_id: None, limit: 10, offset: 0 };
        let page = store.list_tasks(&request).await.expect("a page");
        assert_eq!(page.tasks.iter().map(|task| task.id).collect::<Vec<_>>(), expected, "{status:?}");
    }

    let lease = LeaseRequest::new(WorkerId("b".to_owned()), Duration::from_secs(30));
    let claimed = store.claim_many(&[], &lease, 5).await.expect("claims");
    let taken: Vec<(TaskId, u64)> = claimed.iter().map(|claim| (claim.task.id, claim.lease.epoch)).collect();
    assert_eq!(taken, vec![(abandoned.id, 3), (pending.id, 1)]);
    // Records of the old schemas (the whole task, with its id, type and status) read as they are;
    // the claims wrote records of schema 6, without them, which read back from the columns.
    assert_eq!(store.task(&completed.id).await.expect("a read"), Some(completed.clone()));
    let record: String = client
        .query_one("SELECT record FROM batch.tasks WHERE id = $1", &[&super::encoding::Uuid(pending.id)])
        .await
        .expect("the claimed task's record")
        .get(0);
    assert!(record.starts_with(r#"{"config":"#), "{record}");
    let read = store.task(&pending.id).await.expect("a read").expect("the claimed task");
    assert_eq!((read.id, read.task_type, read.status), (pending.id, TaskType::Train, TaskStatus::Processing));
    drop(store);
    cluster.drop_database(&database.name).await.expect("the database dropped");
}

/// A store's transaction left idle (its process paused while it holds a group's row locks) is
/// ended by the server after `idle_transaction_timeout`: the locks go, so another worker can take
/// the tasks over, and the paused connection's next statement fails as connection trouble (its
/// group is then asked about and tried again, never half-applied).
#[tokio::test]
async fn a_transaction_left_idle_is_ended_and_its_row_locks_released() {
    let Some(cluster) = batch_testkit::shared_or_skip("a_transaction_left_idle_is_ended") else {
        return;
    };
    let database = cluster.create_database().await.expect("a database");
    let options = PgOptions { idle_transaction_timeout: Duration::from_millis(500), ..PgOptions::default() };
    let store = PgStore::connect(&database.url, options).await.expect("the store");
    let pending = task(Utc::now(), TaskStatus::Pending);
    assert!(store.insert_tasks(std::slice::from_ref(&pending)).await.iter().all(Result::is_ok));

    let paused = store.client().await.expect("a pooled connection");
    paused
        .batch_execute(&format!("BEGIN; SELECT 1 FROM batch.tasks WHERE id = '{}' FOR UPDATE", pending.id))
        .await
        .expect("the row locked");
    // Another session waits for the row (no SKIP LOCKED), at most 30 s: it gets it once the
    // server has ended the idle transaction, long before.
    let other = cluster.connect(&database.name).await.expect("a connection");
    let started = std::time::Instant::now();
    other
        .batch_execute(&format!(
            "SET lock_timeout = '30s'; BEGIN; SELECT 1 FROM batch.tasks WHERE id = '{}' FOR UPDATE; COMMIT",
            pending.id
        ))
        .await
        .expect("the row, once the idle transaction is gone");
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    let error = paused.batch_execute("SELECT 1").await.expect_err("the paused session was ended");
    assert!(
        super::writer::is_connection_trouble(&error) || error.is_closed(),
        "not taken for connection trouble: {error:?}"
    );
}

/// A store opens its writer lanes when it connects (the first groups find their connections made
/// and their statements prepared), and a server that cannot give it as many connections fails the
/// connect with a clear error rather than the first groups.
#[tokio::test]
async fn a_store_opens_its_writer_lanes_when_it_connects() {
    let Some(cluster) = batch_testkit::shared_or_skip("a_store_opens_its_writer_lanes_when_it_connects")
    else {
        return;
    };
    let admin = cluster.connect("postgres").await.expect("a connection");
    let connections = |database: String| {
        let admin = &admin;
        async move {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'batch'",
                    &[&database],
                )
                .await
                .expect("the server's sessions");
            row.get::<_, i64>(0)
        }
    };
    let database = cluster.create_database().await.expect("a database");
    let options = PgOptions { writers: 3, listen: false, ..PgOptions::default() };
    let store = PgStore::connect(&database.url, options.clone()).await.expect("the store");
    // The migration's connection is one of the three.
    assert_eq!(connections(database.name.clone()).await, 3);
    drop(store);
    // A handle that makes its connections as it needs them keeps only the migration's.
    let other = cluster.create_database().await.expect("a database");
    let lazy = PgOptions { open_writers_at_connect: false, ..options.clone() };
    let store = PgStore::connect(&other.url, lazy).await.expect("the store");
    assert_eq!(connections(other.name.clone()).await, 1);
    drop(store);
    cluster.drop_database(&other.name).await.expect("the database dropped");
    cluster.drop_database(&database.name).await.expect("the database dropped");

    // Roles allowed two connections, each owning a database of its own (one each: the sessions of
    // a failed connect end after it returns, and would count against a second connect's limit).
    let limited = |lanes: usize| {
        let admin = &admin;
        async move {
            let database = cluster.create_database().await.expect("a database");
            let role = format!("{}_lanes", database.name);
            admin
                .batch_execute(&format!(
                    "CREATE ROLE \"{role}\" LOGIN CONNECTION LIMIT 2; ALTER DATABASE \"{}\" OWNER TO \"{role}\"",
                    database.name
                ))
                .await
                .expect("a role with a connection limit");
            let url = database.url.replacen("://postgres@", &format!("://{role}@"), 1);
            assert_ne!(url, database.url, "the test cluster's URL names the user postgres: {}", database.url);
            let options = PgOptions { writers: lanes, listen: false, ..PgOptions::default() };
            let connected = PgStore::connect(&url, options).await;
            (database, role, connected)
        }
    };
    let (three, three_role, connected) = limited(3).await;
    let message = connected.expect_err("three lanes for a role allowed two").to_string();
    assert!(message.contains("no free connection slots") && message.contains("53300"), "{message}");
    let (two, two_role, connected) = limited(2).await;
    let store = connected.expect("two lanes for a role allowed two");
    assert_eq!(connections(two.name.clone()).await, 2);
    drop(store);
    for (database, role) in [(three, three_role), (two, two_role)] {
        cluster.drop_database(&database.name).await.expect("the database dropped");
        admin.batch_execute(&format!("DROP ROLE \"{role}\"")).await.expect("the role dropped");
    }
}

/// Notifications: every line on the channel of all changes, the claimable ones on the claimable
/// channel too, the ends on the ended channel too, resyncs on all three; packed into payloads under
/// the limit, a resync always a payload of its own.
#[test]
fn notifications_go_to_their_channels_packed_and_resyncs_alone() {
    use super::listener::{AlsoOn, Notifications};
    let line = |n: usize| format!("{n:0>36} pending 1");
    let (neither, claimable_too, ended_too) = (
        AlsoOn::default(),
        AlsoOn { claimable: true, ended: false },
        AlsoOn { claimable: false, ended: true },
    );
    let resync = AlsoOn { claimable: true, ended: true };
    let lines = vec![
        (line(1), claimable_too),
        (line(2), neither),
        (line(4), ended_too),
        ("*".to_owned(), resync),
        (line(3), claimable_too),
    ];
    let notifications = Notifications::of(lines);
    let sent: Vec<(&str, &str)> = notifications
        .channels
        .iter()
        .copied()
        .zip(notifications.payloads.iter().map(String::as_str))
        .collect();
    let (all, claimable, ended) = (queries::CHANNEL, queries::CLAIMABLE_CHANNEL, queries::ENDED_CHANNEL);
    let first_three = format!("{}\n{}\n{}", line(1), line(2), line(4));
    let (one, three, four) = (line(1), line(3), line(4));
    assert_eq!(
        sent,
        vec![
            (all, first_three.as_str()),
            (claimable, one.as_str()),
            (ended, four.as_str()),
            (all, "*"),
            (claimable, "*"),
            (all, three.as_str()),
            (claimable, three.as_str()),
            // A channel's last payload is sent at the end: each channel keeps its own order.
            (ended, "*"),
        ]
    );
    // Many lines: payloads under PostgreSQL's 8,000 bytes, every line sent once per channel.
    let many =
        Notifications::of((0..1_000).map(|n| (line(n), AlsoOn { claimable: n % 2 == 0, ended: n % 4 == 1 })));
    assert!(many.payloads.iter().all(|payload| payload.len() < 8_000));
    let count = |channel: &str| -> usize {
        many.channels
            .iter()
            .zip(&many.payloads)
            .filter(|(sent_on, _)| **sent_on == channel)
            .map(|(_, payload)| payload.lines().count())
            .sum()
    };
    assert_eq!((count(all), count(claimable), count(ended)), (1_000, 500, 250));
    assert!(Notifications::of(Vec::new()).is_empty());
}

/// A task change's line goes to the narrower channels its change calls for.
#[test]
fn a_change_goes_to_the_claimable_channel_when_claimable_and_to_the_ended_one_when_it_ended() {
    use super::listener::Notifications;
    use crate::store::TaskChange;
    let id = TaskId::new();
    let channels_of = |status: TaskStatus, claimable: bool| {
        Notifications::of_changes([TaskChange::Task { id, status, claimable }]).channels
    };
    let (all, claimable, ended) = (queries::CHANNEL, queries::CLAIMABLE_CHANNEL, queries::ENDED_CHANNEL);
    assert_eq!(channels_of(TaskStatus::Pending, true), vec![all, claimable]);
    assert_eq!(channels_of(TaskStatus::Processing, false), vec![all]);
    for status in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled] {
        assert_eq!(channels_of(status, false), vec![all, ended], "{status}");
    }
    assert_eq!(Notifications::of_changes([TaskChange::Resync]).channels, vec![all, claimable, ended]);
}
