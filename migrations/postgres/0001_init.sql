-- cronq schema for PostgreSQL, version 1: the tables and columns of the
-- SQLite schema (migrations/0001_init.sql and 0002_claim_by_type.sql),
-- with jsonb payloads and timestamptz instants.
--
-- Every column a program writing rows straight into `queues` would not
-- know has a default, so `INSERT INTO queues (name, payload) VALUES (...)`
-- inside an application's own transaction makes a runnable job, which
-- exists if and only if that transaction commits; a statement trigger
-- wakes the daemons at commit. `cronq_enqueue(...)` does the same with
-- the socket's checks.

-- Ids in the style of the replaced system: 15 characters [a-z0-9].
CREATE FUNCTION cronq_new_id() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz0123456789',
                             1 + floor(random() * 36)::int, 1), '')
      FROM generate_series(1, 15)
$$;

CREATE TABLE queues (
    id           text        NOT NULL PRIMARY KEY DEFAULT cronq_new_id(),
    name         text        NOT NULL DEFAULT '',
    description  text        NOT NULL DEFAULT '',
    payload      jsonb       NOT NULL
                             CHECK (jsonb_typeof(payload -> 'type') = 'string'),
    -- Kept equal to payload.type by PostgreSQL itself.
    type         text        GENERATED ALWAYS AS (payload ->> 'type') STORED,
    -- 'scheduled' is not stored: it is a pending job whose run_at is ahead.
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'running', 'dead')),
    attempts     integer     NOT NULL DEFAULT 0,
    -- NULL: 1 + payload.options.retry_count, else 1 + JOB_MAX_RETRIES.
    max_attempts integer,
    priority     bigint      NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    -- Seconds per attempt. NULL: payload.options.timeout, else JOB_TIMEOUT_SECONDS.
    timeout      integer,
    reserved_at  timestamptz,
    reserved_by  text,
    last_error   text,
    unique_key   text,
    cron_id      text,
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now()
);

-- The claim: ready jobs by priority, then age, one range per (priority,
-- type); see cronq_claim below. Partial, so running and dead rows cost it
-- nothing.
CREATE INDEX queues_ready ON queues (priority DESC, type, run_at) WHERE status = 'pending';
-- The next due time, the scheduled count and the oldest pending age.
CREATE INDEX queues_due ON queues (run_at, type) WHERE status = 'pending';
-- Recovery of stale reservations, and of a dead node's.
CREATE INDEX queues_running ON queues (reserved_at) WHERE status = 'running';
CREATE INDEX queues_reserved_by ON queues (reserved_by) WHERE status = 'running';
-- Listing newest first.
CREATE INDEX queues_created ON queues (created, id);
CREATE INDEX queues_type_created ON queues (type, created, id);
CREATE INDEX queues_dead ON queues (updated) WHERE status = 'dead';
-- A unique key holds while its job is pending, scheduled or running.
CREATE UNIQUE INDEX queues_unique_key ON queues (unique_key)
    WHERE unique_key IS NOT NULL AND status <> 'dead';
-- A cron's overlap check: is its last job still in the queue?
CREATE INDEX queues_cron ON queues (cron_id) WHERE cron_id IS NOT NULL;

-- Counts by type and status, for `status`, `stats`, the queue cap and
-- systemd's STATUS= line, without counting a million rows. Unlike SQLite's
-- one row per (type, status), these are deltas: each statement on `queues`
-- appends its net change, so transactions on many nodes never wait for
-- each other on a counter row. A reader sums them; the store folds them
-- together now and then (see compact_counts in src/store/postgres/).
CREATE TABLE queue_counts (
    type   text   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL
);
CREATE INDEX queue_counts_status ON queue_counts (status);

CREATE FUNCTION cronq_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_counts (type, status, n)
        SELECT type, status, count(*) FROM new_rows GROUP BY type, status;
    RETURN NULL;
END $$;

CREATE FUNCTION cronq_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_counts (type, status, n)
        SELECT type, status, -count(*) FROM old_rows GROUP BY type, status;
    RETURN NULL;
END $$;

