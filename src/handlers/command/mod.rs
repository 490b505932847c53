//! `command`: runs an allowed program with arguments, no shell, in a clean
//! environment, under a timeout, its processes held together so that they
//! end with the job.
//!
//! This module owns running a job and judging the outcome; `payload` parses
//! `argv`, `cwd`, `env`, `stdin` and checks the allow lists, `env` says which
//! variables a job may set, `containment` which way jobs are held in this
//! process (`cgroup`: a cgroup each, under a delegated systemd unit; else a
//! process group each), `processes` owns the processes and their ending,
//! `outcome` puts how they ended into words, `tail` keeps the end of their
//! output.
//!
//! The choice a reader may question is the environment: the daemon's own is
//! never passed on (it holds SMTP_PASSWORD and the like). A command gets only
//! [`DEFAULT_ENV`], `PATH=/usr/local/bin:/usr/bin:/bin` and `LANG=C.UTF-8`,
//! plus the job's `env`, whose names must be listed in JOB_COMMAND_ENV_ALLOW
//! (overriding a default included). PATH is there because scripts call
//! other programs by name; LANG so that output is predictable UTF-8.
//! Nothing else (no HOME, USER, TZ): a job that needs one says so, and the
//! operator allows it.

mod cgroup;
mod containment;
mod env;
mod outcome;
mod payload;
mod processes;
mod run;
mod tail;

use std::path::PathBuf;

use serde_json::Value;

use crate::config::Config;
use crate::queue::handler::{Handler, JobContext, JobError, Registration};
use crate::store::limits::{ByteSize, Limits};

pub use containment::Containment;
pub use env::{EnvAllow, never_allowed};
pub use outcome::signal_name;
pub use payload::CommandJob;
pub use processes::{KILL_GRACE, wait_until_ended};
pub use tail::TAIL_BYTES;

/// The environment every command starts with, before the job's `env`.
pub const DEFAULT_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
];

/// Everything that can go wrong with a command job.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A field of `data` is wrong.
    #[error("{field}: {reason}")]
    Payload { field: String, reason: String },
    #[error("argv[0]: {program:?} is not in JOB_COMMAND_ALLOW")]
    NotAllowed { program: String },
    /// An option the job asked for cannot be honoured here.
    #[error("{0}")]
    Limits(String),
    #[error("cwd: {path:?} is not a directory here: {reason}")]
    Cwd { path: PathBuf, reason: String },
    #[error("cannot make a cgroup for the job: {source}")]
    Cgroup {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lost track of {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status})\n{output}")]
    Failed {
        program: String,
        status: String,
        output: String,
    },
    #[error(
        "{program} ran out of memory: the job reached its memory cap of {limit} and the \
         kernel killed it (memory.events: oom_kill {kills})\n{output}"
    )]
    OutOfMemory {
        program: String,
        limit: String,
        kills: u64,
        output: String,
    },
    #[error("{program} timed out after {after:?} and was terminated\n{output}")]
    TimedOut {
        program: String,
        after: std::time::Duration,
        output: String,
    },
    /// A forced `cancel` stopped the job; its processes were ended.
    #[error("{program} was stopped by a cancel\n{output}")]
    Cancelled { program: String, output: String },
}

impl CommandError {
    /// Whether no later attempt of the same job can succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            CommandError::Payload { .. }
            | CommandError::NotAllowed { .. }
            | CommandError::Limits(_) => true,
            // "Argument list too long" will be just as long next time.
            CommandError::Spawn { source, .. } => source.raw_os_error() == Some(libc::E2BIG),
            // A missing directory or program may be installed later; a
            // failing command may succeed later (that is what retries are
            // for), and so may one that ran out of memory on a busier day.
            CommandError::Cwd { .. }
            | CommandError::Cgroup { .. }
            | CommandError::Wait { .. }
            | CommandError::Failed { .. }
            | CommandError::OutOfMemory { .. }
            | CommandError::TimedOut { .. } => false,
            CommandError::Cancelled { .. } => true,
        }
    }
}

impl From<CommandError> for JobError {
    fn from(e: CommandError) -> JobError {
        if e.is_permanent() {
            JobError::Permanent(e.to_string())
        } else {
            JobError::Retry(e.to_string())
        }
    }
}

/// The operator's caps on every command job (JOB_COMMAND_MEMORY_MAX,
/// JOB_COMMAND_TASKS_MAX); a job may ask for less, never more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub memory_max: Option<ByteSize>,
    pub tasks_max: Option<u64>,
}

/// The `command` job type.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    allow: Vec<PathBuf>,
    env_allow: EnvAllow,
    caps: Caps,
    containment: Containment,
    description: String,
}

