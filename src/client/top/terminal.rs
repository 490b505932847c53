//! Taking the terminal and giving it back on every way out: a normal quit
//! (the guard's `Drop`), an error (the same), a panic on any thread (the
//! hook restores, then ends the process, so no thread draws on a restored
//! terminal), and SIGINT / SIGTERM / SIGHUP / SIGQUIT (a thread waits for
//! them and tells the loop, which quits through the guard).
//!
//! In raw mode Ctrl-C is a key, not a signal; the signals here are the
//! ones sent from elsewhere (`kill`, a closing ssh session).

use std::io::{self, Stdout, stdout};
use std::sync::mpsc::SyncSender;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use super::conn::Msg;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// The terminal in raw mode on the alternate screen, until dropped.
pub struct Screen {
    pub terminal: Term,
}

impl Screen {
    pub fn enter() -> io::Result<Screen> {
        install_panic_hook();
        let entered = enable_raw_mode()
            .and_then(|()| execute!(stdout(), EnterAlternateScreen, Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())));
        match entered {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor; safe to
/// call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
        std::process::exit(101);
    }));
}

/// The signals that end `cronq top`.
const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Blocks the quitting signals in this thread (and so in every thread
/// started after it) and starts one thread that waits for them. Call it
/// before starting the other threads.
pub fn forward_signals(tx: SyncSender<Msg>) -> io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before
    // use; pthread_sigmask and sigwait only read it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    };
    // SAFETY: a valid set; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    std::thread::Builder::new()
        .name("top-signals".into())
        .spawn(move || {
            loop {
                let mut signal: libc::c_int = 0;
                // SAFETY: `set` is valid and `signal` is a writable int.
                let rc = unsafe { libc::sigwait(&set, &mut signal) };
                if rc == 0 && tx.send(Msg::Signal).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
