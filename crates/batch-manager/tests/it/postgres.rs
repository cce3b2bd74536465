//! The PostgreSQL store's own behaviour (feature `postgres`), beyond the conformance suite: migrations
//! under concurrent connects, clear connection errors, leases on the database's clock, the change
//! feed and the store across a server restart, bulk inserts, batched claims, grouped calls, families
//! settled under concurrency, the audit trail, and claims that stay cheap beside many finished tasks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use batch_manager::store::postgres::{Heard, PgOptions, PgStore, TaskEvent, TaskEventKind};
use batch_manager::store::{
    Clock, Holder, LeaseRequest, ManualClock, StoreError, TaskChange, TaskChanges, TaskOutcome, TaskStore,
    WorkerId,
};
use batch_model::{
    BatchTask, Checkpoint, Counters, ErrorCode, Partition, ProcessingMetrics, Progress, TaskId, TaskStatus,
    TaskType,
};
use batch_testkit::{PgCluster, StopMode, pg_required, shared_or_skip};
use chrono::{TimeDelta, Utc};

use crate::fixtures::{TTL, lease, pg, task_at, task_of, worker};

async fn epoch_of(cluster: &PgCluster, dbname: &str, id: &TaskId) -> i64 {
    let client = cluster.connect(dbname).await.unwrap();
    client
        .query_one("SELECT epoch FROM batch.tasks WHERE id = $1::text::uuid", &[&id.to_string()])
        .await
        .unwrap()
        .get(0)
}

fn holder(name: &str, epoch: u64) -> Holder {
    Holder { worker: worker(name), epoch }
}

fn outcome(status: TaskStatus) -> TaskOutcome {
    TaskOutcome {
        status,
        error: None,
        result: serde_json::json!({ "done": true }),
        progress: Progress::zero(Utc::now()),
        metrics: ProcessingMetrics::default(),
    }
}

fn checkpoint(sequence: u64) -> Checkpoint {
    Checkpoint {
        sequence,
        source: serde_json::json!({ "line": sequence * 10 }),
        sink: serde_json::json!({ "bytes": sequence * 100 }),
        counters: Counters { processed: sequence * 10, ..Counters::default() },
        state: serde_json::Value::Null,
        committed_at: Utc::now(),
    }
}

fn progress(processed: u64, total: u64) -> Progress {
    Progress::compute(Some(total), processed, 0, 0, Duration::from_secs(1))
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
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6]);
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

/// Without a clock of its own, the store reads the database's: claims stamp and lease by it, and a
/// lease lapses when the database's time passes its expiry, whatever the worker's clock says.
#[tokio::test]
async fn leases_are_judged_by_the_database_clock_and_every_claim_bumps_the_epoch() {
    let Some(cluster) = shared_or_skip("leases_are_judged_by_the_database_clock") else { return };
    let database = cluster.create_database().await.unwrap();
    let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let task = task_at(Utc::now());
    store.insert_task(&task).await.unwrap();

    let short = Duration::from_millis(300);
    let before = store.now().await.unwrap();
    let claimed = store.claim_task(&task.id, &LeaseRequest::new(worker("a"), short)).await.unwrap().unwrap();
    let after = store.now().await.unwrap();
    let started = claimed.task.started_at.unwrap();
    assert!(before <= started && started <= after, "{before} <= {started} <= {after}");
    assert_eq!(claimed.lease.expires_at - started, TimeDelta::milliseconds(300));
    assert_eq!(started.timestamp_subsec_nanos() % 1000, 0, "microsecond resolution");
    assert_eq!(claimed.lease.epoch, 1);
    assert_eq!(epoch_of(cluster, &database.name, &task.id).await, 1);

    // Another worker gets it only once the database's time is past the expiry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        if let Some(taken) = store.claim_next(&[], &lease("b")).await.unwrap() {
            break taken;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lease never lapsed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(store.now().await.unwrap() > claimed.lease.expires_at);
    assert!(taken.task.updated_at > claimed.lease.expires_at, "taken over after the expiry, on its clock");
    assert!(taken.resumed);
    assert_eq!((taken.lease.worker.clone(), taken.lease.epoch), (worker("b"), 2));
    assert_eq!(epoch_of(cluster, &database.name, &task.id).await, 2);
    let old = claimed.lease.holder();
    let error = store.heartbeat(&task.id, &old, TTL).await.unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");
}

