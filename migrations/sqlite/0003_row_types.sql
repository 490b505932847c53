-- cronq schema, version 3: rows other programs write into `queues` must
-- hold values of the right type.
--
-- SQLite stores any value in any column: `run_at = 'abc'` was accepted,
-- and a row like it broke every listing and was never claimed. CHECK
-- constraints cannot be added to an existing table without rebuilding it
-- (a copy of every row and index: 4.7 s and twice the disk for a million
-- small jobs, and a row already at fault would stop the copy), so these
-- are triggers, which the same statement of another program meets with a
-- readable error: `INSERT ... VALUES (..., 'abc')` fails with
-- "queues.run_at must be whole milliseconds since 1970, up to the year 9999".
--
-- Inserts are checked in full. Updates are checked for the columns cronq
-- itself never changes while jobs run, so claims, heartbeats and outcomes
-- pay nothing; a wrong value written by another program into `attempts`,
-- `reserved_at`, `reserved_by`, `last_error` or `updated` is found when
-- the row is read, and the job is moved to `dead` with the reason (see
-- src/store/rows.rs), as is any row stored before this migration.
--
-- Each RAISE message is a literal, and CASE ... RAISE is old SQL, so an
-- older sqlite3 shell can still open the file.

CREATE TRIGGER queues_types_insert BEFORE INSERT ON queues BEGIN
    SELECT CASE
        WHEN typeof(NEW.id) != 'text'
            THEN RAISE(ABORT, 'queues.id must be text')
        WHEN typeof(NEW.name) != 'text'
            THEN RAISE(ABORT, 'queues.name must be text')
        WHEN typeof(NEW.description) != 'text'
            THEN RAISE(ABORT, 'queues.description must be text')
        WHEN typeof(NEW.payload) != 'text'
            THEN RAISE(ABORT, 'queues.payload must be JSON text, such as {"type":"noop","data":{}}')
        WHEN typeof(NEW.attempts) != 'integer' OR NEW.attempts < 0
            THEN RAISE(ABORT, 'queues.attempts must be a whole number, 0 or more')
        WHEN NEW.max_attempts IS NOT NULL
             AND (typeof(NEW.max_attempts) != 'integer' OR NEW.max_attempts < 1)
            THEN RAISE(ABORT, 'queues.max_attempts must be NULL or a whole number, 1 or more')
        WHEN typeof(NEW.priority) != 'integer'
            THEN RAISE(ABORT, 'queues.priority must be a whole number')
        WHEN typeof(NEW.run_at) != 'integer' OR NEW.run_at NOT BETWEEN 0 AND 253402300799999
            THEN RAISE(ABORT, 'queues.run_at must be whole milliseconds since 1970, up to the year 9999')
        WHEN NEW.timeout IS NOT NULL AND (typeof(NEW.timeout) != 'integer' OR NEW.timeout < 1)
            THEN RAISE(ABORT, 'queues.timeout must be NULL or whole seconds, 1 or more')
        WHEN NEW.reserved_at IS NOT NULL AND typeof(NEW.reserved_at) != 'integer'
            THEN RAISE(ABORT, 'queues.reserved_at must be NULL or whole milliseconds since 1970')
        WHEN NEW.reserved_by IS NOT NULL AND typeof(NEW.reserved_by) != 'text'
            THEN RAISE(ABORT, 'queues.reserved_by must be NULL or text')
        WHEN NEW.last_error IS NOT NULL AND typeof(NEW.last_error) != 'text'
            THEN RAISE(ABORT, 'queues.last_error must be NULL or text')
        WHEN NEW.unique_key IS NOT NULL AND typeof(NEW.unique_key) != 'text'
            THEN RAISE(ABORT, 'queues.unique_key must be NULL or text')
        WHEN NEW.cron_id IS NOT NULL AND typeof(NEW.cron_id) != 'text'
            THEN RAISE(ABORT, 'queues.cron_id must be NULL or text')
        WHEN typeof(NEW.created) != 'integer'
            THEN RAISE(ABORT, 'queues.created must be whole milliseconds since 1970')
        WHEN typeof(NEW.updated) != 'integer'
            THEN RAISE(ABORT, 'queues.updated must be whole milliseconds since 1970')
    END;
END;

CREATE TRIGGER queues_types_update
    BEFORE UPDATE OF id, name, description, payload, max_attempts, priority, run_at, timeout,
                     unique_key, cron_id, created
    ON queues
BEGIN
    SELECT CASE
        WHEN NEW.id IS NOT OLD.id AND typeof(NEW.id) != 'text'
            THEN RAISE(ABORT, 'queues.id must be text')
        WHEN NEW.name IS NOT OLD.name AND typeof(NEW.name) != 'text'
            THEN RAISE(ABORT, 'queues.name must be text')
        WHEN NEW.description IS NOT OLD.description AND typeof(NEW.description) != 'text'
            THEN RAISE(ABORT, 'queues.description must be text')
        WHEN NEW.payload IS NOT OLD.payload AND typeof(NEW.payload) != 'text'
            THEN RAISE(ABORT, 'queues.payload must be JSON text, such as {"type":"noop","data":{}}')
        WHEN NEW.max_attempts IS NOT OLD.max_attempts AND NEW.max_attempts IS NOT NULL
             AND (typeof(NEW.max_attempts) != 'integer' OR NEW.max_attempts < 1)
            THEN RAISE(ABORT, 'queues.max_attempts must be NULL or a whole number, 1 or more')
        WHEN NEW.priority IS NOT OLD.priority AND typeof(NEW.priority) != 'integer'
            THEN RAISE(ABORT, 'queues.priority must be a whole number')
        WHEN NEW.run_at IS NOT OLD.run_at
             AND (typeof(NEW.run_at) != 'integer' OR NEW.run_at NOT BETWEEN 0 AND 253402300799999)
            THEN RAISE(ABORT, 'queues.run_at must be whole milliseconds since 1970, up to the year 9999')
        WHEN NEW.timeout IS NOT OLD.timeout AND NEW.timeout IS NOT NULL
             AND (typeof(NEW.timeout) != 'integer' OR NEW.timeout < 1)
            THEN RAISE(ABORT, 'queues.timeout must be NULL or whole seconds, 1 or more')
        WHEN NEW.unique_key IS NOT OLD.unique_key AND NEW.unique_key IS NOT NULL
             AND typeof(NEW.unique_key) != 'text'
            THEN RAISE(ABORT, 'queues.unique_key must be NULL or text')
        WHEN NEW.cron_id IS NOT OLD.cron_id AND NEW.cron_id IS NOT NULL
             AND typeof(NEW.cron_id) != 'text'
            THEN RAISE(ABORT, 'queues.cron_id must be NULL or text')
        WHEN NEW.created IS NOT OLD.created AND typeof(NEW.created) != 'integer'
            THEN RAISE(ABORT, 'queues.created must be whole milliseconds since 1970')
    END;
END;
