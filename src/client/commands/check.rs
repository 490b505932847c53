//! `cronq check [FILE]`: validates a crons file offline, with the
//! environment the daemon would have, and lists each fault; warns about
//! JOB_COMMAND_ALLOW entries that no job could run.

use std::path::Path;
use std::process::ExitCode;

use super::super::exit;
use crate::config::Config;
use crate::cron::file;

pub fn run(path: Option<&Path>) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cronq: {e}");
            return ExitCode::from(exit::REFUSED);
        }
    };
    // The daemon logs the same at start-up; a job that runs one would fail.
    for warning in crate::handlers::command::allow_warnings(&config.command_allow) {
        eprintln!("cronq: warning: {warning}");
    }
    let shown = path.unwrap_or(&config.crons_path).display().to_string();
    match file::check(path, &config) {
        Ok(crons) => {
            println!("{shown}: {} cron(s), all valid", crons.len());
            for c in &crons {
                println!(
                    "  {:<24} {:<20} {:<16} {}{}",
                    c.id,
                    c.schedule_text,
                    c.timezone_name,
                    c.job_type,
                    if c.enabled { "" } else { " (disabled)" }
                );
            }
            ExitCode::from(exit::OK)
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("cronq: {shown}: {} fault(s)", errors.faults.len());
            ExitCode::from(exit::REFUSED)
        }
    }
}
