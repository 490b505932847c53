//! Tests of the `cronq` CLI ALONE: the real binary is run against a small
//! fake server thread on a temporary socket, which records the request line
//! and sends back a canned answer. Nothing here tests the daemon; these pin
//! the client's side of PROTOCOL.md (request shape, `--json` passthrough)
//! and its exit codes (0 ok, 1 refused, 2 usage, 3 unreachable). `cronq next`
//! and `cronq check` need no daemon at all, so they run with no socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;

use serde_json::{Value, json};

/// A one-shot fake daemon: answers one request with `answer` (its `id` set
/// to the request's) and hands back the request line it read.
struct FakeServer {
    _dir: tempfile::TempDir,
    path: PathBuf,
    thread: JoinHandle<String>,
}

impl FakeServer {
    fn start(answer: Value) -> FakeServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let request: Value = serde_json::from_str(&line).unwrap();
            let mut answer = answer;
            answer["id"] = request["id"].clone();
            (&stream)
                .write_all(format!("{answer}\n").as_bytes())
                .unwrap();
            line
        });
        FakeServer {
            _dir: dir,
            path,
            thread,
        }
    }

    /// The request the client sent, parsed.
    fn request(self) -> Value {
        let line = self.thread.join().unwrap();
        assert!(line.ends_with('\n'), "a request is one \\n-terminated line");
        serde_json::from_str(&line).unwrap()
    }
}

