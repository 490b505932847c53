//! Queue throughput, latency and memory, and the bare SQLite ceiling; the
//! same on PostgreSQL, with several daemons on one database.
//!
//! `cargo bench --bench throughput` reports, in one run:
//!
//! 1. **End to end through the real binary**: the release `cronq daemon` on
//!    a temp dir; 100,000 `noop` jobs enqueued over its socket in batches of
//!    1,000 (the `jobs` form) on one connection, then `status` polled every
//!    10 ms until nothing is pending, scheduled or running. Enqueue rate,
//!    and jobs/s from the first enqueue to the last completion. Run with
//!    JOB_MAX_WORKERS at its default (5) and at 32. The binary logs each job
//!    at `info` to a file, as a deployed daemon would to the journal.
//!    The same load once more on a daemon built in-process through the
//!    library (as issue 2 describes the bench; it has no log subscriber).
//! 2. **Latency**: a daemon built in-process through the library with a
//!    handler that sends `Instant::now()` when it starts; 1,000 single
//!    enqueues over the real socket into an idle daemon, one at a time.
//!    Measured: request written → enqueue answered (the commit, fsynced),
//!    and request written → handler started.
//! 3. **Memory**: the binary's VmRSS idle after start-up, and its peak
//!    VmRSS sampled during the 100,000-job run (VmHWM at the end).
//! 4. **The cost of the history**: the end-to-end run at 5 workers with
//!    JOB_HISTORY on (the default: every finished job leaves a record in
//!    the same transaction) and off, alternated HISTORY_ROUNDS times (3) so
//!    the shared machine's noise falls on both alike; reports each side's
//!    range and median, and their ratio (target: on within 15% of off).
//! 5. **The ceiling**: the same insert (batches of 1,000, fsynced), claim of
//!    50 (one `UPDATE ... RETURNING` over the `queues_ready` range of the one
//!    priority and type there are, one transaction) and fenced delete of
//!    each (one transaction per 50) on cronq's own schema (its indexes and
//!    count triggers) with plain rusqlite in this thread: what SQLite alone
//!    does on this machine, without the socket, JSON, the writer thread, the
//!    dispatcher, the workers or the logs.
//! 6. **PostgreSQL** (benches/throughput/postgres.rs, skipped without
//!    PostgreSQL): the same end-to-end load with 1, 2 and 3 release daemons
//!    on one database of a server the bench starts, with statements, round
//!    trips, WAL bytes and CPU per job; an enqueue on one daemon started on
//!    another; and the same ceiling with plain tokio-postgres, on one
//!    connection and on four.
//!
//! `THROUGHPUT_JOBS=10000` makes a quick run; `THROUGHPUT_ONLY=sqlite` or
//! `=postgres` runs one backend, `THROUGHPUT_DAEMONS=1` (default `1,2,3`)
//! the PostgreSQL runs of those daemon counts. `THROUGHPUT_BEFORE=PATH`
//! also runs the one-daemon and cross-node PostgreSQL measures with another
//! build of cronq (an earlier commit's binary), in the same run.
//! `THROUGHPUT_HISTORY_ONLY=1` runs part 4 alone.

mod support;

#[path = "throughput/postgres.rs"]
mod postgres;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cronq::clock::{Clock, SystemClock};
use cronq::store::{JobDefaults, Store};
use cronq::{Config, Daemon as LibDaemon, Handler, JobContext, JobError};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use support::daemon::{Client, Daemon};
use support::{ms, percentile, rss_mb, status_kb, verdict};

const DEFAULT_JOBS: usize = 100_000;
const BATCH: usize = 1_000;
const LATENCY_JOBS: usize = 1_000;
const CEILING_CLAIM: usize = 50;
/// Connections the PostgreSQL ceiling claims and deletes on side by side.
const CEILING_CONNECTIONS: usize = 4;
const HISTORY_ROUNDS: usize = 3;

