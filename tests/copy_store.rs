//! `cronq copy-store` on real databases: a SQLite file's waiting, scheduled
//! and dead jobs (with their ids, attempts, errors and payloads), cron
//! switches and runs go to a PostgreSQL database the tests start, and from
//! there to a new file; a dry run changes nothing, a second copy copies
//! nothing; running jobs and live daemons are refused. Each side is read
//! back through a real daemon's socket.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use daemon::{Backend, Daemon};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const FALSE: &str = "/bin/false";
const SLEEP: &str = "/bin/sleep";

fn copy_store(args: &[&str]) -> Output {
    Command::new(daemon::BIN)
        .arg("copy-store")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run cronq copy-store")
}

/// Runs a copy that must succeed; its `--json` report.
fn copied(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = copy_store(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "copy-store {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{stdout:?}: {e}"))
}

/// Every job the daemon lists, by id: (status, attempts, last_error).
fn jobs(d: &Daemon) -> Vec<(String, String, u64, Value, Value)> {
    let mut out: Vec<_> = d.ok(json!({"cmd": "jobs", "limit": 1000}))["jobs"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                j["status"].as_str().unwrap().to_string(),
                j["attempts"].as_u64().unwrap(),
                j["last_error"].clone(),
                j["payload"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

const CRONS: &str = "[cron.nightly]\nschedule = \"0 2 * * *\"\ntype = \"noop\"\n\
                     [cron.hourly]\nschedule = \"0 * * * *\"\ntype = \"noop\"\n";

/// A daemon on `dir` (its SQLite file there unless `b` says otherwise),
/// processing by hand only.
fn daemon(b: &Backend, dir: &Path) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("crons.toml"), CRONS).unwrap();
    let crons = dir.join("crons.toml").display().to_string();
    b.on_dir(
        dir,
        &[
            ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
            ("JOB_COMMAND_ALLOW", &format!("{FALSE}:{SLEEP}")),
            ("CRONQ_CRONS", &crons),
        ],
    )
}

/// The queue every copy carries: a dead job with its error, pending and
/// scheduled jobs, one with a unique key; a disabled cron; a run of a cron,
/// and its job (pending: 3, scheduled: 1, dead: 1); and in the history, the
/// dead job's record, a job that succeeded and one cancelled, whose ids
/// are returned.
fn fill(d: &Daemon) -> (String, String) {
    let failing =
        json!({"type": "command", "data": {"argv": [FALSE]}, "options": {"retry_count": 0}});
    d.ok(json!({"cmd": "enqueue", "name": "dies", "payload": failing}));
    let done = d.enqueue("noop", json!({}));
    let drained = d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert_eq!(drained["run"]["failed"], 1, "{drained}");
    assert_eq!(drained["run"]["processed"], 2, "{drained}");
    let dropped = d.ok(json!({"cmd": "enqueue", "name": "dropped", "delay": 3600,
                              "payload": {"type": "noop"}}));
    let dropped = dropped["job"]["id"].as_str().unwrap().to_string();
    d.ok(json!({"cmd": "cancel", "id": dropped}));
    d.ok(json!({"cmd": "enqueue", "jobs": [
        {"name": "now", "payload": {"type": "noop", "data": {"n": 1}}},
        {"name": "later", "delay": 3600, "priority": 5, "payload": {"type": "noop", "data": {"n": 2}}},
        {"name": "keyed", "unique_key": "user:42", "payload": {"type": "noop", "data": {"n": 3}}},
    ]}));
    d.ok(json!({"cmd": "disable", "id": "nightly"}));
    d.ok(json!({"cmd": "trigger", "id": "hourly"}));
    (done, dropped)
}

/// A cron's runs as `d` shows them, and the clock offset it showed them
/// in (read on both sides, so the two belong together).
fn as_shown(d: &Daemon, cron: &str) -> (Value, i64) {
    let offset = |d: &Daemon| d.ok(json!({"cmd": "status"}))["clock_offset_ms"].as_i64();
    loop {
        let before = offset(d);
        let runs = d.ok(json!({"cmd": "cron", "id": cron}))["runs"].clone();
        if before == offset(d) {
            return (runs, before.unwrap_or(0));
        }
    }
}

/// `runs` (as a daemon on SQLite showed them) as a daemon whose clock is
/// `offset_ms` ahead of its PostgreSQL server (`status`'s
/// `clock_offset_ms`) shows the same stored runs: `started` and `finished`
/// are instants of the server's, shown in the daemon's frame (plus the
/// offset); `scheduled_for` is a time of the schedule, as stored.
fn shifted(runs: &Value, offset_ms: i64) -> Value {
    let mut runs = runs.clone();
    for run in runs.as_array_mut().expect("a list") {
        for field in ["started", "finished"] {
            if let Some(at) = run[field].as_str() {
                let at: jiff::Timestamp = at.parse().expect("a timestamp");
                let shown = at + jiff::SignedDuration::from_millis(offset_ms);
                run[field] = json!(shown.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            }
        }
    }
    runs
}

/// How `job` answers for each finished id: (status, attempts, name),
/// with a finish time. (Times are not compared: a daemon on PostgreSQL
/// shows them in its own clock's frame.)
fn ended(d: &Daemon, ids: &[&str]) -> Vec<(Value, Value, Value)> {
    ids.iter()
        .map(|id| {
            let job = d.ok(json!({"cmd": "job", "id": id}))["job"].clone();
            assert!(job["finished"].is_string(), "{job}");
            (
                job["status"].clone(),
                job["attempts"].clone(),
                job["name"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_file_queue_moves_to_postgres_and_back_once() {
    let Some(pg) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres { url, .. } = &pg else {
        unreachable!()
    };
    let root = tempfile::tempdir().unwrap();
    let mut source = daemon(&Backend::Sqlite, &root.path().join("a"));
    let (done, dropped) = fill(&source);
    let before = jobs(&source);
    assert_eq!(before.len(), 5);
    let finished = ended(&source, &[&done, &dropped]);
    assert_eq!(finished[0].0, "succeeded");
    assert_eq!(finished[1].0, "cancelled");
    let dead = before.iter().find(|j| j.1 == "dead").expect("a dead job");
    assert!(dead.3.as_str().unwrap().contains("exit"), "{dead:?}");
    let history = source.ok(json!({"cmd": "cron", "id": "hourly"}))["runs"].clone();
    let drains = source.ok(json!({"cmd": "cron", "id": "system_queue"}))["runs"].clone();
    let all_runs = history.as_array().unwrap().len() + drains.as_array().unwrap().len();
    assert!(source.stop().success());
    let file = root.path().join("a/cronq-data/cronq.db");
    let file = file.to_str().unwrap();

    // A dry run counts and stores nothing.
    let dry = copied(&["--from", file, "--to", url, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["jobs"]["copied"],
        json!({"pending": 3, "scheduled": 1, "dead": 1})
    );
    assert_eq!(pg.psql("SELECT count(*) FROM queues"), "0");
    assert_eq!(pg.psql("SELECT count(*) FROM cron_runs"), "0");

    let report = copied(&["--from", file, "--to", url]);
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["jobs"], dry["jobs"],
        "the dry run said what the copy did"
    );
    assert_eq!(
        report["switches"],
        json!({"copied": 1, "present": 0, "kept": 0})
    );
    assert_eq!(report["runs"]["copied"], all_runs);
    // The dead job's record, the success and the cancel.
    assert_eq!(report["history"], json!({"copied": 3, "present": 0}));
    assert_eq!(dry["history"], report["history"]);
    assert!(!report["from"].as_str().unwrap().is_empty());

    // Again: nothing new, nothing changed.
    let again = copied(&["--from", file, "--to", url]);
    assert_eq!(
        again["jobs"],
        json!({"copied": {"pending": 0, "scheduled": 0, "dead": 0}, "present": 5, "key_held": 0, "invalid": 0})
    );
    assert_eq!(again["switches"]["copied"], 0);
    assert_eq!(again["runs"]["copied"], 0);
    assert_eq!(again["history"], json!({"copied": 0, "present": 3}));

    // A daemon on PostgreSQL finds the same queue.
    let mut on_pg = daemon(&pg, &root.path().join("b"));
    assert_eq!(jobs(&on_pg), before);
    assert_eq!(ended(&on_pg, &[&done, &dropped]), finished);
    let dead_there = on_pg.ok(json!({"cmd": "job", "id": dead.0}));
    assert_eq!(
        dead_there["errors"].as_array().map(Vec::len),
        Some(1),
        "{dead_there}"
    );
    let nightly = on_pg.ok(json!({"cmd": "cron", "id": "nightly"}))["cron"].clone();
    assert_eq!(nightly["disabled_by"], "override", "{nightly}");
    let (runs_there, offset) = as_shown(&on_pg, "hourly");
    assert_eq!(runs_there, shifted(&history, offset));
    // The unique key still holds there.
    let dup = on_pg.ok(
        json!({"cmd": "enqueue", "name": "keyed", "unique_key": "user:42",
                              "payload": {"type": "noop", "data": {}}}),
    );
    assert_eq!(dup["duplicate"], true, "{dup}");
    assert!(on_pg.stop().success());

    // And back, into a new file.
    let back = root.path().join("c/cronq-data/cronq.db");
    std::fs::create_dir_all(back.parent().unwrap()).unwrap();
    let back_s = back.to_str().unwrap();
    let report = copied(&["--from", url, "--to", back_s]);
    assert_eq!(
        report["jobs"]["copied"],
        json!({"pending": 3, "scheduled": 1, "dead": 1})
    );
    assert_eq!(
        copied(&["--from", url, "--to", back_s])["jobs"]["present"],
        5
    );
    assert_eq!(report["history"]["copied"], 3);
    let on_file = daemon(&Backend::Sqlite, &root.path().join("c"));
    assert_eq!(jobs(&on_file), before);
    assert_eq!(ended(&on_file, &[&done, &dropped]), finished);
    assert_eq!(
        on_file.ok(json!({"cmd": "cron", "id": "hourly"}))["runs"],
        history
    );
}

#[test]
fn a_dry_run_into_a_missing_file_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut source = daemon(&Backend::Sqlite, &root.path().join("a"));
    let _ = fill(&source);
    assert!(source.stop().success());
    let file = root.path().join("a/cronq-data/cronq.db");
    let target = root.path().join("new.db");
    let dry = copied(&[
        "--from",
        file.to_str().unwrap(),
        "--to",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(dry["jobs"]["copied"]["pending"], 3);
    assert!(!target.exists(), "a dry run created {}", target.display());
    let missing = copy_store(&[
        "--from",
        "/nonexistent/cronq.db",
        "--to",
        target.to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--from: there is no database file"));
    assert!(!target.exists());
}

#[test]
fn running_jobs_and_live_daemons_are_refused() {
    let Some(pg) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres { url, .. } = &pg else {
        unreachable!()
    };
    let root = tempfile::tempdir().unwrap();
    let mut source = daemon(&Backend::Sqlite, &root.path().join("a"));
    let _ = fill(&source);
    let file = root.path().join("a/cronq-data/cronq.db");
    let file = file.to_str().unwrap();
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // The source's daemon is alive.
    let out = copy_store(&["--from", file, "--to", url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("alive on") && stderr(&out).contains("--from"),
        "{}",
        stderr(&out)
    );

    // With --force, a running job is still refused, and counted.
    let sleeper = json!({"type": "command", "data": {"argv": [SLEEP, "30"]}});
    let id =
        source.ok(json!({"cmd": "enqueue", "name": "sleeps", "payload": sleeper}))["job"]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let client = source.socket.clone();
    let drain = std::thread::spawn(move || {
        daemon::Client::connect(&client)
            .unwrap()
            .request(json!({"cmd": "trigger", "id": "system_queue"}))
    });
    source.until(WAIT, "the sleeper to run", |d| {
        (d.job(&id).is_some_and(|j| j["status"] == "running")).then_some(())
    });
    let out = copy_store(&["--from", file, "--to", url, "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 jobs are running"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("stop the daemons first"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM queues"),
        "0",
        "nothing was copied"
    );
    assert!(source.stop().success(), "the stop hands the sleeper back");
    let _ = drain.join();

    // The target has a live daemon.
    let target = daemon(&pg, &root.path().join("b"));
    let out = copy_store(&["--from", file, "--to", url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--to") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg.psql("SELECT count(*) FROM queues"), "0");
    let forced = copied(&["--from", file, "--to", url, "--force"]);
    let total = ["pending", "scheduled", "dead"]
        .iter()
        .map(|s| forced["jobs"]["copied"][s].as_u64().unwrap())
        .sum::<u64>();
    assert!(total >= 2, "{forced}");
    assert_eq!(jobs(&target).len() as u64, total, "{forced}");
}
