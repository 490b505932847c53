use std::path::PathBuf;

use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::*;
use crate::handlers::noop::Noop;
use crate::queue::handler::{Handler, JobContext, JobError, Registration};

/// A handler whose `validate` wants `data.target` to be a string.
struct Picky;

#[async_trait::async_trait]
impl Handler for Picky {
    fn job_type(&self) -> &str {
        "picky"
    }
    fn validate(&self, data: &Value) -> Result<(), String> {
        match data.get("target") {
            Some(Value::String(_)) => Ok(()),
            Some(_) => Err("target: expected a string".to_string()),
            None => Err("target: required".to_string()),
        }
    }
    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// Registered but switched off, like `email` without `SMTP_HOST`.
struct Mailer;

#[async_trait::async_trait]
impl Handler for Mailer {
    fn job_type(&self) -> &str {
        "mailer"
    }
    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

struct Fixture {
    dir: TempDir,
    config: Config,
    registry: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::for_dir(dir.path());
        let mut registry = Registry::new();
        registry.register(Registration::new(Noop));
        registry.register(Registration::new(Picky));
        registry.register(Registration::disabled(Mailer, "SMTP_HOST is not set"));
        Fixture {
            dir,
            config,
            registry,
        }
    }

    fn path(&self) -> PathBuf {
        self.config.crons_path.clone()
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self) -> Result<Vec<CronDef>, LoadErrors> {
        let ctx = LoadContext {
            registry: &self.registry,
            default_timezone: TimeZone::UTC,
            config: &self.config,
        };
        load(&self.path(), &ctx)
    }

    fn crons(&self) -> Vec<CronDef> {
        match self.load() {
            Ok(crons) => crons,
            Err(errors) => panic!("unexpected faults:\n{errors}"),
        }
    }

    /// The faults as displayed, with the temp dir shown as `DIR`.
    fn faults(&self) -> Vec<String> {
        let errors = self.load().expect_err("the file should not load");
        let dir = self.dir.path().display().to_string();
        errors
            .to_string()
            .lines()
            .map(|line| line.replace(&dir, "DIR"))
            .collect()
    }

    /// Writes `text` as the main file and returns its faults.
    fn faults_of(&self, text: &str) -> Vec<String> {
        self.write("crons.toml", text);
        self.faults()
    }
}

const GOOD: &str = r#"
# Two crons and a third switched off.
[cron.nightly_report]
schedule = "0 2 * * *"
timezone = "Europe/Berlin"
description = "Nightly report"
type = "picky"
data = { target = "ops", tags = ["a", "b"], size = 3, ratio = 0.5, deep = { on = true } }
retry_count = 5
timeout = 60
overlap = "allow"
catch_up = "once"

[cron.heartbeat]
schedule = "@hourly"
type = "noop"

[cron.weekly_off]
schedule = "30 9 * * MON-FRI"
type = "noop"
enabled = false
"#;

#[test]
fn a_good_file_loads_every_cron_with_its_settings() {
    let f = Fixture::new();
    f.write("crons.toml", GOOD);
    let crons = f.crons();
    let ids: Vec<&str> = crons.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["nightly_report", "heartbeat", "weekly_off"]);

    let nightly = &crons[0];
    assert_eq!(nightly.schedule_text, "0 2 * * *");
    assert_eq!(nightly.schedule, Schedule::parse("0 2 * * *").unwrap());
    assert_eq!(nightly.timezone_name, "Europe/Berlin");
    assert_eq!(nightly.description, "Nightly report");
    assert_eq!(nightly.job_type, "picky");
    assert_eq!(
        Value::Object(nightly.data.clone()),
        json!({"target": "ops", "tags": ["a", "b"], "size": 3, "ratio": 0.5, "deep": {"on": true}})
    );
    assert_eq!(nightly.retry_count, Some(5));
    assert_eq!(nightly.timeout_s, Some(60));
    assert_eq!(nightly.overlap, Overlap::Allow);
    assert_eq!(nightly.catch_up, CatchUp::Once);
    assert!(nightly.enabled);
    assert_eq!(nightly.source_file, f.path());
    assert_eq!(nightly.line, 3);

