//! The operator's hand on stored jobs: retry, cancel, purge (one job, or
//! many by filter in `bulk`).

use rusqlite::{Connection, OptionalExtension, params};

use super::crons::settle_job_run;
use super::history::record_ending;
use super::jobs::{JOB_COLUMNS, job_from_row};
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{Ending, FinalStatus};
use crate::store::job::{CANCELLED_WHILE_RUNNING, Job, JobDefaults, JobStatus, Lease, Refusal};
use crate::store::run::RunStatus;

impl SqliteStore {
    /// Makes a `dead` or `scheduled` job pending now, with its attempts
    /// reset to 0.
    pub async fn retry(&self, id: String, now: Millis) -> Result<Result<Job, Refusal>, StoreError> {
        self.write(Mode::Durable, move |conn, defaults| {
            let Some(job) = conn
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM queues WHERE id = ?1"))?
                .query_row([&id], |row| job_from_row(row, defaults, now))
                .optional()?
            else {
                return Ok(Err(Refusal::NotFound));
            };
            if !matches!(job.status, JobStatus::Dead | JobStatus::Scheduled) {
                return Ok(Err(Refusal::WrongStatus(job.status)));
            }
            if let Some(key) = &job.unique_key {
                let holder: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM queues WHERE unique_key = ?1 AND status != 'dead' AND id != ?2",
                    )?
                    .query_row(params![key, id], |row| row.get(0))
                    .optional()?;
                if let Some(holder) = holder {
                    return Ok(Err(Refusal::KeyHeld(holder)));
                }
            }
            conn.prepare_cached(
                "UPDATE queues SET status = 'pending', attempts = 0, run_at = ?2, reserved_at = NULL,
                        reserved_by = NULL, updated = ?2
                  WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            Ok(conn
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM queues WHERE id = ?1"))?
                .query_row([&id], |row| job_from_row(row, defaults, now))
                .map(Ok)?)
        })
        .await
    }

    /// Deletes a job that is not running. A cron run waiting on it ends
    /// `failed`.
    pub async fn cancel(&self, id: String, now: Millis) -> Result<Result<(), Refusal>, StoreError> {
        self.write(Mode::Durable, move |conn, defaults| {
            let status: Option<String> = conn
                .prepare_cached("SELECT status FROM queues WHERE id = ?1")?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            match status.as_deref() {
                None => return Ok(Err(Refusal::NotFound)),
                Some("running") => return Ok(Err(Refusal::WrongStatus(JobStatus::Running))),
                Some(_) => {}
            }
            cancel_on(conn, defaults, &id, now)?;
            Ok(Ok(()))
        })
        .await
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
        self.write(Mode::Durable, move |conn, defaults| {
            let (id, cancelled) = (lease.job_id.as_str(), FinalStatus::Cancelled);
            record_ending(conn, defaults, id, Some(&lease), cancelled, &ending, now)?;
            let n = conn
                .prepare_cached(
                    "DELETE FROM queues
                      WHERE id = ?1 AND attempts = ?2 AND reserved_by = ?3 AND status = 'running'",
                )?
                .execute(params![lease.job_id, lease.attempt, lease.instance])?;
            if n == 1 {
                settle_job_run(
                    conn,
                    &lease.job_id,
                    RunStatus::Failed,
                    Some(CANCELLED_WHILE_RUNNING),
                    now,
                )?;
            }
            Ok(n == 1)
        })
        .await
    }

    /// Deletes dead jobs last updated before `before` (all when `None`).
    pub async fn purge_dead(&self, before: Option<Millis>) -> Result<u64, StoreError> {
        self.write(Mode::Durable, move |conn, _| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM queues WHERE status = 'dead' AND updated < COALESCE(?1, 9223372036854775807)",
                )?
                .execute([before])?;
            Ok(n as u64)
        })
        .await
    }
}

/// Cancels job `id`, known not to be running, inside a transaction: its
/// record goes to the history as `cancelled`, the row is deleted, and a
/// cron run waiting on it ends `failed`.
pub(super) fn cancel_on(
    conn: &Connection,
    defaults: &JobDefaults,
    id: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let (cancelled, nothing) = (FinalStatus::Cancelled, Ending::default());
    record_ending(conn, defaults, id, None, cancelled, &nothing, now)?;
    conn.prepare_cached("DELETE FROM queues WHERE id = ?1 AND status != 'running'")?
        .execute([id])?;
    settle_job_run(
        conn,
        id,
        RunStatus::Failed,
        Some("the job was cancelled"),
        now,
    )?;
    Ok(())
}
