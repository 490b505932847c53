//! cronq's logging against a real `systemd-journald`, read back with
//! `journalctl`: the `CRONQ_*` fields, `SYSLOG_IDENTIFIER`, `PRIORITY`, the
//! run-time level, and the stderr fallback when the journal socket is
//! missing.
//!
//! journald's socket path is fixed (/run/systemd/journal/socket), so each
//! run happens in a private mount namespace (`unshare --mount`) with a fresh
//! tmpfs on /run: nothing leaks onto the host, parallel runs cannot meet, and
//! the namespace (and its journald) is gone when the script exits. That needs
//! root; without it the tests say SKIPPED on stderr and pass.

use std::process::Command;

/// Set in the child process that does the logging.
const CHILD: &str = "CRONQ_JOURNALD_TEST_CHILD";

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (mount namespace, journald)".into());
    }
    for tool in [
        "/usr/bin/unshare",
        "/usr/bin/journalctl",
        "/lib/systemd/systemd-journald",
    ] {
        if !std::path::Path::new(tool).exists() {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

/// Runs `script` with `sh` inside a new mount namespace whose /run is empty.
/// `$ME` is this test binary; `env` is added to the script's environment.
fn in_private_run(script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let me = std::env::current_exe().expect("current_exe");
    let wrapped = format!("mount -t tmpfs tmpfs /run && {script}");
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec", &wrapped])
        .env("ME", me)
        .envs(env.iter().copied())
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run unshare")
}

/// The logging child: what the daemon's worker would log for one job.
#[test]
fn child_logs_a_job() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let format = match mode.as_str() {
        "journald" => cronq::config::LogFormat::Journald,
        _ => cronq::config::LogFormat::Auto,
    };
    let job_id = std::env::var("TEST_JOB_ID").expect("TEST_JOB_ID");
    let control = cronq::logging::init(format, "info").expect("init logging");
    let span = tracing::info_span!(
        "job",
        job_id = %job_id,
        job_type = "noop_test",
        cron_id = "nightly_report",
        attempt = 2u32,
        duration_ms = tracing::field::Empty,
    );
    let _entered = span.enter();
    tracing::info!("job started");
    span.record("duration_ms", 17u64);
    tracing::info!("job finished");
    tracing::debug!("debug before set_level");
    control.set_level("debug").expect("set_level");
    tracing::debug!("debug after set_level");
    tracing::warn!(job_error = "boom", "a warning");
}

#[test]
fn fields_reach_a_real_journald() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED fields_reach_a_real_journald: {why}");
        return;
    }
    let job_id = format!("t{}x{}", std::process::id(), fastrand::u64(..));
    let script = r#"
        /lib/systemd/systemd-journald </dev/null >/run/journald.log 2>&1 &
        J=$!
        trap 'kill $J 2>/dev/null; wait $J 2>/dev/null || true' EXIT
        i=0; while [ ! -S /run/systemd/journal/socket ]; do
            i=$((i+1)); [ $i -lt 100 ] || { echo "journald did not start" >&2; cat /run/journald.log >&2; exit 1; }
            sleep 0.05
        done
        CRONQ_JOURNALD_TEST_CHILD=journald "$ME" --exact child_logs_a_job --nocapture >/run/child.log 2>&1 \
            || { cat /run/child.log >&2; exit 1; }
        # journald writes asynchronously; wait for the last line.
        i=0; while ! journalctl -D /run/log/journal -q -o cat CRONQ_JOB_ID="$TEST_JOB_ID" | grep -q 'a warning'; do
            i=$((i+1)); [ $i -lt 100 ] || break
            sleep 0.05
        done
        journalctl -D /run/log/journal -q -o json CRONQ_JOB_ID="$TEST_JOB_ID"
        echo "---"
        journalctl -D /run/log/journal -q -o json CRONQ_JOB_TYPE=noop_test | wc -l
    "#;
    let out = in_private_run(script, &[("TEST_JOB_ID", &job_id)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "script failed: {stderr}\n{stdout}");
    let (entries, by_type) = stdout.split_once("---\n").expect("separator");
    let entries: Vec<serde_json::Value> = entries
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl json"))
        .collect();
    let messages: Vec<&str> = entries
        .iter()
        .map(|e| e["MESSAGE"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        messages,
        [
            "job started",
            "job finished",
            "debug after set_level",
            "a warning"
        ],
        "{stdout}"
    );
    assert_eq!(by_type.trim(), "4", "CRONQ_JOB_TYPE=noop_test matches");
    for e in &entries {
        assert_eq!(e["SYSLOG_IDENTIFIER"], "cronq", "{e}");
        assert_eq!(e["CRONQ_JOB_ID"], job_id.as_str(), "{e}");
        assert_eq!(e["CRONQ_JOB_TYPE"], "noop_test", "{e}");
        assert_eq!(e["CRONQ_CRON_ID"], "nightly_report", "{e}");
        assert_eq!(e["CRONQ_ATTEMPT"], "2", "{e}");
        let names: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert!(
            !names.iter().any(|n| n.starts_with("F_") || *n == "JOB_ID"),
            "no F_ prefix and no bare JOB_ID: {names:?}"
        );
    }
    assert!(
        entries[0].get("CRONQ_DURATION_MS").is_none(),
        "not yet recorded"
    );
    assert_eq!(entries[1]["CRONQ_DURATION_MS"], "17");
    assert_eq!(entries[1]["PRIORITY"], "6", "info is syslog informational");
    assert_eq!(entries[2]["PRIORITY"], "7", "debug is syslog debug");
    assert_eq!(entries[3]["PRIORITY"], "4", "warn is syslog warning");
    assert_eq!(
        entries[3]["CRONQ_JOB_ERROR"], "boom",
        "event fields prefixed too"
    );
    println!("journald entries for job {job_id}: {}", entries.len());
}

#[test]
fn missing_journal_socket_falls_back_to_stderr_once() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED missing_journal_socket_falls_back_to_stderr_once: {why}");
        return;
    }
    let out = in_private_run(
        r#"TEST_JOB_ID=fallback CRONQ_JOURNALD_TEST_CHILD=journald "$ME" --exact child_logs_a_job --nocapture 2>&1"#,
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("not usable; logging to stderr instead")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("job finished"), "{text}");
    assert!(text.contains("job_type=\"noop_test\""), "{text}");
}

