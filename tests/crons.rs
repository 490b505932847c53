//! Crons end to end: the real binary reading `./crons.toml` in its working
//! directory, controlled over its real socket.
//!
//! Two daemons on one database firing each minute once is proved by the
//! scheduler's unit test with a hand-moved clock
//! (`two_schedulers_on_one_database_fire_each_minute_once`); here it would
//! cost a real minute of waiting per run of the suite, so it is not repeated.

#[macro_use]
#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::time::Duration;

use daemon::{Backend, Daemon};
use serde_json::{Value, json};

const FILE: &str = r#"[cron.every_five]
schedule = "*/5 * * * *"
timezone = "UTC"
description = "Every five minutes"
type = "noop"

[cron.monday_berlin]
schedule = "0 9 * * 1"
timezone = "Europe/Berlin"
type = "noop"

[cron.nightly]
schedule = "@daily"
type = "noop"
retry_count = 0
"#;

/// A temp dir holding `crons.toml`, and a daemon started on it on `b`.
fn start(b: &Backend, crons: &str, env: &[(&str, &str)]) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_crons(dir.path(), crons);
    let daemon = b.on_dir(dir.path(), env);
    (dir, daemon)
}

fn write_crons(dir: &Path, text: &str) {
    std::fs::write(dir.join("crons.toml"), text).expect("write crons.toml");
}

fn crons(d: &Daemon) -> Vec<Value> {
    d.ok(json!({"cmd": "crons"}))["crons"]
        .as_array()
        .expect("a list of crons")
        .clone()
}

fn cron<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["id"] == id)
}

fn ids(d: &Daemon) -> Vec<String> {
    crons(d)
        .iter()
        .filter(|c| c["source"] == "file")
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn next(d: &Daemon, schedule: &str, timezone: &str) -> Value {
    d.ok(json!({"cmd": "next", "schedule": schedule, "timezone": timezone, "count": 1}))["next"][0]
        .clone()
}

/// Waits until the newest run of `id` has ended, and returns it.
fn ended_run(d: &Daemon, id: &str) -> Value {
    d.until(
        Duration::from_secs(20),
        &format!("{id}'s run to end"),
        |d| {
            let answer = d.ok(json!({"cmd": "cron", "id": id}));
            let run = answer["runs"][0].clone();
            (run.is_object() && run["status"] != "running").then_some(run)
        },
    )
}

fn a_crons_file_loads_and_crons_lists_each_next_run(b: Backend) {
    let (_dir, d) = start(&b, FILE, &[]);
    let before: Vec<Value> = [
        ("*/5 * * * *", "UTC"),
        ("0 9 * * 1", "Europe/Berlin"),
        ("@daily", "UTC"),
    ]
    .iter()
    .map(|(s, z)| next(&d, s, z))
    .collect();
    let list = crons(&d);
    let after: Vec<Value> = [
        ("*/5 * * * *", "UTC"),
        ("0 9 * * 1", "Europe/Berlin"),
        ("@daily", "UTC"),
    ]
    .iter()
    .map(|(s, z)| next(&d, s, z))
    .collect();

    assert!(cron(&list, "system_queue").is_some(), "{list:?}");
    for (i, id) in ["every_five", "monday_berlin", "nightly"]
        .iter()
        .enumerate()
    {
        let c = cron(&list, id).unwrap_or_else(|| panic!("{id} missing from {list:?}"));
        assert_eq!(c["source"], "file");
        assert_eq!(c["enabled"], true);
        assert_eq!(c["job"]["type"], "noop");
        // A fire time may pass between the two `next` calls.
        assert!(
            c["next_run"] == before[i] || c["next_run"] == after[i],
            "{id}: {} is neither {} nor {}",
            c["next_run"],
            before[i],
            after[i]
        );
    }
    let monday = cron(&list, "monday_berlin").unwrap();
    assert_eq!(monday["timezone"], "Europe/Berlin");
    assert_eq!(
        cron(&list, "every_five").unwrap()["description"],
        "Every five minutes"
    );
    // CRON_TZ=UTC (the test daemon's) is the default zone.
    assert_eq!(cron(&list, "nightly").unwrap()["timezone"], "UTC");
}

fn trigger_of_a_file_cron_runs_its_job_and_the_run_is_ok(b: Backend) {
    let (_dir, d) = start(&b, FILE, &[]);
    let answer = d.ok(json!({"cmd": "trigger", "id": "nightly"}));
    let run = &answer["run"];
    assert_eq!(run["trigger"], "manual", "{answer}");
    assert!(run["job_id"].is_string(), "{answer}");

    let run = ended_run(&d, "nightly");
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["error"], Value::Null);
    assert!(run["finished"].is_string());
    let listed = crons(&d);
    assert_eq!(
        cron(&listed, "nightly").unwrap()["last_run"]["status"],
        "ok"
    );
}

