//! The `cronq` command line's client side: every subcommand except `daemon`
//! talks to a running daemon over its admin socket (PROTOCOL.md), one
//! request line and one answer line, and prints the answer as a table or,
//! with `--json`, exactly as received.
//!
//! - `args`: the command line (clap derive types);
//! - `request`: the typed requests sent;
//! - `socket`: socket path resolution and the exchange;
//! - `commands/`: per command, the request it sends and how its answer reads;
//! - `table`, `timefmt`: human output;
//! - `top`: the live dashboard, a terminal program rather than one exchange.
//!
//! The choice a reader would question: each command is split into building
//! its request and rendering its answer (a pure function of the answer and
//! the current time), with the sending, `--json` and error handling done
//! once in `run`. So every command behaves alike on errors and exit codes,
//! and its output is unit-tested from a JSON value without a socket.
//!
//! Exit codes: 0 ok; 1 the daemon refused (`ok: false`), or a waited-for
//! job went dead or was cancelled; 2 usage (clap's own, and arguments the
//! CLI checks itself); 3 the daemon could not be reached or gave no usable
//! answer; 4 a waited-for job had not ended within the wait's timeout.

pub mod args;
pub mod commands;
pub mod request;
pub mod socket;
pub mod table;
pub mod timefmt;
pub mod top;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;
use jiff::Timestamp;
use serde_json::Value;

use args::{Cli, Command, GlobalArgs};

use request::Cmd;

/// The process exit codes, as the man page lists them.
pub mod exit {
    pub const OK: u8 = 0;
    pub const REFUSED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    /// `wait`, `enqueue --wait`, `trigger --wait`: not ended in time.
    pub const WAIT_TIMEOUT: u8 = 4;
}

/// How long to wait for an answer unless `--timeout` says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `trigger` answers only when the run has done its part; a `system_queue`
/// run drains a whole batch, so it gets longer.
pub(crate) const TRIGGER_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a command did not succeed; each maps to an exit code and one line on
/// stderr, `cronq: <code>: <message>`. Codes other than the daemon's own
/// (`usage`, `unreachable`, `timeout`, `protocol`) are the CLI's.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("usage: {0}")]
    Usage(String),
    #[error(
        "unreachable: cannot connect to the daemon at {}: {err}\n{}",
        path.display(),
        unreachable_hint(path)
    )]
    Unreachable { path: PathBuf, err: io::Error },
    /// The socket, or the folder it is in, is closed to this user.
    #[error(
        "denied: permission denied opening the daemon's socket {}\nhint: {}",
        path.display(),
        access.hint()
    )]
    Denied {
        path: PathBuf,
        access: socket::SocketAccess,
    },
    #[error(
        "timeout: the daemon at {} did not answer within {secs}s (raise --timeout, or 0 to wait forever)",
        path.display()
    )]
    Timeout { path: PathBuf, secs: u64 },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => exit::USAGE,
            ClientError::Refused { .. } => exit::REFUSED,
            ClientError::Unreachable { .. }
            | ClientError::Denied { .. }
            | ClientError::Timeout { .. }
            | ClientError::Protocol(_) => exit::UNREACHABLE,
        }
    }
}

/// What to try next when the socket cannot be connected to.
fn unreachable_hint(path: &std::path::Path) -> String {
    format!(
        "hint: is the daemon running? Start it with `systemctl start cronq` or `cronq daemon`, \
         or point --socket / CRONQ_SOCKET at its socket (tried {})",
        path.display()
    )
}

/// Runs a client command; `main` handles `daemon` and `check` itself.
pub fn run(global: GlobalArgs, command: Command) -> ExitCode {
    let command = match command {
        // Many requests and its own report, so its own exit code too.
        Command::ImportPocketbase(args) => return commands::import_pocketbase::run(&global, &args),
        // Opens the databases itself; no daemon is asked.
        Command::CopyStore(args) => return commands::copy_store::run(&global, &args),
        command => command,
    };
    let waited = match &command {
        Command::Wait { ids, timeout } => Some(commands::wait::wait_ids(&global, ids, *timeout)),
        Command::Enqueue(args) if args.wait => Some(commands::wait::after_enqueue(
            &global,
            args,
            &mut io::stdin().lock(),
        )),
        Command::Trigger {
            id,
            wait: true,
            timeout,
        } => Some(commands::wait::after_trigger(&global, id.clone(), *timeout)),
        _ => None,
    };
    if let Some(waited) = waited {
        return match waited {
            Ok((text, code)) => {
                print(&text);
                ExitCode::from(code)
            }
            Err(err) => {
                eprintln!("cronq: {err}");
                ExitCode::from(err.exit_code())
            }
        };
    }
    let result = match command {
        Command::Daemon | Command::Check { .. } => Err(ClientError::Usage(
            "`daemon` and `check` are not client commands".to_string(),
        )),
        Command::Watch(args) => commands::watch::run(&global, args),
        Command::Next(args) => commands::next::run(&args, global.json, Timestamp::now()),
        Command::Top => top::run(&global),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cronq", &mut buf);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        command => remote(&global, command),
    };
    match result {
        Ok(text) => {
            print(&text);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cronq: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// A command answered by the daemon: send its request, then print the
/// answer line (`--json`) or its rendering.
fn remote(global: &GlobalArgs, command: Command) -> Result<String, ClientError> {
    let (cmd, render) = commands::plan(command)?;
    let timeout = match global.timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None if matches!(cmd, Cmd::Trigger { .. }) => Some(TRIGGER_TIMEOUT),
        // Stopping a running job waits for it to end (queue::stop::FORCE_WAIT).
        None if matches!(cmd, Cmd::CancelForce(_)) => Some(Duration::from_secs(60)),
        None => Some(DEFAULT_TIMEOUT),
    };
    let path = socket::resolve(global.socket.as_deref())?;
    let answer = socket::request(&path, cmd, timeout)?;
    if !answer.ok() {
        if global.json {
            print(&answer.line);
        }
        let (code, message) = answer.error();
        return Err(ClientError::Refused { code, message });
    }
    if global.json {
        return Ok(answer.line);
    }
    Ok(render(&answer.value, Timestamp::now()))
}

/// How a command's successful answer reads at a terminal.
pub type Render = fn(&Value, Timestamp) -> String;

/// Writes `text` to stdout with a final newline. A closed pipe (`| head`)
/// is not an error worth a panic.
pub(crate) fn print(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.is_empty() && !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}
