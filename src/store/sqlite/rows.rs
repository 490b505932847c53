//! Reading a `queues` row whatever another program wrote into it.
//!
//! README invites other programs to insert rows straight into `queues`,
//! and SQLite stores any value in any column: `run_at = 'abc'` made every
//! listing answer `internal` (a typed read failed the whole query) and the
//! job was never claimed (text sorts after every number). Migration 0003
//! refuses such rows from now on; this module copes with those already
//! stored, and with any program that works around the check. Each column
//! is read as whatever it holds: a value of the wrong type becomes a
//! [`Fault`] naming the column and the value, the job is built with the
//! column's default, and [`bury`] moves the row to `dead` with the faults
//! as its error. A fault never fails the query: one bad row cannot break
//! `jobs`, a claim, or recovery for everyone.
//!
//! When a row is buried, the numeric columns at fault are reset to their
//! defaults (the reason keeps the value that was there), so the row sorts,
//! pages and retries like any other; text is kept, made valid UTF-8. The
//! payload is never rewritten: a payload that is not JSON text stays as it
//! was, shown as a string.

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, Row, ToSql};
use serde_json::Value;

use super::StoreError;
use super::crons::settle_job_run;
use super::history::record_ending;
use super::jobs::record_error;
use crate::clock::{MAX_MS, Millis};
use crate::store::history::{Ending, FinalStatus};
use crate::store::job::{self, Job, JobDefaults, JobStatus, new_id};
use crate::store::run::RunStatus;

/// The columns read for a job, in [`read_job`]'s order.
pub(super) const JOB_COLUMNS: &str = "id, name, description, payload, type, status, attempts, max_attempts, \
     priority, timeout, run_at, reserved_at, reserved_by, last_error, unique_key, cron_id, \
     created, updated, rowid";

/// Longest piece of a bad value quoted in a reason.
const SHOWN_CHARS: usize = 60;

/// A column holding a value of the wrong type.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fault {
    pub column: &'static str,
    /// `run_at is not a number: 'abc'`.
    pub reason: String,
    /// What the column is set to when the row is buried; `None` keeps it.
    pub repair: Option<SqlValue>,
}

/// A row as read: the job (defaults where a column was at fault), its
/// rowid, and the faults.
#[derive(Debug, Clone)]
pub(super) struct RowRead {
    pub job: Job,
    pub rowid: i64,
    pub faults: Vec<Fault>,
}

impl RowRead {
    /// Every fault, in one sentence.
    pub fn reason(&self) -> String {
        let reasons: Vec<&str> = self.faults.iter().map(|f| f.reason.as_str()).collect();
        reasons.join("; ")
    }

    /// The job as listings show it: a row at fault says why in
    /// `last_error`, before any error it already had.
    pub fn shown(mut self) -> Job {
        if !self.faults.is_empty() {
            let reason = self.reason();
            // A buried row whose payload stays at fault already says so.
            self.job.last_error = Some(match self.job.last_error.take() {
                Some(earlier) if earlier != reason => format!("{reason}; last error: {earlier}"),
                _ => reason,
            });
        }
        self.job
    }
}

