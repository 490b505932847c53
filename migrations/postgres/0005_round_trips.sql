-- cronq schema for PostgreSQL, version 5: fewer round trips, and claims
-- that stay cheap while finished jobs wait for vacuum (issue 13, items 5
-- and 13; the figures are in docs/PERFORMANCE.md). Version 4 is the job
-- history's.

-- Each ready job's entries in these partial indexes go dead when it is
-- claimed or finished, and stay until vacuum. Deduplicated, the entries of
-- jobs that share a due time (a batch enqueue) are one posting list, which
-- PostgreSQL marks dead only once every job in it is gone: until then every
-- claim walks from the front of queues_ready through the heap tuples of
-- the jobs already taken. One entry per job is marked dead the first time
-- a scan finds its job gone, and skipped by every later scan. (Not
-- rebuilt here: the posting lists already there go with their jobs.)
ALTER INDEX queues_ready SET (deduplicate_items = off);
ALTER INDEX queues_running SET (deduplicate_items = off);
ALTER INDEX queues_reserved_by SET (deduplicate_items = off);

-- The claim must walk queues_ready, one short range per (priority, type).
-- To the planner queues_due (run_at, type) looks a hair cheaper for it, and
-- with it the claim's scan for a type that has no ready job walked every
-- ready job of the other types (a daemon claims for all its enabled types:
-- 1.3 ms per claim beside 100,000 ready noop jobs). Now queues_due is
-- partial on a condition the due-time and count queries state and the
-- claim does not; every row meets it, by the check.
ALTER TABLE queues ADD CONSTRAINT queues_run_at_finite CHECK (run_at > '-infinity');
DROP INDEX queues_due;
CREATE INDEX queues_due ON queues (run_at, type) WITH (deduplicate_items = off)
    WHERE status = 'pending' AND run_at > '-infinity';

-- A dispatcher's claim in one statement, so one round trip: up to p_limit
-- jobs as claims of at most p_batch each (JOB_BATCH_SIZE; each one
-- cronq_claim), stopping at the first short one; committed without waiting
-- for the WAL flush, as every claim is (a claim lost to a crash is only
-- claimed again, which fencing makes safe).
CREATE FUNCTION cronq_claim_batches(p_instance text, p_types text[], p_limit integer,
                                    p_batch integer, p_now timestamptz)
RETURNS SETOF queues LANGUAGE plpgsql AS $$
DECLARE
    v_got integer := 0;
    v_want integer;
    v_n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    WHILE v_got < p_limit LOOP
        v_want := least(greatest(p_batch, 1), p_limit - v_got);
        RETURN QUERY SELECT * FROM cronq_claim(p_instance, p_types, v_want, p_now);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_got := v_got + v_n;
        EXIT WHEN v_n < v_want;
    END LOOP;
END $$;

