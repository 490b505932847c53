//! What the scheduler runs: one cron's schedule, zone, switches and action,
//! whether built in or read from the crons file.

use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::file::CronDef;
use super::schedule::Schedule;
use crate::config::Config;
use crate::queue::job::NewJob;

/// The built-in cron that recovers stale reservations and drains a batch.
pub const SYSTEM_QUEUE: &str = "system_queue";
/// The built-in export housekeeping cron, and the replaced system's name for it.
pub const CLEAR_EXPORTS: &str = "clear_exports";
pub const CLEAR_EXPORTS_ALIAS: &str = "clean_exported_files";

/// What a run does.
#[derive(Debug, Clone, PartialEq)]
pub enum CronAction {
    /// Recover stale reservations and drain up to JOB_BATCH_SIZE jobs.
    SystemQueue,
    /// Delete exported files older than EXPORT_RETENTION_DAYS.
    ClearExports,
    /// Enqueue this job, with `cron_id` set.
    Enqueue(JobTemplate),
}

/// The job a file cron enqueues.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTemplate {
    pub job_type: String,
    pub data: Map<String, Value>,
    pub retry_count: Option<u32>,
    pub timeout_s: Option<u32>,
}

impl JobTemplate {
    pub fn new_job(&self, cron_id: &str, description: &str, run_id: i64) -> NewJob {
        let mut job = NewJob::new(cron_id, self.job_type.clone(), self.data.clone());
        job.description = description.to_string();
        job.retry_count = self.retry_count;
        job.timeout_s = self.timeout_s;
        job.cron_id = Some(cron_id.to_string());
        job.cron_run = Some(run_id);
        job
    }

    /// `{"type", "data", "options"}` as PROTOCOL.md shows a cron's job.
    pub fn to_json(&self) -> Value {
        let mut options = Map::new();
        if let Some(n) = self.retry_count {
            options.insert("retry_count".into(), n.into());
        }
        if let Some(n) = self.timeout_s {
            options.insert("timeout".into(), n.into());
        }
        serde_json::json!({"type": self.job_type, "data": self.data, "options": options})
    }
}

/// What a cron does when its previous run's job has not finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overlap {
    /// No new run while the last one's job is pending, scheduled or running;
    /// the run is recorded as `skipped`.
    #[default]
    Skip,
    Allow,
}

/// What a cron does about runs missed while the daemon was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CatchUp {
    #[default]
    None,
    /// Fire one missed run (the latest) at start-up.
    Once,
}

/// Why a cron is off, as the `crons` command's `disabled_by` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledBy {
    /// `enabled = false` in the crons file.
    File,
    /// `ENABLE_<ID>=false` (for the built-ins, their own variable).
    Environment,
    /// A `disable` command, persisted until an `enable`.
    Override,
    /// A built-in that is off unless its variable turns it on.
    Default,
}

impl DisabledBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledBy::File => "file",
            DisabledBy::Environment => "environment",
            DisabledBy::Override => "override",
            DisabledBy::Default => "default",
        }
    }
}

/// Where a cron was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Builtin,
    File,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::File => "file",
        }
    }
}

/// One cron.
#[derive(Debug, Clone)]
pub struct CronSpec {
    pub id: String,
    pub schedule: Schedule,
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub description: String,
    pub action: CronAction,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    /// As declared (file `enabled`, `ENABLE_<ID>`); a persisted
    /// `enable`/`disable` overrides it.
    pub enabled: bool,
    /// Why it is declared off; `None` when `enabled`.
    pub disabled_by: Option<DisabledBy>,
    pub source: Source,
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &CronSpec) -> bool {
        self.id == other.id
            && self.schedule == other.schedule
            && self.timezone_name == other.timezone_name
            && self.description == other.description
            && self.action == other.action
            && self.overlap == other.overlap
            && self.catch_up == other.catch_up
            && self.enabled == other.enabled
            && self.disabled_by == other.disabled_by
            && self.source == other.source
    }
}

impl From<CronDef> for CronSpec {
    fn from(def: CronDef) -> CronSpec {
        CronSpec {
            id: def.id,
            schedule: def.schedule,
            timezone: def.timezone,
            timezone_name: def.timezone_name,
            description: def.description,
            action: CronAction::Enqueue(JobTemplate {
                job_type: def.job_type,
                data: def.data,
                retry_count: def.retry_count,
                timeout_s: def.timeout_s,
            }),
            overlap: def.overlap,
            catch_up: def.catch_up,
            enabled: def.enabled,
            disabled_by: def.disabled_by,
            source: Source::File,
        }
    }
}

