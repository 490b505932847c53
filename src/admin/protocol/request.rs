//! The arguments of each admin command, defined once for both sides: the
//! daemon parses requests into these types (unknown fields refused, so a
//! typo never passes silently) and the CLI builds its requests from them,
//! so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::store::limits::ByteSize;

/// `enqueue`, one job: the replaced system's `{"name", "description",
/// "payload"}` plus cronq's scheduling fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueJob {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub payload: Payload,
    /// RFC 3339; the job waits until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// Seconds to wait; not with `run_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
}

/// `{"type", "data", "options"}`, the replaced system's payload shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    #[serde(rename = "type")]
    pub job_type: String,
    /// Absent means `{}`: the `noop` handler needs nothing.
    #[serde(default)]
    pub data: Map<String, Value>,
    #[serde(default)]
    pub options: JobOptions,
}

/// Absent options take the daemon's defaults (JOB_MAX_RETRIES, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// A cap on the job's memory below the operator's (`command` jobs in a
    /// cgroup): bytes, or text such as `"256M"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<ByteSize>,
    /// A cap on the job's processes and threads below the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_max: Option<u64>,
}

/// `enqueue`, the batch form. Each job is parsed on its own so an error
/// can name it (`jobs[3].payload.type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBatch {
    pub jobs: Vec<Value>,
}

/// `import`: records of another system, each taken over as one job (see
/// `queue::import`). Each record is checked on its own; unlike an enqueue
/// batch, a bad record is answered, not fatal to the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportArgs {
    /// Where the records come from: `pocketbase:COLLECTION`.
    pub source: String,
    /// 1 to 1,000 records.
    pub records: Vec<ImportRecord>,
    /// Check and look up only; store nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// One record: the replaced system's `{"name", "description", "payload"}`,
/// its id, the attempts it used there and when it was created (the job's
/// `run_at`, so the oldest runs first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRecord {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl ImportRecord {
    /// The record as the queue takes it: its job, to run from `created`
    /// on. The error names the field.
    pub fn offer(self) -> Result<crate::queue::import::Offer, String> {
        use crate::queue::job::{NewJob, RunAt};
        let mut job = NewJob::new(self.name, self.payload.job_type, self.payload.data);
        job.description = self.description.unwrap_or_default();
        job.retry_count = self.payload.options.retry_count;
        job.timeout_s = self.payload.options.timeout;
        if let Some(created) = &self.created {
            let at = crate::clock::parse_rfc3339(created).map_err(|e| format!("created: {e}"))?;
            job.when = RunAt::At(at);
        }
        Ok(crate::queue::import::Offer {
            record_id: self.id,
            job,
            attempts: self.attempts.unwrap_or(0),
        })
    }
}

/// `jobs`: filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The previous page's `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_id: Option<String>,
}

/// The commands about one job or cron: `job`, `explain`, `retry`,
/// `cancel`, `trigger`, `enable`, `disable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdArg {
    pub id: String,
}

/// `cron`: one cron and its last `limit` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronQuery {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `purge`: dead jobs, optionally only those older than `older_than` s,
/// and only those the filter fields match (then at most 10,000 per call,
/// continued from `after`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeArgs {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<u64>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The previous call's `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The `filter` of a bulk `retry` or `cancel`: every field optional, at
/// least one given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_id: Option<String>,
    /// Bounds on `created` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// `retry` or `cancel` with a `filter` instead of an `id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkArgs {
    pub filter: JobFilter,
    /// The previous call's `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `next`: fire times of any expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `log_level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLevelArgs {
    pub level: String,
}

/// The commands that take no argument still refuse unknown ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

// The second wave's arguments (PROTOCOL.md "Additions of the second wave").
// `cronq top` sends them already; the daemon parses into the same types
// once it serves these commands.

/// `watch`: every filter is optional; none means every event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

/// `cancel` of one job, with `force: true` to stop it while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelArgs {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// `pause`, `resume`: one type, or every type when `type` is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseArgs {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
}

/// `wait`: until job `id` has ended, at most `timeout` seconds (1 to
/// 86400, default 60).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}
