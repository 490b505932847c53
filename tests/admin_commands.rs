//! The commands that manage jobs and the daemon, through the real binary:
//! retry, cancel, purge, explain, log_level, metrics (checked with a real
//! Prometheus parser) and the metrics text file. tests/engine.rs already
//! covers retry and purge of a dead job; these cover the other cases.

#[macro_use]
#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/prom.rs"]
mod prom;

use std::time::Duration;

use daemon::{Backend, Daemon};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn code(answer: &Value) -> &str {
    answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

fn reasons(d: &Daemon, id: &str) -> String {
    let a = d.ok(json!({"cmd": "explain", "id": id}));
    a["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn wait_status(d: &Daemon, id: &str, status: &str) -> Value {
    d.until(WAIT, &format!("job {id} to be {status}"), |d| {
        d.job(id).filter(|j| j["status"] == status)
    })
}

fn retry_cancel_and_explain_across_the_statuses(b: Backend) {
    let d = b.start(&[
        ("JOB_COMMAND_ALLOW", "/bin/false:/bin/sleep"),
        // One failure, then a long back-off: the job stays scheduled.
        ("JOB_BACKOFF_BASE_MS", "600000"),
    ]);
    // Backing off after a failure: explain says so, retry makes it pending.
    let a = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 1}}}));
    let failing = a["job"]["id"].as_str().unwrap().to_string();
    let backing_off = wait_status(&d, &failing, "scheduled");
    assert_eq!(backing_off["attempts"], 1);
    let why = reasons(&d, &failing);
    assert!(why.contains("backing off after attempt 1"), "{why}");
    let explain = d.ok(json!({"cmd": "explain", "id": failing}));
    assert_eq!(explain["runnable"], false);
    let retried = d.ok(json!({"cmd": "retry", "id": failing}));
    assert_eq!(retried["job"]["status"], "pending", "{retried}");
    assert_eq!(retried["job"]["attempts"], 0);
    assert_eq!(retried["id"], json!(failing), "the envelope id is echoed");
    // It ran again at once and is backing off once more.
    d.until(WAIT, "the retried job to fail again", |d| {
        d.job(&failing)
            .filter(|j| j["status"] == "scheduled" && j["attempts"] == 1)
    });
    // A dead job: explain gives the error and the way back.
    let a = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 0}}}));
    let dead = a["job"]["id"].as_str().unwrap().to_string();
    wait_status(&d, &dead, "dead");
    let why = reasons(&d, &dead);
    assert!(why.contains("it is dead after 1 of 1 attempts"), "{why}");
    assert!(why.contains("exit"), "the error is given: {why}");

    // A running job: explain names the worker's pid, cancel and retry refuse.
    let a = d.ok(json!({"cmd": "enqueue", "name": "s", "payload": {"type": "command", "data": {"argv": ["/bin/sleep", "4"]}}}));
    let sleeping = a["job"]["id"].as_str().unwrap().to_string();
    wait_status(&d, &sleeping, "running");
    let why = reasons(&d, &sleeping);
    assert!(
        why.contains(&format!("reserved by pid {}", d.pid())),
        "{why}"
    );
    let refused = d.request(json!({"cmd": "cancel", "id": sleeping}));
    assert_eq!(code(&refused), "conflict", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("running")
    );
    assert_eq!(
        code(&d.request(json!({"cmd": "retry", "id": sleeping}))),
        "conflict"
    );

    // A delayed job: explain says so; cancel deletes it.
    let a = d
        .ok(json!({"cmd": "enqueue", "name": "later", "payload": {"type": "noop"}, "delay": 3600}));
    let later = a["job"]["id"].as_str().unwrap().to_string();
    let why = reasons(&d, &later);
    assert!(why.contains("enqueued with a delay"), "{why}");
    assert_eq!(
        d.ok(json!({"cmd": "cancel", "id": later}))["cancelled"],
        json!(later)
    );
    assert!(d.job(&later).is_none());

    // Unknown ids and dead-job cancel.
    for cmd in ["retry", "cancel", "explain"] {
        let a = d.request(json!({"cmd": cmd, "id": "nosuchjob000000"}));
        assert_eq!(code(&a), "not_found", "{cmd}: {a}");
    }
    d.ok(json!({"cmd": "cancel", "id": dead}));
    assert!(d.job(&dead).is_none());
}

