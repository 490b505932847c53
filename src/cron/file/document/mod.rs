//! One crons file's text to cron definitions, with a fault for everything
//! wrong in it.
//!
//! The choice a reader would question: the file is walked as toml's spanned
//! document tree (`DeTable`) rather than deserialized with serde into a
//! struct. serde stops at the first error and loses positions once inside
//! `data`; walking the tree keeps every key's span, so each fault names its
//! line, and the walk goes on after a fault so that all are reported at once.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

mod values;

use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::fault::Fault;
use super::{CatchUp, CronDef, DisabledBy, LoadContext, Overlap};
use crate::cron::schedule::{Schedule, parse_timezone, timezone_name};
use crate::queue::handler::LookupError;
use values::article;

/// The keys a `[cron.ID]` table may hold, in the order the docs list them.
const CRON_KEYS: [&str; 10] = [
    "schedule",
    "timezone",
    "description",
    "type",
    "data",
    "retry_count",
    "timeout",
    "overlap",
    "catch_up",
    "enabled",
];

/// Ids the daemon's own crons use. `clean_exported_files` is the replaced
/// system's name for `clear_exports`; a file cron under either name would
/// be confused with the built-in one in `crons` listings and `ENABLE_*`.
const RESERVED_IDS: [&str; 3] = ["system_queue", "clear_exports", "clean_exported_files"];

const RETRY_RANGE: (i64, i64) = (0, 100);
const TIMEOUT_RANGE: (i64, i64) = (1, 86_400);

/// Where each id was first defined, across all files of one load.
pub(super) type SeenIds = HashMap<String, (PathBuf, usize)>;

/// Parses and validates one file. Faults are appended to `faults`; the crons
/// returned are only those without a fault of their own.
pub(super) fn parse(
    path: &Path,
    text: &str,
    ctx: &LoadContext<'_>,
    seen: &mut SeenIds,
    faults: &mut Vec<Fault>,
) -> Vec<CronDef> {
    let mut doc = Document {
        path,
        text,
        ctx,
        faults: Vec::new(),
    };
    let crons = doc.walk(seen);
    doc.faults.sort_by_key(|f| f.line);
    faults.append(&mut doc.faults);
    crons
}

struct Document<'a> {
    path: &'a Path,
    text: &'a str,
    ctx: &'a LoadContext<'a>,
    faults: Vec<Fault>,
}

