//! Finished jobs: the row types of the history (issue 14), of pauses, of
//! the operator's bulk verbs and of pruning.
//!
//! A job that ends (succeeded, dead, cancelled) leaves a record in a table
//! of its own, written in the same transaction as the outcome, so
//! "succeeded" is durable exactly when the job left the queue. `queues`
//! keeps the replaced system's meaning (a job that succeeded leaves it); a
//! dead job stays there as before and its record is written when it dies,
//! so `job ID` still answers `dead` after a purge. A dead job that is
//! retried and ends again replaces its record.
//!
//! The record keeps what says what happened, not the payload: a payload
//! may be 256 KiB, and a million of them would be a disk's worth.

use serde_json::Value;

use crate::clock::Millis;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalStatus {
    Succeeded,
    Dead,
    Cancelled,
}

impl FinalStatus {
    pub const ALL: [FinalStatus; 3] = [
        FinalStatus::Succeeded,
        FinalStatus::Dead,
        FinalStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Succeeded => "succeeded",
            FinalStatus::Dead => "dead",
            FinalStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<FinalStatus> {
        FinalStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A finished job as the history keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedJob {
    /// The record's place in the history: records are numbered in the
    /// order they were written (a job's end), the listing's order and
    /// cursor.
    pub seq: i64,
    pub id: String,
    pub name: String,
    pub description: String,
    pub job_type: String,
    pub status: FinalStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: i64,
    pub run_at: Millis,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub cron_id: Option<String>,
    /// When it was enqueued.
    pub created: Millis,
    /// When its first attempt was claimed; `None` if it never ran.
    pub started: Option<Millis>,
    pub finished: Millis,
    /// How long its last attempt ran; `None` if it never ran here (a
    /// cancel, a recovery).
    pub duration_ms: Option<i64>,
    /// What the handler said of its last attempt (`JobContext::set_result`).
    pub result: Option<Value>,
}

/// What a worker knows of the attempt that ended a job, beside the row:
/// kept in its history record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ending {
    /// How long the handler ran.
    pub ran_ms: Option<i64>,
    /// The handler's result, already bounded (see [`bound_result`]).
    pub result: Option<Value>,
}

/// Filters of a listing of finished jobs, newest record first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub status: Option<FinalStatus>,
    pub job_type: Option<String>,
    pub name: Option<String>,
    pub cron_id: Option<String>,
    /// Bounds on `finished`.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub limit: usize,
    /// Continue below this `seq`, from a previous page's cursor.
    pub after: Option<i64>,
}

/// Which stored jobs a bulk `retry`, `cancel` or `purge` takes, oldest
/// first: every field optional (the command checks at least one is given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkFilter {
    /// `pending`, `scheduled`, `dead` (`running` is never touched).
    pub status: Option<crate::store::job::JobStatus>,
    pub job_type: Option<String>,
    pub name: Option<String>,
    pub cron_id: Option<String>,
    /// Bounds on `created`.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Continue after this `(created, id)`, from a previous call's cursor.
    pub after: Option<(Millis, String)>,
    /// Jobs looked at, at most.
    pub limit: usize,
}

/// What a bulk verb did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bulk {
    /// Jobs changed.
    pub count: u64,
    /// Jobs matched but left alone (a retry whose unique key another
    /// waiting job holds).
    pub skipped: u64,
    /// Where the next call continues: the `(created, id)` of the last job
    /// looked at, when more match.
    pub next: Option<(Millis, String)>,
    /// A bulk cancel's jobs, each as its `cancelled` event names it.
    pub cancelled: Vec<CancelledJob>,
}

/// A job a bulk cancel ended: what the queue's `cancelled` event says of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelledJob {
    pub id: String,
    pub name: String,
    pub job_type: String,
    pub attempts: u32,
    pub cron_id: Option<String>,
}

/// What one round of pruning may delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prune {
    /// History records finished before this go (JOB_HISTORY_RETENTION).
    pub history_before: Option<Millis>,
    /// The newest this many records stay at most (JOB_HISTORY_MAX).
    pub history_max: Option<u64>,
    /// Dead jobs last updated before this go from `queues`
    /// (JOB_DEAD_RETENTION).
    pub dead_before: Option<Millis>,
    /// Rows deleted per kind in one round at most, so one transaction stays
    /// short; [`Pruned::more`] says another round is due.
    pub batch: usize,
}

/// Rows deleted in one round of pruning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub history: u64,
    pub dead: u64,
    /// A kind reached its batch: more may be waiting.
    pub more: bool,
}

/// Rows one round of pruning deletes per kind at most.
pub const PRUNE_BATCH: usize = 10_000;

/// Largest result a handler may keep, as JSON text.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// A handler's result as every backend stores it: NUL characters in
/// strings replaced (PostgreSQL's jsonb cannot hold them), and a result
/// whose JSON text is longer than [`MAX_RESULT_BYTES`] replaced by
/// `{"truncated": true, "bytes": N}`: a result is a summary, and a cut
/// JSON text would not parse.
pub fn bound_result(value: Value) -> Value {
    bounded(value).0
}

/// [`bound_result`], and the size of the JSON text when it was too long.
pub fn bounded(value: Value) -> (Value, Option<usize>) {
    let value = without_nul(value);
    let bytes = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if bytes <= MAX_RESULT_BYTES {
        return (value, None);
    }
    (
        serde_json::json!({"truncated": true, "bytes": bytes}),
        Some(bytes),
    )
}

fn without_nul(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "\u{fffd}")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.replace('\0', "\u{fffd}"), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The pause that stops every type.
pub const ALL_TYPES: &str = "*";

/// Pauses of single types in force at most: every claim reads them all, so
/// a client pausing made-up types cannot grow that without bound. The
/// pause of every type ([`ALL_TYPES`]) is always taken.
pub const MAX_PAUSES: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_small_result_is_kept_and_a_large_one_summarised() {
        assert_eq!(bound_result(json!({"rows": 3})), json!({"rows": 3}));
        let big = json!({"out": "x".repeat(MAX_RESULT_BYTES)});
        let kept = bound_result(big);
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["bytes"], MAX_RESULT_BYTES + 10);
    }

    #[test]
    fn nul_characters_are_replaced_at_any_depth() {
        assert_eq!(
            bound_result(json!({"a\u{0}": ["b\u{0}c", {"d": "\u{0}"}]})),
            json!({"a\u{fffd}": ["b\u{fffd}c", {"d": "\u{fffd}"}]})
        );
    }

    #[test]
    fn statuses_read_back() {
        for s in FinalStatus::ALL {
            assert_eq!(FinalStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FinalStatus::parse("pending"), None);
    }
}
