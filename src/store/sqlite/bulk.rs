//! The operator's bulk verbs: retry, cancel and purge of every job a
//! filter matches, oldest first, at most `limit` per call with a cursor to
//! go on. Each call is one transaction of its own (a large one, like a
//! batch enqueue), doing to each job what the one-job verb does.

use rusqlite::{Connection, params};

use super::filter::Where;
use super::manage::cancel_on;
use super::rows;
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{Bulk, BulkFilter, CancelledJob};
use crate::store::job::JobStatus;

/// Which rows a verb may touch at all.
#[derive(Clone, Copy)]
enum Verb {
    Retry,
    Cancel,
    Purge(Option<Millis>),
}

/// A matched row: id, created, unique key, and what a cancel's event
/// names.
struct Candidate {
    id: String,
    created: Millis,
    unique_key: Option<String>,
    name: String,
    job_type: String,
    attempts: u32,
    cron_id: Option<String>,
}

impl SqliteStore {
    pub async fn retry_matching(
        &self,
        filter: BulkFilter,
        now: Millis,
    ) -> Result<Bulk, StoreError> {
        self.write(Mode::Alone, move |conn, _| {
            let (found, next) = candidates(conn, &filter, Verb::Retry, now)?;
            let mut out = Bulk {
                next,
                ..Bulk::default()
            };
            let mut held = conn.prepare_cached(
                "SELECT 1 FROM queues WHERE unique_key = ?1 AND status != 'dead' AND id != ?2",
            )?;
            let mut revive = conn.prepare_cached(
                "UPDATE queues SET status = 'pending', attempts = 0, run_at = ?2, reserved_at = NULL,
                        reserved_by = NULL, updated = ?2
                  WHERE id = ?1 AND (status = 'dead' OR (status = 'pending' AND run_at > ?2))",
            )?;
            for c in found {
                if let Some(key) = &c.unique_key
                    && held.exists(params![key, c.id])?
                {
                    out.skipped += 1;
                    continue;
                }
                out.count += revive.execute(params![c.id, now])? as u64;
            }
            Ok(out)
        })
        .await
    }

    pub async fn cancel_matching(
        &self,
        filter: BulkFilter,
        now: Millis,
    ) -> Result<Bulk, StoreError> {
        self.write(Mode::Alone, move |conn, defaults| {
            let (found, next) = candidates(conn, &filter, Verb::Cancel, now)?;
            let mut cancelled = Vec::with_capacity(found.len());
            for c in found {
                cancel_on(conn, defaults, &c.id, now)?;
                cancelled.push(CancelledJob {
                    id: c.id,
                    name: c.name,
                    job_type: c.job_type,
                    attempts: c.attempts,
                    cron_id: c.cron_id,
                });
            }
            Ok(Bulk {
                count: cancelled.len() as u64,
                skipped: 0,
                next,
                cancelled,
            })
        })
        .await
    }

    pub async fn purge_matching(
        &self,
        filter: BulkFilter,
        before: Option<Millis>,
    ) -> Result<Bulk, StoreError> {
        self.write(Mode::Alone, move |conn, _| {
            let (found, next) = candidates(conn, &filter, Verb::Purge(before), 0)?;
            let mut delete =
                conn.prepare_cached("DELETE FROM queues WHERE id = ?1 AND status = 'dead'")?;
            let mut count = 0;
            for c in found {
                count += delete.execute([&c.id])? as u64;
            }
            Ok(Bulk {
                count,
                skipped: 0,
                next,
                cancelled: Vec::new(),
            })
        })
        .await
    }
}

/// Where a bulk call goes on: `(created, id)`.
type Cursor = (Millis, String);

/// Up to `filter.limit` rows the verb may touch that match, oldest first,
/// and the cursor of the last one when more follow.
fn candidates(
    conn: &Connection,
    filter: &BulkFilter,
    verb: Verb,
    now: Millis,
) -> Result<(Vec<Candidate>, Option<Cursor>), StoreError> {
    let mut w = Where::default();
    w.push(match verb {
        Verb::Retry => "(status = 'dead' OR (status = 'pending' AND run_at > :now))",
        Verb::Cancel => "status != 'running'",
        Verb::Purge(_) => "status = 'dead'",
    });
    match filter.status {
        Some(JobStatus::Pending) => w.push("status = 'pending' AND run_at <= :now"),
        Some(JobStatus::Scheduled) => w.push("status = 'pending' AND run_at > :now"),
        Some(JobStatus::Running) => w.push("0"),
        Some(JobStatus::Dead) => w.push("status = 'dead'"),
        None => {}
    }
    if let Verb::Purge(before) = verb {
        w.when("updated < :before", ":before", before);
    }
    w.when("type = :type", ":type", filter.job_type.clone());
    w.when("name = :name", ":name", filter.name.clone());
    w.when("cron_id = :cron_id", ":cron_id", filter.cron_id.clone());
    w.when("created >= :since", ":since", filter.since);
    w.when("created < :until", ":until", filter.until);
    if let Some((created, id)) = filter.after.clone() {
        w.push("(created, id) > (:after_created, :after_id)");
        w.bind(":after_created", created);
        w.bind(":after_id", id);
    }
    if w.mentions(":now") {
        w.bind(":now", now);
    }
    w.bind(":limit", filter.limit as i64 + 1);
    let sql = format!(
        "SELECT id, created, unique_key, name, type, attempts, cron_id FROM queues
          WHERE {} ORDER BY created, id LIMIT :limit",
        w.joined()
    );
    let params = w.params();
    let mut found: Vec<Candidate> = conn
        .prepare_cached(&sql)?
        .query_map(params.as_slice(), |row| {
            Ok(Candidate {
                id: rows::lossy(row.get_ref(0)?).unwrap_or_default(),
                created: rows::millis(row.get_ref(1)?).unwrap_or(0),
                unique_key: rows::lossy(row.get_ref(2)?),
                name: rows::lossy(row.get_ref(3)?).unwrap_or_default(),
                job_type: rows::lossy(row.get_ref(4)?).unwrap_or_default(),
                attempts: row
                    .get::<_, Option<i64>>(5)?
                    .unwrap_or(0)
                    .clamp(0, u32::MAX.into()) as u32,
                cron_id: rows::lossy(row.get_ref(6)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    let next = if found.len() > filter.limit {
        found.truncate(filter.limit);
        found.last().map(|c| (c.created, c.id.clone()))
    } else {
        None
    };
    Ok((found, next))
}