    let heartbeat = &crons[1];
    assert_eq!(heartbeat.timezone, TimeZone::UTC);
    assert_eq!(heartbeat.timezone_name, "UTC");
    assert_eq!(heartbeat.description, "");
    assert!(heartbeat.data.is_empty());
    assert_eq!(heartbeat.retry_count, None);
    assert_eq!(heartbeat.timeout_s, None);
    assert_eq!(heartbeat.overlap, Overlap::Skip);
    assert_eq!(heartbeat.catch_up, CatchUp::None);
    assert_eq!(heartbeat.line, 14);

    assert!(!crons[2].enabled);
}

#[test]
fn a_missing_file_means_no_crons() {
    let f = Fixture::new();
    assert_eq!(f.crons(), Vec::new());
}

#[test]
fn dotted_keys_and_subtables_are_the_same_cron() {
    let f = Fixture::new();
    f.write(
        "crons.toml",
        r#"
cron.a.schedule = "* * * * *"
cron.a.type = "picky"

[cron.b]
schedule = "* * * * *"
type = "picky"
[cron.b.data]
target = "x"
[cron.a.data]
target = "y"
"#,
    );
    let crons = f.crons();
    assert_eq!(crons.len(), 2);
    assert_eq!(crons[0].id, "a");
    assert_eq!(crons[0].line, 2);
    assert_eq!(crons[0].data.get("target"), Some(&json!("y")));
    assert_eq!(crons[1].data.get("target"), Some(&json!("x")));
}

#[test]
fn crons_d_files_are_merged_in_name_order() {
    let f = Fixture::new();
    f.write(
        "crons.toml",
        "[cron.main]\nschedule = \"@daily\"\ntype = \"noop\"\n",
    );
    f.write(
        "crons.d/20-b.toml",
        "[cron.b]\nschedule = \"@daily\"\ntype = \"noop\"\n",
    );
    f.write(
        "crons.d/10-a.toml",
        "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\n",
    );
    f.write("crons.d/.#10-a.toml", "not toml at all [");
    f.write("crons.d/notes.txt", "not toml at all [");
    let crons = f.crons();
    let ids: Vec<&str> = crons.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["main", "a", "b"]);
    assert_eq!(crons[1].source_file, f.dir.path().join("crons.d/10-a.toml"));
}

#[test]
fn crons_d_loads_without_a_main_file() {
    let f = Fixture::new();
    f.write(
        "crons.d/a.toml",
        "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\n",
    );
    assert_eq!(f.crons().len(), 1);
}

#[test]
fn enable_variable_false_disables_a_cron() {
    let mut f = Fixture::new();
    f.config
        .enable_vars
        .insert("ENABLE_HEARTBEAT".to_string(), "false".to_string());
    f.config
        .enable_vars
        .insert("ENABLE_WEEKLY_OFF".to_string(), "true".to_string());
    f.write("crons.toml", GOOD);
    let crons = f.crons();
    let enabled: Vec<(&str, bool)> = crons.iter().map(|c| (c.id.as_str(), c.enabled)).collect();
    // `true` does not override the file's `enabled = false`: both must allow.
    assert_eq!(
        enabled,
        [
            ("nightly_report", true),
            ("heartbeat", false),
            ("weekly_off", false)
        ]
    );
}

#[test]
fn a_bad_enable_variable_is_a_fault() {
    let mut f = Fixture::new();
    f.config
        .enable_vars
        .insert("ENABLE_HEARTBEAT".to_string(), "maybe".to_string());
    assert_eq!(
        f.faults_of("[cron.heartbeat]\nschedule = \"@hourly\"\ntype = \"noop\"\n"),
        [
            "DIR/crons.toml:1: cron.heartbeat: ENABLE_HEARTBEAT=\"maybe\" is invalid: expected true or false"
        ]
    );
}

#[test]
fn unknown_keys_are_faults_at_their_line() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of(
            "title = \"x\"\n[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\nretries = 3\n"
        ),
        [
            "DIR/crons.toml:1: title: unknown key; a crons file holds only [cron.ID] tables",
            "DIR/crons.toml:5: cron.a.retries: unknown key; expected one of schedule, timezone, \
             description, type, data, retry_count, timeout, overlap, catch_up, enabled",
        ]
    );
}