/// Reads a row of [`JOB_COLUMNS`]. Fails only if the statement did not
/// select those columns; what the columns hold never fails it.
pub(super) fn read_job(
    row: &Row<'_>,
    defaults: &JobDefaults,
    now: Millis,
) -> rusqlite::Result<RowRead> {
    let mut r = Reader {
        row,
        faults: Vec::new(),
    };
    let id = match r.text(0, "id")? {
        Some(id) if !r.faulted("id") => id,
        // An id that is not text cannot be asked for by `job` or fenced by
        // a lease: a buried row gets a fresh one.
        read => {
            let fresh = new_id();
            if read.is_none() {
                r.fault("id", "id is missing".into(), None);
            }
            r.set_repair("id", SqlValue::Text(fresh.clone()));
            fresh
        }
    };
    let name = r.text(1, "name")?.unwrap_or_default();
    let description = r.text(2, "description")?.unwrap_or_default();
    let payload = r.payload(3)?;
    let job_type = lossy(row.get_ref(4)?).unwrap_or_default();
    let status = lossy(row.get_ref(5)?).unwrap_or_default();
    let attempts = r.int(6, "attempts", SqlValue::Integer(0))?.unwrap_or(0);
    let max_attempts = r.int(7, "max_attempts", SqlValue::Null)?;
    let priority = r.int(8, "priority", SqlValue::Integer(0))?.unwrap_or(0);
    let timeout = r.int(9, "timeout", SqlValue::Null)?;
    // A row at fault runs (once retried) at once; `now` is in range but
    // for a test's clock.
    let ready = now.clamp(0, MAX_MS);
    let run_at = r.time(10, "run_at", ready)?.unwrap_or(ready);
    let reserved_at = r.int(11, "reserved_at", SqlValue::Null)?;
    let reserved_by = r.text(12, "reserved_by")?;
    let last_error = r.text(13, "last_error")?;
    let unique_key = r.text(14, "unique_key")?;
    let cron_id = r.text(15, "cron_id")?;
    let created = r.int(16, "created", SqlValue::Integer(now))?.unwrap_or(now);
    let updated = r.int(17, "updated", SqlValue::Integer(now))?.unwrap_or(now);
    let rowid: i64 = row.get(18)?;

    // The payload's options count only where the column leaves them to
    // it; out of range they are a fault, as `enqueue` refuses them.
    let mut option = |column: Option<i64>, read: fn(&Value) -> Result<Option<u32>, String>| {
        if column.is_some() {
            return None;
        }
        read(&payload).unwrap_or_else(|reason| {
            r.fault("payload", reason, None);
            None
        })
    };
    let retry_count = option(max_attempts, job::row_retry_count);
    let timeout_option = option(timeout, job::row_timeout);
    let max_attempts = match max_attempts {
        Some(n) => n.clamp(1, i64::from(u32::MAX)) as u32,
        None => 1 + retry_count.unwrap_or(defaults.max_retries),
    };
    let timeout_s = match timeout {
        Some(n) => n.clamp(1, i64::from(u32::MAX)) as u32,
        None => timeout_option.unwrap_or(defaults.timeout_s),
    };
    let job = Job {
        id,
        name,
        description,
        payload,
        job_type,
        status: JobStatus::from_row(&status, run_at, now),
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        max_attempts,
        priority,
        timeout_s,
        run_at,
        reserved_at,
        reserved_by,
        last_error,
        unique_key,
        cron_id,
        created,
        updated,
    };
    Ok(RowRead {
        job,
        rowid,
        faults: r.faults,
    })
}

/// Moves a row at fault to `dead`, with its faults as the error (also in
/// the job's error history, and on the cron run waiting for it), the
/// numeric columns at fault reset and its text made valid.
pub(super) fn bury(
    conn: &Connection,
    defaults: &JobDefaults,
    read: &RowRead,
    now: Millis,
) -> Result<(), StoreError> {
    let reason = read.reason();
    let mut sets = vec![
        "status = 'dead'".to_string(),
        "reserved_at = NULL".to_string(),
        "reserved_by = NULL".to_string(),
        "last_error = :reason".to_string(),
        "updated = :now".to_string(),
    ];
    let mut values: Vec<(String, &dyn ToSql)> = vec![
        (":reason".into(), &reason),
        (":now".into(), &now),
        (":rowid".into(), &read.rowid),
    ];
    for fault in &read.faults {
        let Some(repair) = &fault.repair else {
            continue;
        };
        if ["reserved_at", "reserved_by", "last_error", "updated"].contains(&fault.column) {
            continue;
        }
        sets.push(format!("{0} = :{0}", fault.column));
        values.push((format!(":{}", fault.column), repair));
    }
    let sql = format!("UPDATE queues SET {} WHERE rowid = :rowid", sets.join(", "));
    let params: Vec<(&str, &dyn ToSql)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    conn.prepare(&sql)?.execute(params.as_slice())?;
    let job = &read.job;
    record_error(conn, &job.id, job.attempts, now, &reason)?;
    let (dead, nothing) = (FinalStatus::Dead, Ending::default());
    record_ending(conn, defaults, &job.id, None, dead, &nothing, now)?;
    settle_job_run(conn, &job.id, RunStatus::Failed, Some(&reason), now)?;
    tracing::warn!(
        job_id = %job.id,
        job_type = %job.job_type,
        reason = %reason,
        "a job row written with values of the wrong type was moved to dead"
    );
    Ok(())
}

