//! What an operator sees, through the real binary and its real socket:
//! `status` lists the handlers and why one is off, and accounts for every
//! running job; `crons` says what switched a cron off; `enqueue --file`
//! prints a summary; a shutdown drain still answers read-only commands and
//! says what it waits for; a second SIGTERM forces the stop.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use daemon::Daemon;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn cronq(socket: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(daemon::BIN);
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CRONQ_SOCKET")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(d: &Daemon) -> Value {
    d.ok(json!({"cmd": "status"}))
}

#[test]
fn status_lists_every_handler_and_why_one_is_off() {
    let d = Daemon::start(&[]);
    let handlers = status(&d)["handlers"].as_array().unwrap().clone();
    for h in &handlers {
        let keys: Vec<&String> = h.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["enabled", "reason", "type"], "{h}");
    }
    let find = |t: &str| handlers.iter().find(|h| h["type"] == t).unwrap().clone();
    assert_eq!(
        find("noop"),
        json!({"type": "noop", "enabled": true, "reason": null})
    );
    let email = find("email");
    assert_eq!(email["enabled"], false, "{email}");
    assert!(
        email["reason"]
            .as_str()
            .unwrap()
            .contains("SMTP_HOST is not set"),
        "{email}"
    );
    let text = stdout(&cronq(&d.socket, &["status"], None));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("handlers:"))
        .unwrap();
    assert!(line.contains("noop"), "{line}");
    assert!(
        line.contains("off: ") && line.contains("email (SMTP_HOST is not set"),
        "{line}"
    );
}

#[test]
fn crons_say_what_switched_them_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("crons.toml"),
        "[cron.by_file]\nschedule = \"@daily\"\ntype = \"noop\"\nenabled = false\n\n\
         [cron.by_env]\nschedule = \"@daily\"\ntype = \"noop\"\n\n\
         [cron.by_override]\nschedule = \"@daily\"\ntype = \"noop\"\n\n\
         [cron.on]\nschedule = \"@daily\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let d = Daemon::on_dir(dir.path(), &[("ENABLE_BY_ENV", "false")]);
    d.ok(json!({"cmd": "disable", "id": "by_override"}));
    let crons = d.ok(json!({"cmd": "crons"}))["crons"]
        .as_array()
        .unwrap()
        .clone();
    let by = |id: &str| {
        let cron = crons.iter().find(|c| c["id"] == id).unwrap();
        (cron["enabled"].clone(), cron["disabled_by"].clone())
    };
    assert_eq!(by("by_file"), (json!(false), json!("file")));
    assert_eq!(by("by_env"), (json!(false), json!("environment")));
    assert_eq!(by("by_override"), (json!(false), json!("override")));
    assert_eq!(by("on"), (json!(true), Value::Null));
    assert_eq!(by("system_queue"), (json!(true), Value::Null));
    assert_eq!(by("clear_exports"), (json!(false), json!("default")));

    let text = stdout(&cronq(&d.socket, &["crons"], None));
    for (id, why) in [
        ("by_file", "no (file)"),
        ("by_env", "no (environment)"),
        ("by_override", "no (override)"),
    ] {
        let line = text.lines().find(|l| l.starts_with(id)).unwrap();
        assert!(line.contains(why), "{line}");
    }
    // Switched back on, the override no longer says anything.
    let cron = d.ok(json!({"cmd": "enable", "id": "by_override"}))["cron"].clone();
    assert_eq!(cron["disabled_by"], Value::Null, "{cron}");
}

#[test]
fn status_accounts_for_every_running_job() {
    // One worker, no dispatcher: a `system_queue` drain claims all three
    // jobs at once and runs them one after the other. The store counts the
    // three as running from the claim on; `status` must account for them.
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_MAX_WORKERS", "1"),
        ("JOB_COMMAND_ALLOW", "/bin/sleep"),
    ]);
    for _ in 0..3 {
        d.enqueue("command", json!({"argv": ["/bin/sleep", "2"]}));
    }
    let socket = d.socket.clone();
    let drain = std::thread::spawn(move || {
        let mut c = daemon::Client::connect(&socket).unwrap();
        c.request(json!({"cmd": "trigger", "id": "system_queue"}))
    });
    let seen = d.until(WAIT, "status while the drain runs", |d| {
        let s = status(d);
        (s["queue"]["running"] == 3 && s["workers"]["busy"] == 1).then_some(s)
    });
    assert_eq!(seen["workers"]["claimed"], 2, "{seen}");
    let text = stdout(&cronq(&d.socket, &["status"], None));
    assert!(
        !text.contains("0/1 busy\n") || !text.contains(" 3 running"),
        "{text}"
    );
    let answer = drain.join().unwrap();
    assert_eq!(answer["run"]["processed"], 3, "{answer}");
}

