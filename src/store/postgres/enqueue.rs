//! Enqueue: a batch of jobs in one transaction, all or nothing, with one
//! multi-row `INSERT` (arrays through `unnest`), so the statement trigger
//! sends one notification for the whole batch.
//!
//! A job whose unique key is held by a waiting or running job is not
//! stored; that job is answered, marked duplicate. `max_pending` caps
//! pending plus scheduled jobs, checked inside the transaction; two nodes
//! enqueueing at the same instant each see their own batch and the
//! committed rest, so the cap is exact on one node and may be passed by
//! one batch per node under a race.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::Value;

use super::PgStore;
use super::row::{JOB_COLUMNS, job_from_row};
use crate::clock::Millis;
use crate::store::job::{Enqueued, Job, NewJob, new_id};
use crate::store::{JobDefaults, StoreError};

const INSERT: &str = "INSERT INTO queues (id, name, description, payload, max_attempts, priority,
                                          run_at, timeout, unique_key, cron_id, created, updated)
     SELECT id, name, description, payload, max_attempts, priority, run_at, timeout, unique_key,
            cron_id, created, created
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int4[], $6::int8[],
                   $7::timestamptz[], $8::int4[], $9::text[], $10::text[], $11::timestamptz[])
         AS n(id, name, description, payload, max_attempts, priority, run_at, timeout,
              unique_key, cron_id, created)
     ON CONFLICT DO NOTHING
     RETURNING id";

/// A new job's row, and the job as answered.
pub(super) struct NewRow {
    pub(super) job: Job,
    cron_run: Option<i64>,
}

impl NewRow {
    pub(super) fn new(new: &NewJob, defaults: &JobDefaults, now: Millis) -> NewRow {
        NewRow {
            cron_run: new.cron_run,
            job: new.pending_job(defaults, now),
        }
    }
}

/// Refuses rows holding U+0000, which `jsonb` and `text` cannot store.
pub(super) fn refuse_nul(rows: &[NewRow]) -> Result<(), StoreError> {
    for (i, row) in rows.iter().enumerate() {
        let text_nul = [&row.job.name, &row.job.description]
            .into_iter()
            .chain(row.job.unique_key.as_ref())
            .any(|s| s.contains('\0'));
        if text_nul || holds_nul(&row.job.payload) {
            return Err(StoreError::Database(format!(
                "job {i}: PostgreSQL cannot store the character U+0000 (in its name, description, unique key or data)"
            )));
        }
    }
    Ok(())
}

/// Whether a JSON value holds U+0000, which `jsonb` and `text` refuse.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