/// Pending rows whose `run_at` sorts after the last instant a job may have
/// (after year 9999, or not a number at all): no claim ever finds them
/// ready. Up to `limit` of them are read, to be buried. A seek on
/// `queues_due`, so it costs nothing when there are none.
pub(super) fn unreachable_pending(
    conn: &Connection,
    defaults: &JobDefaults,
    limit: usize,
    now: Millis,
) -> Result<Vec<RowRead>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM queues INDEXED BY queues_due
          WHERE status = 'pending' AND run_at > {MAX_MS} LIMIT ?1 + 0"
    ))?;
    let rows = stmt.query_map([limit as i64], |row| read_job(row, defaults, now))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An instant from an aggregate (`MIN(run_at)`): a number, else nothing.
pub(super) fn millis(value: ValueRef<'_>) -> Option<Millis> {
    match value {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) if f.is_finite() => Some(f as Millis),
        _ => None,
    }
}

/// Text as valid UTF-8, or `None` for NULL; other types as text.
pub(super) fn lossy(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

/// A value as a reason quotes it: `'abc'`, `1.5`, `x'00ff'`.
fn shown(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let mut cut: String = text.chars().take(SHOWN_CHARS).collect();
            if cut.len() < text.len() {
                cut.push('…');
            }
            format!("'{}'", cut.replace('\'', "''"))
        }
        ValueRef::Blob(bytes) => {
            let hex: String = bytes
                .iter()
                .take(SHOWN_CHARS / 2)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if bytes.len() > SHOWN_CHARS / 2 {
                "…"
            } else {
                ""
            };
            format!("x'{hex}'{more}")
        }
    }
}

struct Reader<'a, 'r> {
    row: &'a Row<'r>,
    faults: Vec<Fault>,
}

impl Reader<'_, '_> {
    fn fault(&mut self, column: &'static str, reason: String, repair: Option<SqlValue>) {
        self.faults.push(Fault {
            column,
            reason,
            repair,
        });
    }

    fn faulted(&self, column: &str) -> bool {
        self.faults.iter().any(|f| f.column == column)
    }

    fn set_repair(&mut self, column: &str, repair: SqlValue) {
        if let Some(fault) = self.faults.iter_mut().find(|f| f.column == column) {
            fault.repair = Some(repair);
        }
    }

