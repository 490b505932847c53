//! Hostile and heavy traffic on a live daemon: 10,000 malformed lines,
//! each answered per PROTOCOL.md with the daemon healthy and the stored jobs
//! untouched afterwards; and 200 clients enqueueing at once, each answered,
//! every job stored exactly once.

#[path = "support/daemon.rs"]
mod daemon;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use daemon::Daemon;
use serde_json::{Value, json};

const MALFORMED: usize = 10_000;

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One malformed request line (no `\n` inside) and the error codes a
/// correct daemon may answer it with.
fn malformed(rng: &mut Rng, i: usize) -> (Vec<u8>, &'static [&'static str]) {
    const JSON: &[&str] = &["bad_json"];
    const REQUEST: &[&str] = &["bad_request"];
    match i % 12 {
        // Random bytes (never a newline).
        0 => {
            let n = 1 + rng.below(200);
            let mut line: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            for b in &mut line {
                if *b == b'\n' {
                    *b = b'?';
                }
            }
            // '#' starts no JSON value, and a line of only whitespace would
            // be skipped unanswered, so every such line is bad_json.
            line.insert(0, b'#');
            (line, JSON)
        }
        // Invalid UTF-8 inside a string.
        1 => (b"{\"cmd\":\"ping\",\"id\":\"\xc3\x28\xff\"}".to_vec(), JSON),
        // 10,000-deep nesting, as an array and inside an object.
        2 => ("[".repeat(10_000).into_bytes(), JSON),
        3 => (
            format!("{{\"cmd\":\"jobs\",\"type\":{}", "[".repeat(10_000)).into_bytes(),
            JSON,
        ),
        // Huge numbers.
        4 => (b"{\"cmd\":\"jobs\",\"limit\":1e999999}".to_vec(), JSON),
        5 => (
            format!("{{\"cmd\":\"enqueue\",\"name\":\"x\",\"payload\":{{\"type\":\"noop\"}},\"priority\":{}}}", "9".repeat(400)).into_bytes(),
            JSON,
        ),
        // Wrong types.
        6 => (
            json!({"cmd": "enqueue", "name": 5, "payload": {"type": "noop"}}).to_string().into_bytes(),
            REQUEST,
        ),
        7 => (json!({"cmd": ["ping"]}).to_string().into_bytes(), REQUEST),
        8 => (json!({"cmd": "cancel", "id": {"x": 1}}).to_string().into_bytes(), REQUEST),
        // Unknown fields and commands.
        9 => (
            json!({"cmd": "jobs", "colour": i}).to_string().into_bytes(),
            REQUEST,
        ),
        10 => (
            json!({"cmd": format!("nosuch{i}")}).to_string().into_bytes(),
            &["unknown_command"],
        ),
        // NUL bytes, raw and escaped.
        _ => {
            if rng.below(2) == 0 {
                (b"{\"cmd\":\"ping\0\"}".to_vec(), JSON)
            } else {
                (b"{\"cmd\":\"ping\\u0000\"}".to_vec(), &["unknown_command"])
            }
        }
    }
}

fn listing(d: &Daemon) -> Value {
    d.ok(json!({"cmd": "jobs", "limit": 1000}))["jobs"].clone()
}

#[test]
fn ten_thousand_malformed_lines_are_each_answered_and_harm_nothing() {
    let mut d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("CRONQ_MAX_REQUEST_BYTES", "65536"),
    ]);
    for i in 0..5 {
        d.ok(json!({"cmd": "enqueue", "name": format!("keep{i}"), "payload": {"type": "noop", "data": {"i": i}}, "unique_key": format!("k{i}")}));
    }
    let before = listing(&d);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lines = Vec::with_capacity(MALFORMED);
    for i in 0..MALFORMED {
        lines.push(malformed(&mut rng, i));
    }
    // Pipelined on a few connections, written by one thread while another
    // reads, so neither side's buffer fills up and stalls the other.
    for chunk in lines.chunks(2_500) {
        let stream = UnixStream::connect(&d.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let payload: Vec<u8> = chunk
            .iter()
            .flat_map(|(l, _)| l.iter().copied().chain([b'\n']))
            .collect();
        let sender = std::thread::spawn(move || {
            writer.write_all(&payload).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut reader = BufReader::new(stream);
        for (n, (line, codes)) in chunk.iter().enumerate() {
            let mut answer = String::new();
            reader.read_line(&mut answer).unwrap();
            let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
                panic!(
                    "answer {n} to {:?} is not JSON ({e}): {answer:?}",
                    String::from_utf8_lossy(line)
                )
            });
            assert_eq!(answer["ok"], false, "{answer}");
            let code = answer["error"]["code"].as_str().unwrap();
            assert!(
                codes.contains(&code),
                "{:?} got {code}, expected one of {codes:?}: {answer}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            );
            assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
        }
        let mut rest = String::new();
        reader.read_line(&mut rest).unwrap();
        assert_eq!(rest, "", "one answer per line, then the server closes");
        sender.join().unwrap();
    }

    // Over-long lines, each on its own connection: too_large, then closed.
    for size in [65_537, 200_000, 1 << 20] {
        let mut c = d.client();
        let mut line = b"{\"cmd\":\"ping\",\"id\":\"".to_vec();
        line.resize(size, b'x');
        line.push(b'\n');
        // The server may close before reading it all; a broken pipe is fine.
        let _ = c.writer.write_all(&line);
        let answer = c.read_line().expect("a too_large answer");
        assert_eq!(answer["error"]["code"], "too_large", "{answer}");
    }

    d.ok(json!({"cmd": "ping"}));
    let status = d.ok(json!({"cmd": "status"}));
    assert_eq!(status["ready"], true);
    assert_eq!(status["queue"]["pending"], 5);
    assert_eq!(listing(&d), before, "stored jobs are untouched");
    let exited = d.child.as_mut().unwrap().try_wait().unwrap();
    assert!(exited.is_none(), "the daemon exited: {exited:?}");
}

#[test]
fn two_hundred_clients_enqueueing_at_once_each_get_their_job_stored_once() {
    const CLIENTS: usize = 200;
    let d = Daemon::start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        // More than the default 128, so every client gets a connection;
        // they are all this test's uid, whose share is otherwise half.
        ("CRONQ_MAX_CONNECTIONS", "256"),
        ("CRONQ_MAX_CONNECTIONS_PER_UID", "256"),
    ]);
    let socket = d.socket.clone();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (socket, barrier) = (socket.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = daemon::Client::connect(&socket).expect("connect");
                barrier.wait();
                c.request(json!({"cmd": "enqueue", "id": i, "name": format!("client{i}"), "payload": {"type": "noop", "data": {"client": i}}}))
            })
        })
        .collect();
    let answers: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut ids = HashSet::new();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["ok"], true, "client {i}: {a}");
        assert_eq!(a["id"], i, "the answer is the client's own");
        assert_eq!(a["job"]["name"], format!("client{i}"));
        assert!(ids.insert(a["job"]["id"].as_str().unwrap().to_string()));
    }
    let stored = listing(&d);
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), CLIENTS);
    let stored_ids: HashSet<String> = stored
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored_ids, ids, "every answered job is stored, once");
    let mut names: Vec<&str> = stored.iter().map(|j| j["name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CLIENTS);
    assert_eq!(d.ok(json!({"cmd": "status"}))["queue"]["pending"], CLIENTS);
}
