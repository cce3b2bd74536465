//! Writes attached to checkpoints on the PostgreSQL store (`TaskStore::commit_checkpoint_with`):
//! committed in the checkpoint's own transaction (the rows and the checkpoint row share one
//! `xmin`), refused with a stale holder's checkpoint, and a failing write (no such table, a row
//! that does not fit) failing only its own call while the other calls of its group commit, and a
//! task whose chunk does not fit its table failing with the chunks before it committed. The stores
//! without attached writes (memory, SQLite) refuse them and commit nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_manager::store::memory::MemoryStore;
use batch_manager::store::postgres::{PgOptions, PgStore};
use batch_manager::store::{
    AttachedInput, AttachedWrite, CheckpointCommit, DatabaseIdentity, Holder, StoreError, TaskStore,
};
use batch_model::{BatchTask, Checkpoint, Counters, ErrorCode, Progress};
use batch_testkit::shared_or_skip;
use chrono::{TimeDelta, Utc};
use tokio_postgres::Client;

use crate::fixtures::{TTL, lease, sqlite_store, task_at};

/// What the sink attaches: `rows` (a JSON array) upserted into `table` by `id`.
fn upsert(database: &DatabaseIdentity, table: &str, rows: serde_json::Value) -> AttachedWrite {
    let count = rows.as_array().map_or(0, Vec::len) as u64;
    AttachedWrite {
        database: database.clone(),
        target: format!("the table {table}"),
        statement: format!(
            "INSERT INTO {table} (id, name) SELECT id, name FROM jsonb_populate_recordset(NULL::{table}, \
             $1::text::jsonb) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name"
        ),
        input: AttachedInput::Parameter(rows.to_string()),
        rows: count,
    }
}

fn rows(ids: std::ops::Range<i64>) -> serde_json::Value {
    serde_json::Value::Array(
        ids.map(|id| serde_json::json!({ "id": id, "name": format!("row {id}") })).collect(),
    )
}

fn checkpoint(sequence: u64) -> Checkpoint {
    Checkpoint {
        sequence,
        source: serde_json::json!({ "key": sequence }),
        sink: serde_json::json!({ "output": sequence }),
        counters: Counters { processed: sequence, ..Counters::default() },
        state: serde_json::Value::Null,
        committed_at: Utc::now(),
    }
}

fn progress() -> Progress {
    Progress::zero(Utc::now())
}

