-- cronq schema, version 1.
--
-- Instants are integer milliseconds since the Unix epoch (UTC). Every column
-- a program writing rows straight into `queues` would not know has a default,
-- so `INSERT INTO queues (name, payload) VALUES (...)` makes a runnable job,
-- as the replaced system's collection allowed.

CREATE TABLE queues (
    id           TEXT    NOT NULL PRIMARY KEY
                         DEFAULT (lower(substr(hex(randomblob(8)), 1, 15))),
    name         TEXT    NOT NULL DEFAULT '',
    description  TEXT    NOT NULL DEFAULT '',
    payload      TEXT    NOT NULL
                         CHECK (json_valid(payload) AND json_type(payload, '$.type') = 'text'),
    -- Kept equal to payload.type by SQLite itself.
    type         TEXT    GENERATED ALWAYS AS (json_extract(payload, '$.type')) STORED,
    -- 'scheduled' is not stored: it is a pending job whose run_at is ahead.
    status       TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    -- NULL: 1 + payload.options.retry_count, else 1 + JOB_MAX_RETRIES.
    max_attempts INTEGER,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    -- Seconds per attempt. NULL: payload.options.timeout, else JOB_TIMEOUT_SECONDS.
    timeout      INTEGER,
    reserved_at  INTEGER,
    reserved_by  TEXT,
    last_error   TEXT,
    unique_key   TEXT,
    cron_id      TEXT,
    created      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

-- The claim: ready jobs by priority, then age. Partial, so running and dead
-- rows cost it nothing.
CREATE INDEX queues_ready ON queues (priority DESC, run_at) WHERE status = 'pending';
-- The next due time, the scheduled count and the oldest pending age.
CREATE INDEX queues_due ON queues (run_at) WHERE status = 'pending';
-- Recovery of stale reservations.
CREATE INDEX queues_running ON queues (reserved_at) WHERE status = 'running';
-- Listing newest first.
CREATE INDEX queues_created ON queues (created, id);
CREATE INDEX queues_dead ON queues (created) WHERE status = 'dead';
-- A unique key holds while its job is pending, scheduled or running.
CREATE UNIQUE INDEX queues_unique_key ON queues (unique_key)
    WHERE unique_key IS NOT NULL AND status != 'dead';
-- A cron's overlap check: is its last job still in the queue?
CREATE INDEX queues_cron ON queues (cron_id) WHERE cron_id IS NOT NULL;

-- Counts by type and status, kept by triggers so `status`, `stats`, the
-- queue cap and systemd's STATUS= line never count a million rows.
CREATE TABLE queue_counts (
    type   TEXT    NOT NULL,
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (type, status)
) WITHOUT ROWID;

CREATE TRIGGER queues_count_insert AFTER INSERT ON queues BEGIN
    INSERT INTO queue_counts (type, status, n) VALUES (NEW.type, NEW.status, 1)
        ON CONFLICT (type, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER queues_count_delete AFTER DELETE ON queues BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE type = OLD.type AND status = OLD.status;
END;

CREATE TRIGGER queues_count_update AFTER UPDATE OF status, payload ON queues
    WHEN OLD.status != NEW.status OR OLD.type IS NOT NEW.type
BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE type = OLD.type AND status = OLD.status;
    INSERT INTO queue_counts (type, status, n) VALUES (NEW.type, NEW.status, 1)
        ON CONFLICT (type, status) DO UPDATE SET n = n + 1;
END;

-- The last failures of each job, for `job`. Gone with the job.
CREATE TABLE job_errors (
    job_id  TEXT    NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    error   TEXT    NOT NULL,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

-- Every running daemon, so reservations held by a dead one can be released.
CREATE TABLE instances (
    id           TEXT    NOT NULL PRIMARY KEY,
    host         TEXT    NOT NULL,
    boot_id      TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    -- The process's start time in clock ticks since boot: with boot_id it
    -- tells a live pid from a reused one.
    start_ticks  INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    started      INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Every run of every cron. The unique index is what makes a scheduled run
-- fire once, however many daemons share the file.
CREATE TABLE cron_runs (
    id            INTEGER PRIMARY KEY,
    cron_id       TEXT    NOT NULL,
    scheduled_for INTEGER NOT NULL,
    trigger       TEXT    NOT NULL CHECK (trigger IN ('schedule', 'manual', 'catch_up')),
    status        TEXT    NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'skipped')),
    started       INTEGER,
    finished      INTEGER,
    duration_ms   INTEGER,
    error         TEXT,
    job_id        TEXT,
    instance      TEXT
);
CREATE UNIQUE INDEX cron_runs_once ON cron_runs (cron_id, scheduled_for)
    WHERE trigger != 'manual';
CREATE INDEX cron_runs_by_cron ON cron_runs (cron_id, id);
CREATE INDEX cron_runs_by_job ON cron_runs (job_id) WHERE job_id IS NOT NULL;

-- Runtime switches (`enable`/`disable`) that outlive a restart.
CREATE TABLE cron_state (
    cron_id TEXT    NOT NULL PRIMARY KEY,
    enabled INTEGER NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;