/// The real daemon under a real journald: the plain MESSAGE of each
/// warning and error says what happened without `-o json` (which handler
/// and why; which job, what became of it, and the first line of its error).
#[test]
fn the_daemons_messages_say_what_happened() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED the_daemons_messages_say_what_happened: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let script = r#"
        /lib/systemd/systemd-journald </dev/null >/run/journald.log 2>&1 &
        J=$!
        D=""
        trap 'kill $D $J 2>/dev/null || true; wait 2>/dev/null || true' EXIT
        i=0; while [ ! -S /run/systemd/journal/socket ]; do
            i=$((i+1)); [ $i -lt 100 ] || { echo "journald did not start" >&2; exit 1; }
            sleep 0.05
        done
        cd "$DIR"
        env -i PATH=/usr/bin:/bin LOG_FORMAT=journald CRON_TZ=UTC JOB_COMMAND_ALLOW=/bin/sh \
            "$CRONQ" daemon >daemon.out 2>&1 &
        D=$!
        S="$DIR/cronq-data/admin.sock"
        i=0; until "$CRONQ" --socket "$S" ping >/dev/null 2>&1; do
            i=$((i+1)); [ $i -lt 200 ] || { echo "cronq did not start" >&2; cat daemon.out >&2; exit 1; }
            sleep 0.05
        done
        out=$("$CRONQ" --socket "$S" enqueue command --retries 0 \
            --data '{"argv":["/bin/sh","-c","echo first; echo second >&2; exit 3"]}')
        id=$(echo "$out" | sed -n 's/^enqueued job \([a-z0-9]*\) .*/\1/p')
        [ -n "$id" ] || { echo "enqueue said: $out" >&2; exit 1; }
        i=0; until journalctl -D /run/log/journal -q -o cat CRONQ_JOB_ID="$id" | grep -q 'dead'; do
            i=$((i+1)); [ $i -lt 200 ] || { echo "no dead line for $id" >&2; cat daemon.out >&2; exit 1; }
            sleep 0.05
        done
        kill -TERM $D; wait $D || true
        echo "$id"
        echo "---"
        journalctl -D /run/log/journal -q -o json SYSLOG_IDENTIFIER=cronq
    "#;
    let out = in_private_run(
        script,
        &[
            ("DIR", dir.path().to_str().unwrap()),
            ("CRONQ", env!("CARGO_BIN_EXE_cronq")),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "script failed: {stderr}\n{stdout}");
    let (id, entries) = stdout.split_once("---\n").expect("separator");
    let id = id.trim();
    let entries: Vec<serde_json::Value> = entries
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl json"))
        .collect();
    let messages: Vec<&str> = entries
        .iter()
        .map(|e| e["MESSAGE"].as_str().unwrap_or(""))
        .collect();
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    assert!(
        has("handler email disabled: SMTP_HOST is not set"),
        "which handler and why: {messages:#?}"
    );
    let died = entries
        .iter()
        .find(|e| e["CRONQ_JOB_ID"] == id && e["PRIORITY"] == "3")
        .unwrap_or_else(|| panic!("no error entry for job {id}: {messages:#?}"));
    let message = died["MESSAGE"].as_str().unwrap();
    assert!(
        message.contains(&format!("job {id} (command)")),
        "{message}"
    );
    assert!(message.contains("it is dead"), "{message}");
    assert!(
        message.contains("/bin/sh failed (exit status: 3)"),
        "the error's first line: {message}"
    );
    assert!(
        !message.contains("second"),
        "only the first line; the whole error is CRONQ_ERROR: {message}"
    );
    assert!(
        died["CRONQ_ERROR"].as_str().unwrap().contains("second"),
        "{died}"
    );
}
