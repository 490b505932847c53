//! The requests the CLI sends: which command, with the argument types the
//! daemon itself parses (`crate::admin::protocol::request`), so the CLI
//! never builds a request by hand and the two sides cannot drift.

use serde::Serialize;
use serde_json::Value;

pub use crate::admin::protocol::request::{
    BulkArgs, CancelArgs, CronQuery, EnqueueBatch, EnqueueJob, ImportArgs, ImportRecord, JobFilter,
    JobOptions, JobsQuery, LogLevelArgs, PauseArgs, Payload, PurgeArgs, WaitArgs, WatchArgs,
};

/// One request line: the envelope's `id` and the command with its arguments.
///
/// PROTOCOL.md names both the envelope's request id and the argument of
/// `job`, `cron`, `trigger`, ... `id`. A JSON object has one `id`, so for
/// those commands the argument is sent alone and doubles as the request id
/// (the daemon echoes it); `Request::new` decides which.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub command: Cmd,
}

impl Request {
    /// A request with the envelope id `id`, unless the command's own `id`
    /// argument takes that key.
    pub fn new(id: u64, command: Cmd) -> Request {
        let id = command.id_argument().is_none().then_some(id);
        Request { id, command }
    }

    /// The `id` the answer should echo.
    pub fn expected_id(&self) -> Option<Value> {
        match self.command.id_argument() {
            Some(arg) => Some(Value::String(arg.to_string())),
            None => self.id.map(Value::from),
        }
    }
}

/// A command and its arguments; `cmd` is the variant's name in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    Ping,
    Status,
    Enqueue(EnqueueJob),
    /// The batch form: the same `enqueue` command with a `jobs` array.
    #[serde(rename = "enqueue")]
    EnqueueBatch(EnqueueBatch),
    /// Records of a PocketBase collection (`cronq import-pocketbase`).
    Import(ImportArgs),
    Jobs(JobsQuery),
    Job {
        id: String,
    },
    Explain {
        id: String,
    },
    Retry {
        id: String,
    },
    Cancel {
        id: String,
    },
    Purge(PurgeArgs),
    Crons,
    Cron(CronQuery),
    Trigger {
        id: String,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    Stats,
    Metrics,
    Instances,
    Reload,
    LogLevel(LogLevelArgs),
    /// Second wave: a subscription to events (`cronq top`).
    Watch(WatchArgs),
    /// Second wave: `cancel` with `force` (stops a running job).
    #[serde(rename = "cancel")]
    CancelForce(CancelArgs),
    /// Second wave.
    Pause(PauseArgs),
    /// Second wave.
    Resume(PauseArgs),
    /// Second wave: `retry` with a `filter` instead of an id.
    #[serde(rename = "retry")]
    RetryWhere(BulkArgs),
    /// Second wave: `cancel` with a `filter` instead of an id.
    #[serde(rename = "cancel")]
    CancelWhere(BulkArgs),
    /// Second wave: until a job has ended.
    Wait(WaitArgs),
}

impl Cmd {
    /// The command's `id` argument (a job's or a cron's), if it has one.
    pub fn id_argument(&self) -> Option<&str> {
        match self {
            Cmd::Job { id }
            | Cmd::Explain { id }
            | Cmd::Retry { id }
            | Cmd::Cancel { id }
            | Cmd::Cron(CronQuery { id, .. })
            | Cmd::Trigger { id }
            | Cmd::Enable { id }
            | Cmd::Disable { id }
            | Cmd::CancelForce(CancelArgs { id, .. })
            | Cmd::Wait(WaitArgs { id, .. }) => Some(id),
            _ => None,
        }
    }

