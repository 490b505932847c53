//! The crons' SQL on PostgreSQL: run history, the once-only run claim, and
//! the `enable`/`disable` switches, which hold for the whole cluster.
//!
//! A scheduled run is claimed by inserting `(cron_id, scheduled_for)`
//! under a unique index before anything fires; whichever node inserts
//! first fires it and the others find the row and skip. `scheduled_for`
//! is the schedule's instant as given, not moved by the clock offset, so
//! every node names the same run the same way.

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::PgStore;
use super::time::{self, Frame};
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::run::{KEPT_RUNS, NewRun, RunRow, RunStatus};

/// The run's columns, and its job's status now (see `RunRow::job_status`).
const RUN_COLUMNS: &str = "id, cron_id, scheduled_for, trigger, status, started, finished, \
     duration_ms, error, job_id, \
     COALESCE((SELECT q.status FROM queues q WHERE q.id = cron_runs.job_id), \
              (SELECT h.status FROM job_history h WHERE h.id = cron_runs.job_id))";

/// `finished - started` in whole milliseconds, never negative.
const DURATION: &str =
    "GREATEST(0, floor(extract(epoch FROM (l.at - COALESCE(r.started, l.at))) * 1000))::int8";

impl PgStore {
    /// Records a run. For a scheduled or catch-up run, `None` means another
    /// node (or this one before a restart) already has this run.
    pub async fn begin_run(&self, run: NewRun) -> Result<Option<RunRow>, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let row = begin_run_on(&tx, run, f).await.map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(row)
    }

    /// Ends a run that is still running.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<String>,
        now: Millis,
    ) -> Result<Option<RunRow>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        finish_run_on(&client, run_id, status, error, f.db(now), f)
            .await
            .map_err(|e| self.err(&e))
    }

    /// The last `limit` runs of a cron, newest first.
    pub async fn runs(&self, cron_id: String, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = client
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM cron_runs WHERE cron_id = $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&cron_id, &limit],
            )
            .await
            .map_err(|e| self.err(&e))?;
        rows.iter()
            .map(|r| run_from_row(r, f))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(&e))
    }

    /// Each cron's latest run, and the time of its latest `ok` run.
    pub async fn last_runs(&self) -> Result<HashMap<String, (RunRow, Option<Millis>)>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        let mut out = HashMap::new();
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT ON (cron_id) {RUN_COLUMNS} FROM cron_runs ORDER BY cron_id, id DESC"
                ),
                &[],
            )
            .await
            .map_err(|e| self.err(&e))?;
        for row in &rows {
            let run = run_from_row(row, f).map_err(|e| self.err(&e))?;
            out.insert(run.cron_id.clone(), (run, None));
        }
        let rows = client
            .query(
                "SELECT cron_id, MAX(finished) FROM cron_runs WHERE status = 'ok' GROUP BY cron_id",
                &[],
            )
            .await
            .map_err(|e| self.err(&e))?;
        for row in &rows {
            let cron_id: String = row.try_get(0).map_err(|e| self.err(&e))?;
            let at: Option<SystemTime> = row.try_get(1).map_err(|e| self.err(&e))?;
            if let Some(entry) = out.get_mut(&cron_id) {
                entry.1 = at.map(|t| f.ms(t));
            }
        }
        Ok(out)
    }

    /// The latest `scheduled_for` of a cron's scheduled or catch-up runs:
    /// where catch-up after downtime starts looking.
    pub async fn last_scheduled(&self, cron_id: String) -> Result<Option<Millis>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MAX(scheduled_for) FROM cron_runs WHERE cron_id = $1 AND trigger <> 'manual'",
                &[&cron_id],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let at: Option<SystemTime> = row.try_get(0).map_err(|e| self.err(&e))?;
        Ok(at.map(time::millis_of))
    }

    /// The job of this cron still waiting or running, if any: the overlap check.
    pub async fn active_cron_job(&self, cron_id: String) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id FROM queues WHERE cron_id = $1 AND status IN ('pending', 'running') LIMIT 1",
                &[&cron_id],
            )
            .await
            .map_err(|e| self.err(&e))?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| self.err(&e))
    }

    /// Persists an `enable`/`disable`, for every node.
    pub async fn set_cron_enabled(
        &self,
        cron_id: String,
        enabled: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO cron_state (cron_id, enabled, updated) VALUES ($1, $2, $3)
                 ON CONFLICT (cron_id) DO UPDATE SET enabled = excluded.enabled, updated = excluded.updated",
                &[&cron_id, &enabled, &f.db(now)],
            )
            .await
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Every persisted `enable`/`disable`, by cron id.
    pub async fn cron_switches(&self) -> Result<HashMap<String, bool>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT cron_id, enabled FROM cron_state", &[])
            .await
            .map_err(|e| self.err(&e))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.err(&e))
    }
}

