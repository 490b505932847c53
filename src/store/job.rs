//! The job model: a stored job, a job to be stored, the lease a worker
//! holds while it runs one, and the other row types the queue's verbs take
//! and return. They live below the store so every backend speaks them and
//! nothing in `store/` imports from `queue/`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::limits::Limits;
use crate::clock::Millis;
pub use crate::store::history::Ending;

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

    /// The job as a backend stores it at `now`: a fresh id, pending, with
    /// the defaults in force for what it leaves unset.
    pub fn pending_job(&self, defaults: &JobDefaults, now: Millis) -> Job {
        let retry_count = self.retry_count.unwrap_or(defaults.max_retries);
        let timeout_s = self.timeout_s.unwrap_or(defaults.timeout_s);
        let run_at = self.run_at_ms(now);
        Job {
            id: new_id(),
            name: self.name.clone(),
            description: self.description.clone(),
            job_type: self.job_type.clone(),
            payload: self.payload(retry_count, timeout_s),
            status: JobStatus::from_row("pending", run_at, now),
            attempts: 0,
            max_attempts: 1 + retry_count,
            priority: self.priority,
            timeout_s,
            run_at,
            reserved_at: None,
            reserved_by: None,
            last_error: None,
            unique_key: self.unique_key.clone(),
            cron_id: self.cron_id.clone(),
            created: now,
            updated: now,
        }
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

/// The settings a row that does not say otherwise runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDefaults {
    pub max_retries: u32,
    pub timeout_s: u32,
    /// Whether a job that ends leaves a record in the history
    /// (JOB_HISTORY; see `store::history`).
    pub history: bool,
}

impl Default for JobDefaults {
    fn default() -> JobDefaults {
        JobDefaults {
            max_retries: 3,
            timeout_s: 30,
            history: true,
        }
    }
}

/// A failed attempt, as `job` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    pub attempt: u32,
    pub at: Millis,
    pub error: String,
}

/// How an attempt ended. `ending` is what the history records of it when
/// it ends the job (a success, or a failure that buries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        from_cron: bool,
        ending: Ending,
    },
    Failed {
        error: String,
        after: AfterFailure,
        ending: Ending,
    },
}

impl Outcome {
    /// A success with nothing recorded beside the row.
    pub fn succeeded(from_cron: bool) -> Outcome {
        Outcome::Succeeded {
            from_cron,
            ending: Ending::default(),
        }
    }

    /// A failure with nothing recorded beside the row and the error.
    pub fn failed(error: String, after: AfterFailure) -> Outcome {
        Outcome::Failed {
            error,
            after,
            ending: Ending::default(),
        }
    }
}

/// What becomes of a job whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(Millis),
    Dead,
}

/// A reservation released by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub job_id: String,
    pub job_type: String,
    pub attempt: u32,
    /// It had used its last attempt and is now dead.
    pub dead: bool,
}

/// Filters of the `jobs` listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub job_type: Option<String>,
    pub status: Option<JobStatus>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub limit: usize,
    /// Continue after this `(created, id)`, from a previous page's cursor.
    pub after: Option<(Millis, String)>,
    pub name: Option<String>,
    pub cron_id: Option<String>,
}

/// Jobs by type, then by status.
pub type Counts = BTreeMap<String, BTreeMap<JobStatus, u64>>;

/// Why a job could not be retried or cancelled.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NotFound,
    /// The job is in a state the operation does not apply to.
    WrongStatus(JobStatus),
    /// Another waiting job holds the same unique key.
    KeyHeld(String),
}

/// The error a cron run gets when its job was stopped by a forced cancel.
pub const CANCELLED_WHILE_RUNNING: &str = "the job was cancelled while it ran";

/// Longest error text kept per failure; a handler's output tail fits.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;
/// Failures kept per job for `job`.
pub const KEPT_ERRORS: i64 = 10;

/// `payload.options.retry_count` and `timeout` ranges, as PROTOCOL.md says.
pub const MAX_RETRY_COUNT: u32 = 100;
pub const MAX_TIMEOUT_S: u32 = 86_400;

/// `payload.options.retry_count`, or `Err` with a reason naming it when it
/// is there but not a whole number from 0 to [`MAX_RETRY_COUNT`]: what a
/// row another program wrote may hold, which `enqueue` would have refused.
pub fn row_retry_count(payload: &Value) -> Result<Option<u32>, String> {
    row_option(payload, "retry_count", 0, MAX_RETRY_COUNT, "")
}

