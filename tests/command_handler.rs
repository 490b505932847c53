//! The `command` handler running real programs: outcomes, output tails,
//! the allow list, the clean environment, stdin and cwd, and that a timeout
//! (the queue's, which drops the future, or the handler's own) ends the
//! command together with everything it started.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cronq::handlers::command::{CommandHandler, DEFAULT_ENV, EnvAllow, KILL_GRACE, TAIL_BYTES};
use cronq::{Handler, JobContext, JobError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SH: &str = "/bin/sh";
const ENV: &str = "/usr/bin/env";
const CAT: &str = "/bin/cat";
const PWD: &str = "/bin/pwd";

fn handler() -> CommandHandler {
    CommandHandler::new([SH, ENV, CAT, PWD].iter().map(PathBuf::from).collect())
        .env_allow(EnvAllow::new(["FOO", "LANG"]))
}

fn job(data: Value, timeout: Duration) -> JobContext {
    JobContext {
        id: "job-1".to_string(),
        name: "test".to_string(),
        job_type: "command".to_string(),
        data,
        attempt: 1,
        max_attempts: 4,
        timeout,
        cron_id: None,
        limits: Default::default(),
        shutdown: CancellationToken::new(),
        cancel: CancellationToken::new(),
        reporter: Default::default(),
        result: Default::default(),
    }
}

async fn run(data: Value) -> Result<(), JobError> {
    let h = handler();
    h.validate(&data).map_err(JobError::Permanent)?;
    h.run(job(data, Duration::from_secs(30))).await
}

fn sh(script: &str) -> Value {
    json!({"argv": [SH, "-c", script]})
}

/// JSON log lines written while a test runs, for reading output tails back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Starts capturing on this thread (the test runtime's only one).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The fields of the last event with this message.
    fn event(&self, message: &str) -> Value {
        let text = String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned();
        text.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|e| e["fields"]["message"] == message)
            .map(|mut e| {
                let mut fields = e["fields"].take();
                fields["level"] = e["level"].take();
                fields
            })
            .unwrap_or_else(|| panic!("no {message:?} event in {text}"))
    }
}

/// The stdout tail a successful command logged.
async fn stdout_of(data: Value) -> String {
    let logs = Captured::default();
    let _guard = logs.install();
    run(data).await.expect("the command succeeds");
    let event = logs.event("command succeeded");
    assert_eq!(event["level"], "DEBUG");
    event["stdout_tail"]
        .as_str()
        .expect("a stdout tail")
        .to_string()
}

#[tokio::test]
async fn success() {
    run(sh("exit 0")).await.expect("exit 0 is success");
    assert_eq!(stdout_of(sh("echo hello")).await, "hello\n");
}

#[tokio::test]
async fn a_non_zero_exit_is_retried_with_status_and_tails() {
    let logs = Captured::default();
    let _guard = logs.install();
    let err = run(sh("echo out-line; echo err-line >&2; exit 3"))
        .await
        .expect_err("exit 3 fails");
    assert!(!err.is_permanent(), "{err:?}");
    let m = err.message();
    assert!(m.starts_with("/bin/sh failed (exit status: 3)"), "{m}");
    assert!(m.contains("stdout:\nout-line"), "{m}");
    assert!(m.contains("stderr:\nerr-line"), "{m}");
    let event = logs.event("command failed");
    assert_eq!(event["level"], "WARN");
    assert_eq!(event["stdout_tail"], "out-line\n");
    assert_eq!(event["stderr_tail"], "err-line\n");
}

#[tokio::test]
async fn death_by_a_signal_is_a_failure() {
    let err = run(sh("kill -KILL $$")).await.expect_err("killed");
    assert!(!err.is_permanent(), "{err:?}");
    assert!(
        err.message()
            .starts_with("/bin/sh failed (killed by signal 9 (SIGKILL))"),
        "{err}"
    );
}