/// A holder's calls start from the store's copy of its task instead of locking and reading the row
/// (schema 4's row version). A copy behind the row — another store requested a stop, took the task
/// over, or gave it to a holder this store has not seen — is never acted on: its update fails,
/// nothing of the group commits, and the call is judged again on the row as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_calls_start_from_the_stores_copy_and_a_copy_behind_the_row_is_never_acted_on() {
    let Some(cluster) = shared_or_skip("holder_calls_start_from_the_stores_copy") else { return };
    let database = cluster.create_database().await.unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let options = || PgOptions { clock: Some(Arc::clone(&clock) as Arc<dyn Clock>), ..PgOptions::default() };
    let a = PgStore::connect(&database.url, options()).await.unwrap();
    let b = PgStore::connect(&database.url, options()).await.unwrap();
    let (stopped, taken) = (task_at(Utc::now()), task_at(Utc::now()));
    a.insert_task(&stopped).await.unwrap();
    a.insert_task(&taken).await.unwrap();

    // Claimed through A: A's heartbeat and checkpoint start from its copy.
    let held = a.claim_task(&stopped.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    a.heartbeat(&stopped.id, &held, TTL).await.unwrap();
    a.commit_checkpoint(&stopped.id, &held, &checkpoint(1), &progress(10, 100)).await.unwrap();
    assert_eq!((a.stats().held_rows_used, a.stats().transactions_retried), (2, 0));

    // B requests a stop: A's copy is behind, its heartbeat is judged on the row and reports the stop,
    // and A's next checkpoint keeps the flag instead of writing its copy's row back.
    b.request_stop(&stopped.id).await.unwrap();
    assert!(a.heartbeat(&stopped.id, &held, TTL).await.unwrap().stop_requested);
    assert_eq!(a.stats().transactions_retried, 1);
    a.commit_checkpoint(&stopped.id, &held, &checkpoint(2), &progress(20, 100)).await.unwrap();
    assert!(a.heartbeat(&stopped.id, &held, TTL).await.unwrap().stop_requested);
    a.finish_task(&stopped.id, &held, &outcome(TaskStatus::Cancelled)).await.unwrap();
    assert_eq!(b.task(&stopped.id).await.unwrap().unwrap().status, TaskStatus::Cancelled);

    // The lease lapses and B takes the other task over: A's copy still says A holds it under epoch 1,
    // and every call of A's stale holder is refused.
    let stale = a.claim_task(&taken.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    a.commit_checkpoint(&taken.id, &stale, &checkpoint(1), &progress(10, 100)).await.unwrap();
    clock.advance(TTL * 2);
    let over = b.claim_task(&taken.id, &lease("b")).await.unwrap().unwrap();
    assert_eq!(over.lease.epoch, 2);
    let retried = a.stats().transactions_retried;
    let error = a.commit_checkpoint(&taken.id, &stale, &checkpoint(2), &progress(20, 100)).await.unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");
    assert_eq!(a.stats().transactions_retried, retried + 1, "refused only on the row as stored");
    let error = a.finish_task(&taken.id, &stale, &outcome(TaskStatus::Completed)).await.unwrap_err();
    assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");
    assert_eq!(epoch_of(cluster, &database.name, &taken.id).await, 2);

    // It lapses again and B gives it to c (epoch 3), whom A's copy (b, epoch 2) does not know: c's
    // calls through A are accepted all the same.
    clock.advance(TTL * 2);
    let c = b.claim_task(&taken.id, &lease("c")).await.unwrap().unwrap().lease.holder();
    assert_eq!(c.epoch, 3);
    a.commit_checkpoint(&taken.id, &c, &checkpoint(2), &progress(20, 100)).await.unwrap();
    a.finish_task(&taken.id, &c, &outcome(TaskStatus::Completed)).await.unwrap();
    let finished = b.task(&taken.id).await.unwrap().unwrap();
    assert_eq!(finished.status, TaskStatus::Completed);
    assert_eq!(b.checkpoint(&taken.id).await.unwrap().map(|saved| saved.sequence), Some(2));

    // The audit trail: the stale holder's refused calls left nothing.
    let trail: Vec<(u64, String, Option<u64>)> = b
        .task_events(&taken.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| matches!(event.kind, TaskEventKind::Checkpoint | TaskEventKind::Completed))
        .map(|event| (event.epoch, event.worker.map(|worker| worker.0).unwrap_or_default(), event.sequence))
        .collect();
    assert_eq!(
        trail,
        vec![(1, "a".to_owned(), Some(1)), (3, "c".to_owned(), Some(2)), (3, "c".to_owned(), Some(2))]
    );
}

/// The next change of task `id` within 10 s, skipping others and resyncs.
async fn next_change(changes: &mut TaskChanges, id: TaskId) -> (TaskStatus, bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match changes.recv().await.unwrap() {
                TaskChange::Task { id: changed, status, claimable } if changed == id => {
                    return (status, claimable);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("a task change within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_and_the_store_survive_a_server_restart_and_calls_wait_for_it() {
    let cluster = match PgCluster::start() {
        Ok(cluster) => cluster,
        Err(error) if error.is_not_installed() && !pg_required() => {
            shared_or_skip("the_feed_and_the_store_survive_a_server_restart");
            return;
        }
        Err(error) => panic!("{error}"),
    };
    let database = cluster.create_database().await.unwrap();
    let store = Arc::new(PgStore::connect(&database.url, PgOptions::default()).await.unwrap());
    assert!(store.is_listening());
    let mut changes = store.subscribe();

    let task = task_at(Utc::now());
    store.insert_task(&task).await.unwrap();
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Pending, true));
    let held = store.claim_task(&task.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Processing, false));
    let saved = checkpoint(1);
    store.commit_checkpoint(&task.id, &held, &saved, &progress(5, 10)).await.unwrap();
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Processing, false), "checkpoints");
    store.update_progress(&task.id, &held, &progress(7, 10)).await.unwrap();
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Processing, false), "progress");
    store.release_task(&task.id, &held).await.unwrap();
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Processing, true));

    // A fast restart. A call made while the server is down waits for it and succeeds once it is back.
    cluster.stop(StopMode::Fast).unwrap();
    let inserted = task_at(Utc::now());
    let waiting = tokio::spawn({
        let store = Arc::clone(&store);
        let inserted = inserted.clone();
        async move { store.insert_task(&inserted).await }
    });
    cluster.start_again().unwrap();
    waiting.await.unwrap().unwrap();
    assert!(store.stats().transactions_retried > 0, "{:?}", store.stats());
    assert_eq!(store.task(&inserted.id).await.unwrap(), Some(inserted));

    // The listener reconnects and says to look again.
    let resync = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(TaskChange::Resync) = changes.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(resync.is_ok(), "a resync after the listener reconnected");
    assert!(store.is_listening());
    let claimed = store.claim_task(&task.id, &lease("b")).await.unwrap().unwrap();
    assert_eq!(claimed.checkpoint, Some(saved), "resumed from its checkpoint after the restart");
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Processing, false));
    store.finish_task(&task.id, &claimed.lease.holder(), &outcome(TaskStatus::Completed)).await.unwrap();
    assert_eq!(next_change(&mut changes, task.id).await, (TaskStatus::Completed, false));
}

