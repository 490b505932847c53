//! The real `cronq` CLI against a real daemon, every subcommand: the human
//! output reads the real answer shapes, `--json` prints the protocol answer,
//! and the exit codes are 0 (ok), 1 (refused) and 3 (unreachable).
//! tests/cli.rs covers the same CLI against a scripted fake server.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use daemon::Daemon;
use serde_json::{Value, json};

fn cronq(socket: &Path, args: &[&str]) -> Output {
    Command::new(daemon::BIN)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CRONQ_SOCKET")
        .output()
        .unwrap()
}

/// Runs `args`, asserts exit 0 and returns stdout.
fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = cronq(&d.socket, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "cronq {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs `--json args`, asserts exit 0 and returns the answer line.
fn json_ok(d: &Daemon, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(d, &all);
    assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
    let answer: Value = serde_json::from_str(&text).expect("--json prints JSON");
    assert_eq!(answer["ok"], true, "{answer}");
    answer
}

fn job_id(answer: &Value) -> String {
    answer["job"]["id"].as_str().expect("a job id").to_string()
}

#[test]
fn every_job_subcommand_against_a_real_daemon() {
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_COMMAND_ALLOW", "/bin/false"),
    ]);
    assert_eq!(ok(&d, &["ping"]), "pong\n");
    assert_eq!(json_ok(&d, &["ping"])["pong"], true);
    let status = ok(&d, &["status"]);
    assert!(status.contains("protocol: 1"), "{status}");
    assert!(status.contains(&format!("pid: {}", d.pid())), "{status}");
    assert_eq!(json_ok(&d, &["status"])["pid"], d.pid());

    // enqueue: every flag lands in the stored job.
    let answer = json_ok(
        &d,
        &[
            "enqueue",
            "noop",
            "--name",
            "hello",
            "--description",
            "a test job",
            "--data",
            r#"{"k":1}"#,
            "--priority",
            "-3",
            "--delay",
            "600",
            "--retries",
            "2",
            "--timeout",
            "9",
            "--unique-key",
            "key-1",
        ],
    );
    let id = job_id(&answer);
    let stored = d.job(&id).unwrap();
    for (field, value) in [
        ("name", json!("hello")),
        ("description", json!("a test job")),
        ("type", json!("noop")),
        ("status", json!("scheduled")),
        ("priority", json!(-3)),
        ("max_attempts", json!(3)),
        ("unique_key", json!("key-1")),
    ] {
        assert_eq!(stored[field], value, "{field}: {stored}");
    }
    assert_eq!(
        stored["payload"],
        json!({"type": "noop", "data": {"k": 1}, "options": {"retry_count": 2, "timeout": 9}})
    );
    let out = ok(&d, &["enqueue", "noop", "--at", "2099-01-01T00:00:00Z"]);
    assert!(out.starts_with("enqueued job "), "{out}");
    assert!(out.contains("(noop), scheduled"), "{out}");
    let at_id = out.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(d.job(&at_id).unwrap()["run_at"], "2099-01-01T00:00:00.000Z");
    let pending = job_id(&json_ok(&d, &["enqueue", "noop"]));

    // jobs: a table, and pages through a string cursor.
    let table = ok(&d, &["jobs"]);
    assert!(table.starts_with("ID "), "{table}");
    for j in [&id, &at_id, &pending] {
        assert!(table.contains(j.as_str()), "{table}");
    }
    let page = json_ok(&d, &["jobs", "--limit", "2"]);
    let cursor = page["next"].as_str().expect("a string cursor").to_string();
    let human = ok(&d, &["jobs", "--limit", "2"]);
    assert!(
        human.contains(&format!("cronq jobs --after {cursor}")),
        "{human}"
    );
    let rest = json_ok(&d, &["jobs", "--limit", "2", "--after", &cursor]);
    assert_eq!(rest["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let scheduled = json_ok(&d, &["jobs", "--status", "scheduled"]);
    assert_eq!(scheduled["jobs"].as_array().unwrap().len(), 2);

    // job and explain.
    let shown = ok(&d, &["job", &id]);
    for text in [
        "name: hello",
        "description: a test job",
        "unique key: key-1",
        "priority: -3",
    ] {
        assert!(shown.contains(text), "{text}: {shown}");
    }
    assert_eq!(json_ok(&d, &["job", &id])["job"]["id"], json!(id));
    let why = ok(&d, &["explain", &id]);
    assert!(why.starts_with("runnable: no"), "{why}");
    assert!(why.contains("enqueued with a delay"), "{why}");
    assert_eq!(json_ok(&d, &["explain", &id])["runnable"], false);

    // retry answers {"job": ...}; cancel answers {"cancelled": id}.
    let retried = ok(&d, &["retry", &id]);
    assert!(
        retried.contains(&format!("job {id} is pending again")),
        "{retried}"
    );
    assert_eq!(d.job(&id).unwrap()["status"], "pending");
    assert_eq!(json_ok(&d, &["retry", &at_id])["job"]["status"], "pending");
    let cancelled = ok(&d, &["cancel", &pending]);
    assert!(cancelled.contains(&pending), "{cancelled}");
    assert_eq!(json_ok(&d, &["cancel", &at_id])["cancelled"], json!(at_id));
    assert!(d.job(&at_id).is_none());

    // purge: a dead job, made by running a failing command by hand.
    let dead = job_id(&d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 0}}})));
    ok(&d, &["trigger", "system_queue"]);
    d.until(Duration::from_secs(20), "the job to die", |d| {
        d.job(&dead).filter(|j| j["status"] == "dead")
    });
    assert_eq!(json_ok(&d, &["purge", "--older-than", "3600"])["purged"], 0);
    let purged = ok(&d, &["purge"]);
    assert!(purged.contains("purged 1"), "{purged}");

    // Refused by the daemon: exit 1, the code and message on stderr; with
    // --json the answer line is still printed.
    let out = cronq(&d.socket, &["cancel", "nosuchjob000000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not_found"), "{err}");
    let waiting = job_id(&json_ok(&d, &["enqueue", "noop"]));
    let out = cronq(&d.socket, &["--json", "retry", &waiting]);
    assert_eq!(out.status.code(), Some(1));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["error"]["code"], "conflict", "{answer}");
}