fn cronq(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cronq"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CRONQ_SOCKET")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ok_answer_exits_0_with_human_output() {
    let server = FakeServer::start(json!({"ok": true, "pong": true}));
    let out = cronq(&server.path, &["ping"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pong\n");
    let request = server.request();
    assert_eq!(request["cmd"], "ping");
    assert!(request["id"].is_u64(), "the client sends a request id");
}

#[test]
fn json_prints_the_answer_line_as_is() {
    // Keys in an order serde_json would not produce, to show nothing is re-encoded.
    let server = FakeServer::start(json!({"ok": true, "purged": 3}));
    let out = cronq(&server.path, &["purge", "--older-than", "3600", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert_eq!(printed["purged"], 3);
    assert_eq!(printed["ok"], true);
    let request = server.request();
    assert_eq!(request["status"], "dead");
    assert_eq!(request["older_than"], 3600);
}

#[test]
fn refused_exits_1_with_code_and_message() {
    let answer =
        json!({"ok": false, "error": {"code": "not_found", "message": "no job with id \"nope\""}});
    let server = FakeServer::start(answer.clone());
    let out = cronq(&server.path, &["job", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out), "cronq: not_found: no job with id \"nope\"\n");
    assert_eq!(stdout(&out), "");
    // `job`'s argument is named `id` like the envelope's request id: it is
    // sent once, and the daemon's echo of it is accepted.
    let request = server.request();
    assert_eq!(request, json!({"cmd": "job", "id": "nope"}));

    let server = FakeServer::start(answer);
    let out = cronq(&server.path, &["--json", "job", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let printed: Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert_eq!(printed["error"]["code"], "not_found");
    server.request();
}

#[test]
fn no_daemon_exits_3_naming_the_socket_and_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let out = cronq(&path, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.starts_with("cronq: unreachable: "), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("cronq daemon"), "{err}");
}

#[test]
fn enqueue_sends_the_protocols_job_shape() {
    let server = FakeServer::start(
        json!({"ok": true, "job": {"id": "k3j9x0c2m1q8z7a", "type": "email", "status": "pending", "run_at": "2026-01-01T00:00:00.000Z"}}),
    );
    let out = cronq(
        &server.path,
        &[
            "enqueue",
            "email",
            "--data",
            r#"{"to":"ops@example.com","subject":"hi","text":"hello"}"#,
            "--retries",
            "5",
            "--timeout",
            "60",
            "--unique-key",
            "hello-ops",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("enqueued job k3j9x0c2m1q8z7a (email), pending"));
    let mut request = server.request();
    request.as_object_mut().unwrap().remove("id");
    assert_eq!(
        request,
        json!({"cmd": "enqueue", "name": "email", "unique_key": "hello-ops",
               "payload": {"type": "email",
                           "data": {"to": "ops@example.com", "subject": "hi", "text": "hello"},
                           "options": {"retry_count": 5, "timeout": 60}}})
    );
}

#[test]
fn usage_errors_exit_2_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let out = cronq(&path, &["jobs", "--status", "finished"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cronq(&path, &["enqueue", "noop", "--data", "not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("cronq: usage: --data"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_validates_a_crons_file_offline() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[cron.tick]\nschedule = \"*/5 * * * *\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let out = cronq(&dir.path().join("s"), &["check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("tick"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[cron.tick]\nschedule = \"*/5 * * * *\"\ntype = \"noop\"\n\n[cron.feb]\nschedule = \"0 0 31 2 *\"\ntype = \"noop\"\ncolour = 1\n",
    )
    .unwrap();
    let out = cronq(&dir.path().join("s"), &["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:6: cron.feb.schedule", bad.display())),
        "{err}"
    );
    assert!(err.contains("cron.feb.colour"), "{err}");
}

/// `cronq check` run in `dir` with only `vars` (and PATH) in its
/// environment, as in an operator's clean shell.
fn check_in(dir: &Path, vars: &[(&str, &Path)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cronq"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CRON_TZ", "UTC")
        .envs(vars.iter().map(|(k, v)| (k, v.as_os_str())))
        .output()
        .unwrap()
}

const TICK: &str = "[cron.tick]\nschedule = \"*/5 * * * *\"\ntype = \"noop\"\n";

#[test]
fn check_without_a_file_checks_the_daemons_file_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("crons.toml"), TICK).unwrap();
    let elsewhere = dir.path().join("elsewhere.toml");
    std::fs::write(&elsewhere, TICK.replace("tick", "other")).unwrap();
    let here = dir.path().join("here");
    std::fs::create_dir(&here).unwrap();

    // CONFIGURATION_DIRECTORY, as systemd sets it for the unit.
    let out = check_in(&here, &[("CONFIGURATION_DIRECTORY", &etc)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "{} (from CONFIGURATION_DIRECTORY): 1 cron(s), all valid\n  tick ",
            etc.join("crons.toml").display()
        )),
        "{}",
        stdout(&out)
    );

    // CRONQ_CRONS wins over it, as in the daemon.
    let out = check_in(
        &here,
        &[
            ("CONFIGURATION_DIRECTORY", &etc),
            ("CRONQ_CRONS", &elsewhere),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "{} (from CRONQ_CRONS): 1 cron(s), all valid\n  other ",
            elsewhere.display()
        )),
        "{}",
        stdout(&out)
    );

    // A fault names the file in its summary too.
    std::fs::write(
        etc.join("crons.toml"),
        "[cron.bad]\nschedule = \"0 0 31 2 *\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let out = check_in(&here, &[("CONFIGURATION_DIRECTORY", &etc)], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with(&format!(
            "cronq: {} (from CONFIGURATION_DIRECTORY): 1 fault(s)\n",
            etc.join("crons.toml").display()
        )),
        "{}",
        stderr(&out)
    );

    // Neither variable: the packaged layout's /etc/cronq/crons.toml when
    // /etc/cronq exists (the unit test of `resolve` covers both branches),
    // else ./crons.toml.
    std::fs::write(here.join("crons.toml"), TICK).unwrap();
    let out = check_in(&here, &[], &[]);
    if Path::new("/etc/cronq").is_dir() {
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            text.contains("/etc/cronq/crons.toml (the installed daemon's file)"),
            "{text}"
        );
    } else {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stdout(&out).starts_with(
                "./crons.toml (no CRONQ_CRONS and no /etc/cronq: the current directory): \
                 1 cron(s), all valid\n"
            ),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn check_says_plainly_that_the_daemons_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let file = etc.join("crons.toml");

    let out = check_in(dir.path(), &[("CONFIGURATION_DIRECTORY", &etc)], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "cronq: {} (from CONFIGURATION_DIRECTORY) does not exist, and no {} beside it \
             holds a cron: nothing was checked (the daemon would run no crons from files); \
             name a file with cronq check FILE\n",
            file.display(),
            etc.join("crons.d/*.toml").display()
        )
    );

    // In the current directory too, where the old check passed vacuously.
    if !Path::new("/etc/cronq").is_dir() {
        let out = check_in(dir.path(), &[], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stderr(&out).starts_with("cronq: ./crons.toml (no CRONQ_CRONS and no /etc/cronq: the current directory) does not exist"),
            "{}",
            stderr(&out)
        );
    }

    // Drop-ins beside a missing file are what the daemon would load.
    std::fs::create_dir(etc.join("crons.d")).unwrap();
    std::fs::write(etc.join("crons.d/a.toml"), TICK).unwrap();
    let out = check_in(dir.path(), &[("CONFIGURATION_DIRECTORY", &etc)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "{} (from CONFIGURATION_DIRECTORY) does not exist; 1 cron(s) from {}, all valid\n  tick ",
            file.display(),
            etc.join("crons.d").display()
        )),
        "{}",
        stdout(&out)
    );

    // A named file that is missing stays a fault.
    let out = check_in(dir.path(), &[], &[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{}: cannot read:", file.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_warns_about_allowed_programs_that_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crons.toml");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cronq"))
        .args(["check", file.to_str().unwrap()])
        .env("JOB_COMMAND_ALLOW", "/bin/sh:/nonexistent/backup")
        .output()
        .unwrap();
    // A warning, not a fault: the file itself is fine.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cronq: warning: JOB_COMMAND_ALLOW: /nonexistent/backup does not exist"),
        "{err}"
    );
    assert!(!err.contains("/bin/sh"), "{err}");
}

#[test]
fn completions_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = cronq(&dir.path().join("s"), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("enqueue"), "{shell}");
    }
}

#[test]
fn next_works_with_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no.sock");
    let out = cronq(
        &nowhere,
        &[
            "next",
            "0 9 * * 1",
            "-n",
            "2",
            "--tz",
            "Europe/Berlin",
            "--after",
            "2026-11-29T00:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Next elapse: Mon 2026-11-30 09:00:00 CET\n"),
        "{text}"
    );
    assert!(
        text.contains("   (in UTC): Mon 2026-11-30 08:00:00 UTC\n"),
        "{text}"
    );
    assert!(
        text.contains("   Iter. #2: Mon 2026-12-07 09:00:00 CET\n"),
        "{text}"
    );

    let out = cronq(
        &nowhere,
        &[
            "--json",
            "next",
            "@daily",
            "-n",
            "1",
            "--tz",
            "UTC",
            "--after",
            "2026-01-01T00:00:00Z",
        ],
    );
    assert_eq!(
        stdout(&out),
        "{\"next\":[\"2026-01-02T00:00:00.000Z\"],\"ok\":true}\n"
    );

    let out = cronq(&nowhere, &["next", "0 0 31 2 *"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("cronq: bad_request: schedule:"),
        "{}",
        stderr(&out)
    );
}
