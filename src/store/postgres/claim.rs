//! Claims: up to a batch of ready jobs per statement, through the
//! `cronq_claim` function of the schema (one priority at a time, each
//! type's ready range of `queues_ready`, rows taken with `FOR UPDATE SKIP
//! LOCKED`), so any number of daemons claim side by side, never the same
//! job, never waiting on each other's rows. Attempts are counted at claim
//! time, as on SQLite, so a job that crashes its daemon still uses up its
//! attempts. `cronq_claim` leaves paused types alone (`job_pauses`).
//!
//! Claims commit without waiting for the WAL flush (`synchronous_commit =
//! off`, set by `cronq_claim_batches` for its own transaction, and by the
//! tick for its): a claim lost to a server crash only means the job is
//! claimed again, which fencing makes safe; the SQLite store makes the
//! same trade.

use deadpool_postgres::GenericClient;

use super::PgStore;
use super::row::{JOB_COLUMNS, job_from_row};
use super::time::Frame;
use crate::clock::Millis;
use crate::store::job::{Claimed, Lease};
use crate::store::{JobDefaults, StoreError};

impl PgStore {
    /// Reserves up to `limit` ready jobs of `types` for `instance`, highest
    /// priority first, then oldest `run_at`.
    pub async fn claim(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_batches(instance, types, limit, limit.max(1), now)
            .await
    }

    /// Like [`PgStore::claim`] for up to `limit` jobs, as claims of at most
    /// `batch` each (JOB_BATCH_SIZE), all in one statement
    /// (`cronq_claim_batches`), so one round trip: the dispatcher's claim
    /// stands between a notification and a started job.
    pub async fn claim_batches(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        batch: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 || types.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.frame();
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM cronq_claim_batches($1, $2, $3, $4, $5)"
            ))
            .await
            .map_err(|e| self.err(&e))?;
        let limit = limit.min(i32::MAX as usize) as i32;
        let batch = batch.clamp(1, i32::MAX as usize) as i32;
        let rows = client
            .query(&stmt, &[&instance, &types, &limit, &batch, &f.db(now)])
            .await
            .map_err(|e| self.err(&e))?;
        claimed_from(rows, self.defaults(), instance, now, f).map_err(|e| self.err(&e))
    }
}

impl PgStore {
    /// Claims up to each quota's number of ready jobs of its type, in one
    /// transaction.
    pub async fn claim_quotas(
        &self,
        instance: &str,
        quotas: &[(String, usize)],
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        if quotas.iter().all(|(_, n)| *n == 0) {
            return Ok(Vec::new());
        }
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(|e| self.err(&e))?;
        let claimed = claim_quotas_on(&tx, self.defaults(), instance, quotas, now, f)
            .await
            .map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(claimed)
    }
}

/// Each quota's claim, inside the caller's transaction.
pub(super) async fn claim_quotas_on(
    client: &impl GenericClient,
    defaults: &JobDefaults,
    instance: &str,
    quotas: &[(String, usize)],
    now: Millis,
    f: Frame,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let mut claimed = Vec::new();
    for (job_type, n) in quotas.iter().filter(|(_, n)| *n > 0) {
        let types = std::slice::from_ref(job_type);
        claimed.extend(claim_on(client, defaults, instance, types, *n, now, f).await?);
    }
    Ok(claimed)
}

/// One claim statement, inside the caller's transaction; the jobs in claim
/// order.
pub(super) async fn claim_on(
    client: &impl GenericClient,
    defaults: &JobDefaults,
    instance: &str,
    types: &[String],
    limit: usize,
    now: Millis,
    f: Frame,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    if limit == 0 || types.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM cronq_claim($1, $2, $3, $4)"
        ))
        .await?;
    let limit = limit.min(i32::MAX as usize) as i32;
    let rows = client
        .query(&stmt, &[&instance, &types, &limit, &f.db(now)])
        .await?;
    claimed_from(rows, defaults, instance, now, f)
}

/// Claimed rows as leases of `instance`, in claim order.
fn claimed_from(
    rows: Vec<tokio_postgres::Row>,
    defaults: &JobDefaults,
    instance: &str,
    now: Millis,
    f: Frame,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let job = job_from_row(&row, defaults, now, f)?;
        let lease = Lease {
            job_id: job.id.clone(),
            attempt: job.attempts,
            instance: instance.to_string(),
        };
        claimed.push(Claimed { job, lease });
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
