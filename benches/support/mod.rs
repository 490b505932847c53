//! What the queue benchmarks share: timing figures, a process's memory from
//! /proc, and starting the real binary while timing it to its first `ping`.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../../tests/support/daemon.rs"]
pub mod daemon;

/// The `p`th percentile (0..=100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `/proc/PID/status` figure in kB (`VmRSS`, `VmHWM`), 0 when unreadable.
pub fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn rss_mb(pid: u32) -> f64 {
    status_kb(pid, "VmRSS") as f64 / 1024.0
}

/// Starts the real binary in `dir` (state in `dir/cronq-data/`) and returns
/// it with the time from `spawn` to the first `ping` answered, polling the
/// socket every 0.2 ms.
pub fn start_timed(dir: &Path, env: &[(&str, &str)]) -> (daemon::Daemon, Duration) {
    let socket = dir.join("cronq-data/admin.sock");
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    let started = Instant::now();
    let mut child: Child = Command::new(daemon::BIN)
        .arg("daemon")
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LOG_FORMAT", "text")
        .env("LOG_LEVEL", "info")
        .env("CRON_TZ", "UTC")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start cronq");
    let deadline = started + Duration::from_secs(60);
    let took = loop {
        if let Ok(mut c) = daemon::Client::connect(&socket)
            && c.request(json!({"cmd": "ping"}))["ok"] == true
        {
            break started.elapsed();
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            panic!("cronq exited with {status} at start-up:\n{log}");
        }
        assert!(Instant::now() < deadline, "cronq did not answer in 60 s");
        std::thread::sleep(Duration::from_micros(200));
    };
    (daemon::Daemon::adopt(dir, child), took)
}

/// A target met or not, for the tables.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// utime + stime of the whole process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
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

/// Voluntary context switches of each thread, by thread id, with the
/// thread's name.
pub fn wakeups(pid: u32) -> std::collections::HashMap<String, (String, u64)> {
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
            let comm = std::fs::read_to_string(t.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string();
            (t.file_name().to_string_lossy().into_owned(), (comm, count))
        })
        .collect()
}

/// Switches between two samples: per thread, so a thread that exited in
/// between (tokio's blocking pool lets idle threads go after 10 s) does
/// not make the sum go backward. Such a thread's last switches are not
/// counted: the figure is a floor by that much.
pub fn woken_since(
    before: &std::collections::HashMap<String, (String, u64)>,
    after: &std::collections::HashMap<String, (String, u64)>,
) -> u64 {
    after
        .iter()
        .map(|(tid, (_, n))| n.saturating_sub(before.get(tid).map_or(0, |(_, b)| *b)))
        .sum()
}

/// Wake-ups a minute by thread name (threads of one name summed), most
/// first.
pub fn by_thread(
    before: &std::collections::HashMap<String, (String, u64)>,
    after: &std::collections::HashMap<String, (String, u64)>,
    minutes: f64,
) -> Vec<(String, f64)> {
    let mut sums: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (tid, (comm, n)) in after {
        let was = before.get(tid).map_or(0, |(_, b)| *b);
        *sums.entry(comm.clone()).or_default() += n.saturating_sub(was);
    }
    let mut out: Vec<(String, f64)> = sums
        .into_iter()
        .map(|(comm, n)| (comm, n as f64 / minutes))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |t| t.count())
}
