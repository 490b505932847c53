//! The wire format of PROTOCOL.md: the envelope, error codes, and how jobs,
//! crons and runs are written as JSON.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::clock::{Millis, format_ms, parse_rfc3339};
use crate::cron::scheduler::{CronView, SchedulerError};
use crate::queue::QueueError;
use crate::queue::job::Job;
use crate::store::StoreError;
use crate::store::history::FinishedJob;
use crate::store::job::AttemptError;
use crate::store::run::RunRow;

pub mod request;
mod strict;

pub const PROTOCOL_VERSION: u32 = 1;

/// Every command of PROTOCOL.md, for the checks that must cover them all
/// (the man page test, the fuzz target).
pub const COMMANDS: &[&str] = &[
    "ping",
    "status",
    "enqueue",
    "import",
    "jobs",
    "job",
    "explain",
    "retry",
    "cancel",
    "purge",
    "crons",
    "cron",
    "trigger",
    "enable",
    "disable",
    "next",
    "stats",
    "metrics",
    "reload",
    "log_level",
    "instances",
    "watch",
    "wait",
    "pause",
    "resume",
];

/// The error codes of PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadJson,
    BadRequest,
    UnknownCommand,
    NotFound,
    Conflict,
    QueueFull,
    RateLimited,
    TooLarge,
    Forbidden,
    Unavailable,
    Internal,
    /// A `wait` ran out of time.
    Timeout,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadJson => "bad_json",
            Code::BadRequest => "bad_request",
            Code::UnknownCommand => "unknown_command",
            Code::NotFound => "not_found",
            Code::Conflict => "conflict",
            Code::QueueFull => "queue_full",
            Code::RateLimited => "rate_limited",
            Code::TooLarge => "too_large",
            Code::Forbidden => "forbidden",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::Timeout => "timeout",
        }
    }
}

/// A refused request: the code and one sentence naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct AdminError {
    pub code: Code,
    pub message: String,
}

impl AdminError {
    pub fn new(code: Code, message: impl Into<String>) -> AdminError {
        AdminError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AdminError {
        AdminError::new(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> AdminError {
        AdminError::new(Code::NotFound, message)
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        match &e {
            StoreError::QueueFull { .. } => AdminError::new(Code::QueueFull, e.to_string()),
            _ if e.is_unavailable() => AdminError::new(Code::Unavailable, e.to_string()),
            _ => {
                tracing::error!(error = %e, "database error while serving a request: {e}");
                AdminError::new(Code::Internal, e.to_string())
            }
        }
    }
}

impl From<QueueError> for AdminError {
    fn from(e: QueueError) -> AdminError {
        match e {
            QueueError::Invalid(m) => AdminError::bad_request(m),
            QueueError::TooLarge(m) => AdminError::new(Code::TooLarge, m),
            QueueError::Store(e) => e.into(),
            QueueError::ShuttingDown => AdminError::new(Code::Unavailable, e.to_string()),
        }
    }
}

impl From<SchedulerError> for AdminError {
    fn from(e: SchedulerError) -> AdminError {
        match e {
            SchedulerError::NotFound(_) => AdminError::not_found(e.to_string()),
            SchedulerError::Reload(m) => AdminError::bad_request(m),
            SchedulerError::Store(e) => e.into(),
        }
    }
}

/// A request line, split into its envelope and its arguments.
#[derive(Debug)]
pub struct Request {
    pub cmd: String,
    pub id: Option<Value>,
    pub args: Map<String, Value>,
}

impl Request {
    /// Reads the envelope. The `id` is returned even when the rest is bad,
    /// so the error can echo it.
    pub fn parse(line: &[u8]) -> Result<Request, (Option<Value>, AdminError)> {
        let value: Value = strict::from_slice(line).map_err(|e| {
            let what = if std::str::from_utf8(line).is_err() {
                "the request is not valid UTF-8".to_string()
            } else {
                format!("the request is not valid JSON: {e}")
            };
            (None, AdminError::new(Code::BadJson, what))
        })?;
        let Value::Object(mut args) = value else {
            return Err((
                None,
                AdminError::bad_request("the request must be a JSON object"),
            ));
        };
        let id = args.remove("id");
        let cmd = match args.remove("cmd") {
            Some(Value::String(cmd)) => cmd,
            Some(_) => return Err((id, AdminError::bad_request("cmd: must be a string"))),
            None => return Err((id, AdminError::bad_request("cmd: missing"))),
        };
        Ok(Request { cmd, id, args })
    }

    /// The arguments as `T`; unknown and mistyped fields are named.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, AdminError> {
        parse_args(Value::Object(self.args.clone()))
    }

    /// The arguments of a command about one job or cron, whose `id` is both
    /// the envelope's (echoed in the answer) and the argument.
    pub fn args_with_id<T: DeserializeOwned>(&self) -> Result<T, AdminError> {
        let mut args = self.args.clone();
        match &self.id {
            Some(Value::String(id)) => {
                args.insert("id".into(), Value::String(id.clone()));
            }
            Some(other) => {
                return Err(AdminError::bad_request(format!(
                    "id: must be the string id of a job or cron, got {other}"
                )));
            }
            None => return Err(AdminError::bad_request("id: missing")),
        }
        parse_args(Value::Object(args))
    }
}

/// Deserializes `value`, naming the field at fault in the error.
pub fn parse_args<T: DeserializeOwned>(value: Value) -> Result<T, AdminError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        };
        AdminError::bad_request(message)
    })
}

