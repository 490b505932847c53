//! The history's SQL, as on SQLite: the records jobs leave when they end
//! (copied from their `queues` rows by one `INSERT ... SELECT` per batch,
//! inside the outcome's transaction), the reads behind `job` and `jobs
//! --status succeeded`, pruning, and pauses.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::Value;
use tokio_postgres::Row;

use super::PgStore;
use super::filter::Where;
use super::time::Frame;
use crate::clock::Millis;
use crate::store::history::{
    ALL_TYPES, Ending, FinalStatus, FinishedJob, HistoryFilter, MAX_PAUSES, Prune, Pruned,
    bound_result,
};
use crate::store::{JobDefaults, StoreError};

pub(super) const HISTORY_COLUMNS: &str = "seq, id, name, description, type, status, attempts, max_attempts, \
     priority, run_at, last_error, unique_key, cron_id, created, started, finished, duration_ms, result";

/// One job's ending, to be recorded.
pub(super) struct EndingRow {
    pub id: String,
    /// `(attempts, holder)`: only if the row is still that attempt's.
    pub fence: Option<(i32, String)>,
    /// When it ended, in the server's frame.
    pub at: SystemTime,
    pub ending: Ending,
}

impl PgStore {
    pub async fn finished_job(&self, id: String) -> Result<Option<FinishedJob>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {HISTORY_COLUMNS} FROM job_history WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(|e| self.err(&e))?;
        row.map(|r| finished_from_row(&r, f))
            .transpose()
            .map_err(|e| self.err(&e))
    }

    pub async fn list_finished(
        &self,
        filter: HistoryFilter,
    ) -> Result<(Vec<FinishedJob>, bool), StoreError> {
        let f = self.frame();
        let mut w = Where::default();
        if let Some(status) = filter.status {
            w.compare("status =", status.as_str());
        }
        for (column, value) in [
            ("type", &filter.job_type),
            ("name", &filter.name),
            ("cron_id", &filter.cron_id),
        ] {
            if let Some(value) = value {
                w.compare(&format!("{column} ="), value.clone());
            }
        }
        if let Some(since) = filter.since {
            w.compare("finished >=", f.db(since));
        }
        if let Some(until) = filter.until {
            w.compare("finished <", f.db(until));
        }
        if let Some(after) = filter.after {
            w.compare("seq <", after);
        }
        let limit = w.bind(filter.limit.min(i64::MAX as usize - 1) as i64 + 1);
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM job_history {} ORDER BY seq DESC LIMIT {limit}",
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
            .map(|r| finished_from_row(r, f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&e))?;
        let more = jobs.len() > filter.limit;
        jobs.truncate(filter.limit);
        Ok((jobs, more))
    }

    pub async fn prune(&self, prune: Prune) -> Result<Pruned, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let pruned = prune_on(&tx, &prune, f).await.map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(pruned)
    }

    pub async fn pause(
        &self,
        job_type: Option<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let f = self.frame();
        let job_type = job_type.unwrap_or_else(|| ALL_TYPES.to_string());
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO job_pauses (type, paused_at)
                 SELECT $1, $2 WHERE $1 = $3 OR (SELECT count(*) FROM job_pauses WHERE type <> $3) < $4
                 ON CONFLICT DO NOTHING",
                &[&job_type, &f.db(now), &ALL_TYPES, &(MAX_PAUSES as i64)],
            )
            .await
            .map_err(|e| self.err(&e))?;
        paused_on(&client).await.map_err(|e| self.err(&e))
    }

    pub async fn resume(&self, job_type: Option<String>) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM job_pauses WHERE $1::text IS NULL OR type = $1",
                &[&job_type],
            )
            .await
            .map_err(|e| self.err(&e))?;
        // Jobs held back may be ready: every node looks again.
        client
            .execute("SELECT pg_notify('cronq_jobs', 'ready')", &[])
            .await
            .map_err(|e| self.err(&e))?;
        paused_on(&client).await.map_err(|e| self.err(&e))
    }

    pub async fn paused(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        paused_on(&client).await.map_err(|e| self.err(&e))
    }
}

