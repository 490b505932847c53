-- What `instances` shows of each daemon on the file besides its identity:
-- its JOB_MAX_WORKERS and how many of its workers ran a job, as of its
-- last heartbeat. Rows of daemons that registered before this migration
-- read 0 until their next heartbeat re-registers them.
ALTER TABLE instances ADD COLUMN workers_max  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN workers_busy INTEGER NOT NULL DEFAULT 0;