/// The next change of any task within 10 s.
async fn next_any(changes: &mut TaskChanges) -> TaskChange {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change within 10 s")
        .expect("the feed is open")
}

/// On a fresh database: a store that hears every change (the writer) and another process's store
/// that hears `hear`, listening, with its feed.
async fn writer_and_listener(cluster: &PgCluster, hear: Heard) -> (PgStore, PgStore, TaskChanges) {
    let database = cluster.create_database().await.unwrap();
    let writer = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let listener = PgStore::connect(&database.url, PgOptions { hear, ..PgOptions::default() }).await.unwrap();
    assert!(listener.is_listening());
    let feed = listener.subscribe();
    (writer, listener, feed)
}

/// A store that listens for claimable changes only (as `batch worker` connects) hears, from
/// another process, exactly the changes that make a task claimable and the resyncs, in commit
/// order; claims, checkpoints, progress and ends reach only the stores that hear every change.
#[tokio::test]
async fn a_store_listening_for_claimable_changes_hears_those_and_nothing_else() {
    let Some(cluster) = shared_or_skip("a_store_listening_for_claimable_changes") else { return };
    let (writer, _worker_store, mut claimable) = writer_and_listener(cluster, Heard::Claimable).await;
    let mut every = writer.subscribe();

    let task = task_at(Utc::now());
    writer.insert_task(&task).await.unwrap();
    assert_eq!(next_change(&mut every, task.id).await, (TaskStatus::Pending, true));
    let held = writer.claim_task(&task.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    writer.commit_checkpoint(&task.id, &held, &checkpoint(1), &progress(5, 10)).await.unwrap();
    writer.update_progress(&task.id, &held, &progress(7, 10)).await.unwrap();
    writer.release_task(&task.id, &held).await.unwrap();
    assert_eq!(next_change(&mut every, task.id).await, (TaskStatus::Processing, false), "the claim");
    let expected = [(TaskStatus::Pending, true), (TaskStatus::Processing, true)];
    for (status, is_claimable) in expected {
        let heard = next_any(&mut claimable).await;
        assert_eq!(heard, TaskChange::Task { id: task.id, status, claimable: is_claimable });
    }

    // The second claim and the end are not heard: the next change heard is the next new task's.
    let claimed = writer.claim_task(&task.id, &lease("b")).await.unwrap().unwrap();
    writer.finish_task(&task.id, &claimed.lease.holder(), &outcome(TaskStatus::Completed)).await.unwrap();
    let next = task_at(Utc::now());
    writer.insert_task(&next).await.unwrap();
    let heard = next_any(&mut claimable).await;
    assert_eq!(heard, TaskChange::Task { id: next.id, status: TaskStatus::Pending, claimable: true });
    // The store hearing every change hears the checkpoint, progress, release, claim and end too.
    let mut rest = Vec::new();
    while rest.last() != Some(&(TaskStatus::Completed, false)) {
        rest.push(next_change(&mut every, task.id).await);
    }
    let processing = (TaskStatus::Processing, false);
    let expected = vec![
        processing,
        processing,
        (TaskStatus::Processing, true),
        processing,
        (TaskStatus::Completed, false),
    ];
    assert_eq!(rest, expected);

    // A bulk insert (binary COPY) too large to name each task says to look again, on every channel.
    let many: Vec<BatchTask> = (0..1_000).map(|_| task_at(Utc::now())).collect();
    writer.insert_tasks(&many).await.into_iter().for_each(|outcome| outcome.unwrap());
    assert_eq!(next_any(&mut claimable).await, TaskChange::Resync);
}

/// A store that listens for tasks' ends only (as `batch tasks wait` connects) hears, from another
/// process, exactly the ends and the resyncs, in commit order: no insert, claim, checkpoint,
/// progress or release.
#[tokio::test]
async fn a_store_listening_for_ends_hears_those_and_nothing_else() {
    let Some(cluster) = shared_or_skip("a_store_listening_for_ends") else { return };
    let (writer, _waiter_store, mut ended) = writer_and_listener(cluster, Heard::Ended).await;

    let (first, second) = (task_at(Utc::now()), task_at(Utc::now()));
    writer
        .insert_tasks(&[first.clone(), second.clone()])
        .await
        .into_iter()
        .for_each(|outcome| outcome.unwrap());
    let held = writer.claim_task(&first.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    writer.commit_checkpoint(&first.id, &held, &checkpoint(1), &progress(5, 10)).await.unwrap();
    writer.update_progress(&first.id, &held, &progress(7, 10)).await.unwrap();
    writer.release_task(&first.id, &held).await.unwrap();
    let held = writer.claim_task(&first.id, &lease("b")).await.unwrap().unwrap().lease.holder();
    writer.finish_task(&first.id, &held, &outcome(TaskStatus::Completed)).await.unwrap();
    let held = writer.claim_task(&second.id, &lease("b")).await.unwrap().unwrap().lease.holder();
    writer.finish_task(&second.id, &held, &outcome(TaskStatus::Failed)).await.unwrap();
    let expected = [(first.id, TaskStatus::Completed), (second.id, TaskStatus::Failed)];
    for (id, status) in expected {
        assert_eq!(next_any(&mut ended).await, TaskChange::Task { id, status, claimable: false });
    }

    // A bulk insert too large to name each task says to look again, on this channel too.
    let many: Vec<BatchTask> = (0..1_000).map(|_| task_at(Utc::now())).collect();
    writer.insert_tasks(&many).await.into_iter().for_each(|outcome| outcome.unwrap());
    assert_eq!(next_any(&mut ended).await, TaskChange::Resync);
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
        let claimed = store.claim_many(&[], &lease("a"), 7).await.unwrap();
        let ids: Vec<TaskId> = claimed.iter().map(|claim| claim.task.id).collect();
        let oldest: Vec<TaskId> = tasks[..7].iter().map(|task| task.id).collect();
        assert_eq!(ids, oldest);
        // Finish them all, so the next round starts with nothing pending.
        let mut claimed = claimed;
        while !claimed.is_empty() {
            for claim in claimed {
                store
                    .finish_task(&claim.task.id, &claim.lease.holder(), &outcome(TaskStatus::Completed))
                    .await
                    .unwrap();
            }
            claimed = store.claim_many(&[], &lease("a"), 500).await.unwrap();
        }
    }
    let metrics = store.metrics().await.unwrap();
    assert_eq!((metrics.completed_tasks, metrics.pending_tasks), (1510, 0));
}

/// Two stores bulk-insert the same 1,500 tasks at once (each first tries a COPY straight into the
/// table, and falls back to skipping the ids that exist): every task is stored once, and each task
/// is `Ok` for exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bulk_inserts_of_the_same_tasks_store_each_once() {
    let Some(cluster) = shared_or_skip("concurrent_bulk_inserts_of_the_same_tasks_store_each_once") else {
        return;
    };
    let database = cluster.create_database().await.unwrap();
    let base = Utc::now();
    let tasks: Arc<Vec<BatchTask>> =
        Arc::new((0..1500).map(|idx| task_at(base + TimeDelta::milliseconds(idx))).collect());
    let mut inserts = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
        let tasks = Arc::clone(&tasks);
        inserts.spawn(async move { store.insert_tasks(&tasks).await });
    }
    let outcomes = inserts.join_all().await;
    for idx in 0..tasks.len() {
        let stored: Vec<bool> = outcomes.iter().map(|outcomes| outcomes[idx].is_ok()).collect();
        assert_eq!(stored.iter().filter(|ok| **ok).count(), 1, "task {idx}: {stored:?}");
        for outcomes in &outcomes {
            assert!(
                matches!(outcomes[idx], Ok(()) | Err(StoreError::Duplicate { .. })),
                "{:?}",
                outcomes[idx]
            );
        }
    }
    let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    assert_eq!(store.metrics().await.unwrap().pending_tasks, 1500);
    assert_eq!(store.task(&tasks[1499].id).await.unwrap().as_ref(), Some(&tasks[1499]));
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
                let batch =
                    store.claim_many(&[TaskType::Train], &lease(&format!("w{idx}")), 3).await.unwrap();
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
    let claimed = store.claim_next(&[], &lease("a")).await.unwrap().unwrap();
    assert_eq!(claimed.task.id, pending[0].id);
    // A task's call locks its family by the parent index: still cheap beside 300k rows.
    store
        .commit_checkpoint(&claimed.task.id, &claimed.lease.holder(), &checkpoint(1), &progress(1, 2))
        .await
        .unwrap();
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
    let mut holders = Vec::new();
    for task in &tasks {
        holders.push(store.claim_task(&task.id, &lease("a")).await.unwrap().unwrap().lease.holder());
    }
    let mut calls = tokio::task::JoinSet::new();
    for (idx, (task, held)) in tasks.iter().zip(holders).enumerate() {
        let store = Arc::clone(&store);
        let task = task.clone();
        calls.spawn(async move {
            let stale = Holder { epoch: 0, ..held.clone() };
            match idx % 4 {
                // A duplicate insert, a heartbeat by another worker and a finish under a stale epoch.
                0 => matches!(store.insert_task(&task).await, Err(StoreError::Duplicate { .. })),
                1 => matches!(
                    store.heartbeat(&task.id, &holder("b", 1), TTL).await,
                    Err(StoreError::LeaseLost { .. })
                ),
                2 => matches!(
                    store.finish_task(&task.id, &stale, &outcome(TaskStatus::Completed)).await,
                    Err(StoreError::LeaseLost { .. })
                ),
                // The holder finishes.
                _ => store.finish_task(&task.id, &held, &outcome(TaskStatus::Completed)).await.is_ok(),
            }
        });
    }
    assert!(calls.join_all().await.into_iter().all(|answered_right| answered_right));
    let metrics = store.metrics().await.unwrap();
    assert_eq!((metrics.completed_tasks, metrics.processing_tasks), (50, 150));
    assert_eq!(store.stats().transactions_failed, 0);
    assert!(store.stats().largest_group > 1, "{:?}", store.stats());
}

