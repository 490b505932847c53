//! Talking to systemd: readiness and status notifications (`sd_notify`), the
//! watchdog, and socket activation (`LISTEN_FDS`).
//!
//! Everything here is silently off outside systemd: without `NOTIFY_SOCKET`
//! a [`Notifier`] sends nothing, and without `LISTEN_FDS` for this process
//! [`listener_from_env`] answers `None`, so `cronq daemon` behaves the same in
//! a terminal as under the service manager, minus the messages.
//!
//! A failed notification is logged and otherwise ignored: systemd would rather
//! restart a daemon that stopped talking (watchdog, start timeout) than have it
//! exit because one datagram was lost.

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use sd_notify::NotifyState;

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// A cheap, clonable handle for the daemon's messages to systemd.
///
/// The environment is read once, by [`Notifier::from_env`]; the notification
/// socket itself is opened per message by the sd-notify crate, so a handle can
/// be shared by every task without locking.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    enabled: bool,
    watchdog_usec: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    ///
    /// The variables are left in place (removing them needs a single-threaded
    /// process); children never see them because the command handler runs
    /// its programs with a clean environment.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()),
            // sd-notify honours WATCHDOG_PID: a watchdog meant for another
            // process (our parent, say) is not ours to ping.
            watchdog_usec: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// A notifier that never sends anything (tests, embedders).
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Whether messages go anywhere, i.e. `NOTIFY_SOCKET` was set.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `READY=1`: start-up finished, or a reload finished.
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// `STATUS=<text>`, shown by `systemctl status`. Newlines would end the
    /// assignment early, so they become spaces.
    pub fn status(&self, text: &str) {
        let line = text.replace(['\n', '\r'], " ");
        self.send(&[NotifyState::Status(&line)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, before a SIGHUP reload; follow it
    /// with [`Notifier::ready`]. systemd 253+ uses the timestamp to match the
    /// reload to the `systemctl reload` that asked for it.
    pub fn reloading(&self) {
        if !self.enabled {
            return;
        }
        // sd-notify reads CLOCK_MONOTONIC through libc::clock_gettime, which
        // is the clock systemd compares against.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC ({e}); sending RELOADING=1 without it");
                self.send(&[NotifyState::Reloading]);
            }
        }
    }

    /// `STOPPING=1`: shutdown began (SIGTERM/SIGINT).
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// `EXTEND_TIMEOUT_USEC=<by>`: asks for `by` more time from now for the
    /// current start, stop or reload, e.g. while a long job finishes.
    ///
    /// Written by hand rather than with `NotifyState::ExtendTimeoutUsec`,
    /// whose `u32` stops at about 71 minutes while a job may run a day.
    pub fn extend_timeout(&self, by: Duration) {
        let usec = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        let line = format!("EXTEND_TIMEOUT_USEC={usec}");
        self.send(&[NotifyState::Custom(&line)]);
    }

    /// How often to call [`Notifier::watchdog`]: half of `WATCHDOG_USEC`, as
    /// sd_watchdog_enabled(3) advises, or `None` when systemd set no watchdog
    /// for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.watchdog_usec.map(|d| d / 2)
    }

    /// `WATCHDOG=1`. Call it only from a loop that proves the daemon works
    /// (the scheduler, after a store query), never from a timer of its own.
    pub fn watchdog(&self) {
        if self.watchdog_usec.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            let what: Vec<String> = states.iter().map(ToString::to_string).collect();
            let what = what.join(" ");
            tracing::warn!(error = %e, states = %what, "sd_notify failed ({what}): {e}");
        }
    }
}

