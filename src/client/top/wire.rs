//! What `cronq top` reads from the daemon, decoded into small typed rows:
//! the event lines of `watch` and the answers of the once-a-second poll
//! (`status`, `stats`, `crons`, `jobs`).
//!
//! Decoding is lenient, like the CLI's renderers: a field the daemon does
//! not send (yet) reads as absent, never as an error, so the dashboard
//! works against today's daemon and shows more as the daemon learns more.
//! Every text is cut to [`MAX_TEXT`] characters here, so no row the state
//! keeps can grow with what a daemon (or anything on its socket) sends.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

/// Longest name, error or message kept, in characters.
pub const MAX_TEXT: usize = 300;

/// The event names of PROTOCOL.md; names it does not list are `Other`, so
/// a newer daemon's events are skipped rather than misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Enqueued,
    Started,
    Progress,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
    CronFired,
    CronSkipped,
    Paused,
    Resumed,
    Lagged,
    Other,
}

impl EventKind {
    fn from_name(name: &str) -> EventKind {
        match name {
            "enqueued" => EventKind::Enqueued,
            "started" => EventKind::Started,
            "progress" => EventKind::Progress,
            "succeeded" => EventKind::Succeeded,
            "failed" => EventKind::Failed,
            "dead" => EventKind::Dead,
            "cancelled" => EventKind::Cancelled,
            "cron_fired" => EventKind::CronFired,
            "cron_skipped" => EventKind::CronSkipped,
            "paused" => EventKind::Paused,
            "resumed" => EventKind::Resumed,
            "lagged" => EventKind::Lagged,
            _ => EventKind::Other,
        }
    }
}

/// One `watch` event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub at: Option<Timestamp>,
    /// Job events: `job`.
    pub job: Option<JobRef>,
    /// Cron events: `cron`, the cron's id.
    pub cron: Option<String>,
    /// `lagged`: how many events the daemon dropped for this watcher.
    pub dropped: u64,
    /// `failed`, `dead`: the error, if the daemon sends it.
    pub error: Option<String>,
    /// `progress`: the job's progress.
    pub progress: Option<Progress>,
    /// `paused`, `resumed`: the paused types now in force, if sent.
    pub paused: Option<Vec<String>>,
}

/// The `job` of a job event: `{"id", "name", "type", "attempt", "cron_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobRef {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "text")]
    pub name: String,
    #[serde(rename = "type", default, deserialize_with = "text")]
    pub job_type: String,
    #[serde(default)]
    pub attempt: u32,
}

/// A running job's `progress`: `{"done", "total", "message", "at"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "opt_text")]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct EventWire {
    event: String,
    #[serde(default, deserialize_with = "opt_time")]
    at: Option<Timestamp>,
    #[serde(default)]
    job: Option<JobRef>,
    #[serde(default, deserialize_with = "opt_text")]
    cron: Option<String>,
    #[serde(default)]
    dropped: u64,
    #[serde(default, deserialize_with = "opt_first_line")]
    error: Option<String>,
    #[serde(default)]
    progress: Option<Progress>,
    #[serde(default)]
    paused: Option<Vec<String>>,
}

impl Event {
    /// Decodes one line; `None` for a line that is not an event object.
    pub fn parse(line: &[u8]) -> Option<Event> {
        let w: EventWire = serde_json::from_slice(line).ok()?;
        Some(Event {
            kind: EventKind::from_name(&w.event),
            at: w.at,
            job: w.job,
            cron: w.cron,
            dropped: w.dropped,
            error: w.error,
            progress: w.progress,
            paused: w.paused.map(|p| p.into_iter().take(64).map(cut).collect()),
        })
    }
}

/// Four counts by state, as `status` and `stats` give them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub pending: u64,
    pub scheduled: u64,
    pub running: u64,
    pub dead: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Workers {
    pub busy: u64,
    pub max: u64,
}

/// What the header shows, from `status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatusInfo {
    #[serde(deserialize_with = "text")]
    pub version: String,
    /// `sqlite` or `postgres`; today's daemon does not say, and is SQLite.
    #[serde(deserialize_with = "opt_text")]
    pub backend: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub db: Option<String>,
    /// PostgreSQL: how many daemons share the database.
    pub instances: Option<u64>,
    pub uptime_s: u64,
    pub workers: Workers,
    pub queue: Counts,
    /// The paused types (`["*"]` for all); absent before pausing exists.
    pub paused: Vec<String>,
    /// Whether jobs are processed automatically (ENABLE_SYSTEM_QUEUE_CRON).
    pub automatic: Option<bool>,
}