fn main() {
    let jobs = std::env::var("THROUGHPUT_JOBS")
        .ok()
        .map(|v| v.parse().expect("THROUGHPUT_JOBS: a whole number"))
        .unwrap_or(DEFAULT_JOBS);
    println!(
        "throughput: {jobs} noop jobs, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let only = std::env::var("THROUGHPUT_ONLY").unwrap_or_default();
    let mut table: Vec<Row> = Vec::new();
    if std::env::var_os("THROUGHPUT_HISTORY_ONLY").is_some() {
        history_table(jobs, &mut table);
        print_table(&table);
        return;
    }
    if only != "postgres" {
        sqlite(jobs, &mut table);
    }
    if only != "sqlite" {
        match postgres::Bench::start() {
            Some(bench) => postgres_parts(&bench, jobs, &mut table),
            None => println!("PostgreSQL is not installed: SQLite only"),
        }
    }
    print_table(&table);
}

fn print_table(table: &[Row]) {
    println!("\n| measure | figure | target |\n|---|---|---|");
    for (what, figure, target) in table {
        println!("| {what} | {figure} | {target} |");
    }
}

/// A line of the final table: what, the figure, the target and verdict.
type Row = (String, String, String);

fn sqlite(jobs: usize, table: &mut Vec<Row>) {
    let ceiling = bare_ceiling(jobs);
    for workers in ["5", "32"] {
        let run = end_to_end(jobs, workers, &[]);
        table.push((
            format!("enqueue over the socket, batches of {BATCH}, {workers} workers"),
            format!("{:.0} jobs/s", run.enqueue_rate),
            String::new(),
        ));
        table.push((
            format!("end to end (enqueue → all deleted), {workers} workers"),
            format!("{:.0} jobs/s", run.end_to_end_rate),
            format!(
                "≥ 20,000 and ≥ half the ceiling ({:.0}%): {}",
                100.0 * run.end_to_end_rate / ceiling,
                verdict(run.end_to_end_rate >= 20_000.0 && run.end_to_end_rate >= ceiling / 2.0)
            ),
        ));
        table.push((
            format!("RSS idle after start / peak under load, {workers} workers"),
            format!("{:.1} / {:.1} MB", run.idle_rss, run.peak_rss),
            format!("idle ≤ 20 MB: {}", verdict(run.idle_rss <= 20.0)),
        ));
    }
    history_table(jobs, table);
    let (enqueue_rate, in_process) = end_to_end_in_process(jobs);
    table.push((
        "end to end, daemon built in-process through the library, 5 workers".into(),
        format!("{in_process:.0} jobs/s (enqueue {enqueue_rate:.0} jobs/s)"),
        format!(
            "≥ 20,000 and ≥ half the ceiling ({:.0}%): {}",
            100.0 * in_process / ceiling,
            verdict(in_process >= 20_000.0 && in_process >= ceiling / 2.0)
        ),
    ));
    table.push((
        "bare rusqlite ceiling: insert + claim 50 + delete".into(),
        format!("{ceiling:.0} jobs/s"),
        String::new(),
    ));

    let (ack, start) = latency();
    table.push((
        format!("enqueue answered, {LATENCY_JOBS} single jobs (p50 / p99)"),
        format!("{:.3} / {:.3} ms", ms(ack.0), ms(ack.1)),
        String::new(),
    ));
    table.push((
        "enqueue → handler started, idle daemon (p50 / p99)".into(),
        format!("{:.3} / {:.3} ms", ms(start.0), ms(start.1)),
        format!(
            "p50 ≤ 1 ms, p99 ≤ 5 ms: {}",
            verdict(ms(start.0) <= 1.0 && ms(start.1) <= 5.0)
        ),
    ));
}

fn postgres_parts(bench: &postgres::Bench, jobs: usize, table: &mut Vec<Row>) {
    let ceiling_one = bench.ceiling(jobs, 1);
    let ceiling = bench.ceiling(jobs, CEILING_CONNECTIONS).max(ceiling_one);
    let counts: Vec<usize> = std::env::var("THROUGHPUT_DAEMONS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("THROUGHPUT_DAEMONS: numbers, as 1,2,3")
        })
        .collect();
    let before = std::env::var_os("THROUGHPUT_BEFORE").map(std::path::PathBuf::from);
    if let Some(bin) = &before {
        let (run, _) = bench.cluster(jobs, 1, Some(bin));
        table.push((
            format!(
                "PostgreSQL, before ({}): end to end, 1 daemon",
                bin.display()
            ),
            format!(
                "{:.0} jobs/s (enqueue {:.0}; {:.3} statements, {:.0} + {:.0} µs CPU per job)",
                run.end_to_end_rate,
                run.enqueue_rate,
                run.per_job.statements,
                run.server_cpu_us,
                run.daemons_cpu_us
            ),
            String::new(),
        ));
        let (ack, start, _) = bench.cross_node(Some(bin));
        table.push((
            "PostgreSQL, before: enqueue answered on A / A → started on B (p50 / p99)".into(),
            format!(
                "{:.3} / {:.3} ms, {:.3} / {:.3} ms",
                ms(ack.0),
                ms(ack.1),
                ms(start.0),
                ms(start.1)
            ),
            String::new(),
        ));
    }
    let mut one = 0.0;
    for daemons in counts {
        let (run, vacuum) = bench.cluster(jobs, daemons, None);
        if daemons == 1 {
            one = run.end_to_end_rate;
        }
        table.push((
            format!("PostgreSQL: enqueue over the sockets, {daemons} daemon(s)"),
            format!("{:.0} jobs/s", run.enqueue_rate),
            String::new(),
        ));
        let target = if daemons == 1 {
            format!(
                "≥ 15,000 and ≥ half the ceiling ({:.0}%): {}",
                100.0 * run.end_to_end_rate / ceiling,
                verdict(run.end_to_end_rate >= 15_000.0 && run.end_to_end_rate >= ceiling / 2.0)
            )
        } else {
            format!("{:.2}× one daemon", run.end_to_end_rate / one)
        };
        table.push((
            format!("PostgreSQL: end to end, {daemons} daemon(s), 5 workers each"),
            format!("{:.0} jobs/s", run.end_to_end_rate),
            target,
        ));
        let p = &run.per_job;
        table.push((
            format!("PostgreSQL: CPU per job, {daemons} daemon(s): the server's / the daemons'"),
            format!("{:.0} / {:.0} µs", run.server_cpu_us, run.daemons_cpu_us),
            String::new(),
        ));
        table.push((
            format!("PostgreSQL: per job, {daemons} daemon(s): statements sent (round trips) / nested / WAL"),
            format!(
                "{:.3} / {:.3} / {:.0} bytes",
                p.statements, p.nested, p.wal_bytes
            ),
            String::new(),
        ));
        println!(
            "the server's time by statement, {} daemon(s) (calls per job, total ms):",
            run.daemons
        );
        for (calls, total, query) in &p.top {
            let query: String = query.chars().take(130).collect();
            println!("  {calls:8.4} {total:7.0}  {query}");
        }
        if let Some(v) = vacuum {
            table.push((
                "PostgreSQL: after the one-daemon run: dead tuples, autovacuums, VACUUM took, size before → after".into(),
                format!(
                    "{} / {} / {:.0} ms / {:.1} → {:.1} MB",
                    v.dead_tuples,
                    v.autovacuums,
                    ms(v.took),
                    v.size_before as f64 / 1e6,
                    v.size_after as f64 / 1e6
                ),
                String::new(),
            ));
        }
    }
    table.push((
        format!(
            "PostgreSQL: bare tokio-postgres ceiling: insert + claim 50 + delete, 1 / {CEILING_CONNECTIONS} connections"
        ),
        format!("{ceiling_one:.0} / {ceiling:.0} jobs/s"),
        String::new(),
    ));
    let (ack, start, ran_on_a) = bench.cross_node(None);
    table.push((
        format!("PostgreSQL: enqueue answered on A, {LATENCY_JOBS} single jobs (p50 / p99)"),
        format!("{:.3} / {:.3} ms", ms(ack.0), ms(ack.1)),
        String::new(),
    ));
    table.push((
        "PostgreSQL: enqueue on A → started on B (p50 / p99)".into(),
        format!("{:.3} / {:.3} ms", ms(start.0), ms(start.1)),
        format!(
            "p50 ≤ 2 ms, p99 ≤ 10 ms: {}{}",
            verdict(ms(start.0) <= 2.0 && ms(start.1) <= 10.0),
            if ran_on_a == 0 {
                String::new()
            } else {
                format!(" (but A ran {ran_on_a} itself: not all cross-node)")
            }
        ),
    ));
}

