//! The handler trait and the registry that maps job types to handlers.
//!
//! A handler is looked up by `payload.type`. It checks `data` twice: once at
//! enqueue time (`validate`, so a bad payload is refused to the caller instead
//! of dying later in the queue), and again when it runs, because rows can
//! reach the table by other roads (another program, an older version).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use super::live::ProgressReporter;
use crate::store::limits::Limits;

/// What a handler gets to do its work.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: String,
    pub name: String,
    pub job_type: String,
    /// `payload.data`, always a JSON object.
    pub data: Value,
    /// This attempt's number, 1 for the first.
    pub attempt: u32,
    pub max_attempts: u32,
    /// How long this attempt may take before it is abandoned.
    pub timeout: Duration,
    /// The cron that enqueued this job, if any.
    pub cron_id: Option<String>,
    /// `payload.options.memory_max` and `tasks_max`, already accepted by
    /// the handler's [`Handler::check_limits`].
    pub limits: Limits,
    /// Cancelled when the daemon shuts down. Handlers that can stop early
    /// and leave no half-done work may watch it; the daemon otherwise waits
    /// for them up to their timeout.
    pub shutdown: CancellationToken,
    /// Cancelled when an operator stops this job (`cancel` with `force`).
    /// A handler should end soon after, leaving no half-done work; one that
    /// has not returned within `queue::stop::CANCEL_GRACE` is abandoned.
    /// The job then ends `cancelled` whatever the handler returns, unless
    /// it returned success.
    pub cancel: CancellationToken,
    /// Where [`JobContext::progress`] goes; the default goes nowhere.
    pub reporter: ProgressReporter,
    /// Where [`JobContext::set_result`] keeps the attempt's result; a
    /// context made by hand (a test) takes `JobResult::default()`.
    pub result: JobResult,
}

impl JobContext {
    /// Reports how far the job is: `done` of `total` (when known), with an
    /// optional `message` (at most 500 characters kept). Never waits and
    /// never writes to disk; at most one report a second per job is kept
    /// (the others are dropped), so calling it for every row is fine.
    /// Shown by `job`, `jobs` and as `progress` events of `watch`.
    pub fn progress(&self, done: u64, total: Option<u64>, message: Option<String>) {
        self.reporter.report(done, total, message);
    }

    /// Sets this attempt's result: a small JSON summary of what it did
    /// (rows written, a message id), kept in the job's history record when
    /// the attempt ends the job, whether it succeeded or not. A later call
    /// replaces an earlier one. A result longer than 16 KiB as JSON text is
    /// kept as `{"truncated": true, "bytes": N}` instead, with a warning in
    /// the log: a result is a summary, not the output.
    pub fn set_result(&self, result: impl Into<Value>) {
        self.result.set(result.into());
    }
}

/// A handler's result for the attempt, shared between its context and the
/// worker that records it.
#[derive(Debug, Clone, Default)]
pub struct JobResult(Arc<Mutex<Option<Value>>>);

impl JobResult {
    fn set(&self, value: Value) {
        let (bounded, cut) = crate::store::history::bounded(value);
        if let Some(bytes) = cut {
            tracing::warn!(
                bytes,
                "the handler's result is {bytes} bytes as JSON, over the 16 KiB kept; \
                 only its size is recorded"
            );
        }
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bounded);
    }

    /// The result set so far, taken.
    pub fn take(&self) -> Option<Value> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Why an attempt failed, and whether another attempt could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth another attempt (a network error, a busy server).
    Retry(String),
    /// No attempt will ever succeed (a bad payload, an SMTP 5xx): the job is
    /// marked dead at once.
    Permanent(String),
}

impl JobError {
    pub fn retry(message: impl fmt::Display) -> JobError {
        JobError::Retry(message.to_string())
    }

    pub fn permanent(message: impl fmt::Display) -> JobError {
        JobError::Permanent(message.to_string())
    }

