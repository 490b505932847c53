//! What `watch` subscribers cost the daemon: throughput with watchers
//! against none, and the wake-ups of idle watchers.
//!
//! `cargo bench --bench watchers` reports, in one run:
//!
//! 1. **Throughput**: the release binary on a temp dir, 50,000 `noop`
//!    jobs (WATCH_JOBS) enqueued in batches of 1,000 on one connection,
//!    then `status` polled every 10 ms until the queue is empty, as the
//!    throughput bench does. Once with no watcher, once with 10 `watch`
//!    connections of which 9 read every line (each on its own thread,
//!    counting lines and `lagged` reports) and 1 never reads a byte. The
//!    two set-ups alternate, three times each, each on a fresh daemon; the
//!    ratio is of the medians. Both daemons have the stall limit raised
//!    (CRONQ_IDLE_TIMEOUT_SECONDS=600) so the sleeping watcher is not
//!    closed during the run.
//! 2. **Idle**: a fresh daemon with no watcher and one with 100 watchers,
//!    each left alone for WATCH_IDLE_SECONDS (default 60) after 5 s to
//!    settle: the voluntary context switches of all their threads per
//!    minute (as `benches/idle.rs` counts them), and CPU time.
//!
//! The machine's other cores matter here: the 9 readers are threads of
//! this process, on the same cores as the daemon, so the "with watchers"
//! figure includes their CPU, which a watcher on another machine or core
//! would not take from the queue.

mod support;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::daemon::{Client, Daemon};
use support::{cpu_ticks, verdict, wakeups, woken_since};

const DEFAULT_JOBS: usize = 50_000;
const BATCH: usize = 1_000;
const DEFAULT_ROUNDS: u64 = 5;
const READERS: usize = 9;
const IDLE_WATCHERS: usize = 100;

fn main() {
    let jobs = env_or("WATCH_JOBS", DEFAULT_JOBS as u64) as usize;
    let rounds = env_or("WATCH_ROUNDS", DEFAULT_ROUNDS) as usize;
    let idle_s = env_or("WATCH_IDLE_SECONDS", 60);
    println!(
        "watchers: {jobs} noop jobs per run, {rounds} rounds, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut table = Vec::new();
    if rounds > 0 {
        let (mut none, mut ten, lagged) = throughput(jobs, rounds);
        let (m_none, m_ten) = (median(&mut none), median(&mut ten));
        table.push(format!(
            "| end to end, no watcher (median of {rounds}) | {m_none:.0} jobs/s | |"
        ));
        table.push(format!(
            "| end to end, 10 watchers, 1 never reading (median of {rounds}) | {m_ten:.0} jobs/s | |"
        ));
        table.push(format!(
            "| ratio, 10 watchers / none | {:.2} | the sleeper never stops the queue: every run ended |",
            m_ten / m_none
        ));
        table.push(format!(
            "| `lagged` reports to the 9 readers, all rounds | {lagged} | |"
        ));
    }
    let (quiet, quiet_cpu) = idle(0, idle_s);
    let (hundred, hundred_cpu) = idle(IDLE_WATCHERS, idle_s);
    table.push(format!(
        "| idle, no watcher | {quiet:.1} wake-ups/min, {quiet_cpu:.1} ms CPU/min | |"
    ));
    table.push(format!(
        "| idle, {IDLE_WATCHERS} watchers | {hundred:.1} wake-ups/min, {hundred_cpu:.1} ms CPU/min | no more than none: {} |",
        verdict(hundred <= quiet + 1.0)
    ));
    println!("\n| measure | figure | target |\n|---|---|---|");
    for row in table {
        println!("{row}");
    }
}

/// `rounds` runs of each set-up, alternating: (rates without watchers,
/// rates with 10, `lagged` reports to the readers).
fn throughput(jobs: usize, rounds: usize) -> (Vec<f64>, Vec<f64>, u64) {
    let env = [("CRONQ_IDLE_TIMEOUT_SECONDS", "600")];
    let (mut none, mut ten, mut lagged_total) = (Vec::new(), Vec::new(), 0);
    for round in 1..=rounds {
        let d = Daemon::start(&env);
        let rate = run(&d, jobs);
        println!("round {round}, no watcher: {rate:.0} jobs/s");
        none.push(rate);
        drop(d);

        let d = Daemon::start(&env);
        let sleeper = subscribe(&d);
        let readers: Vec<Reader> = (0..READERS).map(|_| Reader::start(&d)).collect();
        let rate = run(&d, jobs);
        // Each reader has the whole run once the queue is empty, give or
        // take the last lines in flight.
        std::thread::sleep(Duration::from_millis(500));
        let lines: Vec<u64> = readers
            .iter()
            .map(|r| r.lines.load(Ordering::Relaxed))
            .collect();
        let lagged: u64 = readers
            .iter()
            .map(|r| r.lagged.load(Ordering::Relaxed))
            .sum();
        println!(
            "round {round}, 10 watchers (1 never reads): {rate:.0} jobs/s; \
             lines per reader {}..{}, lagged reports {lagged}",
            lines.iter().min().unwrap_or(&0),
            lines.iter().max().unwrap_or(&0)
        );
        ten.push(rate);
        lagged_total += lagged;
        drop(sleeper);
        drop(readers);
    }
    (none, ten, lagged_total)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: a whole number"))
        })
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A `watch` connection, its answer read; nothing more is read from it.
fn subscribe(d: &Daemon) -> Client {
    let mut c = d.client();
    let a = c.request(json!({"cmd": "watch"}));
    assert_eq!(a["watching"], true, "{a}");
    c
}

