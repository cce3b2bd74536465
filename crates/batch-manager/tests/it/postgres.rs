//! The PostgreSQL store's own behaviour (feature `postgres`): migrations under concurrent connects,
//! clear connection errors, leases on the database's clock, epochs, the change feed across a server
//! restart, bulk inserts, batched claims, and claims that stay cheap beside many finished tasks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::postgres::{PgOptions, PgStore, StoreEvent, TaskChange};
use batch_manager::store::{StoreError, TaskOutcome, TaskStore};
use batch_model::{BatchTask, ErrorCode, ProcessingMetrics, Progress, TaskId, TaskStatus, TaskType};
use batch_testkit::{PgCluster, StopMode, pg_required, shared_or_skip};
use chrono::{TimeDelta, Utc};
use tokio::sync::broadcast;

use crate::fixtures::{lease, pg, task_at, task_of, worker};

async fn epoch_of(cluster: &PgCluster, dbname: &str, id: &TaskId) -> i64 {
    let client = cluster.connect(dbname).await.unwrap();
    client
        .query_one("SELECT epoch FROM batch.tasks WHERE id = $1::text::uuid", &[&id.to_string()])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_on_an_empty_database_migrate_it_once() {
    let Some(cluster) = shared_or_skip("concurrent_connects_on_an_empty_database_migrate_it_once") else {
        return;
    };
    let database = cluster.create_database().await.unwrap();
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = database.url.clone();
        connects.spawn(async move {
            PgStore::connect(&url, PgOptions { listen: false, ..PgOptions::default() }).await
        });
    }
    let stores: Vec<PgStore> = connects.join_all().await.into_iter().map(Result::unwrap).collect();
    assert_eq!(stores.len(), 6);
    let client = cluster.connect(&database.name).await.unwrap();
    let versions: Vec<i64> = client
        .query("SELECT version FROM batch.schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1]);
    // Only the schema `batch` was created: the user's `public` schema stays empty.
    let public: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(public, 0);
    let task = task_at(Utc::now());
    stores[0].insert_task(&task).await.unwrap();
    assert_eq!(stores[5].task(&task.id).await.unwrap(), Some(task));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(cluster) = shared_or_skip("a_newer_schema_is_refused") else { return };
    let database = cluster.create_database().await.unwrap();
    drop(PgStore::connect(&database.url, PgOptions::default()).await.unwrap());
    let client = cluster.connect(&database.name).await.unwrap();
    client.batch_execute("INSERT INTO batch.schema_migrations (version) VALUES (99)").await.unwrap();
    let error = PgStore::connect(&database.url, PgOptions::default()).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::StorageError);
    let message = error.to_string();
    assert!(message.contains("version 99") && message.contains("newer version of batch"), "{message}");
}

fn storage_message(error: StoreError) -> String {
    assert_eq!(error.code(), ErrorCode::StorageError, "{error}");
    error.to_string()
}