/// A store (one writer lane, so that calls queue into one group) on a fresh database, and a client
/// of the test's own on it; `None` without PostgreSQL.
async fn setup(test: &str) -> Option<(PgStore, Client, String)> {
    let cluster = shared_or_skip(test)?;
    let database = cluster.create_database().await.unwrap();
    let options = PgOptions { writers: 1, ..PgOptions::default() };
    let store = PgStore::connect(&database.url, options).await.unwrap();
    let client = cluster.connect(&database.name).await.unwrap();
    client.batch_execute("CREATE TABLE sink_rows (id bigint PRIMARY KEY, name text NOT NULL)").await.unwrap();
    Some((store, client, database.url))
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Inserted and claimed tasks, with their holders.
async fn claimed(store: &PgStore, count: usize) -> Vec<(BatchTask, Holder)> {
    let tasks: Vec<BatchTask> =
        (0..count).map(|idx| task_at(Utc::now() + TimeDelta::milliseconds(idx as i64))).collect();
    store.insert_tasks(&tasks).await.into_iter().for_each(|outcome| outcome.unwrap());
    let mut held = Vec::new();
    for task in tasks {
        let holder = store.claim_task(&task.id, &lease("a")).await.unwrap().unwrap().lease.holder();
        held.push((task, holder));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_rows_commit_in_the_checkpoints_transaction_and_a_stale_holder_writes_nothing() {
    let test = "attached_rows_commit_in_the_checkpoints_transaction_and_a_stale_holder_writes_nothing";
    let Some((store, client, _)) = setup(test).await else { return };
    let database = store.attachable_database().await.unwrap().expect("the store names its database");
    let name: String = client.query_one("SELECT current_database()::text", &[]).await.unwrap().get(0);
    assert_eq!(database.database(), name);

    let (task, old) = claimed(&store, 1).await.remove(0);
    store
        .commit_checkpoint_with(
            &task.id,
            &old,
            &checkpoint(1),
            &progress(),
            vec![upsert(&database, "sink_rows", rows(0..100))],
        )
        .await
        .unwrap();
    // The rows and the checkpoint row were written by one transaction.
    let same_transaction =
        count(&client, "SELECT count(*) FROM sink_rows WHERE xmin = (SELECT xmin FROM batch.checkpoints)")
            .await;
    assert_eq!(same_transaction, 100);

    // Another worker takes the task over (a release, then its claim bumps the epoch).
    store.release_task(&task.id, &old).await.unwrap();
    let new = store.claim_task(&task.id, &lease("b")).await.unwrap().unwrap().lease.holder();
    assert!(new.epoch > old.epoch);
    let stale = store
        .commit_checkpoint_with(
            &task.id,
            &old,
            &checkpoint(2),
            &progress(),
            vec![upsert(&database, "sink_rows", rows(100..200))],
        )
        .await
        .unwrap_err();
    assert!(matches!(&stale, StoreError::LeaseLost { holder, .. } if *holder == old), "{stale:?}");
    assert_eq!(stale.code(), ErrorCode::InvalidState);
    assert_eq!(
        count(&client, "SELECT count(*) FROM sink_rows").await,
        100,
        "the stale holder's rows were refused"
    );
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 1);

    // The new holder's rows land with its checkpoint.
    store
        .commit_checkpoint_with(
            &task.id,
            &new,
            &checkpoint(2),
            &progress(),
            vec![upsert(&database, "sink_rows", rows(100..200))],
        )
        .await
        .unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 200);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 2);

    // A write for another database is refused before anything is sent.
    let elsewhere = DatabaseIdentity::new(database.system_identifier(), "another");
    let error = store
        .commit_checkpoint_with(
            &task.id,
            &new,
            &checkpoint(3),
            &progress(),
            vec![upsert(&elsewhere, "sink_rows", rows(200..300))],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::AttachedWrite { .. }), "{error:?}");
    assert!(error.to_string().contains("database another"), "{error}");
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 200);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 2);
}

