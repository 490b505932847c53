//! Wiring, start-up order, signals and shutdown.

use std::process::ExitCode;

/// `cronq daemon`: reads the environment and runs until SIGTERM/SIGINT.
pub fn main_from_env() -> ExitCode {
    eprintln!("cronq: the daemon is not built yet");
    ExitCode::FAILURE
}
