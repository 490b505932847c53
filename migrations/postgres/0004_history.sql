-- cronq schema for PostgreSQL, version 4: the history of finished jobs and
-- pauses, as SQLite's 0007_history.sql (issue 14).
--
-- A job that ends (succeeded, dead, cancelled) leaves a record in
-- job_history, written in the same transaction as its outcome. `seq`
-- numbers the records in the order they were written (a record replaced by
-- a later ending of the same job takes a new number): the listing's order
-- and cursor, and what the row cap and retention prune from the oldest end.

-- When a job's first attempt was claimed, for its history record.
ALTER TABLE queues ADD COLUMN started timestamptz;

CREATE SEQUENCE job_history_seq;
CREATE TABLE job_history (
    seq          bigint      NOT NULL PRIMARY KEY DEFAULT nextval('job_history_seq'),
    id           text        NOT NULL,
    name         text        NOT NULL,
    description  text        NOT NULL,
    type         text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('succeeded', 'dead', 'cancelled')),
    attempts     integer     NOT NULL,
    max_attempts integer     NOT NULL,
    priority     bigint      NOT NULL,
    run_at       timestamptz NOT NULL,
    last_error   text,
    unique_key   text,
    cron_id      text,
    created      timestamptz NOT NULL,
    started      timestamptz,
    finished     timestamptz NOT NULL,
    duration_ms  bigint,
    -- The handler's result, at most 16 KiB of JSON text.
    result       jsonb
);
ALTER SEQUENCE job_history_seq OWNED BY job_history.seq;
-- One record per job: a dead job retried and ended again replaces its own.
-- Ids begin with their creation time, so this index grows at its end.
CREATE UNIQUE INDEX job_history_id ON job_history (id);
-- Listings walk `seq` from the newest record and filter as they go (see
-- the SQLite migration for why there is no index by type or status).
CREATE INDEX job_history_cron ON job_history (cron_id, seq) WHERE cron_id IS NOT NULL;

-- `pause`: job types no daemon of the cluster claims until `resume`; '*'
-- pauses them all. cronq_claim reads it, so every node honours a pause at
-- its next claim.
CREATE TABLE job_pauses (
    type      text        NOT NULL PRIMARY KEY,
    paused_at timestamptz NOT NULL
);

-- The claim of 0001_init.sql, now leaving paused types alone and noting
-- when a job was first claimed.
CREATE OR REPLACE FUNCTION cronq_claim(p_instance text, p_types text[], p_limit integer, p_now timestamptz)
RETURNS SETOF queues LANGUAGE plpgsql AS $$
DECLARE
    v_level bigint;
    v_got integer := 0;
    v_n integer;
BEGIN
    IF EXISTS (SELECT 1 FROM job_pauses WHERE type = '*') THEN
        RETURN;
    END IF;
    p_types := ARRAY(SELECT t FROM unnest(p_types) AS t
                      WHERE NOT EXISTS (SELECT 1 FROM job_pauses p WHERE p.type = t));
    IF p_limit <= 0 OR coalesce(cardinality(p_types), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT max(q.priority) INTO v_level FROM queues q WHERE q.status = 'pending';
    WHILE v_level IS NOT NULL AND v_got < p_limit LOOP
        RETURN QUERY
        WITH picked AS (
            SELECT c.id
              FROM unnest(p_types) AS t(job_type)
             CROSS JOIN LATERAL (
                   SELECT q.id, q.run_at FROM queues q
                    WHERE q.status = 'pending' AND q.priority = v_level
                      AND q.type = t.job_type AND q.run_at <= p_now
                    ORDER BY q.run_at
                    LIMIT p_limit - v_got
                      FOR UPDATE SKIP LOCKED) AS c
             ORDER BY c.run_at
             LIMIT p_limit - v_got)
        UPDATE queues q
           SET status = 'running', attempts = q.attempts + 1, reserved_at = p_now,
               reserved_by = p_instance, updated = p_now, started = coalesce(q.started, p_now)
          FROM picked
         WHERE q.id = picked.id
        RETURNING q.*;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_got := v_got + v_n;
        SELECT max(q.priority) INTO v_level FROM queues q
         WHERE q.status = 'pending' AND q.priority < v_level;
    END LOOP;
END $$;