/// A command's result: its fields, and fields already written as JSON.
/// Large lists of jobs take the second way: building and freeing a `Value`
/// tree per job cost the daemon more than storing the jobs.
#[derive(Debug, Default)]
pub struct Answer {
    pub fields: Map<String, Value>,
    /// `(key, JSON text)`; keys are plain ASCII names.
    pub raw: Vec<(&'static str, String)>,
}

impl From<Map<String, Value>> for Answer {
    fn from(fields: Map<String, Value>) -> Answer {
        Answer {
            fields,
            raw: Vec::new(),
        }
    }
}

/// A success line, without its `\n`.
pub fn ok(id: Option<Value>, answer: Answer) -> String {
    let mut out = Map::with_capacity(answer.fields.len() + 2);
    out.insert("ok".into(), Value::Bool(true));
    if let Some(id) = id {
        out.insert("id".into(), id);
    }
    out.extend(answer.fields);
    let mut line = Value::Object(out).to_string();
    for (key, json) in answer.raw {
        // Reopen the object (it is never empty: `ok` is in it).
        line.pop();
        line.reserve(key.len() + json.len() + 5);
        line.push_str(",\"");
        line.push_str(key);
        line.push_str("\":");
        line.push_str(&json);
        line.push('}');
    }
    line
}

/// A failure line.
pub fn error(id: Option<Value>, e: &AdminError) -> Value {
    let mut out = Map::with_capacity(3);
    out.insert("ok".into(), Value::Bool(false));
    if let Some(id) = id {
        out.insert("id".into(), id);
    }
    out.insert(
        "error".into(),
        json!({"code": e.code.as_str(), "message": e.message}),
    );
    Value::Object(out)
}

pub fn time(ms: Millis) -> Value {
    Value::String(format_ms(ms))
}

pub fn opt_time(ms: Option<Millis>) -> Value {
    ms.map_or(Value::Null, time)
}

/// A timestamp argument; `field` names it in the error.
pub fn parse_time(field: &str, text: &str) -> Result<Millis, AdminError> {
    parse_rfc3339(text).map_err(|e| AdminError::bad_request(format!("{field}: {e}")))
}

/// A job as the protocol writes it.
#[derive(Debug, Serialize)]
pub struct JobView<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    #[serde(rename = "type")]
    job_type: &'a str,
    payload: &'a Value,
    status: &'static str,
    attempts: u32,
    max_attempts: u32,
    priority: i64,
    run_at: Time,
    reserved_at: Option<Time>,
    reserved_by: Option<&'a str>,
    last_error: Option<&'a str>,
    unique_key: Option<&'a str>,
    cron_id: Option<&'a str>,
    created: Time,
    updated: Time,
    /// Only on an enqueue that found the job by its `unique_key`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job) -> JobView<'a> {
        JobView {
            id: &job.id,
            name: &job.name,
            description: &job.description,
            job_type: &job.job_type,
            payload: &job.payload,
            status: job.status.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            priority: job.priority,
            run_at: Time(job.run_at),
            reserved_at: job.reserved_at.map(Time),
            reserved_by: job.reserved_by.as_deref(),
            last_error: job.last_error.as_deref(),
            unique_key: job.unique_key.as_deref(),
            cron_id: job.cron_id.as_deref(),
            created: Time(job.created),
            updated: Time(job.updated),
            duplicate: false,
        }
    }

    /// Marks the job as found by its `unique_key`, not stored.
    pub fn duplicate(self, duplicate: bool) -> JobView<'a> {
        JobView { duplicate, ..self }
    }
}

/// An instant, written as PROTOCOL.md's timestamps are.
#[derive(Debug)]
struct Time(Millis);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_ms(self.0))
    }
}

pub fn job(job: &Job) -> Value {
    // Serializing these fields cannot fail: every key is a string.
    serde_json::to_value(JobView::new(job)).unwrap_or(Value::Null)
}

