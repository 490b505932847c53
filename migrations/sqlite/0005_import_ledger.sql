-- cronq schema, version 4: the ledger of records taken over from another
-- system (a PocketBase collection), so that each becomes one job however
-- often it is seen. A unique key holds only while its job waits or runs;
-- the ledger holds for good. It is written in the job's own transaction
-- (see src/store/import.rs), about 60 bytes a record, and never pruned:
-- a record id is random, so an entry only ever matters for its record.
CREATE TABLE import_ledger (
    source    TEXT    NOT NULL,
    record_id TEXT    NOT NULL,
    job_id    TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (source, record_id)
) WITHOUT ROWID;