#[tokio::test]
async fn output_beyond_the_tail_size_keeps_only_the_end() {
    // 5 MB on stdout and 1 MB on stderr, far past the 4 KiB tails; `yes` and
    // `head` are found through the default PATH.
    let err = run(sh(
        "yes 0123456789abcdef | head -c 5000000; yes e | head -c 1000000 >&2; echo END; exit 1",
    ))
    .await
    .expect_err("exit 1");
    let m = err.message();
    assert!(
        m.contains(&format!("stdout (last {TAIL_BYTES} of 5000004 bytes):")),
        "{}",
        &m[..200.min(m.len())]
    );
    assert!(
        m.contains(&format!("stderr (last {TAIL_BYTES} of 1000000 bytes):")),
        "{}",
        &m[..200.min(m.len())]
    );
    assert!(
        // 5,000,000 = 294,117 lines of 17 bytes and 11 bytes of one more.
        m.contains("0123456789abcdef\n0123456789aEND\nstderr (last"),
        "the stdout tail ends where the stream did"
    );
    assert!(m.len() < 2 * TAIL_BYTES + 300, "{} bytes", m.len());
}

#[tokio::test]
async fn a_command_not_allowed_is_refused_at_validate_and_at_run() {
    let h = handler();
    let data = json!({"argv": ["/bin/rm", "-rf", "/tmp/nothing-here"]});
    assert_eq!(
        h.validate(&data),
        Err("argv[0]: \"/bin/rm\" is not in JOB_COMMAND_ALLOW".to_string())
    );
    // As if the row reached the table without validate.
    let err = h
        .run(job(data, Duration::from_secs(5)))
        .await
        .expect_err("refused");
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(
        err.message(),
        "argv[0]: \"/bin/rm\" is not in JOB_COMMAND_ALLOW"
    );
    // Allowed when enqueued, then taken off the list before it ran.
    let data = sh("exit 0");
    assert_eq!(h.validate(&data), Ok(()));
    let stricter = CommandHandler::new(vec![PathBuf::from(ENV)]);
    let err = stricter
        .run(job(data, Duration::from_secs(5)))
        .await
        .expect_err("refused");
    assert!(err.is_permanent(), "{err:?}");
    // Relative paths never match, whatever PATH says.
    assert!(h.validate(&json!({"argv": ["sh", "-c", "true"]})).is_err());
}

#[tokio::test]
async fn the_environment_holds_only_the_defaults_and_the_jobs_env() {
    let out = stdout_of(json!({"argv": [ENV]})).await;
    let mut expected: Vec<String> = DEFAULT_ENV
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    expected.sort();
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(got, expected);

    // Nothing of this process's own environment (HOME, CARGO_*, ...) got
    // through: the lists above are equal, not merely overlapping.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some() || std::env::var_os("HOME").is_some());
    let out = stdout_of(json!({"argv": [ENV], "env": {"FOO": "bar baz", "LANG": "C"}})).await;
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(
        got,
        ["FOO=bar baz", "LANG=C", "PATH=/usr/local/bin:/usr/bin:/bin"]
    );
}

#[tokio::test]
async fn a_variable_not_in_the_env_allow_list_is_refused_at_validate_and_at_run() {
    let h = handler();
    let dir = tempfile::tempdir().expect("a temp dir");
    let ran = dir.path().join("ran");
    let script = format!("touch {}", ran.display());
    for (name, value) in [
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("BASH_FUNC_env%%", "() { id > /tmp/pwn; }"),
        // A default, but not listed: not even PATH may be swapped.
        ("PATH", "/tmp/evilbin"),
        ("BASH_ENV", "/tmp/evil.sh"),
    ] {
        let data = json!({"argv": [SH, "-c", script], "env": {name: value}});
        let refused = h.validate(&data).expect_err(name);
        assert!(
            refused.starts_with(&format!("env.{name}: not in JOB_COMMAND_ENV_ALLOW")),
            "{refused}"
        );
        // As if the row reached the table without validate.
        let err = h
            .run(job(data, Duration::from_secs(5)))
            .await
            .expect_err(name);
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(err.message(), refused);
    }
    assert!(!ran.exists(), "a refused job ran");
    // Listing LD_PRELOAD does not let it through.
    let listed =
        CommandHandler::new(vec![PathBuf::from(SH)]).env_allow(EnvAllow::new(["LD_PRELOAD"]));
    let refused = listed
        .validate(&json!({"argv": [SH], "env": {"LD_PRELOAD": "/tmp/evil.so"}}))
        .expect_err("never allowed");
    assert!(
        refused.contains("never allowed: the dynamic loader"),
        "{refused}"
    );
}

