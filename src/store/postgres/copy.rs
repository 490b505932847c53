//! `cronq copy-store` on PostgreSQL: jobs, switches and runs read out as
//! stored, and written in as given, keyed so a second copy changes nothing
//! (see `store::copy`).
//!
//! Instants cross as stored (the raw frame, not this process's clock
//! offset): a job due at 10:00 in the source is due at 10:00 here. A page
//! of jobs is one transaction of four statements (which ids are here,
//! which keys are held, the rows, their failures), arrays through
//! `unnest`, so a large queue copies in round trips per page, not per job;
//! a dry run rolls it back.

use std::collections::HashSet;
use std::time::SystemTime;

use serde_json::Value;

use super::PgStore;
use super::history::{HISTORY_COLUMNS, finished_from_row};
use super::row::{JOB_COLUMNS, job_from_row, storable_text};
use super::time::{self, Frame};
use crate::store::StoreError;
use crate::store::copy::{CopiedJob, CopiedRun, CopiedSwitch, JobCopy, SwitchCopy};
use crate::store::history::{FinishedJob, bound_result};
use crate::store::job::{AttemptError, JobStatus};

impl PgStore {
    pub async fn export_jobs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<CopiedJob>, Option<String>), StoreError> {
        let client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let rows = client
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM queues
                      WHERE status IN ('pending', 'dead') AND id > $1 ORDER BY id LIMIT $2"
                ),
                &[&after.unwrap_or_default(), &(limit as i64)],
            )
            .await
            .map_err(e)?;
        let raw = Frame(0);
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            let job = job_from_row(row, self.defaults(), 0, raw).map_err(e)?;
            let stored = |i: usize| -> Result<Option<u32>, tokio_postgres::Error> {
                Ok(row.try_get::<_, Option<i32>>(i)?.map(|n| n.max(1) as u32))
            };
            jobs.push(CopiedJob {
                dead: job.status == JobStatus::Dead,
                max_attempts: stored(7).map_err(e)?,
                timeout_s: stored(9).map_err(e)?,
                errors: Vec::new(),
                id: job.id,
                name: job.name,
                description: job.description,
                payload: job.payload,
                attempts: job.attempts,
                priority: job.priority,
                run_at: job.run_at,
                last_error: job.last_error,
                unique_key: job.unique_key,
                cron_id: job.cron_id,
                created: job.created,
                updated: job.updated,
                unreadable: None,
            });
        }
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let errors = client
            .query(
                "SELECT job_id, attempt, at, error FROM job_errors
                  WHERE job_id = ANY($1) ORDER BY job_id, attempt",
                &[&ids],
            )
            .await
            .map_err(e)?;
        for row in &errors {
            let job_id: String = row.try_get(0).map_err(e)?;
            if let Some(job) = jobs.iter_mut().find(|j| j.id == job_id) {
                job.errors.push(AttemptError {
                    attempt: row.try_get::<_, i32>(1).map_err(e)?.max(0) as u32,
                    at: time::millis_of(row.try_get(2).map_err(e)?),
                    error: row.try_get(3).map_err(e)?,
                });
            }
        }
        let next = match jobs.len() == limit {
            true => jobs.last().map(|j| j.id.clone()),
            false => None,
        };
        Ok((jobs, next))
    }

    pub async fn import_jobs(
        &self,
        jobs: Vec<CopiedJob>,
        dry_run: bool,
    ) -> Result<Vec<JobCopy>, StoreError> {
        let mut client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let tx = client.transaction().await.map_err(e)?;
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let present: HashSet<String> = tx
            .query("SELECT id FROM queues WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(e)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(e)?;
        let keys: Vec<&str> = jobs
            .iter()
            .filter(|j| !j.dead)
            .filter_map(|j| j.unique_key.as_deref())
            .collect();
        let held: HashSet<String> = tx
            .query(
                "SELECT unique_key FROM queues WHERE unique_key = ANY($1) AND status <> 'dead'",
                &[&keys],
            )
            .await
            .map_err(e)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(e)?;
        let answers: Vec<JobCopy> = jobs
            .iter()
            .map(|job| {
                if let Some(why) = job.fault().or_else(|| unstorable(job)) {
                    JobCopy::Invalid(why)
                } else if present.contains(&job.id) {
                    JobCopy::Present
                } else if !job.dead && job.unique_key.as_ref().is_some_and(|k| held.contains(k)) {
                    JobCopy::KeyHeld
                } else {
                    JobCopy::Copied
                }
            })
            .collect();
        let mut answers = answers;
        let new: Vec<&CopiedJob> = jobs
            .iter()
            .zip(&answers)
            .filter(|(_, a)| **a == JobCopy::Copied)
            .map(|(j, _)| j)
            .collect();
        let inserted = insert_jobs(&tx, &new).await.map_err(e)?;
        let new: Vec<&CopiedJob> = new
            .into_iter()
            .filter(|j| inserted.contains(&j.id))
            .collect();
        insert_errors(&tx, &new).await.map_err(e)?;
        // A job a daemon stored meanwhile (one left running with --force)
        // holds the key: what is not inserted was not copied.
        for (job, answer) in jobs.iter().zip(answers.iter_mut()) {
            if *answer == JobCopy::Copied && !inserted.contains(&job.id) {
                *answer = JobCopy::KeyHeld;
            }
        }
        if !dry_run {
            tx.commit().await.map_err(e)?;
        }
        Ok(answers)
    }

    pub async fn export_switches(&self) -> Result<Vec<CopiedSwitch>, StoreError> {
        let client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let rows = client
            .query(
                "SELECT cron_id, enabled, updated FROM cron_state ORDER BY cron_id",
                &[],
            )
            .await
            .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(CopiedSwitch {
                    cron_id: r.try_get(0)?,
                    enabled: r.try_get(1)?,
                    updated: time::millis_of(r.try_get(2)?),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(e)
    }

    pub async fn import_switches(
        &self,
        switches: Vec<CopiedSwitch>,
        dry_run: bool,
    ) -> Result<Vec<SwitchCopy>, StoreError> {
        let mut client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let tx = client.transaction().await.map_err(e)?;
        let mut out = Vec::with_capacity(switches.len());
        for s in &switches {
            let there = tx
                .query_opt(
                    "SELECT enabled FROM cron_state WHERE cron_id = $1",
                    &[&s.cron_id],
                )
                .await
                .map_err(e)?;
            let there: Option<bool> = there.map(|r| r.try_get(0)).transpose().map_err(e)?;
            out.push(match there {
                Some(enabled) if enabled == s.enabled => SwitchCopy::Same,
                Some(_) => SwitchCopy::Kept,
                None => {
                    tx.execute(
                        "INSERT INTO cron_state (cron_id, enabled, updated) VALUES ($1, $2, $3)",
                        &[&s.cron_id, &s.enabled, &time::time_of(s.updated)],
                    )
                    .await
                    .map_err(e)?;
                    SwitchCopy::Copied
                }
            });
        }
        if !dry_run {
            tx.commit().await.map_err(e)?;
        }
        Ok(out)
    }

    pub async fn export_runs(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<CopiedRun>, StoreError> {
        let client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let rows = client
            .query(
                "SELECT id, cron_id, scheduled_for, trigger, status, started, finished, duration_ms,
                        error, job_id, instance
                   FROM cron_runs WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after.unwrap_or(0), &(limit as i64)],
            )
            .await
            .map_err(e)?;
        let at = |t: Option<SystemTime>| t.map(time::millis_of);
        rows.iter()
            .map(|r| {
                Ok(CopiedRun {
                    id: r.try_get(0)?,
                    cron_id: r.try_get(1)?,
                    scheduled_for: time::millis_of(r.try_get(2)?),
                    trigger: r.try_get(3)?,
                    status: r.try_get(4)?,
                    started: at(r.try_get(5)?),
                    finished: at(r.try_get(6)?),
                    duration_ms: r.try_get(7)?,
                    error: r.try_get(8)?,
                    job_id: r.try_get(9)?,
                    instance: r.try_get(10)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(e)
    }

    pub async fn import_runs(
        &self,
        runs: Vec<CopiedRun>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let mut client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let tx = client.transaction().await.map_err(e)?;
        let insert = tx
            .prepare(
                "INSERT INTO cron_runs
                     (cron_id, scheduled_for, trigger, status, started, finished, duration_ms,
                      error, job_id, instance)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
                  WHERE NOT EXISTS (
                        SELECT 1 FROM cron_runs
                         WHERE cron_id = $1 AND scheduled_for = $2 AND trigger = $3
                           AND started IS NOT DISTINCT FROM $5)
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(e)?;
        let mut out = Vec::with_capacity(runs.len());
        for r in &runs {
            let n = tx
                .execute(
                    &insert,
                    &[
                        &r.cron_id,
                        &time::time_of(r.scheduled_for),
                        &r.trigger,
                        &r.status,
                        &r.started.map(time::time_of),
                        &r.finished.map(time::time_of),
                        &r.duration_ms,
                        &r.error.as_deref().map(storable_text),
                        &r.job_id,
                        &r.instance,
                    ],
                )
                .await
                .map_err(e)?;
            out.push(n == 1);
        }
        if !dry_run {
            tx.commit().await.map_err(e)?;
        }
        Ok(out)
    }

    pub async fn export_history(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FinishedJob>, StoreError> {
        let client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let rows = client
            .query(
                &format!(
                    "SELECT {HISTORY_COLUMNS} FROM job_history WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&after.unwrap_or(0), &(limit as i64)],
            )
            .await
            .map_err(e)?;
        // As stored: the raw frame.
        rows.iter()
            .map(|r| finished_from_row(r, Frame(0)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(e)
    }

    pub async fn import_history(
        &self,
        records: Vec<FinishedJob>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let mut client = self.client().await?;
        let e = |e: tokio_postgres::Error| self.err(&e);
        let tx = client.transaction().await.map_err(e)?;
        let insert = tx
            .prepare(
                "INSERT INTO job_history
                     (id, name, description, type, status, attempts, max_attempts, priority,
                      run_at, last_error, unique_key, cron_id, created, started, finished,
                      duration_ms, result)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                         $16, $17)
                 ON CONFLICT (id) DO NOTHING",
            )
            .await
            .map_err(e)?;
        let text = |t: &Option<String>| t.as_deref().map(storable_text);
        let mut out = Vec::with_capacity(records.len());
        for r in &records {
            let n = tx
                .execute(
                    &insert,
                    &[
                        &storable_text(&r.id),
                        &storable_text(&r.name),
                        &storable_text(&r.description),
                        &storable_text(&r.job_type),
                        &r.status.as_str(),
                        &(r.attempts.min(i32::MAX as u32) as i32),
                        &(r.max_attempts.min(i32::MAX as u32) as i32),
                        &r.priority,
                        &time::time_of(r.run_at),
                        &text(&r.last_error),
                        &text(&r.unique_key),
                        &text(&r.cron_id),
                        &time::time_of(r.created),
                        &r.started.map(time::time_of),
                        &time::time_of(r.finished),
                        &r.duration_ms,
                        &r.result.clone().map(bound_result),
                    ],
                )
                .await
                .map_err(e)?;
            out.push(n == 1);
        }
        if !dry_run {
            tx.commit().await.map_err(e)?;
        }
        Ok(out)
    }
}

/// Why PostgreSQL cannot hold a job a file could: `jsonb` has no U+0000.
fn unstorable(job: &CopiedJob) -> Option<String> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    has_nul(&job.payload).then(|| {
        format!(
            "job {}: its payload holds the character U+0000, which PostgreSQL's jsonb cannot store",
            job.id
        )
    })
}

/// Inserts `jobs`; the ids stored (a job whose id or key another
/// transaction took meanwhile is not).
async fn insert_jobs(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[&CopiedJob],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    if jobs.is_empty() {
        return Ok(HashSet::new());
    }
    let text = |f: fn(&CopiedJob) -> &str| -> Vec<String> {
        jobs.iter().map(|j| storable_text(f(j))).collect()
    };
    let opt_text = |f: fn(&CopiedJob) -> Option<&str>| -> Vec<Option<String>> {
        jobs.iter().map(|j| f(j).map(storable_text)).collect()
    };
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let names = text(|j| &j.name);
    let descriptions = text(|j| &j.description);
    let payloads: Vec<&Value> = jobs.iter().map(|j| &j.payload).collect();
    let statuses: Vec<&str> = jobs
        .iter()
        .map(|j| if j.dead { "dead" } else { "pending" })
        .collect();
    let attempts: Vec<i32> = jobs
        .iter()
        .map(|j| j.attempts.min(i32::MAX as u32) as i32)
        .collect();
    let max_attempts: Vec<Option<i32>> = jobs
        .iter()
        .map(|j| j.max_attempts.map(|n| n.min(i32::MAX as u32) as i32))
        .collect();
    let priorities: Vec<i64> = jobs.iter().map(|j| j.priority).collect();
    let timeouts: Vec<Option<i32>> = jobs
        .iter()
        .map(|j| j.timeout_s.map(|n| n.min(i32::MAX as u32) as i32))
        .collect();
    let at = |f: fn(&CopiedJob) -> i64| -> Vec<SystemTime> {
        jobs.iter().map(|j| time::time_of(f(j))).collect()
    };
    let run_at = at(|j| j.run_at);
    let created = at(|j| j.created);
    let updated = at(|j| j.updated);
    let last_errors = opt_text(|j| j.last_error.as_deref());
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
    let crons: Vec<Option<&str>> = jobs.iter().map(|j| j.cron_id.as_deref()).collect();
    tx.query(
        "INSERT INTO queues
             (id, name, description, payload, status, attempts, max_attempts, priority, timeout,
              run_at, last_error, unique_key, cron_id, created, updated)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                              $6::int4[], $7::int4[], $8::int8[], $9::int4[], $10::timestamptz[],
                              $11::text[], $12::text[], $13::text[], $14::timestamptz[],
                              $15::timestamptz[])
         ON CONFLICT DO NOTHING
         RETURNING id",
        &[
            &ids,
            &names,
            &descriptions,
            &payloads,
            &statuses,
            &attempts,
            &max_attempts,
            &priorities,
            &timeouts,
            &run_at,
            &last_errors,
            &keys,
            &crons,
            &created,
            &updated,
        ],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect()
}

async fn insert_errors(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[&CopiedJob],
) -> Result<(), tokio_postgres::Error> {
    let errors: Vec<(&str, &AttemptError)> = jobs
        .iter()
        .flat_map(|j| j.errors.iter().map(|e| (j.id.as_str(), e)))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = errors.iter().map(|(id, _)| *id).collect();
    let attempts: Vec<i32> = errors
        .iter()
        .map(|(_, e)| e.attempt.min(i32::MAX as u32) as i32)
        .collect();
    let ats: Vec<SystemTime> = errors.iter().map(|(_, e)| time::time_of(e.at)).collect();
    let texts: Vec<String> = errors
        .iter()
        .map(|(_, e)| storable_text(&e.error))
        .collect();
    tx.execute(
        "INSERT INTO job_errors (job_id, attempt, at, error)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::text[])
         ON CONFLICT DO NOTHING",
        &[&ids, &attempts, &ats, &texts],
    )
    .await?;
    Ok(())
}
