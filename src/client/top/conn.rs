//! The request connection of `cronq top` and what the threads tell the
//! loop: one kept connection on a thread of its own, carrying the
//! once-a-second poll (pipelined: every request written, then the answers
//! read in order) and the operator's actions. The `watch` subscription is
//! in `watch`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use serde_json::Value;

use super::input::{Outgoing, Purpose};
use super::state::{POLL_DEAD, POLL_RUNNING, Poll, Watch};
use super::wire::Event;
use crate::client::request::{Cmd, JobsQuery, Request};

/// Largest answer line read (a page of jobs with big payloads fits).
const MAX_ANSWER_BYTES: u64 = 64 << 20;
/// How long an answer may take: the poll, an action, a `trigger`.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(300);

/// What the threads tell the loop.
#[derive(Debug)]
pub enum Msg {
    Input(ratatui::crossterm::event::Event),
    /// The terminal cannot be read any more.
    InputGone(String),
    Events(Vec<Event>),
    Watch(Watch),
    /// The poll's answers, or why the daemon could not be reached.
    Polled(Result<Poll, String>),
    Answer {
        purpose: Purpose,
        result: Result<Value, String>,
    },
    Signal,
}

/// What the loop asks of the request thread.
#[derive(Debug)]
pub enum Work {
    /// Poll; `jobs`: also read the running and dead jobs.
    Poll {
        jobs: bool,
    },
    Send(Box<Outgoing>),
}

/// 250 ms doubling to 5 s: quick after a blip, cheap during an outage.
#[derive(Debug, Clone, Copy)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff(Duration::from_millis(250))
    }
}

impl Backoff {
    pub fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        now
    }
}

/// One connection for requests, pipelined: every line of a batch is
/// written, then the answers are read in order.
struct Requests {
    path: PathBuf,
    conn: Option<BufReader<UnixStream>>,
    next_id: u64,
}

impl Requests {
    fn connect(&mut self) -> Result<&mut BufReader<UnixStream>, String> {
        if self.conn.is_none() {
            let stream = UnixStream::connect(&self.path).map_err(|e| e.to_string())?;
            self.conn = Some(BufReader::new(stream));
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "no connection".to_string())
    }

    /// Each answer, `Err("code: message")` when the daemon refused it; the
    /// outer error when the daemon could not be reached or misbehaved.
    fn exchange(
        &mut self,
        cmds: Vec<Cmd>,
        timeout: Duration,
    ) -> Result<Vec<Result<Value, String>>, String> {
        let mut lines = String::new();
        let mut expected = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            self.next_id += 1;
            let request = Request::new(self.next_id, cmd);
            let line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
            lines.push_str(&line);
            lines.push('\n');
            expected.push(request.expected_id());
        }
        let result = self.round_trip(lines.as_bytes(), &expected, timeout);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn round_trip(
        &mut self,
        lines: &[u8],
        expected: &[Option<Value>],
        timeout: Duration,
    ) -> Result<Vec<Result<Value, String>>, String> {
        let conn = self.connect()?;
        let stream = conn.get_ref();
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut writer = stream;
        writer.write_all(lines).map_err(|e| e.to_string())?;
        let mut answers = Vec::with_capacity(expected.len());
        for want in expected {
            let value = read_answer(conn)?;
            if let (Some(got), Some(want)) = (value.get("id"), want)
                && got != want
            {
                return Err(format!("the daemon answered request {got}, not {want}"));
            }
            answers.push(refusal(value));
        }
        Ok(answers)
    }
}

fn read_answer(conn: &mut BufReader<UnixStream>) -> Result<Value, String> {
    let mut line = Vec::new();
    let n = conn
        .by_ref()
        .take(MAX_ANSWER_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "the daemon did not answer in time".to_string()
            }
            _ => e.to_string(),
        })?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err("the daemon closed the connection".to_string());
    }
    let value: Value = serde_json::from_slice(&line)
        .map_err(|e| format!("the daemon's answer is not JSON: {e}"))?;
    if value.get("ok").and_then(Value::as_bool).is_none() {
        return Err("the daemon's answer has no \"ok\" field".to_string());
    }
    Ok(value)
}

/// `Ok(answer)`, or `Err("code: message")` for `ok: false`.
fn refusal(value: Value) -> Result<Value, String> {
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(value);
    }
    let (code, message) = error_of(&value);
    Err(format!("{code}: {message}"))
}