/// Holds the row lock of `id` in a transaction of the test's own, so that the store's one writer
/// lane waits for it and the next calls queue into one group; returns once the store waits.
async fn block_lane(
    client: &Client,
    store: &Arc<PgStore>,
    id: batch_model::TaskId,
    holder: Holder,
) -> tokio::task::JoinHandle<()> {
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("SELECT 1 FROM batch.tasks WHERE id = $1::text::uuid FOR UPDATE", &[&id.to_string()])
        .await
        .unwrap();
    let blocked = {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            store.heartbeat(&id, &holder, TTL).await.unwrap();
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = count(
            client,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .await;
        if waiting > 0 {
            return blocked;
        }
        assert!(Instant::now() < deadline, "the store's group never waited for the lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_failing_attached_write_fails_only_its_own_call_in_a_group() {
    let Some((store, client, _)) = setup("a_failing_attached_write_fails_only_its_own_call_in_a_group").await
    else {
        return;
    };
    let store = Arc::new(store);
    let database = store.attachable_database().await.unwrap().unwrap();
    let mut tasks = claimed(&store, 6).await;
    let (blocker, blocker_holder) = tasks.remove(0);
    let blocked = block_lane(&client, &store, blocker.id, blocker_holder).await;
    let committed_before = store.stats().transactions_committed;

    // Five calls queue behind the blocked group: one into a table that does not exist, one with a
    // row that does not fit (a name that is null), one whose statement takes no text (refused by
    // the client before it is sent), and two good ones.
    let not_text = AttachedWrite {
        statement: "INSERT INTO sink_rows SELECT * FROM jsonb_populate_recordset(NULL::sink_rows, $1::jsonb)"
            .to_owned(),
        ..upsert(&database, "sink_rows", rows(2000..2010))
    };
    let writes = [
        upsert(&database, "missing", rows(0..10)),
        upsert(&database, "sink_rows", serde_json::json!([{ "id": 1000 }, { "id": 1001, "name": "fits" }])),
        not_text,
        upsert(&database, "sink_rows", rows(0..10)),
        upsert(&database, "sink_rows", rows(10..30)),
    ];
    let mut calls = Vec::new();
    for ((task, holder), write) in tasks.iter().cloned().zip(writes) {
        let store = Arc::clone(&store);
        calls.push(tokio::spawn(async move {
            store.commit_checkpoint_with(&task.id, &holder, &checkpoint(1), &progress(), vec![write]).await
        }));
    }
    // On this one-thread runtime, the spawned calls run (and queue) while this task yields.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    client.batch_execute("COMMIT").await.unwrap();
    blocked.await.unwrap();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let stats = store.stats();
    assert_eq!(
        stats.transactions_committed,
        committed_before + 2,
        "the blocked group and one more: {stats:?}"
    );
    assert!(stats.largest_group >= 5, "the five calls shared one group: {stats:?}");
    assert_eq!(stats.transactions_failed, 0);

    let missing = answers[0].as_ref().unwrap_err();
    assert!(matches!(missing, StoreError::AttachedWrite { .. }), "{missing:?}");
    assert_eq!(missing.code(), ErrorCode::StorageError);
    let text = missing.to_string();
    assert!(text.contains("the table missing") && text.contains("42P01"), "{text}");
    let misfit = answers[1].as_ref().unwrap_err();
    assert!(matches!(misfit, StoreError::AttachedWrite { .. }), "{misfit:?}");
    let text = misfit.to_string();
    assert!(text.contains("the table sink_rows") && text.contains("23502"), "{text}");
    assert!(text.contains("a row does not fit the table"), "{text}");
    let not_text = answers[2].as_ref().unwrap_err();
    assert!(matches!(not_text, StoreError::AttachedWrite { .. }), "{not_text:?}");
    answers[3].as_ref().unwrap();
    answers[4].as_ref().unwrap();

    // The failing calls committed nothing; the others committed their rows with their checkpoints,
    // all in one transaction.
    assert_eq!(store.checkpoint(&tasks[0].0.id).await.unwrap(), None);
    assert_eq!(store.checkpoint(&tasks[1].0.id).await.unwrap(), None);
    assert_eq!(store.checkpoint(&tasks[2].0.id).await.unwrap(), None);
    assert_eq!(store.checkpoint(&tasks[3].0.id).await.unwrap().unwrap().sequence, 1);
    assert_eq!(store.checkpoint(&tasks[4].0.id).await.unwrap().unwrap().sequence, 1);
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 30);
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows WHERE id >= 1000").await, 0);
    let transactions = count(
        &client,
        "SELECT count(DISTINCT xmin::text) FROM (SELECT xmin FROM sink_rows UNION ALL SELECT xmin FROM batch.checkpoints) AS x",
    )
    .await;
    assert_eq!(transactions, 1, "the rows and both checkpoints in one transaction");

    // The failed calls can commit once their writes are fixed.
    let (task, holder) = &tasks[0];
    store
        .commit_checkpoint_with(
            &task.id,
            holder,
            &checkpoint(1),
            &progress(),
            vec![upsert(&database, "sink_rows", rows(30..40))],
        )
        .await
        .unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 40);
}

#[tokio::test]
async fn stores_without_attached_writes_refuse_them_and_commit_nothing() {
    let (_dir, sqlite) = sqlite_store();
    let stores: [Arc<dyn TaskStore>; 2] = [Arc::new(MemoryStore::new()), Arc::new(sqlite)];
    let database = DatabaseIdentity::new("1", "sales");
    for store in stores {
        assert_eq!(store.attachable_database().await.unwrap(), None);
        let task = task_at(Utc::now());
        store.insert_task(&task).await.unwrap();
        let holder = store.claim_task(&task.id, &lease("a")).await.unwrap().unwrap().lease.holder();
        let error = store
            .commit_checkpoint_with(
                &task.id,
                &holder,
                &checkpoint(1),
                &progress(),
                vec![upsert(&database, "sink_rows", rows(0..1))],
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::AttachedWrite { .. }), "{error:?}");
        assert_eq!(error.code(), ErrorCode::StorageError);
        assert_eq!(store.checkpoint(&task.id).await.unwrap(), None);
        // Without writes it is an ordinary commit.
        store
            .commit_checkpoint_with(&task.id, &holder, &checkpoint(1), &progress(), Vec::new())
            .await
            .unwrap();
        assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 1);
    }
}

