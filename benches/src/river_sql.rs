//! River's own statements driven by a minimal client (issue 11's calibration of River's rate on the
//! machine of a run): River's jobs table as its migrations leave it, its bulk insert, its
//! one-statement fetch and its batch completion, written here from River's schema and queries
//! (github.com/riverqueue/river, `riverdriver/riverpgxv5`). Used by m3's `sql_river_statements`
//! flavour (`benches/pg.rs`) and by `pg_statements` (`PG_STATEMENTS_PEER=river`).
//!
//! One run: `tasks` jobs inserted in batches of `batch` on one connection, while a fetch loop on a
//! second (River's producer: one fetch at a time, for as many jobs as its `slots` have free) hands
//! each fetched job straight to a completer on a third, which completes everything done since its
//! last statement in one (River's batch completer). River's own client adds its goroutines, timers
//! (its fetch cooldown, its completer's tick) and row decoding around the same statements, so a
//! run's rate is a ceiling of River's on the same machine, not River's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_postgres::Client;

/// River's jobs table as its migrations leave it (written here from River's schema: its columns,
/// its checks and its six indexes, the two GIN ones included), for the River-shaped SQL peer.
pub const RIVER_JOBS_TABLE: &str = "\
CREATE TYPE river_state AS ENUM
    ('available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled');
CREATE TABLE river_jobs (
    id            bigserial    PRIMARY KEY,
    args          jsonb        NOT NULL DEFAULT '{}',
    attempt       smallint     NOT NULL DEFAULT 0,
    attempted_at  timestamptz,
    attempted_by  text[],
    created_at    timestamptz  NOT NULL DEFAULT now(),
    errors        jsonb[],
    finalized_at  timestamptz,
    kind          text         NOT NULL,
    max_attempts  smallint     NOT NULL,
    metadata      jsonb        NOT NULL DEFAULT '{}',
    priority      smallint     NOT NULL DEFAULT 1,
    queue         text         NOT NULL DEFAULT 'default',
    state         river_state  NOT NULL DEFAULT 'available',
    scheduled_at  timestamptz  NOT NULL DEFAULT now(),
    tags          varchar(255)[] NOT NULL DEFAULT '{}',
    unique_key    bytea,
    unique_states bit(8),
    CHECK ((finalized_at IS NULL AND state NOT IN ('cancelled', 'completed', 'discarded'))
        OR (finalized_at IS NOT NULL AND state IN ('cancelled', 'completed', 'discarded'))),
    CHECK (priority >= 1 AND priority <= 4),
    CHECK (char_length(queue) > 0 AND char_length(queue) < 128),
    CHECK (char_length(kind) > 0 AND char_length(kind) < 128)
);
CREATE INDEX river_jobs_kind ON river_jobs (kind);
CREATE INDEX river_jobs_fetching ON river_jobs (state, queue, priority, scheduled_at, id);
CREATE INDEX river_jobs_finalized ON river_jobs (state, finalized_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX river_jobs_args ON river_jobs USING GIN (args);
CREATE INDEX river_jobs_metadata ON river_jobs USING GIN (metadata);
CREATE UNIQUE INDEX river_jobs_unique ON river_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL";

/// Inserts a batch of jobs from parallel arrays (args, kind), as River's fast bulk insert does.
pub const RIVER_INSERT: &str = "\
INSERT INTO river_jobs (args, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags)
SELECT a, k, 25, '{}', 1, 'default', now(), 'available', '{}'
FROM unnest($1::jsonb[], $2::text[]) AS i(a, k)";

/// Locks up to `$1` available jobs, oldest first, and marks them running, in one statement (River's
/// fetch); returns the whole rows, as River's does.
pub const RIVER_FETCH: &str = "\
WITH locked AS (
    SELECT id FROM river_jobs
    WHERE state = 'available' AND queue = 'default' AND scheduled_at <= now()
    ORDER BY priority, scheduled_at, id
    LIMIT $1::int FOR UPDATE SKIP LOCKED
)
UPDATE river_jobs j
SET state = 'running', attempt = j.attempt + 1, attempted_at = now(),
    attempted_by = array_append(j.attempted_by, $2::text)
FROM locked WHERE j.id = locked.id
RETURNING j.*";

/// Completes a batch of running jobs (ids and finish times as arrays), each only if it is still
/// running, its row locked first (River's batch completion).
pub const RIVER_COMPLETE: &str = "\
WITH input AS (
    SELECT unnest($1::bigint[]) AS id, unnest($2::timestamptz[]) AS finalized_at
), target AS (
    SELECT j.id, input.finalized_at FROM river_jobs j JOIN input ON j.id = input.id
    WHERE j.state = 'running' FOR UPDATE OF j
)
UPDATE river_jobs j SET state = 'completed', finalized_at = target.finalized_at
FROM target WHERE j.id = target.id
RETURNING j.id";

