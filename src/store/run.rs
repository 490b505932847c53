//! A cron's runs as the store records them: the row types of the crons'
//! verbs (record a run, settle it, read the history).

use crate::clock::Millis;

/// Runs kept per cron; older ones are pruned.
pub const KEPT_RUNS: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    Schedule,
    Manual,
    CatchUp,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::Manual => "manual",
            RunTrigger::CatchUp => "catch_up",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    /// The status a stored text names; anything unknown reads as running.
    pub fn parse(text: &str) -> RunStatus {
        match text {
            "ok" => RunStatus::Ok,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            _ => RunStatus::Running,
        }
    }
}

/// One run of a cron, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub cron_id: String,
    pub scheduled_for: Millis,
    pub trigger: String,
    pub status: RunStatus,
    pub started: Option<Millis>,
    pub finished: Option<Millis>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub job_id: Option<String>,
    /// Where the run's job is now: its stored queue status (`pending`,
    /// which includes a retry's wait, `running`, `dead`) or how it ended
    /// (`succeeded`, `dead`, `cancelled`); `None` without a job, or once
    /// the history no longer has it.
    pub job_status: Option<String>,
}

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub cron_id: String,
    pub scheduled_for: Millis,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    pub now: Millis,
    pub instance: String,
    pub error: Option<String>,
}