/// One type's row of `stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeRow {
    pub job_type: String,
    pub counts: Counts,
    pub succeeded: u64,
    pub failed: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TypeWire {
    #[serde(flatten)]
    counts: Counts,
    succeeded: u64,
    failed: u64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
}

/// `stats`: the queue by type and the oldest waiting job's age.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub types: Vec<TypeRow>,
    pub oldest_pending_age_s: Option<f64>,
}

/// Most types the queue pane keeps; a daemon with more is not a queue an
/// operator reads row by row anyway.
pub const MAX_TYPES: usize = 500;
/// Most crons kept.
pub const MAX_CRONS: usize = 1000;

impl Stats {
    pub fn from_answer(a: &Value) -> Stats {
        let types = a
            .get("types")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .take(MAX_TYPES)
            .map(|(name, v)| {
                let w = TypeWire::deserialize(v).unwrap_or_default();
                TypeRow {
                    job_type: cut(name.clone()),
                    counts: w.counts,
                    succeeded: w.succeeded,
                    failed: w.failed,
                    p50_ms: w.p50_ms,
                    p95_ms: w.p95_ms,
                }
            })
            .collect();
        Stats {
            types,
            oldest_pending_age_s: a.get("oldest_pending_age_s").and_then(Value::as_f64),
        }
    }
}

/// A cron's last run: when, and how it went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LastRun {
    #[serde(deserialize_with = "opt_time")]
    pub started: Option<Timestamp>,
    #[serde(deserialize_with = "opt_time")]
    pub scheduled_for: Option<Timestamp>,
    #[serde(deserialize_with = "text")]
    pub status: String,
    pub duration_ms: Option<u64>,
    #[serde(deserialize_with = "opt_first_line")]
    pub error: Option<String>,
}

/// One row of `crons`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CronRow {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub schedule: String,
    #[serde(deserialize_with = "text")]
    pub timezone: String,
    #[serde(deserialize_with = "text")]
    pub description: String,
    pub enabled: bool,
    #[serde(deserialize_with = "opt_time")]
    pub next_run: Option<Timestamp>,
    pub last_run: Option<LastRun>,
}

impl CronRow {
    pub fn list(a: &Value) -> Vec<CronRow> {
        rows(a, "crons", MAX_CRONS)
    }
}

/// One job of a `jobs` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct JobRow {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(rename = "type", deserialize_with = "text")]
    pub job_type: String,
    pub attempts: u32,
    #[serde(deserialize_with = "opt_time")]
    pub reserved_at: Option<Timestamp>,
    #[serde(deserialize_with = "opt_time")]
    pub updated: Option<Timestamp>,
    #[serde(deserialize_with = "opt_first_line")]
    pub last_error: Option<String>,
    pub progress: Option<Progress>,
}

impl JobRow {
    pub fn list(a: &Value, max: usize) -> Vec<JobRow> {
        rows(a, "jobs", max)
    }
}

/// The array `key` of an answer, each item decoded on its own: one item of
/// an unexpected shape is skipped, not the whole list.
fn rows<T: for<'de> Deserialize<'de>>(a: &Value, key: &str, max: usize) -> Vec<T> {
    a.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(max)
        .filter_map(|v| T::deserialize(v).ok())
        .collect()
}

/// `s` cut to [`MAX_TEXT`] characters.
pub fn cut(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(MAX_TEXT) {
        s.truncate(at);
        s.push('…');
    }
    s
}

/// The first non-empty line of `s`, cut.
pub fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    cut(line.trim_end().to_string())
}

/// A string, or any other JSON value written out; null is "".
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_text(d)?.unwrap_or_default())
}

fn opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(cut(s)),
        other => Some(cut(other.to_string())),
    })
}

fn opt_first_line<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_text(d)?.map(|s| first_line(&s)))
}

