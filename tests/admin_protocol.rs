//! The admin socket against PROTOCOL.md: transport, envelope, error codes,
//! limits. Every test talks to the real binary over its real socket.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/tools.rs"]
mod tools;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon::Daemon;
use serde_json::{Value, json};

fn code(answer: &Value) -> &str {
    answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

fn message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or("")
}

#[test]
fn socat_prints_the_answer_and_exits_promptly() {
    if !tools::have("socat") {
        return;
    }
    let d = Daemon::start(&[]);
    let started = Instant::now();
    let mut socat = Command::new("socat")
        .arg("-")
        .arg(format!("UNIX-CONNECT:{}", d.socket.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("socat must be installed (.ci/run installs it)");
    socat
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"cmd\":\"ping\",\"id\":7}\n")
        .unwrap();
    let out = socat.wait_with_output().unwrap();
    assert!(out.status.success());
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer, json!({"ok": true, "id": 7, "pong": true}));
    // Without -t socat waits 0.5 s after EOF only if the server keeps the
    // connection open; the server closes once it has answered.
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order_and_half_close_answers_all() {
    let d = Daemon::start(&[]);
    let mut c = d.client();
    let mut batch = String::new();
    for i in 0..50 {
        batch.push_str(&format!("{{\"cmd\":\"ping\",\"id\":{i}}}\n\n"));
    }
    c.send_raw(batch.as_bytes());
    c.writer.shutdown(std::net::Shutdown::Write).unwrap();
    for i in 0..50 {
        let answer = c.read_line().expect("answer");
        assert_eq!(answer["id"], i);
    }
    assert!(c.closed(), "the server closes after answering everything");
}

#[test]
fn bad_json_keeps_the_connection_usable() {
    let d = Daemon::start(&[]);
    let mut c = d.client();
    for bad in [
        &b"not json\n"[..],
        b"{\"cmd\":\n",
        b"\xff\xfe{}\n",
        b"[1,2]\n",
    ] {
        c.send_raw(bad);
        let answer = c.read_line().unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        let expected = if bad == b"[1,2]\n" {
            "bad_request"
        } else {
            "bad_json"
        };
        assert_eq!(code(&answer), expected, "{answer}");
    }
    assert!(message(&c.request(json!({"cmd": "ping"}))).is_empty());
    let utf8 = {
        c.send_raw(b"\xff\n");
        c.read_line().unwrap()
    };
    assert!(message(&utf8).contains("UTF-8"), "{utf8}");
}

#[test]
fn envelope_errors_name_what_is_wrong_and_echo_the_id() {
    let d = Daemon::start(&[]);
    let mut c = d.client();
    let a = c.request(json!({"id": "x"}));
    assert_eq!((code(&a), &a["id"]), ("bad_request", &json!("x")));
    assert!(message(&a).contains("cmd"));
    let a = c.request(json!({"cmd": 5}));
    assert_eq!(code(&a), "bad_request");
    let a = c.request(json!({"cmd": "frobnicate", "id": [1]}));
    assert_eq!((code(&a), &a["id"]), ("unknown_command", &json!([1])));
    let a = c.request(json!({"cmd": "ping", "extra": 1}));
    assert_eq!(code(&a), "bad_request");
    assert!(message(&a).contains("extra"), "{a}");
    let a = c.request(json!({"cmd": "jobs", "limit": 1001}));
    assert!(message(&a).starts_with("limit"), "{a}");
    let a = c.request(json!({"cmd": "jobs", "limit": "ten"}));
    assert!(message(&a).contains("limit"), "{a}");
    let a = c.request(json!({"cmd": "jobs", "status": "done"}));
    assert!(message(&a).starts_with("status"), "{a}");
    let a = c.request(json!({"cmd": "jobs", "since": "yesterday"}));
    assert!(message(&a).starts_with("since"), "{a}");
    let a = c.request(json!({"cmd": "job"}));
    assert!(message(&a).contains("id"), "{a}");
    let a = c.request(json!({"cmd": "job", "id": "nosuchjob000000"}));
    assert_eq!(code(&a), "not_found");
}

#[test]
fn an_over_long_line_gets_too_large_and_the_connection_closes() {
    let d = Daemon::start(&[("CRONQ_MAX_REQUEST_BYTES", "4096")]);
    let mut c = d.client();
    // Exactly at the limit is fine.
    let pad = "x".repeat(4096 - r#"{"cmd":"ping","id":""}"#.len());
    let a = c.request(json!({"cmd": "ping", "id": pad}));
    assert_eq!(a["ok"], true, "{a}");
    let mut long = vec![b'{'; 1];
    long.extend(std::iter::repeat_n(b' ', 10_000));
    c.send_raw(&long);
    let a = c.read_line().unwrap();
    assert_eq!(code(&a), "too_large");
    assert!(message(&a).contains("CRONQ_MAX_REQUEST_BYTES"), "{a}");
    assert!(c.closed());
    // The daemon still serves.
    d.ok(json!({"cmd": "ping"}));
}

#[test]
fn the_connection_limit_answers_unavailable_beyond_roots_reserve() {
    // Root (this test) may use its share of the pool, then a reserve of 4
    // that no other uid gets (src/admin/slots.rs); past both: unavailable.
    let d = Daemon::start(&[
        ("CRONQ_MAX_CONNECTIONS", "2"),
        ("CRONQ_MAX_CONNECTIONS_PER_UID", "2"),
    ]);
    // The start-up probe's connection must be gone first.
    d.until(Duration::from_secs(5), "the probe's slot to free", |d| {
        try_ping(d).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut held = Vec::new();
    for _ in 0..2 + 4 {
        let mut c = d.client();
        assert_eq!(c.request(json!({"cmd": "ping"}))["pong"], true);
        held.push(c);
    }
    let mut c = d.client();
    let answer = c.read_line().expect("a refusal");
    assert_eq!(code(&answer), "unavailable");
    assert!(
        message(&answer).contains("CRONQ_MAX_CONNECTIONS"),
        "{answer}"
    );
    held.truncate(1);
    d.until(Duration::from_secs(5), "a free connection", |d| {
        try_ping(d).then_some(())
    });
}

/// A ping that reports a refused or broken connection as `false`.
fn try_ping(d: &Daemon) -> bool {
    use std::io::{BufRead, BufReader};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(&d.socket) else {
        return false;
    };
    if s.write_all(b"{\"cmd\":\"ping\"}\n").is_err() {
        return false;
    }
    let mut line = String::new();
    let _ = BufReader::new(&s).read_line(&mut line);
    line.contains("\"pong\":true")
}

#[test]
fn idle_connections_are_closed() {
    let d = Daemon::start(&[("CRONQ_IDLE_TIMEOUT_SECONDS", "1")]);
    let mut c = d.client();
    c.request(json!({"cmd": "ping"}));
    let started = Instant::now();
    assert!(c.closed());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn status_reports_the_documented_fields() {
    let d = Daemon::start(&[("JOB_MAX_WORKERS", "3")]);
    let s = d.ok(json!({"cmd": "status"}));
    for key in [
        "version",
        "protocol",
        "pid",
        "uptime_s",
        "db",
        "sqlite_version",
        "ready",
        "workers",
        "queue",
        "last_tick",
    ] {
        assert!(s.get(key).is_some(), "status lacks {key}: {s}");
    }
    assert_eq!(s["protocol"], 1);
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["ready"], true);
    assert_eq!(s["workers"]["max"], 3);
    for key in ["pending", "scheduled", "running", "dead"] {
        assert_eq!(s["queue"][key], 0);
    }
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let d = Daemon::start(&[]);
    let out = Command::new(daemon::BIN)
        .arg("daemon")
        .current_dir(&d.dir)
        .env("LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another cronq is running on"), "{stderr}");
    d.ok(json!({"cmd": "ping"}));
}

#[test]
fn a_stale_socket_left_by_a_crash_is_replaced() {
    let mut d = Daemon::start(&[]);
    d.kill();
    assert!(d.socket.exists());
    d.spawn();
    d.ok(json!({"cmd": "ping"}));
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("JOB_MAX_WORKERS", "lots"),
        ("JOB_BATCH_SIZE", "0"),
        ("LOG_LEVEL", "loud"),
        ("CRON_TZ", "Mars/Olympus"),
    ] {
        let out = Command::new(daemon::BIN)
            .arg("daemon")
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(var) || stderr.contains("Mars/Olympus"),
            "{var}: {stderr}"
        );
    }
}

#[test]
fn the_socket_is_0660_in_a_0750_folder() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start(&[]);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let dir = std::fs::metadata(d.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir, 0o750);
}

