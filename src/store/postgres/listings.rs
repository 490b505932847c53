//! The reads behind `jobs`, `job`, `status` and `stats`, and the
//! dispatcher's next due time.
//!
//! Counts come from the `queue_counts` deltas (see the schema): summed on
//! read, folded into one row per (type, status) by whichever node first
//! finds more than [`COMPACT_AT`] of them (and on every `system_queue`
//! minute), under a try-lock so folders never wait on each other. Pending
//! is split from scheduled by counting the smaller side of `now` on the
//! `queues_due` index, as the SQLite store does.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Transaction};

use super::PgStore;
use super::filter::Where;
use super::row::{JOB_COLUMNS, job_from_row};
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::job::{AttemptError, Counts, ListFilter};
use crate::store::job::{Job, JobStatus};

/// Delta rows past which a read folds them.
pub const COMPACT_AT: i64 = 1_000;
/// Pending rows on one side of `now` that are counted one by one.
const FEW_DUE: i64 = 10_000;
/// Pending jobs, as the due-time and count queries name them: the predicate
/// of the `queues_due` index (migration 0005), so that the planner may use
/// it for them. Every row has `run_at > '-infinity'` (a check constraint);
/// the claim does not say it, and so walks `queues_ready` (see the
/// migration).
const PENDING_DUE: &str = "status = 'pending' AND run_at > '-infinity'";
/// The try-lock key of the fold ("cronq" and a 2).
pub(super) const COMPACT_LOCK: i64 = 0x6372_6f6e_7100_0002;