pub fn error_of(value: &Value) -> (String, String) {
    let field = |k| {
        value
            .pointer(&format!("/error/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (field("code"), field("message"))
}

/// The request thread: serves `Work` until the loop goes away.
pub fn requests(path: PathBuf, work: Receiver<Work>, tx: SyncSender<Msg>) {
    let mut conn = Requests {
        path,
        conn: None,
        next_id: 0,
    };
    while let Ok(item) = work.recv() {
        let msg = match item {
            Work::Poll { jobs } => Msg::Polled(poll(&mut conn, jobs)),
            Work::Send(outgoing) => {
                let Outgoing { cmd, purpose } = *outgoing;
                let timeout = if matches!(cmd, Cmd::Trigger { .. }) {
                    TRIGGER_TIMEOUT
                } else {
                    ACTION_TIMEOUT
                };
                // Sent once: an action is not repeated on a new connection,
                // as the daemon may have done it before the line dropped.
                let result = conn
                    .exchange(vec![cmd], timeout)
                    .and_then(|mut a| a.pop().unwrap_or_else(|| Err("no answer".into())));
                Msg::Answer { purpose, result }
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// The poll's requests, by name.
fn poll_plan(jobs: bool) -> Vec<(&'static str, Cmd)> {
    let mut plan = vec![
        ("status", Cmd::Status),
        ("stats", Cmd::Stats),
        ("crons", Cmd::Crons),
    ];
    if jobs {
        for (name, status, limit) in [
            ("jobs running", "running", POLL_RUNNING),
            ("jobs dead", "dead", POLL_DEAD),
            ("jobs scheduled", "scheduled", POLL_DEAD),
        ] {
            let query = JobsQuery {
                status: Some(status.to_string()),
                limit: Some(limit),
                ..JobsQuery::default()
            };
            plan.push((name, Cmd::Jobs(query)));
        }
    }
    plan
}

fn poll(conn: &mut Requests, jobs: bool) -> Result<Poll, String> {
    let (names, cmds): (Vec<&str>, Vec<Cmd>) = poll_plan(jobs).into_iter().unzip();
    // A kept connection the daemon closed meanwhile (idle time-out, a
    // restart) fails the first try; a poll only reads, so try once more.
    let answers = match conn.exchange(cmds.clone(), POLL_TIMEOUT) {
        Ok(a) => a,
        Err(_) => conn.exchange(cmds, POLL_TIMEOUT)?,
    };
    let mut poll = Poll::default();
    for (name, answer) in names.into_iter().zip(answers) {
        let value = match answer {
            Ok(v) => Some(v),
            Err(e) => {
                poll.errors.push(format!("{name}: {e}"));
                None
            }
        };
        let slot = match name {
            "status" => &mut poll.status,
            "stats" => &mut poll.stats,
            "crons" => &mut poll.crons,
            "jobs running" => &mut poll.running,
            "jobs dead" => &mut poll.dead,
            _ => &mut poll.scheduled,
        };
        *slot = value;
    }
    Ok(poll)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut b = Backoff::default();
        let steps: Vec<u64> = (0..7).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(steps, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    /// The poll pipelines its requests on one connection and reads each
    /// refusal into `errors` without failing the rest.
    #[test]
    fn a_poll_is_pipelined_and_keeps_refusals_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(&stream);
            for _ in 0..3 {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let req: Value = serde_json::from_str(&line).unwrap();
                let id = &req["id"];
                let answer = match req["cmd"].as_str().unwrap() {
                    "stats" => {
                        serde_json::json!({"ok": false, "id": id, "error": {"code": "unavailable", "message": "busy"}})
                    }
                    _ => serde_json::json!({"ok": true, "id": id}),
                };
                (&stream)
                    .write_all(format!("{answer}\n").as_bytes())
                    .unwrap();
            }
        });
        let mut conn = Requests {
            path: path.clone(),
            conn: None,
            next_id: 0,
        };
        let poll = poll(&mut conn, false).unwrap();
        server.join().unwrap();
        assert!(poll.status.is_some());
        assert!(poll.stats.is_none());
        assert!(poll.crons.is_some());
        assert_eq!(poll.errors, ["stats: unavailable: busy"]);
    }
}
