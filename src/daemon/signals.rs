//! What the daemon does on each signal: SIGHUP reloads the crons file;
//! SIGTERM or SIGINT starts the drain; a second SIGTERM or SIGINT during
//! the drain forces the stop.
//!
//! A forced stop does not wait for running jobs: their attempts are
//! abandoned (a command's processes are ended with them) and their jobs
//! handed back to the queue with the attempt not counted, so they run again
//! whole at the next start. The daemon then finishes stopping as usual
//! (socket, instance row, database) and exits 1, so that nobody mistakes
//! the stop for a clean one. A third signal exits at once.

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::Daemon;

/// How the daemon's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Running jobs finished (or reached their timeouts) first.
    Drained,
    /// A second SIGTERM/SIGINT cut the drain short.
    Forced,
}

pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installed before start-up, so a signal during it is not lost.
    pub(super) fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Runs `daemon` until it has stopped.
    pub(super) async fn serve(&mut self, daemon: Daemon) -> Stopped {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = self.int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = self.hup.recv() => reload(&daemon),
            }
        }
        let queue = daemon.queue.clone();
        let stop = daemon.stop();
        tokio::pin!(stop);
        let name = tokio::select! {
            () = &mut stop => return Stopped::Drained,
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        let running = queue.running_ids();
        tracing::warn!(
            running = running.len(),
            "second {name}: forcing the stop; {} running job(s) are ended and handed back \
             without using up an attempt{}",
            running.len(),
            if running.is_empty() {
                String::new()
            } else {
                format!(": {}", running.join(", "))
            }
        );
        queue.halt();
        tokio::select! {
            () = &mut stop => {}
            _ = self.term.recv() => exit_now(),
            _ = self.int.recv() => exit_now(),
        }
        tracing::warn!("cronq stopped by force");
        Stopped::Forced
    }
}

fn reload(daemon: &Daemon) {
    daemon.notifier.reloading();
    if let Err(e) = daemon.scheduler.reload() {
        tracing::error!(
            error = %e,
            "SIGHUP: the crons file was not reloaded; the old table stays: {e}"
        );
    }
    daemon.notifier.ready();
}

/// The third signal: the operator does not want to wait even for the
/// hand-back. Whatever was not written is recovered at the next start.
fn exit_now() -> ! {
    tracing::error!("third signal: exiting now; unfinished jobs are recovered at the next start");
    std::process::exit(1)
}
