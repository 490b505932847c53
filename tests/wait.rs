//! Waiting for jobs and stopping them, end to end: the real CLI against the
//! real daemon. `enqueue --wait`, `wait ID...` and `trigger ID --wait` exit
//! 0 when the job succeeded, 1 when it went dead or was cancelled, 4 on the
//! timeout; `cancel --force` ends a running command's processes and the
//! job ends cancelled; the `wait` command over a raw socket.

#[path = "support/daemon.rs"]
mod daemon;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use daemon::Daemon;
use serde_json::{Value, json};

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cronq(d: &Daemon, args: &[&str]) -> Ran {
    let out = Command::new(daemon::BIN)
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .env_remove("CRONQ_SOCKET")
        .output()
        .unwrap();
    Ran {
        code: out.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn command_job(d: &Daemon, script: &str, retries: u32) -> String {
    let a = d.ok(
        json!({"cmd": "enqueue", "name": "script", "payload": {"type": "command",
        "data": {"argv": ["/bin/sh", "-c", script]}, "options": {"retry_count": retries}}}),
    );
    a["job"]["id"].as_str().unwrap().to_string()
}

#[test]
fn enqueue_wait_exits_by_the_outcome_of_its_job() {
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sh")]);
    // A noop ends within a millisecond, before the wait arrives: its end
    // is still known.
    let r = cronq(&d, &["enqueue", "noop", "--wait"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("enqueued job "), "{}", r.stdout);
    assert!(
        r.stdout.contains("(noop) succeeded after 1 attempt"),
        "{}",
        r.stdout
    );

    let data = r#"{"argv":["/bin/sh","-c","echo broken >&2; exit 3"]}"#;
    let r = cronq(
        &d,
        &[
            "enqueue",
            "command",
            "--data",
            data,
            "--retries",
            "0",
            "--wait",
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("(command) is dead after 1 attempt: /bin/sh failed (exit status: 3)"),
        "{}",
        r.stdout
    );

    let r = cronq(
        &d,
        &[
            "--json",
            "enqueue",
            "command",
            "--data",
            data,
            "--retries",
            "0",
            "--wait",
        ],
    );
    assert_eq!(r.code, 1);
    let answer: Value = serde_json::from_str(&r.stdout).expect("one JSON line");
    assert_eq!(answer["job"]["status"], "dead", "{answer}");
    assert!(
        answer["job"]["last_error"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{answer}"
    );

    let slow = r#"{"argv":["/bin/sh","-c","sleep 30"]}"#;
    let started = Instant::now();
    let r = cronq(
        &d,
        &[
            "enqueue",
            "command",
            "--data",
            slow,
            "--wait",
            "--wait-timeout",
            "1",
        ],
    );
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert!(started.elapsed() < Duration::from_secs(25));
    assert!(
        r.stdout.contains("has not ended within 1 s; it is running"),
        "{}",
        r.stdout
    );
    let r = cronq(&d, &["--json", "wait", "--timeout", "1", &running_id(&d)]);
    assert_eq!(r.code, 4);
    let answer: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(answer["error"]["code"], "timeout", "{answer}");

    // The usage errors name the flag.
    let r = cronq(&d, &["enqueue", "noop", "--wait-timeout", "5"]);
    assert_eq!(r.code, 2, "--wait-timeout needs --wait: {}", r.stderr);
    let r = cronq(&d, &["wait", "x", "--timeout", "0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

fn running_id(d: &Daemon) -> String {
    d.until(Duration::from_secs(20), "a running job", |d| {
        let a = d.ok(json!({"cmd": "jobs", "status": "running"}));
        a["jobs"][0]["id"].as_str().map(str::to_string)
    })
}

#[test]
fn wait_for_several_jobs_and_trigger_wait() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("crons.toml"),
        "[cron.fine]\nschedule = \"0 0 1 1 *\"\ntype = \"noop\"\n\n\
         [cron.broken]\nschedule = \"0 0 1 1 *\"\ntype = \"command\"\nretry_count = 0\n\
         data = { argv = [\"/bin/sh\", \"-c\", \"exit 9\"] }\n",
    )
    .unwrap();
    let d = Daemon::on_dir(dir.path(), &[("JOB_COMMAND_ALLOW", "/bin/sh")]);
    let fine = command_job(&d, "sleep 1", 0);
    let broken = command_job(&d, "sleep 1; exit 2", 0);
    let r = cronq(&d, &["wait", &fine, &broken]);
    assert_eq!(r.code, 1, "one of them died: {}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].contains(&format!("job {fine} (command) succeeded")),
        "{}",
        r.stdout
    );
    assert!(
        lines[1].contains(&format!("job {broken} (command) is dead")),
        "{}",
        r.stdout
    );
    let r = cronq(&d, &["wait", &broken]);
    assert_eq!(r.code, 1, "a dead job is answered at once");
    let r = cronq(&d, &["wait", "nosuchjob000000"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);

    let r = cronq(&d, &["trigger", "fine", "--wait"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("enqueued job"), "{}", r.stdout);
    assert!(r.stdout.contains("(noop) succeeded"), "{}", r.stdout);
    let r = cronq(&d, &["trigger", "broken", "--wait"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(command) is dead"), "{}", r.stdout);
    let r = cronq(&d, &["trigger", "system_queue", "--wait"]);
    assert_eq!(
        r.code, 0,
        "a drain has no job to wait for: {}{}",
        r.stdout, r.stderr
    );
}

/// The state letter of a process (`Z` for a zombie), none once reaped.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim().chars().next()
}

#[test]
fn a_forced_cancel_ends_a_running_commands_processes() {
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sh")]);
    let pid_file = d.dir.join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
    let id = command_job(&d, &script, 3);
    let pid: u32 = d.until(Duration::from_secs(20), "the child's pid", |_| {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    assert_eq!(state(pid).map(|s| s != 'Z'), Some(true), "the sleep runs");

    let r = cronq(&d, &["cancel", &id]);
    assert_eq!(r.code, 1, "without --force a running job is a conflict");
    assert!(
        r.stderr.contains("conflict") && r.stderr.contains("force"),
        "{}",
        r.stderr
    );
    let started = Instant::now();
    let r = cronq(&d, &["cancel", "--force", &id]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), format!("cancelled job {id}"));
    // The handler stopped on the token, well before the grace period.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    d.until(Duration::from_secs(10), "the sleep to be gone", |_| {
        state(pid).is_none_or(|s| s == 'Z').then_some(())
    });
    // The job ended cancelled, not retried, though it had retries left.
    let r = cronq(&d, &["wait", &id]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), format!("job {id} (command) was cancelled"));
    // Its history record says so, with what the stopped attempt ran and left.
    let record = d.finished(&id).expect("a history record");
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["attempts"], 1, "{record}");
    assert!(record["duration_ms"].is_u64(), "{record}");
    assert_eq!(record["result"]["timed_out"], false, "{record}");
    assert_eq!(record["result"]["exit_code"], Value::Null, "{record}");
    assert!(
        d.log()
            .contains(&format!("job {id} (command) was cancelled while it ran")),
        "{}",
        d.log()
    );
    // A job that is not running is cancelled with --force as without.
    let later = d
        .ok(json!({"cmd": "enqueue", "name": "later", "payload": {"type": "noop"}, "delay": 3600}));
    let later = later["job"]["id"].as_str().unwrap();
    assert_eq!(cronq(&d, &["cancel", "--force", later]).code, 0);
    let r = cronq(&d, &["cancel", "--force", later]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
}

/// One request on a raw connection, half-closed after it as `socat` does;
/// returns the answer line.
fn half_closed(socket: &Path, request: Value) -> Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("{request}\n").as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).expect("an answer")
}

#[test]
fn the_wait_command_over_the_socket() {
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sh"), ("LOG_LEVEL", "debug")]);
    // A half-closed connection still gets its answer when the job ends.
    let id = command_job(&d, "sleep 1", 0);
    let a = half_closed(&d.socket, json!({"cmd": "wait", "id": id, "timeout": 30}));
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["job"]["status"], "succeeded", "{a}");
    assert!(a["job"]["finished"].is_string(), "{a}");

    let a = half_closed(&d.socket, json!({"cmd": "wait", "id": "nosuchjob000000"}));
    assert_eq!(a["error"]["code"], "not_found", "{a}");
    let a = half_closed(&d.socket, json!({"cmd": "wait", "id": id, "timeout": 0}));
    assert_eq!(a["error"]["code"], "bad_request", "{a}");
    assert_eq!(
        a["error"]["message"],
        "timeout: must be from 1 to 86400 seconds, got 0"
    );

    let slow = command_job(&d, "sleep 30", 0);
    let a = half_closed(&d.socket, json!({"cmd": "wait", "id": slow, "timeout": 1}));
    assert_eq!(a["error"]["code"], "timeout", "{a}");

    // A client that hangs up mid-wait frees its connection at once.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(format!("{}\n", json!({"cmd": "wait", "id": slow, "timeout": 600})).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    d.until(Duration::from_secs(10), "the wait to be dropped", |d| {
        d.log().contains("a client gave up its wait").then_some(())
    });
}

#[test]
fn a_wait_on_a_job_that_ended_before_a_restart_is_answered_from_the_history() {
    let mut d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sh")]);
    let fine = command_job(&d, "echo all done", 0);
    let broken = command_job(&d, "echo oh no >&2; exit 3", 0);
    let waiting = d
        .ok(json!({"cmd": "enqueue", "name": "later", "payload": {"type": "noop"}, "delay": 3600}));
    let waiting = waiting["job"]["id"].as_str().unwrap().to_string();
    d.ok(json!({"cmd": "cancel", "id": waiting}));
    for id in [&fine, &broken] {
        d.until(Duration::from_secs(20), "the job to end", |d| {
            let job = d.finished(id).or_else(|| d.job(id))?;
            (job["status"] != "pending" && job["status"] != "running").then_some(())
        });
    }
    // A new daemon knows no event of these ends: only the history does.
    assert!(d.stop().success());
    d.spawn();

    let started = Instant::now();
    let a = half_closed(&d.socket, json!({"cmd": "wait", "id": fine, "timeout": 30}));
    assert_eq!(a["job"]["status"], "succeeded", "{a}");
    assert_eq!(a["job"]["result"]["exit_code"], 0, "{a}");
    assert_eq!(a["job"]["result"]["stdout"], "all done\n", "{a}");
    assert!(a["job"]["finished"].is_string(), "{a}");
    assert!(a["job"]["duration_ms"].is_u64(), "{a}");
    let a = half_closed(
        &d.socket,
        json!({"cmd": "wait", "id": broken, "timeout": 30}),
    );
    assert_eq!(a["job"]["status"], "dead", "{a}");
    assert_eq!(a["job"]["result"]["exit_code"], 3, "{a}");
    assert_eq!(a["job"]["result"]["stderr"], "oh no\n", "{a}");
    assert!(a["job"]["finished"].is_string(), "{a}");
    let a = half_closed(
        &d.socket,
        json!({"cmd": "wait", "id": waiting, "timeout": 30}),
    );
    assert_eq!(a["job"]["status"], "cancelled", "{a}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not at a recheck: {:?}",
        started.elapsed()
    );
    let r = cronq(&d, &["wait", &fine, &broken, &waiting]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(command) succeeded"), "{}", r.stdout);
    assert!(r.stdout.contains("(command) is dead"), "{}", r.stdout);
    assert!(r.stdout.contains("(noop) was cancelled"), "{}", r.stdout);
    let a = half_closed(&d.socket, json!({"cmd": "wait", "id": "nosuchjob000000"}));
    assert_eq!(a["error"]["code"], "not_found", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("finished jobs are kept for 7 days"),
        "{a}"
    );
}