async fn paused_on(client: &impl GenericClient) -> Result<Vec<String>, tokio_postgres::Error> {
    client
        .query(
            "SELECT type FROM job_pauses ORDER BY type COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Writes the records of `rows` ending as `status`, copied from their rows
/// (which must still be there), inside the outcome's transaction. Nothing
/// when the history is off.
pub(super) async fn record_endings(
    tx: &Transaction<'_>,
    defaults: &JobDefaults,
    status: FinalStatus,
    rows: Vec<EndingRow>,
) -> Result<(), tokio_postgres::Error> {
    if !defaults.history || rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let (mut ids, mut attempts, mut holders) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut ats, mut ran, mut results) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for row in rows {
        ids.push(row.id);
        let (attempt, holder) = row.fence.unzip();
        attempts.push(attempt);
        holders.push(holder);
        ats.push(row.at);
        ran.push(row.ending.ran_ms);
        results.push(row.ending.result.map(bound_result));
    }
    let retries = defaults.max_retries.min(i32::MAX as u32) as i32;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO job_history
                 (id, name, description, type, status, attempts, max_attempts, priority, run_at,
                  last_error, unique_key, cron_id, created, started, finished, duration_ms, result)
             SELECT q.id, q.name, q.description, COALESCE(q.type, ''), $1, q.attempts,
                    COALESCE(q.max_attempts, 1 + COALESCE(
                        -- As `store::job::row_retry_count` reads it: a whole
                        -- number from 0 to 100, else the default.
                        CASE WHEN jsonb_typeof(q.payload #> '{options,retry_count}') = 'number'
                              AND (q.payload #>> '{options,retry_count}') ~ '^[0-9]{1,3}$'
                             THEN CASE WHEN (q.payload #>> '{options,retry_count}')::int <= 100
                                       THEN (q.payload #>> '{options,retry_count}')::int END END,
                        $2)),
                    q.priority, q.run_at, q.last_error, q.unique_key, q.cron_id, q.created,
                    q.started, l.at, l.ran_ms, l.result
               FROM unnest($3::text[], $4::int4[], $5::text[], $6::timestamptz[], $7::int8[],
                           $8::jsonb[]) AS l(id, attempts, holder, at, ran_ms, result)
               JOIN queues q ON q.id = l.id
              WHERE l.attempts IS NULL
                 OR (q.attempts = l.attempts AND q.reserved_by = l.holder AND q.status = 'running')
             ON CONFLICT (id) DO UPDATE SET
                 seq = nextval('job_history_seq'), name = excluded.name,
                 description = excluded.description, type = excluded.type,
                 status = excluded.status, attempts = excluded.attempts,
                 max_attempts = excluded.max_attempts, priority = excluded.priority,
                 run_at = excluded.run_at, last_error = excluded.last_error,
                 unique_key = excluded.unique_key, cron_id = excluded.cron_id,
                 created = excluded.created, started = excluded.started,
                 finished = excluded.finished, duration_ms = excluded.duration_ms,
                 result = excluded.result",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &status.as_str(),
            &retries,
            &ids,
            &attempts,
            &holders,
            &ats,
            &ran,
            &results,
        ],
    )
    .await?;
    Ok(())
}

/// One round of pruning, inside a transaction.
pub(super) async fn prune_on(
    tx: &Transaction<'_>,
    prune: &Prune,
    f: Frame,
) -> Result<Pruned, tokio_postgres::Error> {
    let batch = prune.batch.max(1) as i64;
    let mut out = Pruned::default();
    if let Some(cut) = history_cut(tx, prune, batch, f).await? {
        let n = tx
            .execute(
                "DELETE FROM job_history WHERE seq IN
                     (SELECT seq FROM job_history WHERE seq <= $1 ORDER BY seq LIMIT $2)",
                &[&cut, &batch],
            )
            .await?;
        out.history = n;
        out.more |= n >= batch as u64;
    }
    if let Some(before) = prune.dead_before {
        let n = tx
            .execute(
                "DELETE FROM queues WHERE id IN
                     (SELECT id FROM queues WHERE status = 'dead' AND updated < $1
                       ORDER BY updated LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&f.db(before), &batch],
            )
            .await?;
        out.dead = n;
        out.more |= n >= batch as u64;
    }
    Ok(out)
}

/// The highest `seq` that retention or the row cap no longer keeps, if any
/// (retention judged on the oldest `batch` records in `seq` order, up to
/// the first one still kept).
async fn history_cut(
    tx: &Transaction<'_>,
    prune: &Prune,
    batch: i64,
    f: Frame,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let mut cut: Option<i64> = None;
    if let Some(max) = prune.history_max {
        let newest: Option<i64> = tx
            .query_one("SELECT MAX(seq) FROM job_history", &[])
            .await?
            .try_get(0)?;
        if let Some(newest) = newest {
            cut = Some(newest.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX)));
        }
    }
    if let Some(before) = prune.history_before {
        let before = f.db(before);
        let oldest = tx
            .query_opt("SELECT finished FROM job_history ORDER BY seq LIMIT 1", &[])
            .await?;
        let due = match oldest {
            Some(row) => row.try_get::<_, SystemTime>(0)? < before,
            None => false,
        };
        if due {
            let expired: Option<i64> = tx
                .query_one(
                    "WITH oldest AS (SELECT seq, finished FROM job_history ORDER BY seq LIMIT $2)
                     SELECT MAX(seq) FROM oldest
                      WHERE seq < COALESCE((SELECT MIN(seq) FROM oldest WHERE finished >= $1),
                                           9223372036854775807)",
                    &[&before, &batch],
                )
                .await?
                .try_get(0)?;
            cut = cut.max(expired);
        }
    }
    Ok(cut.filter(|c| *c > 0))
}

pub(super) fn finished_from_row(row: &Row, f: Frame) -> Result<FinishedJob, tokio_postgres::Error> {
    let at = |i: usize| -> Result<Option<Millis>, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<SystemTime>>(i)?.map(|t| f.ms(t)))
    };
    let status: String = row.try_get(5)?;
    Ok(FinishedJob {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        name: row.try_get(2)?,
        description: row.try_get(3)?,
        job_type: row.try_get(4)?,
        status: FinalStatus::parse(&status).unwrap_or(FinalStatus::Dead),
        attempts: row.try_get::<_, i32>(6)?.max(0) as u32,
        max_attempts: row.try_get::<_, i32>(7)?.max(1) as u32,
        priority: row.try_get(8)?,
        run_at: f.ms(row.try_get(9)?),
        last_error: row.try_get(10)?,
        unique_key: row.try_get(11)?,
        cron_id: row.try_get(12)?,
        created: f.ms(row.try_get(13)?),
        started: at(14)?,
        finished: f.ms(row.try_get(15)?),
        duration_ms: row.try_get(16)?,
        result: row.try_get::<_, Option<Value>>(17)?,
    })
}
