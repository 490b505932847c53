//! The CI sizes of the reliability proofs in tests/soak/soak.py (see
//! docs/RELIABILITY.md): a crash soak with `kill -9`, three daemons on one
//! database (a SQLite file, and PostgreSQL with a kill and a server
//! restart), a full disk and a held write lock, each against the real
//! `recording_daemon` example. The full sizes run from the script itself.
//!
//! The script prints its figures as a `RESULT {...}` line, which these
//! tests pass through to the test output, and exits 1 naming every property
//! that did not hold.

use std::path::Path;
use std::process::Command;

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/recording.rs"]
mod recording;

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
        .arg(recording::binary())
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
    assert!(
        stdout.contains("RESULT "),
        "soak.py {test} printed no figures"
    );
}

#[test]
fn crash_soak_kill_9_loses_no_job() {
    soak(
        "crash",
        &[
            "--jobs",
            "20000",
            "--kills",
            "5",
            "--batch",
            "500",
            "--kill-max",
            "0.6",
        ],
    );
}

#[test]
fn three_daemons_on_one_database_run_each_job_and_cron_minute_once() {
    soak(
        "multi",
        &["--seconds", "30", "--batch", "50", "--pace", "0.1"],
    );
}

/// The same on PostgreSQL: three daemons (each in a UTS namespace of its
/// own when root, so they judge each other by heartbeat as nodes of other
/// hosts do) on a server the script starts, 20,000 jobs, one daemon killed
/// with `kill -9` (its jobs finish on the others once its reservation
/// lapses: JOB_RESERVATION_TIMEOUT=1), and a `pg_ctl -m fast restart`
/// timed across a minute's fire.
#[test]
fn three_daemons_on_postgres_run_each_job_once_through_a_kill_and_a_server_restart() {
    if !cronq::store::postgres::testing::available() {
        return;
    }
    soak(
        "multi",
        &[
            "--postgres",
            "--jobs",
            "20000",
            "--seconds",
            "62",
            "--batch",
            "50",
        ],
    );
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
