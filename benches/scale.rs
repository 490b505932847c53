//! The queue at one million jobs: start-up, claim, listing, counts, memory.
//!
//! `cargo bench --bench scale` stores 1,000,000 ready `noop` jobs (and, in a
//! second database, 1,000,000 scheduled ones) through the store's own
//! `enqueue` in batches of 10,000, then measures:
//!
//! - the claim (the store's `claim` of 5, then `release`, 200 times) at
//!   1,000,000 pending against 1,000 pending, and in the two shapes that used
//!   to scan: everything scheduled, and everything of a type this daemon does
//!   not run;
//! - the real release binary on that database: spawn to first `ping`, then
//!   `status`, `stats` and `jobs` with each filter over its socket, and its
//!   RSS (VmRSS) after all of that, and once more with processing on;
//! - `EXPLAIN QUERY PLAN` of the statements start-up and those commands run.
//!
//! `SCALE_JOBS=100000` makes a quick run. Timings are wall clock on an
//! otherwise idle machine; each figure is a median with its worst case.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use cronq::clock::{Clock, SystemClock};
use cronq::queue::job::{NewJob, RunAt};
use cronq::store::{JobDefaults, Store};
use serde_json::{Map, Value, json};
use support::{daemon::Daemon, ms, percentile, rss_mb, start_timed, verdict};

const DEFAULT_JOBS: usize = 1_000_000;
const BATCH: usize = 10_000;
const CLAIMS: usize = 200;
const QUERY_REPEATS: usize = 20;

const STARTUP_TARGET_MS: f64 = 200.0;
const LISTING_TARGET_MS: f64 = 50.0;
const RSS_TARGET_MB: f64 = 60.0;

