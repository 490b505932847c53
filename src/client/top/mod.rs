//! `cronq top`: a live dashboard of the queue, the workers and the crons.
//!
//! - `wire`: the daemon's event lines and answers, decoded leniently;
//! - `state`: what is known, aggregated from events and the poll, bounded;
//! - `throughput`: the per-second counters of the last minute;
//! - `rows`: each pane's rows after the filter, shared by view and keys;
//! - `view/`: the screen, a pure function of state, UI, clock and size;
//! - `input`: keys, turned into the CLI's own protocol commands;
//! - `detail`: a job's record for the details overlay;
//! - `conn`: the request connection, and the messages to the loop;
//! - `watch`: the `watch` subscription;
//! - `terminal`: raw mode and the alternate screen, restored on every exit;
//! - `app`: the loop.
//!
//! The choice a reader would question: two blocking threads and a channel
//! rather than async I/O. Each connection has one thing to wait for, the
//! terminal has one, and the loop has one channel with a deadline, so every
//! thread sleeps in the kernel until there is work: an idle dashboard costs
//! a redraw and a poll a second, nothing more, and the code needs no
//! runtime. With a daemon that does not speak `watch` yet (it answers
//! `unknown_command`), the poll alone feeds every pane and the status line
//! says "live events unavailable".

mod app;
mod conn;
pub mod detail;
pub mod input;
pub mod rows;
pub mod state;
mod terminal;
pub mod throughput;
pub mod view;
mod watch;
pub mod wire;

use std::io::IsTerminal;

use super::ClientError;
use super::args::GlobalArgs;
use super::socket;

/// Runs the dashboard until the operator quits; prints nothing after.
pub fn run(global: &GlobalArgs) -> Result<String, ClientError> {
    if global.json {
        return Err(ClientError::Usage(
            "top draws a screen; --json does not apply (use `cronq --json status` or `stats`)"
                .into(),
        ));
    }
    if !std::io::stdout().is_terminal() {
        return Err(ClientError::Usage(
            "top needs a terminal on standard output (for scripts: `cronq status`, `cronq stats`)"
                .into(),
        ));
    }
    let path = socket::resolve(global.socket.as_deref())?;
    app::run(path)?;
    Ok(String::new())
}
