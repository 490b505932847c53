//! Progress of a real 1,000,000-row export, end to end: the
//! `data_processing` handler reports the rows it has read as it streams;
//! `job` shows them while it runs and `watch` gets `progress` events, at
//! most one a second, counting up.

#[path = "support/daemon.rs"]
mod daemon;

use std::time::Duration;

use daemon::Daemon;
use serde_json::json;

const ROWS: u64 = 1_000_000;

#[test]
fn a_million_row_export_reports_its_progress_to_job_and_watch() {
    let d = Daemon::start(&[]);
    let data_dir = d.dir.join("cronq-data/data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let db = rusqlite::Connection::open(data_dir.join("data.db")).unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE big (id INTEGER, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
         INSERT INTO big SELECT i, 'row number ' || i FROM n;"
    ))
    .unwrap();
    drop(db);

    let mut watch = d.client();
    let a = watch.request(json!({"cmd": "watch", "types": ["data_processing"],
                                 "events": ["progress", "succeeded", "dead"]}));
    assert_eq!(a["watching"], true, "{a}");
    let id = d.enqueue(
        "data_processing",
        json!({"operation": "export", "source": "table:big", "target": "file:exports/big.csv"}),
    );

    // `job` shows the progress while the job runs.
    let shown = d.until(Duration::from_secs(120), "progress in `job`", |d| {
        let job = d.job(&id).expect("still running");
        job.get("progress").cloned()
    });
    let done = shown["done"].as_u64().unwrap();
    assert!(done > 0 && done <= ROWS, "{shown}");
    assert_eq!(shown["total"], serde_json::Value::Null);
    assert_eq!(shown["message"], "rows read");
    assert!(shown["at"].is_string(), "{shown}");
    // And so does `jobs`, for its running jobs.
    let listed = d.ok(json!({"cmd": "jobs", "status": "running"}));
    let row = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .cloned();
    let row = row.expect("the export still runs");
    assert!(row["progress"]["done"].as_u64().unwrap() >= done, "{row}");

    // `watch` gets the reports, counting up, then the end.
    let mut reports = Vec::new();
    loop {
        let e = watch.read_line().expect("the stream stays open");
        assert_eq!(e["job"]["id"], id.as_str(), "{e}");
        match e["event"].as_str().unwrap() {
            "progress" => reports.push(e["progress"]["done"].as_u64().unwrap()),
            "succeeded" => break,
            other => panic!("{other}: {e}"),
        }
    }
    assert!(!reports.is_empty(), "no progress event");
    assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
    assert!(
        reports.iter().all(|n| *n <= ROWS && n % 4096 == 0),
        "{reports:?}"
    );
    let out = std::fs::read_to_string(data_dir.join("exports/big.csv")).unwrap();
    assert_eq!(
        out.lines().count() as u64,
        ROWS + 1,
        "a header and every row"
    );
}
