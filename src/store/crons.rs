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
use super::{Store, StoreError};
use crate::clock::Millis;

/// Runs kept per cron; older ones are pruned.
pub const KEPT_RUNS: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    Schedule,
    Manual,
    CatchUp,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::Manual => "manual",
            RunTrigger::CatchUp => "catch_up",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> RunStatus {
        match text {
            "ok" => RunStatus::Ok,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            _ => RunStatus::Running,
        }
    }
}

/// One run of a cron, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub cron_id: String,
    pub scheduled_for: Millis,
    pub trigger: String,
    pub status: RunStatus,
    pub started: Option<Millis>,
    pub finished: Option<Millis>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub job_id: Option<String>,
}

const RUN_COLUMNS: &str =
    "id, cron_id, scheduled_for, trigger, status, started, finished, duration_ms, error, job_id";

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub cron_id: String,
    pub scheduled_for: Millis,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    pub now: Millis,
    pub instance: String,
    pub error: Option<String>,
}

impl Store {
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
        self.read(|conn, _| {
            let mut stmt = conn.prepare_cached("SELECT cron_id, enabled FROM cron_state")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::open_temp;

    const NOW: Millis = 1_800_000_000_000;

    fn run(scheduled_for: Millis, trigger: RunTrigger) -> NewRun {
        NewRun {
            cron_id: "nightly".into(),
            scheduled_for,
            trigger,
            status: RunStatus::Running,
            now: NOW,
            instance: "me".into(),
            error: None,
        }
    }

    #[tokio::test]
    async fn a_scheduled_run_is_claimed_once() {
        let (_dir, store) = open_temp();
        assert!(
            store
                .begin_run(run(NOW, RunTrigger::Schedule))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .begin_run(run(NOW, RunTrigger::Schedule))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .begin_run(run(NOW, RunTrigger::CatchUp))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .begin_run(run(NOW, RunTrigger::Manual))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .begin_run(run(NOW, RunTrigger::Manual))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store.last_scheduled("nightly".into()).await.unwrap(),
            Some(NOW)
        );
    }

    #[tokio::test]
    async fn finish_records_status_and_duration() {
        let (_dir, store) = open_temp();
        let r = store
            .begin_run(run(NOW, RunTrigger::Schedule))
            .await
            .unwrap()
            .unwrap();
        let done = store
            .finish_run(r.id, RunStatus::Failed, Some("boom".into()), NOW + 250)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, RunStatus::Failed);
        assert_eq!(done.duration_ms, Some(250));
        assert_eq!(done.error.as_deref(), Some("boom"));
        let last = store.last_runs().await.unwrap();
        assert_eq!(last["nightly"].0.id, r.id);
        assert_eq!(last["nightly"].1, None);
    }

    #[tokio::test]
    async fn history_keeps_the_last_hundred() {
        let (_dir, store) = open_temp();
        for i in 0..(KEPT_RUNS + 20) {
            store
                .begin_run(run(NOW + i, RunTrigger::Schedule))
                .await
                .unwrap();
        }
        let runs = store.runs("nightly".into(), 1000).await.unwrap();
        assert_eq!(runs.len() as i64, KEPT_RUNS);
        assert_eq!(runs[0].scheduled_for, NOW + KEPT_RUNS + 19);
    }

    #[tokio::test]
    async fn switches_persist() {
        let (_dir, store) = open_temp();
        store
            .set_cron_enabled("a".into(), false, NOW)
            .await
            .unwrap();
        store.set_cron_enabled("a".into(), true, NOW).await.unwrap();
        store
            .set_cron_enabled("b".into(), false, NOW)
            .await
            .unwrap();
        let switches = store.cron_switches().await.unwrap();
        assert_eq!(switches.get("a"), Some(&true));
        assert_eq!(switches.get("b"), Some(&false));
    }
}