fn a_failing_job_makes_the_run_failed(b: Backend) {
    let file = r#"[cron.fails]
schedule = "0 0 1 1 *"
type = "command"
data = { argv = ["/bin/false"] }
retry_count = 0
"#;
    let (_dir, d) = start(&b, file, &[("JOB_COMMAND_ALLOW", "/bin/false")]);
    d.ok(json!({"cmd": "trigger", "id": "fails"}));
    let run = ended_run(&d, "fails");
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{run}"
    );
}

fn disable_survives_a_restart(b: Backend) {
    let (_dir, mut d) = start(&b, FILE, &[]);
    let answer = d.ok(json!({"cmd": "disable", "id": "nightly"}));
    assert_eq!(answer["cron"]["enabled"], false, "{answer}");
    d.stop();
    d.spawn();

    let list = crons(&d);
    let nightly = cron(&list, "nightly").unwrap();
    assert_eq!(nightly["enabled"], false, "{nightly}");
    assert_eq!(nightly["next_run"], Value::Null);
    assert_eq!(cron(&list, "every_five").unwrap()["enabled"], true);

    d.ok(json!({"cmd": "enable", "id": "nightly"}));
    d.stop();
    d.spawn();
    assert_eq!(cron(&crons(&d), "nightly").unwrap()["enabled"], true);
}

fn reload_with_a_broken_file_names_file_and_line_and_keeps_the_table(b: Backend) {
    let (dir, d) = start(&b, FILE, &[]);
    let before = crons(&d);
    write_crons(
        dir.path(),
        "[cron.every_five]\nschedule = \"*/5 * * * *\"\ntype = \"noop\"\n\n[cron.broken]\nschedule = \"61 * * * *\"\ntype = \"noop\"\n",
    );
    let answer = d.request(json!({"cmd": "reload"}));
    assert_eq!(answer["ok"], false, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("crons.toml:6"), "{message}");
    assert!(message.contains("broken"), "{message}");
    let after = crons(&d);
    let strip = |list: &[Value]| -> Vec<(Value, Value, Value)> {
        list.iter()
            .map(|c| {
                (
                    c["id"].clone(),
                    c["schedule"].clone(),
                    c["next_run"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));

    write_crons(
        dir.path(),
        "[cron.every_five]\nschedule = \"*/5 * * * *\"\ntimezone = \"UTC\"\ndescription = \"Every five minutes\"\ntype = \"noop\"\n\n[cron.hourly]\nschedule = \"@hourly\"\ntype = \"noop\"\n",
    );
    let answer = d.ok(json!({"cmd": "reload"}));
    assert_eq!(answer["added"], json!(["hourly"]), "{answer}");
    assert_eq!(
        answer["removed"],
        json!(["monday_berlin", "nightly"]),
        "{answer}"
    );
    assert_eq!(answer["changed"], json!([]), "{answer}");
    assert_eq!(ids(&d), vec!["every_five", "hourly"]);
}

fn sighup_reloads_the_crons_file(b: Backend) {
    let (dir, d) = start(&b, FILE, &[]);
    write_crons(
        dir.path(),
        &format!("{FILE}\n[cron.added_by_hup]\nschedule = \"@hourly\"\ntype = \"noop\"\n"),
    );
    d.signal(libc::SIGHUP);
    d.until(Duration::from_secs(10), "SIGHUP to reload", |d| {
        ids(d).iter().any(|id| id == "added_by_hup").then_some(())
    });
    assert_eq!(
        ids(&d),
        vec!["added_by_hup", "every_five", "monday_berlin", "nightly"]
    );
}

fn an_enable_variable_set_to_false_disables_a_file_cron(b: Backend) {
    let (_dir, d) = start(&b, FILE, &[("ENABLE_NIGHTLY", "false")]);
    let list = crons(&d);
    assert_eq!(cron(&list, "nightly").unwrap()["enabled"], false);
    assert_eq!(cron(&list, "nightly").unwrap()["next_run"], Value::Null);
    assert_eq!(cron(&list, "every_five").unwrap()["enabled"], true);
}

on_both_backends! {
    a_crons_file_loads_and_crons_lists_each_next_run,
    trigger_of_a_file_cron_runs_its_job_and_the_run_is_ok,
    a_failing_job_makes_the_run_failed,
    disable_survives_a_restart,
    reload_with_a_broken_file_names_file_and_line_and_keeps_the_table,
    sighup_reloads_the_crons_file,
    an_enable_variable_set_to_false_disables_a_file_cron,
}
