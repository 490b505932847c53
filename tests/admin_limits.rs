//! The admin socket's limits and access control against the real binary:
//! payload size, queue cap, per-uid enqueue rate, SO_PEERCRED checks, and
//! the uid/pid log line of state-changing commands. Clients of another uid
//! are Python children started through `setpriv` (util-linux), so the
//! daemon sees a real foreign peer on its socket.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/tools.rs"]
mod tools;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use daemon::Daemon;
use serde_json::{Value, json};

const NOBODY: &str = "65534";

/// Sends each of `lines` on one connection as uid/gid 65534 and returns
/// the answers (a closed connection ends them early).
const AS_OTHER_UID: &str = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
out = []
for line in sys.argv[2:]:
    try:
        f.write(line.encode() + b"\n"); f.flush()
    except OSError:
        pass  # closed by the server: its refusal may still be waiting
    try:
        answer = f.readline()
    except OSError:
        break
    if not answer:
        break
    out.append(json.loads(answer))
print(json.dumps(out))
"#;

fn as_nobody(socket: &Path, requests: &[Value]) -> Vec<Value> {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            // Debian's own: a pyenv shim under /root is closed to uid 65534.
            "/usr/bin/python3",
            "-c",
            AS_OTHER_UID,
        ])
        .arg(socket)
        .args(requests.iter().map(Value::to_string))
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "the uid {NOBODY} client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

/// A daemon whose socket lives in a folder every uid can reach, so the
/// only thing standing between uid 65534 and the queue is the daemon.
fn reachable_daemon(env: &[(&str, &str)]) -> (Daemon, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock_dir = temp.path().join("sock");
    std::fs::create_dir(&sock_dir).unwrap();
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket: PathBuf = sock_dir.join("admin.sock");
    let socket_text = socket.to_str().unwrap().to_string();
    let mut all: Vec<(&str, &str)> = vec![("CRONQ_SOCKET", &socket_text)];
    all.extend_from_slice(env);
    let state = temp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let d = Daemon::on_dir(&state, &all);
    assert_eq!(d.socket, socket);
    (d, temp)
}

/// Whether clients of another uid can be started here: setpriv must exist
/// and only root may switch uid. Says loudly when not.
fn can_switch_uid(test: &str) -> bool {
    if !tools::have("setpriv") || !tools::have("/usr/bin/python3") {
        return false;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** SKIPPED {test}: needs root to run a client as uid {NOBODY} ***\n");
        return false;
    }
    true
}

fn enqueue_noop(name: &str) -> Value {
    json!({"cmd": "enqueue", "name": name, "payload": {"type": "noop"}})
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

fn stored(d: &Daemon) -> Vec<Value> {
    d.ok(json!({"cmd": "jobs", "limit": 1000}))["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn payload_data_at_the_default_limit_is_stored_and_one_byte_more_is_too_large() {
    let d = Daemon::start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    // src/config.rs: CRONQ_MAX_PAYLOAD_BYTES defaults to 256 KiB, measured
    // on payload.data as compact JSON: {"blob":"…"} is 11 bytes plus the blob.
    let limit = 256 * 1024;
    let blob = |n: usize| json!({"blob": "x".repeat(n)});
    assert_eq!(blob(limit - 11).to_string().len(), limit);
    let at = d.ok(json!({"cmd": "enqueue", "name": "at", "payload": {"type": "noop", "data": blob(limit - 11)}}));
    let over = d.request(json!({"cmd": "enqueue", "name": "over", "payload": {"type": "noop", "data": blob(limit - 10)}}));
    assert_eq!(code(&over), "too_large", "{over}");
    let message = over["error"]["message"].as_str().unwrap();
    assert!(message.contains("CRONQ_MAX_PAYLOAD_BYTES"), "{message}");
    assert!(message.contains("payload.data"), "{message}");
    let jobs = stored(&d);
    assert_eq!(jobs.len(), 1, "only the job at the limit is stored");
    assert_eq!(jobs[0]["id"], at["job"]["id"]);
    // A smaller setting is honoured too, inside a batch naming the job.
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("CRONQ_MAX_PAYLOAD_BYTES", "100"),
    ]);
    let ok = json!({"name": "a", "payload": {"type": "noop", "data": blob(89)}});
    let big = json!({"name": "b", "payload": {"type": "noop", "data": blob(90)}});
    let a = d.request(json!({"cmd": "enqueue", "jobs": [ok, big]}));
    assert_eq!(code(&a), "too_large");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].payload.data"),
        "{a}"
    );
    assert!(stored(&d).is_empty());
}

