//! The `recording_daemon` example (a real cronq with a `record` handler
//! that appends `JOB_ID ATTEMPT` per attempt to RECORD_FILE), built when
//! missing or stale, started on a directory like `daemon::Daemon`, and
//! the record file read back: how tests count that jobs ran, exactly.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::daemon::Daemon;

/// The example's binary, built if it is missing or older than the sources
/// (`cargo test` builds examples first, so usually it is fresh).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .join("examples/recording_daemon");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sources = newest(&[
            root.join("src"),
            root.join("examples/recording_daemon.rs"),
            root.join("Cargo.toml"),
            root.join("Cargo.lock"),
        ]);
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_none_or(|built| built < sources) {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--example", "recording_daemon"])
                .current_dir(root)
                .status()
                .expect("run cargo build --example recording_daemon");
            assert!(
                status.success(),
                "cargo build --example recording_daemon failed"
            );
        }
        bin
    })
}

fn newest(paths: &[PathBuf]) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            latest = latest.max(modified);
        }
    }
    latest
}

/// Where the daemon on `dir` records its attempts.
pub fn record_file(dir: &Path) -> PathBuf {
    dir.join("record.txt")
}

/// Starts the recording daemon on `dir` (its state in `dir/cronq-data/`)
/// with `env`, and waits until it answers.
pub fn start(dir: &Path, env: &[(String, String)]) -> Daemon {
    let child = Command::new(binary())
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LOG_FORMAT", "text")
        .env("LOG_LEVEL", "info")
        .env("RECORD_FILE", record_file(dir))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("daemon.log"))
                .expect("log file"),
        )
        .spawn()
        .expect("start the recording daemon");
    let mut daemon = Daemon::adopt(dir, child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = daemon.try_client()
            && c.request(json!({"cmd": "ping"}))["ok"] == true
        {
            return daemon;
        }
        if let Some(status) = daemon
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "the recording daemon exited with {status}:\n{}",
                daemon.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no answer in 30 s:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Attempts recorded in `dir`, by job id.
pub fn attempts(dir: &Path) -> HashMap<String, u32> {
    let text = std::fs::read_to_string(record_file(dir)).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some((job, _attempt)) = line.split_once(' ') {
            *out.entry(job.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// The import ledger of the daemon on `dir`: record id to job id.
pub fn ledger(dir: &Path, source: &str) -> HashMap<String, String> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("cronq-data/cronq.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open cronq.db");
    let mut stmt = conn
        .prepare("SELECT record_id, job_id FROM import_ledger WHERE source = ?1")
        .expect("the ledger");
    stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("read the ledger")
        .collect::<Result<_, _>>()
        .expect("read the ledger")
}