CREATE FUNCTION cronq_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_counts (type, status, n)
        SELECT type, status, sum(d) FROM (
            SELECT type, status, -1 AS d FROM old_rows
            UNION ALL
            SELECT type, status, 1 FROM new_rows
        ) AS changes
        GROUP BY type, status HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER queues_count_insert AFTER INSERT ON queues
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cronq_count_insert();
CREATE TRIGGER queues_count_delete AFTER DELETE ON queues
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cronq_count_delete();
CREATE TRIGGER queues_count_update AFTER UPDATE ON queues
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cronq_count_update();

-- Wake-ups: one notification on channel cronq_jobs per statement that
-- inserted jobs, delivered at commit (never for a rolled-back
-- transaction). Identical notifications in one transaction are delivered
-- once, so a transaction of many inserts wakes each node once.
CREATE FUNCTION cronq_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('cronq_jobs', 'insert');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER queues_notify_insert AFTER INSERT ON queues
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cronq_notify_insert();

-- The last failures of each job, for `job`. Gone with the job.
CREATE TABLE job_errors (
    job_id  text        NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    attempt integer     NOT NULL,
    at      timestamptz NOT NULL,
    error   text        NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- Every running daemon, so reservations held by a dead one are released.
CREATE TABLE instances (
    id              text        NOT NULL PRIMARY KEY,
    host            text        NOT NULL,
    boot_id         text        NOT NULL,
    pid             bigint      NOT NULL,
    start_ticks     bigint      NOT NULL,
    version         text        NOT NULL,
    started         timestamptz NOT NULL,
    heartbeat_at    timestamptz NOT NULL,
    -- This daemon's clock minus the server's, as last measured.
    clock_offset_ms bigint      NOT NULL DEFAULT 0,
    -- Its JOB_MAX_WORKERS, and its workers running a job, at its last
    -- heartbeat: what `instances` shows.
    workers_max     bigint      NOT NULL DEFAULT 0,
    workers_busy    bigint      NOT NULL DEFAULT 0
);

-- Every run of every cron. The unique index is what makes a scheduled run
-- fire once, however many daemons share the database.
CREATE TABLE cron_runs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cron_id       text        NOT NULL,
    scheduled_for timestamptz NOT NULL,
    trigger       text        NOT NULL CHECK (trigger IN ('schedule', 'manual', 'catch_up')),
    status        text        NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'skipped')),
    started       timestamptz,
    finished      timestamptz,
    duration_ms   bigint,
    error         text,
    job_id        text,
    instance      text
);
CREATE UNIQUE INDEX cron_runs_once ON cron_runs (cron_id, scheduled_for)
    WHERE trigger <> 'manual';
CREATE INDEX cron_runs_by_cron ON cron_runs (cron_id, id);
CREATE INDEX cron_runs_by_job ON cron_runs (job_id) WHERE job_id IS NOT NULL;

-- Runtime switches (`enable`/`disable`) that outlive a restart, for the
-- whole cluster.
CREATE TABLE cron_state (
    cron_id text        NOT NULL PRIMARY KEY,
    enabled boolean     NOT NULL,
    updated timestamptz NOT NULL
);

-- The claim: up to p_limit ready jobs of p_types for p_instance, highest
-- priority first, then oldest run_at, each row locked with SKIP LOCKED so
-- daemons claiming at once never take the same job and never wait for
-- each other. Attempts are counted here, at claim time.
--
-- One priority at a time, highest first (each found by one index seek);
-- within it, each type's ready rows are one range of queues_ready, merged
-- by run_at. So a claim's cost does not grow with scheduled jobs or with
-- ready jobs of types this daemon does not run. Merging locks up to
-- p_limit rows per type before the best p_limit are kept; the others are
-- only locked, not changed, until this transaction ends.
CREATE FUNCTION cronq_claim(p_instance text, p_types text[], p_limit integer, p_now timestamptz)
RETURNS SETOF queues LANGUAGE plpgsql AS $$
DECLARE
    v_level bigint;
    v_got integer := 0;
    v_n integer;
BEGIN
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
               reserved_by = p_instance, updated = p_now
          FROM picked
         WHERE q.id = picked.id
        RETURNING q.*;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_got := v_got + v_n;
        SELECT max(q.priority) INTO v_level FROM queues q
         WHERE q.status = 'pending' AND q.priority < v_level;
    END LOOP;
END $$;

