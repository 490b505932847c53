//! The queue's SQL: enqueue, claim, release, extend, recover, and the
//! reads behind `jobs`, `job`, `status` and `stats`. Outcomes (complete,
//! fail) are `outcomes`'.
//!
//! Every write about a running job is fenced on `(id, attempts,
//! reserved_by)` and reports whether it matched; see [`Lease`].
//! `attempts` is counted at claim time, so a job that crashes the daemon
//! still uses up its attempts and cannot crash-loop it forever.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, named_params, params};

use super::crons::settle_job_run;
use super::filter::Where;
use super::history::record_ending;
pub(super) use super::rows::JOB_COLUMNS;
use super::rows::{self, RowRead};
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{Ending, FinalStatus};
use crate::store::job::{
    AttemptError, Claimed, Counts, Enqueued, Job, JobDefaults, JobStatus, KEPT_ERRORS, Lease,
    ListFilter, NewJob, Recovered, new_id,
};
use crate::store::run::RunStatus;

impl SqliteStore {
    /// Stores `jobs` all or nothing, durably. A job whose unique key is held
    /// by a waiting or running job is not stored; that job is returned,
    /// marked duplicate. `max_pending` caps pending plus scheduled jobs.
    pub async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Enqueued>, StoreError> {
        // One job joins others' transaction; a batch gets its own.
        let mode = if jobs.len() > 1 {
            Mode::Alone
        } else {
            Mode::Durable
        };
        let defaults = self.inner.defaults.clone();
        let rows: Vec<NewRow> = jobs
            .iter()
            .map(|job| NewRow::new(job, &defaults, now))
            .collect();
        self.write(mode, move |conn, defaults| {
            let mut out = Vec::with_capacity(rows.len());
            let mut inserted = 0u64;
            for row in rows {
                let e = insert_job(conn, defaults, row, now)?;
                inserted += u64::from(!e.duplicate);
                out.push(e);
            }
            if inserted > 0 {
                let pending = pending_count(conn)?;
                if pending > max_pending {
                    return Err(StoreError::QueueFull {
                        pending: pending - inserted,
                        limit: max_pending,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    /// Reserves up to `limit` ready jobs of `types` for `instance`, highest
    /// priority first, then oldest `run_at`.
    pub async fn claim(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        let instance = instance.to_string();
        let types = types.to_vec();
        self.write(Mode::Grouped, move |conn, defaults| {
            claim_on(conn, defaults, &instance, &types, limit, now)
        })
        .await
    }

    /// Like [`Store::claim`] for up to `limit` jobs, as claims of at most
    /// `batch` each (JOB_BATCH_SIZE), all in one transaction: the
    /// dispatcher's way to claim several batches ahead with one commit.
    pub async fn claim_batches(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        batch: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        let instance = instance.to_string();
        let types = types.to_vec();
        let batch = batch.max(1);
        self.write(Mode::Grouped, move |conn, defaults| {
            let mut claimed = Vec::with_capacity(limit);
            while claimed.len() < limit {
                let want = (limit - claimed.len()).min(batch);
                let got = claim_on(conn, defaults, &instance, &types, want, now)?;
                let short = got.len() < want;
                claimed.extend(got);
                if short {
                    break;
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// Claims up to each quota's number of ready jobs of its type, in one
    /// transaction.
    pub async fn claim_quotas(
        &self,
        instance: &str,
        quotas: &[(String, usize)],
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        let instance = instance.to_string();
        let quotas = quotas.to_vec();
        self.write(Mode::Grouped, move |conn, defaults| {
            claim_quotas_on(conn, defaults, &instance, &quotas, now)
        })
        .await
    }

    /// Gives back reservations that never started (shutdown), without using
    /// up their attempt: an interrupted job is not a failed one.
    pub async fn release(&self, leases: Vec<Lease>, now: Millis) -> Result<usize, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        self.write(Mode::Grouped, move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "UPDATE queues
                    SET status = 'pending', attempts = attempts - 1, reserved_at = NULL,
                        reserved_by = NULL, updated = ?4
                  WHERE id = ?1 AND attempts = ?2 AND reserved_by = ?3 AND status = 'running'",
            )?;
            let mut released = 0;
            for lease in &leases {
                released +=
                    stmt.execute(params![lease.job_id, lease.attempt, lease.instance, now])?;
            }
            Ok(released)
        })
        .await
    }

    /// Extends the reservations of jobs this process still holds. Returns
    /// the leases that no longer hold (recovered and claimed elsewhere).
    pub async fn extend(&self, leases: Vec<Lease>, now: Millis) -> Result<Vec<Lease>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        self.write(Mode::Grouped, move |conn, _| extend_on(conn, leases, now))
            .await
    }

    /// Releases reservations whose holder stopped heartbeating: those older
    /// than `stale_before`, and every one held by `dead_instances`. A job
    /// that was on its last attempt is buried; the rest run again at once.
    pub async fn recover(
        &self,
        stale_before: Millis,
        dead_instances: Vec<String>,
        now: Millis,
    ) -> Result<Vec<Recovered>, StoreError> {
        let dead = serde_json::to_string(&dead_instances).unwrap_or_else(|_| "[]".into());
        self.write(Mode::Grouped, move |conn, defaults| {
            recover_on(conn, defaults, stale_before, &dead, now)
        })
        .await
    }

    /// The earliest `run_at` after `now` among pending jobs of `types`.
    pub async fn next_due(
        &self,
        types: &[String],
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let types = serde_json::to_string(types).unwrap_or_else(|_| "[]".into());
        self.read(move |conn, _| {
            // Only instants a job may have: a row whose run_at is past
            // year 9999 or not a number is buried by the next claim.
            Ok(conn
                .prepare_cached(
                    "SELECT MIN(run_at) FROM queues INDEXED BY queues_due
                      WHERE status = 'pending' AND run_at > ?1 AND run_at <= ?3
                        AND type IN (SELECT value FROM json_each(?2))",
                )?
                .query_row(params![now, types, crate::clock::MAX_MS], |row| {
                    Ok(rows::millis(row.get_ref(0)?))
                })?)
        })
        .await
    }

    /// One job and its last failures.
    pub async fn get(
        &self,
        id: String,
        now: Millis,
    ) -> Result<Option<(Job, Vec<AttemptError>)>, StoreError> {
        self.read(move |conn, defaults| {
            let job = conn
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM queues WHERE id = ?1"))?
                .query_row([&id], |row| job_from_row(row, defaults, now))
                .optional()?;
            let Some(job) = job else {
                return Ok(None);
            };
            let errors = conn
                .prepare_cached(
                    "SELECT attempt, at, error FROM job_errors WHERE job_id = ?1 ORDER BY attempt DESC",
                )?
                .query_map([&id], |row| {
                    Ok(AttemptError {
                        attempt: row.get(0)?,
                        at: row.get(1)?,
                        error: row.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(Some((job, errors)))
        })
        .await
    }

    /// Jobs newest first, and whether more follow the last one.
    pub async fn list(
        &self,
        filter: ListFilter,
        now: Millis,
    ) -> Result<(Vec<Job>, bool), StoreError> {
        self.read(move |conn, defaults| {
            let mut w = Where::default();
            w.when("type = :type", ":type", filter.job_type.clone());
            w.when("name = :name", ":name", filter.name.clone());
            w.when("cron_id = :cron_id", ":cron_id", filter.cron_id.clone());
            match filter.status {
                Some(JobStatus::Pending) => w.push("status = 'pending' AND run_at <= :now"),
                Some(JobStatus::Scheduled) => w.push("status = 'pending' AND run_at > :now"),
                Some(JobStatus::Running) => w.push("status = 'running'"),
                Some(JobStatus::Dead) => w.push("status = 'dead'"),
                None => {}
            }
            if w.mentions(":now") {
                w.bind(":now", now);
            }
            w.when("created >= :since", ":since", filter.since);
            w.when("created < :until", ":until", filter.until);
            if let Some((created, id)) = filter.after.clone() {
                w.push("(created, id) < (:after_created, :after_id)");
                w.bind(":after_created", created);
                w.bind(":after_id", id);
            }
            let index = match filter.status {
                Some(JobStatus::Pending | JobStatus::Scheduled)
                    if few_due(conn, filter.status == Some(JobStatus::Pending), now)? =>
                {
                    "INDEXED BY queues_due"
                }
                _ => "",
            };
            w.bind(":limit", filter.limit as i64 + 1);
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM queues {index} {} ORDER BY created DESC, id DESC LIMIT :limit",
                w.clause()
            );
            let params = w.params();
            let mut jobs: Vec<Job> = conn
                .prepare_cached(&sql)?
                .query_map(params.as_slice(), |row| job_from_row(row, defaults, now))?
                .collect::<Result<_, _>>()?;
            let more = jobs.len() > filter.limit;
            jobs.truncate(filter.limit);
            Ok((jobs, more))
        })
        .await
    }

    /// Jobs by type and status, without counting rows: the totals come from
    /// the trigger-kept `queue_counts`, and only one side of `now` (a range
    /// of the `queues_due` index, the ready side when it is small) is
    /// counted to split pending from scheduled.
    pub async fn counts(&self, now: Millis) -> Result<Counts, StoreError> {
        self.read(move |conn, _| {
            let mut counts = Counts::new();
            let mut stmt =
                conn.prepare_cached("SELECT type, status, n FROM queue_counts WHERE n > 0")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (job_type, status, n) = row?;
                let status = match status.as_str() {
                    "running" => JobStatus::Running,
                    "dead" => JobStatus::Dead,
                    _ => JobStatus::Pending,
                };
                *counts
                    .entry(job_type)
                    .or_default()
                    .entry(status)
                    .or_default() += n.max(0) as u64;
            }
            // Count the smaller side of `now` when the ready side is small
            // (the usual case: a busy queue keeps few jobs ready), so a
            // million scheduled jobs are not counted one by one.
            let ready_side = few_due(conn, true, now)?;
            if ready_side {
                for by_status in counts.values_mut() {
                    if let Some(n) = by_status.remove(&JobStatus::Pending) {
                        by_status.insert(JobStatus::Scheduled, n);
                    }
                }
            }
            let side = if ready_side {
                "run_at <= ?1"
            } else {
                "run_at > ?1"
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT type, COUNT(*) FROM queues INDEXED BY queues_due
                  WHERE status = 'pending' AND {side} GROUP BY type"
            ))?;
            let rows = stmt.query_map([now], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let (from, to) = if ready_side {
                (JobStatus::Scheduled, JobStatus::Pending)
            } else {
                (JobStatus::Pending, JobStatus::Scheduled)
            };
            for row in rows {
                let (job_type, n) = row?;
                let by_status = counts.entry(job_type).or_default();
                let n = n.max(0) as u64;
                let left = by_status.entry(from).or_default();
                *left = left.saturating_sub(n);
                *by_status.entry(to).or_default() += n;
            }
            Ok(counts)
        })
        .await
    }

    /// The `run_at` of the longest-waiting ready job.
    pub async fn oldest_ready(&self, now: Millis) -> Result<Option<Millis>, StoreError> {
        self.read(move |conn, _| {
            Ok(conn
                .prepare_cached(
                    "SELECT MIN(run_at) FROM queues INDEXED BY queues_due
                      WHERE status = 'pending' AND run_at <= ?1",
                )?
                .query_row([now], |row| Ok(rows::millis(row.get_ref(0)?)))?)
        })
        .await
    }
}

/// A new job's row, made before the writer's turn: the payload's JSON text
/// and the job as answered are built on the caller's thread, so the one
/// writer thread only inserts.
pub(super) struct NewRow {
    pub(super) job: Job,
    payload_text: String,
    cron_run: Option<i64>,
}

impl NewRow {
    pub(super) fn new(new: &NewJob, defaults: &JobDefaults, now: Millis) -> NewRow {
        let job = new.pending_job(defaults, now);
        NewRow {
            payload_text: job.payload.to_string(),
            cron_run: new.cron_run,
            job,
        }
    }
}

pub(super) fn insert_job(
    conn: &Connection,
    defaults: &JobDefaults,
    mut row: NewRow,
    now: Millis,
) -> Result<Enqueued, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO queues (id, name, description, payload, status, attempts, max_attempts,
                             priority, run_at, timeout, unique_key, cron_id, created, updated)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
         ON CONFLICT DO NOTHING",
    )?;
    // Fresh ids of one millisecond rarely collide (see `new_id`); try again rather than fail.
    for _ in 0..3 {
        let job = &row.job;
        let n = stmt.execute(params![
            job.id,
            job.name,
            job.description,
            row.payload_text,
            job.max_attempts,
            job.priority,
            job.run_at,
            job.timeout_s,
            job.unique_key,
            job.cron_id,
            now
        ])?;
        if n == 1 {
            // In the job's own transaction: a job that runs and finishes at
            // once still finds its run to settle.
            if let Some(run_id) = row.cron_run {
                conn.prepare_cached("UPDATE cron_runs SET job_id = ?2 WHERE id = ?1")?
                    .execute(params![run_id, job.id])?;
            }
            return Ok(Enqueued {
                job: row.job,
                duplicate: false,
            });
        }
        if let Some(key) = &job.unique_key {
            let existing = conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM queues WHERE unique_key = ?1 AND status != 'dead'"
                ))?
                .query_row([key], |row| job_from_row(row, defaults, now))
                .optional()?;
            if let Some(job) = existing {
                return Ok(Enqueued {
                    job,
                    duplicate: true,
                });
            }
        }
        row.job.id = new_id();
    }
    Err(StoreError::Database("could not find a free job id".into()))
}

/// The rowids of up to `limit` ready jobs of `types`: highest priority
/// first, then oldest `run_at`.
///
/// Done as index seeks rather than one ordered scan, so its cost does not
/// grow with the jobs that are not ready or not ours: the distinct
/// priorities of pending jobs are found one seek each (highest first), and
/// within a priority each type's ready rows are a range of `queues_ready
/// (priority DESC, type, run_at)`. Those are merged by `run_at`. A queue
/// uses a handful of priorities and types, so a claim is a few seeks.
fn pick_ready(
    conn: &Connection,
    types: &[String],
    limit: usize,
    now: Millis,
) -> Result<Vec<i64>, StoreError> {
    let mut picked: Vec<i64> = Vec::with_capacity(limit);
    if types.is_empty() || limit == 0 {
        return Ok(picked);
    }
    let mut top = conn.prepare_cached(
        "SELECT MAX(priority) FROM queues INDEXED BY queues_ready WHERE status = 'pending'",
    )?;
    let mut below = conn.prepare_cached(
        "SELECT MAX(priority) FROM queues INDEXED BY queues_ready
          WHERE status = 'pending' AND priority < ?1",
    )?;
    let mut ready = conn.prepare_cached(
        "SELECT rowid, run_at FROM queues INDEXED BY queues_ready
          WHERE status = 'pending' AND priority = ?1 AND type = ?2 AND run_at <= ?3
          ORDER BY run_at LIMIT ?4 + 0",
    )?;
    // Priorities and run_at are read as whatever they hold: a row another
    // program gave `priority = 'high'` is its own level (text sorts above
    // every number), picked like the rest and buried by the claim.
    let mut level: SqlValue = top.query_row([], |row| row.get(0))?;
    while level != SqlValue::Null {
        let want = limit - picked.len();
        let mut here: Vec<(Millis, i64)> = Vec::new();
        for job_type in types {
            let rows = ready.query_map(params![level, job_type, now, want as i64], |row| {
                let run_at = rows::millis(row.get_ref(1)?).unwrap_or(Millis::MIN);
                Ok((run_at, row.get::<_, i64>(0)?))
            })?;
            for row in rows {
                here.push(row?);
            }
        }
        here.sort_unstable();
        picked.extend(here.into_iter().take(want).map(|(_, rowid)| rowid));
        if picked.len() >= limit {
            break;
        }
        level = below.query_row([&level], |row| row.get(0))?;
    }
    Ok(picked)
}

/// Pending rows on one side of `now` a listing reads through `queues_due`
/// and sorts, rather than walking every job newest first for them.
const FEW_DUE: i64 = 10_000;

/// Whether at most [`FEW_DUE`] pending jobs are ready (`ready`) or
/// scheduled: then a `status` listing reads just those, however many jobs
/// are on the other side. Counting stops at the bound, so this costs at most
/// that many index entries.
fn few_due(conn: &Connection, ready: bool, now: Millis) -> Result<bool, StoreError> {
    let side = if ready { "run_at <= ?1" } else { "run_at > ?1" };
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM queues INDEXED BY queues_due
              WHERE status = 'pending' AND {side} LIMIT {})",
            FEW_DUE + 1
        ))?
        .query_row(params![now], |row| row.get(0))?;
    Ok(n <= FEW_DUE)
}

pub(super) fn pending_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM queue_counts WHERE status = 'pending'")?
        .query_row([], |row| row.get(0))?;
    Ok(n.max(0) as u64)
}

pub(super) fn record_error(
    conn: &Connection,
    job_id: &str,
    attempt: u32,
    at: Millis,
    error: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO job_errors (job_id, attempt, at, error) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![job_id, attempt, at, error])?;
    conn.prepare_cached("DELETE FROM job_errors WHERE job_id = ?1 AND attempt <= ?2")?
        .execute(params![job_id, i64::from(attempt) - KEPT_ERRORS])?;
    Ok(())
}

/// Reads a row of [`JOB_COLUMNS`] for a listing: the settings a row written
/// by another program may leave NULL resolved from its payload's options,
/// else the defaults, and a column of the wrong type named in `last_error`
/// (see `rows`).
pub(super) fn job_from_row(
    row: &Row<'_>,
    defaults: &JobDefaults,
    now: Millis,
) -> rusqlite::Result<Job> {
    rows::read_job(row, defaults, now).map(RowRead::shown)
}

/// Rounds of one claim that found rows at fault: each buries what it
/// found and looks again, so bad rows cannot make a claim come back short
/// while good jobs are ready, and a flood of them cannot make it unbounded.
const CLAIM_ROUNDS: usize = 8;

/// The claim, inside a transaction. Rows at fault among those picked (or
/// pending with a `run_at` no claim reaches) are buried, not claimed.
pub(super) fn claim_on(
    conn: &Connection,
    defaults: &JobDefaults,
    instance: &str,
    types: &[String],
    limit: usize,
    now: Millis,
) -> Result<Vec<Claimed>, StoreError> {
    let mut claimed = Vec::with_capacity(limit);
    let types = super::pause::unpaused(conn, types)?;
    let types = types.as_slice();
    for _ in 0..CLAIM_ROUNDS {
        let mut buried = 0;
        for read in rows::unreachable_pending(conn, defaults, limit, now)? {
            rows::bury(conn, defaults, &read, now)?;
            buried += 1;
        }
        let picked = pick_ready(conn, types, limit - claimed.len(), now)?;
        for read in reserve(conn, defaults, instance, &picked, now)? {
            if read.faults.is_empty() {
                let lease = Lease {
                    job_id: read.job.id.clone(),
                    attempt: read.job.attempts,
                    instance: instance.to_string(),
                };
                claimed.push(Claimed {
                    job: read.job,
                    lease,
                });
            } else {
                rows::bury(conn, defaults, &read, now)?;
                buried += 1;
            }
        }
        if buried == 0 || claimed.len() >= limit {
            break;
        }
    }
    // RETURNING gives no order; workers start in claim order.
    claimed.sort_by(|a, b| {
        b.job
            .priority
            .cmp(&a.job.priority)
            .then(a.job.run_at.cmp(&b.job.run_at))
    });
    Ok(claimed)
}

/// Each quota's claim, inside a transaction.
pub(super) fn claim_quotas_on(
    conn: &Connection,
    defaults: &JobDefaults,
    instance: &str,
    quotas: &[(String, usize)],
    now: Millis,
) -> Result<Vec<Claimed>, StoreError> {
    let mut claimed = Vec::new();
    for (job_type, n) in quotas.iter().filter(|(_, n)| *n > 0) {
        let types = std::slice::from_ref(job_type);
        claimed.extend(claim_on(conn, defaults, instance, types, *n, now)?);
    }
    Ok(claimed)
}

/// Marks the rows `rowids` running for `instance` and reads them back.
/// `attempts` is counted only where it is a number, so a row at fault is
/// read with the value it was given.
fn reserve(
    conn: &Connection,
    defaults: &JobDefaults,
    instance: &str,
    rowids: &[i64],
    now: Millis,
) -> Result<Vec<RowRead>, StoreError> {
    if rowids.is_empty() {
        return Ok(Vec::new());
    }
    let rowids = serde_json::to_string(rowids).unwrap_or_else(|_| "[]".into());
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE queues
            SET status = 'running',
                attempts = CASE typeof(attempts) WHEN 'integer' THEN attempts + 1 ELSE attempts END,
                reserved_at = :now, reserved_by = :instance, updated = :now,
                started = COALESCE(started, :now)
          WHERE rowid IN (SELECT value FROM json_each(:rowids)) AND status = 'pending'
      RETURNING {JOB_COLUMNS}"
    ))?;
    let rows = stmt.query_map(
        named_params! {":now": now, ":instance": instance, ":rowids": rowids},
        |row| rows::read_job(row, defaults, now),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The recovery, inside a transaction; `dead` is a JSON array of instance ids.
pub(super) fn recover_on(
    conn: &Connection,
    defaults: &JobDefaults,
    stale_before: Millis,
    dead: &str,
    now: Millis,
) -> Result<Vec<Recovered>, StoreError> {
    // Also running rows no heartbeat can keep fresh: another program's
    // rows without a reservation time, or with one that is not a number
    // (text sorts after every number).
    let candidates: Vec<RowRead> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM queues
              WHERE status = 'running'
                AND (reserved_at < :stale OR reserved_at IS NULL
                     OR reserved_at > 9223372036854775807
                     OR reserved_by IN (SELECT value FROM json_each(:dead)))"
        ))?
        .query_map(
            named_params! {":stale": stale_before, ":dead": dead},
            |row| rows::read_job(row, defaults, now),
        )?
        .collect::<Result<_, _>>()?;
    let mut recovered = Vec::with_capacity(candidates.len());
    for read in candidates {
        if !read.faults.is_empty() {
            rows::bury(conn, defaults, &read, now)?;
            continue;
        }
        let job = read.job;
        let holder = job.reserved_by.clone();
        let is_dead = job.attempts >= job.max_attempts;
        let error = format!(
            "attempt {} was abandoned: its worker (instance {}) stopped before finishing",
            job.attempts,
            holder.as_deref().unwrap_or("unknown")
        );
        let n = conn
            .prepare_cached(
                "UPDATE queues
                    SET status = ?4, run_at = ?5, reserved_at = NULL, reserved_by = NULL,
                        last_error = ?6, updated = ?5
                  WHERE id = ?1 AND attempts = ?2 AND reserved_by IS ?3 AND status = 'running'",
            )?
            .execute(params![
                job.id,
                job.attempts,
                holder,
                if is_dead { "dead" } else { "pending" },
                now,
                error
            ])?;
        if n == 1 {
            record_error(conn, &job.id, job.attempts, now, &error)?;
            if is_dead {
                let (dead, nothing) = (FinalStatus::Dead, Ending::default());
                record_ending(conn, defaults, &job.id, None, dead, &nothing, now)?;
                settle_job_run(conn, &job.id, RunStatus::Failed, Some(&error), now)?;
            }
            recovered.push(Recovered {
                job_id: job.id,
                job_type: job.job_type,
                attempt: job.attempts,
                dead: is_dead,
            });
        }
    }
    Ok(recovered)
}