#[tokio::test]
async fn connection_errors_name_the_server_and_what_to_fix_but_never_the_password() {
    let options = PgOptions { connect_timeout: Duration::from_secs(5), ..PgOptions::default() };
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://alice:s3cret-pw@127.0.0.1:{port}/tasks");
    let message = storage_message(PgStore::connect(&url, options.clone()).await.unwrap_err());
    assert!(message.contains(&format!("postgres://alice@127.0.0.1:{port}/tasks")), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(!message.contains("s3cret"), "the password leaked: {message}");

    let message = storage_message(PgStore::connect("postgres://[bad", options.clone()).await.unwrap_err());
    assert!(message.contains("not a valid PostgreSQL URL"), "{message}");

    let Some(cluster) = shared_or_skip("connection_errors_name_the_server_and_what_to_fix") else { return };
    let missing = cluster.url("no_such_database_here");
    let message = storage_message(PgStore::connect(&missing, options).await.unwrap_err());
    assert!(message.contains("database no_such_database_here does not exist"), "{message}");
}

#[tokio::test]
async fn leases_are_judged_by_the_database_clock_and_every_claim_bumps_the_epoch() {
    let Some(cluster) = shared_or_skip("leases_are_judged_by_the_database_clock") else { return };
    let database = cluster.create_database().await.unwrap();
    let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let task = task_at(Utc::now());
    store.insert_task(&task).await.unwrap();

    let before = store.database_time().await.unwrap();
    // The caller's `now` is ignored: a claimer whose clock is a year behind still gets a 30 s lease
    // from the database's time.
    let claimed =
        store.claim_task(&task.id, &lease("a", Utc::now() - TimeDelta::days(365))).await.unwrap().unwrap();
    let after = store.database_time().await.unwrap();
    let started = claimed.task.started_at.unwrap();
    assert!(before <= started && started <= after, "{before} <= {started} <= {after}");
    assert_eq!(claimed.lease.expires_at - started, TimeDelta::seconds(30));
    assert_eq!(started.timestamp_subsec_nanos() % 1000, 0, "microsecond resolution");
    assert_eq!(epoch_of(cluster, &database.name, &task.id).await, 1);

    // A claimer whose clock is an hour ahead cannot take the task over: the lease is alive on the
    // database's clock.
    let ahead = lease("b", Utc::now() + TimeDelta::hours(1));
    assert!(store.claim_task(&task.id, &ahead).await.unwrap().is_none());
    assert!(store.claim_next(&[], &ahead).await.unwrap().is_none());

    // 31 s later on the database's clock it has lapsed: b takes it over, and the epoch moves on.
    store.clock().advance(TimeDelta::seconds(31));
    let taken = store.claim_next(&[], &lease("b", Utc::now() - TimeDelta::days(365))).await.unwrap().unwrap();
    assert!(taken.resumed);
    assert_eq!(taken.lease.worker, worker("b"));
    assert_eq!(epoch_of(cluster, &database.name, &task.id).await, 2);
    let error = store.heartbeat(&task.id, &lease("a", Utc::now())).await.unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");
}

fn outcome(status: TaskStatus) -> TaskOutcome {
    TaskOutcome {
        status,
        error: None,
        result: serde_json::json!({ "done": true }),
        progress: Progress::zero(Utc::now()),
        metrics: ProcessingMetrics::default(),
        at: Utc::now(),
    }
}

/// The next `Changed` event within 10 s, skipping resyncs.
async fn next_change(events: &mut broadcast::Receiver<StoreEvent>) -> TaskChange {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.unwrap() {
                StoreEvent::Changed(change) => return change,
                StoreEvent::Resync => {}
            }
        }
    })
    .await
    .expect("a task change within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_reports_changes_and_survives_a_server_restart() {
    let cluster = match PgCluster::start() {
        Ok(cluster) => cluster,
        Err(error) if error.is_not_installed() && !pg_required() => {
            shared_or_skip("the_change_feed_reports_changes_and_survives_a_server_restart");
            return;
        }
        Err(error) => panic!("{error}"),
    };
    let database = cluster.create_database().await.unwrap();
    let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    assert!(store.is_listening());
    let mut events = store.subscribe();

    let task = task_at(Utc::now());
    store.insert_task(&task).await.unwrap();
    assert_eq!(next_change(&mut events).await, TaskChange { id: task.id, status: TaskStatus::Pending });
    store.claim_task(&task.id, &lease("a", Utc::now())).await.unwrap().unwrap();
    store.release_task(&task.id, &worker("a"), Utc::now()).await.unwrap();
    assert_eq!(next_change(&mut events).await, TaskChange { id: task.id, status: TaskStatus::Processing });

    // A fast restart: the listener reconnects and says to look again; the store works again.
    cluster.stop(StopMode::Fast).unwrap();
    cluster.start_again().unwrap();
    let resync = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(StoreEvent::Resync) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(resync.is_ok(), "a resync after the listener reconnected");
    assert!(store.is_listening());
    let claimed = store.claim_next(&[], &lease("b", Utc::now())).await.unwrap().unwrap();
    assert_eq!(claimed.task.id, task.id);
    store.finish_task(&task.id, &worker("b"), &outcome(TaskStatus::Completed)).await.unwrap();
    assert_eq!(next_change(&mut events).await, TaskChange { id: task.id, status: TaskStatus::Completed });

    let stopped = task_at(Utc::now());
    store.insert_task(&stopped).await.unwrap();
    assert_eq!(next_change(&mut events).await.status, TaskStatus::Pending);
    store.request_stop(&stopped.id, Utc::now()).await.unwrap();
    assert_eq!(next_change(&mut events).await, TaskChange { id: stopped.id, status: TaskStatus::Cancelled });
}