/// Eight partitions of one parent, run at once by workers on two store handles (each checkpoint,
/// progress update and end settling the parent in its transaction): no deadlock, no lost update,
/// and the parent's progress is their sum when the last one completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_changed_at_once_settle_their_parent_exactly() {
    let Some(cluster) = shared_or_skip("partitions_changed_at_once_settle_their_parent_exactly") else {
        return;
    };
    let database = cluster.create_database().await.unwrap();
    let stores: Vec<Arc<PgStore>> = vec![
        Arc::new(PgStore::connect(&database.url, PgOptions::default()).await.unwrap()),
        Arc::new(PgStore::connect(&database.url, PgOptions::default()).await.unwrap()),
    ];
    let mut parent = task_at(Utc::now());
    parent.config.partitions = 8;
    stores[0].insert_task(&parent).await.unwrap();
    let splitter = stores[0].claim_task(&parent.id, &lease("splitter")).await.unwrap().unwrap();
    let children: Vec<BatchTask> = (0..8)
        .map(|index| {
            let mut child = task_at(Utc::now());
            child.parent_id = Some(parent.id);
            child.partition = Some(Partition { index, count: 8 });
            child
        })
        .collect();
    stores[0].split_task(&parent.id, &splitter.lease.holder(), &children).await.unwrap();
    assert!(stores[1].claim_task(&parent.id, &lease("early")).await.unwrap().is_none(), "parked");

    let mut workers = tokio::task::JoinSet::new();
    for (idx, child) in children.iter().enumerate() {
        let store = Arc::clone(&stores[idx % 2]);
        let id = child.id;
        workers.spawn(async move {
            let held =
                store.claim_task(&id, &lease(&format!("w{idx}"))).await.unwrap().unwrap().lease.holder();
            for sequence in 1..=5 {
                let done = sequence * 20;
                store
                    .commit_checkpoint(&id, &held, &checkpoint(sequence), &progress(done, 100))
                    .await
                    .unwrap();
                store.update_progress(&id, &held, &progress(done + 1, 100)).await.unwrap();
            }
            let mut ending = outcome(TaskStatus::Completed);
            ending.progress = progress(100, 100);
            store.finish_task(&id, &held, &ending).await.unwrap();
        });
    }
    workers.join_all().await;
    let merged = stores[1].claim_next(&[], &lease("merger")).await.unwrap().unwrap();
    assert_eq!((merged.task.id, merged.resumed, merged.lease.epoch), (parent.id, true, 2));
    assert_eq!(merged.task.progress.processed, 800);
    assert_eq!(merged.task.progress.total, Some(800));
    assert_eq!(merged.task.progress.message.as_deref(), Some("8 of 8 partitions completed"));
    for store in &stores {
        assert_eq!(store.stats().transactions_failed, 0);
    }
}