/// Extends reservations inside a transaction; returns the lost ones.
pub(super) fn extend_on(
    conn: &Connection,
    leases: Vec<Lease>,
    now: Millis,
) -> Result<Vec<Lease>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE queues SET reserved_at = ?4
          WHERE id = ?1 AND attempts = ?2 AND reserved_by = ?3 AND status = 'running'",
    )?;
    let mut lost = Vec::new();
    for lease in leases {
        if stmt.execute(params![lease.job_id, lease.attempt, lease.instance, now])? == 0 {
            lost.push(lease);
        }
    }
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::open_temp;
    use serde_json::json;

    fn types() -> Vec<String> {
        vec!["noop".to_string()]
    }

    #[tokio::test]
    async fn rows_inserted_by_another_program_get_defaults() {
        let (dir, store) = open_temp();
        let conn = Connection::open(dir.path().join("cronq.db")).unwrap();
        conn.execute(
            "INSERT INTO queues (name, payload) VALUES ('raw', ?1)",
            [json!({"type": "noop", "data": {}, "options": {"retry_count": 7}}).to_string()],
        )
        .unwrap();
        let claimed = store.claim("me", &types(), 5, i64::MAX / 2).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].job.max_attempts, 8);
        assert_eq!(claimed[0].job.timeout_s, 30);
        assert_eq!(claimed[0].job.id.len(), 15);
        let bad = conn.execute(
            "INSERT INTO queues (name, payload) VALUES ('bad', 'not json')",
            [],
        );
        assert!(bad.is_err());
    }

    #[tokio::test]
    async fn journal_mode_is_wal() {
        let (dir, _store) = open_temp();
        let conn = Connection::open(dir.path().join("cronq.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
