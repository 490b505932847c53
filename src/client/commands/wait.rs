//! `wait ID...`, `enqueue --wait` and `trigger --wait`: the daemon answers
//! once a job has ended, and the exit code says how it ended, so a shell
//! script can run a job and act on its outcome: 0 succeeded, 1 dead or
//! cancelled, 4 not ended within the timeout (`exit::WAIT_TIMEOUT`).
//!
//! Several ids share one deadline and are waited for in turn; the exit
//! code is 1 if any went dead or was cancelled, else 4 if any had not
//! ended, else 0. The outcome of each is one line on stdout (with
//! `--json`, the daemon's answer line: the job's final record, or the
//! `timeout` error).

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;

use super::{num, text};
use crate::client::args::{EnqueueArgs, GlobalArgs};
use crate::client::request::{Cmd, WaitArgs};
use crate::client::socket::{self, Answer};
use crate::client::{ClientError, exit, timefmt};

/// Beyond the wait's own timeout, how long the answer may take to come.
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// Text for stdout and the exit code.
pub type Outcome = (String, u8);

/// `cronq wait ID... [--timeout S]`.
pub fn wait_ids(global: &GlobalArgs, ids: &[String], secs: u64) -> Result<Outcome, ClientError> {
    let path = socket::resolve(global.socket.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut lines = Vec::new();
    let mut code = exit::OK;
    for id in ids {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let (line, c) = wait_one(&path, global.json, id, left)?;
        lines.push(line);
        code = worse(code, c);
    }
    Ok((lines.join("\n"), code))
}

/// `cronq enqueue ... --wait`: the enqueue, then the wait for its job.
pub fn after_enqueue(
    global: &GlobalArgs,
    args: &EnqueueArgs,
    stdin: &mut dyn std::io::Read,
) -> Result<Outcome, ClientError> {
    let cmd = super::enqueue::request(args, stdin)?;
    let path = socket::resolve(global.socket.as_deref())?;
    let answer = accepted(
        socket::request(&path, cmd, answer_timeout(global, None))?,
        global,
    )?;
    let job = answer.value.get("job").unwrap_or(&Value::Null);
    let id = job
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Protocol("the enqueue answer has no job id".into()))?
        .to_string();
    // Rendered now, so "runs now" is said as of the enqueue.
    let enqueued = super::enqueue::render(&answer.value, Timestamp::now());
    let (waited, code) = wait_one(&path, global.json, &id, args.wait_timeout)?;
    Ok(if global.json {
        (waited, code)
    } else {
        (format!("{enqueued}\n{waited}"), code)
    })
}

/// `cronq trigger ID --wait`: the run, then, for a cron that enqueues a
/// job, the wait for that job; a run with no job (`system_queue`) has done
/// its work when `trigger` answers, and its status decides.
pub fn after_trigger(global: &GlobalArgs, id: String, secs: u64) -> Result<Outcome, ClientError> {
    let path = socket::resolve(global.socket.as_deref())?;
    let timeout = answer_timeout(global, Some(crate::client::TRIGGER_TIMEOUT));
    let answer = accepted(
        socket::request(&path, Cmd::Trigger { id }, timeout)?,
        global,
    )?;
    let run = answer.value.get("run").unwrap_or(&Value::Null);
    let triggered = super::crons::render_trigger(&answer.value, Timestamp::now());
    let Some(job) = run.get("job_id").and_then(Value::as_str) else {
        let code = match run.get("status").and_then(Value::as_str) {
            Some("ok") | None => exit::OK,
            Some(_) => exit::REFUSED,
        };
        let out = if global.json { answer.line } else { triggered };
        return Ok((out, code));
    };
    let (waited, code) = wait_one(&path, global.json, job, secs)?;
    Ok(if global.json {
        (waited, code)
    } else {
        (format!("{triggered}\n{waited}"), code)
    })
}

