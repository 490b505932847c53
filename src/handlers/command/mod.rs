//! `command`: runs an allowed program with arguments, no shell, in a clean
//! environment and its own process group, under a timeout.
//!
//! This module owns running a job and judging the outcome; `payload` parses
//! `argv`, `cwd`, `env`, `stdin` and checks the allow list, `group` owns the
//! processes and their ending, `tail` the bounded capture of their output.
//!
//! The choice a reader may question is the environment: the daemon's own is
//! never passed on (it holds SMTP_PASSWORD and the like). A command gets only
//! [`DEFAULT_ENV`], `PATH=/usr/local/bin:/usr/bin:/bin` and `LANG=C.UTF-8`,
//! plus the job's `env`, which may override either. PATH is there because
//! scripts call other programs by name; LANG so that output is predictable
//! UTF-8. Nothing else (no HOME, USER, TZ): a job that needs one says so.

mod group;
mod payload;
mod tail;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdin;

use crate::queue::handler::{Handler, JobContext, JobError, Registration};

pub use group::KILL_GRACE;
pub use payload::CommandJob;
pub use tail::TAIL_BYTES;

use group::ProcessGroup;
use tail::Output;

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
    #[error("cwd: {path:?} is not a directory here: {reason}")]
    Cwd { path: PathBuf, reason: String },
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
    #[error("{program} timed out after {after:?} and was terminated\n{output}")]
    TimedOut {
        program: String,
        after: std::time::Duration,
        output: String,
    },
}

impl CommandError {
    /// Whether no later attempt of the same job can succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            CommandError::Payload { .. } | CommandError::NotAllowed { .. } => true,
            // "Argument list too long" will be just as long next time.
            CommandError::Spawn { source, .. } => source.raw_os_error() == Some(libc::E2BIG),
            // A missing directory or program may be installed later; a
            // failing command may succeed later (that is what retries are for).
            CommandError::Cwd { .. }
            | CommandError::Wait { .. }
            | CommandError::Failed { .. }
            | CommandError::TimedOut { .. } => false,
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

/// The `command` job type.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    allow: Vec<PathBuf>,
}

/// The registry entry for `allow` (JOB_COMMAND_ALLOW): disabled when it is
/// empty, since no command could ever run.
pub fn registration(allow: &[PathBuf]) -> Registration {
    let handler = CommandHandler::new(allow.to_vec());
    if allow.is_empty() {
        Registration::disabled(handler, "JOB_COMMAND_ALLOW is empty")
    } else {
        Registration::new(handler)
    }
}

impl CommandHandler {
    /// A handler that runs only the programs in `allow` (absolute paths).
    pub fn new(allow: Vec<PathBuf>) -> CommandHandler {
        CommandHandler { allow }
    }

