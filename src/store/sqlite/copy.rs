//! The SQL of `cronq copy-store` on a file: jobs, switches and runs read out
//! as stored, and written in as given, keyed so a second copy changes
//! nothing (see `store::copy`).
//!
//! Jobs are paged by rowid, not id: a row another program wrote may hold an
//! id that is not text, which would sort outside any range of text ids and
//! never be seen. Such a row is read out as unreadable, so the copy reports
//! it instead of passing over it.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use super::history::{HISTORY_COLUMNS, finished_from_row};
use super::rows::{self, JOB_COLUMNS};
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::store::copy::{CopiedJob, CopiedRun, CopiedSwitch, JobCopy, SwitchCopy};
use crate::store::history::FinishedJob;
use crate::store::job::{AttemptError, JobStatus};

impl SqliteStore {
    pub async fn export_jobs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<CopiedJob>, Option<String>), StoreError> {
        let after: i64 = match after.as_deref().map(str::parse) {
            None => 0,
            Some(Ok(rowid)) => rowid,
            Some(Err(_)) => {
                return Err(StoreError::Database(format!(
                    "not a cursor of this database's jobs: {after:?}"
                )));
            }
        };
        self.read(move |conn, defaults| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM queues
                  WHERE status IN ('pending', 'dead') AND rowid > ?1 ORDER BY rowid LIMIT ?2"
            ))?;
            let mut out = Vec::new();
            let mut last = None;
            let mut rows = stmt.query(params![after, limit as i64])?;
            while let Some(row) = rows.next()? {
                // `now` only fills in columns at fault, which are reported.
                let read = rows::read_job(row, defaults, 0)?;
                let raw_int = |idx: usize| -> rusqlite::Result<Option<u32>> {
                    Ok(match row.get_ref(idx)? {
                        ValueRef::Integer(n) if n >= 1 => Some(n.min(i64::from(u32::MAX)) as u32),
                        _ => None,
                    })
                };
                let (max_attempts, timeout_s) = (raw_int(7)?, raw_int(9)?);
                last = Some(read.rowid);
                let unreadable = (!read.faults.is_empty()).then(|| {
                    format!(
                        "the row with rowid {} is at fault ({}); a daemon \
                         started on this file moves it to dead with that reason",
                        read.rowid,
                        read.reason()
                    )
                });
                let job = read.job;
                out.push(CopiedJob {
                    dead: job.status == JobStatus::Dead,
                    errors: Vec::new(),
                    id: job.id,
                    name: job.name,
                    description: job.description,
                    payload: job.payload,
                    attempts: job.attempts,
                    max_attempts,
                    priority: job.priority,
                    timeout_s,
                    run_at: job.run_at,
                    last_error: job.last_error,
                    unique_key: job.unique_key,
                    cron_id: job.cron_id,
                    created: job.created,
                    updated: job.updated,
                    unreadable,
                });
            }
            drop(rows);
            let mut errors = conn.prepare_cached(
                "SELECT attempt, at, error FROM job_errors WHERE job_id = ?1 ORDER BY attempt",
            )?;
            for job in out.iter_mut().filter(|j| j.unreadable.is_none()) {
                let found = errors.query_map([&job.id], |r| {
                    Ok(AttemptError {
                        attempt: r.get(0)?,
                        at: r.get(1)?,
                        error: r.get(2)?,
                    })
                })?;
                job.errors = found.collect::<Result<_, _>>()?;
            }
            let next = (out.len() == limit).then(|| last.map(|r| r.to_string()));
            Ok((out, next.flatten()))
        })
        .await
    }

    pub async fn import_jobs(
        &self,
        jobs: Vec<CopiedJob>,
        dry_run: bool,
    ) -> Result<Vec<JobCopy>, StoreError> {
        self.write(Mode::Alone, move |conn, _| {
            in_savepoint(conn, dry_run, |conn| {
                jobs.iter().map(|job| import_job(conn, job)).collect()
            })
        })
        .await
    }

    pub async fn export_switches(&self) -> Result<Vec<CopiedSwitch>, StoreError> {
        self.read(|conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT cron_id, enabled, updated FROM cron_state ORDER BY cron_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CopiedSwitch {
                    cron_id: r.get(0)?,
                    enabled: r.get(1)?,
                    updated: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn import_switches(
        &self,
        switches: Vec<CopiedSwitch>,
        dry_run: bool,
    ) -> Result<Vec<SwitchCopy>, StoreError> {
        self.write(Mode::Durable, move |conn, _| {
            in_savepoint(conn, dry_run, |conn| {
                let mut out = Vec::new();
                for s in &switches {
                    let there: Option<bool> = conn
                        .prepare_cached("SELECT enabled FROM cron_state WHERE cron_id = ?1")?
                        .query_row([&s.cron_id], |r| r.get(0))
                        .optional()?;
                    out.push(match there {
                        Some(enabled) if enabled == s.enabled => SwitchCopy::Same,
                        Some(_) => SwitchCopy::Kept,
                        None => {
                            conn.prepare_cached(
                                "INSERT INTO cron_state (cron_id, enabled, updated) VALUES (?1, ?2, ?3)",
                            )?
                            .execute(params![s.cron_id, s.enabled, s.updated])?;
                            SwitchCopy::Copied
                        }
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    pub async fn export_runs(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<CopiedRun>, StoreError> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, cron_id, scheduled_for, trigger, status, started, finished, duration_ms,
                        error, job_id, instance
                   FROM cron_runs WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after.unwrap_or(0), limit as i64], |r| {
                Ok(CopiedRun {
                    id: r.get(0)?,
                    cron_id: r.get(1)?,
                    scheduled_for: r.get(2)?,
                    trigger: r.get(3)?,
                    status: r.get(4)?,
                    started: r.get(5)?,
                    finished: r.get(6)?,
                    duration_ms: r.get(7)?,
                    error: r.get(8)?,
                    job_id: r.get(9)?,
                    instance: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn import_runs(
        &self,
        runs: Vec<CopiedRun>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError> {
        self.write(Mode::Alone, move |conn, _| {
            in_savepoint(conn, dry_run, |conn| {
                let mut out = Vec::new();
                for r in &runs {
                    let n = conn
                        .prepare_cached(
                            "INSERT INTO cron_runs
                                 (cron_id, scheduled_for, trigger, status, started, finished,
                                  duration_ms, error, job_id, instance)
                             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
                              WHERE NOT EXISTS (
                                    SELECT 1 FROM cron_runs
                                     WHERE cron_id = ?1 AND scheduled_for = ?2 AND trigger = ?3
                                       AND started IS ?5)
                             ON CONFLICT DO NOTHING",
                        )?
                        .execute(params![
                            r.cron_id,
                            r.scheduled_for,
                            r.trigger,
                            r.status,
                            r.started,
                            r.finished,
                            r.duration_ms,
                            r.error,
                            r.job_id,
                            r.instance
                        ])?;
                    out.push(n == 1);
                }
                Ok(out)
            })
        })
        .await
    }

    pub async fn export_history(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FinishedJob>, StoreError> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {HISTORY_COLUMNS} FROM job_history WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows =
                stmt.query_map(params![after.unwrap_or(0), limit as i64], finished_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn import_history(
        &self,
        records: Vec<FinishedJob>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError> {
        self.write(Mode::Alone, move |conn, _| {
            in_savepoint(conn, dry_run, |conn| {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO job_history
                         (id, name, description, type, status, attempts, max_attempts, priority,
                          run_at, last_error, unique_key, cron_id, created, started, finished,
                          duration_ms, result)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, ?17)
                     ON CONFLICT DO NOTHING",
                )?;
                let mut out = Vec::with_capacity(records.len());
                for r in &records {
                    let n = insert.execute(params![
                        r.id,
                        r.name,
                        r.description,
                        r.job_type,
                        r.status.as_str(),
                        r.attempts,
                        r.max_attempts,
                        r.priority,
                        r.run_at,
                        r.last_error,
                        r.unique_key,
                        r.cron_id,
                        r.created,
                        r.started,
                        r.finished,
                        r.duration_ms,
                        r.result.as_ref().map(|v| v.to_string()),
                    ])?;
                    out.push(n == 1);
                }
                Ok(out)
            })
        })
        .await
    }
}

/// Runs `f` inside a savepoint that is rolled back when `dry_run`: the
/// writer's transaction holds nothing of it then.
fn in_savepoint<R>(
    conn: &Connection,
    dry_run: bool,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    if !dry_run {
        return f(conn);
    }
    conn.execute_batch("SAVEPOINT copy_dry_run")?;
    let out = f(conn);
    conn.execute_batch("ROLLBACK TO copy_dry_run; RELEASE copy_dry_run")?;
    out
}

fn import_job(conn: &Connection, job: &CopiedJob) -> Result<JobCopy, StoreError> {
    if let Some(why) = job.fault() {
        return Ok(JobCopy::Invalid(why));
    }
    let present = conn
        .prepare_cached("SELECT 1 FROM queues WHERE id = ?1")?
        .query_row([&job.id], |_| Ok(()))
        .optional()?
        .is_some();
    if present {
        return Ok(JobCopy::Present);
    }
    if let (Some(key), false) = (&job.unique_key, job.dead) {
        let held = conn
            .prepare_cached("SELECT 1 FROM queues WHERE unique_key = ?1 AND status != 'dead'")?
            .query_row([key], |_| Ok(()))
            .optional()?
            .is_some();
        if held {
            return Ok(JobCopy::KeyHeld);
        }
    }
    conn.prepare_cached(
        "INSERT INTO queues
             (id, name, description, payload, status, attempts, max_attempts, priority, timeout,
              run_at, last_error, unique_key, cron_id, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        job.id,
        job.name,
        job.description,
        job.payload.to_string(),
        if job.dead { "dead" } else { "pending" },
        job.attempts,
        job.max_attempts,
        job.priority,
        job.timeout_s,
        job.run_at,
        job.last_error,
        job.unique_key,
        job.cron_id,
        job.created,
        job.updated
    ])?;
    let mut errors = conn.prepare_cached(
        "INSERT OR IGNORE INTO job_errors (job_id, attempt, at, error) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in &job.errors {
        errors.execute(params![job.id, e.attempt, e.at, e.error])?;
    }
    Ok(JobCopy::Copied)
}