#[test]
fn a_bad_schedule_names_the_field() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("\n[cron.a]\nschedule = \"0 2 32 * *\"\ntype = \"noop\"\n"),
        ["DIR/crons.toml:3: cron.a.schedule: day-of-month field \"32\" is out of range 1-31"]
    );
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"0 2 * *\"\ntype = \"noop\"\n"),
        [
            "DIR/crons.toml:2: cron.a.schedule: expected 5 fields (minute hour day-of-month \
             month day-of-week) or a macro such as @daily, got 4"
        ]
    );
}

#[test]
fn a_never_firing_schedule_is_refused() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"0 0 31 2 *\"\ntype = \"noop\"\n"),
        ["DIR/crons.toml:2: cron.a.schedule: the schedule \"0 0 31 2 *\" never fires"]
    );
}

#[test]
fn missing_schedule_and_type_are_faults_at_the_header() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("\n\n[cron.a]\ndescription = \"nothing else\"\n"),
        [
            "DIR/crons.toml:3: cron.a.schedule: missing; every cron needs a schedule such as \"0 2 * * *\"",
            "DIR/crons.toml:3: cron.a.type: missing; every cron needs the job type it enqueues, e.g. \"email\"",
        ]
    );
}

#[test]
fn an_unknown_job_type_is_refused() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"@daily\"\ntype = \"emial\"\n"),
        [
            "DIR/crons.toml:3: cron.a.type: unknown job type \"emial\"; registered types: mailer, noop, picky"
        ]
    );
}

#[test]
fn a_disabled_handler_is_refused_with_its_reason() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"@daily\"\ntype = \"mailer\"\n"),
        [
            "DIR/crons.toml:3: cron.a.type: the handler for job type \"mailer\" is disabled: SMTP_HOST is not set"
        ]
    );
}

#[test]
fn data_is_checked_by_the_handler() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"@daily\"\ntype = \"picky\"\ndata = { target = 7 }\n"),
        ["DIR/crons.toml:4: cron.a.data: target: expected a string"]
    );
    // No data at all is an empty object, which the handler sees too.
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"@daily\"\ntype = \"picky\"\n"),
        ["DIR/crons.toml:1: cron.a.data: target: required"]
    );
}

#[test]
fn data_that_json_cannot_hold_is_a_fault() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\ndata = { x = [1, nan] }\n"),
        ["DIR/crons.toml:4: cron.a.data.x.1: nan cannot be carried in JSON job data"]
    );
}

#[test]
fn a_bad_time_zone_is_refused() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of(
            "[cron.a]\nschedule = \"@daily\"\ntimezone = \"Europe/Berln\"\ntype = \"noop\"\n"
        ),
        [
            "DIR/crons.toml:3: cron.a.timezone: unknown time zone \"Europe/Berln\": not in the system time zone database"
        ]
    );
}

#[test]
fn duplicate_ids_across_files_are_refused() {
    let f = Fixture::new();
    f.write(
        "crons.toml",
        "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\n",
    );
    f.write(
        "crons.d/x.toml",
        "# again\n[cron.a]\nschedule = \"@hourly\"\ntype = \"noop\"\n",
    );
    assert_eq!(
        f.faults(),
        ["DIR/crons.d/x.toml:2: cron.a: duplicate id \"a\": already defined at DIR/crons.toml:1"]
    );
}

#[test]
fn duplicate_ids_in_one_file_are_refused() {
    let f = Fixture::new();
    let faults = f.faults_of(
        "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\n[cron.a]\nschedule = \"@daily\"\n",
    );
    assert_eq!(
        faults,
        [
            "DIR/crons.toml:4: invalid TOML: the table [cron.a] appears twice",
            "DIR/crons.toml:5: invalid TOML: duplicate key \"schedule\"",
        ]
    );
}

#[test]
fn ids_must_be_lowercase_letters_digits_and_underscores() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of(
            "[cron.Nightly-Report]\nschedule = \"@daily\"\ntype = \"noop\"\n\
             [cron.\"with space\"]\nschedule = \"@daily\"\ntype = \"noop\"\n"
        ),
        [
            "DIR/crons.toml:1: cron.Nightly-Report: invalid id \"Nightly-Report\": use lowercase \
             letters, digits and underscores ([a-z0-9_]+)",
            "DIR/crons.toml:4: cron.\"with space\": invalid id \"with space\": use lowercase \
             letters, digits and underscores ([a-z0-9_]+)",
        ]
    );
}