    async fn execute(&self, job: &CommandJob, ctx: &JobContext) -> Result<(), CommandError> {
        let program = job.program().to_string();
        if let Some(cwd) = &job.cwd {
            match tokio::fs::metadata(cwd).await {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(CommandError::Cwd {
                        path: cwd.clone(),
                        reason: "not a directory".to_string(),
                    });
                }
                Err(e) => {
                    return Err(CommandError::Cwd {
                        path: cwd.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }

        let mut command = tokio::process::Command::new(&program);
        command
            .args(&job.argv[1..])
            .env_clear()
            .envs(DEFAULT_ENV.iter().copied())
            .envs(&job.env)
            .stdin(if job.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &job.cwd {
            command.current_dir(cwd);
        }
        let spawn_error = |source| CommandError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let output = Arc::new(Output::default());
        let mut group =
            ProcessGroup::new(child, program.clone(), Arc::clone(&output)).map_err(spawn_error)?;
        tracing::debug!(
            program,
            pgid = group.pgid(),
            args = job.argv.len() - 1,
            env = ?job.env.keys().collect::<Vec<_>>(),
            cwd = ?job.cwd,
            "command started"
        );

        let started = Instant::now();
        let work = async {
            let (status, (), (), ()) = tokio::join!(
                group.wait(),
                drain(stdout, &output, Stream::Stdout),
                drain(stderr, &output, Stream::Stderr),
                feed(stdin, job.stdin.as_deref()),
            );
            status
        };
        let status = match tokio::time::timeout(ctx.timeout, work).await {
            Ok(status) => status.map_err(|source| CommandError::Wait {
                program: program.clone(),
                source,
            })?,
            Err(_elapsed) => {
                group.terminate();
                ctx.set_result(result(None, true, &output));
                let error = CommandError::TimedOut {
                    program: program.clone(),
                    after: ctx.timeout,
                    output: output.describe(),
                };
                log_failure(&program, "timed out", &output);
                return Err(error);
            }
        };

        let duration_ms = started.elapsed().as_millis() as u64;
        ctx.set_result(result(Some(status), false, &output));
        if status.success() {
            tracing::debug!(
                program,
                duration_ms,
                stdout_tail = %output.stdout().text(),
                stderr_tail = %output.stderr().text(),
                "command succeeded"
            );
            Ok(())
        } else {
            log_failure(&program, &status.to_string(), &output);
            Err(CommandError::Failed {
                program,
                status: status.to_string(),
                output: output.describe(),
            })
        }
    }
}

/// The job's result, on success and failure alike: how the command ended
/// and the last [`TAIL_BYTES`] of each stream (with how much it wrote).
fn result(status: Option<std::process::ExitStatus>, timed_out: bool, output: &Output) -> Value {
    use std::os::unix::process::ExitStatusExt;
    let (stdout, stderr) = (output.stdout(), output.stderr());
    serde_json::json!({
        "exit_code": status.and_then(|s| s.code()),
        "signal": status.and_then(|s| s.signal()),
        "timed_out": timed_out,
        "stdout": stdout.text(),
        "stderr": stderr.text(),
        "stdout_bytes": stdout.total(),
        "stderr_bytes": stderr.total(),
    })
}

fn log_failure(program: &str, status: &str, output: &Output) {
    tracing::warn!(
        program,
        status,
        stdout_tail = %output.stdout().text(),
        stderr_tail = %output.stderr().text(),
        "command failed"
    );
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Reads a pipe to its end into the stream's tail. A read error ends the
/// capture early but not the command: its exit status still decides.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, output: &Output, stream: Stream) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                let mut tail = match stream {
                    Stream::Stdout => output.stdout(),
                    Stream::Stderr => output.stderr(),
                };
                tail.push(&buf[..n]);
            }
            Err(e) => {
                tracing::debug!("reading the command's output failed: {e}");
                return;
            }
        }
    }
}

/// Writes `data` to the command's stdin and closes it. A command that exits
/// without reading all of it is not an error in itself (`head` does that).
async fn feed(pipe: Option<ChildStdin>, data: Option<&str>) {
    // Dropping the pipe closes it: the command sees end of input.
    if let (Some(mut pipe), Some(data)) = (pipe, data)
        && let Err(e) = pipe.write_all(data.as_bytes()).await
    {
        tracing::debug!("the command did not read all of its stdin: {e}");
    }
}

#[async_trait::async_trait]
impl Handler for CommandHandler {
    fn job_type(&self) -> &str {
        "command"
    }

    fn description(&self) -> &str {
        "Runs an allowed program (JOB_COMMAND_ALLOW) with arguments, no shell"
    }

    fn validate(&self, data: &Value) -> Result<(), String> {
        CommandJob::parse(data, &self.allow)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let job = CommandJob::parse(&ctx.data, &self.allow)?;
        self.execute(&job, &ctx).await.map_err(JobError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = registration(&[]);
        assert!(!r.enabled);
        assert_eq!(
            r.disabled_reason.as_deref(),
            Some("JOB_COMMAND_ALLOW is empty")
        );
        assert!(registration(&allow()).enabled);
    }
}
