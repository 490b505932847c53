//! The job model: a stored job, a job to be stored, and the lease a worker
//! holds while it runs one.

use serde_json::{Map, Value};

use crate::clock::Millis;
use crate::queue::limits::Limits;

/// Where a job is in its life. `Scheduled` is not stored: it is a pending
/// job whose `run_at` is still ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobStatus {
    Pending,
    Scheduled,
    Running,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Pending,
        JobStatus::Scheduled,
        JobStatus::Running,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Running => "running",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The status shown for a stored row at `now`.
    pub fn from_row(stored: &str, run_at: Millis, now: Millis) -> JobStatus {
        match stored {
            "running" => JobStatus::Running,
            "dead" => JobStatus::Dead,
            _ if run_at > now => JobStatus::Scheduled,
            _ => JobStatus::Pending,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub description: String,
    pub job_type: String,
    /// `{"type", "data", "options"}` as the replaced system stored it.
    pub payload: Value,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: i64,
    /// Seconds one attempt may take.
    pub timeout_s: u32,
    pub run_at: Millis,
    pub reserved_at: Option<Millis>,
    pub reserved_by: Option<String>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub cron_id: Option<String>,
    pub created: Millis,
    pub updated: Millis,
}

impl Job {
    /// `payload.data`, an empty object when absent.
    pub fn data(&self) -> Value {
        self.payload
            .get("data")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()))
    }
}

/// A job to store, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub name: String,
    pub description: String,
    pub job_type: String,
    pub data: Map<String, Value>,
    /// `payload.options.retry_count`; `None`: JOB_MAX_RETRIES.
    pub retry_count: Option<u32>,
    /// `payload.options.timeout` in seconds; `None`: JOB_TIMEOUT_SECONDS.
    pub timeout_s: Option<u32>,
    /// `payload.options.memory_max` and `tasks_max`, for a handler that
    /// enforces them.
    pub limits: Limits,
    pub when: RunAt,
    pub priority: i64,
    pub unique_key: Option<String>,
    pub cron_id: Option<String>,
    /// The cron run that enqueues this job; the run then follows the job.
    pub cron_run: Option<i64>,
}

/// When a new job may first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAt {
    Now,
    At(Millis),
    After(std::time::Duration),
}

impl NewJob {
    /// A job of `job_type` with `data`, to run now with the defaults.
    pub fn new(
        name: impl Into<String>,
        job_type: impl Into<String>,
        data: Map<String, Value>,
    ) -> NewJob {
        NewJob {
            name: name.into(),
            description: String::new(),
            job_type: job_type.into(),
            data,
            retry_count: None,
            timeout_s: None,
            limits: Limits::default(),
            when: RunAt::Now,
            priority: 0,
            unique_key: None,
            cron_id: None,
            cron_run: None,
        }
    }

    pub fn run_at_ms(&self, now: Millis) -> Millis {
        match self.when {
            RunAt::Now => now,
            RunAt::At(at) => at,
            RunAt::After(delay) => {
                now.saturating_add(delay.as_millis().min(i64::MAX as u128) as i64)
            }
        }
    }

    /// The payload as stored, with the options in force written out, so a
    /// row read later says what it was enqueued with.
    pub fn payload(&self, retry_count: u32, timeout_s: u32) -> Value {
        let mut options = Map::new();
        options.insert("retry_count".into(), retry_count.into());
        options.insert("timeout".into(), timeout_s.into());
        self.limits.write_into(&mut options);
        let mut payload = Map::new();
        payload.insert("type".into(), Value::String(self.job_type.clone()));
        payload.insert("data".into(), Value::Object(self.data.clone()));
        payload.insert("options".into(), Value::Object(options));
        Value::Object(payload)
    }
}

/// The result of storing one new job.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub job: Job,
    /// A job with the same unique key was already waiting or running; this
    /// is that job, and nothing new was stored.
    pub duplicate: bool,
}

/// What a claim set, and what every later write about that attempt must
/// still match: a worker whose reservation was recovered and claimed again
/// elsewhere can then never complete, fail or extend the newer attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job_id: String,
    pub attempt: u32,
    pub instance: String,
}

/// A claimed job and its lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: Job,
    pub lease: Lease,
}

/// Record ids in the style of the replaced system: 15 characters `[a-z0-9]`.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..15)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_the_replaced_systems() {
        let id = new_id();
        assert_eq!(id.len(), 15);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn scheduled_is_pending_in_the_future() {
        assert_eq!(JobStatus::from_row("pending", 10, 5), JobStatus::Scheduled);
        assert_eq!(JobStatus::from_row("pending", 5, 5), JobStatus::Pending);
        assert_eq!(JobStatus::from_row("running", 50, 5), JobStatus::Running);
        assert_eq!(JobStatus::from_row("dead", 50, 5), JobStatus::Dead);
    }

    #[test]
    fn payload_writes_out_the_options_in_force() {
        let mut data = Map::new();
        data.insert("to".into(), "a@b.c".into());
        let job = NewJob::new("n", "email", data);
        assert_eq!(
            job.payload(3, 30),
            serde_json::json!({"type": "email", "data": {"to": "a@b.c"}, "options": {"retry_count": 3, "timeout": 30}})
        );
    }
}
