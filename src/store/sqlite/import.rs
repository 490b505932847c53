//! The import verbs on SQLite: each record's job and its `import_ledger`
//! entry in one transaction (see `store::import` for why a ledger).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::history::record_ending;
use super::jobs::{NewRow, insert_job, pending_count};
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{Ending, FinalStatus};
use crate::store::import::{ImportJob, Imported, used_up};
use crate::store::job::{Job, JobDefaults, JobStatus};

impl SqliteStore {
    /// Stores each record's job and ledger entry, all or nothing, durably;
    /// a record already in the ledger (or whose key a waiting job holds)
    /// is answered `Already`.
    pub async fn import(
        &self,
        records: Vec<ImportJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Imported>, StoreError> {
        let mode = if records.len() > 1 {
            Mode::Alone
        } else {
            Mode::Durable
        };
        let defaults = self.inner.defaults.clone();
        let rows: Vec<(ImportJob, NewRow)> = records
            .into_iter()
            .map(|record| {
                let row = NewRow::new(&record.job, &defaults, now);
                (record, row)
            })
            .collect();
        self.write(mode, move |conn, defaults| {
            let mut out = Vec::with_capacity(rows.len());
            let mut waiting = 0u64;
            for (record, row) in rows {
                let imported = import_one(conn, defaults, &record, row, now)?;
                if let Imported::Stored(job) = &imported
                    && job.status != JobStatus::Dead
                {
                    waiting += 1;
                }
                out.push(imported);
            }
            if waiting > 0 {
                let pending = pending_count(conn)?;
                if pending > max_pending {
                    return Err(StoreError::QueueFull {
                        pending: pending - waiting,
                        limit: max_pending,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    /// The ledger's entries for `record_ids` of `source`.
    pub async fn imported(
        &self,
        source: String,
        record_ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let ids = serde_json::to_string(&record_ids).unwrap_or_else(|_| "[]".into());
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT record_id, job_id FROM import_ledger
                  WHERE source = ?1 AND record_id IN (SELECT value FROM json_each(?2))",
            )?;
            let rows = stmt.query_map(params![source, ids], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

fn import_one(
    conn: &Connection,
    defaults: &JobDefaults,
    record: &ImportJob,
    row: NewRow,
    now: Millis,
) -> Result<Imported, StoreError> {
    let known: Option<String> = conn
        .prepare_cached("SELECT job_id FROM import_ledger WHERE source = ?1 AND record_id = ?2")?
        .query_row(params![record.source, record.record_id], |r| r.get(0))
        .optional()?;
    if let Some(job_id) = known {
        return Ok(Imported::Already { job_id });
    }
    let enqueued = insert_job(conn, defaults, row, now)?;
    let mut ledger = conn.prepare_cached(
        "INSERT INTO import_ledger (source, record_id, job_id, at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    ledger.execute(params![
        record.source,
        record.record_id,
        enqueued.job.id,
        now
    ])?;
    if enqueued.duplicate {
        // A waiting job holds the record's key without a ledger entry (an
        // enqueue that named the key itself): that job is the record's.
        return Ok(Imported::Already {
            job_id: enqueued.job.id,
        });
    }
    let mut job = enqueued.job;
    carry_attempts(conn, defaults, &mut job, record, now)?;
    Ok(Imported::Stored(Box::new(job)))
}

/// Sets the attempts a record used elsewhere on its new job, burying it
/// when they reach the job's limit (with its history record, as a job that
/// dies here gets).
fn carry_attempts(
    conn: &Connection,
    defaults: &JobDefaults,
    job: &mut Job,
    record: &ImportJob,
    now: Millis,
) -> Result<(), StoreError> {
    if record.attempts == 0 {
        return Ok(());
    }
    job.attempts = record.attempts;
    if record.attempts >= job.max_attempts {
        job.status = JobStatus::Dead;
        job.last_error = Some(used_up(&record.source, record.attempts, job.max_attempts));
    }
    conn.prepare_cached(
        "UPDATE queues SET attempts = ?2, status = ?3, last_error = ?4, updated = ?5 WHERE id = ?1",
    )?
    .execute(params![
        job.id,
        job.attempts,
        if job.status == JobStatus::Dead {
            "dead"
        } else {
            "pending"
        },
        job.last_error,
        now
    ])?;
    if job.status == JobStatus::Dead {
        let (dead, nothing) = (FinalStatus::Dead, Ending::default());
        record_ending(conn, defaults, &job.id, None, dead, &nothing, now)?;
    }
    Ok(())
}
