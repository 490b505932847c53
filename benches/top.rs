//! What `cronq top` costs: how fast its state takes in `watch` events, and
//! how much CPU the real dashboard uses while the queue is idle.
//!
//! `cargo bench --bench top` reports:
//!
//! - ingest: event lines decoded and applied to the state per second, on
//!   one core, from a mix of started / progress / succeeded / failed lines
//!   (the watch thread decodes, the loop applies; both are counted here on
//!   one thread). Target: well above 20,000 a second.
//! - idle: the release binary's `cronq top` in a tmux pane (TOP_IDLE_SECONDS,
//!   default 30) against an idle daemon, CPU time from /proc/PID/stat and
//!   wake-ups (voluntary context switches of all its threads). Target:
//!   under 2% of a core. Needs tmux; skipped without it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use cronq::client::top::state::{State, Watch};
use cronq::client::top::wire::Event;
use jiff::Timestamp;
use support::daemon::{BIN, Daemon};

const EVENTS: usize = 400_000;

fn main() {
    ingest();
    idle();
}

fn ingest() {
    let at = "2026-01-01T00:00:00.000Z";
    let lines: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| {
            let job = format!(
                r#"{{"id":"j{:014}","name":"welcome_email","type":"email","attempt":1,"cron_id":null}}"#,
                i / 4
            );
            match i % 4 {
                0 => format!(r#"{{"event":"started","at":"{at}","job":{job}}}"#),
                1 => format!(
                    r#"{{"event":"progress","at":"{at}","job":{job},"progress":{{"done":5,"total":10,"message":null,"at":"{at}"}}}}"#
                ),
                2 if i % 40 == 2 => format!(
                    r#"{{"event":"failed","at":"{at}","job":{job},"retry_at":"{at}","error":"451 try again"}}"#
                ),
                _ => format!(r#"{{"event":"succeeded","at":"{at}","job":{job}}}"#),
            }
            .into_bytes()
        })
        .collect();
    let mut state = State::new("bench".into());
    state.watch = Watch::Live;
    let now: Timestamp = at.parse().expect("a timestamp");
    let started = Instant::now();
    for line in &lines {
        if let Some(e) = Event::parse(line) {
            state.apply_event(e, now);
        }
    }
    let took = started.elapsed();
    let rate = EVENTS as f64 / took.as_secs_f64();
    println!("\n| measure | figure | target |\n|---|---|---|");
    println!(
        "| ingest: watch lines decoded and applied | {rate:.0} /s ({EVENTS} in {:.0} ms) | ≥ 20,000 /s: {} |",
        took.as_secs_f64() * 1000.0,
        support::verdict(rate >= 20_000.0)
    );
    assert!(state.running.len() <= cronq::client::top::state::MAX_RUNNING);
}

fn idle() {
    let seconds: u64 = std::env::var("TOP_IDLE_SECONDS")
        .ok()
        .map(|v| v.parse().expect("TOP_IDLE_SECONDS: a whole number"))
        .unwrap_or(30);
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("| idle | skipped: tmux is not installed | |");
        return;
    }
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("tmux.sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .expect("tmux")
    };
    let command = format!("exec {BIN} top --socket {}", d.socket.display());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "B",
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ]);
    let pid_text = tmux(&["display-message", "-p", "-t", "B", "#{pane_pid}"]);
    let pid: u32 = String::from_utf8_lossy(&pid_text.stdout)
        .trim()
        .parse()
        .expect("the pane's pid");
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, wakes0) = (cpu_ticks(pid), wakeups(pid));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, wakes1) = (cpu_ticks(pid), wakeups(pid));
    let elapsed = started.elapsed().as_secs_f64();
    tmux(&["kill-server"]);
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let share = (cpu1 - cpu0) as f64 / hz / elapsed * 100.0;
    println!(
        "| idle: `cronq top` CPU over {elapsed:.0} s | {share:.2}% of a core | < 2%: {} |",
        support::verdict(share < 2.0)
    );
    println!(
        "| idle: wake-ups (voluntary context switches) | {:.1} /s | |",
        (wakes1 - wakes0) as f64 / elapsed
    );
}

/// utime + stime of the whole process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

/// Voluntary context switches of all the process's threads.
fn wakeups(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}