fn explain_says_when_automatic_processing_is_off_and_retry_refuses_a_pending_job(b: Backend) {
    let d = b.start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let id = d.enqueue("noop", json!({}));
    let explain = d.ok(json!({"cmd": "explain", "id": id}));
    assert_eq!(explain["runnable"], false, "{explain}");
    assert!(
        explain["reasons"][0]
            .as_str()
            .unwrap()
            .contains("automatic processing is off")
    );
    let a = d.request(json!({"cmd": "retry", "id": id}));
    assert_eq!(code(&a), "conflict", "{a}");
    assert!(
        a["error"]["message"].as_str().unwrap().contains("pending"),
        "{a}"
    );
}

fn purge_deletes_only_dead_jobs_older_than_asked(b: Backend) {
    let d = b.start(&[("JOB_COMMAND_ALLOW", "/bin/false")]);
    let a = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 0}}}));
    let id = a["job"]["id"].as_str().unwrap().to_string();
    wait_status(&d, &id, "dead");
    let kept = d
        .ok(json!({"cmd": "enqueue", "name": "later", "payload": {"type": "noop"}, "delay": 3600}));
    // Dead for less than an hour: kept.
    assert_eq!(
        d.ok(json!({"cmd": "purge", "status": "dead", "older_than": 3600}))["purged"],
        0
    );
    assert!(d.job(&id).is_some());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        d.ok(json!({"cmd": "purge", "status": "dead", "older_than": 1}))["purged"],
        1
    );
    assert!(d.job(&id).is_none());
    assert!(
        d.job(kept["job"]["id"].as_str().unwrap()).is_some(),
        "only dead jobs go"
    );
    for (args, field) in [
        (json!({"status": "pending"}), "status"),
        (json!({}), "status"),
        (json!({"status": "dead", "older_than": -1}), "older_than"),
    ] {
        let mut request = args.clone();
        request["cmd"] = json!("purge");
        let a = d.request(request);
        assert_eq!(code(&a), "bad_request", "{args}: {a}");
        assert!(
            a["error"]["message"].as_str().unwrap().contains(field),
            "{a}"
        );
    }
}

fn log_level_changes_the_filter_at_runtime(b: Backend) {
    let d = b.start(&[]);
    // The worker's "job started" line is at debug: absent at info...
    let first = d.enqueue("noop", json!({}));
    d.until(WAIT, "the first job to finish", |d| {
        d.job(&first).is_none().then_some(())
    });
    assert!(!d.log().contains("job started"), "{}", d.log());
    let a = d.ok(json!({"cmd": "log_level", "level": "debug"}));
    assert_eq!(a["level"], "debug");
    // ...and present once the level is debug, without a restart.
    let second = d.enqueue("noop", json!({}));
    d.until(WAIT, "a debug line in the log", |d| {
        d.log()
            .lines()
            .any(|l| l.contains("DEBUG") && l.contains("job started") && l.contains(&second))
            .then_some(())
    });
    assert!(d.log().contains("log level changed"));
    let a = d.request(json!({"cmd": "log_level", "level": "loud"}));
    assert_eq!(code(&a), "bad_request");
    assert!(
        a["error"]["message"].as_str().unwrap().starts_with("level"),
        "{a}"
    );
    assert_eq!(
        d.ok(json!({"cmd": "log_level", "level": "warn"}))["level"],
        "warn"
    );
}