/// A watcher on a thread of its own reading everything, counting lines
/// and the `lagged` among them; stops when the connection closes.
struct Reader {
    lines: Arc<AtomicU64>,
    lagged: Arc<AtomicU64>,
    stream: UnixStream,
}

impl Reader {
    fn start(d: &Daemon) -> Reader {
        let c = subscribe(d);
        let (lines, lagged) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stream = c.writer.try_clone().unwrap();
        let mut reader = c.reader;
        let (l, g) = (lines.clone(), lagged.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let needle = b"\"lagged\"";
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let chunk = &buf[..n];
                l.fetch_add(
                    chunk.iter().filter(|b| **b == b'\n').count() as u64,
                    Ordering::Relaxed,
                );
                let hits = chunk.windows(needle.len()).filter(|w| w == needle).count();
                g.fetch_add(hits as u64, Ordering::Relaxed);
            }
        });
        Reader {
            lines,
            lagged,
            stream,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Enqueues `jobs` and waits until the queue is empty; jobs per second.
fn run(d: &Daemon, jobs: usize) -> f64 {
    std::thread::sleep(Duration::from_millis(300));
    let mut client = d.client();
    let started = Instant::now();
    let mut sent = 0;
    while sent < jobs {
        let n = BATCH.min(jobs - sent);
        let batch: Vec<Value> = (sent..sent + n)
            .map(
                |i| json!({"name": format!("b{i}"), "payload": {"type": "noop", "data": {"i": i}}}),
            )
            .collect();
        let answer = client.request(json!({"cmd": "enqueue", "jobs": batch}));
        assert_eq!(answer["ok"], true, "{answer}");
        sent += n;
    }
    loop {
        let status = client.request(json!({"cmd": "status"}));
        let q = &status["queue"];
        let left: u64 = ["pending", "scheduled", "running"]
            .iter()
            .map(|k| q[k].as_u64().expect("a count"))
            .sum();
        if left == 0 {
            assert_eq!(q["dead"], 0, "{status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    jobs as f64 / started.elapsed().as_secs_f64()
}

/// A fresh daemon with `watchers` idle watchers, left alone for `secs`:
/// (wake-ups per minute, CPU ms per minute).
fn idle(watchers: usize, secs: u64) -> (f64, f64) {
    let d = Daemon::start(&[
        ("CRONQ_MAX_CONNECTIONS", "256"),
        ("CRONQ_MAX_CONNECTIONS_PER_UID", "256"),
    ]);
    let held: Vec<Client> = (0..watchers).map(|_| subscribe(&d)).collect();
    let pid = d.pid() as u32;
    std::thread::sleep(Duration::from_secs(5));
    let (cpu0, wakes0) = (cpu_ticks(pid), wakeups(pid));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let (cpu1, wakes1) = (cpu_ticks(pid), wakeups(pid));
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_ms = (cpu1 - cpu0) as f64 / hz * 1000.0;
    println!(
        "idle with {watchers} watchers: {} wake-ups in {:.1} min",
        woken_since(&wakes0, &wakes1),
        minutes
    );
    drop(held);
    (
        woken_since(&wakes0, &wakes1) as f64 / minutes,
        cpu_ms / minutes,
    )
}