/// Ends the runs that enqueued `job_ids`, if still running: `status` with
/// the matching error, at the matching instants (server frame). Runs
/// inside the jobs' own write, so the two agree.
pub(super) async fn settle_job_runs(
    tx: &Transaction<'_>,
    status: &str,
    job_ids: &[String],
    errors: &[Option<String>],
    ats: &[SystemTime],
) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE cron_runs r
                SET status = $1, error = l.error, finished = l.at, duration_ms = {DURATION}
               FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS l(job_id, error, at)
              WHERE r.job_id = l.job_id AND r.status = 'running'"
        ))
        .await?;
    tx.execute(&stmt, &[&status, &job_ids, &errors, &ats])
        .await?;
    Ok(())
}

/// Records a run inside a transaction; `None`: it was already recorded.
pub(super) async fn begin_run_on(
    tx: &Transaction<'_>,
    run: NewRun,
    f: Frame,
) -> Result<Option<RunRow>, tokio_postgres::Error> {
    let finished = (run.status != RunStatus::Running).then_some(run.now);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO cron_runs
                 (cron_id, scheduled_for, trigger, status, started, finished, duration_ms,
                  error, instance)
             VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6::timestamptz IS NULL THEN NULL ELSE 0 END,
                     $7, $8)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .await?;
    let row = tx
        .query_opt(
            &stmt,
            &[
                &run.cron_id,
                &time::time_of(run.scheduled_for),
                &run.trigger.as_str(),
                &run.status.as_str(),
                &f.db(run.now),
                &finished.map(|at| f.db(at)),
                &run.error,
                &run.instance,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    tx.execute(
        "DELETE FROM cron_runs
          WHERE cron_id = $1
            AND id <= (SELECT id FROM cron_runs WHERE cron_id = $1
                        ORDER BY id DESC LIMIT 1 OFFSET $2)",
        &[&run.cron_id, &KEPT_RUNS],
    )
    .await?;
    Ok(Some(RunRow {
        id,
        cron_id: run.cron_id,
        scheduled_for: run.scheduled_for,
        trigger: run.trigger.as_str().to_string(),
        status: run.status,
        started: Some(run.now),
        finished,
        duration_ms: finished.map(|_| 0),
        error: run.error,
        job_id: None,
        job_status: None,
    }))
}

/// Ends runs left `running` by a daemon that is gone (killed between
/// recording a run and enqueuing its job); runs that enqueued a job follow
/// that job instead.
pub(super) async fn settle_orphan_runs_on(
    tx: &Transaction<'_>,
    at: SystemTime,
) -> Result<usize, tokio_postgres::Error> {
    let settle = tx
        .prepare_cached(
            "UPDATE cron_runs
                SET status = 'failed', finished = $1,
                    duration_ms = GREATEST(0, floor(extract(epoch FROM ($1 - COALESCE(started, $1))) * 1000))::int8,
                    error = 'interrupted: the daemon running it stopped'
              WHERE status = 'running' AND job_id IS NULL
                AND instance NOT IN (SELECT id FROM instances)",
        )
        .await?;
    let n = tx.execute(&settle, &[&at]).await?;
    Ok(n as usize)
}

pub(super) async fn finish_run_on(
    client: &impl GenericClient,
    run_id: i64,
    status: RunStatus,
    error: Option<String>,
    at: SystemTime,
    f: Frame,
) -> Result<Option<RunRow>, tokio_postgres::Error> {
    let update = client
        .prepare_cached(&format!(
            "UPDATE cron_runs r SET status = $2, error = $3, finished = l.at, duration_ms = {DURATION}
               FROM (SELECT $4::timestamptz AS at) AS l
              WHERE r.id = $1 AND r.status = 'running'
          RETURNING r.id, r.cron_id, r.scheduled_for, r.trigger, r.status, r.started, r.finished,
                    r.duration_ms, r.error, r.job_id"
        ))
        .await?;
    let updated = client
        .query_opt(&update, &[&run_id, &status.as_str(), &error, &at])
        .await?;
    let row = match updated {
        Some(row) => Some(row),
        None => {
            client
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM cron_runs WHERE id = $1"),
                    &[&run_id],
                )
                .await?
        }
    };
    row.map(|r| run_from_row(&r, f)).transpose()
}

pub(super) fn parse_status(text: &str) -> RunStatus {
    match text {
        "ok" => RunStatus::Ok,
        "failed" => RunStatus::Failed,
        "skipped" => RunStatus::Skipped,
        _ => RunStatus::Running,
    }
}

fn run_from_row(row: &Row, f: Frame) -> Result<RunRow, tokio_postgres::Error> {
    let at = |i: usize| -> Result<Option<Millis>, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<SystemTime>>(i)?.map(|t| f.ms(t)))
    };
    Ok(RunRow {
        id: row.try_get(0)?,
        cron_id: row.try_get(1)?,
        scheduled_for: time::millis_of(row.try_get(2)?),
        trigger: row.try_get(3)?,
        status: parse_status(&row.try_get::<_, String>(4)?),
        started: at(5)?,
        finished: at(6)?,
        duration_ms: row.try_get(7)?,
        error: row.try_get(8)?,
        job_id: row.try_get(9)?,
        // An UPDATE ... RETURNING reads the run's own columns only.
        job_status: if row.len() > 10 {
            row.try_get(10)?
        } else {
            None
        },
    })
}