    pub fn message(&self) -> &str {
        match self {
            JobError::Retry(m) | JobError::Permanent(m) => m,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, JobError::Permanent(_))
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for JobError {}

/// A job type's implementation.
///
/// Delivery is at least once: after a crash, a job that was running may run
/// again, so `run` should be idempotent.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The `payload.type` this handler serves, e.g. `"email"`.
    fn job_type(&self) -> &str;

    /// One line for `crons`/`stats` listings and logs.
    fn description(&self) -> &str {
        ""
    }

    /// Checks `payload.data` at enqueue time. The error names the field at
    /// fault, as a path below `data`, e.g. `"to: not an email address"`.
    fn validate(&self, data: &Value) -> Result<(), String> {
        let _ = data;
        Ok(())
    }

    /// Checks the resource limits a job asked for in `payload.options`, at
    /// enqueue time and again before it runs. The error starts with the
    /// option's name, e.g. `"memory_max: more than ..."`. A handler that
    /// does not enforce limits refuses them, so none is silently ignored.
    fn check_limits(&self, limits: &Limits) -> Result<(), String> {
        match limits.set_fields().first() {
            None => Ok(()),
            Some(field) => Err(format!(
                "{field}: the {} handler does not enforce resource limits",
                self.job_type()
            )),
        }
    }

    /// Does the work of one attempt. Blocking work belongs in
    /// `tokio::task::spawn_blocking`, so the runtime keeps its threads.
    async fn run(&self, job: JobContext) -> Result<(), JobError>;
}

/// One entry of the registry: a handler and whether it is switched on.
#[derive(Clone)]
pub struct Registration {
    pub handler: Arc<dyn Handler>,
    pub enabled: bool,
    /// Why it is off, for the error an enqueue of its type gets.
    pub disabled_reason: Option<String>,
}

impl Registration {
    pub fn new(handler: impl Handler) -> Registration {
        Registration {
            handler: Arc::new(handler),
            enabled: true,
            disabled_reason: None,
        }
    }

    /// A registered but switched-off handler: jobs of its type wait, and
    /// enqueues are refused with `reason`.
    pub fn disabled(handler: impl Handler, reason: impl Into<String>) -> Registration {
        Registration {
            handler: Arc::new(handler),
            enabled: false,
            disabled_reason: Some(reason.into()),
        }
    }

    pub fn job_type(&self) -> &str {
        self.handler.job_type()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("type", &self.job_type())
            .field("enabled", &self.enabled)
            .field("description", &self.handler.description())
            .finish()
    }
}

/// Why a job type cannot be enqueued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no handler is registered for job type {0:?}")]
    Unknown(String),
    #[error("the handler for job type {job_type:?} is disabled: {reason}")]
    Disabled { job_type: String, reason: String },
}

/// Handlers by job type. Built once at start-up, then shared read-only.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, Registration>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds or replaces the handler for its type; a library user's handler
    /// may thus replace a built-in one.
    pub fn register(&mut self, registration: Registration) {
        self.entries
            .insert(registration.job_type().to_string(), registration);
    }

    pub fn get(&self, job_type: &str) -> Option<&Registration> {
        self.entries.get(job_type)
    }

    /// The handler that would run a job of `job_type` now.
    pub fn enabled(&self, job_type: &str) -> Result<&Arc<dyn Handler>, LookupError> {
        match self.entries.get(job_type) {
            None => Err(LookupError::Unknown(job_type.to_string())),
            Some(r) if !r.enabled => Err(LookupError::Disabled {
                job_type: job_type.to_string(),
                reason: r
                    .disabled_reason
                    .clone()
                    .unwrap_or_else(|| "switched off".to_string()),
            }),
            Some(r) => Ok(&r.handler),
        }
    }

    /// The types this process will claim jobs of.
    pub fn enabled_types(&self) -> Vec<String> {
        self.entries
            .values()
            .filter(|r| r.enabled)
            .map(|r| r.job_type().to_string())
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Handler for Named {
        fn job_type(&self) -> &str {
            self.0
        }
        async fn run(&self, _job: JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[test]
    fn lookup_tells_unknown_from_disabled() {
        let mut registry = Registry::new();
        registry.register(Registration::new(Named("a")));
        registry.register(Registration::disabled(Named("b"), "SMTP_HOST is not set"));
        assert!(registry.enabled("a").is_ok());
        assert_eq!(
            registry.enabled("b").err().unwrap().to_string(),
            "the handler for job type \"b\" is disabled: SMTP_HOST is not set"
        );
        assert_eq!(
            registry.enabled("c").err(),
            Some(LookupError::Unknown("c".to_string()))
        );
        assert_eq!(registry.enabled_types(), vec!["a".to_string()]);
    }

    #[test]
    fn a_result_is_kept_whole_when_small_and_as_its_size_past_16_kib() {
        let slot = JobResult::default();
        let ctx_result = slot.clone();
        ctx_result.set(serde_json::json!({"rows": 3}));
        assert_eq!(slot.take(), Some(serde_json::json!({"rows": 3})));
        assert_eq!(slot.take(), None, "taken once");
        ctx_result.set(serde_json::json!({"out": "x".repeat(20_000)}));
        let kept = slot.take().unwrap();
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["bytes"], 20_010);
    }

    #[test]
    fn a_later_registration_replaces_an_earlier_one() {
        let mut registry = Registry::new();
        registry.register(Registration::disabled(Named("a"), "off"));
        registry.register(Registration::new(Named("a")));
        assert!(registry.enabled("a").is_ok());
    }
}
