//! Reading rows: a `queues` row as a [`Job`], resolving what a row written
//! by another program (plain SQL, `cronq_enqueue`) leaves NULL exactly as
//! the SQLite store does: the payload's options, else the defaults.

use std::time::SystemTime;

use serde_json::Value;
use tokio_postgres::Row;

use super::time::Frame;
use crate::clock::Millis;
use crate::store::JobDefaults;
use crate::store::job::{self, Job, JobStatus};

/// The columns [`job_from_row`] reads, in order.
pub(super) const JOB_COLUMNS: &str = "id, name, description, payload, type, status, attempts, max_attempts, \
     priority, timeout, run_at, reserved_at, reserved_by, last_error, unique_key, cron_id, \
     created, updated";

/// Reads a row of [`JOB_COLUMNS`]; `now` is the caller's, instants are
/// moved into the caller's frame by `f`.
pub(super) fn job_from_row(
    row: &Row,
    defaults: &JobDefaults,
    now: Millis,
    f: Frame,
) -> Result<Job, tokio_postgres::Error> {
    let payload: Value = row.try_get(3)?;
    // Out of range (a plain SQL row; `cronq_enqueue` refuses them), the
    // payload's options give way to the defaults: such a job runs as if
    // it had not asked. (SQLite buries it instead, with the reason, as it
    // does rows at fault, which its rows may be and these cannot.)
    let max_attempts = match row.try_get::<_, Option<i32>>(7)? {
        Some(n) => n.max(1) as u32,
        None => {
            1 + job::row_retry_count(&payload)
                .ok()
                .flatten()
                .unwrap_or(defaults.max_retries)
        }
    };
    let timeout_s = match row.try_get::<_, Option<i32>>(9)? {
        Some(n) => n.max(1) as u32,
        None => job::row_timeout(&payload)
            .ok()
            .flatten()
            .unwrap_or(defaults.timeout_s),
    };
    let status: String = row.try_get(5)?;
    let run_at = f.ms(row.try_get(10)?);
    let at = |i: usize| -> Result<Option<Millis>, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<SystemTime>>(i)?.map(|t| f.ms(t)))
    };
    Ok(Job {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        job_type: row.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
        payload,
        status: JobStatus::from_row(&status, run_at, now),
        attempts: row.try_get::<_, i32>(6)?.max(0) as u32,
        max_attempts,
        priority: row.try_get(8)?,
        timeout_s,
        run_at,
        reserved_at: at(11)?,
        reserved_by: row.try_get(12)?,
        last_error: row.try_get(13)?,
        unique_key: row.try_get(14)?,
        cron_id: row.try_get(15)?,
        created: f.ms(row.try_get(16)?),
        updated: f.ms(row.try_get(17)?),
    })
}

/// PostgreSQL's text cannot hold U+0000; handler output sometimes does.
pub(super) fn storable_text(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text.to_string()
    }
}
