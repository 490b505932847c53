//! A stand-in daemon that exercises `cronq::systemd` and `cronq::logging`
//! under a real service manager (tests/nspawn_boot.sh), while the real
//! daemon is written elsewhere.
//!
//! It takes its listener from socket activation, logs through
//! `LOG_FORMAT=auto` (journald when stderr is the journal), sends READY one
//! second after start so a test can see `systemctl start` wait, keeps STATUS
//! current, and pings the watchdog from its accept loop. Each connection
//! sends one line, an id; the probe logs a `job` span with that id (so
//! `journalctl CRONQ_JOB_ID=<id>` finds it) and answers `pong <id>`.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cronq::config::LogFormat;
use cronq::{logging, systemd};

fn main() -> ExitCode {
    // Before anything starts a thread: it may then clear LISTEN_*.
    let listener = match systemd::listener_from_env() {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!("systemd_probe: not socket-activated (no LISTEN_FDS for this pid)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("systemd_probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log = match logging::init(LogFormat::Auto, "info") {
        Ok(log) => log,
        Err(e) => {
            eprintln!("systemd_probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let notifier = systemd::Notifier::from_env();
    std::thread::sleep(Duration::from_secs(1));
    let ping_every = notifier
        .watchdog_interval()
        .unwrap_or(Duration::from_secs(1));
    tracing::info!(
        output = ?log.output(),
        listen_fds_left = std::env::var_os("LISTEN_FDS").is_some(),
        watchdog_ms = ping_every.as_millis() as u64,
        "probe ready"
    );
    notifier.status("probe: 0 served");
    notifier.ready();

    let mut served = 0u64;
    let mut last_ping = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve(stream) {
                    tracing::warn!(error = %e, "connection failed");
                }
                served += 1;
                notifier.status(&format!("probe: {served} served"));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                return ExitCode::FAILURE;
            }
        }
        if last_ping.elapsed() >= ping_every {
            notifier.watchdog();
            last_ping = Instant::now();
        }
    }
}

fn serve(stream: UnixStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let id = line.trim();
    let span = tracing::info_span!("job", job_id = %id, job_type = "probe", attempt = 1u32);
    let _entered = span.enter();
    tracing::info!(duration_ms = 0u64, "job finished");
    writeln!(&stream, "pong {id}")
}
