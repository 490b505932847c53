//! `cronq check [FILE]`: validates a crons file offline, with the
//! environment the daemon would have, and lists each fault.

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
    let shown = path.unwrap_or(&config.crons_path).display().to_string();
    match file::check(path, &config) {
        Ok(crons) => {
            println!("{shown}: {} cron(s), all valid", crons.len());
            warn_unreadable_templates(&crons, &config);
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

/// Email crons whose template this user cannot read were not judged; say so.
fn warn_unreadable_templates(crons: &[crate::cron::file::CronDef], config: &Config) {
    for c in crons.iter().filter(|c| c.job_type == "email") {
        let data = serde_json::Value::Object(c.data.clone());
        if let Some(why) =
            crate::handlers::email::unreadable_template(&config.smtp.templates_dir, &data)
        {
            eprintln!("cronq: warning: cron.{}: {why}", c.id);
        }
    }
}