impl CronSpec {
    /// The built-in crons, switched by their `ENABLE_*` variables:
    /// `system_queue` is on unless ENABLE_SYSTEM_QUEUE_CRON=false,
    /// `clear_exports` off unless ENABLE_CLEAR_EXPORTS_CRON=true.
    pub fn builtins(config: &Config, timezone: &TimeZone) -> Vec<CronSpec> {
        let clear_exports_set = [
            "ENABLE_CLEAR_EXPORTS_CRON",
            "ENABLE_CLEAR_EXPORT_FILES_CRON",
        ]
        .iter()
        .any(|var| {
            config
                .enable_vars
                .get(*var)
                .is_some_and(|v| !v.trim().is_empty())
        });
        let off = |enabled: bool, by: DisabledBy| (!enabled).then_some(by);
        let system_queue = off(config.system_queue_cron, DisabledBy::Environment);
        let clear_exports = off(
            config.clear_exports_cron,
            if clear_exports_set {
                DisabledBy::Environment
            } else {
                DisabledBy::Default
            },
        );
        let builtin = |id: &str,
                       expr: &str,
                       description: &str,
                       action,
                       disabled_by: Option<DisabledBy>| CronSpec {
            id: id.to_string(),
            // The expressions are constants known to parse.
            schedule: Schedule::parse(expr).unwrap_or_else(|e| panic!("built-in {id}: {e}")),
            timezone: timezone.clone(),
            timezone_name: super::schedule::timezone_name(timezone),
            description: description.to_string(),
            action,
            overlap: Overlap::Skip,
            catch_up: CatchUp::None,
            enabled: disabled_by.is_none(),
            disabled_by,
            source: Source::Builtin,
        };
        vec![
            builtin(
                SYSTEM_QUEUE,
                "* * * * *",
                "Processes jobs from the database queue",
                CronAction::SystemQueue,
                system_queue,
            ),
            builtin(
                CLEAR_EXPORTS,
                "0 3 * * *",
                "Deletes exported files older than EXPORT_RETENTION_DAYS",
                CronAction::ClearExports,
                clear_exports,
            ),
        ]
    }

    /// The job a file cron enqueues, as PROTOCOL.md's cron object shows it.
    pub fn job_json(&self) -> Value {
        match &self.action {
            CronAction::Enqueue(t) => t.to_json(),
            _ => Value::Null,
        }
    }

    /// A file cron's definition as a short digest (16 hex digits of a
    /// SHA-256), equal on two daemons exactly when their crons files define
    /// it alike: its schedule as written, time zone, job type, data and
    /// options, overlap, catch_up and whether it is declared enabled. The
    /// description and where it is written are left out, since they change
    /// nothing it does. `None` for a built-in, which each daemon's
    /// environment defines.
    pub fn digest(&self) -> Option<String> {
        use sha2::Digest as _;
        let CronAction::Enqueue(template) = &self.action else {
            return None;
        };
        let definition = serde_json::json!({
            "schedule": self.schedule.expr(),
            "timezone": self.timezone_name,
            "job": template.to_json(),
            "overlap": match self.overlap { Overlap::Skip => "skip", Overlap::Allow => "allow" },
            "catch_up": match self.catch_up { CatchUp::None => "none", CatchUp::Once => "once" },
            "enabled": self.enabled,
        });
        let text = canonical(&definition);
        let hash = sha2::Sha256::digest(text.as_bytes());
        Some(hash[..8].iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// `value` as JSON text with every object's keys in sorted order, whatever
/// order the crons file wrote them in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: &str, data: Value) -> CronSpec {
        CronSpec {
            id: "nightly".into(),
            schedule: Schedule::parse(schedule).unwrap(),
            timezone: TimeZone::UTC,
            timezone_name: "UTC".into(),
            description: "one".into(),
            action: CronAction::Enqueue(JobTemplate {
                job_type: "noop".into(),
                data: data.as_object().cloned().unwrap_or_default(),
                retry_count: Some(2),
                timeout_s: None,
            }),
            overlap: Overlap::Skip,
            catch_up: CatchUp::None,
            enabled: true,
            disabled_by: None,
            source: Source::File,
        }
    }

    #[test]
    fn a_digest_names_what_a_cron_does_not_how_it_is_written() {
        let base = spec(
            "0 2 * * *",
            serde_json::json!({"a": 1, "b": {"y": 2, "x": [1, 2]}}),
        );
        let digest = base.digest().unwrap();
        assert_eq!(digest.len(), 16);
        // The same data in another key order, another description.
        let reordered = CronSpec {
            description: "two".into(),
            ..spec(
                "0 2 * * *",
                serde_json::json!({"b": {"x": [1, 2], "y": 2}, "a": 1}),
            )
        };
        assert_eq!(reordered.digest().unwrap(), digest);
        let changed = [
            spec(
                "0 3 * * *",
                serde_json::json!({"a": 1, "b": {"y": 2, "x": [1, 2]}}),
            ),
            spec(
                "0 2 * * *",
                serde_json::json!({"a": 2, "b": {"y": 2, "x": [1, 2]}}),
            ),
            spec(
                "0 2 * * *",
                serde_json::json!({"a": 1, "b": {"y": 2, "x": [2, 1]}}),
            ),
            CronSpec {
                enabled: false,
                ..base.clone()
            },
            CronSpec {
                overlap: Overlap::Allow,
                ..base.clone()
            },
            CronSpec {
                catch_up: CatchUp::Once,
                ..base.clone()
            },
            CronSpec {
                timezone_name: "Europe/Berlin".into(),
                ..base.clone()
            },
        ];
        for other in changed {
            assert_ne!(other.digest().unwrap(), digest, "{other:?}");
        }
        let mut options = base.clone();
        if let CronAction::Enqueue(t) = &mut options.action {
            t.timeout_s = Some(5);
        }
        assert_ne!(options.digest().unwrap(), digest);
    }

    #[test]
    fn built_ins_have_no_digest() {
        let config = Config::from_vars(&Default::default()).unwrap();
        for builtin in CronSpec::builtins(&config, &TimeZone::UTC) {
            assert_eq!(builtin.digest(), None, "{}", builtin.id);
        }
    }
}
