//! Tests of the store's own SQL against a throwaway server: the plans its statements get.

use std::time::Duration;

use batch_model::{BatchTask, CreateTaskRequest, TaskId, TaskStatus, TaskType, TransitionCause};
use chrono::{TimeDelta, Utc};

use super::{GENERIC_PLANS, PgOptions, PgStore, queries};
use crate::store::{LeaseRequest, TaskStore, WorkerId};

fn task(created_at: chrono::DateTime<Utc>, status: TaskStatus) -> BatchTask {
    let mut task = BatchTask::new(TaskId::new(), CreateTaskRequest::new(TaskType::Train), created_at)
        .expect("a valid task");
    if status != TaskStatus::Pending {
        task.transition(status, TransitionCause::Requested, created_at).expect("a valid transition");
    }
    task
}

/// The scans of the table `tasks` in an EXPLAIN plan, as "<node type> using <index>".
fn scans_of_tasks(node: &serde_json::Value, scans: &mut Vec<String>) {
    if node["Relation Name"] == "tasks" {
        let index = node["Index Name"].as_str().unwrap_or("(no index)");
        scans.push(format!("{} using {index}", node["Node Type"].as_str().unwrap_or("?")));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        scans_of_tasks(child, scans);
    }
}

/// The claim statements are planned as ordered scans of their partial indexes whatever the table
/// held when they were planned. A connection plans a statement once, at its first call, and keeps
/// the plan until the table's statistics change: a worker's first claim comes while the table is
/// empty, and planned on that alone, the claim reads and sorts every pending task once thousands
/// arrive (a bitmap scan and a sort, cheaper on an empty table). As the store plans it (generic
/// plans, `CLAIM_PLANS`), a claim of 10 reads a few index pages and rows.
#[tokio::test]
async fn claims_scan_their_partial_index_in_order_whatever_the_table_held_when_planned() {
    let Some(cluster) = batch_testkit::shared_or_skip("claims_scan_their_partial_index_in_order") else {
        return;
    };
    let database = cluster.create_database().await.expect("a database");
    let store = PgStore::connect(&database.url, PgOptions::default()).await.expect("the store");
    let client = cluster.connect(&database.name).await.expect("a connection");
    let setting = GENERIC_PLANS.trim_start_matches("-c ");
    client
        .batch_execute(&format!(
            "SET {setting};
             PREPARE claim_pending(text[], int8, text[]) AS {};
             PREPARE claim_abandoned(text[], int8, text[], timestamptz) AS {};
             BEGIN; {};
             EXECUTE claim_pending('{{train}}', 10, '{{}}');
             EXECUTE claim_abandoned('{{train}}', 10, '{{}}', NULL);
             COMMIT",
            queries::CLAIM_PENDING,
            queries::CLAIM_ABANDONED,
            queries::CLAIM_PLANS
        ))
        .await
        .expect("the claim statements planned on an empty table");

    let base = Utc::now() - TimeDelta::days(1);
    let finished: Vec<BatchTask> =
        (0..2_000).map(|idx| task(base - TimeDelta::seconds(idx + 1), TaskStatus::Cancelled)).collect();
    assert!(store.insert_tasks(&finished).await.iter().all(Result::is_ok));
    let pending: Vec<BatchTask> =
        (0..5_000).map(|idx| task(base + TimeDelta::milliseconds(idx), TaskStatus::Pending)).collect();
    assert!(store.insert_tasks(&pending).await.iter().all(Result::is_ok));

    client.batch_execute(&format!("BEGIN; {}", queries::CLAIM_PLANS)).await.expect("the claim plans");
    for (statement, index) in [
        ("claim_pending(NULL, 10, '{}')", "tasks_pending"),
        ("claim_pending('{train}', 10, '{}')", "tasks_pending"),
        ("claim_abandoned('{train}', 10, '{}', NULL)", "tasks_processing"),
    ] {
        let row = client
            .query_one(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {statement}"), &[])
            .await
            .expect("a plan");
        let plan: serde_json::Value = row.get(0);
        let mut scans = Vec::new();
        scans_of_tasks(&plan[0]["Plan"], &mut scans);
        assert_eq!(scans, vec![format!("Index Scan using {index}")], "{statement}: {plan}");
        let top = &plan[0]["Plan"];
        let pages =
            top["Shared Hit Blocks"].as_u64().unwrap_or(0) + top["Shared Read Blocks"].as_u64().unwrap_or(0);
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