#[test]
fn built_in_ids_are_reserved() {
    let f = Fixture::new();
    for id in ["system_queue", "clear_exports", "clean_exported_files"] {
        assert_eq!(
            f.faults_of(&format!(
                "[cron.{id}]\nschedule = \"@daily\"\ntype = \"noop\"\n"
            )),
            [format!(
                "DIR/crons.toml:1: cron.{id}: the id \"{id}\" is reserved for a built-in cron"
            )]
        );
    }
}

#[test]
fn retry_count_and_timeout_are_range_checked() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of(
            "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\nretry_count = 101\ntimeout = 0\n"
        ),
        [
            "DIR/crons.toml:4: cron.a.retry_count: 101 is out of range 0..=100",
            "DIR/crons.toml:5: cron.a.timeout: 0 is out of range 1..=86400",
        ]
    );
    assert_eq!(
        f.faults_of(
            "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\nretry_count = -1\ntimeout = 86401\n"
        ),
        [
            "DIR/crons.toml:4: cron.a.retry_count: -1 is out of range 0..=100",
            "DIR/crons.toml:5: cron.a.timeout: 86401 is out of range 1..=86400",
        ]
    );
    let f = Fixture::new();
    f.write(
        "crons.toml",
        "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\nretry_count = 0\ntimeout = 86400\n",
    );
    let crons = f.crons();
    assert_eq!(
        (crons[0].retry_count, crons[0].timeout_s),
        (Some(0), Some(86400))
    );
}

#[test]
fn wrong_value_types_are_faults() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of(
            "[cron.a]\nschedule = 5\ntimezone = true\ndescription = []\ntype = \"noop\"\n\
             data = \"x\"\nretry_count = \"3\"\ntimeout = 1.5\noverlap = \"never\"\n\
             catch_up = 1\nenabled = \"yes\"\n"
        ),
        [
            "DIR/crons.toml:2: cron.a.schedule: expected a string, got an integer",
            "DIR/crons.toml:3: cron.a.timezone: expected a string, got a boolean",
            "DIR/crons.toml:4: cron.a.description: expected a string, got an array",
            "DIR/crons.toml:6: cron.a.data: expected a table, got a string",
            "DIR/crons.toml:7: cron.a.retry_count: expected an integer, got a string",
            "DIR/crons.toml:8: cron.a.timeout: expected an integer, got a float",
            "DIR/crons.toml:9: cron.a.overlap: \"never\" is not one of \"skip\", \"allow\"",
            "DIR/crons.toml:10: cron.a.catch_up: expected a string, got an integer",
            "DIR/crons.toml:11: cron.a.enabled: expected true or false, got a string",
        ]
    );
}

#[test]
fn cron_must_be_a_table_of_tables() {
    let f = Fixture::new();
    assert_eq!(
        f.faults_of("cron = 1\n"),
        ["DIR/crons.toml:1: cron: expected a table of crons ([cron.ID]), got an integer"]
    );
    assert_eq!(
        f.faults_of("[cron]\na = \"@daily\"\n"),
        ["DIR/crons.toml:2: cron.a: expected a table ([cron.a]), got a string"]
    );
}

#[test]
fn bad_toml_syntax_names_its_line() {
    let f = Fixture::new();
    let faults = f.faults_of("[cron.a]\nschedule = \"@daily\"\ntype = noop\n");
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert!(
        faults[0].starts_with("DIR/crons.toml:3: invalid TOML: "),
        "{faults:?}"
    );
}

#[test]
fn every_fault_in_every_file_is_reported_in_order() {
    let f = Fixture::new();
    f.write(
        "crons.toml",
        "[cron.b]\nschedule = \"@daily\"\ntype = \"nope\"\n\n[cron.a]\nschedule = \"61 * * * *\"\ntype = \"noop\"\n",
    );
    f.write(
        "crons.d/x.toml",
        "[cron.c]\nschedule = \"@daily\"\ntype = \"noop\"\nextra = 1\n",
    );
    let faults = f.faults();
    assert_eq!(faults.len(), 3, "{faults:?}");
    assert!(faults[0].starts_with("DIR/crons.toml:3: cron.b.type:"));
    assert!(faults[1].starts_with("DIR/crons.toml:6: cron.a.schedule: minute field \"61\""));
    assert!(faults[2].starts_with("DIR/crons.d/x.toml:4: cron.c.extra: unknown key"));
}