#[test]
fn a_key_given_twice_is_bad_json_at_every_level_and_stores_nothing() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let mut c = d.client();
    for line in [
        r#"{"cmd":"ping","cmd":"status"}"#,
        r#"{"cmd":"enqueue","name":"a","name":"b","payload":{"type":"noop"}}"#,
        r#"{"cmd":"enqueue","name":"a","payload":{"type":"noop","data":{"k":1,"k":2}}}"#,
        r#"{"cmd":"enqueue","jobs":[{"name":"a","payload":{"type":"noop","type":"noop"}}]}"#,
    ] {
        c.send_raw(format!("{line}\n").as_bytes());
        let answer = c.read_line().expect("an answer");
        assert_eq!(code(&answer), "bad_json", "{line} -> {answer}");
        assert!(message(&answer).contains("appears twice"), "{answer}");
    }
    // The connection stays usable, and nothing was stored.
    assert_eq!(c.request(json!({"cmd": "ping"}))["pong"], true);
    let jobs = d.ok(json!({"cmd": "jobs"}));
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
}

#[test]
fn run_at_and_delay_end_with_year_9999_and_come_back_as_timestamps() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let enqueue = |extra: Value| {
        let mut job = json!({"cmd": "enqueue", "name": "far", "payload": {"type": "noop"}});
        job.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        d.request(job)
    };
    let last = enqueue(json!({"run_at": "9999-12-31T23:59:59.999Z"}));
    assert_eq!(last["job"]["run_at"], "9999-12-31T23:59:59.999Z", "{last}");
    assert_eq!(last["job"]["status"], "scheduled");
    let id = last["job"]["id"].as_str().unwrap();
    assert_eq!(
        d.ok(json!({"cmd": "job", "id": id}))["job"]["run_at"],
        "9999-12-31T23:59:59.999Z"
    );
    for (extra, field) in [
        (json!({"delay": 9223372036854775807u64}), "delay"),
        (json!({"delay": 253402300800u64}), "delay"),
        (json!({"run_at": "10000-01-01T00:00:00Z"}), "run_at"),
    ] {
        let answer = enqueue(extra.clone());
        assert_eq!(code(&answer), "bad_request", "{extra} -> {answer}");
        assert!(
            message(&answer).starts_with(&format!("{field}: ")),
            "{answer}"
        );
    }
    let a = enqueue(json!({"delay": 9223372036854775807u64}));
    assert!(
        message(&a).contains("until 9999-12-31T23:59:59.999Z"),
        "{a}"
    );
    // A day's delay is fine, and every job's times are timestamps.
    enqueue(json!({"delay": 86400}));
    for job in d.ok(json!({"cmd": "jobs"}))["jobs"].as_array().unwrap() {
        for key in ["run_at", "created", "updated"] {
            assert!(job[key].is_string(), "{key} of {job}");
        }
    }
    assert_eq!(
        d.ok(json!({"cmd": "jobs"}))["jobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_nul_in_a_text_field_of_a_job_is_refused_naming_the_field() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    for (field, job) in [
        ("name", json!({"name": "a\0b", "payload": {"type": "noop"}})),
        (
            "description",
            json!({"name": "a", "description": "x\0", "payload": {"type": "noop"}}),
        ),
        (
            "unique_key",
            json!({"name": "a", "unique_key": "\0", "payload": {"type": "noop"}}),
        ),
    ] {
        let mut request = job.clone();
        request["cmd"] = json!("enqueue");
        let answer = d.request(request);
        assert_eq!(code(&answer), "bad_request", "{answer}");
        assert_eq!(
            message(&answer),
            format!("{field}: must not contain a NUL character")
        );
        let batch = d.request(
            json!({"cmd": "enqueue", "jobs": [{"name": "ok", "payload": {"type": "noop"}}, job]}),
        );
        assert_eq!(
            message(&batch),
            format!("jobs[1].{field}: must not contain a NUL character")
        );
    }
    assert_eq!(d.ok(json!({"cmd": "jobs"}))["jobs"], json!([]));
}