/// A finished job as the protocol writes it: the job object's fields (the
/// payload is not kept: null; `updated` is when it finished), and
/// `started`, `finished`, `duration_ms` and `result`.
pub fn finished_job(job: &FinishedJob) -> Value {
    json!({
        "id": job.id,
        "name": job.name,
        "description": job.description,
        "type": job.job_type,
        "payload": null,
        "status": job.status.as_str(),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "run_at": time(job.run_at),
        "reserved_at": null,
        "reserved_by": null,
        "last_error": job.last_error,
        "unique_key": job.unique_key,
        "cron_id": job.cron_id,
        "created": time(job.created),
        "updated": time(job.finished),
        "started": opt_time(job.started),
        "finished": time(job.finished),
        "duration_ms": job.duration_ms,
        "result": job.result,
    })
}

/// Adds to a dead job's object what its history record says of its end.
pub fn with_ending(mut job: Value, record: &FinishedJob) -> Value {
    if let Value::Object(map) = &mut job {
        map.insert("started".into(), opt_time(record.started));
        map.insert("finished".into(), time(record.finished));
        map.insert("duration_ms".into(), json!(record.duration_ms));
        map.insert(
            "result".into(),
            record.result.clone().unwrap_or(Value::Null),
        );
    }
    job
}

pub fn attempt_error(e: &AttemptError) -> Value {
    json!({"attempt": e.attempt, "at": time(e.at), "error": e.error})
}

pub fn run(run: &RunRow) -> Value {
    json!({
        "scheduled_for": time(run.scheduled_for),
        "started": opt_time(run.started),
        "finished": opt_time(run.finished),
        "status": run.status.as_str(),
        "duration_ms": run.duration_ms,
        "error": run.error,
        "trigger": run.trigger,
        "job_id": run.job_id,
        "job_status": run.job_status,
    })
}

pub fn cron(view: &CronView, last_run: Option<&RunRow>) -> Value {
    let spec = &view.spec;
    json!({
        "id": spec.id,
        "schedule": spec.schedule.expr(),
        "timezone": spec.timezone_name,
        "description": spec.description,
        "enabled": view.enabled,
        "disabled_by": view.disabled_by.map(|by| by.as_str()),
        "source": spec.source.as_str(),
        "job": spec.job_json(),
        "overlap": match spec.overlap { crate::cron::spec::Overlap::Skip => "skip", crate::cron::spec::Overlap::Allow => "allow" },
        "catch_up": match spec.catch_up { crate::cron::spec::CatchUp::None => "none", crate::cron::spec::CatchUp::Once => "once" },
        "next_run": if view.enabled { opt_time(view.next_run) } else { Value::Null },
        "last_run": last_run.map_or(Value::Null, run),
        "conflict": view.conflict.as_ref().map_or(Value::Null, |c| json!({
            "digest": c.digest,
            "instances": c.instances.iter().map(|p| json!({
                "id": p.id,
                "host": p.host,
                "digest": p.digest,
            })).collect::<Vec<_>>(),
        })),
    })
}

/// Builds a result map from `key: value` pairs.
#[macro_export]
macro_rules! result {
    ($($key:literal : $value:expr),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $( map.insert($key.to_string(), serde_json::json!($value)); )*
        map
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_with_raw_fields_is_one_json_object() {
        let answer = Answer {
            fields: crate::result! { "n": 2 },
            raw: vec![("jobs", r#"[{"id":"a"},{"id":"b"}]"#.to_string())],
        };
        let line = ok(Some(json!(7)), answer);
        let parsed: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({"ok": true, "id": 7, "n": 2, "jobs": [{"id": "a"}, {"id": "b"}]})
        );
    }

    #[test]
    fn a_job_view_marks_only_duplicates() {
        let job = Job {
            id: "abc".into(),
            name: "n".into(),
            description: String::new(),
            job_type: "noop".into(),
            payload: json!({"type": "noop", "data": {}}),
            status: crate::queue::job::JobStatus::Pending,
            attempts: 0,
            max_attempts: 4,
            priority: 0,
            timeout_s: 30,
            run_at: 0,
            reserved_at: None,
            reserved_by: None,
            last_error: None,
            unique_key: None,
            cron_id: None,
            created: 0,
            updated: 0,
        };
        let plain = serde_json::to_value(JobView::new(&job)).expect("serializes");
        assert!(plain.get("duplicate").is_none());
        assert_eq!(plain["run_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(plain["reserved_at"], Value::Null);
        assert_eq!(plain["type"], "noop");
        let dup = serde_json::to_value(JobView::new(&job).duplicate(true)).expect("serializes");
        assert_eq!(dup["duplicate"], true);
    }
}
