//! The operator's hand on stored jobs: retry, cancel, purge.

use rusqlite::{OptionalExtension, params};

use super::crons::{RunStatus, settle_job_run};
use super::jobs::{JOB_COLUMNS, job_from_row};
use super::writer::Mode;
use super::{Store, StoreError};
use crate::clock::Millis;
use crate::queue::job::{Job, JobStatus};

/// Why a job could not be retried or cancelled.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NotFound,
    /// The job is in a state the operation does not apply to.
    WrongStatus(JobStatus),
    /// Another waiting job holds the same unique key.
    KeyHeld(String),
}

impl Store {
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
        self.write(Mode::Durable, move |conn, _| {
            let status: Option<String> = conn
                .prepare_cached("SELECT status FROM queues WHERE id = ?1")?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            match status.as_deref() {
                None => return Ok(Err(Refusal::NotFound)),
                Some("running") => return Ok(Err(Refusal::WrongStatus(JobStatus::Running))),
                Some(_) => {}
            }
            conn.prepare_cached("DELETE FROM queues WHERE id = ?1 AND status != 'running'")?
                .execute([&id])?;
            settle_job_run(
                conn,
                &id,
                RunStatus::Failed,
                Some("the job was cancelled"),
                now,
            )?;
            Ok(Ok(()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::job::NewJob;
    use crate::store::jobs::AfterFailure;
    use crate::store::test_support::open_temp;

    const NOW: Millis = 1_800_000_000_000;

    async fn dead_job(store: &Store, key: Option<&str>) -> String {
        let mut job = NewJob::new("n", "noop", serde_json::Map::new());
        job.unique_key = key.map(String::from);
        let id = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
            .job
            .id
            .clone();
        let claimed = store.claim("me", &["noop".into()], 1, NOW).await.unwrap();
        let lease = claimed[0].lease.clone();
        assert!(
            store
                .fail(lease, "boom".into(), AfterFailure::Dead, NOW)
                .await
                .unwrap()
        );
        id
    }

    #[tokio::test]
    async fn retry_revives_a_dead_job_with_fresh_attempts() {
        let (_dir, store) = open_temp();
        let id = dead_job(&store, None).await;
        let job = store.retry(id.clone(), NOW + 5).await.unwrap().unwrap();
        assert_eq!(
            (job.status, job.attempts, job.run_at),
            (JobStatus::Pending, 0, NOW + 5)
        );
        assert_eq!(
            store.retry(id, NOW + 6).await.unwrap(),
            Err(Refusal::WrongStatus(JobStatus::Pending))
        );
        assert_eq!(
            store.retry("nope".into(), NOW).await.unwrap(),
            Err(Refusal::NotFound)
        );
    }

    #[tokio::test]
    async fn retry_respects_a_held_unique_key() {
        let (_dir, store) = open_temp();
        let dead = dead_job(&store, Some("k")).await;
        let mut job = NewJob::new("n", "noop", serde_json::Map::new());
        job.unique_key = Some("k".into());
        let holder = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
            .job
            .id
            .clone();
        assert_eq!(
            store.retry(dead, NOW).await.unwrap(),
            Err(Refusal::KeyHeld(holder))
        );
    }

    #[tokio::test]
    async fn cancel_refuses_running_jobs_and_purge_counts() {
        let (_dir, store) = open_temp();
        let dead = dead_job(&store, None).await;
        let job = NewJob::new("n", "noop", serde_json::Map::new());
        let running = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
            .job
            .id
            .clone();
        store.claim("me", &["noop".into()], 1, NOW).await.unwrap();
        assert_eq!(
            store.cancel(running, NOW).await.unwrap(),
            Err(Refusal::WrongStatus(JobStatus::Running))
        );
        assert_eq!(store.purge_dead(Some(NOW - 1)).await.unwrap(), 0);
        assert_eq!(store.purge_dead(None).await.unwrap(), 1);
        assert_eq!(
            store.cancel(dead, NOW).await.unwrap(),
            Err(Refusal::NotFound)
        );
    }
}