/// Runs a `batch_process` task copying `t1` into `sink_rows` of the store's own database
/// (`output_mode` transactional, checkpoints every 1,000 rows) after `setup`, to its end.
async fn copy_into_the_stores_database(
    store: PgStore,
    client: &Client,
    url: &str,
    setup: &str,
) -> batch_model::BatchTask {
    client.batch_execute(setup).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manager = batch_manager::BatchManager::new(
        Arc::new(store) as Arc<dyn TaskStore>,
        batch_tasks::builtin_registry(),
        batch_manager::ManagerConfig::default().with_worker_id("w"),
    )
    .unwrap();
    let params = serde_json::json!({
        "input": url, "input_table": "t1", "output": url, "output_table": "sink_rows",
        "dead_letter": dir.path().join("dead.jsonl"), "output_mode": "transactional",
    });
    let config = batch_model::BatchConfig { batch_size: 1000, ..batch_model::BatchConfig::default() };
    let request = batch_model::CreateTaskRequest::new(batch_model::TaskType::BatchProcess)
        .with_config(config)
        .with_params(params);
    let id = manager.create_task(request).await.unwrap().id;
    manager.process_task(&id).await.unwrap();
    let task = manager.wait(&id).await.unwrap();
    manager.shutdown().await;
    task
}

/// A task copying a table into a table of its store's database: a row that does not fit the output
/// (a null name in a `NOT NULL` column) fails the task with a `STORAGE_ERROR` naming the table, the
/// cause and the row's line in its chunk, and the table holds exactly the chunks committed before
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_fit_fails_the_task_with_the_chunks_before_it_committed() {
    let Some((store, client, url)) =
        setup("a_row_that_does_not_fit_fails_the_task_with_the_chunks_before_it_committed").await
    else {
        return;
    };
    let setup = "CREATE TABLE t1 (id bigint PRIMARY KEY, name text);
                 INSERT INTO t1 SELECT g, CASE WHEN g = 2500 THEN NULL ELSE 'n' || g END FROM generate_series(1, 5000) AS g;";
    let task = copy_into_the_stores_database(store, &client, &url, setup).await;
    assert_eq!(task.status, batch_model::TaskStatus::Failed);
    let error = task.error.unwrap();
    assert_eq!(error.code, ErrorCode::StorageError, "{error:?}");
    assert!(error.message.contains("sink_rows") && error.message.contains("23502"), "{}", error.message);
    // Row 2,500 is the 500th line of the third chunk's COPY.
    assert!(error.message.contains("line 500"), "{}", error.message);
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 2000);
    assert_eq!(count(&client, "SELECT max(id) FROM sink_rows").await, 2000);
}

