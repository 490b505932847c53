//! The `command` handler through the real daemon, outside systemd: the
//! environment a job may set (JOB_COMMAND_ENV_ALLOW) at enqueue and for rows
//! that reach the table by other roads, a job's own caps (refused where they
//! cannot be enforced), warnings about allowed programs that are missing,
//! and that a command dies with a daemon killed outright
//! (PR_SET_PDEATHSIG). tests/nspawn_boot.sh proves the cgroup mode under a
//! real systemd.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::time::Duration;

use daemon::Daemon;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const SH: &str = "/bin/sh";

fn enqueue(d: &Daemon, data: Value) -> Value {
    d.request(json!({"cmd": "enqueue", "name": "c", "payload": {"type": "command", "data": data}}))
}

fn error_message(answer: &Value) -> &str {
    assert_eq!(answer["ok"], false, "{answer}");
    answer["error"]["message"].as_str().unwrap_or_default()
}

/// Inserts a job row straight into the daemon's database, as another
/// program may, and returns its id.
fn insert_row(d: &Daemon, payload: Value) -> String {
    let conn = rusqlite::Connection::open(d.dir.join("cronq-data/cronq.db")).expect("open the db");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.query_row(
        "INSERT INTO queues (name, payload) VALUES ('straight_in', ?1) RETURNING id",
        [payload.to_string()],
        |row| row.get(0),
    )
    .expect("insert a row")
}

#[test]
fn the_environment_a_job_may_set_is_default_deny() {
    let d = Daemon::start(&[
        ("JOB_COMMAND_ALLOW", SH),
        ("JOB_COMMAND_ENV_ALLOW", "GREETING:TZ"),
    ]);
    let dir = tempfile::tempdir().expect("a temp dir");

    // Refused at enqueue, naming the variable; a listed name beside it does
    // not make the job acceptable.
    for (name, value) in [
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("BASH_FUNC_env%%", "() { id > /tmp/pwn; }"),
        ("PATH", "/tmp/evilbin"),
        ("PYTHONPATH", "/tmp/evil"),
    ] {
        let a = enqueue(
            &d,
            json!({"argv": [SH, "-c", "true"], "env": {"GREETING": "hi", name: value}}),
        );
        assert_eq!(a["error"]["code"], "bad_request", "{a}");
        let m = error_message(&a);
        assert!(
            m.starts_with(&format!(
                "payload.data: env.{name}: not in JOB_COMMAND_ENV_ALLOW"
            )),
            "{m}"
        );
    }

    // A row inserted straight into the table goes dead with a readable
    // error, and never runs.
    let ran = dir.path().join("ran");
    let id = insert_row(
        &d,
        json!({"type": "command", "data": {
            "argv": [SH, "-c", format!("touch {}", ran.display())],
            "env": {"LD_PRELOAD": "/tmp/evil.so"}}}),
    );
    d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    let job = d.until(WAIT, "the straight-in row to go dead", |d| {
        d.job(&id).filter(|j| j["status"] == "dead")
    });
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(
            "payload.data: env.LD_PRELOAD: not in JOB_COMMAND_ENV_ALLOW, and never allowed"
        ),
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "permanent: no retries: {job}");
    assert!(!ran.exists(), "the refused job ran");

    // A listed name passes through, and only it: PATH stays the default.
    let out = dir.path().join("out");
    let a = d.ok(json!({"cmd": "enqueue", "name": "c", "payload": {"type": "command", "data": {
        "argv": [SH, "-c", format!("echo \"$GREETING|$TZ|$PATH|${{HOME:-none}}\" > {}", out.display())],
        "env": {"GREETING": "hello world", "TZ": "UTC"}}}}));
    let id = a["job"]["id"].as_str().expect("an id").to_string();
    d.until(WAIT, "the allowed job to finish", |d| {
        d.job(&id).is_none().then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(&out).expect("the job wrote its environment"),
        "hello world|UTC|/usr/local/bin:/usr/bin:/bin|none\n"
    );
}

#[test]
fn a_jobs_own_caps_are_refused_where_they_cannot_be_enforced() {
    // Outside a delegated cgroup nothing can cap a job's memory: a job that
    // asks is refused, rather than run without the cap it asked for.
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", SH)]);
    for (option, value) in [("memory_max", json!("64M")), ("tasks_max", json!(8))] {
        let a = d.request(
            json!({"cmd": "enqueue", "name": "c", "payload": {"type": "command",
            "data": {"argv": [SH, "-c", "true"]}, "options": {option: value}}}),
        );
        let m = error_message(&a);
        assert!(
            m.starts_with(&format!(
                "payload.options.{option}: cannot be enforced: command jobs run in process groups here"
            )),
            "{m}"
        );
    }
    // Bad values are named, whatever the handler.
    let a = d.request(
        json!({"cmd": "enqueue", "name": "c", "payload": {"type": "command",
        "data": {"argv": [SH]}, "options": {"memory_max": "lots"}}}),
    );
    assert!(
        error_message(&a).starts_with("payload.options.memory_max: \"lots\" is not a size"),
        "{a}"
    );
    let a = d.request(
        json!({"cmd": "enqueue", "name": "c", "payload": {"type": "noop",
        "options": {"tasks_max": 4}}}),
    );
    assert_eq!(
        error_message(&a),
        "payload.options.tasks_max: the noop handler does not enforce resource limits"
    );
    assert!(
        d.log()
            .contains("command jobs run each in a process group of its own, not a cgroup"),
        "{}",
        d.log()
    );
}

#[test]
fn caps_the_daemon_cannot_enforce_switch_the_handler_off() {
    let d = Daemon::start(&[
        ("JOB_COMMAND_ALLOW", SH),
        ("JOB_COMMAND_MEMORY_MAX", "512M"),
    ]);
    let a = enqueue(&d, json!({"argv": [SH, "-c", "true"]}));
    let m = error_message(&a);
    assert!(
        m.starts_with(
            "payload.type: the handler for job type \"command\" is disabled: \
             JOB_COMMAND_MEMORY_MAX=512M cannot be enforced"
        ),
        "{m}"
    );
}

#[test]
fn allowed_programs_that_cannot_run_are_warned_about_at_start_up() {
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sh:/nonexistent/backup")]);
    let log = d.log();
    assert!(
        log.contains("JOB_COMMAND_ALLOW: /nonexistent/backup does not exist"),
        "{log}"
    );
    assert!(!log.contains("JOB_COMMAND_ALLOW: /bin/sh"), "{log}");
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .and_then(|s| s.trim_start().chars().next()),
            Some('Z') | Some('X')
        ),
    }
}

fn read_pid(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[test]
fn a_command_dies_with_a_daemon_killed_outright() {
    let mut d = Daemon::start(&[("JOB_COMMAND_ALLOW", SH)]);
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pid");
    // `exec` makes the sleep the daemon's own child.
    let id = d.enqueue(
        "command",
        json!({"argv": [SH, "-c", format!("echo $$ > {}; exec sleep 1000", pid_file.display())]}),
    );
    let pid = d.until(WAIT, "the command to start", |_| read_pid(&pid_file));
    assert!(alive(pid));
    d.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if std::time::Instant::now() > deadline {
            // SAFETY: a pid this test's job wrote; SIGKILL cleans up.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("job {id}'s command (pid {pid}) outlived the daemon killed with SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