#[test]
fn enqueue_file_prints_a_summary_and_lines_only_when_verbose() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    let batch = "{\"name\":\"a\",\"payload\":{\"type\":\"noop\",\"data\":{}},\"unique_key\":\"k1\"}\n\
                 {\"name\":\"b\",\"payload\":{\"type\":\"noop\",\"data\":{}},\"unique_key\":\"k2\"}\n\
                 {\"name\":\"c\",\"payload\":{\"type\":\"noop\",\"data\":{}}}\n";
    let text = stdout(&cronq(&d.socket, &["enqueue", "--file", "-"], Some(batch)));
    assert_eq!(text, "3 jobs: 3 stored\n");
    let again = stdout(&cronq(
        &d.socket,
        &["enqueue", "--file", "-", "--verbose"],
        Some(batch),
    ));
    let lines: Vec<&str> = again.lines().collect();
    assert_eq!(lines.len(), 5, "header, three jobs, summary: {again}");
    assert!(lines[0].starts_with("ID "), "{again}");
    assert_eq!(
        lines[4],
        "3 jobs: 1 stored, 2 duplicates not stored again (their unique keys are taken)"
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("duplicate")).count(),
        2,
        "{again}"
    );
}

/// A daemon running one long command job, seen running.
fn with_a_running_job(seconds: &str, timeout: u32) -> (Daemon, String) {
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sleep")]);
    let id = d.ok(json!({"cmd": "enqueue", "name": "long",
        "payload": {"type": "command", "data": {"argv": ["/bin/sleep", seconds]},
                    "options": {"timeout": timeout}}}))["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.until(WAIT, "the job to run", |d| {
        (status(d)["workers"]["busy"] == 1).then_some(())
    });
    (d, id)
}

#[test]
fn a_drain_answers_read_only_commands_and_says_what_it_waits_for() {
    let (mut d, id) = with_a_running_job("3", 40);
    let before = status(&d);
    assert_eq!(before["draining"], Value::Null, "{before}");
    d.signal(libc::SIGTERM);
    let s = d.until(WAIT, "status to say it drains", |d| {
        let s = status(d);
        s["draining"].is_object().then_some(s)
    });
    assert_eq!(s["draining"]["running"], 1, "{s}");
    assert_eq!(s["draining"]["jobs"], json!([id]), "{s}");
    let until = s["draining"]["until"].as_str().expect("until").to_string();
    let until_ms = until
        .parse::<jiff::Timestamp>()
        .expect("an RFC 3339 time")
        .as_millisecond();
    let now_ms = jiff::Timestamp::now().as_millisecond();
    assert!(
        until_ms > now_ms && until_ms <= now_ms + 41_000,
        "until {until} is within the job's 40 s timeout"
    );
    // Read-only commands answer; work is refused as unavailable.
    d.ok(json!({"cmd": "jobs"}));
    d.ok(json!({"cmd": "job", "id": id}));
    d.ok(json!({"cmd": "crons"}));
    d.ok(json!({"cmd": "ping"}));
    let refused = d.request(json!({"cmd": "enqueue", "name": "n", "payload": {"type": "noop"}}));
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{refused}"
    );
    let refused = d.request(json!({"cmd": "cancel", "id": id}));
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let text = stdout(&cronq(&d.socket, &["status"], None));
    assert!(
        text.contains(&format!("waiting for 1 running job(s) ({id})")),
        "{text}"
    );
    let status = d.wait(WAIT);
    assert!(status.success(), "a drain that ends exits 0: {status}");
    assert!(
        d.log().contains("job finished"),
        "it waited for the job: {}",
        d.log()
    );
}

/// Processes whose command line is exactly `argv`.
fn processes(argv: &[&str]) -> usize {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .count()
}

#[test]
fn a_second_sigterm_forces_the_stop_and_hands_the_job_back() {
    // A duration no other test uses, to find its process.
    let seconds = "41.317";
    let (mut d, id) = with_a_running_job(seconds, 60);
    assert_eq!(processes(&["/bin/sleep", seconds]), 1);
    d.signal(libc::SIGTERM);
    d.until(WAIT, "the drain", |d| {
        status(d)["draining"].is_object().then_some(())
    });
    d.signal(libc::SIGTERM);
    let status = d.wait(WAIT);
    assert_eq!(status.code(), Some(1), "a forced stop exits 1");
    let log = d.log();
    assert!(log.contains("second SIGTERM: forcing the stop"), "{log}");
    assert!(log.contains(&id), "the log names the job: {log}");
    let gone = Instant::now() + Duration::from_secs(10);
    while processes(&["/bin/sleep", seconds]) > 0 {
        assert!(
            Instant::now() < gone,
            "the job's process outlived the forced stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Handed back whole: pending again, its attempt not counted.
    let dir = d.dir.clone();
    let again = Daemon::on_dir(
        &dir,
        &[
            ("JOB_COMMAND_ALLOW", "/bin/sleep"),
            ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ],
    );
    let job = again.job(&id).expect("the job is still queued");
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["attempts"], 0, "{job}");
    drop(d);
}