/// Creates River's jobs table (and its state type) in the connection's database.
pub async fn create_table(client: &Client) -> Result<(), String> {
    client
        .batch_execute(RIVER_JOBS_TABLE)
        .await
        .map_err(|error| format!("creating River's jobs table: {error}"))
}

/// One run on three connections to a database with an empty jobs table ([`create_table`]); its wall
/// time. Every failure is an error naming what failed.
pub async fn run(
    inserter: &Client,
    fetcher: &Client,
    completer: &Client,
    tasks: usize,
    batch: usize,
    slots: usize,
) -> Result<Duration, String> {
    let failed = |doing: &'static str| move |error: tokio_postgres::Error| format!("{doing}: {error}");
    let insert = inserter.prepare(RIVER_INSERT).await.map_err(failed("preparing the insert"))?;
    let fetch = fetcher.prepare(RIVER_FETCH).await.map_err(failed("preparing the fetch"))?;
    let complete = completer.prepare(RIVER_COMPLETE).await.map_err(failed("preparing the completion"))?;
    // Jobs fetched and not yet completed (the client's slots in use), and jobs inserted so far.
    let running = AtomicUsize::new(0);
    let inserted = AtomicUsize::new(0);
    // Signals the fetch loop: jobs inserted, or slots freed.
    let to_fetch = Notify::new();
    // The fetched jobs (run at once: they are no-ops), for the completer; at most `slots` batches.
    let (done, mut to_complete) = mpsc::channel::<Vec<i64>>(slots.max(1));
    let batches = tasks.div_ceil(batch.max(1));
    let total = batches * batch;

    let started = Instant::now();
    let insert = async {
        let kinds = vec!["noop"; batch];
        for _ in 0..batches {
            // Each job's args encoded, as River's client encodes them.
            let args: Vec<serde_json::Value> = (0..batch).map(|_| serde_json::json!({})).collect();
            inserter.execute(&insert, &[&args, &kinds]).await.map_err(failed("inserting jobs"))?;
            inserted.fetch_add(batch, Ordering::SeqCst);
            to_fetch.notify_one();
        }
        Ok::<(), String>(())
    };
    let fetch = async {
        let mut fetched = 0_usize;
        while fetched < total {
            let free = slots.saturating_sub(running.load(Ordering::SeqCst));
            if free == 0 || fetched >= inserted.load(Ordering::SeqCst) {
                to_fetch.notified().await;
                continue;
            }
            let limit = i32::try_from(free).unwrap_or(i32::MAX);
            let rows =
                fetcher.query(&fetch, &[&limit, &"m3-river"]).await.map_err(failed("fetching jobs"))?;
            if rows.is_empty() {
                to_fetch.notified().await;
                continue;
            }
            let ids = rows
                .iter()
                .map(|row| row.try_get::<_, i64>("id"))
                .collect::<Result<Vec<i64>, _>>()
                .map_err(failed("reading a job's id"))?;
            fetched += ids.len();
            running.fetch_add(ids.len(), Ordering::SeqCst);
            done.send(ids).await.map_err(|_| "the completer stopped".to_owned())?;
        }
        Ok::<(), String>(())
    };
    let complete = async {
        let (mut completed, mut received) = (0_usize, Vec::new());
        while completed < total {
            // Everything done since the last completion, in one statement.
            if to_complete.recv_many(&mut received, slots.max(1)).await == 0 {
                return Err("the fetch loop stopped before every job was fetched".to_owned());
            }
            let ids: Vec<i64> = received.drain(..).flatten().collect();
            let finished = vec![std::time::SystemTime::now(); ids.len()];
            let rows =
                completer.query(&complete, &[&ids, &finished]).await.map_err(failed("completing jobs"))?;
            if rows.len() != ids.len() {
                return Err(format!(
                    "{} of {} fetched jobs were running at their completion",
                    rows.len(),
                    ids.len()
                ));
            }
            completed += ids.len();
            running.fetch_sub(ids.len(), Ordering::SeqCst);
            to_fetch.notify_one();
        }
        Ok::<(), String>(())
    };
    // The first failure ends the run (a loop left waiting for the others would never end).
    tokio::try_join!(insert, fetch, complete)?;
    let elapsed = started.elapsed();
    let row = completer
        .query_one("SELECT count(*) FROM river_jobs WHERE state = 'completed'", &[])
        .await
        .map_err(failed("counting completed jobs"))?;
    let counted: i64 = row.try_get(0).map_err(failed("counting completed jobs"))?;
    if counted != total as i64 {
        return Err(format!("{counted} jobs completed of {total}"));
    }
    Ok(elapsed)
}