#[tokio::test]
async fn bulk_inserts_report_each_task_and_claim_many_takes_the_oldest() {
    let Some(store) = pg::store("bulk_inserts_report_each_task_and_claim_many_takes_the_oldest").await else {
        return;
    };
    let base = Utc::now();
    // Small batches go through one INSERT, large ones through COPY; both report duplicates per task.
    for count in [10_usize, 1500] {
        let mut tasks: Vec<BatchTask> =
            (0..count).map(|idx| task_at(base + TimeDelta::milliseconds(idx as i64))).collect();
        store.insert_task(&tasks[3]).await.unwrap();
        let repeated = tasks[5].clone();
        tasks.push(repeated);
        let outcomes = store.insert_tasks(&tasks).await;
        assert_eq!(outcomes.len(), count + 1);
        for (idx, outcome) in outcomes.iter().enumerate() {
            if idx == 3 || idx == count {
                assert!(matches!(outcome, Err(StoreError::Duplicate { .. })), "{idx}: {outcome:?}");
            } else {
                assert!(outcome.is_ok(), "{idx}: {outcome:?}");
            }
        }
        let claimed = store.claim_many(&[], &lease("a", Utc::now()), 7).await.unwrap();
        let ids: Vec<TaskId> = claimed.iter().map(|claim| claim.task.id).collect();
        let oldest: Vec<TaskId> = tasks[..7].iter().map(|task| task.id).collect();
        assert_eq!(ids, oldest);
        for claim in claimed {
            store.finish_task(&claim.task.id, &worker("a"), &outcome(TaskStatus::Completed)).await.unwrap();
        }
        // Finish the rest, so the next round starts with nothing pending.
        loop {
            let claimed = store.claim_many(&[], &lease("a", Utc::now()), 500).await.unwrap();
            if claimed.is_empty() {
                break;
            }
            for claim in claimed {
                store
                    .finish_task(&claim.task.id, &worker("a"), &outcome(TaskStatus::Completed))
                    .await
                    .unwrap();
            }
        }
    }
    let metrics = store.metrics().await.unwrap();
    assert_eq!((metrics.completed_tasks, metrics.pending_tasks), (1510, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_group_transactions_and_two_stores_never_claim_one_task() {
    let Some(cluster) = shared_or_skip("concurrent_calls_share_group_transactions") else { return };
    let database = cluster.create_database().await.unwrap();
    let stores: Vec<Arc<PgStore>> = vec![
        Arc::new(PgStore::connect(&database.url, PgOptions::default()).await.unwrap()),
        Arc::new(PgStore::connect(&database.url, PgOptions::default()).await.unwrap()),
    ];
    let mut inserts = tokio::task::JoinSet::new();
    for idx in 0..400 {
        let store = Arc::clone(&stores[idx % 2]);
        inserts.spawn(async move { store.insert_task(&task_of(TaskType::Train, Utc::now())).await });
    }
    for inserted in inserts.join_all().await {
        inserted.unwrap();
    }
    let mut workers = tokio::task::JoinSet::new();
    for idx in 0..8 {
        let store = Arc::clone(&stores[idx % 2]);
        workers.spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = store
                    .claim_many(&[TaskType::Train], &lease(&format!("w{idx}"), Utc::now()), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|claim| claim.task.id));
            }
        });
    }
    let all: Vec<TaskId> = workers.join_all().await.into_iter().flatten().collect();
    let distinct: HashSet<TaskId> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (400, 400));
    let stats = stores[0].stats();
    assert!(stats.largest_group > 1, "concurrent calls were grouped: {stats:?}");
    assert_eq!(stats.transactions_failed, 0);
}

