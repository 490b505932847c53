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
use support::{cpu_ticks, rss_mb, threads, wakeups, woken_since};

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
