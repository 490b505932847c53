//! The `watch` subscription, on a thread of its own that sleeps in `read`
//! until the daemon has news.
//!
//! Event lines are decoded here and sent to the loop in batches, one per
//! burst (a batch goes when the socket has nothing more buffered), so
//! 20,000 events a second are a few hundred channel messages. If the loop
//! ever fell behind, the bounded channel fills, this thread stops reading,
//! and the daemon, whose buffer per watcher is bounded, reports `lagged`
//! instead of slowing down. A daemon that answers `unknown_command` (one
//! from before the second wave) is asked again every [`UNSUPPORTED_RETRY`];
//! the loop polls meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::conn::{Backoff, Msg, POLL_TIMEOUT, error_of};
use super::state::Watch;
use super::wire::Event;
use crate::client::request::{Cmd, Request, WatchArgs};

/// Largest event line read; a longer one ends the subscription.
const MAX_EVENT_BYTES: u64 = 1 << 20;
/// Events per batch at most.
const BATCH: usize = 512;
/// How often to ask a daemon that does not know `watch` again.
pub const UNSUPPORTED_RETRY: Duration = Duration::from_secs(30);

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
}