/// The audit trail records each claim, checkpoint, release and end with its epoch and worker, in
/// order; refused writes leave no trace; ends nobody held the task for name no worker.
#[tokio::test]
async fn the_audit_trail_records_claims_checkpoints_releases_and_ends_by_epoch() {
    let Some(store) = pg::store("the_audit_trail_records_claims_checkpoints_releases_and_ends").await else {
        return;
    };
    let task = task_at(Utc::now());
    store.insert_task(&task).await.unwrap();
    let first = store.claim_task(&task.id, &lease("a")).await.unwrap().unwrap().lease.holder();
    store.commit_checkpoint(&task.id, &first, &checkpoint(1), &progress(10, 30)).await.unwrap();
    store.update_progress(&task.id, &first, &progress(15, 30)).await.unwrap();
    store.heartbeat(&task.id, &first, TTL).await.unwrap();
    store.release_task(&task.id, &first).await.unwrap();
    let second = store.claim_task(&task.id, &lease("b")).await.unwrap().unwrap();
    assert_eq!(second.checkpoint, store.checkpoint(&task.id).await.unwrap());
    let second = second.lease.holder();
    // The first holder's late writes are refused and not recorded.
    assert!(store.commit_checkpoint(&task.id, &first, &checkpoint(2), &progress(20, 30)).await.is_err());
    assert!(store.finish_task(&task.id, &first, &outcome(TaskStatus::Completed)).await.is_err());
    store.commit_checkpoint(&task.id, &second, &checkpoint(2), &progress(20, 30)).await.unwrap();
    store.finish_task(&task.id, &second, &outcome(TaskStatus::Completed)).await.unwrap();

    let events = store.task_events(&task.id).await.unwrap();
    let summary: Vec<(TaskEventKind, u64, Option<WorkerId>, Option<u64>)> =
        events.iter().map(|event| (event.kind, event.epoch, event.worker.clone(), event.sequence)).collect();
    assert_eq!(
        summary,
        vec![
            (TaskEventKind::Claimed, 1, Some(worker("a")), None),
            (TaskEventKind::Checkpoint, 1, Some(worker("a")), Some(1)),
            (TaskEventKind::Released, 1, Some(worker("a")), Some(1)),
            (TaskEventKind::Claimed, 2, Some(worker("b")), Some(1)),
            (TaskEventKind::Checkpoint, 2, Some(worker("b")), Some(2)),
            (TaskEventKind::Completed, 2, Some(worker("b")), Some(2)),
        ]
    );
    assert!(events.windows(2).all(|pair| pair[0].at <= pair[1].at), "in time order");

    // A stop of a task nobody holds ends it with no worker; a restart is recorded too.
    let other = task_at(Utc::now());
    store.insert_task(&other).await.unwrap();
    store.request_stop(&other.id).await.unwrap();
    store.restart_task(&other.id).await.unwrap();
    let kinds: Vec<(TaskEventKind, Option<WorkerId>)> = store
        .task_events(&other.id)
        .await
        .unwrap()
        .into_iter()
        .map(|TaskEvent { kind, worker, .. }| (kind, worker))
        .collect();
    assert_eq!(kinds, vec![(TaskEventKind::Cancelled, None), (TaskEventKind::Restarted, None)]);
    assert_eq!(store.task_events(&TaskId::new()).await.unwrap(), vec![]);
}