impl PgStore {
    /// Stores `jobs` all or nothing, durably. A job whose unique key is held
    /// by a waiting or running job is not stored; that job is returned,
    /// marked duplicate. `max_pending` caps pending plus scheduled jobs.
    pub async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let defaults = self.defaults().clone();
        let mut rows: Vec<NewRow> = jobs
            .iter()
            .map(|job| NewRow::new(job, &defaults, now))
            .collect();
        refuse_nul(&rows)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let (out, inserted) = self.insert_rows(&tx, &mut rows, now).await?;
        if inserted > 0 {
            self.check_cap(&tx, inserted, max_pending).await?;
        }
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(out)
    }

    /// Refuses the transaction's `inserted` jobs when they put more than
    /// `max_pending` jobs in `pending` and `scheduled` together.
    pub(super) async fn check_cap(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        inserted: u64,
        max_pending: u64,
    ) -> Result<(), StoreError> {
        let pending = pending_count(tx).await.map_err(|e| self.err(&e))?;
        if pending > max_pending {
            return Err(StoreError::QueueFull {
                pending: pending - inserted,
                limit: max_pending,
            });
        }
        Ok(())
    }

    /// Inserts `rows` inside `tx` with one multi-row statement (a few when
    /// fresh ids collide), and points their cron runs at them. Answers by
    /// position, and how many were stored (the rest are duplicates).
    pub(super) async fn insert_rows(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        rows: &mut [NewRow],
        now: Millis,
    ) -> Result<(Vec<Enqueued>, u64), StoreError> {
        let f = self.frame();
        let insert = tx.prepare_cached(INSERT).await.map_err(|e| self.err(&e))?;
        // Answers by position; None until the row is stored or a duplicate.
        let mut out: Vec<Option<Enqueued>> = vec![None; rows.len()];
        let mut inserted = 0u64;
        // Fresh ids of one millisecond rarely collide (see `new_id`); such rows try again.
        for _ in 0..3 {
            let todo: Vec<usize> = (0..rows.len()).filter(|i| out[*i].is_none()).collect();
            if todo.is_empty() {
                break;
            }
            let col = |get: &dyn Fn(&Job) -> String| -> Vec<String> {
                todo.iter().map(|i| get(&rows[*i].job)).collect()
            };
            let ids = col(&|j| j.id.clone());
            let names = col(&|j| j.name.clone());
            let descriptions = col(&|j| j.description.clone());
            let payloads: Vec<&Value> = todo.iter().map(|i| &rows[*i].job.payload).collect();
            let max_attempts: Vec<i32> = todo
                .iter()
                .map(|i| rows[*i].job.max_attempts.min(i32::MAX as u32) as i32)
                .collect();
            let priorities: Vec<i64> = todo.iter().map(|i| rows[*i].job.priority).collect();
            let run_ats: Vec<SystemTime> = todo.iter().map(|i| f.db(rows[*i].job.run_at)).collect();
            let timeouts: Vec<i32> = todo
                .iter()
                .map(|i| rows[*i].job.timeout_s.min(i32::MAX as u32) as i32)
                .collect();
            let keys: Vec<Option<&str>> = todo
                .iter()
                .map(|i| rows[*i].job.unique_key.as_deref())
                .collect();
            let crons: Vec<Option<&str>> = todo
                .iter()
                .map(|i| rows[*i].job.cron_id.as_deref())
                .collect();
            let created: Vec<SystemTime> = todo.iter().map(|_| f.db(now)).collect();
            let stored: std::collections::HashSet<String> = tx
                .query(
                    &insert,
                    &[
                        &ids,
                        &names,
                        &descriptions,
                        &payloads,
                        &max_attempts,
                        &priorities,
                        &run_ats,
                        &timeouts,
                        &keys,
                        &crons,
                        &created,
                    ],
                )
                .await
                .map_err(|e| self.err(&e))?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            let mut missed_keys: Vec<String> = Vec::new();
            for i in &todo {
                if stored.contains(&rows[*i].job.id) {
                    inserted += 1;
                    out[*i] = Some(Enqueued {
                        job: rows[*i].job.clone(),
                        duplicate: false,
                    });
                } else if let Some(key) = &rows[*i].job.unique_key {
                    missed_keys.push(key.clone());
                }
            }
            let holders = self.holders(tx, &missed_keys, now).await?;
            for i in todo {
                if out[i].is_some() {
                    continue;
                }
                match rows[i].job.unique_key.as_ref().and_then(|k| holders.get(k)) {
                    Some(holder) => {
                        out[i] = Some(Enqueued {
                            job: holder.clone(),
                            duplicate: true,
                        })
                    }
                    None => rows[i].job.id = new_id(),
                }
            }
        }
        let Some(out) = out.into_iter().collect::<Option<Vec<Enqueued>>>() else {
            return Err(StoreError::Database("could not find a free job id".into()));
        };
        let (runs, run_jobs): (Vec<i64>, Vec<&str>) = rows
            .iter()
            .zip(&out)
            .filter(|(_, e)| !e.duplicate)
            .filter_map(|(row, e)| row.cron_run.map(|run| (run, e.job.id.as_str())))
            .unzip();
        if !runs.is_empty() {
            // In the job's own transaction: a job that runs and finishes at
            // once still finds its run to settle.
            tx.execute(
                "UPDATE cron_runs r SET job_id = l.job_id
                   FROM unnest($1::int8[], $2::text[]) AS l(run_id, job_id)
                  WHERE r.id = l.run_id",
                &[&runs, &run_jobs],
            )
            .await
            .map_err(|e| self.err(&e))?;
        }
        Ok((out, inserted))
    }

    /// The waiting or running jobs holding `keys`, by key.
    async fn holders(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        keys: &[String],
        now: Millis,
    ) -> Result<HashMap<String, Job>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let f = self.frame();
        let rows = tx
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM queues
                      WHERE unique_key = ANY($1) AND status <> 'dead'"
                ),
                &[&keys],
            )
            .await
            .map_err(|e| self.err(&e))?;
        let mut out = HashMap::new();
        for row in rows {
            let job = job_from_row(&row, self.defaults(), now, f).map_err(|e| self.err(&e))?;
            if let Some(key) = job.unique_key.clone() {
                out.insert(key, job);
            }
        }
        Ok(out)
    }
}

/// Pending plus scheduled jobs, from the count deltas.
pub(super) async fn pending_count(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<u64, tokio_postgres::Error> {
    let n: i64 = client
        .query_one(
            "SELECT COALESCE(SUM(n), 0)::int8 FROM queue_counts WHERE status = 'pending'",
            &[],
        )
        .await?
        .get(0);
    Ok(n.max(0) as u64)
}
