//! The `cronq` binary: parses the command line and hands it to the daemon or
//! the client; everything else is in the library.

use std::process::ExitCode;

use clap::Parser;
use cronq::client::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Daemon => {
            if let Some(path) = &cli.global.socket {
                // SAFETY: no other thread exists yet; the daemon reads its
                // socket from CRONQ_SOCKET like every other setting.
                unsafe { std::env::set_var("CRONQ_SOCKET", path) };
            }
            cronq::daemon::main_from_env()
        }
        Command::Check { file } => cronq::client::commands::check::run(file.as_deref()),
        command => cronq::client::run(cli.global, command),
    }
}
