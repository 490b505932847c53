//! What an idle daemon costs: CPU time, wake-ups and memory over a long
//! quiet stretch with only the built-in crons, on SQLite and on
//! PostgreSQL side by side.
//!
//! `cargo bench --bench idle` starts the real release binary twice, each on
//! its own temp dir: one on SQLite, one on a fresh database of a PostgreSQL
//! server the bench starts (`cronq::store::postgres::testing`; skipped,
//! saying so, without PostgreSQL). It lets them settle for 5 s, then
//! watches both over the same IDLE_SECONDS (default 3600) and reports, per
//! daemon (the server's own processes are not counted):
//!
//! - CPU time used (utime + stime from /proc/PID/stat);
//! - wake-ups per minute: the voluntary context switches of all its threads
//!   (/proc/PID/task/*/status), which count every time a thread went to
//!   sleep and was woken again: timers, the minute cron, the heartbeat, and
//!   on PostgreSQL the fallback poll; the busiest threads are listed by name;
//! - VmRSS at the start and the end, and sampled every 10 s (max).
//!
//! Target: at most 6 wake-ups a minute (counting the watchdog), RSS flat,
//! and PostgreSQL's no more than SQLite's.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::daemon::{Backend, Daemon};
use support::{by_thread, cpu_ticks, rss_mb, threads, wakeups, woken_since};

const DEFAULT_SECONDS: u64 = 3600;
const SAMPLE: Duration = Duration::from_secs(10);

/// One daemon under watch.
struct Watch {
    name: &'static str,
    daemon: Daemon,
    cpu0: u64,
    wakes0: HashMap<String, (String, u64)>,
    rss0: f64,
    rss_max: f64,
}

impl Watch {
    fn begin(name: &'static str, daemon: Daemon) -> Watch {
        let pid = daemon.pid() as u32;
        let rss0 = rss_mb(pid);
        Watch {
            name,
            cpu0: cpu_ticks(pid),
            wakes0: wakeups(pid),
            rss0,
            rss_max: rss0,
            daemon,
        }
    }

    fn pid(&self) -> u32 {
        self.daemon.pid() as u32
    }
}

fn main() {
    let seconds = std::env::var("IDLE_SECONDS")
        .ok()
        .map(|v| v.parse().expect("IDLE_SECONDS: a whole number"))
        .unwrap_or(DEFAULT_SECONDS);
    let mut daemons = vec![("sqlite", Daemon::start(&[]))];
    match Backend::postgres() {
        Some(pg) => daemons.push(("postgres", pg.start(&[]))),
        None => println!("PostgreSQL is not installed: SQLite only"),
    }
    std::thread::sleep(Duration::from_secs(5));
    let mut watches: Vec<Watch> = daemons
        .into_iter()
        .map(|(name, d)| Watch::begin(name, d))
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(SAMPLE.min(Duration::from_secs(seconds)));
        for w in &mut watches {
            w.rss_max = w.rss_max.max(rss_mb(w.pid()));
        }
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    // SAFETY: sysconf with a valid name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!("idle: {minutes:.1} minutes, watched together\n");
    println!(
        "| backend | CPU while idle | wake-ups /min (≤ 6) | threads | RSS start / max / end (flat) |"
    );
    println!("|---|---|---|---|---|");
    let mut rates = HashMap::new();
    let mut busiest = Vec::new();
    for w in &watches {
        let pid = w.pid();
        let cpu_ms = (cpu_ticks(pid) - w.cpu0) as f64 / hz * 1000.0;
        let wakes1 = wakeups(pid);
        let per_minute = woken_since(&w.wakes0, &wakes1) as f64 / minutes;
        rates.insert(w.name, per_minute);
        let rss1 = rss_mb(pid);
        println!(
            "| {} | {cpu_ms:.0} ms ({:.1} ms/min) | {per_minute:.1}: {} | {} | {:.1} / {:.1} / {rss1:.1} MB: {} |",
            w.name,
            cpu_ms / minutes,
            support::verdict(per_minute <= 6.0),
            threads(pid),
            w.rss0,
            w.rss_max,
            support::verdict(w.rss_max - w.rss0 < 1.0)
        );
        busiest.push((w.name, by_thread(&w.wakes0, &wakes1, minutes)));
    }
    if let (Some(sqlite), Some(pg)) = (rates.get("sqlite"), rates.get("postgres")) {
        println!(
            "\nPostgreSQL {pg:.1} vs SQLite {sqlite:.1} wake-ups a minute: {}",
            support::verdict(pg <= sqlite)
        );
    }
    for (name, threads) in busiest {
        let top: Vec<String> = threads
            .iter()
            .take(6)
            .map(|(comm, n)| format!("{comm} {n:.1}"))
            .collect();
        println!(
            "{name}: busiest threads (wake-ups /min): {}",
            top.join(", ")
        );
    }
}