/// The admin socket's listener handed over by systemd (`cronq.socket`), if
/// this process was socket-activated.
///
/// Answers `Ok(None)` when `LISTEN_PID` is unset or names another process
/// (the variables were inherited, not meant for us). Otherwise it expects
/// exactly one fd, sets `FD_CLOEXEC` on it so jobs' child processes do not
/// inherit the socket, checks that it is a listening Unix stream socket, and
/// returns it non-blocking, ready for `tokio::net::UnixListener::from_std`.
/// Anything else is an error that says what systemd passed, so a wrong
/// `.socket` unit fails start-up loudly instead of binding a second socket.
///
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` are removed from the
/// environment when the process has a single thread (call this before
/// building the tokio runtime); with more threads removing them would be
/// undefined behaviour, and they are harmless anyway because `LISTEN_PID`
/// names this process only.
///
/// The socket file belongs to systemd: the daemon must not unlink it on exit.
pub fn listener_from_env() -> io::Result<Option<UnixListener>> {
    let Some(pid) = std::env::var_os("LISTEN_PID") else {
        return Ok(None);
    };
    let pid = pid
        .to_str()
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| {
            invalid(format!(
                "socket activation: LISTEN_PID={pid:?} is not a process id"
            ))
        })?;
    if pid != std::process::id() {
        return Ok(None);
    }
    let fds = std::env::var("LISTEN_FDS").map_err(|_| {
        invalid(
            "socket activation: LISTEN_PID names this process but LISTEN_FDS is unset or not UTF-8"
                .into(),
        )
    })?;
    let count = fds.parse::<u32>().map_err(|_| {
        invalid(format!(
            "socket activation: LISTEN_FDS={fds:?} is not a number"
        ))
    })?;
    unset_listen_env();
    match count {
        0 => return Ok(None),
        1 => {}
        n => {
            return Err(invalid(format!(
                "socket activation: systemd passed {n} sockets (LISTEN_FDS={n}); cronq takes exactly one, \
                 the admin socket: give cronq.socket a single ListenStream="
            )));
        }
    }
    let fd = LISTEN_FDS_START;
    set_cloexec(fd)?;
    check_unix_stream_listener(fd)?;
    // SAFETY: systemd passed us fd 3 for our exclusive use, it is open (the
    // checks above succeeded on it) and is a listening Unix stream socket;
    // nothing else in the process owns it, so the listener may close it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn unset_listen_env() {
    if thread_count() != Some(1) {
        return;
    }
    // SAFETY: this is the only thread of the process (checked just above, and
    // only this thread could start another), so nothing reads the
    // environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
}

/// Threads of this process, from /proc (None if /proc is not mounted).
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer fd has no memory-safety preconditions; a
    // closed fd makes it fail with EBADF, which we report.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("socket activation: LISTEN_FDS=1 but fd {fd} is not open: {e}"),
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn check_unix_stream_listener(fd: RawFd) -> io::Result<()> {
    let wrong = |what: &str| {
        invalid(format!(
            "socket activation: fd {fd} from systemd is {what}, not a listening Unix stream socket; \
             cronq.socket needs ListenStream=/path/to/admin.sock"
        ))
    };
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(wrong("not a socket"));
    }
    if sockopt(fd, libc::SO_DOMAIN)? != libc::AF_UNIX {
        return Err(wrong("not a Unix socket (TCP or other family)"));
    }
    if sockopt(fd, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(wrong("a datagram or seqpacket socket"));
    }
    if sockopt(fd, libc::SO_ACCEPTCONN)? == 0 {
        return Err(wrong("a stream socket that is not listening"));
    }
    Ok(())
}

fn sockopt(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds the size
    // of `value`, as getsockopt requires.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;

    /// Tests that change the process environment run one at a time.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    /// Sets `vars` for the duration of `f`, then removes them.
    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every test touching these variables holds ENV_LOCK, and no
        // other code in the test binary reads them.
        unsafe {
            for (k, v) in vars {
                std::env::set_var(k, v);
            }
        }
        let out = f();
        unsafe {
            for (k, _) in vars {
                std::env::remove_var(k);
            }
        }
        out
    }

    fn recv_all(sock: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn messages_reach_a_real_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        let pid = std::process::id().to_string();
        let got = with_env(
            &[
                ("NOTIFY_SOCKET", path.to_str().unwrap()),
                ("WATCHDOG_USEC", "30000000"),
                ("WATCHDOG_PID", &pid),
            ],
            || {
                let n = Notifier::from_env();
                assert!(n.is_enabled());
                assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
                n.ready();
                n.status("3/5 busy,\n120 pending");
                n.reloading();
                n.watchdog();
                n.extend_timeout(Duration::from_secs(86_400));
                n.stopping();
                recv_all(&sock)
            },
        );
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[0], "READY=1\n");
        assert_eq!(got[1], "STATUS=3/5 busy, 120 pending\n");
        let mut reload = got[2].lines();
        assert_eq!(reload.next(), Some("RELOADING=1"));
        let mono = reload.next().unwrap();
        let usec: u64 = mono
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0);
        assert_eq!(got[3], "WATCHDOG=1\n");
        assert_eq!(got[4], "EXTEND_TIMEOUT_USEC=86400000000\n");
        assert_eq!(got[5], "STOPPING=1\n");
    }

    #[test]
    fn monotonic_usec_is_clock_monotonic() {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write into.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
            0
        );
        let before = ts.tv_sec as i128 * 1_000_000 + ts.tv_nsec as i128 / 1_000;
        let NotifyState::MonotonicUsec(now) = NotifyState::monotonic_usec_now().unwrap() else {
            panic!("not MonotonicUsec");
        };
        assert!(now >= before && now - before < 5_000_000, "{before} {now}");
    }

    #[test]
    fn watchdog_for_another_pid_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        let got = with_env(
            &[
                ("NOTIFY_SOCKET", path.to_str().unwrap()),
                ("WATCHDOG_USEC", "30000000"),
                ("WATCHDOG_PID", "1"),
            ],
            || {
                let n = Notifier::from_env();
                assert_eq!(n.watchdog_interval(), None);
                n.watchdog();
                recv_all(&sock)
            },
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn silent_outside_systemd() {
        let n = with_env(&[], Notifier::from_env);
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        // Nothing to observe but that these neither fail nor block.
        n.ready();
        n.status("x");
        n.reloading();
        n.stopping();
        n.watchdog();
        n.extend_timeout(Duration::from_secs(1));
    }

    #[test]
    fn listen_pid_of_another_process_is_ignored() {
        let got = with_env(&[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")], || {
            listener_from_env().map(|l| l.is_some())
        });
        assert!(!got.unwrap());
    }

    #[test]
    fn garbage_listen_pid_is_an_error() {
        let err = with_env(&[("LISTEN_PID", "abc"), ("LISTEN_FDS", "1")], || {
            listener_from_env().map(|l| l.is_some())
        })
        .unwrap_err();
        assert!(err.to_string().contains("LISTEN_PID"), "{err}");
    }
}
