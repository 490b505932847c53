//! The history of finished jobs, end to end against the real binary over
//! its socket: the record a job leaves when it succeeds, dies or is
//! cancelled (with the command's output), `jobs --status succeeded`, a
//! cron run's job status, retention and the row cap pruning on the
//! system_queue tick, and JOB_HISTORY=off.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use daemon::Daemon;
use serde_json::{Value, json};

const ALLOW: (&str, &str) = ("JOB_COMMAND_ALLOW", "/bin/sh:/bin/echo");
const WAIT: Duration = Duration::from_secs(30);

fn enqueue(d: &Daemon, job_type: &str, data: Value, options: Value) -> String {
    let answer = d.ok(json!({"cmd": "enqueue", "name": format!("{job_type} job"),
        "payload": {"type": job_type, "data": data, "options": options}}));
    answer["job"]["id"].as_str().expect("id").to_string()
}

/// Waits for the job's record in the history.
fn finished(d: &Daemon, id: &str) -> Value {
    d.until(WAIT, "the job's history record", |d| d.finished(id))
}

fn cronq(socket: &Path, args: &[&str]) -> Output {
    Command::new(daemon::BIN)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CRONQ_SOCKET")
        .output()
        .unwrap()
}

fn listed(d: &Daemon, request: Value) -> Vec<Value> {
    d.ok(request)["jobs"].as_array().expect("jobs").clone()
}

