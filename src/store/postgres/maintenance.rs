//! Reservations handed back, extended and recovered, and the operator's
//! hand on stored jobs (retry, cancel, purge), every write about a running
//! job fenced on `(id, attempts, reserved_by)`.
//!
//! A job that becomes ready here (released at shutdown, recovered from a
//! dead node, retried by hand) wakes the other nodes with one notification
//! per transaction, as an insert does.

use std::collections::HashSet;
use std::time::SystemTime;

use deadpool_postgres::Transaction;
use tokio_postgres::types::Type;

use super::PgStore;
use super::crons::settle_job_runs;
use super::finish::record_errors;
use super::history::{EndingRow, record_endings};
use super::row::{JOB_COLUMNS, job_from_row};
use super::time::Frame;
use crate::clock::Millis;
use crate::store::history::{Ending, FinalStatus};
use crate::store::job::Recovered;
use crate::store::job::Refusal;
use crate::store::job::{CANCELLED_WHILE_RUNNING, Job, JobStatus, Lease};
use crate::store::{JobDefaults, StoreError};

const NOTIFY: &str = "SELECT pg_notify('cronq_jobs', 'ready')";

impl PgStore {
    /// Gives back reservations that never started (shutdown), without using
    /// up their attempt: an interrupted job is not a failed one.
    pub async fn release(&self, leases: Vec<Lease>, now: Millis) -> Result<usize, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let f = self.frame();
        let (ids, attempts, holders) = lease_arrays(&leases);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let n = tx
            .execute(
                "UPDATE queues q
                    SET status = 'pending', attempts = q.attempts - 1, reserved_at = NULL,
                        reserved_by = NULL, updated = $4
                   FROM unnest($1::text[], $2::int4[], $3::text[]) AS l(id, attempts, holder)
                  WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = l.holder
                    AND q.status = 'running'",
                &[&ids, &attempts, &holders, &f.db(now)],
            )
            .await
            .map_err(|e| self.err(&e))?;
        if n > 0 {
            tx.execute(NOTIFY, &[]).await.map_err(|e| self.err(&e))?;
        }
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(n as usize)
    }

    /// Extends the reservations of jobs this process still holds. Returns
    /// the leases that no longer hold (recovered and claimed elsewhere).
    pub async fn extend(&self, leases: Vec<Lease>, now: Millis) -> Result<Vec<Lease>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(|e| self.err(&e))?;
        let lost = extend_on(&tx, leases, f.db(now))
            .await
            .map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(lost)
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
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let recovered = recover_on(&tx, self.defaults(), stale_before, &dead_instances, now, f)
            .await
            .map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(recovered)
    }

    /// Makes a `dead` or `scheduled` job pending now, with its attempts
    /// reset to 0.
    pub async fn retry(&self, id: String, now: Millis) -> Result<Result<Job, Refusal>, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let select = format!("SELECT {JOB_COLUMNS} FROM queues WHERE id = $1 FOR UPDATE");
        let Some(row) = tx
            .query_opt(&select, &[&id])
            .await
            .map_err(|e| self.err(&e))?
        else {
            return Ok(Err(Refusal::NotFound));
        };
        let job = job_from_row(&row, self.defaults(), now, f).map_err(|e| self.err(&e))?;
        if !matches!(job.status, JobStatus::Dead | JobStatus::Scheduled) {
            return Ok(Err(Refusal::WrongStatus(job.status)));
        }
        if let Some(key) = &job.unique_key {
            let holder = tx
                .query_opt(
                    "SELECT id FROM queues WHERE unique_key = $1 AND status <> 'dead' AND id <> $2",
                    &[key, &id],
                )
                .await
                .map_err(|e| self.err(&e))?;
            if let Some(holder) = holder {
                let holder: String = holder.try_get(0).map_err(|e| self.err(&e))?;
                return Ok(Err(Refusal::KeyHeld(holder)));
            }
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE queues SET status = 'pending', attempts = 0, run_at = $2,
                            reserved_at = NULL, reserved_by = NULL, updated = $2
                      WHERE id = $1
                  RETURNING {JOB_COLUMNS}"
                ),
                &[&id, &f.db(now)],
            )
            .await
            .map_err(|e| self.err(&e))?;
        tx.execute(NOTIFY, &[]).await.map_err(|e| self.err(&e))?;
        let job = job_from_row(&row, self.defaults(), now, f).map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(Ok(job))
    }

    /// Deletes a job that is not running. A cron run waiting on it ends
    /// `failed`.
    pub async fn cancel(&self, id: String, now: Millis) -> Result<Result<(), Refusal>, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let status = tx
            .query_opt("SELECT status FROM queues WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(|e| self.err(&e))?;
        let status: Option<String> = status
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| self.err(&e))?;
        match status.as_deref() {
            None => return Ok(Err(Refusal::NotFound)),
            Some("running") => return Ok(Err(Refusal::WrongStatus(JobStatus::Running))),
            Some(_) => {}
        }
        cancel_on(&tx, self.defaults(), vec![id], f.db(now))
            .await
            .map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(Ok(()))
    }

    /// Deletes a running job whose attempt a forced `cancel` stopped,
    /// fenced on its lease, leaving its history record as `cancelled`; a
    /// cron run waiting on it ends `failed`.
    pub async fn cancel_running(
        &self,
        lease: Lease,
        ending: Ending,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let attempt = lease.attempt.min(i32::MAX as u32) as i32;
        let row = EndingRow {
            id: lease.job_id.clone(),
            fence: Some((attempt, lease.instance.clone())),
            at: f.db(now),
            ending,
        };
        record_endings(&tx, self.defaults(), FinalStatus::Cancelled, vec![row])
            .await
            .map_err(|e| self.err(&e))?;
        let n = tx
            .execute(
                "DELETE FROM queues
                  WHERE id = $1 AND attempts = $2 AND reserved_by = $3 AND status = 'running'",
                &[
                    &lease.job_id,
                    &(lease.attempt.min(i32::MAX as u32) as i32),
                    &lease.instance,
                ],
            )
            .await
            .map_err(|e| self.err(&e))?;
        if n == 1 {
            settle_job_runs(
                &tx,
                "failed",
                &[lease.job_id],
                &[Some(CANCELLED_WHILE_RUNNING.to_string())],
                &[f.db(now)],
            )
            .await
            .map_err(|e| self.err(&e))?;
        }
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(n == 1)
    }

    /// Deletes dead jobs last updated before `before` (all when `None`).
    pub async fn purge_dead(&self, before: Option<Millis>) -> Result<u64, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let before: Option<SystemTime> = before.map(|b| f.db(b));
        let n = client
            .execute(
                "DELETE FROM queues WHERE status = 'dead' AND ($1::timestamptz IS NULL OR updated < $1)",
                &[&before],
            )
            .await
            .map_err(|e| self.err(&e))?;
        Ok(n)
    }
}

