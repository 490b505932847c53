-- cronq schema for PostgreSQL, version 2: the ledger of records taken over
-- from another system (a PocketBase collection), as on SQLite
-- (migrations/sqlite/0004_import_ledger.sql): each record becomes one job
-- however often it is seen, because the entry and the job are written in
-- one transaction, and a second node inserting the same record waits on
-- the primary key and then finds it.
CREATE TABLE import_ledger (
    source    text        NOT NULL,
    record_id text        NOT NULL,
    job_id    text        NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (source, record_id)
);