#[test]
fn equality_ignores_where_a_cron_is_written() {
    let f = Fixture::new();
    f.write("crons.toml", GOOD);
    let before = f.crons();
    f.write("crons.toml", &format!("\n\n# moved\n{GOOD}"));
    let after = f.crons();
    assert_ne!(before[0].line, after[0].line);
    assert_eq!(before, after);
    f.write(
        "crons.toml",
        &GOOD.replace("\"0 2 * * *\"", "\"0 3 * * *\""),
    );
    assert_ne!(before[0], f.crons()[0]);
}

#[test]
fn check_loads_with_the_builtin_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(dir.path());
    config.cron_tz = Some("UTC".to_string());
    let file = dir.path().join("other.toml");
    std::fs::write(&file, "[cron.a]\nschedule = \"@daily\"\ntype = \"noop\"\n").unwrap();
    let crons = check(Some(&file), &config).unwrap();
    assert_eq!(crons[0].id, "a");
    // The configured file is missing: no crons, as at start-up.
    assert_eq!(check(None, &config).unwrap(), Vec::new());
    // A named file that is missing is a fault.
    let missing = dir.path().join("missing.toml");
    let errors = check(Some(&missing), &config).unwrap_err();
    assert!(
        errors.to_string().contains("missing.toml: cannot read:"),
        "{errors}"
    );
}

#[test]
fn check_reports_a_bad_cron_tz() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(dir.path());
    config.cron_tz = Some("Mars/Olympus".to_string());
    let errors = check(None, &config).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "CRON_TZ: unknown time zone \"Mars/Olympus\": not in the system time zone database"
    );
}

/// The packaged file ships with every example commented out (`#key`, no
/// space; prose comments are `# text`): as shipped it must load to no crons,
/// and with the examples uncommented, to all of them.
#[test]
fn the_packaged_sample_file_loads_as_shipped_and_uncommented() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/crons.toml");
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(dir.path());
    config.cron_tz = Some("UTC".to_string());
    match check(Some(&sample), &config) {
        Ok(crons) => assert_eq!(crons, Vec::new()),
        Err(errors) => panic!("packaging/crons.toml as shipped:\n{errors}"),
    }

    let text = std::fs::read_to_string(&sample).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let file = dir.path().join("crons.toml");
    std::fs::write(&file, uncommented).unwrap();
    let config = config_with_every_handler(dir.path());
    let crons = match check(Some(&file), &config) {
        Ok(crons) => crons,
        Err(errors) => panic!("packaging/crons.toml uncommented:\n{errors}"),
    };
    let ids: Vec<&str> = crons.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["nightly_report", "orders_export", "month_end", "heartbeat"]
    );
    assert_eq!(crons[1].data.get("operation"), Some(&json!("export")));
    assert!(!crons[3].enabled);
}

/// The example in man/cronq.toml.5 is the one operators copy; keep it valid.
#[test]
fn the_man_page_example_loads() {
    let page =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man/cronq.toml.5"))
            .unwrap();
    let examples = &page[page.find(".Sh EXAMPLES").unwrap()..];
    let start = examples.find(".Bd -literal").unwrap();
    let body = &examples[start..];
    let body = &body[body.find('\n').unwrap() + 1..body.find("\n.Ed").unwrap()];
    let text = body.replace("\\&", "");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crons.toml");
    std::fs::write(&file, text).unwrap();
    let config = config_with_every_handler(dir.path());
    let crons = match check(Some(&file), &config) {
        Ok(crons) => crons,
        Err(errors) => panic!("the man page example:\n{errors}"),
    };
    assert_eq!(crons.len(), 3);
}

/// A configuration under which `email` and `command` (for the examples'
/// program) are enabled too, as on a machine set up for them: with the
/// `report` template the examples mail (its placeholders are theirs).
fn config_with_every_handler(dir: &std::path::Path) -> Config {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("report.txt"), "The nightly report.\n").unwrap();
    let vars = [
        ("SMTP_HOST", "localhost"),
        ("MAIL_FROM", "cronq@example.com"),
        ("JOB_COMMAND_ALLOW", "/usr/local/bin/month-end"),
        ("CRON_TZ", "UTC"),
    ];
    let vars = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut config = Config::from_vars(&vars).unwrap();
    config.data_dir = dir.join("data");
    config.smtp.templates_dir = templates;
    config
}
