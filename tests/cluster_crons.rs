//! Crons across several real daemons on one database: each scheduled minute
//! fires once whichever daemon is first, `enable`, `disable` and `trigger`
//! sent to one daemon hold for all of them, and daemons whose crons files
//! define one id differently say so (`crons`' `conflict`, and the log).
//! Both backends where they apply: several daemons share a SQLite file on
//! one host, and a PostgreSQL database from many.

#[path = "support/daemon.rs"]
#[macro_use]
mod daemon;

use std::path::Path;
use std::time::{Duration, SystemTime};

use daemon::{Backend, Daemon};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// A daemon of its own directory and socket on `b`'s shared database, with
/// `crons` as its crons file.
fn node(b: &Backend, shared: &Path, name: &str, crons: &str) -> Daemon {
    let dir = shared.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("crons.toml"), crons).unwrap();
    let db = shared.join("cronq.db").display().to_string();
    let crons_path = dir.join("crons.toml").display().to_string();
    b.on_dir(
        &dir,
        &[
            ("CRONQ_DB", db.as_str()),
            ("CRONQ_CRONS", crons_path.as_str()),
            ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ],
    )
}

fn instance_id(d: &Daemon) -> String {
    d.ok(json!({"cmd": "status"}))["instance"]
        .as_str()
        .expect("an instance id")
        .to_string()
}

fn cron(d: &Daemon, id: &str) -> Value {
    d.ok(json!({"cmd": "cron", "id": id}))["cron"].clone()
}

fn in_list(d: &Daemon, id: &str) -> Value {
    d.ok(json!({"cmd": "crons"}))["crons"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no cron {id}"))
        .clone()
}

const HOURLY: &str = "[cron.hourly]\nschedule = \"0 * * * *\"\ntype = \"noop\"\n";

fn switches_and_triggers_hold_on_every_daemon(b: Backend) {
    let shared = tempfile::tempdir().unwrap();
    let a = node(&b, shared.path(), "a", HOURLY);
    let c = node(&b, shared.path(), "c", HOURLY);

    a.ok(json!({"cmd": "disable", "id": "hourly"}));
    let on_c = cron(&c, "hourly");
    assert_eq!(on_c["enabled"], false, "{on_c}");
    assert_eq!(on_c["disabled_by"], "override", "{on_c}");
    assert_eq!(in_list(&c, "hourly")["enabled"], false);

    let fired = c.ok(json!({"cmd": "trigger", "id": "hourly"}));
    let job = fired["run"]["job_id"].as_str().expect("a job").to_string();
    let last = &cron(&a, "hourly")["last_run"];
    assert_eq!(last["trigger"], "manual", "{last}");
    assert_eq!(last["job_id"], job.as_str(), "{last}");

    c.ok(json!({"cmd": "enable", "id": "hourly"}));
    let on_a = cron(&a, "hourly");
    assert_eq!(on_a["enabled"], true, "{on_a}");
    assert_eq!(on_a["disabled_by"], Value::Null, "{on_a}");
    assert!(on_a["next_run"].is_string(), "{on_a}");
}

fn daemons_whose_crons_files_differ_report_the_conflict(b: Backend) {
    let shared = tempfile::tempdir().unwrap();
    let nightly = |hour: u32| {
        format!(
            "{HOURLY}[cron.nightly]\nschedule = \"0 {hour} * * *\"\ntype = \"noop\"\n\
             description = \"the same words either way\"\n"
        )
    };
    let a = node(&b, shared.path(), "a", &nightly(2));
    let c = node(&b, shared.path(), "c", &nightly(3));
    let (a_id, c_id) = (instance_id(&a), instance_id(&c));

    let on_a = in_list(&a, "nightly");
    let conflict = &on_a["conflict"];
    assert_eq!(
        conflict["instances"].as_array().map(Vec::len),
        Some(1),
        "{on_a}"
    );
    assert_eq!(conflict["instances"][0]["id"], c_id.as_str(), "{on_a}");
    assert!(conflict["instances"][0]["host"].is_string(), "{on_a}");
    assert_ne!(
        conflict["instances"][0]["digest"], conflict["digest"],
        "{on_a}"
    );
    assert_eq!(in_list(&a, "hourly")["conflict"], Value::Null);
    assert_eq!(in_list(&a, "system_queue")["conflict"], Value::Null);
    let on_c = cron(&c, "nightly");
    assert_eq!(
        on_c["conflict"]["instances"][0]["id"],
        a_id.as_str(),
        "{on_c}"
    );
    assert_eq!(
        on_c["conflict"]["digest"],
        conflict["instances"][0]["digest"]
    );

    // The log names both nodes, once however often it is looked at.
    let warning = "cron nightly is defined differently";
    a.until(WAIT, "a's warning", |a| {
        a.log().contains(warning).then_some(())
    });
    in_list(&a, "nightly");
    let log = a.log();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    let line = log.lines().find(|l| l.contains(warning)).unwrap();
    assert!(line.contains(&a_id) && line.contains(&c_id), "{line}");

    // c's file is made to agree: the mark goes, and the log says so.
    std::fs::write(shared.path().join("c/crons.toml"), nightly(2)).unwrap();
    let reloaded = c.ok(json!({"cmd": "reload"}));
    assert_eq!(reloaded["changed"], json!(["nightly"]));
    assert_eq!(in_list(&a, "nightly")["conflict"], Value::Null);
    assert_eq!(cron(&c, "nightly")["conflict"], Value::Null);
    assert!(
        a.log().contains("cron nightly is now defined alike"),
        "{}",
        a.log()
    );
    // A daemon that stops takes its definitions with it.
    std::fs::write(shared.path().join("c/crons.toml"), nightly(4)).unwrap();
    c.ok(json!({"cmd": "reload"}));
    assert!(in_list(&a, "nightly")["conflict"].is_object());
    let mut c = c;
    assert!(c.stop().success());
    assert_eq!(in_list(&a, "nightly")["conflict"], Value::Null);
}

on_both_backends! {
    switches_and_triggers_hold_on_every_daemon,
    daemons_whose_crons_files_differ_report_the_conflict,
}

/// Waits until `seconds` into the next minute.
fn into_next_minute(seconds: u64) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    std::thread::sleep(Duration::from_secs(60) - into + Duration::from_secs(seconds));
}

