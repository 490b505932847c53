//! What recording outcomes costs the SQLite writer, on the store alone:
//! no socket, no workers, no log, so the history's share is seen without
//! the rest of a job's life around it.
//!
//! `cargo bench --bench outcomes` opens a store on a temp file, enqueues
//! OUTCOMES_JOBS (default 50,000) `noop` jobs, claims them all, then
//! finishes them through `Store::finish` as workers do (queued without
//! waiting, the answers awaited 64 at a time) and reports the wall time
//! and the writer thread's CPU time (`/proc/self/task/*/stat`, the thread
//! named `cronq-writer`) per finish. `JOB_HISTORY` on and off alternate,
//! three rounds each, each on a fresh file.

use std::time::Instant;

use cronq::clock::{Clock, SystemClock};
use cronq::store::job::{NewJob, Outcome};
use cronq::store::{JobDefaults, Store};

const DEFAULT_JOBS: usize = 50_000;
const ROUNDS: usize = 3;
/// Clock ticks per second of /proc's utime and stime.
const TICKS_PER_S: f64 = 100.0;

fn main() {
    let jobs = std::env::var("OUTCOMES_JOBS")
        .ok()
        .map(|v| v.parse().expect("OUTCOMES_JOBS: a whole number"))
        .unwrap_or(DEFAULT_JOBS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    println!("outcomes: {jobs} noop jobs finished through the store, {ROUNDS} rounds");
    let mut figures: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=ROUNDS {
        for (i, history) in [true, false].into_iter().enumerate() {
            let (wall, writer) = runtime.block_on(finish_all(jobs, history));
            println!(
                "round {round}, history {}: {wall:.2} µs wall, {writer:.2} µs writer CPU per finish",
                if history { "on" } else { "off" }
            );
            figures[i].push((wall, writer));
        }
    }
    let median = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    println!("\n| measure | history on | history off |\n|---|---|---|");
    for (what, f) in [
        (
            "wall time per finish, median",
            (|x: &(f64, f64)| x.0) as fn(&_) -> f64,
        ),
        ("writer CPU per finish, median", |x: &(f64, f64)| x.1),
    ] {
        println!(
            "| {what} | {:.2} µs | {:.2} µs |",
            median(&figures[0], f),
            median(&figures[1], f)
        );
    }
}

/// Finishes `jobs` claimed jobs; the wall time and the writer's CPU time
/// per finish, in µs.
async fn finish_all(jobs: usize, history: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let defaults = JobDefaults {
        history,
        ..JobDefaults::default()
    };
    let store = Store::sqlite(&dir.path().join("cronq.db"), defaults).expect("open");
    let now = SystemClock.now_ms();
    for batch in 0..jobs.div_ceil(1000) {
        let n = 1000.min(jobs - batch * 1000);
        let new = (0..n)
            .map(|i| NewJob::new(format!("b{}", batch * 1000 + i), "noop", Default::default()))
            .collect();
        store.enqueue(new, now, u64::MAX).await.expect("enqueue");
    }
    let types = ["noop".to_string()];
    let mut claimed = Vec::with_capacity(jobs);
    loop {
        let got = store
            .claim("bench", &types, 500, SystemClock.now_ms())
            .await
            .expect("claim");
        if got.is_empty() {
            break;
        }
        claimed.extend(got);
    }
    assert_eq!(claimed.len(), jobs);
    let (cpu_before, started) = (writer_ticks(), Instant::now());
    let mut pending = Vec::new();
    for job in claimed {
        let done = Outcome::succeeded(false);
        let queued = store.finish(job.lease, done, SystemClock.now_ms(), None);
        pending.push(queued.await.expect("finish"));
        if pending.len() == 64 {
            for p in pending.drain(..) {
                assert!(p.committed().await.expect("commit"));
            }
        }
    }
    for p in pending {
        assert!(p.committed().await.expect("commit"));
    }
    let wall = started.elapsed().as_secs_f64();
    let writer = (writer_ticks() - cpu_before) as f64 / TICKS_PER_S;
    store.close().await;
    let per = |s: f64| s * 1e6 / jobs as f64;
    (per(wall), per(writer))
}

/// The writer thread's CPU time so far (user + system), in clock ticks.
fn writer_ticks() -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let task = task.expect("a task").path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != "cronq-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
        // After the command's closing parenthesis: utime and stime are the
        // 12th and 13th fields.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        for i in [11, 12] {
            ticks += fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ticks
}