/// The same-transaction path inserts, it does not replace: a key the table held before the task
/// fails the task with a `STORAGE_ERROR` naming the key (unique violation), and the table holds
/// the chunks before it and its own row, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_table_held_before_fails_the_same_transaction_copy() {
    let Some((store, client, url)) =
        setup("a_key_the_table_held_before_fails_the_same_transaction_copy").await
    else {
        return;
    };
    let setup = "CREATE TABLE t1 (id bigint PRIMARY KEY, name text NOT NULL);
                 INSERT INTO t1 SELECT g, 'n' || g FROM generate_series(1, 5000) AS g;
                 INSERT INTO sink_rows VALUES (3001, 'before the task');";
    let task = copy_into_the_stores_database(store, &client, &url, setup).await;
    assert_eq!(task.status, batch_model::TaskStatus::Failed);
    let error = task.error.unwrap();
    assert_eq!(error.code, ErrorCode::StorageError, "{error:?}");
    for part in ["sink_rows", "23505", "(id)=(3001)", "output_mode upsert"] {
        assert!(error.message.contains(part), "{part:?} not in {}", error.message);
    }
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 3001);
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows WHERE name = 'before the task'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_checkpoints_commit_their_rows_in_one_transaction_and_stop_at_a_failing_one() {
    let test = "consecutive_checkpoints_commit_their_rows_in_one_transaction_and_stop_at_a_failing_one";
    let Some((store, client, _)) = setup(test).await else { return };
    let database = store.attachable_database().await.unwrap().expect("the store names its database");
    let (task, holder) = claimed(&store, 1).await.remove(0);
    let commit = |sequence: u64, ids: std::ops::Range<i64>| CheckpointCommit {
        checkpoint: checkpoint(sequence),
        progress: progress(),
        writes: vec![upsert(&database, "sink_rows", rows(ids))],
    };
    store
        .commit_checkpoints(
            &task.id,
            &holder,
            vec![commit(1, 0..100), commit(2, 100..200), commit(3, 200..300)],
        )
        .await
        .unwrap();
    // One transaction: every row and the checkpoint row share its id.
    let same_transaction =
        count(&client, "SELECT count(*) FROM sink_rows WHERE xmin = (SELECT xmin FROM batch.checkpoints)")
            .await;
    assert_eq!(same_transaction, 300);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 3);
    // Each checkpoint has its own audit entry, in order.
    let audited: Vec<i64> = client
        .query(
            "SELECT sequence FROM batch.task_events WHERE task_id = $1::text::uuid AND event = 'checkpoint' \
             ORDER BY id",
            &[&task.id.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(audited, [1, 2, 3]);

    // The second checkpoint's write of the next call fails (a NULL name: NOT NULL): the call fails
    // with its error, and the checkpoint before it stays committed with its rows, as if each had
    // come alone.
    let mut broken = commit(5, 400..500);
    broken.writes = vec![AttachedWrite {
        statement: "INSERT INTO sink_rows (id, name) SELECT g, NULL FROM generate_series(1000, 1000 + $1::text::int) g"
            .to_owned(),
        input: AttachedInput::Parameter("3".to_owned()),
        ..broken.writes.remove(0)
    }];
    let error =
        store.commit_checkpoints(&task.id, &holder, vec![commit(4, 300..400), broken]).await.unwrap_err();
    assert!(matches!(error, StoreError::AttachedWrite { .. }), "{error:?}");
    assert!(error.to_string().contains("23502"), "{error}");
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 400);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 4);

    // Then the next ones go in.
    store
        .commit_checkpoints(&task.id, &holder, vec![commit(5, 400..500), commit(6, 500..600)])
        .await
        .unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 600);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 6);

    // Copies of one call into one table go as one COPY; a bad row fails the call with the line of
    // its own chunk, and the chunks before it stay committed.
    let copy = |sequence: u64, data: &str| CheckpointCommit {
        checkpoint: checkpoint(sequence),
        progress: progress(),
        writes: vec![AttachedWrite {
            database: database.clone(),
            target: "the table sink_rows".to_owned(),
            statement: "COPY sink_rows (id, name) FROM STDIN".to_owned(),
            input: AttachedInput::Copy(data.as_bytes().to_vec()),
            rows: data.lines().count() as u64,
        }],
    };
    let calls = vec![copy(7, "700\tx\n701\ty\n"), copy(8, "800\ta\n801\t\\N\n802\tc\n"), copy(9, "900\tz\n")];
    let error = store.commit_checkpoints(&task.id, &holder, calls).await.unwrap_err();
    assert!(matches!(error, StoreError::AttachedWrite { .. }), "{error:?}");
    assert!(error.to_string().contains("23502") && error.to_string().contains("line 2"), "{error}");
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 602);
    assert_eq!(store.checkpoint(&task.id).await.unwrap().unwrap().sequence, 7);
    let calls = vec![copy(8, "800\ta\n801\tb\n802\tc\n"), copy(9, "900\tz\n")];
    store.commit_checkpoints(&task.id, &holder, calls).await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM sink_rows").await, 606);
    let same_transaction = count(
        &client,
        "SELECT count(*) FROM sink_rows WHERE id >= 800 AND xmin = (SELECT xmin FROM batch.checkpoints)",
    )
    .await;
    assert_eq!(same_transaction, 4);
}
