//! The crons' SQL: run history, the once-only run claim, and the persisted
//! enable/disable switches.
//!
//! A scheduled run is claimed by inserting `(cron_id, scheduled_for)` under
//! a unique index before anything fires; whoever inserts first fires it, so
//! several daemons on one file, or a daemon restarted within the minute,
//! never fire one run twice. Manual triggers are outside that index.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::run::{KEPT_RUNS, NewRun, RunRow, RunStatus};

/// The run's columns, and its job's status now (see `RunRow::job_status`).
const RUN_COLUMNS: &str = "id, cron_id, scheduled_for, trigger, status, started, finished, \
     duration_ms, error, job_id, \
     COALESCE((SELECT q.status FROM queues q WHERE q.id = cron_runs.job_id), \
              (SELECT h.status FROM job_history h WHERE h.id = cron_runs.job_id))";

impl SqliteStore {
    /// Records a run. For a scheduled or catch-up run, `None` means another
    /// process (or this one before a restart) already has this run.
    pub async fn begin_run(&self, run: NewRun) -> Result<Option<RunRow>, StoreError> {
        self.write(Mode::Durable, move |conn, _| begin_run_on(conn, run))
            .await
    }

    /// Ends a run that is still running.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<String>,
        now: Millis,
    ) -> Result<Option<RunRow>, StoreError> {
        self.write(Mode::Grouped, move |conn, _| {
            finish_run_on(conn, run_id, status, error, now)
        })
        .await
    }

    /// The last `limit` runs of a cron, newest first.
    pub async fn runs(&self, cron_id: String, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM cron_runs WHERE cron_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![cron_id, limit as i64], run_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Each cron's latest run, and the time of its latest `ok` run.
    pub async fn last_runs(&self) -> Result<HashMap<String, (RunRow, Option<Millis>)>, StoreError> {
        self.read(|conn, _| {
            let mut out = HashMap::new();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM cron_runs
                  WHERE id IN (SELECT MAX(id) FROM cron_runs GROUP BY cron_id)"
            ))?;
            for row in stmt.query_map([], run_from_row)? {
                let row = row?;
                out.insert(row.cron_id.clone(), (row, None));
            }
            let mut stmt = conn.prepare_cached(
                "SELECT cron_id, MAX(finished) FROM cron_runs WHERE status = 'ok' GROUP BY cron_id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<Millis>>(1)?))
            })?;
            for row in rows {
                let (cron_id, at) = row?;
                if let Some(entry) = out.get_mut(&cron_id) {
                    entry.1 = at;
                }
            }
            Ok(out)
        })
        .await
    }

    /// The latest `scheduled_for` of a cron's scheduled or catch-up runs:
    /// where catch-up after downtime starts looking.
    pub async fn last_scheduled(&self, cron_id: String) -> Result<Option<Millis>, StoreError> {
        self.read(move |conn, _| {
            Ok(conn
                .prepare_cached(
                    "SELECT MAX(scheduled_for) FROM cron_runs WHERE cron_id = ?1 AND trigger != 'manual'",
                )?
                .query_row([cron_id], |row| row.get(0))?)
        })
        .await
    }

    /// The job of this cron still waiting or running, if any: the overlap check.
    pub async fn active_cron_job(&self, cron_id: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn, _| {
            Ok(conn
                .prepare_cached(
                    "SELECT id FROM queues WHERE cron_id = ?1 AND status IN ('pending', 'running') LIMIT 1",
                )?
                // An id of the wrong type another program wrote still counts.
                .query_row([cron_id], |row| {
                    Ok(super::rows::lossy(row.get_ref(0)?).unwrap_or_default())
                })
                .optional()?)
        })
        .await
    }

    /// Persists an `enable`/`disable`.
    pub async fn set_cron_enabled(
        &self,
        cron_id: String,
        enabled: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(Mode::Durable, move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO cron_state (cron_id, enabled, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT (cron_id) DO UPDATE SET enabled = excluded.enabled, updated = excluded.updated",
            )?
            .execute(params![cron_id, enabled, now])?;
            Ok(())
        })
        .await
    }

    /// Every persisted `enable`/`disable`, by cron id.
    pub async fn cron_switches(&self) -> Result<HashMap<String, bool>, StoreError> {
        self.read(|conn, _| switches_on(conn)).await
    }
}