fn lease_arrays(leases: &[Lease]) -> (Vec<&str>, Vec<i32>, Vec<&str>) {
    (
        leases.iter().map(|l| l.job_id.as_str()).collect(),
        leases
            .iter()
            .map(|l| l.attempt.min(i32::MAX as u32) as i32)
            .collect(),
        leases.iter().map(|l| l.instance.as_str()).collect(),
    )
}

/// Extends reservations inside a transaction; returns the lost ones.
pub(super) async fn extend_on(
    tx: &Transaction<'_>,
    leases: Vec<Lease>,
    at: SystemTime,
) -> Result<Vec<Lease>, tokio_postgres::Error> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts, holders) = lease_arrays(&leases);
    // Planned for its arrays, as the outcomes are (see finish.rs).
    let rows = tx
        .query_typed(
            "UPDATE queues q SET reserved_at = $4
               FROM unnest($1::text[], $2::int4[], $3::text[]) AS l(id, attempts, holder)
              WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = l.holder
                AND q.status = 'running'
          RETURNING l.id, l.attempts, l.holder",
            &[
                (&ids, Type::TEXT_ARRAY),
                (&attempts, Type::INT4_ARRAY),
                (&holders, Type::TEXT_ARRAY),
                (&at, Type::TIMESTAMPTZ),
            ],
        )
        .await?;
    let mut held = HashSet::new();
    for row in rows {
        let id: String = row.try_get(0)?;
        let attempt: i32 = row.try_get(1)?;
        let holder: String = row.try_get(2)?;
        held.insert((id, attempt.max(0) as u32, holder));
    }
    Ok(leases
        .into_iter()
        .filter(|l| !held.contains(&(l.job_id.clone(), l.attempt, l.instance.clone())))
        .collect())
}

