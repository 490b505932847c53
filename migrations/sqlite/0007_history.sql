-- cronq schema, version 7: the history of finished jobs, pauses, and the
-- index the dead jobs' retention prunes by (issue 14).
--
-- A job that ends (succeeded, dead, cancelled) leaves a record in
-- job_history, written in the same transaction as its outcome; `queues`
-- keeps the replaced system's meaning (a job that succeeded leaves it).
-- `seq` numbers the records in the order they were written: the listing's
-- order and cursor, and what the row cap and retention prune from the
-- oldest end. A record keeps no payload: a million of them must not be a
-- disk's worth.

-- When a job's first attempt was claimed, for its history record. Set by
-- the claim when still NULL; NULL in rows of other programs until then.
ALTER TABLE queues ADD COLUMN started INTEGER;

CREATE TABLE job_history (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('succeeded', 'dead', 'cancelled')),
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    last_error   TEXT,
    unique_key   TEXT,
    cron_id      TEXT,
    created      INTEGER NOT NULL,
    started      INTEGER,
    finished     INTEGER NOT NULL,
    duration_ms  INTEGER,
    -- The handler's result, JSON text of at most 16 KiB.
    result       TEXT
);
-- One record per job: a dead job retried and ended again replaces its own.
-- Job ids begin with their creation time (see `new_id`), so this index,
-- like `seq`, grows at its end instead of at random pages: a record costs
-- a completion little more than its row.
CREATE UNIQUE INDEX job_history_id ON job_history (id);
-- Listings (`jobs --status succeeded [--type T] [--name N]`) walk `seq`
-- from the newest record and filter as they go: nearly every record is a
-- success, so a page is found at once. An index on (type, status, seq)
-- would find a rare type's page faster, but it cost every completion a
-- fifth more CPU in benches/throughput.rs (on a million records, such a
-- listing reads up to the whole table, about a second).
-- A cron's jobs (`jobs --cron-id C`, the runs of `cron ID`).
CREATE INDEX job_history_cron ON job_history (cron_id, seq) WHERE cron_id IS NOT NULL;

-- `pause`: job types no daemon claims until `resume`; '*' pauses them all.
CREATE TABLE job_pauses (
    type      TEXT    NOT NULL PRIMARY KEY,
    paused_at INTEGER NOT NULL
) WITHOUT ROWID;

-- JOB_DEAD_RETENTION prunes dead jobs by the time they died.
CREATE INDEX queues_dead_updated ON queues (updated) WHERE status = 'dead';
