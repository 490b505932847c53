//! How punctually crons fire, and how often an idle daemon wakes up.
//!
//! `cargo bench --bench cron_accuracy` builds the release binary, starts it
//! on a temp directory with three every-minute `noop` file crons, and lets
//! it run for `CRON_BENCH_MINUTES` (default 3) whole minutes. It then reads
//! each scheduled run's `started` against its `scheduled_for` from
//! `{"cmd":"cron"}` and reports p50/p99/max lateness in milliseconds
//! (target: p99 at most 10 ms).
//!
//! Wake-ups are counted from the kernel, not from cronq: the sum over all
//! threads of `voluntary_ctxt_switches` in /proc/PID/task/*/status, which
//! goes up by one each time a thread blocks and is woken again. They are
//! counted twice: per minute while the three crons fire, and over an idle
//! stretch (`CRON_BENCH_IDLE_SECONDS`, default 60) after the three crons
//! are disabled, so only the built-in `system_queue` fires (target: at most
//! 6 per idle minute). The idle count is broken down by thread name, which
//! is what tells a heartbeat from a pool reaper; /proc is read each second
//! so that short-lived blocking-pool threads are counted. The socket is not touched
//! during either count, since every request wakes the daemon too.
//!
//! `CRONQ_BIN` runs a binary already built instead of building one;
//! `CRON_BENCH_SYSTEM_QUEUE=false` starts the daemon with
//! `ENABLE_SYSTEM_QUEUE_CRON=false`, to tell the built-in cron's share of
//! the idle wake-ups from the rest (heartbeat, timers).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const CRONS: [&str; 3] = ["tick_a", "tick_b", "tick_c"];
const LATENESS_TARGET_MS: i64 = 10;
const WAKEUP_TARGET: f64 = 6.0;

fn main() {
    let minutes = env_number("CRON_BENCH_MINUTES", 3);
    let idle_s = env_number("CRON_BENCH_IDLE_SECONDS", 60);
    let bin = binary();
    let temp = tempfile::tempdir().expect("a temporary folder");
    let dir = temp.path();
    let crons: String = CRONS
        .iter()
        .map(|id| format!("[cron.{id}]\nschedule = \"* * * * *\"\ntype = \"noop\"\n\n"))
        .collect();
    std::fs::write(dir.join("crons.toml"), crons).expect("write crons.toml");
    let socket = dir.join("admin.sock");
    let mut daemon = Daemon::start(&bin, dir, &socket);
    let pid = daemon.child.id();
    println!(
        "cron_accuracy: {} with {} every-minute noop crons, pid {pid}",
        bin.display(),
        CRONS.len()
    );

    // Count from a second after a minute boundary, so the window holds
    // exactly `minutes` fire times of each cron.
    sleep_until_second(1);
    println!("running {minutes} whole minutes...");
    let (busy_before, busy_after) = watch_switches(pid, Duration::from_secs(60 * minutes));
    let busy_per_min = total_delta(&busy_before, &busy_after) as f64 / minutes as f64;

    let mut lateness = Vec::new();
    for id in CRONS {
        lateness.extend(scheduled_lateness(&socket, id));
    }
    let system_queue = scheduled_lateness(&socket, "system_queue");

    for id in CRONS {
        request(&socket, json!({"cmd": "disable", "id": id}));
    }
    println!("crons disabled; counting wake-ups for {idle_s} s of idle...");
    // Away from the minute boundary's `system_queue` fire by a few seconds,
    // so a 60 s window holds exactly one of them.
    sleep_until_second(5);
    let (idle_before, idle_after) = watch_switches(pid, Duration::from_secs(idle_s));
    let idle_per_min = total_delta(&idle_before, &idle_after) as f64 * 60.0 / idle_s as f64;

    daemon.stop();

    lateness.sort_unstable();
    println!();
    println!(
        "lateness of {} scheduled runs of the file crons (started - scheduled_for, ms):",
        lateness.len()
    );
    let (p50, p99, max) = (
        percentile(&lateness, 50),
        percentile(&lateness, 99),
        lateness.last().copied().unwrap_or(0),
    );
    println!(
        "  p50 {p50} ms, p99 {p99} ms, max {max} ms, min {} ms  (target p99 <= {LATENESS_TARGET_MS} ms: {})",
        lateness.first().copied().unwrap_or(0),
        verdict(p99 <= LATENESS_TARGET_MS)
    );
    println!("  system_queue runs: {system_queue:?} ms");
    println!(
        "wake-ups (voluntary context switches, all threads): {busy_per_min:.1}/min while \
         the crons fired; {idle_per_min:.1}/min idle  (target idle <= {WAKEUP_TARGET}: {})",
        verdict(idle_per_min <= WAKEUP_TARGET)
    );
    println!("idle wake-ups by thread ({idle_s} s):");
    for (name, n) in by_thread(&idle_before, &idle_after) {
        println!("  {n:>5}  {name}");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn env_number(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{var}={v:?} is not a whole number");
            std::process::exit(2);
        }),
        Err(_) => default,
    }
}

