//! What an idle daemon costs: CPU time, wake-ups and memory over a long
//! quiet stretch with only the built-in crons.
//!
//! `cargo bench --bench idle` starts the real release binary on a temp dir,
//! lets it settle for 5 s, then watches it for IDLE_SECONDS (default 3600)
//! and reports:
//!
//! - CPU time used (utime + stime from /proc/PID/stat);
//! - wake-ups per minute: the voluntary context switches of all its threads
//!   (/proc/PID/task/*/status), which count every time a thread went to
//!   sleep and was woken again: timers, the minute cron, the heartbeat;
//! - VmRSS at the start and the end, and sampled every 10 s (max).
//!
//! Target: at most 6 wake-ups a minute (counting the watchdog), RSS flat.

mod support;

use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::rss_mb;

const DEFAULT_SECONDS: u64 = 3600;
const SAMPLE: Duration = Duration::from_secs(10);

fn main() {
    let seconds = std::env::var("IDLE_SECONDS")
        .ok()
        .map(|v| v.parse().expect("IDLE_SECONDS: a whole number"))
        .unwrap_or(DEFAULT_SECONDS);
    let d = Daemon::start(&[]);
    let pid = d.pid() as u32;
    std::thread::sleep(Duration::from_secs(5));
    let (cpu0, wakes0, rss0) = (cpu_ticks(pid), wakeups(pid), rss_mb(pid));
    let started = Instant::now();
    let mut rss_max = rss0;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(SAMPLE.min(Duration::from_secs(seconds)));
        rss_max = rss_max.max(rss_mb(pid));
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let (cpu1, wakes1, rss1) = (cpu_ticks(pid), wakeups(pid), rss_mb(pid));
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_ms = (cpu1 - cpu0) as f64 / hz * 1000.0;
    let per_minute = woken_since(&wakes0, &wakes1) as f64 / minutes;
    println!("idle: {:.1} minutes, threads {}", minutes, threads(pid));
    println!("\n| measure | figure | target |\n|---|---|---|");
    println!(
        "| CPU time while idle | {cpu_ms:.0} ms ({:.1} ms/min) | |",
        cpu_ms / minutes
    );
    println!(
        "| wake-ups (voluntary context switches, all threads) | {per_minute:.1} /min | ≤ 6: {} |",
        support::verdict(per_minute <= 6.0)
    );
    println!(
        "| RSS start / max / end | {rss0:.1} / {rss_max:.1} / {rss1:.1} MB | flat: {} |",
        support::verdict(rss_max - rss0 < 1.0)
    );
}

/// utime + stime of the whole process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
    get(11) + get(12)
}

/// Voluntary context switches of each thread, by thread id.
fn wakeups(pid: u32) -> std::collections::HashMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Default::default();
    };
    tasks
        .filter_map(|t| t.ok())
        .map(|t| {
            let count = std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            (t.file_name().to_string_lossy().into_owned(), count)
        })
        .collect()
}

/// Switches between two samples: per thread, so a thread that exited in
/// between (tokio's blocking pool lets idle threads go after 10 s) does
/// not make the sum go backward. Such a thread's last switches are not
/// counted: the figure is a floor by that much.
fn woken_since(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> u64 {
    after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |t| t.count())
}
