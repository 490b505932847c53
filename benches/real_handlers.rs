//! Throughput with the real handlers doing real work, through the real
//! release binary and its socket.
//!
//! `CRONQ_TEST_PYTHON=/path/to/venv/bin/python cargo bench --bench real_handlers`
//! (a venv with aiosmtpd, as for the email tests) runs:
//!
//! 1. **Email**: a local aiosmtpd server (tests/support/smtp_server.py, which
//!    stores every message as a file); 10,000 `email` jobs enqueued in
//!    batches of 1,000 against it with SMTP_TLS=none. Reported: messages the
//!    server received (must be 10,000, none dead), and messages/s from the
//!    first enqueue to the last completion.
//! 2. **Data exports**: a table of 10,000 rows imported into
//!    DATA_DIR/data.db by a `data_processing` import job, then 100 export
//!    jobs enqueued at once (CSV, JSON lines and JSON in turn) with
//!    JOB_MAX_WORKERS=100 so all run concurrently. Reported: files present
//!    and complete (must be 100), and the time for all of them.
//!
//! `REAL_EMAILS=1000` makes a quick run. Without a Python that can import
//! aiosmtpd the email part says so and is skipped.

mod support;

#[path = "../tests/support/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::daemon::Daemon;
use support::{rss_mb, verdict};

const DEFAULT_EMAILS: usize = 10_000;
const BATCH: usize = 1_000;
const EXPORTS: usize = 100;
const TABLE_ROWS: usize = 10_000;

fn main() {
    let emails = std::env::var("REAL_EMAILS")
        .ok()
        .map(|v| v.parse().expect("REAL_EMAILS: a whole number"))
        .unwrap_or(DEFAULT_EMAILS);
    let mut table: Vec<(String, String, String)> = Vec::new();
    match smtp::SmtpServer::start(&[]) {
        None => smtp::skip("the email throughput bench"),
        Some(server) => email(&server, emails, &mut table),
    }
    exports(&mut table);
    println!("\n| measure | figure | check |\n|---|---|---|");
    for (what, figure, check) in &table {
        println!("| {what} | {figure} | {check} |");
    }
}

fn email(server: &smtp::SmtpServer, emails: usize, table: &mut Vec<(String, String, String)>) {
    let port = server.port.to_string();
    let d = Daemon::start(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "none"),
        ("MAIL_FROM", "Cronq Bench <bench@example.com>"),
    ]);
    let started = Instant::now();
    let mut client = d.client();
    let mut sent = 0;
    while sent < emails {
        let n = BATCH.min(emails - sent);
        let batch: Vec<Value> = (sent..sent + n)
            .map(|i| {
                json!({"name": format!("mail {i}"), "payload": {"type": "email", "data": {
                    "to": format!("user{i}@example.com"),
                    "subject": format!("Bench message {i}"),
                    "text": "Hello from the cronq throughput bench.\n"
                }}})
            })
            .collect();
        let answer = client.request(json!({"cmd": "enqueue", "jobs": batch}));
        assert_eq!(answer["ok"], true, "{answer}");
        sent += n;
    }
    let status = wait_empty(&d, Duration::from_secs(1800));
    let took = started.elapsed();
    let rss = rss_mb(d.pid() as u32);
    let received = server.messages().len();
    let dead = status["queue"]["dead"].as_u64().unwrap_or(u64::MAX);
    println!(
        "email: {emails} jobs done in {:.1} s; server received {received}, {} connections; dead {dead}",
        took.as_secs_f64(),
        server.connections()
    );
    table.push((
        format!("email: {emails} jobs to a local aiosmtpd, 5 workers"),
        format!("{:.0} messages/s", emails as f64 / took.as_secs_f64()),
        format!(
            "received {received} of {emails}, dead {dead}: {}",
            verdict(received == emails && dead == 0)
        ),
    ));
    table.push((
        "email: RSS once the queue is empty".into(),
        format!("{rss:.1} MB"),
        String::new(),
    ));
}

fn exports(table: &mut Vec<(String, String, String)>) {
    let workers = EXPORTS.to_string();
    let d = Daemon::start(&[("JOB_MAX_WORKERS", &workers)]);
    let data = d.dir.join("cronq-data/data");
    std::fs::create_dir_all(data.join("in")).expect("DATA_DIR/in");
    let mut source = String::new();
    for i in 0..TABLE_ROWS {
        source.push_str(
            &json!({"id": i, "name": format!("person {i}"), "score": i as f64 / 7.0, "active": i % 2 == 0})
                .to_string(),
        );
        source.push('\n');
    }
    std::fs::write(data.join("in/people.jsonl"), source).expect("write the source");
    let import = d.ok(
        json!({"cmd": "enqueue", "name": "import", "payload": {"type": "data_processing", "data": {
            "operation": "import", "source": "file:in/people.jsonl", "target": "table:people"
        }}}),
    );
    let status = wait_empty(&d, Duration::from_secs(120));
    assert_eq!(
        status["queue"]["dead"],
        0,
        "import failed: {import}\n{}",
        d.log()
    );

    let formats = ["csv", "jsonl", "json"];
    let started = Instant::now();
    let batch: Vec<Value> = (0..EXPORTS)
        .map(|i| {
            json!({"name": format!("export {i}"), "payload": {"type": "data_processing", "data": {
                "operation": "export", "source": "table:people",
                "target": format!("file:exports/people-{i}.{}", formats[i % 3])
            }}})
        })
        .collect();
    d.ok(json!({"cmd": "enqueue", "jobs": batch}));
    let status = wait_empty(&d, Duration::from_secs(600));
    let took = started.elapsed();
    let rss = rss_mb(d.pid() as u32);
    let complete = (0..EXPORTS)
        .filter(|i| export_complete(&data, *i, formats[i % 3]))
        .count();
    let dead = status["queue"]["dead"].as_u64().unwrap_or(u64::MAX);
    println!(
        "exports: {EXPORTS} of {TABLE_ROWS} rows in {:.2} s; {complete} complete; dead {dead}",
        took.as_secs_f64()
    );
    table.push((
        format!("data: {EXPORTS} concurrent exports of {TABLE_ROWS} rows, {EXPORTS} workers"),
        format!(
            "{:.2} s ({:.0} rows/s)",
            took.as_secs_f64(),
            (EXPORTS * TABLE_ROWS) as f64 / took.as_secs_f64()
        ),
        format!(
            "{complete} of {EXPORTS} files complete, dead {dead}: {}",
            verdict(complete == EXPORTS && dead == 0)
        ),
    ));
    table.push((
        "data: RSS after the exports".into(),
        format!("{rss:.1} MB"),
        String::new(),
    ));
}

/// Whether export `i` exists with every row: a line per row (plus a header
/// for CSV), or a JSON array of them.
fn export_complete(data: &Path, i: usize, format: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(data.join(format!("exports/people-{i}.{format}")))
    else {
        return false;
    };
    match format {
        "csv" => text.lines().count() == TABLE_ROWS + 1,
        "jsonl" => text.lines().count() == TABLE_ROWS,
        _ => {
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                == Some(TABLE_ROWS)
        }
    }
}

/// Polls `status` until nothing is pending, scheduled or running.
fn wait_empty(d: &Daemon, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = d.ok(json!({"cmd": "status"}));
        let q = &status["queue"];
        let left: u64 = ["pending", "scheduled", "running"]
            .iter()
            .map(|k| q[k].as_u64().unwrap_or(0))
            .sum();
        if left == 0 {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not empty: {status}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