#[test]
fn every_cron_and_daemon_subcommand_against_a_real_daemon() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    std::fs::write(
        d.dir.join("crons.toml"),
        "[cron.nightly]\nschedule = \"0 2 * * *\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let reload = ok(&d, &["reload"]);
    assert!(reload.contains("added nightly"), "{reload}");
    assert_eq!(json_ok(&d, &["reload"])["added"], json!([]));

    let crons = ok(&d, &["crons"]);
    assert!(crons.starts_with("ID "), "{crons}");
    for id in ["nightly", "system_queue", "clear_exports"] {
        assert!(crons.contains(id), "{crons}");
    }
    let listed = json_ok(&d, &["crons"]);
    assert!(
        listed["crons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["last_run"].is_null())
    );

    // trigger runs it now: a file cron's run follows the job it enqueued,
    // which the system_queue trigger then drains; last_run is a run object.
    let triggered = ok(&d, &["trigger", "nightly"]);
    assert!(
        triggered.starts_with("run running: enqueued job "),
        "{triggered}"
    );
    let job = triggered.split_whitespace().nth(4).unwrap();
    assert_eq!(d.job(job).unwrap()["cron_id"], "nightly");
    let run = json_ok(&d, &["trigger", "system_queue"]);
    assert_eq!(run["run"]["trigger"], "manual");
    assert_eq!(run["run"]["processed"], 1, "{run}");
    let drained = ok(&d, &["trigger", "system_queue"]);
    assert!(drained.starts_with("run ok in "), "{drained}");
    assert!(drained.contains("0 jobs processed, 0 failed"), "{drained}");
    let cron = json_ok(&d, &["cron", "nightly", "--limit", "1"]);
    assert_eq!(cron["cron"]["last_run"]["status"], "ok", "{cron}");
    assert_eq!(cron["runs"].as_array().unwrap().len(), 1);
    let shown = ok(&d, &["cron", "nightly"]);
    assert!(
        shown.contains("last run: ") && shown.contains(" (ok)\n"),
        "{shown}"
    );
    assert!(shown.contains("runs, newest first"), "{shown}");
    assert!(shown.contains("manual"), "{shown}");
    let crons = ok(&d, &["crons"]);
    let nightly = crons.lines().find(|l| l.starts_with("nightly")).unwrap();
    assert!(nightly.contains(" ok "), "{crons}");

    // disable and enable answer {"cron": ...}.
    let off = ok(&d, &["disable", "nightly"]);
    assert_eq!(off, "cron nightly is disabled\n");
    assert_eq!(
        json_ok(&d, &["disable", "nightly"])["cron"]["enabled"],
        false
    );
    let on = ok(&d, &["enable", "nightly"]);
    assert!(
        on.starts_with("cron nightly is enabled; next run in "),
        "{on}"
    );
    assert_eq!(json_ok(&d, &["enable", "nightly"])["cron"]["enabled"], true);

    // next, stats, metrics, log-level, check.
    let next = ok(
        &d,
        &[
            "next",
            "0 2 * * *",
            "-n",
            "2",
            "--after",
            "2026-01-01T00:00:00Z",
        ],
    );
    assert!(next.contains("2026-01-01 02:00:00 UTC"), "{next}");
    assert!(next.contains("2026-01-02 02:00:00 UTC"), "{next}");
    let stats = ok(&d, &["stats"]);
    assert!(stats.starts_with("TYPE "), "{stats}");
    assert!(stats.contains("workers: 0/"), "{stats}");
    assert!(json_ok(&d, &["stats"])["types"]["noop"].is_object());
    let metrics = ok(&d, &["metrics"]);
    assert!(metrics.contains("# TYPE cronq_jobs gauge"), "{metrics}");
    assert!(
        metrics.contains("cronq_cron_last_run_timestamp_seconds{cron_id=\"nightly\"}"),
        "{metrics}"
    );
    assert!(
        json_ok(&d, &["metrics"])["text"]
            .as_str()
            .unwrap()
            .contains("cronq_workers_max")
    );
    assert_eq!(ok(&d, &["log-level", "debug"]), "log level is now debug\n");
    assert_eq!(json_ok(&d, &["log-level", "info"])["level"], "info");
    let checked = ok(&d, &["check", d.dir.join("crons.toml").to_str().unwrap()]);
    assert!(checked.contains("1 cron(s), all valid"), "{checked}");

    // A bad crons file: reload is refused (exit 1) naming file and line.
    std::fs::write(
        d.dir.join("crons.toml"),
        "[cron.x]\nschedule = \"61 * * * *\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let out = cronq(&d.socket, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("crons.toml") && err.contains("bad_request"),
        "{err}"
    );
}

#[test]
fn a_stopped_daemon_is_unreachable_exit_3_with_a_hint_naming_the_socket() {
    let mut d = Daemon::start(&[]);
    d.stop();
    for args in [&["ping"][..], &["--json", "jobs"], &["cancel", "x"]] {
        let out = cronq(&d.socket, args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&d.socket.display().to_string()), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }
}