/// A timestamp; one that does not parse reads as absent.
fn opt_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_line_of_the_contract() {
        let line = br#"{"event":"failed","at":"2026-01-01T00:00:01.500Z","job":{"id":"k3j9x0c2m1q8z7a","name":"welcome","type":"email","attempt":2,"cron_id":null},"retry_at":"2026-01-01T00:00:21.500Z","error":"SMTP 451\nsecond line"}"#;
        let e = Event::parse(line).unwrap();
        assert_eq!(e.kind, EventKind::Failed);
        assert_eq!(e.at, Some("2026-01-01T00:00:01.5Z".parse().unwrap()));
        let job = e.job.unwrap();
        assert_eq!(
            (job.id.as_str(), job.name.as_str(), job.job_type.as_str()),
            ("k3j9x0c2m1q8z7a", "welcome", "email")
        );
        assert_eq!(job.attempt, 2);
        assert_eq!(e.error.as_deref(), Some("SMTP 451"));
    }

    #[test]
    fn lagged_progress_and_unknown_events() {
        let lag = Event::parse(br#"{"event":"lagged","dropped":1234}"#).unwrap();
        assert_eq!((lag.kind, lag.dropped), (EventKind::Lagged, 1234));
        let p = Event::parse(
            br#"{"event":"progress","job":{"id":"a"},"progress":{"done":5,"total":null,"message":"rows","at":"2026-01-01T00:00:00.000Z"}}"#,
        )
        .unwrap();
        assert_eq!(
            p.progress,
            Some(Progress {
                done: 5,
                total: None,
                message: Some("rows".into())
            })
        );
        assert_eq!(
            Event::parse(br#"{"event":"rebalanced"}"#).unwrap().kind,
            EventKind::Other
        );
        assert!(Event::parse(b"not json").is_none());
        assert!(Event::parse(br#"{"ok":true,"watching":true}"#).is_none());
    }

    #[test]
    fn long_texts_are_cut() {
        let long = "x".repeat(10_000);
        let line = json!({"event": "dead", "job": {"id": "a", "name": long}, "error": long});
        let e = Event::parse(line.to_string().as_bytes()).unwrap();
        assert_eq!(e.job.unwrap().name.chars().count(), MAX_TEXT + 1);
        assert_eq!(e.error.unwrap().chars().count(), MAX_TEXT + 1);
    }

    #[test]
    fn todays_status_answer_reads_as_sqlite_without_pauses() {
        let a = json!({"ok": true, "version": "0.1.0", "protocol": 1, "uptime_s": 3720,
            "db": "/var/lib/cronq/cronq.db", "workers": {"max": 5, "busy": 2},
            "queue": {"pending": 12, "scheduled": 3, "running": 2, "dead": 1}, "automatic": true});
        let s = StatusInfo::deserialize(&a).unwrap();
        assert_eq!(s.backend, None);
        assert_eq!(s.paused, Vec::<String>::new());
        assert_eq!(s.workers, Workers { busy: 2, max: 5 });
        assert_eq!(s.queue.pending, 12);
        assert_eq!(s.uptime_s, 3720);
    }

    #[test]
    fn stats_crons_and_jobs_answers() {
        let stats = Stats::from_answer(&json!({"types": {
            "email": {"pending": 3, "scheduled": 1, "running": 2, "dead": 1, "succeeded": 10, "failed": 2, "p50_ms": 12.5, "p95_ms": null},
            "noop": "garbage"}, "oldest_pending_age_s": 4.2}));
        assert_eq!(stats.types.len(), 2);
        assert_eq!(stats.types[0].counts.running, 2);
        assert_eq!(stats.types[0].p50_ms, Some(12.5));
        assert_eq!(stats.types[1].counts, Counts::default());
        assert_eq!(stats.oldest_pending_age_s, Some(4.2));

        let crons = CronRow::list(&json!({"crons": [
            {"id": "system_queue", "schedule": "* * * * *", "enabled": true,
             "next_run": "2026-01-01T00:01:00.000Z",
             "last_run": {"scheduled_for": "2026-01-01T00:00:00.000Z", "status": "ok", "duration_ms": 3, "error": null}},
            "not a cron"]}));
        assert_eq!(crons.len(), 1);
        assert_eq!(crons[0].last_run.as_ref().unwrap().status, "ok");

        let jobs = JobRow::list(
            &json!({"jobs": [{"id": "a", "name": "n", "type": "noop", "attempts": 1,
                "reserved_at": "2026-01-01T00:00:00.000Z", "last_error": "boom\nat line 2"}]}),
            10,
        );
        assert_eq!(jobs[0].last_error.as_deref(), Some("boom"));
        assert!(jobs[0].reserved_at.is_some());
    }
}
