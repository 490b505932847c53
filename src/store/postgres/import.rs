//! The import verbs on PostgreSQL: each record's job and its
//! `import_ledger` entry in one transaction (see `store::import`).
//!
//! The ledger rows go in first, `ON CONFLICT DO NOTHING RETURNING`: the
//! records whose row this transaction inserted are the ones it takes over.
//! A second node importing the same record at the same moment waits on the
//! primary key until the first commits, then inserts nothing and reads the
//! first node's job id: each record becomes one job however many nodes
//! follow the same collection.

use std::collections::{HashMap, HashSet};

use super::PgStore;
use super::enqueue::{NewRow, refuse_nul};
use super::history::{EndingRow, record_endings};
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::history::{Ending, FinalStatus};
use crate::store::import::{ImportJob, Imported, used_up};
use crate::store::job::JobStatus;

impl PgStore {
    /// Stores each record's job and ledger entry, all or nothing; a record
    /// already in the ledger (or whose key a waiting job holds) is
    /// answered `Already`.
    pub async fn import(
        &self,
        records: Vec<ImportJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Imported>, StoreError> {
        let defaults = self.defaults().clone();
        let rows: Vec<NewRow> = records
            .iter()
            .map(|r| NewRow::new(&r.job, &defaults, now))
            .collect();
        refuse_nul(&rows)?;
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let mut out: Vec<Option<Imported>> = vec![None; records.len()];

        // The first of a record named twice in one batch takes it over.
        let mut first: HashMap<(&str, &str), usize> = HashMap::new();
        let mut again: Vec<(usize, usize)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match first.get(&(r.source.as_str(), r.record_id.as_str())) {
                Some(&j) => again.push((i, j)),
                None => {
                    first.insert((r.source.as_str(), r.record_id.as_str()), i);
                }
            }
        }
        // In one order for every node, so two nodes' inserts never wait
        // on each other in a circle.
        let mut candidates: Vec<usize> = first.values().copied().collect();
        candidates.sort_unstable_by(|a, b| {
            let (a, b) = (&records[*a], &records[*b]);
            (&a.source, &a.record_id).cmp(&(&b.source, &b.record_id))
        });
        let sources: Vec<&str> = candidates
            .iter()
            .map(|i| records[*i].source.as_str())
            .collect();
        let ids: Vec<&str> = candidates
            .iter()
            .map(|i| records[*i].record_id.as_str())
            .collect();
        let claimed: HashSet<(String, String)> = tx
            .query(
                "INSERT INTO import_ledger (source, record_id, job_id, at)
                 SELECT s, r, '', $3 FROM unnest($1::text[], $2::text[]) AS l(s, r)
                  ORDER BY s, r
                 ON CONFLICT DO NOTHING
                 RETURNING source, record_id",
                &[&sources, &ids, &f.db(now)],
            )
            .await
            .map_err(|e| self.err(&e))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let (mine, known): (Vec<usize>, Vec<usize>) = candidates.into_iter().partition(|i| {
            let r = &records[*i];
            claimed.contains(&(r.source.clone(), r.record_id.clone()))
        });
        for (i, job_id) in self.ledger_jobs(&tx, &records, &known).await? {
            out[i] = Some(Imported::Already { job_id });
        }

        let mut rows: Vec<Option<NewRow>> = rows.into_iter().map(Some).collect();
        let mut taken: Vec<NewRow> = mine.iter().filter_map(|i| rows[*i].take()).collect();
        let (stored, _) = self.insert_rows(&tx, &mut taken, now).await?;
        let mut waiting = 0u64;
        let mut carried: Vec<(String, i32, bool, Option<String>)> = Vec::new();
        for (i, enqueued) in mine.iter().copied().zip(stored) {
            let record = &records[i];
            if enqueued.duplicate {
                out[i] = Some(Imported::Already {
                    job_id: enqueued.job.id,
                });
                continue;
            }
            let mut job = enqueued.job;
            if record.attempts > 0 {
                job.attempts = record.attempts;
                if record.attempts >= job.max_attempts {
                    job.status = JobStatus::Dead;
                    job.last_error =
                        Some(used_up(&record.source, record.attempts, job.max_attempts));
                }
                carried.push((
                    job.id.clone(),
                    job.attempts.min(i32::MAX as u32) as i32,
                    job.status == JobStatus::Dead,
                    job.last_error.clone(),
                ));
            }
            if job.status != JobStatus::Dead {
                waiting += 1;
            }
            out[i] = Some(Imported::Stored(Box::new(job)));
        }
        self.point_ledger(&tx, &records, &mine, &out).await?;
        self.carry_attempts(&tx, carried, now).await?;
        for (i, j) in again {
            let job_id = match &out[j] {
                Some(Imported::Stored(job)) => job.id.clone(),
                Some(Imported::Already { job_id }) => job_id.clone(),
                None => return Err(StoreError::Database("an import lost its answer".into())),
            };
            out[i] = Some(Imported::Already { job_id });
        }
        if waiting > 0 {
            self.check_cap(&tx, waiting, max_pending).await?;
        }
        tx.commit().await.map_err(|e| self.err(&e))?;
        out.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| StoreError::Database("an import lost its answer".into()))
    }

    /// The ledger's entries for `record_ids` of `source`.
    pub async fn imported(
        &self,
        source: String,
        record_ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record_id, job_id FROM import_ledger
                  WHERE source = $1 AND record_id = ANY($2)",
                &[&source, &record_ids],
            )
            .await
            .map_err(|e| self.err(&e))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The job ids the ledger holds for the records at `at`, by position.
    async fn ledger_jobs(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        records: &[ImportJob],
        at: &[usize],
    ) -> Result<Vec<(usize, String)>, StoreError> {
        if at.is_empty() {
            return Ok(Vec::new());
        }
        let sources: Vec<&str> = at.iter().map(|i| records[*i].source.as_str()).collect();
        let ids: Vec<&str> = at.iter().map(|i| records[*i].record_id.as_str()).collect();
        let found: HashMap<(String, String), String> = tx
            .query(
                "SELECT l.source, l.record_id, l.job_id
                   FROM import_ledger l
                   JOIN unnest($1::text[], $2::text[]) AS w(s, r)
                     ON l.source = w.s AND l.record_id = w.r",
                &[&sources, &ids],
            )
            .await
            .map_err(|e| self.err(&e))?
            .iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect();
        at.iter()
            .map(|i| {
                let r = &records[*i];
                found
                    .get(&(r.source.clone(), r.record_id.clone()))
                    .map(|job_id| (*i, job_id.clone()))
                    .ok_or_else(|| {
                        StoreError::Database(format!(
                            "the import ledger lost the entry of {}:{}",
                            r.source, r.record_id
                        ))
                    })
            })
            .collect()
    }

    /// Writes the job id of each record this transaction took over into
    /// the ledger row it inserted.
    async fn point_ledger(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        records: &[ImportJob],
        mine: &[usize],
        out: &[Option<Imported>],
    ) -> Result<(), StoreError> {
        let mut sources = Vec::with_capacity(mine.len());
        let mut ids = Vec::with_capacity(mine.len());
        let mut jobs = Vec::with_capacity(mine.len());
        for i in mine {
            let job_id = match &out[*i] {
                Some(Imported::Stored(job)) => job.id.as_str(),
                Some(Imported::Already { job_id }) => job_id.as_str(),
                None => continue,
            };
            sources.push(records[*i].source.as_str());
            ids.push(records[*i].record_id.as_str());
            jobs.push(job_id);
        }
        if jobs.is_empty() {
            return Ok(());
        }
        tx.execute(
            "UPDATE import_ledger l SET job_id = u.j
               FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, r, j)
              WHERE l.source = u.s AND l.record_id = u.r",
            &[&sources, &ids, &jobs],
        )
        .await
        .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// Sets carried-over attempts, burying the jobs that used them all
    /// (with their history records, as jobs that die here get).
    async fn carry_attempts(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        carried: Vec<(String, i32, bool, Option<String>)>,
        now: Millis,
    ) -> Result<(), StoreError> {
        if carried.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = carried.iter().map(|c| c.0.as_str()).collect();
        let attempts: Vec<i32> = carried.iter().map(|c| c.1).collect();
        let dead: Vec<bool> = carried.iter().map(|c| c.2).collect();
        let errors: Vec<Option<&str>> = carried.iter().map(|c| c.3.as_deref()).collect();
        tx.execute(
            "UPDATE queues q
                SET attempts = c.attempts,
                    status = CASE WHEN c.dead THEN 'dead' ELSE q.status END,
                    last_error = c.error,
                    updated = $5
               FROM unnest($1::text[], $2::int4[], $3::bool[], $4::text[])
                 AS c(id, attempts, dead, error)
              WHERE q.id = c.id",
            &[&ids, &attempts, &dead, &errors, &self.frame().db(now)],
        )
        .await
        .map_err(|e| self.err(&e))?;
        let endings = carried
            .iter()
            .filter(|c| c.2)
            .map(|c| EndingRow {
                id: c.0.clone(),
                fence: None,
                at: self.frame().db(now),
                ending: Ending::default(),
            })
            .collect();
        record_endings(tx, self.defaults(), FinalStatus::Dead, endings)
            .await
            .map_err(|e| self.err(&e))?;
        Ok(())
    }
}