/// One wait: its line and exit code. A refusal other than `timeout` (an
/// unknown id) is an error, printed as every command prints one.
fn wait_one(path: &Path, json: bool, id: &str, secs: u64) -> Result<Outcome, ClientError> {
    let cmd = Cmd::Wait(WaitArgs {
        id: id.to_string(),
        timeout: Some(secs),
    });
    let answer = socket::request(path, cmd, Some(Duration::from_secs(secs) + ANSWER_MARGIN))?;
    if !answer.ok() {
        let (code, message) = answer.error();
        if code == "timeout" {
            let line = if json { answer.line } else { message };
            return Ok((line, exit::WAIT_TIMEOUT));
        }
        if json {
            println!("{}", answer.line);
        }
        return Err(ClientError::Refused { code, message });
    }
    let job = answer.value.get("job").unwrap_or(&Value::Null);
    let code = match job.get("status").and_then(Value::as_str) {
        Some("succeeded") => exit::OK,
        _ => exit::REFUSED,
    };
    Ok((
        if json {
            answer.line
        } else {
            render_outcome(job)
        },
        code,
    ))
}

/// An accepted answer, or the refusal as an error (with `--json`, its line
/// printed first, as every command does).
fn accepted(answer: Answer, global: &GlobalArgs) -> Result<Answer, ClientError> {
    if answer.ok() {
        return Ok(answer);
    }
    if global.json {
        println!("{}", answer.line);
    }
    let (code, message) = answer.error();
    Err(ClientError::Refused { code, message })
}

fn answer_timeout(global: &GlobalArgs, default: Option<Duration>) -> Option<Duration> {
    match global.timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => Some(default.unwrap_or(crate::client::DEFAULT_TIMEOUT)),
    }
}

/// 1 (a job failed) over 4 (one had not ended) over 0.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        exit::OK => 0,
        exit::WAIT_TIMEOUT => 1,
        _ => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// "job k3j9x0c2m1q8z7a (email) succeeded after 1 attempt in 12ms".
pub fn render_outcome(job: &Value) -> String {
    let (id, job_type) = (text(job, "id"), text(job, "type"));
    let attempts = job.get("attempts").and_then(Value::as_u64).unwrap_or(0);
    let tries = format!("{attempts} attempt{}", if attempts == 1 { "" } else { "s" });
    match job.get("status").and_then(Value::as_str) {
        Some("succeeded") => {
            let took = job
                .get("duration_ms")
                .and_then(Value::as_u64)
                .map_or(String::new(), |ms| format!(" in {}", timefmt::millis(ms)));
            format!("job {id} ({job_type}) succeeded after {tries}{took}")
        }
        Some("dead") => {
            let error = job
                .get("last_error")
                .and_then(Value::as_str)
                .map(|e| e.lines().find(|l| !l.trim().is_empty()).unwrap_or(""))
                .unwrap_or("");
            format!("job {id} ({job_type}) is dead after {tries}: {error}")
        }
        Some("cancelled") => format!("job {id} ({job_type}) was cancelled"),
        _ => format!(
            "job {id} ({job_type}) ended {} after {} attempts",
            text(job, "status"),
            num(job, "attempts")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_read_as_sentences() {
        let job = json!({"id": "a", "type": "email", "status": "succeeded", "attempts": 1, "duration_ms": 12});
        assert_eq!(
            render_outcome(&job),
            "job a (email) succeeded after 1 attempt in 12ms"
        );
        let job = json!({"id": "a", "type": "command", "status": "dead", "attempts": 4,
                         "last_error": "\n/bin/false failed (exit status: 1)\nmore"});
        assert_eq!(
            render_outcome(&job),
            "job a (command) is dead after 4 attempts: /bin/false failed (exit status: 1)"
        );
        let job = json!({"id": "a", "type": "noop", "status": "cancelled", "attempts": 1});
        assert_eq!(render_outcome(&job), "job a (noop) was cancelled");
    }

    #[test]
    fn a_failure_outranks_a_timeout_which_outranks_success() {
        assert_eq!(worse(exit::OK, exit::WAIT_TIMEOUT), exit::WAIT_TIMEOUT);
        assert_eq!(worse(exit::WAIT_TIMEOUT, exit::REFUSED), exit::REFUSED);
        assert_eq!(worse(exit::REFUSED, exit::WAIT_TIMEOUT), exit::REFUSED);
        assert_eq!(worse(exit::OK, exit::OK), exit::OK);
    }
}