/// Part 4's runs and its row of the table.
fn history_table(jobs: usize, table: &mut Vec<Row>) {
    let (on_runs, off_runs) = history_cost(jobs);
    let rates = |runs: &[Sample]| runs.iter().map(|r| r.0).collect::<Vec<_>>();
    let cpus = |runs: &[Sample]| runs.iter().map(|r| r.1).collect::<Vec<_>>();
    let (on, off) = (rates(&on_runs), rates(&off_runs));
    let (on_median, off_median) = (median(&on), median(&off));
    let (on_cpu, off_cpu) = (cpus(&on_runs), cpus(&off_runs));
    table.push((
        "daemon CPU per job, 5 workers, JOB_HISTORY=on / off: median (range)".into(),
        format!(
            "{:.1} ({:.1}–{:.1}) / {:.1} ({:.1}–{:.1}) µs",
            median(&on_cpu),
            min(&on_cpu),
            max(&on_cpu),
            median(&off_cpu),
            min(&off_cpu),
            max(&off_cpu)
        ),
        format!(
            "on costs {:+.0}%",
            100.0 * (median(&on_cpu) / median(&off_cpu) - 1.0)
        ),
    ));
    table.push((
        "end to end, 5 workers, JOB_HISTORY=on (default) / off: median (range)".into(),
        format!(
            "{on_median:.0} ({:.0}–{:.0}) / {off_median:.0} ({:.0}–{:.0}) jobs/s",
            min(&on),
            max(&on),
            min(&off),
            max(&off)
        ),
        format!(
            "on ≥ 85% of off ({:.0}%): {}",
            100.0 * on_median / off_median,
            verdict(on_median >= 0.85 * off_median)
        ),
    ));
}