/// The registry entry the configuration asks for, with jobs held as
/// `containment` says: disabled when JOB_COMMAND_ALLOW is empty (no command
/// could ever run), and when a cap the operator set cannot be enforced.
pub fn registration(config: &Config, containment: Containment) -> Registration {
    let handler = CommandHandler::new(config.command_allow.clone())
        .env_allow(EnvAllow::new(config.command_env_allow.iter().cloned()))
        .caps(Caps {
            memory_max: config.command_memory_max,
            tasks_max: config.command_tasks_max,
        })
        .containment(containment);
    if config.command_allow.is_empty() {
        return Registration::disabled(handler, "JOB_COMMAND_ALLOW is empty");
    }
    match handler.caps_refusal() {
        Some(reason) => Registration::disabled(handler, reason),
        None => Registration::new(handler),
    }
}

/// Warnings about JOB_COMMAND_ALLOW entries no job could run: missing, not
/// a file, or not executable. For the daemon's start-up and `cronq check`.
pub fn allow_warnings(allow: &[PathBuf]) -> Vec<String> {
    allow
        .iter()
        .filter_map(|path| {
            let problem = match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
                Err(e) => format!("cannot be read: {e}"),
                Ok(meta) if !meta.is_file() => "is not a file".to_string(),
                Ok(meta) if !executable(&meta) => "is not executable".to_string(),
                Ok(_) => return None,
            };
            Some(format!("JOB_COMMAND_ALLOW: {} {problem}", path.display()))
        })
        .collect()
}

fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

impl CommandHandler {
    /// A handler that runs only the programs in `allow` (absolute paths),
    /// lets jobs set no variables, caps nothing and holds each job in a
    /// process group; the methods below change that.
    pub fn new(allow: Vec<PathBuf>) -> CommandHandler {
        let mut handler = CommandHandler {
            allow,
            env_allow: EnvAllow::default(),
            caps: Caps::default(),
            containment: Containment::process_group("set up by the daemon only"),
            description: String::new(),
        };
        handler.describe();
        handler
    }

    /// The variables a job may set.
    pub fn env_allow(mut self, env_allow: EnvAllow) -> CommandHandler {
        self.env_allow = env_allow;
        self
    }

    /// The caps on every job.
    pub fn caps(mut self, caps: Caps) -> CommandHandler {
        self.caps = caps;
        self
    }

    /// How jobs are held: [`Containment::detect`] in a daemon.
    pub fn containment(mut self, containment: Containment) -> CommandHandler {
        self.containment = containment;
        self.describe();
        self
    }

    fn describe(&mut self) {
        self.description = format!(
            "Runs an allowed program (JOB_COMMAND_ALLOW) with arguments, no shell; {}",
            self.containment.summary()
        );
    }

    /// Why the operator's caps cannot be enforced here, if they cannot.
    fn caps_refusal(&self) -> Option<String> {
        let refuse = |var: &str, value: String, why: Option<String>| {
            why.map(|why| format!("{var}={value} cannot be enforced: {why}"))
        };
        self.caps
            .memory_max
            .and_then(|m| {
                refuse(
                    "JOB_COMMAND_MEMORY_MAX",
                    m.to_string(),
                    self.containment.memory_refusal(),
                )
            })
            .or_else(|| {
                self.caps.tasks_max.and_then(|n| {
                    refuse(
                        "JOB_COMMAND_TASKS_MAX",
                        n.to_string(),
                        self.containment.tasks_refusal(),
                    )
                })
            })
    }

    /// The caps that apply to one job: the lower of the operator's and the
    /// job's own, each.
    fn effective(&self, limits: &Limits) -> (Option<ByteSize>, Option<u64>) {
        fn lower<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        (
            lower(self.caps.memory_max, limits.memory_max),
            lower(self.caps.tasks_max, limits.tasks_max),
        )
    }

    fn parse(&self, data: &Value) -> Result<CommandJob, CommandError> {
        CommandJob::parse(data, &self.allow, &self.env_allow)
    }
}