pub(super) fn switches_on(conn: &Connection) -> Result<HashMap<String, bool>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT cron_id, enabled FROM cron_state")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ends the run that enqueued `job_id`, if it is still running: `ok` when
/// the job succeeded, `failed` (with its error) when it went dead or was
/// cancelled. Runs inside the job's own write, so the two agree.
pub(super) fn settle_job_run(
    conn: &Connection,
    job_id: &str,
    status: RunStatus,
    error: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE cron_runs SET status = ?2, error = ?3, finished = ?4,
                duration_ms = MAX(0, ?4 - COALESCE(started, ?4))
          WHERE job_id = ?1 AND status = 'running'",
    )?
    .execute(params![job_id, status.as_str(), error, now])?;
    Ok(())
}

/// Records a run inside a transaction; `None`: it was already recorded.
pub(super) fn begin_run_on(conn: &Connection, run: NewRun) -> Result<Option<RunRow>, StoreError> {
    let finished = (run.status != RunStatus::Running).then_some(run.now);
    let n = conn
        .prepare_cached(
            "INSERT INTO cron_runs
                 (cron_id, scheduled_for, trigger, status, started, finished, duration_ms,
                  error, instance)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?6 IS NULL THEN NULL ELSE 0 END, ?7, ?8)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            run.cron_id,
            run.scheduled_for,
            run.trigger.as_str(),
            run.status.as_str(),
            run.now,
            finished,
            run.error,
            run.instance
        ])?;
    if n == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    prune(conn, &run.cron_id)?;
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

/// Ends runs left `running` by a daemon that is gone (killed while it
/// drained, or between recording a run and enqueuing its job): they
/// would otherwise read as running forever. Runs that enqueued a job
/// follow that job instead.
pub(super) fn settle_orphan_runs_on(conn: &Connection, now: Millis) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE cron_runs
                SET status = 'failed', finished = ?1,
                    duration_ms = MAX(0, ?1 - COALESCE(started, ?1)),
                    error = 'interrupted: the daemon running it stopped'
              WHERE status = 'running' AND job_id IS NULL
                AND instance NOT IN (SELECT id FROM instances)",
        )?
        .execute([now])?)
}

pub(super) fn finish_run_on(
    conn: &Connection,
    run_id: i64,
    status: RunStatus,
    error: Option<String>,
    now: Millis,
) -> Result<Option<RunRow>, StoreError> {
    conn.prepare_cached(
        "UPDATE cron_runs SET status = ?2, error = ?3, finished = ?4,
                duration_ms = MAX(0, ?4 - COALESCE(started, ?4))
          WHERE id = ?1 AND status = 'running'",
    )?
    .execute(params![run_id, status.as_str(), error, now])?;
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM cron_runs WHERE id = ?1"
        ))?
        .query_row([run_id], run_from_row)
        .optional()?)
}

fn prune(conn: &Connection, cron_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM cron_runs
          WHERE cron_id = ?1
            AND id <= (SELECT id FROM cron_runs WHERE cron_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![cron_id, KEPT_RUNS])?;
    Ok(())
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        cron_id: row.get(1)?,
        scheduled_for: row.get(2)?,
        trigger: row.get(3)?,
        status: RunStatus::parse(&row.get::<_, String>(4)?),
        started: row.get(5)?,
        finished: row.get(6)?,
        duration_ms: row.get(7)?,
        error: row.get(8)?,
        job_id: row.get(9)?,
        job_status: row.get(10)?,
    })
}