/// Three daemons on one PostgreSQL database with the same every-minute
/// cron: the minute is recorded once and its job runs once; a cron one of
/// them disabled fires on none.
#[test]
fn postgres_daemons_fire_each_cron_minute_once_and_a_disabled_cron_on_none() {
    let Some(b) = Backend::postgres() else { return };
    // Far enough from a minute's end that `muted` is off before one comes.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    if now.as_millis() % 60_000 > 40_000 {
        into_next_minute(1);
    }
    let shared = tempfile::tempdir().unwrap();
    let crons = "[cron.tick]\nschedule = \"* * * * *\"\ntype = \"noop\"\n\
                 [cron.muted]\nschedule = \"* * * * *\"\ntype = \"noop\"\n";
    let nodes: Vec<Daemon> = ["a", "c", "d"]
        .iter()
        .map(|name| {
            let dir = shared.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("crons.toml"), crons).unwrap();
            let crons_path = dir.join("crons.toml").display().to_string();
            // Jobs run: every daemon claims, so the tick's job runs on one.
            b.on_dir(&dir, &[("CRONQ_CRONS", crons_path.as_str())])
        })
        .collect();
    nodes[1].ok(json!({"cmd": "disable", "id": "muted"}));
    into_next_minute(3);
    let runs = nodes[0].until(WAIT, "the minute's tick to run", |_| {
        let rows = b.psql(
            "SELECT scheduled_for, count(*), min(status) FROM cron_runs
              WHERE cron_id = 'tick' AND trigger = 'schedule' GROUP BY scheduled_for",
        );
        (!rows.is_empty() && rows.lines().all(|l| l.ends_with("|ok"))).then_some(rows)
    });
    for line in runs.lines() {
        assert!(
            line.contains("|1|"),
            "a minute recorded more than once: {runs}"
        );
    }
    assert_eq!(
        b.psql("SELECT count(*) FROM cron_runs WHERE cron_id = 'muted'"),
        "0",
        "a cron disabled on one daemon fired on another"
    );
    // The minute's job ran once (a succeeded job is deleted; none is left).
    assert_eq!(
        b.psql("SELECT count(*) FROM queues WHERE cron_id = 'tick'"),
        "0"
    );
    for mut d in nodes {
        assert!(d.stop().success());
    }
}
