//! The history's SQL: the record a job leaves when it ends, the reads
//! behind `job` and `jobs --status succeeded`, and pruning.
//!
//! A record is copied from the job's `queues` row by one `INSERT ...
//! SELECT` inside the outcome's own transaction (before the row goes), so
//! the two never disagree. Pruning walks the oldest records by `seq`, so a
//! round reads no more rows than it deletes.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, named_params, params};

use super::filter::Where;
use super::outcomes::{AT, HELD, RAN_MS, RESULT};
use super::rows;
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{Ending, FinalStatus, FinishedJob, HistoryFilter, Prune, Pruned};
use crate::store::job::{JobDefaults, Lease, MAX_RETRY_COUNT};

pub(super) const HISTORY_COLUMNS: &str = "seq, id, name, description, type, status, attempts, max_attempts, \
     priority, run_at, last_error, unique_key, cron_id, created, started, finished, duration_ms, result";

impl SqliteStore {
    pub async fn finished_job(&self, id: String) -> Result<Option<FinishedJob>, StoreError> {
        self.read(move |conn, _| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {HISTORY_COLUMNS} FROM job_history WHERE id = ?1"
                ))?
                .query_row([id], finished_from_row)
                .optional()?)
        })
        .await
    }

    pub async fn list_finished(
        &self,
        filter: HistoryFilter,
    ) -> Result<(Vec<FinishedJob>, bool), StoreError> {
        self.read(move |conn, _| {
            let mut w = Where::default();
            w.when(
                "status = :status",
                ":status",
                filter.status.map(|s| s.as_str()),
            );
            w.when("type = :type", ":type", filter.job_type);
            w.when("name = :name", ":name", filter.name);
            w.when("cron_id = :cron_id", ":cron_id", filter.cron_id);
            w.when("finished >= :since", ":since", filter.since);
            w.when("finished < :until", ":until", filter.until);
            w.when("seq < :after", ":after", filter.after);
            w.bind(":limit", filter.limit as i64 + 1);
            let sql = format!(
                "SELECT {HISTORY_COLUMNS} FROM job_history {} ORDER BY seq DESC LIMIT :limit",
                w.clause()
            );
            let params = w.params();
            let mut jobs: Vec<FinishedJob> = conn
                .prepare_cached(&sql)?
                .query_map(params.as_slice(), finished_from_row)?
                .collect::<Result<_, _>>()?;
            let more = jobs.len() > filter.limit;
            jobs.truncate(filter.limit);
            Ok((jobs, more))
        })
        .await
    }

    pub async fn prune(&self, prune: Prune) -> Result<Pruned, StoreError> {
        self.write(Mode::Grouped, move |conn, _| prune_on(conn, &prune))
            .await
    }
}

/// The statement that writes a job's record, copied from its row `q`
/// (which must still be there), with the attempt's own facts from
/// `ending` and the rows from `source` (a `FROM` clause and its filter).
fn record_sql(ending: &str, source: &str) -> String {
    // The row's `payload.options.retry_count` where `row_retry_count` reads
    // one (a whole number in range), else NULL: the record says what the
    // job ran with.
    let retry_count = format!(
        "CASE WHEN json_valid(q.payload) THEN
             CASE WHEN json_type(q.payload, '$.options.retry_count') = 'integer'
                   AND json_extract(q.payload, '$.options.retry_count')
                       BETWEEN 0 AND {MAX_RETRY_COUNT}
                  THEN json_extract(q.payload, '$.options.retry_count') END END"
    );
    format!(
        "INSERT OR REPLACE INTO job_history
             (id, name, description, type, status, attempts, max_attempts, priority, run_at,
              last_error, unique_key, cron_id, created, started, finished, duration_ms, result)
         SELECT q.id, q.name, q.description, COALESCE(q.type, ''), :status, q.attempts,
                COALESCE(q.max_attempts, 1 + COALESCE({retry_count}, :retries)),
                q.priority, q.run_at, q.last_error, q.unique_key, q.cron_id, q.created, q.started,
                {ending}
           FROM {source}"
    )
}

static RECORD_ONE: LazyLock<String> = LazyLock::new(|| {
    record_sql(
        ":now, :ran_ms, :result",
        "queues q
          WHERE q.id = :id
            AND (:attempt IS NULL
                 OR (q.attempts = :attempt AND q.reserved_by = :holder AND q.status = 'running'))",
    )
});

static RECORD_SUCCESSES: LazyLock<String> = LazyLock::new(|| {
    record_sql(
        &format!("{AT}, {RAN_MS}, {RESULT}"),
        &format!("{HELD} ORDER BY e.key"),
    )
});

