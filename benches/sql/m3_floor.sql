-- m3's server-side floor in SQL alone (docs/BENCHMARKS.md, m3 section): 10,000 jobs created in
-- batches of 1,000, claimed 128 at a time and completed, each batch its own transaction, in one
-- backend with no client work, for River's data model (a narrow jobs row, no audit trail) and for
-- pump's (schema 4's task row with a 560-byte record, two audit rows per task), with the record
-- and the audit trail left out in turn. Run it in psql against a scratch database of a throwaway
-- server with default settings (it creates and drops the schemas `r` and `p`):
--   psql -q -f benches/sql/m3_floor.sql
-- and compare the CALLs' times (the minimum of several runs: single runs here spread by 1.5x).
\timing on
DROP SCHEMA IF EXISTS r CASCADE; DROP SCHEMA IF EXISTS p CASCADE;
CREATE SCHEMA r; CREATE SCHEMA p;
-- River-like model
CREATE TABLE r.jobs (id bigserial PRIMARY KEY, kind text NOT NULL, state text NOT NULL DEFAULT 'available',
  queue text NOT NULL DEFAULT 'default', priority smallint NOT NULL DEFAULT 1, scheduled_at timestamptz NOT NULL DEFAULT now(),
  attempt int NOT NULL DEFAULT 0, attempted_at timestamptz, attempted_by text[], finalized_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(), args jsonb NOT NULL DEFAULT '{}', metadata jsonb NOT NULL DEFAULT '{}', errors jsonb[]);
CREATE INDEX ON r.jobs (state, queue, priority, scheduled_at, id);
CREATE INDEX ON r.jobs (kind);
CREATE INDEX ON r.jobs (state, finalized_at) WHERE finalized_at IS NOT NULL;
CREATE PROCEDURE r.run() LANGUAGE plpgsql AS $$
DECLARE ids bigint[]; b int;
BEGIN
  FOR b IN 1..10 LOOP
    INSERT INTO r.jobs (kind) SELECT 'noop' FROM generate_series(1, 1000);
    COMMIT;
  END LOOP;
  LOOP
    WITH c AS (SELECT id FROM r.jobs WHERE state = 'available' AND queue = 'default' ORDER BY priority, scheduled_at, id LIMIT 128 FOR UPDATE SKIP LOCKED)
    UPDATE r.jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), attempted_by = ARRAY['w'] FROM c WHERE j.id = c.id;
    SELECT array_agg(id) INTO ids FROM r.jobs WHERE state = 'running';
    COMMIT;
    EXIT WHEN ids IS NULL;
    UPDATE r.jobs j SET state = 'completed', finalized_at = now() FROM unnest(ids) AS u(id) WHERE j.id = u.id;
    COMMIT;
  END LOOP;
END $$;
-- pump model (schema 4 tasks + events)
CREATE TABLE p.tasks (
    id uuid NOT NULL PRIMARY KEY, task_type text NOT NULL, status text NOT NULL, created_key bigint NOT NULL,
    holder text, lease_expires_at timestamptz, epoch bigint NOT NULL DEFAULT 0, stop_requested boolean NOT NULL DEFAULT false,
    run_nanos bigint, record text NOT NULL, lost_leases integer NOT NULL DEFAULT 0, waiting boolean NOT NULL DEFAULT false,
    parent_id uuid, checkpoint_seq bigint, result text, metrics text, rev bigint NOT NULL DEFAULT 0) WITH (fillfactor = 80);
CREATE INDEX ON p.tasks (created_key, id) WHERE status = 'pending';
CREATE INDEX ON p.tasks (created_key, id);
CREATE INDEX ON p.tasks (parent_id, created_key, id) WHERE parent_id IS NOT NULL;
CREATE INDEX ON p.tasks (created_key, id) WHERE status = 'processing' AND NOT waiting;
CREATE TABLE p.task_events (id bigint GENERATED ALWAYS AS IDENTITY, task_id uuid NOT NULL, epoch bigint NOT NULL, worker text, event text NOT NULL, sequence bigint, at timestamptz NOT NULL);
CREATE INDEX ON p.task_events (task_id, id);
CREATE PROCEDURE p.run(with_events boolean, wide boolean) LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; b int; rec text := CASE WHEN wide THEN repeat('x', 560) ELSE '{}' END;
BEGIN
  FOR b IN 0..9 LOOP
    INSERT INTO p.tasks (id, task_type, status, created_key, record) SELECT gen_random_uuid(), 'bench_empty', 'pending', b * 1000 + g, rec FROM generate_series(1, 1000) g;
    COMMIT;
  END LOOP;
  LOOP
    SELECT array_agg(id) INTO ids FROM (SELECT id FROM p.tasks WHERE status = 'pending' ORDER BY created_key, id LIMIT 128 FOR UPDATE SKIP LOCKED) c;
    EXIT WHEN ids IS NULL;
    UPDATE p.tasks t SET status = 'processing', holder = 'w', lease_expires_at = now(), epoch = 1, record = rec, rev = t.rev + 1 FROM unnest(ids) AS u(id) WHERE t.id = u.id;
    IF with_events THEN INSERT INTO p.task_events (task_id, epoch, worker, event, at) SELECT u, 1, 'w', 'claimed', now() FROM unnest(ids) u; END IF;
    COMMIT;
    UPDATE p.tasks t SET status = 'completed', holder = NULL, record = rec, result = '{}', metrics = '{}', rev = t.rev + 1 FROM unnest(ids) AS u(id) WHERE t.id = u.id;
    IF with_events THEN INSERT INTO p.task_events (task_id, epoch, worker, event, at) SELECT u, 1, 'w', 'completed', now() FROM unnest(ids) u; END IF;
    COMMIT;
  END LOOP;
END $$;
CHECKPOINT;
\echo river-like
CALL r.run();
CHECKPOINT;
\echo pump events wide
CALL p.run(true, true);
TRUNCATE p.tasks, p.task_events; CHECKPOINT;
\echo pump noevents wide
CALL p.run(false, true);
TRUNCATE p.tasks, p.task_events; CHECKPOINT;
\echo pump events narrow
CALL p.run(true, false);
TRUNCATE p.tasks, p.task_events; CHECKPOINT;
\echo pump noevents narrow
CALL p.run(false, false);