-- Enqueue from SQL, inside the caller's transaction: the job exists if and
-- only if that transaction commits, and daemons wake at its commit.
--
--   SELECT cronq_enqueue('welcome mail',
--                        '{"type": "email", "data": {"to": "a@example.com"}}',
--                        run_at => now() + interval '5 minutes',
--                        priority => 5, unique_key => 'welcome:42');
--
-- payload is {"type", "data", "options"} as `enqueue` takes it. Checks
-- what SQL can (as a socket enqueue does): the type is a non-empty string,
-- data an object, the name 1..200 characters, description at most 2000,
-- unique_key 1..200, options.retry_count 0..100, options.timeout
-- 1..86400 seconds, priority within 32 bits. Whether a handler for the
-- type is registered, and its own check of data, happen at claim: a job
-- that fails them goes dead with the reason. Returns the new job's id, or,
-- when a waiting or running job holds unique_key, that job's id.
CREATE FUNCTION cronq_enqueue(
    name text,
    payload jsonb,
    run_at timestamptz DEFAULT now(),
    priority bigint DEFAULT 0,
    unique_key text DEFAULT NULL,
    description text DEFAULT ''
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_options jsonb := coalesce(payload -> 'options', '{}'::jsonb);
    v_id text;
BEGIN
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'cronq_enqueue: payload must be a JSON object {"type", "data", "options"}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(payload -> 'type') IS DISTINCT FROM 'string' OR payload ->> 'type' = '' THEN
        RAISE EXCEPTION 'cronq_enqueue: payload.type must name a job type, such as "email"'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF payload ? 'data' AND jsonb_typeof(payload -> 'data') <> 'object' THEN
        RAISE EXCEPTION 'cronq_enqueue: payload.data must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(v_options) <> 'object' THEN
        RAISE EXCEPTION 'cronq_enqueue: payload.options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF name IS NULL OR char_length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'cronq_enqueue: name must be 1 to 200 characters, got %', coalesce(char_length(name), 0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF char_length(coalesce(description, '')) > 2000 THEN
        RAISE EXCEPTION 'cronq_enqueue: description must be at most 2000 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF unique_key IS NOT NULL AND char_length(unique_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'cronq_enqueue: unique_key must be 1 to 200 characters, got %', char_length(unique_key)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_options ? 'retry_count' AND (jsonb_typeof(v_options -> 'retry_count') <> 'number'
            OR (v_options ->> 'retry_count')::numeric NOT BETWEEN 0 AND 100
            OR (v_options ->> 'retry_count')::numeric % 1 <> 0) THEN
        RAISE EXCEPTION 'cronq_enqueue: payload.options.retry_count must be from 0 to 100, got %', v_options -> 'retry_count'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_options ? 'timeout' AND (jsonb_typeof(v_options -> 'timeout') <> 'number'
            OR (v_options ->> 'timeout')::numeric NOT BETWEEN 1 AND 86400
            OR (v_options ->> 'timeout')::numeric % 1 <> 0) THEN
        RAISE EXCEPTION 'cronq_enqueue: payload.options.timeout must be from 1 to 86400 seconds, got %', v_options -> 'timeout'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF priority IS NULL OR priority NOT BETWEEN -2147483648 AND 2147483647 THEN
        RAISE EXCEPTION 'cronq_enqueue: priority must be within -2147483648..2147483647, got %', priority
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO queues (name, description, payload, priority, run_at, unique_key)
    VALUES (cronq_enqueue.name, coalesce(cronq_enqueue.description, ''),
            jsonb_set(cronq_enqueue.payload, '{data}', coalesce(cronq_enqueue.payload -> 'data', '{}'::jsonb)),
            cronq_enqueue.priority, coalesce(cronq_enqueue.run_at, now()), cronq_enqueue.unique_key)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL AND cronq_enqueue.unique_key IS NOT NULL THEN
        SELECT q.id INTO v_id FROM queues q
         WHERE q.unique_key = cronq_enqueue.unique_key AND q.status <> 'dead';
    END IF;
    RETURN v_id;
END $$;

COMMENT ON FUNCTION cronq_enqueue(text, jsonb, timestamptz, bigint, text, text) IS
    'Enqueue a cronq job inside the calling transaction; returns its id (or the id of the job holding unique_key).';
