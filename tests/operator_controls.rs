//! The operator's controls, end to end against the real binary over its
//! socket: pause and resume (across a restart), the system_queue switch,
//! the per-type concurrency and rate limits under load, bulk retry of
//! 5,000 dead jobs, bulk cancel, and the dead jobs' retention.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use daemon::Daemon;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn cronq(socket: &Path, args: &[&str]) -> Output {
    Command::new(daemon::BIN)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CRONQ_SOCKET")
        .output()
        .unwrap()
}

fn cli_ok(d: &Daemon, args: &[&str]) -> String {
    let out = cronq(&d.socket, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cronq {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn queue(d: &Daemon) -> Value {
    d.ok(json!({"cmd": "status"}))["queue"].clone()
}

/// The minute's drain by hand; how many jobs it ran.
fn drain(d: &Daemon) -> u64 {
    let run = d.ok(json!({"cmd": "trigger", "id": "system_queue"}))["run"].clone();
    run["processed"].as_u64().expect("processed")
}

fn reasons(d: &Daemon, id: &str) -> String {
    d.ok(json!({"cmd": "explain", "id": id}))["reasons"].to_string()
}

fn enqueue_many(d: &Daemon, jobs: Vec<Value>) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in jobs.chunks(1000) {
        let a = d.ok(json!({"cmd": "enqueue", "jobs": chunk}));
        ids.extend(
            a["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string()),
        );
    }
    ids
}

/// Every job of `ids` recorded as finished; their records.
fn all_finished(d: &Daemon, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|id| d.until(WAIT, "a job to finish", |d| d.finished(id)))
        .collect()
}

/// Milliseconds since the epoch of a protocol timestamp.
fn ms(t: &Value) -> i64 {
    let text = t.as_str().unwrap_or_else(|| panic!("a timestamp: {t}"));
    let ts: jiff::Timestamp = text.parse().expect("RFC 3339");
    ts.as_millisecond()
}

#[test]
fn a_pause_holds_claims_across_a_restart_and_lets_running_jobs_finish() {
    let temp = tempfile::tempdir().unwrap();
    let env = [("JOB_COMMAND_ALLOW", "/bin/sleep")];
    let mut d = Daemon::on_dir(temp.path(), &env);
    // A running job of the type finishes although the type is paused.
    let running = d.enqueue("command", json!({"argv": ["/bin/sleep", "1"]}));
    d.until(WAIT, "the command to run", |d| {
        d.job(&running).filter(|j| j["status"] == "running")
    });
    let a = d.ok(json!({"cmd": "pause", "type": "command"}));
    assert_eq!(a["paused"], json!(["command"]));
    let held = d.enqueue("command", json!({"argv": ["/bin/sleep", "0"]}));
    let done = d.until(WAIT, "the running job to end", |d| d.finished(&running));
    assert_eq!(done["status"], "succeeded");
    assert_eq!(drain(&d), 0, "a paused type is not claimed");
    assert_eq!(d.job(&held).unwrap()["status"], "pending");
    let why = reasons(&d, &held);
    assert!(why.contains("the command type is paused"), "{why}");
    // Other types run on.
    let other = d.enqueue("noop", json!({}));
    d.until(WAIT, "another type to run", |d| d.finished(&other));
    assert_eq!(d.ok(json!({"cmd": "status"}))["paused"], json!(["command"]));

    // Across a restart: still paused.
    assert!(d.stop().success());
    let d = Daemon::on_dir(temp.path(), &env);
    assert_eq!(d.ok(json!({"cmd": "status"}))["paused"], json!(["command"]));
    assert_eq!(drain(&d), 0);
    assert_eq!(d.job(&held).unwrap()["status"], "pending");
    // Every type, then resumed: the held job runs at once.
    assert_eq!(cli_ok(&d, &["pause"]).trim(), "paused: every job type");
    assert_eq!(
        d.ok(json!({"cmd": "status"}))["paused"],
        json!(["*", "command"])
    );
    let text = cli_ok(&d, &["resume"]);
    assert_eq!(text.trim(), "nothing is paused");
    let record = d.until(WAIT, "the held job to run", |d| d.finished(&held));
    assert_eq!(record["status"], "succeeded");
    let bad = d.request(json!({"cmd": "pause", "type": ""}));
    assert_eq!(bad["error"]["code"], "bad_request", "{bad}");
}

#[test]
fn pauses_of_made_up_types_stop_at_their_cap() {
    let d = Daemon::start(&[]);
    let mut c = d.client();
    for i in 0..1000 {
        let a = c.request(json!({"cmd": "pause", "type": format!("made_up_{i}")}));
        assert_eq!(a["ok"], true, "{a}");
    }
    let a = c.request(json!({"cmd": "pause", "type": "one_more"}));
    assert_eq!(a["error"]["code"], "too_large", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 job types are paused already"),
        "{a}"
    );
    // Pausing every type is still taken, and resuming makes room.
    let a = c.request(json!({"cmd": "pause"}));
    assert_eq!(a["paused"][0], "*", "{a}");
    c.request(json!({"cmd": "resume", "type": "made_up_7"}));
    let a = c.request(json!({"cmd": "pause", "type": "one_more"}));
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(
        d.ok(json!({"cmd": "status"}))["paused"]
            .as_array()
            .map(Vec::len),
        Some(1001)
    );
}

#[test]
fn disabling_system_queue_stops_automatic_processing_until_enabled_even_after_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let mut d = Daemon::on_dir(temp.path(), &[]);
    d.ok(json!({"cmd": "disable", "id": "system_queue"}));
    assert_eq!(d.ok(json!({"cmd": "status"}))["automatic"], false);
    let id = d.enqueue("noop", json!({}));
    let why = reasons(&d, &id);
    assert!(why.contains("automatic processing is off"), "{why}");
    assert!(d.stop().success());
    let d = Daemon::on_dir(temp.path(), &[]);
    assert_eq!(d.ok(json!({"cmd": "status"}))["automatic"], false);
    assert_eq!(d.job(&id).unwrap()["status"], "pending");
    // By hand it still drains.
    let other = d.enqueue("noop", json!({}));
    assert_eq!(drain(&d), 2);
    assert!(d.finished(&other).is_some());
    let id = d.enqueue("noop", json!({}));
    d.ok(json!({"cmd": "enable", "id": "system_queue"}));
    assert_eq!(d.ok(json!({"cmd": "status"}))["automatic"], true);
    d.until(WAIT, "the job to run once enabled", |d| d.finished(&id));
}

#[test]
fn the_concurrency_limit_holds_under_load_and_leaves_the_pool_to_other_types() {
    let d = Daemon::start(&[
        ("JOB_COMMAND_ALLOW", "/bin/sleep"),
        ("JOB_MAX_WORKERS", "6"),
        ("JOB_TYPE_CONCURRENCY", "command=2"),
    ]);
    let sleeps: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("sleep{i}"), "payload": {"type": "command", "data": {"argv": ["/bin/sleep", "2"]}}}))
        .collect();
    let commands = enqueue_many(&d, sleeps);
    // Two run; the rest wait for them, named by explain.
    d.until(WAIT, "two commands to run", |d| {
        (queue(d)["running"] == 2).then_some(())
    });
    let waiting = commands
        .iter()
        .find(|id| d.job(id).is_some_and(|j| j["status"] == "pending"))
        .expect("a waiting command");
    let why = reasons(&d, waiting);
    assert!(why.contains("JOB_TYPE_CONCURRENCY"), "{why}");
    // Meanwhile the other four workers serve other types.
    let noops: Vec<Value> = (0..200)
        .map(|i| json!({"name": format!("n{i}"), "payload": {"type": "noop"}}))
        .collect();
    let noops = enqueue_many(&d, noops);
    all_finished(&d, &noops);
    let still = commands
        .iter()
        .filter(|id| d.job(id).is_some_and(|j| j["status"] == "pending"))
        .count();
    assert!(
        still >= 1,
        "the noops all ran while commands waited their turn"
    );
    let limits = d.ok(json!({"cmd": "status"}))["limits"].clone();
    assert_eq!(limits["command"]["concurrency"], 2, "{limits}");
    // Never more than two at once, from their recorded times.
    let records = all_finished(&d, &commands);
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for r in &records {
        assert_eq!(r["status"], "succeeded", "{r}");
        edges.push((ms(&r["started"]), 1));
        edges.push((ms(&r["finished"]), -1));
    }
    // An end and a start at the same millisecond: the end first.
    edges.sort();
    let (mut at_once, mut most) = (0, 0);
    for (_, step) in edges {
        at_once += step;
        most = most.max(at_once);
    }
    assert_eq!(most, 2, "{records:?}");
}