/// The recovery, inside a transaction. Rows another node is recovering at
/// this moment are skipped (`SKIP LOCKED`), not waited for.
pub(super) async fn recover_on(
    tx: &Transaction<'_>,
    defaults: &JobDefaults,
    stale_before: Millis,
    dead: &[String],
    now: Millis,
    f: Frame,
) -> Result<Vec<Recovered>, tokio_postgres::Error> {
    let select = tx
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM queues
              WHERE status = 'running' AND (reserved_at < $1 OR reserved_by = ANY($2))
                FOR UPDATE SKIP LOCKED"
        ))
        .await?;
    let rows = tx.query(&select, &[&f.db(stale_before), &dead]).await?;
    let mut candidates = Vec::with_capacity(rows.len());
    for row in &rows {
        candidates.push(job_from_row(row, defaults, now, f)?);
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let at = f.db(now);
    let mut ids = Vec::new();
    let mut attempts = Vec::new();
    let mut holders = Vec::new();
    let mut statuses = Vec::new();
    let mut errors = Vec::new();
    for job in &candidates {
        let holder = job.reserved_by.clone().unwrap_or_default();
        let is_dead = job.attempts >= job.max_attempts;
        errors.push(format!(
            "attempt {} was abandoned: its worker (instance {holder}) stopped before finishing",
            job.attempts
        ));
        ids.push(job.id.clone());
        attempts.push(job.attempts.min(i32::MAX as u32) as i32);
        holders.push(holder);
        statuses.push(if is_dead { "dead" } else { "pending" });
    }
    let updated = tx
        .query(
            "UPDATE queues q
                SET status = l.status, run_at = $5, reserved_at = NULL, reserved_by = NULL,
                    last_error = l.error, updated = $5
               FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $6::text[])
                 AS l(id, attempts, holder, status, error)
              WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = l.holder
                AND q.status = 'running'
          RETURNING l.id",
            &[&ids, &attempts, &holders, &statuses, &at, &errors],
        )
        .await?;
    let changed: HashSet<String> = updated
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()?;
    let kept: Vec<usize> = (0..ids.len())
        .filter(|i| changed.contains(&ids[*i]))
        .collect();
    let pick_ids: Vec<String> = kept.iter().map(|i| ids[*i].clone()).collect();
    let pick_attempts: Vec<i32> = kept.iter().map(|i| attempts[*i]).collect();
    let pick_errors: Vec<String> = kept.iter().map(|i| errors[*i].clone()).collect();
    let ats: Vec<SystemTime> = kept.iter().map(|_| at).collect();
    record_errors(tx, &pick_ids, &pick_attempts, &ats, &pick_errors).await?;
    let dead_ones: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|i| statuses[*i] == "dead")
        .collect();
    if !dead_ones.is_empty() {
        let endings = dead_ones
            .iter()
            .map(|i| EndingRow {
                id: ids[*i].clone(),
                fence: None,
                at,
                ending: Ending::default(),
            })
            .collect();
        record_endings(tx, defaults, FinalStatus::Dead, endings).await?;
        let runs: Vec<String> = dead_ones.iter().map(|i| ids[*i].clone()).collect();
        let texts: Vec<Option<String>> =
            dead_ones.iter().map(|i| Some(errors[*i].clone())).collect();
        let when: Vec<SystemTime> = dead_ones.iter().map(|_| at).collect();
        settle_job_runs(tx, "failed", &runs, &texts, &when).await?;
    }
    if kept.iter().any(|i| statuses[*i] == "pending") {
        tx.execute(NOTIFY, &[]).await?;
    }
    Ok(kept
        .into_iter()
        .map(|i| {
            let job = &candidates[i];
            Recovered {
                job_id: job.id.clone(),
                job_type: job.job_type.clone(),
                attempt: job.attempts,
                dead: statuses[i] == "dead",
            }
        })
        .collect())
}

/// Cancels the jobs `ids`, locked and known not to be running, inside a
/// transaction: their records go to the history as `cancelled`, the rows
/// are deleted, and cron runs waiting on them end `failed`.
pub(super) async fn cancel_on(
    tx: &Transaction<'_>,
    defaults: &JobDefaults,
    ids: Vec<String>,
    at: SystemTime,
) -> Result<u64, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let endings = ids
        .iter()
        .map(|id| EndingRow {
            id: id.clone(),
            fence: None,
            at,
            ending: Ending::default(),
        })
        .collect();
    record_endings(tx, defaults, FinalStatus::Cancelled, endings).await?;
    let n = tx
        .execute(
            "DELETE FROM queues WHERE id = ANY($1) AND status <> 'running'",
            &[&ids],
        )
        .await?;
    let errors = vec![Some("the job was cancelled".to_string()); ids.len()];
    let ats = vec![at; ids.len()];
    settle_job_runs(tx, "failed", &ids, &errors, &ats).await?;
    Ok(n)
}