struct Run {
    enqueue_rate: f64,
    end_to_end_rate: f64,
    /// The daemon's CPU time (all threads, user + system) per job, in µs:
    /// steadier than a rate on a shared machine.
    cpu_us_per_job: f64,
    idle_rss: f64,
    peak_rss: f64,
}

fn end_to_end(jobs: usize, workers: &str, env: &[(&str, &str)]) -> Run {
    let mut vars = vec![("JOB_MAX_WORKERS", workers)];
    vars.extend_from_slice(env);
    let d = Daemon::start(&vars);
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.pid() as u32;
    let idle_rss = rss_mb(pid);
    let mut client = d.client();
    let mut peak_rss = idle_rss;
    let cpu_before = cpu_ms(pid);
    let (enqueued, done) = drive(std::slice::from_mut(&mut client), jobs, || {
        peak_rss = peak_rss.max(rss_mb(pid))
    });
    let cpu = cpu_ms(pid) - cpu_before;
    let hwm = status_kb(pid, "VmHWM") as f64 / 1024.0;
    let run = Run {
        enqueue_rate: jobs as f64 / enqueued.as_secs_f64(),
        end_to_end_rate: jobs as f64 / done.as_secs_f64(),
        cpu_us_per_job: cpu * 1000.0 / jobs as f64,
        idle_rss,
        peak_rss: peak_rss.max(hwm),
    };
    println!(
        "{workers} workers: enqueued {jobs} in {:.2} s, all done in {:.2} s",
        enqueued.as_secs_f64(),
        done.as_secs_f64()
    );
    run
}

/// The daemon's CPU time so far (all threads, user + system), in ms.
fn cpu_ms(pid: u32) -> f64 {
    support::cpu_ticks(pid) as f64 * 1000.0 / postgres::clock_ticks()
}