/// `CRONQ_BIN`, or the release binary, built now (a no-op when fresh).
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CRONQ_BIN") {
        return PathBuf::from(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "cronq"])
        .current_dir(manifest)
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "cargo build --release failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target"));
    target.join("release/cronq")
}

/// Sleeps until the wall clock's seconds read `second` (in the next minute
/// if that has passed in this one).
fn sleep_until_second(second: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    let into_minute = now.as_millis() as u64 % 60_000;
    let target = second * 1000;
    let wait = if into_minute < target {
        target - into_minute
    } else {
        60_000 - into_minute + target
    };
    std::thread::sleep(Duration::from_millis(wait));
}

type Switches = BTreeMap<u32, (String, u64)>;

/// Samples every thread's switches at the start of `window` and each second
/// through it, keeping each thread's last reading: a thread of tokio's
/// blocking pool may be born and end (10 s idle) inside the window, and
/// reading /proc does not wake the daemon.
fn watch_switches(pid: u32, window: Duration) -> (Switches, Switches) {
    let before = switches(pid);
    let mut seen = before.clone();
    let end = Instant::now() + window;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1).min(end - Instant::now()));
        seen.extend(switches(pid));
    }
    (before, seen)
}

/// Voluntary context switches of each thread, by thread id, with its name.
fn switches(pid: u32) -> Switches {
    let mut out = BTreeMap::new();
    let tasks = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&tasks).expect("the daemon's /proc entry") {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        let name = field("Name:").unwrap_or_default();
        let n = field("voluntary_ctxt_switches:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.insert(tid, (name, n));
    }
    out
}

/// Switches between two samples; a thread born in between counts from 0.
fn total_delta(before: &Switches, after: &Switches) -> u64 {
    by_thread(before, after).iter().map(|(_, n)| n).sum()
}

/// Switches per thread between two samples, largest first, named
/// `name (tid)`.
fn by_thread(before: &Switches, after: &Switches) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = after
        .iter()
        .map(|(tid, (name, n))| {
            let was = before.get(tid).map_or(0, |(_, n)| *n);
            let born = if before.contains_key(tid) {
                ""
            } else {
                ", new"
            };
            (format!("{name} ({tid}{born})"), n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    rows
}

/// `started - scheduled_for` of each scheduled run of `id`, in ms.
fn scheduled_lateness(socket: &Path, id: &str) -> Vec<i64> {
    let answer = request(socket, json!({"cmd": "cron", "id": id, "limit": 100}));
    let runs = answer["runs"].as_array().cloned().unwrap_or_default();
    runs.iter()
        .filter(|r| r["trigger"] == "schedule")
        .filter_map(|r| {
            let at = |key: &str| -> Option<i64> {
                let ts: jiff::Timestamp = r[key].as_str()?.parse().ok()?;
                Some(ts.as_millisecond())
            };
            Some(at("started")? - at("scheduled_for")?)
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn request(socket: &Path, request: Value) -> Value {
    let mut stream = UnixStream::connect(socket).expect("connect to the admin socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    writeln!(stream, "{request}").expect("send");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("answer");
    let answer: Value = serde_json::from_str(&line).expect("a JSON answer");
    assert_eq!(answer["ok"], true, "{request} -> {answer}");
    answer
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(bin: &Path, dir: &Path, socket: &Path) -> Daemon {
        let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
        let child = Command::new(bin)
            .arg("daemon")
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LOG_FORMAT", "text")
            .env("LOG_LEVEL", "info")
            .env("CRON_TZ", "UTC")
            .env("CRONQ_DB", dir.join("cronq.db"))
            .env("CRONQ_SOCKET", socket)
            .env("CRONQ_CRONS", dir.join("crons.toml"))
            .env(
                "ENABLE_SYSTEM_QUEUE_CRON",
                std::env::var("CRON_BENCH_SYSTEM_QUEUE").unwrap_or_else(|_| "true".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cronq");
        let mut daemon = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(socket).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
                panic!("cronq exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "cronq did not start in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        request(socket, json!({"cmd": "ping"}));
        daemon
    }

    fn stop(&mut self) {
        // SAFETY: kill with the pid of our own child and a valid signal.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
