-- Three table designs for m3's flow in SQL alone (docs/BENCHMARKS.md, m3, session 6): 10,000 tasks
-- created in batches of 1,000, claimed 128 at a time (FOR UPDATE SKIP LOCKED) and completed, each
-- batch its own transaction, two audit rows per task, in one backend with no client work; every
-- task row carries a real 672-byte record (m3's, as the store writes it) and is rewritten at the
-- claim and at the end, as the store does.
--   s: schema 4 as it is (partial indexes of pending and of processing tasks, the listing index of
--      every task);
--   q: a queue design: the claimable sets in narrow tables of their own (`pending`, `running`:
--      inserted and deleted as a task enters and leaves them), no index of `tasks` names the status,
--      so its updates can be HOT (fillfactor 50 so that they find room on the page);
--   f: schema 4 with the listing index split: the two partial indexes of claimable tasks plus a
--      partial index of finished ones instead of an index of every task (a listing would merge the
--      three).
-- Run it in psql against a scratch database of a throwaway server with default settings (it
-- creates and drops the schemas `s`, `q` and `f`), many times, and compare each design's median:
--   for run in $(seq 15); do psql -q -f benches/sql/m3_structures.sql; done
-- Each run times the three designs in turn (the CALLs); single runs here spread by 1.5x.
\set rec '{"id":"01a24ed4-b9da-7746-bdf2-87e2e9a99816","task_type":"bench_empty","status":"completed","config":{"batch_size":1000,"max_retries":3,"timeout":"30s","concurrency":2,"skip_limit":null,"durability":"process","partitions":1},"params":{},"progress":{"total":null,"processed":0,"failed":0,"skipped":0,"percentage":null,"message":null,"throughput":null,"eta":null,"updated_at":"2026-12-07T04:48:13.786193837Z"},"error":null,"created_at":"2026-12-07T04:48:13.786193837Z","updated_at":"2026-12-07T04:48:13.830111Z","started_at":"2026-12-07T04:48:13.809218Z","completed_at":"2026-12-07T04:48:13.830111Z","metadata":{},"attempt":1,"attempts":[],"parent_id":null,"partition":null}'
DROP SCHEMA IF EXISTS s CASCADE; DROP SCHEMA IF EXISTS q CASCADE; DROP SCHEMA IF EXISTS f CASCADE;
CREATE SCHEMA s; CREATE SCHEMA q; CREATE SCHEMA f;
CREATE TABLE s.record AS SELECT :'rec'::text AS rec;
-- s: schema 4
CREATE TABLE s.tasks (
    id uuid NOT NULL PRIMARY KEY, task_type text NOT NULL, status text NOT NULL, created_key bigint NOT NULL,
    holder text, lease_expires_at timestamptz, epoch bigint NOT NULL DEFAULT 0, stop_requested boolean NOT NULL DEFAULT false,
    run_nanos bigint, record text NOT NULL, lost_leases integer NOT NULL DEFAULT 0, waiting boolean NOT NULL DEFAULT false,
    parent_id uuid, checkpoint_seq bigint, result text, metrics text, rev bigint NOT NULL DEFAULT 0) WITH (fillfactor = 80);
CREATE INDEX ON s.tasks (created_key, id) WHERE status = 'pending';
CREATE INDEX ON s.tasks (created_key, id) WHERE status = 'processing' AND NOT waiting;
CREATE INDEX ON s.tasks (created_key, id);
CREATE INDEX ON s.tasks (parent_id, created_key, id) WHERE parent_id IS NOT NULL;
CREATE TABLE s.task_events (id bigint GENERATED ALWAYS AS IDENTITY, task_id uuid NOT NULL, epoch bigint NOT NULL,
    worker text, event text NOT NULL, sequence bigint, at timestamptz NOT NULL);
CREATE INDEX ON s.task_events (task_id, id);
-- f: schema 4, the listing index split into partial ones
CREATE TABLE f.tasks (LIKE s.tasks INCLUDING ALL) WITH (fillfactor = 80);
DROP INDEX f.tasks_created_key_id_idx2;
CREATE INDEX ON f.tasks (created_key, id) WHERE status NOT IN ('pending', 'processing');
CREATE TABLE f.task_events (LIKE s.task_events INCLUDING ALL);
-- q: narrow queue tables, HOT updates of tasks
CREATE TABLE q.tasks (LIKE s.tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS) WITH (fillfactor = 50);
ALTER TABLE q.tasks ADD PRIMARY KEY (id);
CREATE INDEX ON q.tasks (created_key, id);
CREATE INDEX ON q.tasks (parent_id, created_key, id) WHERE parent_id IS NOT NULL;
CREATE TABLE q.pending (created_key bigint NOT NULL, id uuid NOT NULL, task_type text NOT NULL, PRIMARY KEY (created_key, id));
CREATE TABLE q.running (created_key bigint NOT NULL, id uuid NOT NULL, task_type text NOT NULL, PRIMARY KEY (created_key, id));
CREATE TABLE q.task_events (LIKE s.task_events INCLUDING ALL);
-- One run of m3's flow on schema `sch` (s or f).
CREATE PROCEDURE s.run(sch text) LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; b int; rec text := (SELECT r.rec FROM s.record r);
BEGIN
  FOR b IN 0..9 LOOP
    EXECUTE format('INSERT INTO %I.tasks (id, task_type, status, created_key, record)
      SELECT gen_random_uuid(), ''bench_empty'', ''pending'', $1 * 1000 + g, $2 FROM generate_series(1, 1000) g', sch) USING b, rec;
    COMMIT;
  END LOOP;
  LOOP
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %I.tasks WHERE status = ''pending''
      ORDER BY created_key, id LIMIT 128 FOR UPDATE SKIP LOCKED) c', sch) INTO ids;
    EXIT WHEN ids IS NULL;
    EXECUTE format('UPDATE %I.tasks t SET status = ''processing'', holder = ''w'', lease_expires_at = now(), epoch = 1,
      record = $2, rev = t.rev + 1 FROM unnest($1) AS u(id) WHERE t.id = u.id', sch) USING ids, rec;
    EXECUTE format('INSERT INTO %I.task_events (task_id, epoch, worker, event, at)
      SELECT u, 1, ''w'', ''claimed'', now() FROM unnest($1) u', sch) USING ids;
    COMMIT;
    EXECUTE format('UPDATE %I.tasks t SET status = ''completed'', holder = NULL, record = $2, result = ''null'',
      metrics = ''{}'', rev = t.rev + 1 FROM unnest($1) AS u(id) WHERE t.id = u.id', sch) USING ids, rec;
    EXECUTE format('INSERT INTO %I.task_events (task_id, epoch, worker, event, at)
      SELECT u, 1, ''w'', ''completed'', now() FROM unnest($1) u', sch) USING ids;
    COMMIT;
  END LOOP;
END $$;
-- One run of m3's flow on the queue design.
CREATE PROCEDURE q.run() LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; keys int8[]; b int; rec text := (SELECT r.rec FROM s.record r);
BEGIN
  FOR b IN 0..9 LOOP
    WITH i AS (INSERT INTO q.tasks (id, task_type, status, created_key, record)
      SELECT gen_random_uuid(), 'bench_empty', 'pending', b * 1000 + g, rec FROM generate_series(1, 1000) g
      RETURNING created_key, id, task_type)
    INSERT INTO q.pending SELECT * FROM i;
    COMMIT;
  END LOOP;
  LOOP
    -- The status check is what a concurrent claim's recheck (EvalPlanQual) would need.
    SELECT array_agg(id), array_agg(created_key) INTO ids, keys FROM (SELECT t.id, t.created_key
      FROM q.pending p JOIN q.tasks t ON t.id = p.id WHERE t.status = 'pending'
      ORDER BY p.created_key, p.id LIMIT 128 FOR UPDATE OF t SKIP LOCKED) c;
    EXIT WHEN ids IS NULL;
    DELETE FROM q.pending p USING unnest(keys, ids) AS u(k, id) WHERE p.created_key = u.k AND p.id = u.id;
    INSERT INTO q.running SELECT u.k, u.id, 'bench_empty' FROM unnest(keys, ids) AS u(k, id);
    UPDATE q.tasks t SET status = 'processing', holder = 'w', lease_expires_at = now(), epoch = 1, record = rec,
      rev = t.rev + 1 FROM unnest(ids) AS u(id) WHERE t.id = u.id;
    INSERT INTO q.task_events (task_id, epoch, worker, event, at) SELECT u, 1, 'w', 'claimed', now() FROM unnest(ids) u;
    COMMIT;
    UPDATE q.tasks t SET status = 'completed', holder = NULL, record = rec, result = 'null', metrics = '{}',
      rev = t.rev + 1 FROM unnest(ids) AS u(id) WHERE t.id = u.id;
    DELETE FROM q.running p USING unnest(keys, ids) AS u(k, id) WHERE p.created_key = u.k AND p.id = u.id;
    INSERT INTO q.task_events (task_id, epoch, worker, event, at) SELECT u, 1, 'w', 'completed', now() FROM unnest(ids) u;
    COMMIT;
  END LOOP;
END $$;
\timing on
\set round 'TRUNCATE s.tasks, s.task_events, q.tasks, q.pending, q.running, q.task_events, f.tasks, f.task_events; CHECKPOINT;'
:round
\echo s
CALL s.run('s');
:round
\echo q
CALL q.run();
:round
\echo f
CALL s.run('f');
\timing off
-- Every task-row update, and how many were HOT (this backend's counters flushed first).
SELECT pg_stat_force_next_flush() \g /dev/null
SELECT schemaname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'tasks' ORDER BY schemaname;
