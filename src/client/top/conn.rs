//! The two connections of `cronq top`, each on a thread of its own that
//! blocks on its socket: the `watch` subscription, and the request
//! connection that carries the poll and the operator's actions.
//!
//! Both report to the loop through one bounded channel. The watch thread
//! decodes event lines and sends them in batches (one per burst: a batch
//! goes when the socket has nothing more buffered), so 20,000 events a
//! second are a few hundred channel messages; if the loop ever fell behind,
//! the channel fills, the thread stops reading, and the daemon, whose
//! buffer per watcher is bounded, reports `lagged` instead of slowing down.
//!
//! Reconnecting is each thread's own business, with a backoff; a daemon
//! that answers `watch` with `unknown_command` (one from before the
//! second wave) is asked again only every [`UNSUPPORTED_RETRY`], and the
//! loop polls meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::input::{Outgoing, Purpose};
use super::state::{POLL_DEAD, POLL_RUNNING, Poll, Watch};
use super::wire::Event;
use crate::client::request::{Cmd, JobsQuery, Request, WatchArgs};

/// Largest answer line read (a page of jobs with big payloads fits).
const MAX_ANSWER_BYTES: u64 = 64 << 20;
/// Largest event line read; a longer one ends the subscription.
const MAX_EVENT_BYTES: u64 = 1 << 20;
/// Events per batch at most.
const BATCH: usize = 512;
/// How long an answer may take: the poll, an action, a `trigger`.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(300);
/// How often to ask a daemon that does not know `watch` again.
pub const UNSUPPORTED_RETRY: Duration = Duration::from_secs(30);

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

fn error_of(value: &Value) -> (String, String) {
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

/// How one subscription ended.
enum Ended {
    /// The loop is gone.
    Gone,
    Unsupported,
    /// After `lived` connected, with this error.
    Failed(String, Duration),
}

/// The watch thread: subscribes, forwards events, resubscribes.
pub fn watch(path: PathBuf, tx: SyncSender<Msg>) {
    let mut backoff = Backoff::default();
    loop {
        let pause = match watch_once(&path, &tx) {
            Ended::Gone => return,
            Ended::Unsupported => {
                if tx.send(Msg::Watch(Watch::Unsupported)).is_err() {
                    return;
                }
                UNSUPPORTED_RETRY
            }
            Ended::Failed(error, lived) => {
                if tx.send(Msg::Watch(Watch::Down(error))).is_err() {
                    return;
                }
                if lived > Duration::from_secs(5) {
                    backoff = Backoff::default();
                }
                backoff.next()
            }
        };
        std::thread::sleep(pause);
    }
}

fn watch_once(path: &Path, tx: &SyncSender<Msg>) -> Ended {
    let started = Instant::now();
    let failed = |e: String| Ended::Failed(e, started.elapsed());
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    let request = Request::new(1, Cmd::Watch(WatchArgs::default()));
    let Ok(mut line) = serde_json::to_string(&request) else {
        return failed("cannot encode the watch request".into());
    };
    line.push('\n');
    let mut reader = BufReader::new(&stream);
    let first = stream
        .set_read_timeout(Some(POLL_TIMEOUT))
        .and_then(|()| (&stream).write_all(line.as_bytes()))
        .map_err(|e| e.to_string())
        .and_then(|()| read_line(&mut reader));
    let first = match first {
        Ok(Some(l)) => l,
        Ok(None) => return failed("the daemon closed the connection".into()),
        Err(e) => return failed(e),
    };
    let answer: Value = serde_json::from_slice(&first).unwrap_or(Value::Null);
    if answer.get("ok").and_then(Value::as_bool) != Some(true) {
        let (code, message) = error_of(&answer);
        if code == "unknown_command" {
            return Ended::Unsupported;
        }
        return failed(format!("watch refused: {code}: {message}"));
    }
    if tx.send(Msg::Watch(Watch::Live)).is_err() {
        return Ended::Gone;
    }
    // From here the thread sleeps in read until the daemon has news.
    if let Err(e) = stream.set_read_timeout(None) {
        return failed(e.to_string());
    }
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match read_line(&mut reader) {
            Ok(Some(l)) => {
                if let Some(e) = Event::parse(&l) {
                    batch.push(e);
                }
            }
            Ok(None) => return failed("the daemon closed the event stream".into()),
            Err(e) => return failed(e),
        }
        if (batch.len() >= BATCH || reader.buffer().is_empty())
            && !batch.is_empty()
            && tx.send(Msg::Events(std::mem::take(&mut batch))).is_err()
        {
            return Ended::Gone;
        }
    }
}

/// One line, without its end; `None` at the end of the stream.
fn read_line(reader: &mut BufReader<&UnixStream>) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_EVENT_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(format!(
            "an event line longer than {} bytes",
            MAX_EVENT_BYTES
        ));
    }
    line.pop();
    Ok(Some(line))
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

    /// A daemon from before the second wave: `watch` is unknown, so the
    /// thread reports `Unsupported`, and the poll still works.
    #[test]
    fn a_daemon_without_watch_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            assert!(line.contains(r#""cmd":"watch""#), "{line}");
            (&stream)
                .write_all(br#"{"ok":false,"id":1,"error":{"code":"unknown_command","message":"no command watch"}}"#)
                .unwrap();
            (&stream).write_all(b"\n").unwrap();
        });
        let (tx, _rx) = std::sync::mpsc::sync_channel(4);
        assert!(matches!(watch_once(&path, &tx), Ended::Unsupported));
        server.join().unwrap();
    }

    /// Events in a burst arrive as one batch, decoded.
    #[test]
    fn events_are_forwarded_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let mut out = String::from("{\"ok\":true,\"id\":1,\"watching\":true}\n");
            for i in 0..100 {
                out.push_str(&format!(
                    "{{\"event\":\"started\",\"at\":\"2026-01-01T00:00:00.000Z\",\"job\":{{\"id\":\"j{i}\",\"name\":\"n\",\"type\":\"noop\",\"attempt\":1}}}}\n"
                ));
            }
            (&stream).write_all(out.as_bytes()).unwrap();
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let ended = watch_once(&path, &tx);
        server.join().unwrap();
        assert!(matches!(ended, Ended::Failed(..)), "the stream closed");
        assert!(matches!(rx.recv().unwrap(), Msg::Watch(Watch::Live)));
        let mut events = 0;
        let mut batches = 0;
        while let Ok(Msg::Events(b)) = rx.try_recv() {
            events += b.len();
            batches += 1;
        }
        assert_eq!(events, 100);
        assert!(batches < 100, "{batches} batches for 100 events");
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
