-- cronq schema for PostgreSQL, version 3: what each daemon's crons file
-- defines, as on SQLite (migrations/sqlite/0006_cron_definitions.sql), so
-- that nodes whose files give the same cron id different definitions are
-- reported. One row per (instance, file cron) with a digest of the
-- definition, written at start-up and on every reload, deleted with the
-- instance's row.
CREATE TABLE cron_definitions (
    instance_id text        NOT NULL,
    cron_id     text        NOT NULL,
    digest      text        NOT NULL,
    updated     timestamptz NOT NULL,
    PRIMARY KEY (instance_id, cron_id)
);
