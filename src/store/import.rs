//! Records taken over from another system (a PocketBase collection): the
//! row types of the `import` verbs, and what "taken over once" means.
//!
//! A unique key holds only while its job waits or runs, so it cannot tell
//! a record seen for the first time from one whose job finished long ago.
//! The store therefore keeps a ledger, `imported (source, record_id,
//! job_id, at)`, written in the same transaction as the job: a record is
//! either in the ledger with its job, or neither exists. Taking a record
//! over is then "store the job with the record's key; delete the record
//! afterwards", and a crash between the two only means the record is found
//! in the ledger next time and deleted then, never stored twice.
//!
//! Attempts carry over: a record that failed `n` times elsewhere becomes a
//! job with `attempts = n` under cronq's own limit (`1 +
//! payload.options.retry_count`, else `1 + JOB_MAX_RETRIES`). One whose
//! attempts already reach the limit is stored `dead`, with the reason in
//! `last_error`, so it is kept and can be retried by hand, not run again
//! on its own.

use super::job::{Job, NewJob};

/// One record to take over.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportJob {
    /// Where it comes from, e.g. `pocketbase:queues`.
    pub source: String,
    /// The record's id in its source.
    pub record_id: String,
    /// The job it becomes; its `unique_key` is [`unique_key`].
    pub job: NewJob,
    /// Attempts it already used in its source.
    pub attempts: u32,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// Stored now as this job: waiting, or dead when its attempts were
    /// used up before.
    Stored(Box<Job>),
    /// Taken over before, as this job (which may have finished since).
    Already { job_id: String },
}

/// The unique key of the job a record becomes: `SOURCE:RECORD_ID`.
pub fn unique_key(source: &str, record_id: &str) -> String {
    format!("{source}:{record_id}")
}

/// The `last_error` of a record stored dead because its attempts elsewhere
/// already reached cronq's limit.
pub fn used_up(source: &str, attempts: u32, max_attempts: u32) -> String {
    format!(
        "used {attempts} attempts in {source} before cronq took it over, and cronq allows \
         {max_attempts} (1 + payload.options.retry_count, else 1 + JOB_MAX_RETRIES); \
         `retry` runs it again"
    )
}