/// One run's (jobs/s, daemon CPU µs per job).
type Sample = (f64, f64);

/// End-to-end runs at 5 workers with the history on and off, alternated
/// (on, off, on, off, ...): (on runs, off runs).
fn history_cost(jobs: usize) -> (Vec<Sample>, Vec<Sample>) {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..HISTORY_ROUNDS {
        for (history, runs) in [("on", &mut on), ("off", &mut off)] {
            let run = end_to_end(jobs, "5", &[("JOB_HISTORY", history)]);
            println!(
                "history {history}, round {}: {:.0} jobs/s, {:.1} µs CPU per job",
                round + 1,
                run.end_to_end_rate,
                run.cpu_us_per_job
            );
            runs.push((run.end_to_end_rate, run.cpu_us_per_job));
        }
    }
    (on, off)
}

fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn min(rates: &[f64]) -> f64 {
    rates.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(rates: &[f64]) -> f64 {
    rates.iter().copied().fold(0.0, f64::max)
}

/// The same load on a daemon built in-process through the library (the
/// default 5 workers, `noop` among its built-in handlers, no log
/// subscriber): (enqueue rate, end-to-end rate).
fn end_to_end_in_process(jobs: usize) -> (f64, f64) {
    let temp = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let config = Config::for_dir(temp.path());
    let socket = config.socket_path.clone();
    let daemon = runtime
        .block_on(LibDaemon::builder(config).start())
        .expect("start the library daemon");
    let mut client = Client::connect(&socket).expect("connect");
    let (enqueued, done) = drive(std::slice::from_mut(&mut client), jobs, || {});
    runtime.block_on(daemon.stop());
    println!(
        "in-process: enqueued {jobs} in {:.2} s, all done in {:.2} s",
        enqueued.as_secs_f64(),
        done.as_secs_f64()
    );
    (
        jobs as f64 / enqueued.as_secs_f64(),
        jobs as f64 / done.as_secs_f64(),
    )
}

/// Enqueues `jobs` noop jobs in batches of [`BATCH`], each batch on the
/// next of `clients` in turn (daemons sharing a database), then polls
/// `status` on the first every 10 ms until none is pending, scheduled or
/// running; calls `sample` after each request. Returns the time to the
/// last answered enqueue and to the empty queue.
fn drive(clients: &mut [Client], jobs: usize, mut sample: impl FnMut()) -> (Duration, Duration) {
    let started = Instant::now();
    let mut sent = 0;
    let mut turn = 0;
    while sent < jobs {
        let client = &mut clients[turn % clients.len()];
        turn += 1;
        let n = BATCH.min(jobs - sent);
        let batch: Vec<Value> = (sent..sent + n)
            .map(
                |i| json!({"name": format!("b{i}"), "payload": {"type": "noop", "data": {"i": i}}}),
            )
            .collect();
        let answer = client.request(json!({"cmd": "enqueue", "jobs": batch}));
        assert_eq!(answer["ok"], true, "{answer}");
        sent += n;
        sample();
    }
    let enqueued = started.elapsed();
    let client = &mut clients[0];
    loop {
        let status = client.request(json!({"cmd": "status"}));
        let q = &status["queue"];
        let left: u64 = ["pending", "scheduled", "running"]
            .iter()
            .map(|k| q[k].as_u64().expect("a count"))
            .sum();
        sample();
        if left == 0 {
            assert_eq!(q["dead"], 0, "{status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (enqueued, started.elapsed())
}

/// Sends the instant it starts, so the bench sees when a job began.
struct Stamp(mpsc::SyncSender<Instant>);

#[async_trait::async_trait]
impl Handler for Stamp {
    fn job_type(&self) -> &str {
        "stamp"
    }
    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        let _ = self.0.try_send(Instant::now());
        Ok(())
    }
}

/// p50/p99 of (request → answer, request → handler start).
fn latency() -> ((Duration, Duration), (Duration, Duration)) {
    let temp = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (tx, rx) = mpsc::sync_channel(16);
    let config = Config::for_dir(temp.path());
    let socket = config.socket_path.clone();
    let daemon = runtime
        .block_on(LibDaemon::builder(config).handler(Stamp(tx)).start())
        .expect("start the library daemon");
    let mut client = Client::connect(&socket).expect("connect");
    let (mut acks, mut starts) = (Vec::new(), Vec::new());
    for i in 0..LATENCY_JOBS + 20 {
        std::thread::sleep(Duration::from_millis(3));
        let request = json!({"cmd": "enqueue", "name": format!("l{i}"), "payload": {"type": "stamp", "data": {}}});
        let line = format!("{request}\n");
        let sent = Instant::now();
        client.send_raw(line.as_bytes());
        let answer = client.read_line().expect("an answer");
        let acked = sent.elapsed();
        assert_eq!(answer["ok"], true, "{answer}");
        let began = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the job started");
        // The first few warm the caches and the connection pool.
        if i >= 20 {
            acks.push(acked);
            starts.push(began.saturating_duration_since(sent));
        }
    }
    runtime.block_on(daemon.stop());
    (
        (percentile(&mut acks, 50.0), percentile(&mut acks, 99.0)),
        (percentile(&mut starts, 50.0), percentile(&mut starts, 99.0)),
    )
}

/// The insert, claim-50, delete cycle with plain rusqlite on cronq's schema,
/// in one thread: jobs/s for `jobs` jobs.
fn bare_ceiling(jobs: usize) -> f64 {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("ceiling.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    // The store applies cronq's migrations; then it steps aside.
    let store = Store::sqlite(&path, JobDefaults::default()).expect("open");
    runtime.block_on(store.close());
    drop(store);
    let mut conn = Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    let started = Instant::now();
    ceiling_inserts(&mut conn, jobs, temp.path());
    let mut done = 0;
    loop {
        let now = SystemClock.now_ms();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        let claimed: Vec<(String, i64)> = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE queues SET status = 'running', attempts = attempts + 1,
                            reserved_at = ?1, reserved_by = 'bare', updated = ?1
                      WHERE rowid IN (SELECT rowid FROM queues INDEXED BY queues_ready
                             WHERE status = 'pending' AND priority = 0 AND type = 'noop'
                               AND run_at <= ?1
                             ORDER BY run_at LIMIT ?2)
                  RETURNING id, attempts",
                )
                .expect("claim");
            stmt.query_map(params![now, CEILING_CLAIM as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("claim")
            .collect::<Result<_, _>>()
            .expect("claimed rows")
        };
        tx.commit().expect("commit");
        if claimed.is_empty() {
            break;
        }
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx
                .prepare_cached(
                    "DELETE FROM queues
                      WHERE id = ?1 AND attempts = ?2 AND reserved_by = 'bare' AND status = 'running'",
                )
                .expect("delete");
            for (id, attempts) in &claimed {
                assert_eq!(stmt.execute(params![id, attempts]).expect("delete"), 1);
            }
        }
        tx.commit().expect("commit");
        done += claimed.len();
    }
    assert_eq!(done, jobs);
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    println!(
        "ceiling: {jobs} jobs inserted, claimed and deleted in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    rate
}

fn ceiling_inserts(conn: &mut Connection, jobs: usize, _dir: &Path) {
    let mut sent = 0;
    while sent < jobs {
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("sync");
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO queues (id, name, payload, max_attempts, timeout, run_at, created, updated)
                     VALUES (?1, ?2, ?3, 4, 30, ?4, ?4, ?4)",
                )
                .expect("insert");
            let now = SystemClock.now_ms();
            for i in sent..(sent + BATCH).min(jobs) {
                let payload = json!({"type": "noop", "data": {"i": i}, "options": {"retry_count": 3, "timeout": 30}});
                stmt.execute(params![
                    format!("{i:015}"),
                    format!("b{i}"),
                    payload.to_string(),
                    now
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
        conn.pragma_update(None, "synchronous", "NORMAL")
            .expect("sync");
        sent = (sent + BATCH).min(jobs);
    }
}