    /// A text column; NULL is `None`.
    fn text(&mut self, idx: usize, column: &'static str) -> rusqlite::Result<Option<String>> {
        let value = self.row.get_ref(idx)?;
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Ok(Some(text.to_owned())),
                Err(_) => {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    let reason = format!("{column} is not valid UTF-8: {}", shown(value));
                    self.fault(column, reason, Some(SqlValue::Text(text.clone())));
                    Ok(Some(text))
                }
            },
            other => {
                let text = lossy(other).unwrap_or_default();
                let reason = format!("{column} is not text: {}", shown(other));
                self.fault(column, reason, Some(SqlValue::Text(text.clone())));
                Ok(Some(text))
            }
        }
    }

    /// An integer column; NULL is `None`. Anything else is a fault, read
    /// as `default`.
    fn int(
        &mut self,
        idx: usize,
        column: &'static str,
        default: SqlValue,
    ) -> rusqlite::Result<Option<i64>> {
        let value = self.row.get_ref(idx)?;
        let reason = match value {
            ValueRef::Null => return Ok(None),
            ValueRef::Integer(n) => return Ok(Some(n)),
            ValueRef::Real(_) => format!("{column} is not a whole number: {}", shown(value)),
            ValueRef::Text(_) | ValueRef::Blob(_) => {
                format!("{column} is not a number: {}", shown(value))
            }
        };
        let read = match default {
            SqlValue::Integer(n) => Some(n),
            _ => None,
        };
        self.fault(column, reason, Some(default));
        Ok(read)
    }

    /// An instant a job waits for: an integer up to year 9999. Anything
    /// else is a fault, read as `now`.
    fn time(
        &mut self,
        idx: usize,
        column: &'static str,
        now: Millis,
    ) -> rusqlite::Result<Option<Millis>> {
        match self.int(idx, column, SqlValue::Integer(now))? {
            Some(ms) if ms > MAX_MS => {
                let reason = format!("{column} is after the year 9999: {ms}");
                self.fault(column, reason, Some(SqlValue::Integer(now)));
                Ok(Some(now))
            }
            other => Ok(other),
        }
    }

    /// The payload: JSON text. Anything else is a fault and is kept as it
    /// is, shown as a string.
    fn payload(&mut self, idx: usize) -> rusqlite::Result<Value> {
        let value = self.row.get_ref(idx)?;
        let reason = match value {
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
            {
                Some(payload) => return Ok(payload),
                None => format!("payload is not JSON: {}", shown(value)),
            },
            _ => format!("payload is not JSON text: {}", shown(value)),
        };
        self.fault("payload", reason, None);
        Ok(Value::String(lossy(value).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::job::NewJob;
    use crate::store::sqlite::test_support::open_temp;
    use crate::store::{ListFilter, Store};

    const NOW: Millis = 1_800_000_000_000;

    /// A connection beside the store's, on which rows are written as a
    /// database from before migration 0003 held them.
    fn without_checks(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("cronq.db")).unwrap();
        conn.execute_batch("DROP TRIGGER queues_types_insert; DROP TRIGGER queues_types_update;")
            .unwrap();
        conn
    }

    /// One row per column at fault (the rest of the row valid), and what
    /// its reason says. Every other column keeps its default.
    const BAD: &[(&str, &str, &str)] = &[
        ("run_at", "'abc'", "run_at is not a number: 'abc'"),
        (
            "run_at",
            "9223372036854775807",
            "run_at is after the year 9999: 9223372036854775807",
        ),
        ("priority", "1.5", "priority is not a whole number: 1.5"),
        ("priority", "'high'", "priority is not a number: 'high'"),
        ("attempts", "x'01'", "attempts is not a number: x'01'"),
        (
            "max_attempts",
            "'many'",
            "max_attempts is not a number: 'many'",
        ),
        ("timeout", "2.5", "timeout is not a whole number: 2.5"),
        (
            "created",
            "'2026-12-01 08:17:33.605Z'",
            "created is not a number: '2026-12-01 08:17:33.605Z'",
        ),
        ("updated", "'later'", "updated is not a number: 'later'"),
        ("name", "x'6869'", "name is not text: x'6869'"),
        (
            "description",
            "CAST(x'ff' AS TEXT)",
            "description is not valid UTF-8: '\u{fffd}'",
        ),
        ("unique_key", "x'00'", "unique_key is not text: x'00'"),
        ("cron_id", "x'01'", "cron_id is not text: x'01'"),
        ("last_error", "x'02'", "last_error is not text: x'02'"),
        (
            "payload",
            "CAST('{\"type\":\"noop\"}' AS BLOB)",
            "payload is not JSON text: x'7b2274797065223a226e6f6f70227d'",
        ),
        // Options `enqueue` refuses; u32::MAX retries once made
        // `max_attempts` overflow.
        (
            "payload",
            "'{\"type\":\"noop\",\"data\":{},\"options\":{\"retry_count\":4294967295}}'",
            "payload.options.retry_count must be a whole number from 0 to 100, got 4294967295",
        ),
        (
            "payload",
            "'{\"type\":\"noop\",\"data\":{},\"options\":{\"timeout\":1000000000}}'",
            "payload.options.timeout must be a whole number from 1 to 86400 seconds, got 1000000000",
        ),
        (
            "payload",
            "'{\"type\":\"noop\",\"data\":{},\"options\":{\"timeout\":2.5}}'",
            "payload.options.timeout must be a whole number from 1 to 86400 seconds, got 2.5",
        ),
    ];

    fn insert_bad(conn: &Connection) -> Vec<String> {
        BAD.iter()
            .enumerate()
            .map(|(i, (column, value, _))| {
                let id = format!("bad{i:02}");
                let mut row = vec![
                    ("id", format!("'{id}'")),
                    ("name", format!("'n{i}'")),
                    ("payload", "'{\"type\":\"noop\",\"data\":{}}'".to_string()),
                    ("run_at", (NOW - 1).to_string()),
                    ("created", NOW.to_string()),
                ];
                match row.iter_mut().find(|(c, _)| c == column) {
                    Some(cell) => cell.1 = value.to_string(),
                    None => row.push((column, value.to_string())),
                }
                let columns: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
                let values: Vec<&str> = row.iter().map(|(_, v)| v.as_str()).collect();
                conn.execute_batch(&format!(
                    "INSERT INTO queues ({}) VALUES ({})",
                    columns.join(", "),
                    values.join(", ")
                ))
                .unwrap_or_else(|e| panic!("row {id} ({column}): {e}"));
                id
            })
            .collect()
    }

    async fn listed(store: &Store) -> Vec<Job> {
        let filter = ListFilter {
            limit: 1000,
            ..Default::default()
        };
        store.list(filter, NOW).await.unwrap().0
    }

    #[tokio::test]
    async fn every_column_of_the_wrong_type_is_named_and_listings_hold() {
        let (dir, store) = open_temp();
        let conn = without_checks(&dir);
        let ids = insert_bad(&conn);
        let good = store
            .enqueue(
                vec![NewJob::new("good", "noop", Default::default())],
                NOW,
                100,
            )
            .await
            .unwrap()[0]
            .job
            .id
            .clone();
        let jobs = listed(&store).await;
        assert_eq!(jobs.len(), BAD.len() + 1);
        for (id, (column, _, reason)) in ids.iter().zip(BAD) {
            let job = jobs
                .iter()
                .find(|j| &j.id == id)
                .unwrap_or_else(|| panic!("{id} ({column}) is not listed"));
            assert!(
                job.last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(reason)),
                "{column}: {:?}",
                job.last_error
            );
            let (one, _) = store.get(id.clone(), NOW).await.unwrap().unwrap();
            assert_eq!(one.last_error, job.last_error);
        }
        let good = jobs.iter().find(|j| j.id == good).unwrap();
        assert_eq!(good.last_error, None);
        // The reads behind status and stats hold too.
        store.counts(NOW).await.unwrap();
        store.oldest_ready(NOW).await.unwrap();
        store.next_due(&["noop".into()], NOW).await.unwrap();
    }

    #[tokio::test]
    async fn a_claim_buries_the_rows_at_fault_and_runs_the_rest() {
        let (dir, store) = open_temp();
        let conn = without_checks(&dir);
        let ids = insert_bad(&conn);
        store
            .enqueue(
                vec![NewJob::new("good", "noop", Default::default())],
                NOW,
                100,
            )
            .await
            .unwrap();
        let claimed = store.claim("me", &["noop".into()], 100, NOW).await.unwrap();
        let names: Vec<&str> = claimed.iter().map(|c| c.job.name.as_str()).collect();
        // `updated` is one of the columns a claim sets: that row is mended
        // by its claim and runs.
        let mended = BAD.iter().position(|(c, _, _)| *c == "updated").unwrap();
        assert_eq!(names, [format!("n{mended}").as_str(), "good"]);
        for (id, (column, _, reason)) in ids.iter().zip(BAD) {
            if *column == "updated" {
                continue;
            }
            let (job, errors) = store
                .get(id.clone(), NOW)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{id} ({column}) is gone"));
            assert_eq!(job.status, JobStatus::Dead, "{column}");
            assert_eq!(job.last_error.as_deref(), Some(*reason), "{column}");
            assert_eq!(errors[0].error, *reason, "{column}");
        }
        // Buried, the numbers are usable again: the row reads clean but
        // for its payload, which is never rewritten.
        let typed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM queues WHERE typeof(run_at) = 'integer'
                    AND typeof(priority) = 'integer' AND typeof(attempts) = 'integer'
                    AND typeof(created) = 'integer' AND typeof(name) = 'text'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(typed as usize, BAD.len() + 1, "every row");
        // The record of a row asking u32::MAX retries says what it ran
        // with: the default's 1 + 3 attempts, as `job` does.
        let asked = BAD
            .iter()
            .position(|(_, _, r)| r.starts_with("payload.options.retry_count"))
            .unwrap();
        let (job, _) = store.get(ids[asked].clone(), NOW).await.unwrap().unwrap();
        let recorded: i64 = conn
            .query_row(
                "SELECT max_attempts FROM job_history WHERE id = ?1",
                [&ids[asked]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((job.max_attempts, recorded), (4, 4));
        // A retried one is a job like any other.
        let revived = store.retry("bad00".into(), NOW).await.unwrap().unwrap();
        assert_eq!(revived.status, JobStatus::Pending);
        let again = store.claim("me", &["noop".into()], 100, NOW).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].job.id, "bad00");
    }

    #[tokio::test]
    async fn a_row_with_an_id_that_is_not_text_is_buried_under_a_fresh_id() {
        let (dir, store) = open_temp();
        let conn = without_checks(&dir);
        conn.execute(
            "INSERT INTO queues (id, name, payload) VALUES (x'0102', 'blob id', '{\"type\":\"noop\"}')",
            [],
        )
        .unwrap();
        assert!(
            store
                .claim("me", &["noop".into()], 10, NOW)
                .await
                .unwrap()
                .is_empty()
        );
        let jobs = listed(&store).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].status, JobStatus::Dead);
        assert_eq!(
            jobs[0].last_error.as_deref(),
            Some("id is not text: x'0102'")
        );
        assert_eq!(jobs[0].id.len(), 15);
        assert!(store.get(jobs[0].id.clone(), NOW).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn recovery_buries_a_running_row_at_fault_and_frees_one_without_a_reservation() {
        let (dir, store) = open_temp();
        let conn = without_checks(&dir);
        conn.execute_batch(
            "INSERT INTO queues (id, name, payload, status, reserved_at)
                 VALUES ('r1', 'stuck', '{\"type\":\"noop\"}', 'running', 'soon');
             INSERT INTO queues (id, name, payload, status)
                 VALUES ('r2', 'unheld', '{\"type\":\"noop\"}', 'running');",
        )
        .unwrap();
        store.recover(NOW - 60_000, vec![], NOW).await.unwrap();
        let (stuck, _) = store.get("r1".into(), NOW).await.unwrap().unwrap();
        assert_eq!(stuck.status, JobStatus::Dead);
        assert_eq!(
            stuck.last_error.as_deref(),
            Some("reserved_at is not a number: 'soon'")
        );
        let (unheld, _) = store.get("r2".into(), NOW).await.unwrap().unwrap();
        assert_eq!(unheld.status, JobStatus::Pending);
    }

    #[test]
    fn new_rows_of_the_wrong_type_are_refused_with_a_readable_message() {
        let (dir, _store) = open_temp();
        let conn = Connection::open(dir.path().join("cronq.db")).unwrap();
        let insert = |column: &str, value: &str| {
            conn.execute_batch(&format!(
                "INSERT INTO queues (payload, {column}) VALUES ('{{\"type\":\"noop\"}}', {value})"
            ))
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        for (column, value, message) in [
            (
                "run_at",
                "'abc'",
                "queues.run_at must be whole milliseconds since 1970, up to the year 9999",
            ),
            (
                "run_at",
                "253402300800000",
                "queues.run_at must be whole milliseconds since 1970",
            ),
            ("priority", "1.5", "queues.priority must be a whole number"),
            (
                "attempts",
                "-1",
                "queues.attempts must be a whole number, 0 or more",
            ),
            (
                "max_attempts",
                "'x'",
                "queues.max_attempts must be NULL or a whole number",
            ),
            (
                "timeout",
                "0",
                "queues.timeout must be NULL or whole seconds",
            ),
            (
                "reserved_at",
                "''",
                "queues.reserved_at must be NULL or whole milliseconds",
            ),
            (
                "created",
                "'2026-12-01 08:17:33.605Z'",
                "queues.created must be whole milliseconds",
            ),
            ("id", "x'01'", "queues.id must be text"),
            ("name", "x'01'", "queues.name must be text"),
            (
                "unique_key",
                "x'01'",
                "queues.unique_key must be NULL or text",
            ),
        ] {
            let err = insert(column, value).expect_err(&format!("{column} = {value}"));
            assert!(err.contains(message), "{column} = {value}: {err}");
        }
        let err = conn
            .execute_batch(
                "INSERT INTO queues (name, payload) VALUES ('n', CAST('{\"type\":\"noop\"}' AS BLOB))",
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("queues.payload must be JSON text"), "{err}");
        // Text that SQLite turns into the column's type is a right value.
        insert("run_at", "'1800000000000'").unwrap();
        insert("priority", "'7'").unwrap();
        // Updates of those columns are checked as well.
        let err = conn
            .execute_batch("UPDATE queues SET run_at = 'abc'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("queues.run_at must be"), "{err}");
    }
}
