//! Moving a queue from one database to another (`cronq copy-store`): the
//! row types the export and import verbs of [`Backend`] take and return,
//! and [`copy`], which pages through one store's jobs, cron switches, run
//! history and history of finished jobs and hands them to the other.
//!
//! Everything is copied as stored, with its own ids and instants (not
//! moved by either server's clock offset), and every import is keyed, so a
//! second copy finds everything there and changes nothing: a job by its
//! id, a switch by its cron, a run by its cron, trigger, scheduled time and
//! start (run ids are each database's own), a finished job's record by its
//! job's id (`seq` is each database's own; records go in oldest first, so
//! the order holds). Of the queue only what waits or is dead is copied;
//! running jobs belong to a live daemon, and the caller refuses to copy
//! while there are any.
//!
//! [`Backend`]: super::Backend

use serde::Serialize;
use serde_json::Value;

use super::job::{AttemptError, JobStatus};
use super::{Store, StoreError};
use crate::clock::Millis;

/// Jobs, or runs, read and written per round trip.
pub const PAGE: usize = 500;

/// A pending, scheduled or dead job as stored, with its failures.
#[derive(Debug, Clone, PartialEq)]
pub struct CopiedJob {
    pub id: String,
    pub name: String,
    pub description: String,
    /// `{"type", "data", "options"}`.
    pub payload: Value,
    /// Stored as `dead` (else `pending`).
    pub dead: bool,
    pub attempts: u32,
    /// As stored: `None` follows the payload's retry_count, else the
    /// target's JOB_MAX_RETRIES, as it did in the source.
    pub max_attempts: Option<u32>,
    pub priority: i64,
    pub timeout_s: Option<u32>,
    pub run_at: Millis,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub cron_id: Option<String>,
    pub created: Millis,
    pub updated: Millis,
    /// Its last failures, as `job` shows them.
    pub errors: Vec<AttemptError>,
    /// Why the source's row cannot be copied as it is (a row another
    /// program wrote with an id that is not text); `None` for every job
    /// cronq stored.
    pub unreadable: Option<String>,
}

impl CopiedJob {
    /// The status a listing shows for it at `now`.
    pub fn status(&self, now: Millis) -> JobStatus {
        match self.dead {
            true => JobStatus::Dead,
            false if self.run_at > now => JobStatus::Scheduled,
            false => JobStatus::Pending,
        }
    }

    /// Why the target cannot store it as a job, if it cannot: a row
    /// another program wrote with an id that is not text, or whose payload
    /// names no job type. Each import checks this before it writes.
    pub fn fault(&self) -> Option<String> {
        if let Some(why) = &self.unreadable {
            return Some(why.clone());
        }
        match self.payload.get("type") {
            Some(Value::String(t)) if !t.is_empty() => None,
            _ => {
                let shown: String = self.payload.to_string().chars().take(120).collect();
                Some(format!(
                    "job {}: its payload names no job type ({{\"type\": \"...\", ...}}): {shown}",
                    self.id
                ))
            }
        }
    }
}

/// What became of one job handed to an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCopy {
    Copied,
    /// The target has a job with this id: copied before.
    Present,
    /// A waiting or running job of the target holds its unique key.
    KeyHeld,
    /// The target cannot store it; why.
    Invalid(String),
}

/// A persisted `enable`/`disable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedSwitch {
    pub cron_id: String,
    pub enabled: bool,
    pub updated: Millis,
}

/// What became of one switch handed to an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchCopy {
    Copied,
    /// The target has the same switch.
    Same,
    /// The target has the other switch for this cron, and keeps it.
    Kept,
}

/// A run of a cron as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedRun {
    /// The source's id: where the next page starts, never written.
    pub id: i64,
    pub cron_id: String,
    pub scheduled_for: Millis,
    pub trigger: String,
    pub status: String,
    pub started: Option<Millis>,
    pub finished: Option<Millis>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub job_id: Option<String>,
    pub instance: Option<String>,
}

/// What a copy did, or with `dry_run` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    pub dry_run: bool,
    pub jobs: JobCounts,
    pub switches: SwitchCounts,
    pub runs: RunCounts,
    /// Records of finished jobs (the history).
    pub history: HistoryCounts,
    /// Jobs the target cannot store, each with why.
    pub invalid: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    /// Copied, by the status they have.
    pub copied: ByStatus,
    /// Already in the target.
    pub present: u64,
    /// Not copied: a waiting or running job of the target holds its
    /// unique key.
    pub key_held: u64,
    /// Not copied: see `CopyReport::invalid`.
    pub invalid: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByStatus {
    pub pending: u64,
    pub scheduled: u64,
    pub dead: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwitchCounts {
    pub copied: u64,
    pub present: u64,
    /// The target has the opposite switch, and keeps it.
    pub kept: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub copied: u64,
    pub present: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HistoryCounts {
    pub copied: u64,
    /// The target has a record of that job already.
    pub present: u64,
}

impl ByStatus {
    pub fn total(&self) -> u64 {
        self.pending + self.scheduled + self.dead
    }

    fn count(&mut self, status: JobStatus) {
        match status {
            JobStatus::Dead => self.dead += 1,
            JobStatus::Scheduled => self.scheduled += 1,
            _ => self.pending += 1,
        }
    }
}

/// Copies `from`'s pending, scheduled and dead jobs, cron switches, run
/// history and records of finished jobs into `to`, a page at a time; with `dry_run` each page's import
/// is rolled back, so the report counts what a copy would do and nothing
/// changes. `now` decides which pending jobs count as scheduled.
pub async fn copy(
    from: &Store,
    to: &Store,
    dry_run: bool,
    now: Millis,
) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport {
        dry_run,
        ..CopyReport::default()
    };
    let mut after = None;
    loop {
        let (page, next) = from.export_jobs(after.take(), PAGE).await?;
        let statuses: Vec<JobStatus> = page.iter().map(|j| j.status(now)).collect();
        let done = to.import_jobs(page, dry_run).await?;
        for (status, copy) in statuses.into_iter().zip(done) {
            match copy {
                JobCopy::Copied => report.jobs.copied.count(status),
                JobCopy::Present => report.jobs.present += 1,
                JobCopy::KeyHeld => report.jobs.key_held += 1,
                JobCopy::Invalid(why) => {
                    report.jobs.invalid += 1;
                    report.invalid.push(why);
                }
            }
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let switches = from.export_switches().await?;
    for copy in to.import_switches(switches, dry_run).await? {
        match copy {
            SwitchCopy::Copied => report.switches.copied += 1,
            SwitchCopy::Same => report.switches.present += 1,
            SwitchCopy::Kept => report.switches.kept += 1,
        }
    }
    let mut after = None;
    loop {
        let page = from.export_runs(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for copied in to.import_runs(page, dry_run).await? {
            match copied {
                true => report.runs.copied += 1,
                false => report.runs.present += 1,
            }
        }
    }
    let mut after = None;
    loop {
        let page = from.export_history(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for copied in to.import_history(page, dry_run).await? {
            match copied {
                true => report.history.copied += 1,
                false => report.history.present += 1,
            }
        }
    }
    Ok(report)
}
