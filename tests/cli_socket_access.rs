//! The CLI as a user outside the socket's group, run as uid 65534 through
//! `setpriv` (util-linux): it is told it lacks permission and which group
//! grants it, instead of being sent to a `./cronq-data/` socket where no
//! daemon runs. The packaged layout (`/run/cronq/admin.sock` in a 0750
//! folder) is rebuilt in a private mount namespace (`unshare`), so the
//! host's `/run` is never touched.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/tools.rs"]
mod tools;

use std::ffi::CStr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use daemon::Daemon;

/// The group the tests close folders with: gid 1 (`daemon` on Debian),
/// which uid 65534 is not in.
const GID: u32 = 1;

fn group_name(gid: u32) -> String {
    // SAFETY: getgrgid returns a pointer into static storage or null; it is
    // read at once, and no other thread of this test looks groups up.
    let group = unsafe { libc::getgrgid(gid) };
    assert!(!group.is_null(), "gid {gid} has no name here");
    unsafe { CStr::from_ptr((*group).gr_name) }
        .to_string_lossy()
        .into_owned()
}

fn can_run(test: &str, extra: &[&str]) -> bool {
    if !tools::have("setpriv") || !extra.iter().all(|t| tools::have(t)) {
        return false;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** SKIPPED {test}: needs root to run the CLI as uid 65534 ***\n");
        return false;
    }
    true
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_system_socket_behind_a_closed_folder_is_not_taken_for_a_stopped_daemon() {
    if !can_run(
        "the_system_socket_behind_a_closed_folder_is_not_taken_for_a_stopped_daemon",
        &["unshare", "mount", "/usr/bin/python3"],
    ) {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // In the namespace: a fresh /run, /run/cronq 0750 root:daemon holding
    // a socket, then `cronq status` as uid 65534 with no --socket.
    let script = format!(
        "mount -t tmpfs -o mode=0755 tmpfs /run && \
         mkdir -m 0750 /run/cronq && chgrp {GID} /run/cronq && \
         /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"/run/cronq/admin.sock\")' && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \
             env -i PATH=/usr/bin:/bin \"$0\" status"
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &script,
            daemon::BIN,
        ])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let group = group_name(GID);
    assert!(
        err.starts_with(
            "cronq: denied: permission denied opening the daemon's socket /run/cronq/admin.sock\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: members of group `{group}` (the group of /run/cronq) may use it: \
             `sudo usermod -aG {group} $USER`"
        )),
        "{err}"
    );
    assert!(!err.contains("cronq-data"), "no fallback: {err}");
}

#[test]
fn a_socket_the_user_may_not_open_names_the_group_that_grants_it() {
    if !can_run(
        "a_socket_the_user_may_not_open_names_the_group_that_grants_it",
        &[],
    ) {
        return;
    }
    // A daemon whose socket sits in a 0750 folder of group `daemon`; the
    // socket itself is 0660 of the daemon's group.
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock_dir = temp.path().join("sock");
    std::fs::create_dir(&sock_dir).unwrap();
    let socket = sock_dir.join("admin.sock");
    let socket_text = socket.to_str().unwrap().to_string();
    let state = temp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let d = Daemon::on_dir(&state, &[("CRONQ_SOCKET", &socket_text)]);
    std::os::unix::fs::chown(&sock_dir, None, Some(GID)).unwrap();
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let as_nobody = |socket: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args([daemon::BIN, "--socket", socket, "status"])
            .current_dir(temp.path())
            .output()
            .unwrap()
    };
    let out = as_nobody(&socket_text);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let group = group_name(GID);
    assert!(
        err.starts_with(&format!(
            "cronq: denied: permission denied opening the daemon's socket {socket_text}\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "members of group `{group}` (the group of {})",
            sock_dir.display()
        )),
        "{err}"
    );
    // With the folder open, the socket's own group is the one named.
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    let own = group_name(unsafe { libc::getegid() });
    let err = stderr(&as_nobody(&socket_text));
    assert!(
        err.contains(&format!(
            "members of group `{own}` (the group of {socket_text})"
        )),
        "{err}"
    );
    // Root still gets in.
    d.ok(serde_json::json!({"cmd": "ping"}));
}
