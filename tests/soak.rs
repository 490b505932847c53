//! The CI sizes of the reliability proofs in tests/soak/soak.py (see
//! docs/RELIABILITY.md): a crash soak with `kill -9`, three daemons on one
//! database, a full disk and a held write lock, each against the real
//! `recording_daemon` example. The full sizes run from the script itself.
//!
//! The script prints its figures as a `RESULT {...}` line, which these
//! tests pass through to the test output, and exits 1 naming every property
//! that did not hold.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds `examples/recording_daemon` once per test run (`cargo test --test
/// soak` alone does not build examples) and returns its path.
fn recording_daemon() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "recording_daemon"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example recording_daemon");
        assert!(status.success(), "cargo build --example recording_daemon failed");
        // target/debug/deps/soak-HASH -> target/debug/examples/recording_daemon
        let exe = std::env::current_exe().expect("the test binary's path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .join("examples/recording_daemon");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

fn python() -> String {
    std::env::var("CRONQ_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `soak.py TEST ARGS...` and fails with its output unless every
/// property held.
fn soak(test: &str, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/soak/soak.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(test)
        .arg("--bin")
        .arg(recording_daemon())
        .args(args)
        .output()
        .expect("run tests/soak/soak.py with python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The figures, for whoever reads the test log.
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "soak.py {test} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("RESULT "), "soak.py {test} printed no figures");
}

#[test]
fn crash_soak_kill_9_loses_no_job() {
    soak(
        "crash",
        &["--jobs", "5000", "--kills", "5", "--batch", "500"],
    );
}

#[test]
fn three_daemons_on_one_database_run_each_job_and_cron_minute_once() {
    soak("multi", &["--seconds", "30", "--batch", "100", "--pace", "0.05"]);
}

#[test]
fn a_full_disk_refuses_enqueues_keeps_reads_and_recovers() {
    if !is_root() {
        eprintln!("SKIPPED: the disk-full test mounts a tmpfs and needs root (CI runs as root)");
        return;
    }
    soak("diskfull", &[]);
}

#[test]
fn a_held_write_lock_delays_or_refuses_and_processing_resumes() {
    soak("lock", &["--hold", "10"]);
}
