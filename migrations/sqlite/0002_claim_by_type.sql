-- cronq schema, version 2: indexes that keep the claim, the counts and the
-- `jobs --type` listing independent of how many jobs wait.
--
-- The claim walked `queues_ready (priority DESC, run_at)` from its start and
-- filtered `run_at <= now` and `type` row by row, so with a million pending
-- jobs that were all scheduled ahead, or all of a type this daemon does not
-- run, every claim read the whole index (and the table for `type`). With
-- `type` before `run_at` the claim seeks straight to the ready rows of each
-- (priority, type) it wants; see `claim` in src/store/jobs.rs.
DROP INDEX queues_ready;
CREATE INDEX queues_ready ON queues (priority DESC, type, run_at) WHERE status = 'pending';

-- `type` in the index lets the scheduled split of `status` and `stats`, and
-- `next_due`, count and filter without reading the table.
DROP INDEX queues_due;
CREATE INDEX queues_due ON queues (run_at, type) WHERE status = 'pending';

-- `jobs --type T`, newest first, without walking every other type's rows.
CREATE INDEX queues_type_created ON queues (type, created, id);
