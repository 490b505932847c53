//! `cronq check [FILE]`: validates a crons file offline, with the
//! environment the daemon would have, and lists each fault; warns about
//! JOB_COMMAND_ALLOW entries that no job could run.
//!
//! Without FILE it checks the file the daemon reads, found the way the CLI
//! finds the daemon's socket (`client::socket`): `CRONQ_CRONS` or
//! `CONFIGURATION_DIRECTORY` if set, else the packaged layout's
//! `/etc/cronq/crons.toml` when `/etc/cronq` exists, else `./crons.toml`.
//! The middle step is what the daemon does not need: systemd sets
//! `CONFIGURATION_DIRECTORY` for the unit only, never in an operator's shell.
//! It does not read the unit's `EnvironmentFile=` (`/etc/cronq/cronq.env`):
//! a `CRONQ_CRONS` set only there must be named.
//!
//! The output says which file was checked and why that one. A missing file
//! is said to be missing, and is not a success unless a drop-in beside it
//! holds crons: "0 crons, all valid" for a file that is not there hid the
//! mistake of checking the wrong one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::super::exit;
use crate::config::Config;
use crate::cron::file::{self, CronDef};

/// Where the packaged daemon's configuration lives (`ConfigurationDirectory=cronq`).
pub const SYSTEM_CONFIG_DIR: &str = "/etc/cronq";

/// The file to check and why it is that one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    path: PathBuf,
    why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Named on the command line.
    Named,
    /// From this variable.
    Variable(&'static str),
    /// The packaged layout is installed.
    Installed,
    /// Nothing else applied.
    WorkingDirectory,
}

impl Target {
    /// The file and, unless it was named, where it came from.
    fn describe(&self) -> String {
        let path = self.path.display();
        match self.why {
            Why::Named => path.to_string(),
            Why::Variable(var) => format!("{path} (from {var})"),
            Why::Installed => format!("{path} (the installed daemon's file)"),
            Why::WorkingDirectory => {
                format!("{path} (no CRONQ_CRONS and no {SYSTEM_CONFIG_DIR}: the current directory)")
            }
        }
    }
}

/// The crons file to check. `config_crons` is the daemon's resolution
/// (`Config::crons_path`), `is_set` says whether a variable is set and not
/// empty, and `installed` is the packaged configuration directory.
fn resolve(
    named: Option<&Path>,
    config_crons: &Path,
    is_set: &dyn Fn(&str) -> bool,
    installed: &Path,
) -> Target {
    if let Some(path) = named {
        return Target {
            path: path.to_path_buf(),
            why: Why::Named,
        };
    }
    for var in ["CRONQ_CRONS", "CONFIGURATION_DIRECTORY"] {
        if is_set(var) {
            return Target {
                path: config_crons.to_path_buf(),
                why: Why::Variable(var),
            };
        }
    }
    if installed.is_dir() {
        return Target {
            path: installed.join("crons.toml"),
            why: Why::Installed,
        };
    }
    Target {
        path: config_crons.to_path_buf(),
        why: Why::WorkingDirectory,
    }
}

pub fn run(path: Option<&Path>) -> ExitCode {
    let mut config = match Config::from_env() {
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
    let is_set =
        |var: &str| std::env::var_os(var).is_some_and(|v| !v.to_string_lossy().trim().is_empty());
    let target = resolve(
        path,
        &config.crons_path,
        &is_set,
        Path::new(SYSTEM_CONFIG_DIR),
    );
    let shown = target.describe();

    let mut missing = false;
    if target.why != Why::Named {
        match std::fs::File::open(&target.path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => missing = true,
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                let hint = if target.why == Why::Installed {
                    format!("; {SYSTEM_CONFIG_DIR} is readable by root and the group cronq")
                } else {
                    String::new()
                };
                eprintln!("cronq: cannot read {shown}: permission denied{hint}");
                return ExitCode::from(exit::REFUSED);
            }
            // Other errors are reported by the load, as faults.
            _ => {}
        }
        // Loaded as the daemon loads its configured file: a missing one
        // leaves the drop-ins beside it.
        config.crons_path = target.path.clone();
    }
    let named = (target.why == Why::Named).then_some(target.path.as_path());
    match file::check(named, &config) {
        Ok(crons) if missing && crons.is_empty() => {
            eprintln!(
                "cronq: {shown} does not exist, and no {} beside it holds a cron: nothing was \
                 checked (the daemon would run no crons from files); name a file with \
                 cronq check FILE",
                file::dropin_dir(&target.path).join("*.toml").display()
            );
            ExitCode::from(exit::REFUSED)
        }
        Ok(crons) => {
            if missing {
                println!(
                    "{shown} does not exist; {} cron(s) from {}, all valid",
                    crons.len(),
                    file::dropin_dir(&target.path).display()
                );
            } else {
                println!("{shown}: {} cron(s), all valid", crons.len());
            }
            print_crons(&crons);
            warn_unreadable_templates(&crons, &config);
            ExitCode::from(exit::OK)
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("cronq: {shown}: {} fault(s)", errors.faults.len());
            ExitCode::from(exit::REFUSED)
        }
    }
}

fn print_crons(crons: &[CronDef]) {
    for c in crons {
        println!(
            "  {:<24} {:<20} {:<16} {}{}",
            c.id,
            c.schedule_text,
            c.timezone_name,
            c.job_type,
            if c.enabled { "" } else { " (disabled)" }
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(named: Option<&str>, set: &[&str], installed: &Path) -> Target {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        let is_set = move |var: &str| set.iter().any(|s| s == var);
        resolve(
            named.map(Path::new),
            Path::new("/from/config/crons.toml"),
            &is_set,
            installed,
        )
    }

    #[test]
    fn a_named_file_then_the_variables_then_the_installed_layout_then_here() {
        let dir = tempfile::tempdir().unwrap();
        let installed = dir.path().join("etc-cronq");
        std::fs::create_dir(&installed).unwrap();
        let absent = dir.path().join("absent");

        let t = target(Some("mine.toml"), &["CRONQ_CRONS"], &installed);
        assert_eq!(
            (t.path.as_path(), t.why),
            (Path::new("mine.toml"), Why::Named)
        );
        assert_eq!(t.describe(), "mine.toml");

        for var in ["CRONQ_CRONS", "CONFIGURATION_DIRECTORY"] {
            let t = target(None, &[var], &installed);
            assert_eq!(t.path, Path::new("/from/config/crons.toml"));
            assert_eq!(t.why, Why::Variable(var));
            assert_eq!(
                t.describe(),
                format!("/from/config/crons.toml (from {var})")
            );
        }

        let t = target(None, &[], &installed);
        assert_eq!(t.path, installed.join("crons.toml"));
        assert_eq!(
            t.describe(),
            format!(
                "{} (the installed daemon's file)",
                installed.join("crons.toml").display()
            )
        );

        let t = target(None, &[], &absent);
        assert_eq!(t.path, Path::new("/from/config/crons.toml"));
        assert_eq!(t.why, Why::WorkingDirectory);
        assert!(t.describe().contains("no /etc/cronq"), "{}", t.describe());

        // A plain file where the directory would be is not the layout.
        std::fs::write(&absent, "").unwrap();
        assert_eq!(target(None, &[], &absent).why, Why::WorkingDirectory);
    }
}