impl Document<'_> {
    fn walk(&mut self, seen: &mut SeenIds) -> Vec<CronDef> {
        let (root, errors) = DeTable::parse_recoverable(self.text);
        if !errors.is_empty() {
            // What the parser recovered may be missing whole tables; faults
            // found in it would mislead more than help.
            for error in errors {
                let line = error.span().map(|s| self.line(s));
                let message = self.syntax_message(&error);
                self.fault(line, "", message);
            }
            return Vec::new();
        }

        let mut crons = Vec::new();
        for (key, value) in root.get_ref() {
            if key.get_ref() != "cron" {
                let line = self.line(key.span());
                self.fault(
                    Some(line),
                    display_key(&[key.get_ref()]),
                    "unknown key; a crons file holds only [cron.ID] tables",
                );
                continue;
            }
            let DeValue::Table(table) = value.get_ref() else {
                let line = self.line(value.span());
                self.fault(
                    Some(line),
                    "cron",
                    format!(
                        "expected a table of crons ([cron.ID]), got {}",
                        article(value.get_ref())
                    ),
                );
                continue;
            };
            for (id, body) in table {
                if let Some(cron) = self.cron(id, body, seen) {
                    crons.push(cron);
                }
            }
        }
        crons.sort_by_key(|c| c.line);
        crons
    }

    /// One `[cron.ID]` table.
    fn cron(
        &mut self,
        id_key: &Spanned<DeString<'_>>,
        body: &Spanned<DeValue<'_>>,
        seen: &mut SeenIds,
    ) -> Option<CronDef> {
        let id: &str = id_key.get_ref();
        let id_line = self.line(id_key.span());
        let key = display_key(&["cron", id]);
        let faults_before = self.faults.len();

        self.check_id(id, id_line, &key, seen);

        let DeValue::Table(table) = body.get_ref() else {
            let line = self.line(body.span());
            self.fault(
                Some(line),
                key,
                format!(
                    "expected a table ([cron.{id}]), got {}",
                    article(body.get_ref())
                ),
            );
            return None;
        };

        let mut fields: HashMap<&str, &Spanned<DeValue<'_>>> = HashMap::new();
        for (name, value) in table {
            let name: &str = name.get_ref();
            match CRON_KEYS.iter().find(|k| **k == name) {
                Some(known) => {
                    fields.insert(known, value);
                }
                None => {
                    let line = self.line(name_span(table, name));
                    self.fault(
                        Some(line),
                        display_key(&["cron", id, name]),
                        format!("unknown key; expected one of {}", CRON_KEYS.join(", ")),
                    );
                }
            }
        }
        let field = |name: &str| fields.get(name).copied();
        let sub = |name: &str| display_key(&["cron", id, name]);

        if field("schedule").is_none() {
            self.missing(
                id_line,
                &sub("schedule"),
                "a schedule such as \"0 2 * * *\"",
            );
        }
        let schedule = match self.string(field("schedule"), &sub("schedule")) {
            None => None,
            Some((text, line)) => match Schedule::parse(text) {
                Ok(schedule) => Some(schedule),
                Err(err) => {
                    self.fault(Some(line), sub("schedule"), err.to_string());
                    None
                }
            },
        };

        let timezone = match self.string(field("timezone"), &sub("timezone")) {
            None => Some(self.ctx.default_timezone.clone()),
            Some((name, line)) => match parse_timezone(name) {
                Ok(tz) => Some(tz),
                Err(err) => {
                    self.fault(Some(line), sub("timezone"), err.to_string());
                    None
                }
            },
        };

        let description = self
            .string(field("description"), &sub("description"))
            .map(|(text, _)| text.to_string())
            .unwrap_or_default();

        let data = match field("data") {
            None => Some(Map::new()),
            Some(value) => match value.get_ref() {
                DeValue::Table(table) => self.json_object(table, &["cron", id, "data"]),
                other => {
                    let line = self.line(value.span());
                    self.fault(
                        Some(line),
                        sub("data"),
                        format!("expected a table, got {}", article(other)),
                    );
                    None
                }
            },
        };

        if field("type").is_none() {
            self.missing(
                id_line,
                &sub("type"),
                "the job type it enqueues, e.g. \"email\"",
            );
        }
        let job_type = match self.string(field("type"), &sub("type")) {
            None => None,
            Some((job_type, line)) => {
                self.check_job_type(job_type, line, &sub("type"));
                if let Some(data) = &data {
                    let data_line = field("data").map_or(id_line, |v| self.line(v.span()));
                    self.validate_data(job_type, data, data_line, &sub("data"));
                }
                Some(job_type.to_string())
            }
        };

        let retry_count = self.integer(field("retry_count"), &sub("retry_count"), RETRY_RANGE);
        let timeout_s = self.integer(field("timeout"), &sub("timeout"), TIMEOUT_RANGE);

        let overlap = self.choice(
            field("overlap"),
            &sub("overlap"),
            &[("skip", Overlap::Skip), ("allow", Overlap::Allow)],
        );
        let catch_up = self.choice(
            field("catch_up"),
            &sub("catch_up"),
            &[("none", CatchUp::None), ("once", CatchUp::Once)],
        );

        let file_enabled = match field("enabled") {
            None => true,
            Some(value) => match value.get_ref() {
                DeValue::Boolean(b) => *b,
                other => {
                    let line = self.line(value.span());
                    self.fault(
                        Some(line),
                        sub("enabled"),
                        format!("expected true or false, got {}", article(other)),
                    );
                    true
                }
            },
        };
        let switch = match self.ctx.config.cron_switch(id) {
            Ok(switch) => switch,
            Err(err) => {
                self.fault(Some(id_line), key.clone(), err.to_string());
                None
            }
        };

        if self.faults.len() > faults_before {
            return None;
        }
        let (Some(schedule), Some(timezone), Some(data), Some(job_type)) =
            (schedule, timezone, data, job_type)
        else {
            return None;
        };
        Some(CronDef {
            id: id.to_string(),
            schedule_text: schedule.expr().to_string(),
            schedule,
            timezone_name: timezone_name(&timezone),
            timezone,
            description,
            job_type,
            data,
            retry_count: retry_count.flatten().map(|n| n as u32),
            timeout_s: timeout_s.flatten().map(|n| n as u32),
            overlap: overlap.flatten().unwrap_or_default(),
            catch_up: catch_up.flatten().unwrap_or_default(),
            enabled: file_enabled && switch.unwrap_or(true),
            disabled_by: if !file_enabled {
                Some(DisabledBy::File)
            } else if switch == Some(false) {
                Some(DisabledBy::Environment)
            } else {
                None
            },
            source_file: self.path.to_path_buf(),
            line: id_line,
        })
    }

    fn check_id(&mut self, id: &str, line: usize, key: &str, seen: &mut SeenIds) {
        if !is_valid_id(id) {
            self.fault(
                Some(line),
                key,
                format!(
                    "invalid id {id:?}: use lowercase letters, digits and underscores ([a-z0-9_]+)"
                ),
            );
        }
        if RESERVED_IDS.contains(&id) {
            self.fault(
                Some(line),
                key,
                format!("the id {id:?} is reserved for a built-in cron"),
            );
        }
        match seen.get(id) {
            Some((file, first)) => {
                let message = format!(
                    "duplicate id {id:?}: already defined at {}:{first}",
                    file.display()
                );
                self.fault(Some(line), key, message);
            }
            None => {
                seen.insert(id.to_string(), (self.path.to_path_buf(), line));
            }
        }
    }

    fn check_job_type(&mut self, job_type: &str, line: usize, key: &str) {
        match self.ctx.registry.enabled(job_type) {
            Ok(_) => {}
            Err(LookupError::Unknown(_)) => {
                let known: Vec<&str> = self.ctx.registry.iter().map(|r| r.job_type()).collect();
                self.fault(
                    Some(line),
                    key,
                    format!(
                        "unknown job type {job_type:?}; registered types: {}",
                        known.join(", ")
                    ),
                );
            }
            Err(err @ LookupError::Disabled { .. }) => {
                self.fault(Some(line), key, err.to_string());
            }
        }
    }

    /// The handler's own check of `data`, the one an enqueue gets, so a cron
    /// cannot enqueue a job that would be refused at every fire.
    fn validate_data(&mut self, job_type: &str, data: &Map<String, Value>, line: usize, key: &str) {
        let Some(registration) = self.ctx.registry.get(job_type) else {
            return;
        };
        if let Err(err) = registration.handler.validate(&Value::Object(data.clone())) {
            self.fault(Some(line), key, err);
        }
    }

    fn missing(&mut self, line: usize, key: &str, what: &str) {
        self.fault(Some(line), key, format!("missing; every cron needs {what}"));
    }

    fn syntax_message(&self, error: &toml::de::Error) -> String {
        let message = error.message();
        // The parser says only "duplicate key"; a second `[cron.ID]` in one
        // file is the usual cause, so name the table or the key.
        if message == "duplicate key"
            && let Some(span) = error.span()
        {
            let before = self.text.get(..span.start).unwrap_or("");
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_text = self.text.get(start..).unwrap_or("");
            let line_text = line_text.lines().next().unwrap_or("").trim();
            if line_text.starts_with('[') {
                return format!("invalid TOML: the table {line_text} appears twice");
            }
            if let Some(key) = self.text.get(span) {
                return format!("invalid TOML: duplicate key {key:?}");
            }
        }
        format!("invalid TOML: {message}")
    }

    fn fault(&mut self, line: Option<usize>, key: impl Into<String>, message: impl Into<String>) {
        self.faults.push(Fault::at(self.path, line, key, message));
    }

    /// The 1-based line where a span starts.
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}

/// A key's own span (the table map is keyed by spanned strings, and lookup
/// by `&str` returns only the value).
fn name_span(table: &DeTable<'_>, name: &str) -> Range<usize> {
    table
        .get_key_value(name)
        .map(|(k, _)| k.span())
        .unwrap_or(0..0)
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `cron.nightly.schedule`, quoting parts that are not bare TOML keys so that
/// the key can be found in the file as written.
fn display_key(parts: &[&str]) -> String {
    let bare = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    parts
        .iter()
        .map(|p| {
            if bare(p) {
                (*p).to_string()
            } else {
                format!("{p:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}