fn metrics_parse_with_prometheus_client_and_the_text_file_is_written_at_start(b: Backend) {
    let Some(python) = prom::python() else {
        prom::skip("metrics_parse_with_prometheus_client_and_the_text_file_is_written_at_start");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let textfile = temp.path().join("cronq.prom");
    let d = b.start(&[
        ("JOB_MAX_WORKERS", "3"),
        ("JOB_COMMAND_ALLOW", "/bin/false"),
        ("CRONQ_METRICS_TEXTFILE", textfile.to_str().unwrap()),
    ]);
    // Written once at start-up, not only after the first 15 s.
    let text = d.until(Duration::from_secs(5), "the metrics text file", |_| {
        std::fs::read_to_string(&textfile).ok()
    });
    let families = prom::parse(python, &text);
    assert_eq!(
        prom::sample(&families, "cronq_workers_max", "cronq_workers_max", &[]),
        3.0
    );
    let leftovers: Vec<_> = std::fs::read_dir(temp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [std::ffi::OsString::from("cronq.prom")],
        "no temp files are left"
    );

    for _ in 0..2 {
        let id = d.enqueue("noop", json!({}));
        d.until(WAIT, "a noop job to finish", |d| {
            d.job(&id).is_none().then_some(())
        });
    }
    let a = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 0}}}));
    wait_status(&d, a["job"]["id"].as_str().unwrap(), "dead");
    d.ok(json!({"cmd": "trigger", "id": "system_queue"}));

    let text = d.ok(json!({"cmd": "metrics"}))["text"]
        .as_str()
        .unwrap()
        .to_string();
    let families = prom::parse(python, &text);
    let kinds: Vec<(String, String)> = families
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().into(),
                f["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (name, kind) in [
        ("cronq_jobs", "gauge"),
        ("cronq_jobs_succeeded", "counter"),
        ("cronq_jobs_failed", "counter"),
        ("cronq_job_duration_seconds", "histogram"),
        ("cronq_workers_busy", "gauge"),
        ("cronq_workers_max", "gauge"),
        ("cronq_oldest_pending_age_seconds", "gauge"),
        ("cronq_cron_last_run_timestamp_seconds", "gauge"),
        ("cronq_cron_last_success_timestamp_seconds", "gauge"),
    ] {
        assert!(
            kinds.contains(&(name.to_string(), kind.to_string())),
            "{name} ({kind}) missing from {kinds:?}\n{text}"
        );
        assert!(
            !prom::family(&families, name)["help"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    let s = |family: &str, name: &str, labels: &[(&str, &str)]| {
        prom::sample(&families, family, name, labels)
    };
    assert_eq!(
        s(
            "cronq_jobs_succeeded",
            "cronq_jobs_succeeded_total",
            &[("type", "noop")]
        ),
        2.0
    );
    assert_eq!(
        s(
            "cronq_jobs_failed",
            "cronq_jobs_failed_total",
            &[("type", "command")]
        ),
        1.0
    );
    assert_eq!(
        s(
            "cronq_jobs",
            "cronq_jobs",
            &[("type", "command"), ("status", "dead")]
        ),
        1.0
    );
    assert_eq!(
        s(
            "cronq_jobs",
            "cronq_jobs",
            &[("type", "noop"), ("status", "pending")]
        ),
        0.0
    );
    let h = "cronq_job_duration_seconds";
    assert_eq!(
        s(h, "cronq_job_duration_seconds_count", &[("type", "noop")]),
        2.0
    );
    assert_eq!(
        s(
            h,
            "cronq_job_duration_seconds_bucket",
            &[("type", "noop"), ("le", "+Inf")]
        ),
        2.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for family in [
        "cronq_cron_last_run_timestamp_seconds",
        "cronq_cron_last_success_timestamp_seconds",
    ] {
        let t = s(family, family, &[("cron_id", "system_queue")]);
        assert!((now - t).abs() < 60.0, "{family} = {t}, now {now}");
    }
}

on_both_backends! {
    retry_cancel_and_explain_across_the_statuses,
    explain_says_when_automatic_processing_is_off_and_retry_refuses_a_pending_job,
    purge_deletes_only_dead_jobs_older_than_asked,
    log_level_changes_the_filter_at_runtime,
    metrics_parse_with_prometheus_client_and_the_text_file_is_written_at_start,
}