    /// The `cmd` string, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Ping => "ping",
            Cmd::Status => "status",
            Cmd::Enqueue(_) | Cmd::EnqueueBatch(_) => "enqueue",
            Cmd::Import(_) => "import",
            Cmd::Jobs(_) => "jobs",
            Cmd::Job { .. } => "job",
            Cmd::Explain { .. } => "explain",
            Cmd::Retry { .. } => "retry",
            Cmd::Cancel { .. } => "cancel",
            Cmd::Purge(_) => "purge",
            Cmd::Crons => "crons",
            Cmd::Cron(_) => "cron",
            Cmd::Trigger { .. } => "trigger",
            Cmd::Enable { .. } => "enable",
            Cmd::Disable { .. } => "disable",
            Cmd::Stats => "stats",
            Cmd::Metrics => "metrics",
            Cmd::Instances => "instances",
            Cmd::Reload => "reload",
            Cmd::LogLevel(_) => "log_level",
            Cmd::Watch(_) => "watch",
            Cmd::CancelForce(_) => "cancel",
            Cmd::Pause(_) => "pause",
            Cmd::Resume(_) => "resume",
            Cmd::RetryWhere(_) => "retry",
            Cmd::CancelWhere(_) => "cancel",
            Cmd::Wait(_) => "wait",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(command: Cmd) -> Value {
        let line = serde_json::to_string(&Request::new(7, command)).unwrap();
        assert!(!line.contains('\n'), "a request is one line");
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn bare_commands() {
        assert_eq!(wire(Cmd::Ping), json!({"cmd": "ping", "id": 7}));
        assert_eq!(wire(Cmd::Metrics), json!({"cmd": "metrics", "id": 7}));
        assert_eq!(
            wire(Cmd::LogLevel(LogLevelArgs {
                level: "debug".into()
            })),
            json!({"cmd": "log_level", "id": 7, "level": "debug"})
        );
    }

    #[test]
    fn optional_arguments_are_left_out() {
        assert_eq!(
            wire(Cmd::Purge(PurgeArgs {
                status: "dead".into(),
                ..PurgeArgs::default()
            })),
            json!({"cmd": "purge", "id": 7, "status": "dead"})
        );
        assert_eq!(
            wire(Cmd::Jobs(JobsQuery {
                job_type: Some("email".into()),
                after: Some("1767225600000.k3j9".into()),
                ..JobsQuery::default()
            })),
            json!({"cmd": "jobs", "id": 7, "type": "email", "after": "1767225600000.k3j9"})
        );
    }

    #[test]
    fn an_id_argument_is_sent_once_and_is_what_comes_back() {
        let request = Request::new(7, Cmd::Job { id: "k3j9".into() });
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(line, r#"{"cmd":"job","id":"k3j9"}"#);
        assert_eq!(request.expected_id(), Some(json!("k3j9")));
        assert_eq!(
            wire(Cmd::Cron(CronQuery {
                id: "system_queue".into(),
                limit: Some(5)
            })),
            json!({"cmd": "cron", "id": "system_queue", "limit": 5})
        );
        assert_eq!(Request::new(7, Cmd::Ping).expected_id(), Some(json!(7)));
    }

    #[test]
    fn second_wave_requests_carry_protocol_names() {
        assert_eq!(
            wire(Cmd::Watch(WatchArgs::default())),
            json!({"cmd": "watch", "id": 7})
        );
        assert_eq!(
            wire(Cmd::Watch(WatchArgs {
                types: Some(vec!["email".into()]),
                ..WatchArgs::default()
            })),
            json!({"cmd": "watch", "id": 7, "types": ["email"]})
        );
        let force = Request::new(
            7,
            Cmd::CancelForce(CancelArgs {
                id: "k3j9".into(),
                force: Some(true),
            }),
        );
        assert_eq!(
            serde_json::to_value(&force).unwrap(),
            json!({"cmd": "cancel", "id": "k3j9", "force": true})
        );
        assert_eq!(force.expected_id(), Some(json!("k3j9")));
        assert_eq!(
            wire(Cmd::Pause(PauseArgs {
                job_type: Some("email".into())
            })),
            json!({"cmd": "pause", "id": 7, "type": "email"})
        );
        assert_eq!(
            wire(Cmd::Resume(PauseArgs::default())),
            json!({"cmd": "resume", "id": 7})
        );
    }

    #[test]
    fn a_batch_is_the_enqueue_command_with_jobs() {
        let job = json!({"name": "n", "payload": {"type": "noop", "data": {}}});
        assert_eq!(
            wire(Cmd::EnqueueBatch(EnqueueBatch {
                jobs: vec![job.clone()]
            })),
            json!({"cmd": "enqueue", "id": 7, "jobs": [job]})
        );
    }
}
