//! The queue database's files on disk: outside systemd (whose unit sets
//! `UMask=0077`) a daemon started under a loose umask still creates the
//! database, its WAL and its shared-memory file readable by its own user
//! only, since every job payload is in them. The socket keeps its own mode.

#[path = "support/daemon.rs"]
mod daemon;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemon::Daemon;
use serde_json::json;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_database_wal_and_shm_are_0600_under_umask_000() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // The shell sets the umask the daemon inherits, as a login shell would.
    let child = Command::new("/bin/sh")
        .args(["-c", "umask 000 && exec \"$0\" daemon", daemon::BIN])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LOG_FORMAT", "text")
        .env("ENABLE_SYSTEM_QUEUE_CRON", "false")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon::adopt(dir, child);
    d.until(Duration::from_secs(20), "the daemon to answer", |d| {
        d.try_client().ok().map(|_| ())
    });
    d.ok(json!({"cmd": "enqueue", "name": "secret", "payload": {"type": "noop"}}));
    let db = dir.join("cronq-data/cronq.db");
    for file in ["cronq.db", "cronq.db-wal", "cronq.db-shm"] {
        assert_eq!(mode(&dir.join("cronq-data").join(file)), 0o600, "{file}");
    }
    // The folder and the socket keep their documented modes.
    assert_eq!(mode(db.parent().unwrap()), 0o750);
    assert_eq!(mode(&d.socket), 0o660);
}

#[test]
fn an_existing_database_keeps_its_mode_and_a_readable_one_is_warned_about() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("cronq-data");
    std::fs::create_dir(&state).unwrap();
    let mut d = Daemon::on_dir(temp.path(), &[]);
    d.stop();
    let db = state.join("cronq.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    d.spawn();
    assert_eq!(mode(&db), 0o640, "an operator's choice is kept");
    let log = d.log();
    assert!(
        log.contains("the database file is readable by other users") && log.contains("0640"),
        "{log}"
    );
}
