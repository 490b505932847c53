-- cronq schema, version 6: what each daemon's crons file defines, so that
-- daemons on one database whose files give the same cron id different
-- definitions are reported (`crons` marks the conflict, the log names the
-- nodes). One row per (instance, file cron): a digest of the definition
-- (schedule, time zone, job type, data and options, overlap, catch_up,
-- enabled), written at start-up and on every reload, deleted with the
-- instance's row.
CREATE TABLE cron_definitions (
    instance_id TEXT    NOT NULL,
    cron_id     TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (instance_id, cron_id)
) WITHOUT ROWID;