#[test]
fn the_rate_limit_holds_under_load() {
    let d = Daemon::start(&[("JOB_TYPE_RATE", "noop=10/s"), ("JOB_MAX_WORKERS", "8")]);
    let jobs: Vec<Value> = (0..35)
        .map(|i| json!({"name": format!("n{i}"), "payload": {"type": "noop"}}))
        .collect();
    let ids = enqueue_many(&d, jobs);
    let records = all_finished(&d, &ids);
    let mut starts: Vec<i64> = records.iter().map(|r| ms(&r["started"])).collect();
    starts.sort();
    // At most 10 in any second: the 11th after any start is a second on.
    for i in 0..starts.len() - 10 {
        assert!(
            starts[i + 10] - starts[i] >= 1000,
            "starts {i} and {}: {} ms apart: {starts:?}",
            i + 10,
            starts[i + 10] - starts[i]
        );
    }
    assert!(starts[34] - starts[0] >= 3000, "{starts:?}");
    let limits = d.ok(json!({"cmd": "status"}))["limits"].clone();
    assert_eq!(limits["noop"]["rate"], "10/s", "{limits}");
}

#[test]
fn bulk_retry_of_5000_dead_jobs_and_bulk_cancel() {
    // An SMTP port where nothing listens: every email fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let d = Daemon::start(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "none"),
        ("MAIL_FROM", "cronq@example.com"),
        ("JOB_MAX_RETRIES", "0"),
        ("JOB_MAX_WORKERS", "8"),
        ("LOG_LEVEL", "error"),
    ]);
    let mail = |i: usize| {
        json!({"name": format!("mail{i}"), "payload": {"type": "email",
            "data": {"to": "someone@example.com", "subject": "s", "text": "hi"}}})
    };
    let ids = enqueue_many(&d, (0..5000).map(mail).collect());
    d.until(Duration::from_secs(180), "5,000 jobs to die", |d| {
        (queue(d)["dead"] == 5000).then_some(())
    });
    // Held back, so the retried jobs can be counted before they run.
    d.ok(json!({"cmd": "pause", "type": "email"}));
    let a = d.ok(json!({"cmd": "retry", "filter": {"status": "dead", "type": "email"}}));
    assert_eq!(a["count"], 5000, "{a}");
    assert_eq!(a["skipped"], 0);
    assert_eq!(a["next"], Value::Null);
    let q = queue(&d);
    assert_eq!(
        (q["pending"].clone(), q["dead"].clone()),
        (json!(5000), json!(0)),
        "{q}"
    );
    let job = d.job(&ids[123]).unwrap();
    assert_eq!(
        (job["status"].clone(), job["attempts"].clone()),
        (json!("pending"), json!(0))
    );
    // Nothing else matched: a second call finds nothing.
    let again = d.ok(json!({"cmd": "retry", "filter": {"status": "dead", "type": "email"}}));
    assert_eq!(again["count"], 0);
    // A bulk cancel of what waits, through the CLI, in two calls of at
    // most 10,000; running jobs are never touched (none run: paused).
    let text = cli_ok(
        &d,
        &[
            "cancel",
            "--status",
            "pending",
            "--type",
            "email",
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert_eq!(text.trim(), "cancelled 5000 jobs", "{text}");
    let q = queue(&d);
    assert_eq!(q["pending"], 0, "{q}");
    assert_eq!(d.finished(&ids[4999]).unwrap()["status"], "cancelled");
    let bad = d.request(json!({"cmd": "cancel", "filter": {"status": "running"}}));
    assert_eq!(bad["error"]["code"], "bad_request", "{bad}");
    let bad = d.request(json!({"cmd": "retry", "filter": {}}));
    assert_eq!(bad["error"]["code"], "bad_request", "{bad}");
}

#[test]
fn a_bulk_call_stops_at_its_bound_and_goes_on_from_its_cursor() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let jobs: Vec<Value> = (0..10_050)
        .map(|i| json!({"name": "bulk", "payload": {"type": "noop", "data": {"i": i}}, "delay": 3600}))
        .collect();
    enqueue_many(&d, jobs);
    let first = d.ok(json!({"cmd": "retry", "filter": {"status": "scheduled", "name": "bulk"}}));
    assert_eq!(first["count"], 10_000, "{first}");
    let next = first["next"].as_str().expect("a cursor").to_string();
    let rest = d.ok(
        json!({"cmd": "retry", "filter": {"status": "scheduled", "name": "bulk"}, "after": next}),
    );
    assert_eq!(
        (rest["count"].clone(), rest["next"].clone()),
        (json!(50), Value::Null)
    );
    assert_eq!(queue(&d)["pending"], 10_050);
}

#[test]
fn dead_jobs_past_their_retention_are_pruned_and_stay_in_the_history() {
    let d = Daemon::start(&[
        ("JOB_DEAD_RETENTION", "2s"),
        ("JOB_COMMAND_ALLOW", "/bin/false"),
    ]);
    let id = {
        let a = d.ok(
            json!({"cmd": "enqueue", "name": "fails", "payload": {"type": "command",
            "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 0}}}),
        );
        a["job"]["id"].as_str().unwrap().to_string()
    };
    d.until(WAIT, "the job to die", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    drain(&d);
    assert!(d.job(&id).is_some(), "not yet past its retention");
    std::thread::sleep(Duration::from_millis(2100));
    drain(&d);
    assert!(d.job(&id).is_none(), "pruned from the queue");
    assert_eq!(d.finished(&id).unwrap()["status"], "dead");
    assert_eq!(queue(&d)["dead"], 0);
}