impl PgStore {
    /// The earliest `run_at` after `now` among pending jobs of `types`.
    pub async fn next_due(
        &self,
        types: &[String],
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT MIN(run_at) FROM queues
                  WHERE {PENDING_DUE} AND run_at > $1 AND type = ANY($2)"
            ))
            .await
            .map_err(|e| self.err(&e))?;
        let row = client
            .query_one(&stmt, &[&f.db(now), &types])
            .await
            .map_err(|e| self.err(&e))?;
        let at: Option<SystemTime> = row.try_get(0).map_err(|e| self.err(&e))?;
        Ok(at.map(|t| f.ms(t)))
    }

    /// One job and its last failures.
    pub async fn get(
        &self,
        id: String,
        now: Millis,
    ) -> Result<Option<(Job, Vec<AttemptError>)>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM queues WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = job_from_row(&row, self.defaults(), now, f).map_err(|e| self.err(&e))?;
        let rows = client
            .query(
                "SELECT attempt, at, error FROM job_errors WHERE job_id = $1 ORDER BY attempt DESC",
                &[&id],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let errors = rows
            .iter()
            .map(|r| {
                Ok(AttemptError {
                    attempt: r.try_get::<_, i32>(0)?.max(0) as u32,
                    at: f.ms(r.try_get(1)?),
                    error: r.try_get(2)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.err(&e))?;
        Ok(Some((job, errors)))
    }

    /// Jobs newest first, and whether more follow the last one.
    pub async fn list(
        &self,
        filter: ListFilter,
        now: Millis,
    ) -> Result<(Vec<Job>, bool), StoreError> {
        let f = self.frame();
        let mut w = Where::default();
        if let Some(t) = filter.job_type.clone() {
            w.compare("type =", t);
        }
        if let Some(name) = filter.name.clone() {
            w.compare("name =", name);
        }
        if let Some(cron_id) = filter.cron_id.clone() {
            w.compare("cron_id =", cron_id);
        }
        match filter.status {
            Some(JobStatus::Pending) => {
                w.compare(&format!("{PENDING_DUE} AND run_at <="), f.db(now))
            }
            Some(JobStatus::Scheduled) => {
                w.compare(&format!("{PENDING_DUE} AND run_at >"), f.db(now))
            }
            Some(JobStatus::Running) => w.push("status = 'running'"),
            Some(JobStatus::Dead) => w.push("status = 'dead'"),
            None => {}
        }
        if let Some(since) = filter.since {
            w.compare("created >=", f.db(since));
        }
        if let Some(until) = filter.until {
            w.compare("created <", f.db(until));
        }
        if let Some((created, id)) = filter.after.clone() {
            let created = w.bind(f.db(created));
            let id = w.bind(id);
            w.push(format!("(created, id) < ({created}, {id})"));
        }
        let limit = w.bind(filter.limit.min(i64::MAX as usize - 1) as i64 + 1);
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM queues {} ORDER BY created DESC, id DESC LIMIT {limit}",
            w.clause()
        );
        let params = w.params();
        let client = self.client().await?;
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(|e| self.err(&e))?;
        let mut jobs = rows
            .iter()
            .map(|r| job_from_row(r, self.defaults(), now, f))
            .collect::<Result<Vec<Job>, _>>()
            .map_err(|e| self.err(&e))?;
        let more = jobs.len() > filter.limit;
        jobs.truncate(filter.limit);
        Ok((jobs, more))
    }

    /// Jobs by type and status, without counting rows: totals from the
    /// count deltas, and only one side of `now` counted to split pending
    /// from scheduled.
    pub async fn counts(&self, now: Millis) -> Result<Counts, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let rows = client
            .query(
                "SELECT type, status, SUM(n)::int8, COUNT(*) FROM queue_counts GROUP BY type, status",
                &[],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let mut counts = Counts::new();
        let mut deltas = 0i64;
        for row in &rows {
            let read = || -> Result<(String, String, i64, i64), tokio_postgres::Error> {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            };
            let (job_type, status, n, rows_here) = read().map_err(|e| self.err(&e))?;
            deltas += rows_here;
            if n <= 0 {
                continue;
            }
            let status = match status.as_str() {
                "running" => JobStatus::Running,
                "dead" => JobStatus::Dead,
                _ => JobStatus::Pending,
            };
            *counts
                .entry(job_type)
                .or_default()
                .entry(status)
                .or_default() += n as u64;
        }
        let at = f.db(now);
        let ready_side = few_due(&client, true, at).await.map_err(|e| self.err(&e))?;
        if ready_side {
            for by_status in counts.values_mut() {
                if let Some(n) = by_status.remove(&JobStatus::Pending) {
                    by_status.insert(JobStatus::Scheduled, n);
                }
            }
        }
        let side = if ready_side {
            "run_at <= $1"
        } else {
            "run_at > $1"
        };
        let rows = client
            .query(
                &format!(
                    "SELECT type, COUNT(*) FROM queues WHERE {PENDING_DUE} AND {side} GROUP BY type"
                ),
                &[&at],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let (from, to) = if ready_side {
            (JobStatus::Scheduled, JobStatus::Pending)
        } else {
            (JobStatus::Pending, JobStatus::Scheduled)
        };
        for row in &rows {
            let job_type: String = row.try_get(0).map_err(|e| self.err(&e))?;
            let n: i64 = row.try_get(1).map_err(|e| self.err(&e))?;
            let by_status = counts.entry(job_type).or_default();
            let n = n.max(0) as u64;
            let left = by_status.entry(from).or_default();
            *left = left.saturating_sub(n);
            *by_status.entry(to).or_default() += n;
        }
        if deltas > COMPACT_AT {
            let tx = client.transaction().await.map_err(|e| self.err(&e))?;
            compact_counts(&tx).await.map_err(|e| self.err(&e))?;
            tx.commit().await.map_err(|e| self.err(&e))?;
        }
        Ok(counts)
    }

    /// The `run_at` of the longest-waiting ready job.
    pub async fn oldest_ready(&self, now: Millis) -> Result<Option<Millis>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!("SELECT MIN(run_at) FROM queues WHERE {PENDING_DUE} AND run_at <= $1"),
                &[&f.db(now)],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let at: Option<SystemTime> = row.try_get(0).map_err(|e| self.err(&e))?;
        Ok(at.map(|t| f.ms(t)))
    }
}

/// Whether at most [`FEW_DUE`] pending jobs are ready (`ready`) or
/// scheduled; counting stops at the bound.
async fn few_due(
    client: &impl GenericClient,
    ready: bool,
    at: SystemTime,
) -> Result<bool, tokio_postgres::Error> {
    let side = if ready { "run_at <= $1" } else { "run_at > $1" };
    let n: i64 = client
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM queues
                  WHERE {PENDING_DUE} AND {side} LIMIT $2) AS side"
            ),
            &[&at, &(FEW_DUE + 1)],
        )
        .await?
        .try_get(0)?;
    Ok(n <= FEW_DUE)
}

/// Folds the count deltas into one row per (type, status), unless another
/// node is folding them right now. Inside the caller's transaction.
pub(super) async fn compact_counts(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let try_lock = tx
        .prepare_cached("SELECT pg_try_advisory_xact_lock($1)")
        .await?;
    let locked: bool = tx
        .query_one(&try_lock, &[&COMPACT_LOCK])
        .await?
        .try_get(0)?;
    if locked {
        tx.batch_execute(
            "WITH gone AS (DELETE FROM queue_counts RETURNING type, status, n)
             INSERT INTO queue_counts (type, status, n)
                  SELECT type, status, SUM(n) FROM gone GROUP BY type, status HAVING SUM(n) <> 0",
        )
        .await?;
    }
    Ok(())
}