#[async_trait::async_trait]
impl Handler for CommandHandler {
    fn job_type(&self) -> &str {
        "command"
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn validate(&self, data: &Value) -> Result<(), String> {
        self.parse(data).map(|_| ()).map_err(|e| e.to_string())
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), String> {
        if let Some(asked) = limits.memory_max {
            if let Some(why) = self.containment.memory_refusal() {
                return Err(format!("memory_max: cannot be enforced: {why}"));
            }
            if let Some(cap) = self.caps.memory_max.filter(|cap| asked > *cap) {
                return Err(format!(
                    "memory_max: {asked} is more than JOB_COMMAND_MEMORY_MAX={cap}; a job may \
                     ask for less, never more"
                ));
            }
        }
        if let Some(asked) = limits.tasks_max {
            if let Some(why) = self.containment.tasks_refusal() {
                return Err(format!("tasks_max: cannot be enforced: {why}"));
            }
            if let Some(cap) = self.caps.tasks_max.filter(|cap| asked > *cap) {
                return Err(format!(
                    "tasks_max: {asked} is more than JOB_COMMAND_TASKS_MAX={cap}; a job may \
                     ask for less, never more"
                ));
            }
        }
        Ok(())
    }

    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let job = self.parse(&ctx.data)?;
        self.check_limits(&ctx.limits)
            .map_err(CommandError::Limits)?;
        self.execute(&job, &ctx).await.map_err(JobError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn allow() -> Vec<PathBuf> {
        vec![PathBuf::from("/bin/echo")]
    }

    #[test]
    fn refusals_are_permanent_and_failures_retried() {
        let e: JobError = CommandError::NotAllowed {
            program: "/bin/rm".to_string(),
        }
        .into();
        assert!(e.is_permanent());
        let e: JobError = CommandError::Failed {
            program: "p".to_string(),
            status: "exit status: 1".to_string(),
            output: String::new(),
        }
        .into();
        assert!(!e.is_permanent());
    }

    #[test]
    fn an_empty_allow_list_disables_the_handler() {
        let mut config = Config::for_dir(Path::new("/nonexistent"));
        let r = registration(&config, Containment::Offline);
        assert!(!r.enabled);
        assert_eq!(
            r.disabled_reason.as_deref(),
            Some("JOB_COMMAND_ALLOW is empty")
        );
        config.command_allow = allow();
        assert!(registration(&config, Containment::Offline).enabled);
    }

    #[test]
    fn caps_that_cannot_be_enforced_disable_the_handler() {
        let mut config = Config::for_dir(Path::new("/nonexistent"));
        config.command_allow = allow();
        config.command_memory_max = Some(ByteSize(512 << 20));
        let r = registration(&config, Containment::process_group("no Delegate=yes"));
        assert!(!r.enabled);
        assert_eq!(
            r.disabled_reason.as_deref(),
            Some(
                "JOB_COMMAND_MEMORY_MAX=512M cannot be enforced: command jobs run in process \
                 groups here, not cgroups: no Delegate=yes"
            )
        );
        config.command_memory_max = None;
        config.command_tasks_max = Some(64);
        let r = registration(&config, Containment::process_group("no Delegate=yes"));
        assert!(
            r.disabled_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("JOB_COMMAND_TASKS_MAX=64 cannot be enforced")),
            "{r:?}"
        );
        // `cronq check` does not judge the daemon's cgroup.
        assert!(registration(&config, Containment::Offline).enabled);
    }

    #[test]
    fn a_job_may_ask_for_less_than_the_caps_never_more() {
        let h = CommandHandler::new(allow())
            .caps(Caps {
                memory_max: Some(ByteSize(512 << 20)),
                tasks_max: Some(64),
            })
            .containment(Containment::Offline);
        let asks = |memory_max: Option<u64>, tasks_max: Option<u64>| Limits {
            memory_max: memory_max.map(ByteSize),
            tasks_max,
        };
        assert_eq!(h.check_limits(&asks(Some(256 << 20), Some(8))), Ok(()));
        assert_eq!(h.check_limits(&asks(Some(512 << 20), Some(64))), Ok(()));
        assert_eq!(
            h.check_limits(&asks(Some(1 << 30), None)),
            Err(
                "memory_max: 1G is more than JOB_COMMAND_MEMORY_MAX=512M; a job may ask for \
                 less, never more"
                    .to_string()
            )
        );
        assert!(
            h.check_limits(&asks(None, Some(65)))
                .unwrap_err()
                .starts_with("tasks_max: 65 is more than JOB_COMMAND_TASKS_MAX=64")
        );
        assert_eq!(
            h.effective(&asks(Some(256 << 20), None)),
            (Some(ByteSize(256 << 20)), Some(64))
        );
        assert_eq!(
            h.effective(&asks(Some(1 << 30), Some(4))),
            (Some(ByteSize(512 << 20)), Some(4))
        );
        // Where jobs run in process groups, no cap of a job's own either.
        let h = CommandHandler::new(allow());
        let err = h.check_limits(&asks(Some(256 << 20), None)).unwrap_err();
        assert!(
            err.starts_with("memory_max: cannot be enforced: command jobs run in process groups"),
            "{err}"
        );
        assert_eq!(h.effective(&Limits::default()), (None, None));
    }

    #[test]
    fn missing_or_unrunnable_allowed_programs_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let warnings = allow_warnings(&[
            PathBuf::from("/bin/sh"),
            dir.path().join("missing"),
            dir.path().to_path_buf(),
            plain.clone(),
        ]);
        assert_eq!(
            warnings,
            [
                format!(
                    "JOB_COMMAND_ALLOW: {}/missing does not exist",
                    dir.path().display()
                ),
                format!("JOB_COMMAND_ALLOW: {} is not a file", dir.path().display()),
                format!("JOB_COMMAND_ALLOW: {} is not executable", plain.display()),
            ]
        );
    }
}