#[tokio::test]
async fn stdin_is_passed_and_closed() {
    assert_eq!(
        stdout_of(json!({"argv": [CAT], "stdin": "line one\nline two\n"})).await,
        "line one\nline two\n"
    );
    // More than a pipe holds, echoed back: input is fed while output is
    // drained, or this would deadlock.
    let big: String = (0..100_000).map(|i| format!("{i:07}\n")).collect();
    let out = stdout_of(json!({"argv": [CAT], "stdin": big})).await;
    assert_eq!(out.len(), TAIL_BYTES);
    assert!(out.ends_with("0099999\n"));
    // No stdin: the command reads end of input at once, it never waits.
    assert_eq!(stdout_of(json!({"argv": [CAT]})).await, "");
}

#[tokio::test]
async fn cwd_sets_the_working_directory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let real = dir.path().canonicalize().expect("canonical");
    let out = stdout_of(json!({"argv": [PWD], "cwd": dir.path()})).await;
    assert_eq!(out.trim_end(), real.to_str().expect("UTF-8 path"));

    let missing = dir.path().join("missing");
    let err = run(json!({"argv": [PWD], "cwd": missing}))
        .await
        .expect_err("no such directory");
    assert!(!err.is_permanent(), "{err:?}");
    assert!(err.message().starts_with("cwd: "), "{err}");
}

/// Pids the script wrote to `file`, waiting until `n` are there.
fn read_pids(file: &Path, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.len() >= n {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "only {pids:?} in {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Alive means it exists and is not a zombie (a zombie has already died;
/// reaping orphans is the init process's business).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X'))
        }
    }
}

async fn wait_all_dead(pids: &[i32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "still alive after {within:?}: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A shell that records its pid and two background sleeps', then waits.
fn sleepers(pid_file: &Path, prelude: &str) -> Value {
    sh(&format!(
        "{prelude} echo $$ > {f}; sleep 100 & echo $! >> {f}; sleep 100 & echo $! >> {f}; wait",
        f = pid_file.display()
    ))
}

#[tokio::test]
async fn the_queues_timeout_ends_the_command_and_its_children() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pids");
    let h = handler();
    // What the queue does: wrap `run` in a timeout and drop it when it fires.
    let outcome = tokio::time::timeout(
        Duration::from_millis(700),
        h.run(job(sleepers(&pid_file, ""), Duration::from_secs(60))),
    )
    .await;
    assert!(outcome.is_err(), "the run was abandoned: {outcome:?}");
    let pids = read_pids(&pid_file, 3);
    wait_all_dead(&pids, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn the_handlers_own_timeout_ends_the_command_and_its_children() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pids");
    let started = Instant::now();
    let err = handler()
        .run(job(sleepers(&pid_file, ""), Duration::from_secs(1)))
        .await
        .expect_err("timed out");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!err.is_permanent(), "{err:?}");
    assert!(
        err.message()
            .starts_with("/bin/sh timed out after 1s and was terminated\nstdout: (empty)"),
        "{err}"
    );
    let pids = read_pids(&pid_file, 3);
    wait_all_dead(&pids, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pids");
    let h = handler();
    let dropped_at = Instant::now() + Duration::from_millis(700);
    let outcome = tokio::time::timeout(
        Duration::from_millis(700),
        h.run(job(
            sleepers(&pid_file, "trap '' TERM;"),
            Duration::from_secs(60),
        )),
    )
    .await;
    assert!(outcome.is_err());
    let pids = read_pids(&pid_file, 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pids.iter().all(|p| alive(*p)),
        "SIGTERM is ignored, so all live on for now"
    );
    wait_all_dead(&pids, KILL_GRACE + Duration::from_secs(3)).await;
    assert!(dropped_at.elapsed() + Duration::from_millis(100) >= KILL_GRACE);
}

#[tokio::test]
async fn processes_left_behind_are_ended_when_the_command_exits() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pids");
    let started = Instant::now();
    // The background sleep keeps stdout open; the run must not wait for it.
    run(sh(&format!(
        "sleep 100 & echo $! > {}; echo done",
        pid_file.display()
    )))
    .await
    .expect("exit 0");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let pids = read_pids(&pid_file, 1);
    wait_all_dead(&pids, Duration::from_secs(3)).await;
}
