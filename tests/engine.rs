//! The job lifecycle through the real binary: enqueue, run, retry, bury,
//! timeouts, the system_queue cron, shutdown drain and crash recovery.

#[macro_use]
#[path = "support/daemon.rs"]
mod daemon;

use std::time::Duration;

use daemon::{Backend, Daemon};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn gone(d: &Daemon, id: &str) {
    d.until(WAIT, &format!("job {id} to finish"), |d| {
        d.job(id).is_none().then_some(())
    });
}

fn status_of(d: &Daemon, id: &str) -> Option<String> {
    d.job(id).map(|j| j["status"].as_str().unwrap().to_string())
}

fn an_enqueued_job_runs_at_once_and_is_deleted(b: Backend) {
    let d = b.start(&[]);
    assert_eq!(d.ok(json!({"cmd": "status"}))["backend"], b.name());
    let id = d.enqueue("noop", json!({}));
    assert_eq!(id.len(), 15);
    gone(&d, &id);
    let stats = d.ok(json!({"cmd": "stats"}));
    assert_eq!(stats["types"]["noop"]["succeeded"], 1, "{stats}");
    assert!(d.log().contains("job finished"));
}

fn the_replaced_systems_request_body_is_accepted(b: Backend) {
    let d = b.start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let a = d.ok(json!({
        "cmd": "enqueue",
        "name": "welcome_email",
        "description": "Send welcome email to new user",
        "payload": {"type": "noop", "data": {"user": "u1"}, "options": {"retry_count": 5, "timeout": 10}}
    }));
    let job = &a["job"];
    assert_eq!(job["max_attempts"], 6);
    assert_eq!(
        job["payload"]["options"],
        json!({"retry_count": 5, "timeout": 10})
    );
    assert_eq!(job["status"], "pending");
    assert_eq!(job["description"], "Send welcome email to new user");
}

fn a_batch_is_stored_all_or_nothing(b: Backend) {
    let d = b.start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let good = json!({"name": "a", "payload": {"type": "noop", "data": {}}});
    let bad = json!({"name": "b", "payload": {"type": "nosuch", "data": {}}});
    let a = d.request(json!({"cmd": "enqueue", "jobs": [good, bad]}));
    assert_eq!(a["error"]["code"], "bad_request");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].payload.type"),
        "{a}"
    );
    let jobs = d.ok(json!({"cmd": "jobs"}));
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);

    let a = d.ok(json!({"cmd": "enqueue", "jobs": [good, good, good]}));
    assert_eq!(a["jobs"].as_array().unwrap().len(), 3);
    let too_many: Vec<Value> = (0..10_001).map(|_| good.clone()).collect();
    let a = d.request(json!({"cmd": "enqueue", "jobs": too_many}));
    assert_eq!(a["error"]["code"], "too_large", "{a}");
    let a = d.request(json!({"cmd": "enqueue", "jobs": []}));
    assert_eq!(a["error"]["code"], "bad_request");
    let a = d.request(json!({"cmd": "enqueue", "jobs": [{"name": "x", "payload": {"type": "noop"}, "colour": 1}]}));
    assert!(
        a["error"]["message"].as_str().unwrap().contains("colour"),
        "{a}"
    );
}

fn every_bad_job_field_is_named(b: Backend) {
    let d = b.start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("CRONQ_MAX_PAYLOAD_BYTES", "1024"),
    ]);
    let cases = [
        (json!({"payload": {"type": "noop"}}), "name"),
        (json!({"name": "", "payload": {"type": "noop"}}), "name"),
        (json!({"name": "x"}), "payload"),
        (
            json!({"name": "x", "payload": {"type": "noop", "data": []}}),
            "payload.data",
        ),
        (
            json!({"name": "x", "payload": {"type": "noop", "options": {"retry_count": 101}}}),
            "payload.options.retry_count",
        ),
        (
            json!({"name": "x", "payload": {"type": "noop", "options": {"timeout": 0}}}),
            "payload.options.timeout",
        ),
        (
            json!({"name": "x", "payload": {"type": "noop", "options": {"timeout": -1}}}),
            "payload.options.timeout",
        ),
        (
            json!({"name": "x", "payload": {"type": "noop"}, "delay": 5, "run_at": "2030-01-01T00:00:00Z"}),
            "delay",
        ),
        (
            json!({"name": "x", "payload": {"type": "noop"}, "run_at": "soon"}),
            "run_at",
        ),
        (
            json!({"name": "x", "payload": {"type": "noop"}, "priority": 1.5}),
            "priority",
        ),
        (
            json!({"name": "x", "payload": {"type": "email", "data": {}}}),
            "payload.type",
        ),
    ];
    for (job, field) in cases {
        let mut request = job.clone();
        request["cmd"] = json!("enqueue");
        let a = d.request(request);
        assert_eq!(a["error"]["code"], "bad_request", "{job} -> {a}");
        assert!(
            a["error"]["message"].as_str().unwrap().contains(field),
            "{job} -> {a}"
        );
    }
    let a = d.request(json!({"cmd": "enqueue", "name": "x", "payload": {"type": "noop", "data": {"blob": "x".repeat(2000)}}}));
    assert_eq!(a["error"]["code"], "too_large", "{a}");
    assert_eq!(d.ok(json!({"cmd": "jobs"}))["jobs"], json!([]));
}

