//! The operator's bulk verbs, as on SQLite: retry, cancel and purge of
//! every job a filter matches, oldest first, at most `limit` per call with
//! a cursor to go on, each call one transaction. The matched rows are
//! locked (`FOR UPDATE SKIP LOCKED`): a row another node is claiming at
//! that moment is running, which no bulk verb touches.

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::Transaction;

use super::PgStore;
use super::filter::Where;
use super::maintenance::cancel_on;
use super::time::Frame;
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::history::{Bulk, BulkFilter, CancelledJob};
use crate::store::job::JobStatus;

/// Which rows a verb may touch at all.
#[derive(Clone, Copy)]
enum Verb {
    Retry,
    Cancel,
    Purge(Option<Millis>),
}

struct Candidate {
    id: String,
    created: SystemTime,
    unique_key: Option<String>,
    /// What a cancel's event names.
    job: CancelledJob,
}

impl PgStore {
    pub async fn retry_matching(
        &self,
        filter: BulkFilter,
        now: Millis,
    ) -> Result<Bulk, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let (found, next) = candidates(&tx, &filter, Verb::Retry, now, f)
            .await
            .map_err(|e| self.err(&e))?;
        let keys: Vec<&str> = found
            .iter()
            .filter_map(|c| c.unique_key.as_deref())
            .collect();
        let mut holders: HashMap<String, String> = HashMap::new();
        if !keys.is_empty() {
            let rows = tx
                .query(
                    "SELECT unique_key, id FROM queues
                      WHERE unique_key = ANY($1) AND status <> 'dead'",
                    &[&keys],
                )
                .await
                .map_err(|e| self.err(&e))?;
            for row in rows {
                let key: String = row.try_get(0).map_err(|e| self.err(&e))?;
                let id: String = row.try_get(1).map_err(|e| self.err(&e))?;
                holders.insert(key, id);
            }
        }
        let mut chosen = Vec::with_capacity(found.len());
        let mut skipped = 0;
        for c in found {
            if let Some(key) = &c.unique_key {
                match holders.get(key) {
                    Some(holder) if *holder != c.id => {
                        skipped += 1;
                        continue;
                    }
                    _ => {
                        holders.insert(key.clone(), c.id.clone());
                    }
                }
            }
            chosen.push(c.id);
        }
        let at = f.db(now);
        let count = if chosen.is_empty() {
            0
        } else {
            tx.execute(
                "UPDATE queues SET status = 'pending', attempts = 0, run_at = $2,
                        reserved_at = NULL, reserved_by = NULL, updated = $2
                  WHERE id = ANY($1) AND (status = 'dead' OR (status = 'pending' AND run_at > $2))",
                &[&chosen, &at],
            )
            .await
            .map_err(|e| self.err(&e))?
        };
        if count > 0 {
            tx.execute("SELECT pg_notify('cronq_jobs', 'ready')", &[])
                .await
                .map_err(|e| self.err(&e))?;
        }
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(Bulk {
            count,
            skipped,
            next: next.map(|(t, id)| (f.ms(t), id)),
            cancelled: Vec::new(),
        })
    }

    pub async fn cancel_matching(
        &self,
        filter: BulkFilter,
        now: Millis,
    ) -> Result<Bulk, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let (found, next) = candidates(&tx, &filter, Verb::Cancel, now, f)
            .await
            .map_err(|e| self.err(&e))?;
        let ids: Vec<String> = found.iter().map(|c| c.id.clone()).collect();
        // Locked and not running, every one is deleted.
        let count = cancel_on(&tx, self.defaults(), ids, f.db(now))
            .await
            .map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(Bulk {
            count,
            skipped: 0,
            next: next.map(|(t, id)| (f.ms(t), id)),
            cancelled: found.into_iter().map(|c| c.job).collect(),
        })
    }

    pub async fn purge_matching(
        &self,
        filter: BulkFilter,
        before: Option<Millis>,
    ) -> Result<Bulk, StoreError> {
        let f = self.frame();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let (found, next) = candidates(&tx, &filter, Verb::Purge(before), 0, f)
            .await
            .map_err(|e| self.err(&e))?;
        let ids: Vec<String> = found.into_iter().map(|c| c.id).collect();
        let count = if ids.is_empty() {
            0
        } else {
            tx.execute(
                "DELETE FROM queues WHERE id = ANY($1) AND status = 'dead'",
                &[&ids],
            )
            .await
            .map_err(|e| self.err(&e))?
        };
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(Bulk {
            count,
            skipped: 0,
            next: next.map(|(t, id)| (f.ms(t), id)),
            cancelled: Vec::new(),
        })
    }
}

type Cursor = (SystemTime, String);

/// Up to `filter.limit` rows the verb may touch that match, oldest first,
/// locked; and the cursor of the last one when more follow.
async fn candidates(
    tx: &Transaction<'_>,
    filter: &BulkFilter,
    verb: Verb,
    now: Millis,
    f: Frame,
) -> Result<(Vec<Candidate>, Option<Cursor>), tokio_postgres::Error> {
    let mut w = Where::default();
    // Bound only where a condition compares with it: PostgreSQL cannot
    // type a parameter the statement does not use.
    let uses_now = matches!(verb, Verb::Retry)
        || matches!(
            filter.status,
            Some(JobStatus::Pending | JobStatus::Scheduled)
        );
    let at = if uses_now {
        w.bind(f.db(now))
    } else {
        String::new()
    };
    w.push(match verb {
        Verb::Retry => format!("(status = 'dead' OR (status = 'pending' AND run_at > {at}))"),
        Verb::Cancel => "status <> 'running'".to_string(),
        Verb::Purge(_) => "status = 'dead'".to_string(),
    });
    match filter.status {
        Some(JobStatus::Pending) => w.push(format!("status = 'pending' AND run_at <= {at}")),
        Some(JobStatus::Scheduled) => w.push(format!("status = 'pending' AND run_at > {at}")),
        Some(JobStatus::Running) => w.push("false"),
        Some(JobStatus::Dead) => w.push("status = 'dead'"),
        None => {}
    }
    if let Verb::Purge(Some(before)) = verb {
        w.compare("updated <", f.db(before));
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
        w.compare("created >=", f.db(since));
    }
    if let Some(until) = filter.until {
        w.compare("created <", f.db(until));
    }
    if let Some((created, id)) = filter.after.clone() {
        let created = w.bind(f.db(created));
        let id = w.bind(id);
        w.push(format!("(created, id) > ({created}, {id})"));
    }
    let limit = w.bind(filter.limit.min(i64::MAX as usize - 1) as i64 + 1);
    let sql = format!(
        "SELECT id, created, unique_key, name, type, attempts, cron_id FROM queues
          WHERE {} ORDER BY created, id LIMIT {limit}
            FOR UPDATE SKIP LOCKED",
        w.joined()
    );
    let params = w.params();
    let rows = tx.query(&sql, &params).await?;
    let mut found = rows
        .iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            let attempts: i32 = r.try_get(5)?;
            Ok(Candidate {
                id: id.clone(),
                created: r.try_get(1)?,
                unique_key: r.try_get(2)?,
                job: CancelledJob {
                    id,
                    name: r.try_get(3)?,
                    job_type: r.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
                    attempts: attempts.max(0) as u32,
                    cron_id: r.try_get(6)?,
                },
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let next = if found.len() > filter.limit {
        found.truncate(filter.limit);
        found.last().map(|c| (c.created, c.id.clone()))
    } else {
        None
    };
    Ok((found, next))
}