/// Writes the record of job `id` ending as `status`, copied from its row
/// (which must still be there), inside the outcome's transaction. With
/// `fence`, only if the row is still that attempt's. Nothing when the
/// history is off.
pub(super) fn record_ending(
    conn: &Connection,
    defaults: &JobDefaults,
    id: &str,
    fence: Option<&Lease>,
    status: FinalStatus,
    ending: &Ending,
    now: Millis,
) -> Result<(), StoreError> {
    if !defaults.history {
        return Ok(());
    }
    let result = ending.result.as_ref().map(|r| r.to_string());
    conn.prepare_cached(&RECORD_ONE)?.execute(named_params! {
        ":id": id,
        ":status": status.as_str(),
        ":retries": defaults.max_retries,
        ":now": now,
        ":ran_ms": ending.ran_ms,
        ":result": result,
        ":attempt": fence.map(|l| l.attempt),
        ":holder": fence.map(|l| l.instance.as_str()),
    })?;
    Ok(())
}

/// Writes the records of the successes in `endings` (see
/// `outcomes::endings_json`) whose leases still hold, in their
/// order, with one statement. Nothing when the history is off.
pub(super) fn record_successes(
    conn: &Connection,
    defaults: &JobDefaults,
    endings: &str,
) -> Result<(), StoreError> {
    if !defaults.history {
        return Ok(());
    }
    conn.prepare_cached(&RECORD_SUCCESSES)?
        .execute(named_params! {
            ":endings": endings,
            ":status": FinalStatus::Succeeded.as_str(),
            ":retries": defaults.max_retries,
        })?;
    Ok(())
}

/// One round of pruning, inside a transaction.
pub(super) fn prune_on(conn: &Connection, prune: &Prune) -> Result<Pruned, StoreError> {
    let batch = prune.batch.max(1);
    let mut out = Pruned::default();
    if let Some(cut) = history_cut(conn, prune, batch)? {
        let n = conn
            .prepare_cached(
                "DELETE FROM job_history WHERE seq IN
                     (SELECT seq FROM job_history WHERE seq <= ?1 ORDER BY seq LIMIT ?2 + 0)",
            )?
            .execute(params![cut, batch as i64])?;
        out.history = n as u64;
        out.more |= n >= batch;
    }
    if let Some(before) = prune.dead_before {
        let n = conn
            .prepare_cached(
                "DELETE FROM queues WHERE rowid IN
                     (SELECT rowid FROM queues INDEXED BY queues_dead_updated
                       WHERE status = 'dead' AND updated < ?1 LIMIT ?2 + 0)",
            )?
            .execute(params![before, batch as i64])?;
        out.dead = n as u64;
        out.more |= n >= batch;
    }
    Ok(out)
}

/// The highest `seq` that retention or the row cap no longer keeps, if
/// any. Retention is judged on the oldest records in `seq` order, and
/// stops at the first one still kept, so it reads at most `batch` rows.
fn history_cut(conn: &Connection, prune: &Prune, batch: usize) -> Result<Option<i64>, StoreError> {
    let mut cut: Option<i64> = None;
    if let Some(max) = prune.history_max {
        let newest: Option<i64> = conn
            .prepare_cached("SELECT MAX(seq) FROM job_history")?
            .query_row([], |row| row.get(0))?;
        if let Some(newest) = newest {
            let keep = i64::try_from(max).unwrap_or(i64::MAX);
            cut = Some(newest.saturating_sub(keep));
        }
    }
    if let Some(before) = prune.history_before {
        let mut stmt =
            conn.prepare_cached("SELECT seq, finished FROM job_history ORDER BY seq LIMIT ?1 + 0")?;
        let mut rows = stmt.query([batch as i64])?;
        let mut expired = None;
        while let Some(row) = rows.next()? {
            let finished = rows::millis(row.get_ref(1)?).unwrap_or(Millis::MAX);
            if finished >= before {
                break;
            }
            expired = Some(row.get::<_, i64>(0)?);
        }
        cut = cut.max(expired);
    }
    Ok(cut.filter(|c| *c > 0))
}

pub(super) fn finished_from_row(row: &Row<'_>) -> rusqlite::Result<FinishedJob> {
    let status: String = row.get(5)?;
    let result: Option<String> = row.get(17)?;
    Ok(FinishedJob {
        seq: row.get(0)?,
        id: row.get(1)?,
        name: rows::lossy(row.get_ref(2)?).unwrap_or_default(),
        description: rows::lossy(row.get_ref(3)?).unwrap_or_default(),
        job_type: rows::lossy(row.get_ref(4)?).unwrap_or_default(),
        status: FinalStatus::parse(&status).unwrap_or(FinalStatus::Dead),
        attempts: row.get::<_, i64>(6)?.clamp(0, i64::from(u32::MAX)) as u32,
        max_attempts: row.get::<_, i64>(7)?.clamp(1, i64::from(u32::MAX)) as u32,
        priority: row.get(8)?,
        run_at: rows::millis(row.get_ref(9)?).unwrap_or(0),
        last_error: rows::lossy(row.get_ref(10)?),
        unique_key: rows::lossy(row.get_ref(11)?),
        cron_id: rows::lossy(row.get_ref(12)?),
        created: rows::millis(row.get_ref(13)?).unwrap_or(0),
        started: rows::millis(row.get_ref(14)?),
        finished: row.get(15)?,
        duration_ms: row.get(16)?,
        result: result.and_then(|text| serde_json::from_str(&text).ok()),
    })
}