#[test]
fn the_queue_cap_answers_queue_full_and_stores_nothing_of_the_refused_request() {
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_MAX_PENDING", "3"),
    ]);
    for i in 0..2 {
        d.ok(enqueue_noop(&format!("job{i}")));
    }
    // A batch of two would make four: all or nothing, so nothing.
    let batch = d.request(json!({"cmd": "enqueue", "jobs": [
        {"name": "b1", "payload": {"type": "noop"}},
        {"name": "b2", "payload": {"type": "noop"}},
    ]}));
    assert_eq!(code(&batch), "queue_full", "{batch}");
    assert_eq!(stored(&d).len(), 2);
    d.ok(enqueue_noop("job2"));
    let full = d.request(enqueue_noop("job3"));
    assert_eq!(code(&full), "queue_full", "{full}");
    assert!(
        full["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 3"),
        "{full}"
    );
    let names: Vec<Value> = stored(&d).iter().map(|j| j["name"].clone()).collect();
    assert_eq!(names, [json!("job2"), json!("job1"), json!("job0")]);
    // Cancelling one makes room again.
    let id = stored(&d)[0]["id"].as_str().unwrap().to_string();
    d.ok(json!({"cmd": "cancel", "id": id}));
    d.ok(enqueue_noop("job4"));
}

#[test]
fn the_enqueue_rate_is_per_peer_uid() {
    if !can_switch_uid("the_enqueue_rate_is_per_peer_uid") {
        return;
    }
    // A bucket of 3 that refills once in 1000 s: effectively no refill.
    let (d, _temp) = reachable_daemon(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_ENQUEUE_RATE", "0.001/3"),
        ("CRONQ_SOCKET_GROUP", NOBODY),
    ]);
    let mut root = d.client();
    for i in 0..3 {
        let a = root.request(enqueue_noop(&format!("root{i}")));
        assert_eq!(a["ok"], true, "{a}");
    }
    let refused = root.request(enqueue_noop("root3"));
    assert_eq!(code(&refused), "rate_limited", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JOB_ENQUEUE_RATE")
    );
    // Another uid has a full bucket of its own.
    let answers = as_nobody(
        &d.socket,
        &(0..4)
            .map(|i| enqueue_noop(&format!("nobody{i}")))
            .collect::<Vec<_>>(),
    );
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| a["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(codes, ["ok", "ok", "ok", "rate_limited"], "{answers:?}");
    // Read-only commands are not rate limited, and nothing refused was stored.
    assert_eq!(stored(&d).len(), 6);
    // The state-changing commands were logged with the peer's uid and pid.
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("admin command")
            && l.contains("cmd=enqueue")
            && l.contains("uid=65534")
            && has_numeric_pid(l)),
        "{log}"
    );
}

#[test]
fn a_peer_outside_the_socket_group_is_forbidden_even_through_a_0666_socket() {
    if !can_switch_uid("a_peer_outside_the_socket_group_is_forbidden_even_through_a_0666_socket") {
        return;
    }
    let (d, _temp) = reachable_daemon(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    // The file mode would let anyone in; SO_PEERCRED must not.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answers = as_nobody(
        &d.socket,
        &[enqueue_noop("intruder"), json!({"cmd": "ping"})],
    );
    assert_eq!(
        answers.len(),
        1,
        "one refusal, then the connection closes: {answers:?}"
    );
    assert_eq!(code(&answers[0]), "forbidden", "{answers:?}");
    assert!(
        answers[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uid 65534")
    );
    assert!(stored(&d).is_empty());
    assert!(
        d.log().contains("refused an admin connection"),
        "{}",
        d.log()
    );
    // Root is always allowed.
    d.ok(json!({"cmd": "ping"}));
}

#[test]
fn a_member_of_the_socket_group_is_allowed_and_logged() {
    if !can_switch_uid("a_member_of_the_socket_group_is_allowed_and_logged") {
        return;
    }
    let (d, _temp) = reachable_daemon(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("CRONQ_SOCKET_GROUP", NOBODY),
    ]);
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&meta),
        65534,
        "the socket's group"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let answers = as_nobody(&d.socket, &[json!({"cmd": "ping"}), enqueue_noop("member")]);
    assert_eq!(answers[0]["pong"], true, "{answers:?}");
    assert_eq!(answers[1]["ok"], true, "{answers:?}");
    let id = answers[1]["job"]["id"].as_str().unwrap().to_string();
    let as_nobody_cancel = as_nobody(&d.socket, &[json!({"cmd": "cancel", "id": id})]);
    assert_eq!(as_nobody_cancel[0]["cancelled"], json!(id));
    let log = d.log();
    for cmd in ["enqueue", "cancel"] {
        assert!(
            log.lines().any(|l| l.contains(&format!("cmd={cmd}"))
                && l.contains("uid=65534")
                && has_numeric_pid(l)),
            "no uid/pid line for {cmd}:\n{log}"
        );
    }
    // Read-only commands are not logged as state changes.
    assert!(!log.contains("cmd=ping"), "{log}");
}

/// Opens `argv[2]` connections one after another as the uid it runs as,
/// sends a ping on each and reads the answer, prints the answers as one
/// JSON line, then holds every connection open until stdin closes.
const HOLD_CONNECTIONS: &str = r#"
import json, socket, sys
held, out = [], []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    try:
        s.sendall(b'{"cmd":"ping"}\n')
    except OSError:
        pass  # refused and closed: the refusal may still be waiting
    f = s.makefile("rb")
    try:
        out.append(json.loads(f.readline()))
    except (OSError, ValueError):
        out.append(None)
    held.append((s, f))