/// Claims read only claimable rows: with 300,000 finished tasks in the table, the claim's plan scans
/// the partial index of pending tasks and touches a handful of pages, as it does with none.
#[tokio::test]
async fn claims_stay_cheap_beside_300k_finished_tasks() {
    let Some(cluster) = shared_or_skip("claims_stay_cheap_beside_300k_finished_tasks") else { return };
    let database = cluster.create_database().await.unwrap();
    let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let client = cluster.connect(&database.name).await.unwrap();
    let explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) \
        SELECT t.id FROM batch.tasks t LEFT JOIN batch.checkpoints c ON c.task_id = t.id \
        WHERE t.status = 'pending' AND (NULL::text[] IS NULL OR t.task_type = ANY(NULL::text[])) \
        ORDER BY t.created_key, t.id LIMIT 1 FOR UPDATE OF t SKIP LOCKED";
    let plan = |client: tokio_postgres::Client| async move {
        client.batch_execute("ANALYZE batch.tasks").await.unwrap();
        let row = client.query_one(explain, &[]).await.unwrap();
        let plan: serde_json::Value = row.get(0);
        (plan.to_string(), client)
    };
    let base = Utc::now() - TimeDelta::days(1);
    let pending: Vec<BatchTask> = (0..5).map(|idx| task_at(base + TimeDelta::seconds(idx))).collect();
    store.insert_tasks(&pending).await.into_iter().for_each(|outcome| outcome.unwrap());
    let (few, client) = plan(client).await;

    // 300,000 finished tasks, older than the pending ones, by binary COPY in chunks.
    for chunk in 0..30 {
        let finished: Vec<BatchTask> = (0..10_000)
            .map(|idx| {
                let mut task = task_at(base - TimeDelta::seconds(1 + chunk * 10_000 + idx));
                task.transition(TaskStatus::Cancelled, batch_model::TransitionCause::Requested, base)
                    .unwrap();
                task
            })
            .collect();
        store.insert_tasks(&finished).await.into_iter().for_each(|outcome| outcome.unwrap());
    }
    let (many, _client) = plan(client).await;
    let many: serde_json::Value = serde_json::from_str(&many).unwrap();
    let few: serde_json::Value = serde_json::from_str(&few).unwrap();
    // Every scan of `tasks` is an index scan of the partial index of pending tasks.
    let mut scans = Vec::new();
    scans_of_tasks(&many[0]["Plan"], &mut scans);
    assert_eq!(scans, vec!["Index Scan using tasks_pending".to_owned()], "{many}");
    let buffers = |plan: &serde_json::Value| -> u64 {
        let top = &plan[0]["Plan"];
        top["Shared Hit Blocks"].as_u64().unwrap_or(0) + top["Shared Read Blocks"].as_u64().unwrap_or(0)
    };
    assert!(
        buffers(&many) <= buffers(&few) + 4,
        "pages touched by a claim: {} with 300k finished tasks, {} without",
        buffers(&many),
        buffers(&few)
    );
    let claimed = store.claim_next(&[], &lease("a", Utc::now())).await.unwrap().unwrap();
    assert_eq!(claimed.task.id, pending[0].id);
    assert_eq!(store.metrics().await.unwrap().cancelled_tasks, 300_000);
    drop(store);
    cluster.drop_database(&database.name).await.unwrap();
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

/// Calls that fail and calls that succeed share group transactions: each gets its own answer, and a
/// failing call changes nothing while the others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_in_a_group_leaves_the_others_committed() {
    let Some(store) = pg::store("a_failing_call_in_a_group_leaves_the_others_committed").await else {
        return;
    };
    let store = Arc::new(store);
    let tasks: Vec<BatchTask> =
        (0..200).map(|idx| task_at(Utc::now() + TimeDelta::milliseconds(idx))).collect();
    store.insert_tasks(&tasks).await.into_iter().for_each(|outcome| outcome.unwrap());
    for task in &tasks {
        store.claim_task(&task.id, &lease("a", Utc::now())).await.unwrap().unwrap();
    }
    let mut calls = tokio::task::JoinSet::new();
    for (idx, task) in tasks.iter().enumerate() {
        let store = Arc::clone(&store);
        let task = task.clone();
        calls.spawn(async move {
            match idx % 4 {
                // A duplicate insert, a heartbeat and a finish by a worker that does not hold the task.
                0 => matches!(store.insert_task(&task).await, Err(StoreError::Duplicate { .. })),
                1 => matches!(
                    store.heartbeat(&task.id, &lease("b", Utc::now())).await,
                    Err(StoreError::LeaseLost { .. })
                ),
                2 => matches!(
                    store.finish_task(&task.id, &worker("b"), &outcome(TaskStatus::Completed)).await,
                    Err(StoreError::LeaseLost { .. })
                ),
                // The holder finishes.
                _ => store.finish_task(&task.id, &worker("a"), &outcome(TaskStatus::Completed)).await.is_ok(),
            }
        });
    }
    assert!(calls.join_all().await.into_iter().all(|answered_right| answered_right));
    let metrics = store.metrics().await.unwrap();
    assert_eq!((metrics.completed_tasks, metrics.processing_tasks), (50, 150));
    assert_eq!(store.stats().transactions_failed, 0);
    assert!(store.stats().largest_group > 1, "{:?}", store.stats());
}