fn main() {
    let jobs = std::env::var("SCALE_JOBS")
        .ok()
        .map(|v| v.parse().expect("SCALE_JOBS: a whole number"))
        .unwrap_or(DEFAULT_JOBS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let temp = tempfile::tempdir().expect("a temp dir");
    let big = temp.path().join("big");
    let scheduled = temp.path().join("scheduled");
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |what: &str, figure: String, target: &str| {
        println!("{what:<58} {figure:>22}  {target}");
        rows.push((what.to_string(), figure, target.to_string()));
    };
    println!("scale: {jobs} jobs, {} cores", cores());

    // Stores: the big one ready, one scheduled a day ahead, a small one.
    let (fill_rate, claim_big, claim_foreign) = runtime.block_on(async {
        let store = open(&big);
        let started = Instant::now();
        fill(&store, jobs, "noop", RunAt::Now).await;
        let rate = jobs as f64 / started.elapsed().as_secs_f64();
        // A rare type, for the listing filter that finds almost nothing.
        fill(&store, 20, "report", RunAt::Now).await;
        let claim_big = claim_cost(&store, "noop").await;
        let claim_foreign = claim_cost(&store, "email").await;
        store.close().await;
        (rate, claim_big, claim_foreign)
    });
    row(
        "fill: store enqueue, batches of 10,000",
        format!("{fill_rate:.0} jobs/s"),
        "",
    );
    let (claim_small, claim_scheduled, counts_scheduled) = runtime.block_on(async {
        let small = open(&temp.path().join("small"));
        fill(&small, 1000, "noop", RunAt::Now).await;
        let claim_small = claim_cost(&small, "noop").await;
        small.close().await;
        let store = open(&scheduled);
        fill(
            &store,
            jobs,
            "noop",
            RunAt::After(Duration::from_secs(86_400)),
        )
        .await;
        fill(&store, 1, "noop", RunAt::Now).await;
        let claim_scheduled = claim_cost(&store, "noop").await;
        let mut counts = Vec::new();
        for _ in 0..QUERY_REPEATS {
            let t = Instant::now();
            store.counts(SystemClock.now_ms()).await.expect("counts");
            counts.push(t.elapsed());
        }
        store.close().await;
        (claim_small, claim_scheduled, median_max(&mut counts))
    });
    let ratio = ms(claim_big.0) / ms(claim_small.0);
    row(
        "claim 5 at 1,000 pending (median / p99)",
        pair(claim_small),
        "",
    );
    row(
        &format!("claim 5 at {jobs} pending (median / p99)"),
        pair(claim_big),
        &format!("{ratio:.2}x of 1,000: {}", verdict(ratio <= 2.0)),
    );
    row(
        &format!("claim at {jobs} scheduled + 1 ready"),
        pair(claim_scheduled),
        &format!(
            "{:.2}x: {}",
            ms(claim_scheduled.0) / ms(claim_small.0),
            verdict(ms(claim_scheduled.0) <= 2.0 * ms(claim_small.0))
        ),
    );
    row(
        &format!("claim of another type, {jobs} pending noop"),
        pair(claim_foreign),
        &format!(
            "{:.2}x: {}",
            ms(claim_foreign.0) / ms(claim_small.0),
            verdict(ms(claim_foreign.0) <= 2.0 * ms(claim_small.0))
        ),
    );
    row(
        &format!("store counts (status/stats) at {jobs} scheduled"),
        pair(counts_scheduled),
        &format!(
            "< {LISTING_TARGET_MS} ms: {}",
            verdict(ms(counts_scheduled.0) < LISTING_TARGET_MS)
        ),
    );

    print_plans(&big.join("cronq-data/cronq.db"));

    // The real binary on the million, processing off so the rows stay put.
    let off = [("ENABLE_SYSTEM_QUEUE_CRON", "false")];
    let mut startups = Vec::new();
    for _ in 0..3 {
        let (mut d, took) = start_timed(&big, &off);
        startups.push(took);
        d.stop();
    }
    let (mut d, took) = start_timed(&big, &off);
    startups.push(took);
    let startup = median_max(&mut startups);
    row(
        &format!("start-up to first ping, {jobs} ready (median / max of 4)"),
        pair(startup),
        &format!(
            "< {STARTUP_TARGET_MS} ms: {}",
            verdict(ms(startup.1) < STARTUP_TARGET_MS)
        ),
    );
    let rss_start = rss_mb(d.pid() as u32);
    let first: Value = d.ok(json!({"cmd": "jobs", "limit": 1000}));
    let list = first["jobs"].as_array().expect("jobs");
    let since = list[49]["created"].as_str().expect("created").to_string();
    let until = list[list.len() - 1]["created"].as_str().expect("created");
    let oldest_until = {
        // The oldest jobs: everything created before the 50th one stored.
        let early: Value = d.ok(json!({"cmd": "jobs", "until": until, "limit": 1}));
        early["jobs"][0]["created"]
            .as_str()
            .unwrap_or(until)
            .to_string()
    };
    let queries: Vec<(&str, Value)> = vec![
        ("status", json!({"cmd": "status"})),
        ("stats", json!({"cmd": "stats"})),
        ("jobs (no filter, 50)", json!({"cmd": "jobs"})),
        ("jobs type=noop", json!({"cmd": "jobs", "type": "noop"})),
        (
            "jobs type=report (20 of 1M)",
            json!({"cmd": "jobs", "type": "report"}),
        ),
        (
            "jobs type=email (none)",
            json!({"cmd": "jobs", "type": "email"}),
        ),
        (
            "jobs status=pending",
            json!({"cmd": "jobs", "status": "pending"}),
        ),
        (
            "jobs status=scheduled (none)",
            json!({"cmd": "jobs", "status": "scheduled"}),
        ),
        (
            "jobs status=running (none)",
            json!({"cmd": "jobs", "status": "running"}),
        ),
        (
            "jobs status=dead (none)",
            json!({"cmd": "jobs", "status": "dead"}),
        ),
        (
            "jobs since=(50th newest)",
            json!({"cmd": "jobs", "since": since}),
        ),
        (
            "jobs until=(oldest)",
            json!({"cmd": "jobs", "until": oldest_until}),
        ),
        (
            "jobs type=noop status=pending since",
            json!({"cmd": "jobs", "type": "noop", "status": "pending", "since": since}),
        ),
        ("jobs limit=1000", json!({"cmd": "jobs", "limit": 1000})),
    ];
    for (name, request) in &queries {
        let t = time_request(&d, request);
        row(
            &format!("{name} at {jobs}"),
            pair(t),
            &format!(
                "< {LISTING_TARGET_MS} ms: {}",
                verdict(ms(t.1) < LISTING_TARGET_MS)
            ),
        );
    }
    let rss_after = rss_mb(d.pid() as u32);
    d.stop();
    row(
        "RSS after start / after the queries",
        format!("{rss_start:.1} / {rss_after:.1} MB"),
        &format!(
            "< {RSS_TARGET_MB} MB: {}",
            verdict(rss_after < RSS_TARGET_MB)
        ),
    );

    // The scheduled million: what `status` and a listing cost there.
    let (mut d, took) = start_timed(&scheduled, &off);
    row(
        &format!("start-up to first ping, {jobs} scheduled"),
        format!("{:.1} ms", ms(took)),
        &format!(
            "< {STARTUP_TARGET_MS} ms: {}",
            verdict(ms(took) < STARTUP_TARGET_MS)
        ),
    );
    for (name, request) in [
        ("status", json!({"cmd": "status"})),
        ("stats", json!({"cmd": "stats"})),
        (
            "jobs status=pending (1 of 1M)",
            json!({"cmd": "jobs", "status": "pending"}),
        ),
        (
            "jobs status=scheduled",
            json!({"cmd": "jobs", "status": "scheduled"}),
        ),
    ] {
        let t = time_request(&d, &request);
        row(
            &format!("{name} at {jobs} scheduled"),
            pair(t),
            &format!(
                "< {LISTING_TARGET_MS} ms: {}",
                verdict(ms(t.1) < LISTING_TARGET_MS)
            ),
        );
    }
    d.stop();

    // Processing on (the default): start-up and memory while it works.
    let (mut d, took) = start_timed(&big, &[]);
    std::thread::sleep(Duration::from_secs(5));
    let rss_busy = rss_mb(d.pid() as u32);
    let status = d.ok(json!({"cmd": "status"}));
    d.stop();
    row(
        "start-up to first ping, processing on",
        format!("{:.1} ms", ms(took)),
        &format!(
            "< {STARTUP_TARGET_MS} ms: {}",
            verdict(ms(took) < STARTUP_TARGET_MS)
        ),
    );
    row(
        "RSS after 5 s processing the million",
        format!("{rss_busy:.1} MB"),
        &format!(
            "< {RSS_TARGET_MB} MB: {}",
            verdict(rss_busy < RSS_TARGET_MB)
        ),
    );
    println!(
        "  (pending after those 5 s: {})",
        status["queue"]["pending"]
    );

    println!("\n| measure | figure | target |\n|---|---|---|");
    for (what, figure, target) in &rows {
        println!("| {what} | {figure} | {target} |");
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn open(dir: &Path) -> Store {
    Store::sqlite(&dir.join("cronq-data/cronq.db"), JobDefaults::default()).expect("open the store")
}

/// Stores `n` jobs of `job_type` through the store's enqueue.
async fn fill(store: &Store, n: usize, job_type: &str, when: RunAt) {
    let mut left = n;
    let mut i = 0usize;
    while left > 0 {
        let batch: Vec<NewJob> = (0..left.min(BATCH))
            .map(|_| {
                i += 1;
                let mut data = Map::new();
                data.insert("n".into(), i.into());
                let mut job = NewJob::new(format!("bench {i}"), job_type, data);
                job.when = when;
                job
            })
            .collect();
        left -= batch.len();
        store
            .enqueue(batch, SystemClock.now_ms(), u64::MAX)
            .await
            .expect("enqueue");
    }
}

/// The store's claim of up to 5 jobs of `job_type`, each handed back at once
/// so the next claim sees the same queue: median and p99.
async fn claim_cost(store: &Store, job_type: &str) -> (Duration, Duration) {
    let types = vec![job_type.to_string()];
    let mut samples = Vec::with_capacity(CLAIMS);
    for _ in 0..CLAIMS {
        let now = SystemClock.now_ms();
        let t = Instant::now();
        let claimed = store.claim("bench", &types, 5, now).await.expect("claim");
        samples.push(t.elapsed());
        let leases = claimed.into_iter().map(|c| c.lease).collect();
        store.release(leases, now).await.expect("release");
    }
    (
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 99.0),
    )
}

/// One request on a fresh connection, repeated: median and max, in ms.
fn time_request(d: &Daemon, request: &Value) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(QUERY_REPEATS);
    for _ in 0..QUERY_REPEATS {
        let mut client = d.client();
        let t = Instant::now();
        let answer = client.request(request.clone());
        samples.push(t.elapsed());
        assert_eq!(answer["ok"], true, "{request} -> {answer}");
    }
    median_max(&mut samples)
}

fn median_max(samples: &mut [Duration]) -> (Duration, Duration) {
    (percentile(samples, 50.0), percentile(samples, 100.0))
}

fn pair((a, b): (Duration, Duration)) -> String {
    format!("{:.2} / {:.2} ms", ms(a), ms(b))
}

/// The plans of what start-up, the claim and the read commands run. The
/// SQL is copied from src/store/ with literals for parameters: keep in step.
const PLANS: &[(&str, &str)] = &[
    (
        "claim: highest pending priority (jobs.rs pick_ready)",
        "SELECT MAX(priority) FROM queues INDEXED BY queues_ready WHERE status = 'pending'",
    ),
    (
        "claim: next priority down (jobs.rs pick_ready)",
        "SELECT MAX(priority) FROM queues INDEXED BY queues_ready
          WHERE status = 'pending' AND priority < 0",
    ),
    (
        "claim: ready rows of one (priority, type) (jobs.rs pick_ready)",
        "SELECT rowid, run_at FROM queues INDEXED BY queues_ready
          WHERE status = 'pending' AND priority = 0 AND type = 'noop' AND run_at <= 1
          ORDER BY run_at LIMIT 5",
    ),
    (
        "claim: the update (jobs.rs claim)",
        "UPDATE queues SET status = 'running' WHERE rowid IN (SELECT value FROM json_each('[1,2]'))
            AND status = 'pending' RETURNING id",
    ),
    (
        "recover at start-up (jobs.rs)",
        "SELECT id FROM queues WHERE status = 'running'
            AND (reserved_at < 1 OR reserved_by IN (SELECT value FROM json_each('[\"x\"]')))",
    ),
    (
        "next_due (jobs.rs)",
        "SELECT MIN(run_at) FROM queues INDEXED BY queues_due
          WHERE status = 'pending' AND run_at > 1 AND type IN (SELECT value FROM json_each('[\"noop\"]'))",
    ),
    (
        "counts: the scheduled split (jobs.rs)",
        "SELECT type, COUNT(*) FROM queues INDEXED BY queues_due
          WHERE status = 'pending' AND run_at <= 1 GROUP BY type",
    ),
    (
        "counts and listings: few ready or scheduled? (jobs.rs few_due)",
        "SELECT COUNT(*) FROM (SELECT 1 FROM queues INDEXED BY queues_due
          WHERE status = 'pending' AND run_at > 1 LIMIT 10001)",
    ),
    (
        "jobs status=scheduled when few are (jobs.rs list)",
        "SELECT id FROM queues INDEXED BY queues_due WHERE status = 'pending' AND run_at > 1
          ORDER BY created DESC, id DESC LIMIT 51",
    ),
    (
        "queue cap at enqueue (jobs.rs)",
        "SELECT COALESCE(SUM(n), 0) FROM queue_counts WHERE status = 'pending'",
    ),
    (
        "cron overlap check (crons.rs)",
        "SELECT id FROM queues WHERE cron_id = 'x' AND status IN ('pending', 'running') LIMIT 1",
    ),
    (
        "jobs type=T (jobs.rs list)",
        "SELECT id FROM queues WHERE type = 'report' ORDER BY created DESC, id DESC LIMIT 51",
    ),
    (
        "jobs status=running (jobs.rs list)",
        "SELECT id FROM queues WHERE status = 'running' ORDER BY created DESC, id DESC LIMIT 51",
    ),
    (
        "jobs since=T (jobs.rs list)",
        "SELECT id FROM queues WHERE created >= 1 ORDER BY created DESC, id DESC LIMIT 51",
    ),
];

fn print_plans(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("open for EXPLAIN");
    for (what, sql) in PLANS {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("EXPLAIN");
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        println!("plan of {what}:\n    {}", plan.join("\n    "));
    }
}
