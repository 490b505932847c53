//! `watch` against the real daemon over its socket: every event of a
//! 10,000-job run in order per job; a watcher that never reads gets
//! `lagged` while the queue goes on; filters; the idle timeout does not
//! close a watch but the write-stall rule does; watches count against the
//! connection limits; `cronq watch` prints readable lines.

#[path = "support/daemon.rs"]
mod daemon;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon::{BIN, Client, Daemon};
use serde_json::{Value, json};

const JOBS: usize = 10_000;
const BATCH: usize = 1_000;

/// A watch connection, its `watching` answer read.
fn watch(d: &Daemon, args: Value) -> Client {
    let mut c = d.client();
    let mut request = json!({"cmd": "watch", "id": 1});
    request
        .as_object_mut()
        .unwrap()
        .extend(args.as_object().unwrap().clone());
    let answer = c.request(request);
    assert_eq!(answer, json!({"ok": true, "id": 1, "watching": true}));
    c
}

fn enqueue_noops(d: &Daemon, n: usize) {
    let mut c = d.client();
    for start in (0..n).step_by(BATCH) {
        let jobs: Vec<Value> = (start..(start + BATCH).min(n))
            .map(|i| json!({"name": format!("n{i}"), "payload": {"type": "noop"}}))
            .collect();
        let a = c.request(json!({"cmd": "enqueue", "jobs": jobs}));
        assert!(a["jobs"].is_array(), "{a}");
    }
}

fn queue_empty(d: &Daemon) -> bool {
    let q = &d.ok(json!({"cmd": "status"}))["queue"];
    q["pending"] == 0 && q["scheduled"] == 0 && q["running"] == 0
}

/// The daemon never waits for a watcher, so a watcher on a loaded test
/// machine keeps up only if the run is fed in steps: each batch of 1,000
/// jobs (3,000 events, fewer than the bus holds) is enqueued once the
/// previous one's last event was read. The bench, not this test, measures
/// the speed.
#[test]
fn a_watcher_sees_every_event_of_a_10000_job_run_in_order_per_job() {
    let d = Daemon::start(&[]);
    let mut w = watch(&d, json!({}));
    let mut c = d.client();
    // Per job, the events seen.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut succeeded = 0;
    for start in (0..JOBS).step_by(BATCH) {
        let jobs: Vec<Value> = (start..start + BATCH)
            .map(|i| json!({"name": format!("n{i}"), "payload": {"type": "noop"}}))
            .collect();
        assert!(c.request(json!({"cmd": "enqueue", "jobs": jobs}))["jobs"].is_array());
        while succeeded < start + BATCH {
            let event = w.read_line().expect("the stream stays open");
            let name = event["event"].as_str().unwrap().to_string();
            assert_ne!(name, "lagged", "the watcher fell behind: {event}");
            let id = event["job"]["id"]
                .as_str()
                .expect("a job event")
                .to_string();
            assert!(event["at"].is_string(), "{event}");
            assert_eq!(event["job"]["type"], "noop");
            if name == "succeeded" {
                succeeded += 1;
                assert_eq!(event["job"]["attempt"], 1, "{event}");
            }
            seen.entry(id).or_default().push(name);
        }
    }
    assert_eq!(seen.len(), JOBS);
    for (id, events) in &seen {
        assert_eq!(events, &["enqueued", "started", "succeeded"], "job {id}");
    }
}

#[test]
fn a_watcher_that_never_reads_gets_lagged_and_the_queue_keeps_going() {
    // A long stall limit: this watcher is slow, not gone.
    let d = Daemon::start(&[("CRONQ_IDLE_TIMEOUT_SECONDS", "600")]);
    let mut sleeper = watch(&d, json!({}));
    enqueue_noops(&d, 3 * JOBS);
    // The queue finishes all of it while the watcher reads nothing.
    d.until(Duration::from_secs(300), "the queue to empty", |d| {
        queue_empty(d).then_some(())
    });
    // The sleeper wakes: what was in its socket, then the count it missed.
    let mut before = 0;
    let dropped = loop {
        let e = sleeper.read_line().expect("open");
        if e["event"] == "lagged" {
            break e["dropped"].as_u64().expect("a count");
        }
        before += 1;
        assert!(before < 3 * 3 * JOBS, "no lagged line");
    };
    assert!(dropped > 0);
    // And it is live again: the next job's events reach it.
    let id = d.enqueue("noop", json!({}));
    let mut after = 0;
    loop {
        let e = sleeper.read_line().expect("open");
        if e["job"]["id"] == id.as_str() {
            break;
        }
        after += 1;
        assert!(after < 3 * 3 * JOBS, "the sleeper never caught up");
    }
}