/// `payload.options.timeout` in seconds, checked as [`row_retry_count`].
pub fn row_timeout(payload: &Value) -> Result<Option<u32>, String> {
    row_option(payload, "timeout", 1, MAX_TIMEOUT_S, " seconds")
}

fn row_option(
    payload: &Value,
    key: &str,
    min: u32,
    max: u32,
    unit: &str,
) -> Result<Option<u32>, String> {
    // `null` is unset, as `enqueue` reads it.
    let value = match payload.get("options").and_then(|o| o.get(key)) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value,
    };
    match value.as_u64().and_then(|v| u32::try_from(v).ok()) {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => {
            let mut shown = value.to_string();
            if cut_to(&mut shown, SHOWN_OPTION_BYTES) {
                shown.push('…');
            }
            Err(format!(
                "payload.options.{key} must be a whole number from {min} to {max}{unit}, got {shown}"
            ))
        }
    }
}

/// How much of a refused option's value its reason quotes.
const SHOWN_OPTION_BYTES: usize = 40;

/// An attempt's error cut to [`MAX_ERROR_BYTES`] (on a character boundary),
/// marked when cut: what every backend stores.
pub fn truncate_error(mut error: String) -> String {
    if cut_to(&mut error, MAX_ERROR_BYTES) {
        error.push_str(" [truncated]");
    }
    error
}

/// Cuts `text` to at most `max` bytes on a character boundary; whether it
/// was cut.
fn cut_to(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    true
}

/// Record ids in the style of the replaced system: 15 characters
/// `[a-z0-9]`. The first 8 are the creation time, milliseconds since
/// 2020-01-01 in base 36 (so ids sort by creation until the year 2109),
/// the other 7 random: 36^7 (78 billion) ids per millisecond, so two jobs
/// of one batch share an id about once in ten million batches of a
/// thousand, and the insert then draws again.
///
/// Why not all random, as the replaced system's: every table keyed or
/// indexed by id (the queue, its history) then takes each new id at a
/// random page, and each commit writes a page to the WAL per job. Ids that
/// grow with time land at the end of those B-trees, a few pages per commit:
/// that is what lets the history cost a completion next to nothing.
pub fn new_id() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    /// 2020-01-01T00:00:00Z in milliseconds.
    const EPOCH_MS: u128 = 1_577_836_800_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut ms = now.saturating_sub(EPOCH_MS) as u64;
    let mut id = [0u8; 15];
    for digit in id[..8].iter_mut().rev() {
        *digit = DIGITS[(ms % 36) as usize];
        ms /= 36;
    }
    for digit in &mut id[8..] {
        *digit = DIGITS[fastrand::usize(..DIGITS.len())];
    }
    // Every byte is an ASCII digit or letter.
    String::from_utf8_lossy(&id).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary_and_marked() {
        assert_eq!(truncate_error("short".into()), "short");
        // 'é' is two bytes: a cut at MAX_ERROR_BYTES would split one.
        let long = format!("x{}", "é".repeat(MAX_ERROR_BYTES));
        let cut = truncate_error(long);
        assert!(cut.ends_with(" [truncated]"), "{}", &cut[cut.len() - 20..]);
        let kept = cut.len() - " [truncated]".len();
        assert_eq!(kept, MAX_ERROR_BYTES - 1);
    }

    #[test]
    fn a_rows_options_are_read_as_enqueue_reads_them() {
        let options = |o: Value| serde_json::json!({"type": "noop", "options": o});
        let ok = |p: &Value| (row_retry_count(p), row_timeout(p));
        assert_eq!(ok(&options(serde_json::json!({}))), (Ok(None), Ok(None)));
        let null = options(serde_json::json!({"retry_count": null, "timeout": null}));
        assert_eq!(ok(&null), (Ok(None), Ok(None)));
        let edges = options(serde_json::json!({"retry_count": 100, "timeout": 86400}));
        assert_eq!(ok(&edges), (Ok(Some(100)), Ok(Some(86400))));
        let zero = options(serde_json::json!({"retry_count": 0, "timeout": 0}));
        assert_eq!(row_retry_count(&zero), Ok(Some(0)));
        assert_eq!(
            row_timeout(&zero).unwrap_err(),
            "payload.options.timeout must be a whole number from 1 to 86400 seconds, got 0"
        );
        // A long value is quoted cut, not whole.
        let long = options(serde_json::json!({"retry_count": "x".repeat(10_000)}));
        let reason = row_retry_count(&long).unwrap_err();
        assert!(reason.len() < 200 && reason.ends_with('…'), "{reason}");
    }

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
    fn ids_grow_with_time() {
        let first = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id();
        assert!(first[..8] < second[..8], "{first} < {second}");
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