fn a_unique_key_returns_the_waiting_job(b: Backend) {
    let d = b.start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let req =
        json!({"cmd": "enqueue", "name": "x", "payload": {"type": "noop"}, "unique_key": "user-1"});
    let first = d.ok(req.clone());
    let second = d.ok(req);
    assert_eq!(second["job"]["id"], first["job"]["id"]);
    assert_eq!(second["job"]["duplicate"], true);
    assert_eq!(
        d.ok(json!({"cmd": "jobs"}))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn delayed_jobs_are_scheduled_then_run(b: Backend) {
    let d = b.start(&[]);
    let a = d.ok(json!({"cmd": "enqueue", "name": "x", "payload": {"type": "noop"}, "delay": 1}));
    let id = a["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(a["job"]["status"], "scheduled");
    gone(&d, &id);
}

fn with_automatic_processing_off_trigger_system_queue_drains_a_batch(b: Backend) {
    let d = b.start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_BATCH_SIZE", "3"),
    ]);
    let ids: Vec<String> = (0..5).map(|_| d.enqueue("noop", json!({}))).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status_of(&d, &ids[0]).as_deref(), Some("pending"));
    let a = d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert_eq!(a["run"]["processed"], 3, "{a}");
    assert_eq!(a["run"]["failed"], 0);
    assert_eq!(a["run"]["status"], "ok");
    assert_eq!(a["run"]["trigger"], "manual");
    let left = d.ok(json!({"cmd": "jobs"}))["jobs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(left, 2);
    let explain = d.ok(json!({"cmd": "explain", "id": ids[4]}));
    assert_eq!(explain["runnable"], false);
    assert!(
        explain["reasons"][0]
            .as_str()
            .unwrap()
            .contains("ENABLE_SYSTEM_QUEUE_CRON"),
        "{explain}"
    );
}

fn failures_back_off_then_bury_with_their_errors(b: Backend) {
    let d = b.start(&[
        ("JOB_COMMAND_ALLOW", "/bin/false"),
        ("JOB_BACKOFF_BASE_MS", "200"),
    ]);
    let a = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/false"]}, "options": {"retry_count": 2}}}));
    let id = a["job"]["id"].as_str().unwrap().to_string();
    let dead = d.until(WAIT, "the job to die", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    assert_eq!(dead["attempts"], 3);
    assert!(
        dead["last_error"].as_str().unwrap().contains("exit"),
        "{dead}"
    );
    let full = d.ok(json!({"cmd": "job", "id": id}));
    assert_eq!(full["errors"].as_array().unwrap().len(), 3);
    let stats = d.ok(json!({"cmd": "stats"}));
    assert_eq!(stats["types"]["command"]["failed"], 3);
    assert_eq!(stats["types"]["command"]["dead"], 1);
    // retry brings it back with fresh attempts; purge removes the dead.
    let retried = d.ok(json!({"cmd": "retry", "id": id}));
    assert_eq!(retried["job"]["attempts"], 0);
    d.until(WAIT, "the job to die again", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    assert_eq!(d.ok(json!({"cmd": "purge", "status": "dead"}))["purged"], 1);
    assert!(d.job(&id).is_none());
}

fn a_permanent_error_buries_at_once(b: Backend) {
    let d = b.start(&[("JOB_COMMAND_ALLOW", "/bin/true")]);
    // Allowed at enqueue, then taken off the allow list by a restart: the
    // handler's check at run time is a permanent failure.
    let a = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command", "data": {"argv": ["/bin/true"]}}, "delay": 2}));
    let id = a["job"]["id"].as_str().unwrap().to_string();
    let mut d = d;
    d.kill();
    let dir = d.dir.clone();
    let d2 = b.on_dir(&dir, &[("JOB_COMMAND_ALLOW", "/bin/false")]);
    let dead = d2.until(WAIT, "the job to die", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    assert_eq!(dead["attempts"], 1, "{dead}");
    drop(d);
}

fn an_attempt_over_its_timeout_fails(b: Backend) {
    let d = b.start(&[("JOB_COMMAND_ALLOW", "/bin/sleep")]);
    let a = d.ok(json!({"cmd": "enqueue", "name": "s", "payload": {"type": "command", "data": {"argv": ["/bin/sleep", "30"]}, "options": {"retry_count": 0, "timeout": 1}}}));
    let id = a["job"]["id"].as_str().unwrap().to_string();
    let dead = d.until(WAIT, "the job to time out", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    assert!(
        dead["last_error"].as_str().unwrap().contains("timed out"),
        "{dead}"
    );
}

fn sigterm_lets_a_running_job_finish_and_keeps_unstarted_ones(b: Backend) {
    let mut d = b.start(&[
        ("JOB_COMMAND_ALLOW", "/bin/sleep"),
        ("JOB_MAX_WORKERS", "1"),
    ]);
    let running = d.enqueue("command", json!({"argv": ["/bin/sleep", "2"]}));
    let waiting = d.enqueue("command", json!({"argv": ["/bin/sleep", "2"]}));
    // Reserved is not yet started: a job claimed but not in a worker when
    // SIGTERM comes is handed back, so wait for the worker too.
    d.until(WAIT, "the first job to run in a worker", |d| {
        let busy = d.ok(json!({"cmd": "status"}))["workers"]["busy"] == 1;
        (busy && status_of(d, &running).as_deref() == Some("running")).then_some(())
    });
    let status = d.stop();
    assert!(status.success(), "{status}");
    assert!(d.log().contains("cronq stopped"));
    let dir = d.dir.clone();
    let d2 = b.on_dir(&dir, &[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    assert!(
        d2.job(&running).is_none(),
        "the running job finished before exit"
    );
    let left = d2.job(&waiting).expect("the unstarted job is kept");
    assert_eq!(left["status"], "pending");
    assert_eq!(left["attempts"], 0, "an unstarted job used no attempt");
    drop(d);
}

fn after_kill_9_a_restart_recovers_the_running_job_at_once(b: Backend) {
    let mut d = b.start(&[("JOB_COMMAND_ALLOW", "/bin/sleep")]);
    let id = d.enqueue("command", json!({"argv": ["/bin/sleep", "30"]}));
    d.until(WAIT, "the job to run", |d| {
        (status_of(d, &id).as_deref() == Some("running")).then_some(())
    });
    d.kill();
    let dir = d.dir.clone();
    let d2 = b.on_dir(&dir, &[("JOB_COMMAND_ALLOW", "/bin/sleep")]);
    // Not after JOB_RESERVATION_TIMEOUT (5 minutes): at start-up.
    let job = d2.until(Duration::from_secs(5), "the job to be claimed again", |d| {
        d.job(&id).filter(|j| j["attempts"] == 2)
    });
    assert_eq!(job["status"], "running");
    assert!(
        d2.log()
            .contains("released a reservation whose holder is gone")
    );
    drop(d);
}

on_both_backends! {
    an_enqueued_job_runs_at_once_and_is_deleted,
    the_replaced_systems_request_body_is_accepted,
    a_batch_is_stored_all_or_nothing,
    every_bad_job_field_is_named,
    a_unique_key_returns_the_waiting_job,
    delayed_jobs_are_scheduled_then_run,
    with_automatic_processing_off_trigger_system_queue_drains_a_batch,
    failures_back_off_then_bury_with_their_errors,
    a_permanent_error_buries_at_once,
    an_attempt_over_its_timeout_fails,
    sigterm_lets_a_running_job_finish_and_keeps_unstarted_ones,
    after_kill_9_a_restart_recovers_the_running_job_at_once,
}
