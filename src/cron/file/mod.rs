//! The crons file: finding it and its `crons.d/` drop-ins, turning them into
//! validated cron definitions, and `cronq check`.
//!
//! Loading is all or nothing: one fault anywhere and `load` returns every
//! fault instead of any cron, so a reload never runs half a table (the
//! scheduler keeps the old one) and an operator sees every mistake at once.
//! Validation is as strict as an enqueue: the job type must name an enabled
//! handler and `data` must pass that handler's `validate`, because a cron
//! whose job would be refused fails at every fire, usually at night.

mod document;
mod fault;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde_json::{Map, Value};

pub use fault::{Fault, LoadErrors};

use crate::config::Config;
use crate::cron::schedule::{Schedule, ScheduleError, default_timezone};
use crate::handlers::command::Containment;
use crate::queue::handler::Registry;

pub use super::spec::{CatchUp, DisabledBy, Overlap};

/// One `[cron.ID]` table, validated.
#[derive(Debug, Clone)]
pub struct CronDef {
    pub id: String,
    pub schedule: Schedule,
    /// The expression as written (trimmed), for listings.
    pub schedule_text: String,
    pub timezone: TimeZone,
    /// The zone's IANA name, or "local" for a system zone without one.
    pub timezone_name: String,
    pub description: String,
    pub job_type: String,
    /// The job's `payload.data`.
    pub data: Map<String, Value>,
    /// The job's `payload.options.retry_count`; `None`: `JOB_MAX_RETRIES`.
    pub retry_count: Option<u32>,
    /// The job's `payload.options.timeout`; `None`: `JOB_TIMEOUT_SECONDS`.
    pub timeout_s: Option<u32>,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    /// The file's `enabled` and the `ENABLE_<ID>` variable both allow it.
    /// A runtime `enable`/`disable` override is the scheduler's business.
    pub enabled: bool,
    /// Which of the two turned it off (the file's, when both did).
    pub disabled_by: Option<DisabledBy>,
    pub source_file: PathBuf,
    /// The line of the `[cron.ID]` header (or of the first `cron.ID.` key).
    pub line: usize,
}

/// Equal when the cron would behave and list the same; where it is written
/// (`source_file`, `line`) is left out, so that a reload after moving a cron
/// within the file or into `crons.d/` does not report it as changed.
impl PartialEq for CronDef {
    fn eq(&self, other: &CronDef) -> bool {
        self.id == other.id
            && self.schedule == other.schedule
            && self.schedule_text == other.schedule_text
            && self.timezone == other.timezone
            && self.timezone_name == other.timezone_name
            && self.description == other.description
            && self.job_type == other.job_type
            && self.data == other.data
            && self.retry_count == other.retry_count
            && self.timeout_s == other.timeout_s
            && self.overlap == other.overlap
            && self.catch_up == other.catch_up
            && self.enabled == other.enabled
            && self.disabled_by == other.disabled_by
    }
}

/// What validation needs from outside the file.
#[derive(Debug, Clone)]
pub struct LoadContext<'a> {
    /// Job types, and each handler's check of `data`.
    pub registry: &'a Registry,
    /// The zone of crons that name none: `CRON_TZ`, else the system's.
    pub default_timezone: TimeZone,
    /// The `ENABLE_<ID>` switches (`Config::cron_switch`).
    pub config: &'a Config,
}

impl<'a> LoadContext<'a> {
    /// The context the daemon loads with; fails only on a bad `CRON_TZ`.
    pub fn new(
        config: &'a Config,
        registry: &'a Registry,
    ) -> Result<LoadContext<'a>, ScheduleError> {
        Ok(LoadContext {
            registry,
            default_timezone: default_timezone(config.cron_tz.as_deref())?,
            config,
        })
    }
}

/// The drop-in directory that goes with a crons file: `crons.d/` beside it.
pub fn dropin_dir(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("")).join("crons.d")
}

/// Reads the crons file at `path` (missing: no crons) and every `*.toml` in
/// `crons.d/` beside it, in name order, and validates them together.
/// Returns the crons in file order, then line order.
pub fn load(path: &Path, ctx: &LoadContext<'_>) -> Result<Vec<CronDef>, LoadErrors> {
    let mut faults = Vec::new();
    let mut files = Vec::new();
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        _ => files.push(path.to_path_buf()),
    }
    files.extend(dropin_files(&dropin_dir(path), &mut faults));

    let mut seen = document::SeenIds::new();
    let mut crons = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => crons.extend(document::parse(&file, &text, ctx, &mut seen, &mut faults)),
            Err(err) => faults.push(Fault::at(&file, None, "", format!("cannot read: {err}"))),
        }
    }
    if faults.is_empty() {
        Ok(crons)
    } else {
        Err(LoadErrors { faults })
    }
}

/// The `*.toml` files of a drop-in directory, sorted by name. Hidden files
/// are skipped, as editors and package managers leave them behind
/// (`.#nightly.toml`); a missing directory holds none.
fn dropin_files(dir: &Path, faults: &mut Vec<Fault>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => {
            faults.push(Fault::at(
                dir,
                None,
                "",
                format!("cannot read directory: {err}"),
            ));
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                faults.push(Fault::at(
                    dir,
                    None,
                    "",
                    format!("cannot read directory: {err}"),
                ));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, so a link to a file counts as the file.
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `cronq check [FILE]`: loads `file` (else the configured crons file) the
/// way the daemon would, with the built-in handlers as `config` sets them
/// up. A named file that does not exist is a fault here, unlike at start-up,
/// since naming one is a claim that it is there.
pub fn check(file: Option<&Path>, config: &Config) -> Result<Vec<CronDef>, LoadErrors> {
    let path = file.unwrap_or(&config.crons_path);
    if let Some(file) = file
        && let Err(err) = std::fs::metadata(file)
    {
        return Err(LoadErrors {
            faults: vec![Fault::at(file, None, "", format!("cannot read: {err}"))],
        });
    }
    let mut registry = Registry::new();
    for registration in crate::handlers::builtin(config, Containment::Offline) {
        registry.register(registration);
    }
    let ctx = LoadContext::new(config, &registry).map_err(|err| LoadErrors {
        faults: vec![Fault {
            file: None,
            line: None,
            key: "CRON_TZ".to_string(),
            message: err.to_string(),
        }],
    })?;
    load(path, &ctx)
}