/// A task whose workers keep getting lost is quarantined: the trail says so, naming the claimer
/// that would have been next.
#[tokio::test]
async fn a_quarantine_is_recorded_in_the_audit_trail() {
    let Some(store) = pg::store("a_quarantine_is_recorded_in_the_audit_trail").await else { return };
    let task = task_at(Utc::now());
    store.insert_task(&task).await.unwrap();
    let short = |name: &str| LeaseRequest {
        max_lost_leases: 2,
        ..LeaseRequest::new(worker(name), Duration::from_millis(1))
    };
    assert!(store.claim_task(&task.id, &short("a")).await.unwrap().is_some());
    // Each next claim waits until the database's time is past the 1 ms lease.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut claimers = ["b", "c"].into_iter();
    let mut name = claimers.next();
    while let Some(current) = name {
        assert!(tokio::time::Instant::now() < deadline, "the leases never lapsed");
        match store.claim_task(&task.id, &short(current)).await.unwrap() {
            Some(_) => name = claimers.next(),
            None if store.task(&task.id).await.unwrap().unwrap().status == TaskStatus::Failed => break,
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let failed = store.task(&task.id).await.unwrap().unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    let kinds: Vec<(TaskEventKind, Option<WorkerId>)> = store
        .task_events(&task.id)
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.kind, event.worker))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (TaskEventKind::Claimed, Some(worker("a"))),
            (TaskEventKind::Claimed, Some(worker("b"))),
            (TaskEventKind::Quarantined, Some(worker("c"))),
        ]
    );
}

