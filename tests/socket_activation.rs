//! `cronq::systemd::listener_from_env` against real sockets passed as fd 3,
//! the way systemd passes them.
//!
//! This file has its own `main` (`harness = false` in Cargo.toml) so that it
//! runs on a single thread: that is the state the daemon calls
//! `listener_from_env` in, the only one in which it may remove the
//! `LISTEN_*` variables, and the only safe way for a test to set them and to
//! overwrite fd 3.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};

use cronq::systemd::listener_from_env;

fn main() {
    occupy_fd3();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = 0;
    let mut check = |name: &str, result: Result<(), String>| match result {
        Ok(()) => println!("test {name} ... ok"),
        Err(e) => {
            println!("test {name} ... FAILED: {e}");
            failures += 1;
        }
    };

    // The happy path: a listening Unix stream socket at fd 3.
    let path = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    check(
        "listening_unix_socket_is_taken",
        (|| {
            // dup2 leaves FD_CLOEXEC clear on fd 3, as exec would.
            pass_as_fd3(listener.as_raw_fd());
            set_listen_env(&std::process::id().to_string(), "1");
            let got = listener_from_env()
                .map_err(|e| format!("error: {e}"))?
                .ok_or("no listener")?;
            if got.as_raw_fd() != 3 {
                return Err(format!("fd {}", got.as_raw_fd()));
            }
            if !has_cloexec(3) {
                return Err("FD_CLOEXEC not set".into());
            }
            for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
                if std::env::var_os(var).is_some() {
                    return Err(format!("{var} still set"));
                }
            }
            // It really is the socket at `path`: a client connects through
            // the path and the listener taken from fd 3 accepts it.
            let mut client = UnixStream::connect(&path).map_err(|e| e.to_string())?;
            client.write_all(b"ping\n").map_err(|e| e.to_string())?;
            got.set_nonblocking(false).map_err(|e| e.to_string())?;
            let (mut conn, _) = got.accept().map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).map_err(|e| e.to_string())?;
            if &buf != b"ping\n" {
                return Err(format!("read {buf:?}"));
            }
            // Dropping `got` closes fd 3; `listener` keeps its own fd.
            Ok(())
        })(),
    );
    occupy_fd3();

    set_listen_env("1", "1");
    check(
        "other_pid_is_ignored",
        match listener_from_env() {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    check(
        "two_fds_are_refused",
        expect_error(&std::process::id().to_string(), "2", "exactly one"),
    );

    let dgram = UnixDatagram::unbound().expect("datagram");
    pass_as_fd3(dgram.as_raw_fd());
    check(
        "datagram_socket_is_refused",
        expect_error(&std::process::id().to_string(), "1", "datagram"),
    );

    let unlistened = UnixStream::pair().expect("pair").0;
    pass_as_fd3(unlistened.as_raw_fd());
    check(
        "unlistened_stream_is_refused",
        expect_error(&std::process::id().to_string(), "1", "not listening"),
    );

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    pass_as_fd3(tcp.as_raw_fd());
    check(
        "tcp_listener_is_refused",
        expect_error(&std::process::id().to_string(), "1", "not a Unix socket"),
    );

    let file = std::fs::File::create(dir.path().join("file")).expect("file");
    pass_as_fd3(file.as_raw_fd());
    check(
        "regular_file_is_refused",
        expect_error(&std::process::id().to_string(), "1", "not a socket"),
    );

    // SAFETY: closing fd 3, which this test put there.
    unsafe { libc::close(3) };
    check(
        "closed_fd_is_refused",
        expect_error(&std::process::id().to_string(), "1", "not open"),
    );

    println!("socket_activation: {failures} failed");
    if failures > 0 {
        println!("{failures} socket activation test(s) failed");
        std::process::exit(1);
    }
}

fn expect_error(pid: &str, fds: &str, needle: &str) -> Result<(), String> {
    set_listen_env(pid, fds);
    match listener_from_env() {
        Err(e) if e.to_string().contains(needle) => Ok(()),
        Err(e) => Err(format!("error {e:?} does not mention {needle:?}")),
        Ok(l) => Err(format!("accepted: {l:?}")),
    }
}

fn set_listen_env(pid: &str, fds: &str) {
    // SAFETY: this test binary has one thread (no test harness).
    unsafe {
        std::env::set_var("LISTEN_PID", pid);
        std::env::set_var("LISTEN_FDS", fds);
        std::env::set_var("LISTEN_FDNAMES", "admin");
    }
}

/// Puts a raw, unowned descriptor at fd 3, so that no socket below is itself
/// given fd 3: the listener taken from fd 3 would then close a descriptor
/// that another owner still holds.
fn occupy_fd3() {
    let fd = std::fs::File::open("/dev/null")
        .expect("/dev/null")
        .into_raw_fd();
    if fd != 3 {
        pass_as_fd3(fd);
        // SAFETY: `fd` was released from its File above; fd 3 is the copy.
        unsafe { libc::close(fd) };
    }
}

/// Makes fd 3 a duplicate of `fd`, as systemd's fork+exec would.
fn pass_as_fd3(fd: RawFd) {
    // SAFETY: dup2 on valid fds; fd 3 is reserved for this test.
    let rc = unsafe { libc::dup2(fd, 3) };
    assert_eq!(rc, 3, "dup2: {}", std::io::Error::last_os_error());
}

fn has_cloexec(fd: RawFd) -> bool {
    // SAFETY: fcntl F_GETFD has no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0 && flags & libc::FD_CLOEXEC != 0
}