#[test]
fn filters_pass_only_what_they_name() {
    let d = Daemon::start(&[("JOB_COMMAND_ALLOW", "/bin/sh")]);
    let mut dead_commands = watch(&d, json!({"types": ["command"], "events": ["dead"]}));
    let failing = d.ok(json!({"cmd": "enqueue", "name": "f", "payload": {"type": "command",
        "data": {"argv": ["/bin/sh", "-c", "echo boom >&2; exit 3"]}, "options": {"retry_count": 0}}}));
    let failing = failing["job"]["id"].as_str().unwrap().to_string();
    let e = dead_commands.read_line().unwrap();
    assert_eq!(e["event"], "dead");
    assert_eq!(e["job"]["id"], failing.as_str());
    assert!(
        e["error"].as_str().unwrap().contains("exit status: 3"),
        "{e}"
    );
    assert!(e["duration_ms"].is_u64(), "{e}");
    let mut fresh = watch(&d, json!({"types": ["noop"]}));
    let second = d.enqueue("noop", json!({}));
    let mut names = Vec::new();
    while names.last().map(String::as_str) != Some("succeeded") {
        let e = fresh.read_line().unwrap();
        assert_eq!(e["job"]["type"], "noop", "only noop events: {e}");
        if e["job"]["id"] == second.as_str() {
            names.push(e["event"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(names, ["enqueued", "started", "succeeded"]);
    // One job's watch: nothing of the others, then its cancel.
    let later = d
        .ok(json!({"cmd": "enqueue", "name": "later", "payload": {"type": "noop"}, "delay": 3600}));
    let later = later["job"]["id"].as_str().unwrap().to_string();
    let mut one_job = watch(&d, json!({"job": later}));
    d.enqueue("noop", json!({}));
    assert_eq!(
        d.ok(json!({"cmd": "cancel", "id": later}))["cancelled"],
        later.as_str()
    );
    let e = one_job.read_line().unwrap();
    assert_eq!(
        (&e["event"], &e["job"]["id"]),
        (&json!("cancelled"), &json!(later)),
        "{e}"
    );
    // A bad filter is refused, naming the field, and the connection stays
    // usable.
    let mut c = d.client();
    let a = c.request(json!({"cmd": "watch", "events": ["started", "exploded"]}));
    assert_eq!(a["error"]["code"], "bad_request", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]:"),
        "{a}"
    );
    assert_eq!(c.request(json!({"cmd": "ping"}))["pong"], true);
}

#[test]
fn a_quiet_watch_outlives_the_idle_timeout_but_a_stalled_one_is_closed() {
    let d = Daemon::start(&[("CRONQ_IDLE_TIMEOUT_SECONDS", "1")]);
    let mut quiet = watch(&d, json!({"events": ["succeeded"]}));
    let mut stalled = watch(&d, json!({}));
    std::thread::sleep(Duration::from_secs(3));
    let id = d.enqueue("noop", json!({}));
    let e = quiet.read_line().expect("still open after 3 idle seconds");
    assert_eq!(e["job"]["id"], id.as_str());
    // The stalled one's socket fills and its writes stall past the limit.
    enqueue_noops(&d, JOBS);
    d.until(Duration::from_secs(120), "the queue to empty", |d| {
        queue_empty(d).then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rest = Vec::new();
    stalled
        .reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // It reads what was sent before the daemon gave up, then the end.
    stalled
        .reader
        .read_to_end(&mut rest)
        .expect("closed, not timed out");
    assert!(Instant::now() < deadline);
    let lines = rest
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(
        lines < 3 * JOBS,
        "it was closed before the run's end: {lines} lines"
    );
}

#[test]
fn watches_count_against_the_connection_limit() {
    let d = Daemon::start(&[
        ("CRONQ_MAX_CONNECTIONS", "2"),
        ("CRONQ_MAX_CONNECTIONS_PER_UID", "2"),
    ]);
    // Root has a reserve of 4 beyond the pool.
    let held: Vec<Client> = (0..6).map(|_| watch(&d, json!({}))).collect();
    // Refused before any request: the answer comes unasked.
    let mut extra = d.client();
    let a = extra.read_line().expect("a refusal");
    assert_eq!(a["error"]["code"], "unavailable", "{a}");
    drop(held);
    d.until(Duration::from_secs(10), "a slot to free up", |d| {
        d.try_client()
            .ok()
            .map(|mut c| c.request(json!({"cmd": "ping"})))
            .filter(|a| a["ok"] == true)
    });
}

#[test]
fn cronq_watch_prints_a_line_per_event() {
    let d = Daemon::start(&[]);
    let mut child = Command::new(BIN)
        .args([
            "--socket",
            d.socket.to_str().unwrap(),
            "watch",
            "--type",
            "noop",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Until the watch is registered, jobs' events pass it by: enqueue
    // until a job is seen from its first event on (one enqueued just as the
    // watch registers may show only its later events).
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = 'found: loop {
        assert!(Instant::now() < deadline, "no line from cronq watch");
        let id = d.enqueue("noop", json!({}));
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if line.contains(&format!(" enqueued     {id} ")) {
                assert!(
                    line.contains(&format!(" enqueued     {id} noop noop #0")),
                    "{line}"
                );
                break 'found id;
            }
        }
    };
    let lines: Vec<String> = rx.iter().filter(|l| l.contains(&id)).take(2).collect();
    assert!(
        lines[0].contains(&format!("started      {id} noop noop #1")),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(&format!("succeeded    {id} noop noop #1: in ")),
        "{lines:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_stalled_watcher_does_not_hold_up_a_shutdown() {
    // Its writes would stall for 600 s before the stall rule closed it.
    let mut d = Daemon::start(&[("CRONQ_IDLE_TIMEOUT_SECONDS", "600")]);
    let _sleeper = watch(&d, json!({}));
    enqueue_noops(&d, JOBS);
    d.until(Duration::from_secs(120), "the queue to empty", |d| {
        queue_empty(d).then_some(())
    });
    let started = Instant::now();
    assert!(d.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the stop took {:?}",
        started.elapsed()
    );
}

#[test]
fn pauses_resumes_and_a_bulk_cancel_are_events() {
    let d = Daemon::start(&[]);
    let mut w = watch(&d, json!({"events": ["paused", "resumed", "cancelled"]}));
    let mut emails = watch(
        &d,
        json!({"types": ["email"], "events": ["paused", "resumed"]}),
    );
    d.ok(json!({"cmd": "pause", "type": "noop"}));
    d.ok(json!({"cmd": "pause"}));
    let e = w.read_line().unwrap();
    assert_eq!(
        (&e["event"], &e["type"], &e["paused"]),
        (&json!("paused"), &json!("noop"), &json!(["noop"])),
        "{e}"
    );
    assert!(e["at"].is_string(), "{e}");
    let e = w.read_line().unwrap();
    assert_eq!(e["event"], "paused", "{e}");
    assert!(e.get("type").is_none(), "every type: no type: {e}");
    assert_eq!(e["paused"], json!(["*", "noop"]), "{e}");
    // A watcher of email sees the pause of every type, not that of noop.
    let e = emails.read_line().unwrap();
    assert_eq!(
        (&e["event"], &e["paused"]),
        (&json!("paused"), &json!(["*", "noop"]))
    );

    // Held by the pause, three jobs wait; a bulk cancel ends them, each
    // with its event, and a wait on one of them is answered.
    let ids: Vec<String> = (0..3).map(|_| d.enqueue("noop", json!({}))).collect();
    let mut waiter = d.client();
    waiter
        .send_raw(format!("{}\n", json!({"cmd": "wait", "id": ids[1], "timeout": 60})).as_bytes());
    let a = d.ok(json!({"cmd": "cancel", "filter": {"type": "noop", "status": "pending"}}));
    assert_eq!(a["count"], 3, "{a}");
    let mut cancelled = Vec::new();
    while cancelled.len() < 3 {
        let e = w.read_line().unwrap();
        assert_eq!(e["event"], "cancelled", "{e}");
        assert_eq!(e["job"]["type"], "noop", "{e}");
        assert_eq!(e["job"]["attempt"], 0, "{e}");
        cancelled.push(e["job"]["id"].as_str().unwrap().to_string());
    }
    cancelled.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(cancelled, expected);
    let answer = waiter.read_line().expect("the wait's answer");
    assert_eq!(answer["job"]["status"], "cancelled", "{answer}");
    assert_eq!(answer["job"]["id"], ids[1].as_str(), "{answer}");

    d.ok(json!({"cmd": "resume"}));
    let e = w.read_line().unwrap();
    assert_eq!(
        (&e["event"], &e["paused"]),
        (&json!("resumed"), &json!([])),
        "{e}"
    );
    assert!(e.get("type").is_none(), "{e}");
    let e = emails.read_line().unwrap();
    assert_eq!(e["event"], "resumed", "{e}");
}