#[test]
fn a_job_that_succeeds_is_answered_from_the_history_with_its_output() {
    let d = Daemon::start(&[ALLOW]);
    let before = Instant::now();
    let id = enqueue(
        &d,
        "command",
        json!({"argv": ["/bin/sh", "-c", "echo hello; echo warn >&2"]}),
        json!({}),
    );
    let job = finished(&d, &id);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["id"], json!(id));
    assert_eq!(job["type"], "command");
    assert_eq!(job["attempts"], 1);
    assert!(job["payload"].is_null(), "records keep no payload: {job}");
    let result = &job["result"];
    assert_eq!(result["exit_code"], 0, "{job}");
    assert_eq!(result["stdout"], "hello\n");
    assert_eq!(result["stderr"], "warn\n");
    assert_eq!(result["stdout_bytes"], 6);
    let took = job["duration_ms"].as_i64().expect("duration_ms");
    assert!(
        took >= 0 && took as u128 <= before.elapsed().as_millis(),
        "{job}"
    );
    for key in ["created", "started", "finished"] {
        assert!(job[key].is_string(), "{key}: {job}");
    }
    assert!(job["started"].as_str() <= job["finished"].as_str(), "{job}");
    // Listed among the succeeded, and explained.
    let jobs = listed(&d, json!({"cmd": "jobs", "status": "succeeded"}));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], json!(id));
    assert_eq!(jobs[0]["result"]["stdout"], "hello\n");
    let why = d.ok(json!({"cmd": "explain", "id": id}));
    assert_eq!(why["runnable"], false);
    assert!(
        why["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("it succeeded on attempt 1 of 4"),
        "{why}"
    );
    // The queue's own listing is the queue: the job left it.
    assert!(listed(&d, json!({"cmd": "jobs"})).is_empty());
    // `cronq job` shows the history fields and the command's output.
    let out = cronq(&d.socket, &["job", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for part in [
        "status: succeeded",
        "finished:",
        "took:",
        "exit status 0",
        "stdout:\nhello\n",
        "stderr:\nwarn\n",
    ] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }
    let out = cronq(&d.socket, &["jobs", "--status", "succeeded"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("FINISHED") && header.contains("RESULT"),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
}

#[test]
fn a_job_that_dies_is_dead_in_the_queue_and_in_the_history_after_a_purge() {
    let d = Daemon::start(&[ALLOW]);
    let id = enqueue(
        &d,
        "command",
        json!({"argv": ["/bin/sh", "-c", "echo partial; echo oops >&2; exit 3"]}),
        json!({"retry_count": 1}),
    );
    // Attempt 1 fails and waits out its backoff (10 s): no ending yet. To
    // keep the test short its retry is asked for at once.
    let retried = d.until(WAIT, "the first failure", |d| {
        d.job(&id)
            .filter(|j| j["attempts"] == 1 && j["status"] == "scheduled")
    });
    assert!(d.finished(&id).is_none(), "a retry is no ending: {retried}");
    d.ok(json!({"cmd": "retry", "id": id}));
    d.until(WAIT, "the job to die", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    // In the queue it is dead, with how it ended beside.
    let live = d.ok(json!({"cmd": "job", "id": id}))["job"].clone();
    assert_eq!(live["status"], "dead");
    assert!(live["payload"].is_object());
    assert_eq!(live["result"]["exit_code"], 3, "{live}");
    assert_eq!(live["result"]["stderr"], "oops\n");
    assert!(live["finished"].is_string(), "{live}");
    d.ok(json!({"cmd": "purge", "status": "dead"}));
    let record = finished(&d, &id);
    assert_eq!(record["status"], "dead");
    assert_eq!(record["attempts"], 2);
    assert!(
        record["last_error"]
            .as_str()
            .unwrap()
            .contains("exit status: 3"),
        "{record}"
    );
    assert_eq!(record["result"]["stdout"], "partial\n");
}

#[test]
fn a_cancelled_job_is_recorded_and_listed() {
    let d = Daemon::start(&[]);
    let a = d
        .ok(json!({"cmd": "enqueue", "name": "later", "payload": {"type": "noop"}, "delay": 3600}));
    let id = a["job"]["id"].as_str().unwrap().to_string();
    d.ok(json!({"cmd": "cancel", "id": id}));
    let record = finished(&d, &id);
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["attempts"], 0);
    assert!(
        record["started"].is_null() && record["duration_ms"].is_null(),
        "{record}"
    );
    let jobs = listed(&d, json!({"cmd": "jobs", "status": "cancelled"}));
    assert_eq!(jobs.len(), 1);
    assert!(listed(&d, json!({"cmd": "jobs", "status": "succeeded"})).is_empty());
    // Neither retried nor cancelled again: it left the queue.
    for cmd in ["retry", "cancel"] {
        let a = d.request(json!({"cmd": cmd, "id": id}));
        assert_eq!(a["error"]["code"], "not_found", "{a}");
    }
}

#[test]
fn finished_jobs_list_by_name_type_and_cron_latest_first_in_pages() {
    let d = Daemon::start(&[]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = d.ok(
            json!({"cmd": "enqueue", "name": if i % 2 == 0 { "even" } else { "odd" },
            "payload": {"type": "noop", "data": {"i": i}}}),
        );
        let id = a["job"]["id"].as_str().unwrap().to_string();
        finished(&d, &id);
        ids.push(id);
    }
    let jobs = listed(
        &d,
        json!({"cmd": "jobs", "status": "succeeded", "limit": 3}),
    );
    let page: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    let latest: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(page, latest[..3]);
    let first = d.ok(json!({"cmd": "jobs", "status": "succeeded", "limit": 3}));
    let next = first["next"].as_str().expect("a cursor").to_string();
    let rest = listed(
        &d,
        json!({"cmd": "jobs", "status": "succeeded", "limit": 3, "after": next}),
    );
    let rest: Vec<&str> = rest.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(rest, latest[3..]);
    let odd = listed(
        &d,
        json!({"cmd": "jobs", "status": "succeeded", "name": "odd"}),
    );
    assert_eq!(odd.len(), 2);
    let email = listed(
        &d,
        json!({"cmd": "jobs", "status": "succeeded", "type": "email"}),
    );
    assert!(email.is_empty());
    let bad = d.request(json!({"cmd": "jobs", "status": "succeeded", "after": "1.abc"}));
    assert_eq!(bad["error"]["code"], "bad_request", "{bad}");
}

#[test]
fn a_cron_run_links_its_job_and_its_outcome() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(
        temp.path().join("crons.toml"),
        "[cron.tidy]\nschedule = \"@yearly\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let crons = temp.path().join("crons.toml");
    let d = Daemon::on_dir(temp.path(), &[("CRONQ_CRONS", crons.to_str().unwrap())]);
    let run = d.ok(json!({"cmd": "trigger", "id": "tidy"}))["run"].clone();
    assert!(run.get("job_status").is_some(), "{run}");
    let run = d.until(WAIT, "the run's job to succeed", |d| {
        let cron = d.ok(json!({"cmd": "cron", "id": "tidy"}));
        let run = cron["runs"][0].clone();
        (run["job_status"] == "succeeded").then_some(run)
    });
    assert_eq!(run["status"], "ok");
    let job = finished(&d, run["job_id"].as_str().unwrap());
    assert_eq!(job["cron_id"], "tidy");
    let mine = listed(
        &d,
        json!({"cmd": "jobs", "status": "succeeded", "cron_id": "tidy"}),
    );
    assert_eq!(mine.len(), 1);
}

#[test]
fn retention_and_the_row_cap_prune_on_the_system_queue_tick() {
    let d = Daemon::start(&[("JOB_HISTORY_MAX", "3"), ("JOB_HISTORY_RETENTION", "3s")]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = d.enqueue("noop", json!({}));
        finished(&d, &id);
        ids.push(id);
    }
    assert_eq!(
        listed(&d, json!({"cmd": "jobs", "status": "succeeded"})).len(),
        5
    );
    // The minute's work, by hand: the cap keeps the newest three.
    d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    let kept = listed(&d, json!({"cmd": "jobs", "status": "succeeded"}));
    let kept: Vec<&str> = kept.iter().map(|j| j["id"].as_str().unwrap()).collect();
    let newest: Vec<&str> = ids.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(kept, newest);
    // Past retention they all go, and `job` says how long records live.
    std::thread::sleep(Duration::from_millis(3100));
    d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert!(listed(&d, json!({"cmd": "jobs", "status": "succeeded"})).is_empty());
    let gone = d.request(json!({"cmd": "job", "id": ids[4]}));
    assert_eq!(gone["error"]["code"], "not_found");
    let message = gone["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("finished jobs are kept for 3 seconds"),
        "{message}"
    );
}

#[test]
fn with_system_queue_off_the_heartbeats_prune() {
    // A heartbeat every 15 s (a quarter of the 1-minute reservation timeout).
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_RESERVATION_TIMEOUT", "1"),
        ("JOB_HISTORY_MAX", "2"),
    ]);
    let ids: Vec<String> = (0..4).map(|_| d.enqueue("noop", json!({}))).collect();
    // Run by hand; the drain's own pruning came before these records.
    let drained = d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert_eq!(drained["run"]["processed"], 4, "{drained}");
    assert_eq!(
        listed(&d, json!({"cmd": "jobs", "status": "succeeded"})).len(),
        4
    );
    // No minute's run follows while system_queue is off: a heartbeat
    // prunes to the cap.
    d.until(Duration::from_secs(90), "a heartbeat to prune", |d| {
        let kept = listed(d, json!({"cmd": "jobs", "status": "succeeded"}));
        (kept.len() == 2).then_some(())
    });
    let still: Vec<&String> = ids.iter().filter(|id| d.finished(id).is_some()).collect();
    assert_eq!(
        still.len(),
        2,
        "two of the four records are left: {still:?}"
    );
}

#[test]
fn with_the_history_off_nothing_is_kept_and_not_found_says_why() {
    let d = Daemon::start(&[("JOB_HISTORY", "off")]);
    let id = d.enqueue("noop", json!({}));
    d.until(WAIT, "the job to finish", |d| {
        let status = d.ok(json!({"cmd": "status"}));
        (status["queue"]["pending"] == 0 && status["queue"]["running"] == 0).then_some(())
    });
    let a = d.request(json!({"cmd": "job", "id": id}));
    assert_eq!(a["error"]["code"], "not_found", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JOB_HISTORY=off"),
        "{a}"
    );
    assert!(listed(&d, json!({"cmd": "jobs", "status": "succeeded"})).is_empty());
}

#[test]
fn a_bad_history_setting_stops_the_start_naming_the_variable() {
    for (var, value) in [
        ("JOB_HISTORY", "maybe"),
        ("JOB_HISTORY_RETENTION", "7 weeks"),
        ("JOB_HISTORY_MAX", "0"),
        ("JOB_DEAD_RETENTION", "-1"),
    ] {
        let out = std::process::Command::new(daemon::BIN)
            .arg("daemon")
            .env_clear()
            .env(var, value)
            .env("CRONQ_DB", "/nonexistent/never/used.db")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}={value}: {err}");
    }
}