/// A partition whose workers keep getting lost is quarantined by a `claim_next` (which found it
/// among its candidates, without its family): the group locks the family and settles it, so the
/// parent fails naming the partition and its sibling is stopped.
#[tokio::test]
async fn a_partition_quarantined_by_claim_next_fails_its_parent() {
    let Some(store) = pg::store("a_partition_quarantined_by_claim_next_fails_its_parent").await else {
        return;
    };
    let mut parent = task_at(Utc::now());
    parent.config.partitions = 2;
    store.insert_task(&parent).await.unwrap();
    let splitter = store.claim_task(&parent.id, &lease("splitter")).await.unwrap().unwrap();
    let children: Vec<BatchTask> = (0..2)
        .map(|index| {
            let mut child = task_at(Utc::now() + TimeDelta::milliseconds(i64::from(index)));
            child.parent_id = Some(parent.id);
            child.partition = Some(Partition { index, count: 2 });
            child
        })
        .collect();
    store.split_task(&parent.id, &splitter.lease.holder(), &children).await.unwrap();
    let sibling = store.claim_task(&children[1].id, &lease("sibling")).await.unwrap().unwrap();

    let short = |name: &str| LeaseRequest {
        max_lost_leases: 2,
        ..LeaseRequest::new(worker(name), Duration::from_millis(1))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut claims = 0;
    while store.task(&children[0].id).await.unwrap().unwrap().status != TaskStatus::Failed {
        assert!(tokio::time::Instant::now() < deadline, "never quarantined after {claims} claims");
        if store.claim_next(&[], &short(&format!("c{claims}"))).await.unwrap().is_some() {
            claims += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(claims, 2, "claimed, taken over once, then quarantined");
    let failed = store.task(&parent.id).await.unwrap().unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap();
    assert!(
        error.message.starts_with("partition 1 of 2 failed: PROCESSING_ERROR: quarantined"),
        "{}",
        error.message
    );
    let reply = store.heartbeat(&children[1].id, &sibling.lease.holder(), TTL).await.unwrap();
    assert!(reply.stop_requested, "the sibling is asked to stop");
    assert_eq!(store.stats().transactions_failed, 0);
    let trail = store.task_events(&parent.id).await.unwrap();
    let kinds: Vec<TaskEventKind> = trail.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, vec![TaskEventKind::Claimed, TaskEventKind::Split, TaskEventKind::Failed]);
}
