//! One attempt of a command job: the program started in its cgroup or
//! process group, its stdin fed and its output drained while it runs under
//! the job's timeout, and the way it ended judged.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdin;

use super::processes::{self, JobProcesses};
use super::tail::Output;
use super::{CommandError, CommandHandler, CommandJob, DEFAULT_ENV, cgroup, outcome};
use crate::queue::handler::JobContext;

impl CommandHandler {
    pub(super) async fn execute(
        &self,
        job: &CommandJob,
        ctx: &JobContext,
    ) -> Result<(), CommandError> {
        let program = job.program().to_string();
        if let Some(cwd) = &job.cwd {
            check_cwd(cwd).await?;
        }
        let (memory_max, tasks_max) = self.effective(&ctx.limits);
        let cgroup = match self.containment.cgroups() {
            None => None,
            Some(cgroups) => {
                let name = cgroup::job_cgroup_name(&ctx.id, ctx.attempt);
                let created = cgroups.create(&name, memory_max.map(|m| m.0), tasks_max);
                Some(created.map_err(|source| CommandError::Cgroup { source })?)
            }
        };

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
            .stderr(Stdio::piped());
        if let Some(cwd) = &job.cwd {
            command.current_dir(cwd);
        }
        processes::prepare(&mut command, cgroup.as_ref());
        let spawn_error = |source| CommandError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                if let Some(cgroup) = cgroup {
                    processes::discard(cgroup);
                }
                return Err(spawn_error(e));
            }
        };
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let output = Arc::new(Output::default());
        let mut processes = JobProcesses::new(child, cgroup, program.clone(), Arc::clone(&output))
            .map_err(spawn_error)?;
        let env_names: Vec<&str> = job.env.keys().map(String::as_str).collect();
        tracing::debug!(
            program,
            pgid = processes.pgid().unwrap_or_default(),
            cgroup = %processes.cgroup().map(|c| c.dir().display().to_string()).unwrap_or_default(),
            args = job.argv.len() - 1,
            env = %env_names.join(","),
            cwd = %job.cwd.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
            "command started"
        );

        let started = Instant::now();
        let work = async {
            let (status, (), (), ()) = tokio::join!(
                processes.wait(),
                drain(stdout, &output, Stream::Stdout),
                drain(stderr, &output, Stream::Stderr),
                feed(stdin, job.stdin.as_deref()),
            );
            status
        };
        // A forced cancel and the timeout both end the job through
        // `JobProcesses::end`.
        let work = tokio::time::timeout(ctx.timeout, work);
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = ctx.cancel.cancelled() => {
                processes.end();
                ctx.set_result(result(None, false, &output));
                log_failure(&program, "cancelled", &output);
                return Err(CommandError::Cancelled {
                    program: program.clone(),
                    output: output.describe(),
                });
            }
        };
        let (status, deaths) = match outcome {
            Ok(status) => status.map_err(|source| CommandError::Wait {
                program: program.clone(),
                source,
            })?,
            Err(_elapsed) => {
                processes.end();
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
            return Ok(());
        }
        if deaths.oom_kills > 0 {
            log_failure(&program, "out of memory", &output);
            return Err(CommandError::OutOfMemory {
                program,
                limit: memory_max.map_or_else(|| "its cgroup".to_string(), |m| m.to_string()),
                kills: deaths.oom_kills,
                output: output.describe(),
            });
        }
        let status = outcome::describe(status, deaths, tasks_max);
        log_failure(&program, &status, &output);
        Err(CommandError::Failed {
            program,
            status,
            output: output.describe(),
        })
    }
}

async fn check_cwd(cwd: &Path) -> Result<(), CommandError> {
    let reason = match tokio::fs::metadata(cwd).await {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_string(),
        Err(e) => e.to_string(),
    };
    Err(CommandError::Cwd {
        path: cwd.to_path_buf(),
        reason,
    })
}

/// The job's result, on success and failure alike: how the command ended
/// (no status when it was stopped: a timeout, a forced cancel) and the
/// last [`TAIL_BYTES`](super::tail::TAIL_BYTES) of each stream, with how
/// much it wrote.
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