print(json.dumps(out), flush=True)
sys.stdin.read()
"#;

/// A client of `uid` (gid 65534, so a member of a socket group 65534)
/// holding `n` connections; dropping it closes them.
struct Holder {
    child: std::process::Child,
    answers: Vec<Value>,
}

impl Holder {
    fn start(socket: &Path, uid: u32, n: usize) -> Holder {
        use std::io::BufRead;
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                HOLD_CONNECTIONS,
            ])
            .arg(socket)
            .arg(n.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run setpriv");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let answers = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the uid {uid} holder printed {line:?}: {e}"));
        Holder { child, answers }
    }

    fn codes(&self) -> Vec<&str> {
        self.answers
            .iter()
            .map(|a| {
                if a["pong"] == true {
                    "pong"
                } else {
                    a["error"]["code"].as_str().unwrap_or("none")
                }
            })
            .collect()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn one_uid_cannot_take_every_connection_and_root_still_gets_in() {
    if !can_switch_uid("one_uid_cannot_take_every_connection_and_root_still_gets_in") {
        return;
    }
    let (d, _temp) = reachable_daemon(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("CRONQ_SOCKET_GROUP", NOBODY),
        ("CRONQ_MAX_CONNECTIONS", "4"),
        ("CRONQ_MAX_CONNECTIONS_PER_UID", "2"),
    ]);
    // The start-up probe's connection must be gone first.
    d.until(
        Duration::from_secs(5),
        "the probe's connection to close",
        |d| {
            let nobody = Holder::start(&d.socket, 65534, 1);
            (nobody.codes() == ["pong"]).then_some(())
        },
    );
    let hog = Holder::start(&d.socket, 65534, 3);
    assert_eq!(
        hog.codes(),
        ["pong", "pong", "unavailable"],
        "{:?}",
        hog.answers
    );
    let refusal = hog.answers[2]["error"]["message"].as_str().unwrap();
    assert_eq!(
        refusal,
        "too many connections from uid 65534: the limit per uid is 2 (CRONQ_MAX_CONNECTIONS_PER_UID)"
    );
    // Another user gets the rest of the pool, and then it is full.
    let other = Holder::start(&d.socket, 65533, 2);
    assert_eq!(other.codes(), ["pong", "pong"], "{:?}", other.answers);
    let third = Holder::start(&d.socket, 65532, 1);
    assert_eq!(
        third.answers[0]["error"]["message"],
        "too many connections: the limit is 4 (CRONQ_MAX_CONNECTIONS)",
        "{:?}",
        third.answers
    );
    // Root is not locked out: the CLI as root answers.
    let out = Command::new(daemon::BIN)
        .args(["--socket", d.socket.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The CLI of the refused uid shows the daemon's answer, not
    // "unreachable ... is the daemon running?".
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            daemon::BIN,
            "--socket",
            d.socket.to_str().unwrap(),
            "status",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "cronq: unavailable: too many connections from uid 65534: the limit per uid is 2 (CRONQ_MAX_CONNECTIONS_PER_UID)"
    );
    // Closing the hog's connections lets its uid in again.
    drop(hog);
    d.until(Duration::from_secs(10), "uid 65534 to get in again", |d| {
        (as_nobody(&d.socket, &[json!({"cmd": "ping"})])[0]["pong"] == true).then_some(())
    });
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_idle_timeout() {
    use std::io::Write;
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("CRONQ_IDLE_TIMEOUT_SECONDS", "2"),
    ]);
    let stream = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    stream.set_nonblocking(true).unwrap();
    let mut stream = &stream;
    // Pipeline requests until neither side's buffer takes more: the
    // daemon's answers fill the socket, it stops reading, ours fills.
    let request = b"{\"cmd\":\"status\"}\n".repeat(64);
    let mut sent = 0usize;
    loop {
        match stream.write(&request) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("the daemon closed before it was stalled: {e}"),
        }
    }
    assert!(sent > 1 << 16, "only {sent} bytes were taken");
    // Nothing is ever read. Once the daemon gives up, its end closes and a
    // write fails; before, the write would only wait.
    let closed = d.until(
        Duration::from_secs(60),
        "the daemon to close the connection",
        |_| {
            std::thread::sleep(Duration::from_millis(50));
            match stream.write(b"\n") {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Ok(_) => None,
                Err(e) => Some(e),
            }
        },
    );
    assert!(
        matches!(
            closed.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{closed}"
    );
    // The daemon serves on.
    d.ok(json!({"cmd": "ping"}));
}

/// A log line's `pid=` field holds a number, not Rust's `Some(..)`.
fn has_numeric_pid(line: &str) -> bool {
    line.split(' ').any(|field| {
        field
            .strip_prefix("pid=")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    })
}