-- The `system_queue` minute (and a shared database's heartbeat) in one
-- statement, so one round trip, where it took thirteen: the server's clock
-- (the caller times the call to measure its offset), this daemon's
-- heartbeat, the extension of its reservations, the minute's run
-- (unique per (cron, scheduled time): when another node has it, nothing
-- more is done), the orphan runs, the count deltas folded, the claim, and
-- the run's end when nothing was claimed, and one round of pruning of the
-- history and of dead jobs (version 4's tables). Committed without waiting for
-- the WAL flush, as on SQLite: a lost minute is only drained again.
--
-- Which registered instances are dead is the caller's to judge (a process
-- on the same host is checked in /proc), so the recovery of their jobs is
-- not done here. When the instances returned may hold one (another node
-- silent past p_stale_before, or one on this host and boot) or a
-- reservation is stale, the claim and the run's end are left to the
-- caller too ("suspects"), which recovers first in a transaction of its
-- own and then claims, as before.
--
-- Rows: one per claimed job (meta NULL), then one whose job is NULL and
-- whose meta is {"server_ms", "lost" (1-based positions of the leases no
-- longer held), "fired", "run" ({"id", "status", "finished_ms",
-- "duration_ms", "error"}, or null), "instances" (each row, instants in
-- ms), "suspects", "orphans", "pruned_history", "pruned_dead"}.
CREATE FUNCTION cronq_tick(
    p_id text, p_host text, p_boot_id text, p_pid bigint, p_start_ticks bigint,
    p_version text, p_started timestamptz, p_now timestamptz, p_offset_ms bigint,
    p_workers_max bigint, p_workers_busy bigint,
    p_lease_ids text[], p_lease_attempts integer[], p_lease_holders text[],
    p_run_cron text, p_run_scheduled timestamptz, p_run_trigger text, p_run_status text,
    p_run_started timestamptz, p_run_finished timestamptz, p_run_error text,
    p_run_instance text, p_kept_runs bigint,
    p_stale_before timestamptz, p_types text[], p_limit integer, p_compact_lock bigint,
    p_quota_types text[], p_quota_counts integer[],
    p_history_before timestamptz, p_history_max bigint, p_dead_before timestamptz,
    p_prune_batch bigint)
RETURNS TABLE (meta jsonb, job queues) LANGUAGE plpgsql AS $$
DECLARE
    v_server bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
    v_boot text := split_part(p_boot_id, ':', 1);
    v_lost jsonb := '[]';
    v_run_id bigint;
    v_run jsonb;
    v_instances jsonb;
    v_suspects boolean;
    v_orphans integer;
    v_claimed integer := 0;
    v_n integer;
    v_quota record;
    v_cut bigint;
    v_expired bigint;
    v_pruned_history bigint := 0;
    v_pruned_dead bigint := 0;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO instances (id, host, boot_id, pid, start_ticks, version, started, heartbeat_at,
                           clock_offset_ms, workers_max, workers_busy)
    VALUES (p_id, p_host, p_boot_id, p_pid, p_start_ticks, p_version, p_started, p_now,
            p_offset_ms, p_workers_max, p_workers_busy)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
        clock_offset_ms = excluded.clock_offset_ms, workers_busy = excluded.workers_busy;
    IF cardinality(p_lease_ids) > 0 THEN
        -- Planned for these arrays each time (EXECUTE), not by a cached
        -- guess of ten leases and one running job.
        EXECUTE
            'WITH held AS (
                 UPDATE queues q SET reserved_at = $4
                   FROM unnest($1, $2, $3) WITH ORDINALITY AS l(id, attempts, holder, n)
                  WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = l.holder
                    AND q.status = ''running''
              RETURNING l.n)
             SELECT coalesce(jsonb_agg(a.n ORDER BY a.n), ''[]'')
               FROM generate_series(1, cardinality($1)) AS a(n)
              WHERE a.n NOT IN (SELECT n FROM held)'
          INTO v_lost
         USING p_lease_ids, p_lease_attempts, p_lease_holders, p_now;
    END IF;
    IF p_run_cron IS NOT NULL THEN
        INSERT INTO cron_runs (cron_id, scheduled_for, trigger, status, started, finished,
                               duration_ms, error, instance)
        VALUES (p_run_cron, p_run_scheduled, p_run_trigger, p_run_status, p_run_started,
                p_run_finished, CASE WHEN p_run_finished IS NULL THEN NULL ELSE 0 END,
                p_run_error, p_run_instance)
        ON CONFLICT DO NOTHING
        RETURNING id INTO v_run_id;
        IF v_run_id IS NULL THEN
            RETURN QUERY SELECT jsonb_build_object('server_ms', v_server, 'lost', v_lost,
                                                   'fired', false, 'run', NULL::jsonb,
                                                   'instances', '[]'::jsonb, 'suspects', false,
                                                   'orphans', 0),
                                NULL::queues;
            RETURN;
        END IF;
        DELETE FROM cron_runs
         WHERE cron_id = p_run_cron
           AND id <= (SELECT id FROM cron_runs WHERE cron_id = p_run_cron
                       ORDER BY id DESC LIMIT 1 OFFSET p_kept_runs);
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', i.id, 'host', i.host, 'boot_id', i.boot_id, 'pid', i.pid,
               'start_ticks', i.start_ticks, 'version', i.version,
               'started_ms', floor(extract(epoch FROM i.started) * 1000)::int8,
               'heartbeat_ms', floor(extract(epoch FROM i.heartbeat_at) * 1000)::int8,
               'workers_max', i.workers_max, 'workers_busy', i.workers_busy,
               'clock_offset_ms', i.clock_offset_ms) ORDER BY i.started), '[]')
      INTO v_instances FROM instances i;
    v_suspects := EXISTS (SELECT 1 FROM queues q
                           WHERE q.status = 'running' AND q.reserved_at < p_stale_before)
               OR EXISTS (SELECT 1 FROM instances i
                           WHERE i.id <> p_id
                             AND (i.heartbeat_at < p_stale_before
                                  OR (v_boot <> '' AND i.host = p_host
                                      AND split_part(i.boot_id, ':', 1) = v_boot)));
    UPDATE cron_runs
       SET status = 'failed', finished = p_now,
           duration_ms = GREATEST(0, floor(extract(epoch FROM (p_now - COALESCE(started, p_now))) * 1000))::int8,
           error = 'interrupted: the daemon running it stopped'
     WHERE status = 'running' AND job_id IS NULL
       AND instance NOT IN (SELECT id FROM instances);
    GET DIAGNOSTICS v_orphans = ROW_COUNT;
    IF pg_try_advisory_xact_lock(p_compact_lock) THEN
        WITH gone AS (DELETE FROM queue_counts RETURNING type, status, n)
        INSERT INTO queue_counts (type, status, n)
             SELECT g.type, g.status, SUM(g.n) FROM gone g GROUP BY g.type, g.status
             HAVING SUM(g.n) <> 0;
    END IF;
    -- One round of pruning (the history past JOB_HISTORY_RETENTION or
    -- beyond JOB_HISTORY_MAX records, dead jobs past JOB_DEAD_RETENTION), at
    -- most p_prune_batch rows a kind, as store::postgres::history::prune_on.
    IF p_prune_batch > 0 THEN
        IF p_history_max IS NOT NULL THEN
            SELECT max(h.seq) - p_history_max INTO v_cut FROM job_history h;
        END IF;
        IF p_history_before IS NOT NULL
           AND EXISTS (SELECT 1 FROM (SELECT h.finished FROM job_history h ORDER BY h.seq LIMIT 1) o
                        WHERE o.finished < p_history_before) THEN
            WITH oldest AS (SELECT h.seq, h.finished FROM job_history h ORDER BY h.seq
                             LIMIT p_prune_batch)
            SELECT max(o.seq) INTO v_expired FROM oldest o
             WHERE o.seq < coalesce((SELECT min(k.seq) FROM oldest k
                                      WHERE k.finished >= p_history_before),
                                    9223372036854775807);
            v_cut := greatest(v_cut, v_expired);
        END IF;
        IF v_cut > 0 THEN
            DELETE FROM job_history WHERE seq IN
                (SELECT h.seq FROM job_history h WHERE h.seq <= v_cut ORDER BY h.seq
                  LIMIT p_prune_batch);
            GET DIAGNOSTICS v_pruned_history = ROW_COUNT;
        END IF;
        IF p_dead_before IS NOT NULL THEN
            DELETE FROM queues WHERE id IN
                (SELECT q.id FROM queues q WHERE q.status = 'dead' AND q.updated < p_dead_before
                  ORDER BY q.updated LIMIT p_prune_batch FOR UPDATE SKIP LOCKED);
            GET DIAGNOSTICS v_pruned_dead = ROW_COUNT;
        END IF;
    END IF;
    IF NOT v_suspects THEN
        -- Types with a limit first, each within its quota, then the others
        -- in what is left of p_limit, as on SQLite.
        FOR v_quota IN SELECT * FROM unnest(p_quota_types, p_quota_counts) AS u(type, n) LOOP
            EXIT WHEN v_claimed >= p_limit;
            IF v_quota.n > 0 THEN
                RETURN QUERY SELECT NULL::jsonb, c
                  FROM cronq_claim(p_id, ARRAY[v_quota.type],
                                   least(v_quota.n, p_limit - v_claimed), p_now) AS c;
                GET DIAGNOSTICS v_n = ROW_COUNT;
                v_claimed := v_claimed + v_n;
            END IF;
        END LOOP;
        IF p_limit > v_claimed THEN
            RETURN QUERY SELECT NULL::jsonb, c
              FROM cronq_claim(p_id, p_types, p_limit - v_claimed, p_now) AS c;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_claimed := v_claimed + v_n;
        END IF;
        IF v_claimed = 0 AND v_run_id IS NOT NULL THEN
            UPDATE cron_runs r
               SET status = 'ok', error = NULL, finished = p_now,
                   duration_ms = GREATEST(0, floor(extract(epoch FROM (p_now - COALESCE(r.started, p_now))) * 1000))::int8
             WHERE r.id = v_run_id AND r.status = 'running';
        END IF;
    END IF;
    IF v_run_id IS NOT NULL THEN
        SELECT jsonb_build_object('id', r.id, 'status', r.status,
                                  'finished_ms', floor(extract(epoch FROM r.finished) * 1000)::int8,
                                  'duration_ms', r.duration_ms, 'error', r.error)
          INTO v_run FROM cron_runs r WHERE r.id = v_run_id;
    END IF;
    RETURN QUERY SELECT jsonb_build_object('server_ms', v_server, 'lost', v_lost, 'fired', true,
                                           'run', v_run, 'instances', v_instances,
                                           'suspects', v_suspects, 'orphans', v_orphans,
                                           'pruned_history', v_pruned_history,
                                           'pruned_dead', v_pruned_dead),
                        NULL::queues;
END $$;
