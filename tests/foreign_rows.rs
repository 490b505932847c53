//! Rows other programs wrote straight into `queues` (README invites it)
//! with values of the wrong type, against the real binary: a database from
//! before migration 0003 holds one such row per column the daemon reads;
//! `jobs`, `job`, `explain`, `status`, `stats`, `metrics` and the CLI keep
//! answering, each bad row shown with its reason, and a claim (by
//! `system_queue` or the dispatcher) moves it to `dead` with that reason
//! while the good job beside it runs. Once migrated, the database refuses
//! a new bad row with a readable message, from rusqlite and from the
//! sqlite3 shell.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use daemon::Daemon;
use rusqlite::Connection;
use serde_json::{Value, json};

/// The wall clock in milliseconds: the rows are due now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `(id, columns, values, the reason the daemon gives)`: one row per
/// column read, each valid but for that column.
const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "run_at_text",
        "run_at",
        "'abc'",
        "run_at is not a number: 'abc'",
    ),
    (
        "run_at_far",
        "run_at",
        "9223372036854775807",
        "run_at is after the year 9999: 9223372036854775807",
    ),
    (
        "priority_real",
        "priority",
        "1.5",
        "priority is not a whole number: 1.5",
    ),
    (
        "priority_text",
        "priority",
        "'high'",
        "priority is not a number: 'high'",
    ),
    (
        "attempts_blob",
        "attempts",
        "x'01'",
        "attempts is not a number: x'01'",
    ),
    (
        "max_attempts_text",
        "max_attempts",
        "'many'",
        "max_attempts is not a number: 'many'",
    ),
    (
        "timeout_real",
        "timeout",
        "2.5",
        "timeout is not a whole number: 2.5",
    ),
    (
        "created_text",
        "created",
        "'2026-12-01 08:17:33.605Z'",
        "created is not a number: '2026-12-01 08:17:33.605Z'",
    ),
    ("name_blob", "name", "x'6869'", "name is not text: x'6869'"),
    (
        "description_utf8",
        "description",
        "CAST(x'ff' AS TEXT)",
        "description is not valid UTF-8",
    ),
    (
        "unique_key_blob",
        "unique_key",
        "x'00'",
        "unique_key is not text: x'00'",
    ),
    (
        "cron_id_blob",
        "cron_id",
        "x'01'",
        "cron_id is not text: x'01'",
    ),
    (
        "payload_blob",
        "payload",
        "CAST('{\"type\":\"noop\",\"data\":{}}' AS BLOB)",
        "payload is not JSON text",
    ),
];

/// A database at schema version 2 (before the row checks), holding the
/// bad rows, a running row whose reservation is not a number, and one
/// good job.
fn old_database(dir: &Path) -> PathBuf {
    let state = dir.join("cronq-data");
    std::fs::create_dir_all(&state).unwrap();
    let path = state.join("cronq.db");
    let now = now_ms();
    let conn = Connection::open(&path).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY,
             name TEXT NOT NULL, applied INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES (1, '0001_init', 0), (2, '0002_claim_by_type', 0);",
    )
    .unwrap();
    for file in ["0001_init.sql", "0002_claim_by_type.sql"] {
        conn.execute_batch(&std::fs::read_to_string(root.join(file)).unwrap())
            .unwrap();
    }
    for (id, column, value, _) in BAD {
        let mut row = vec![
            ("id", format!("'{id}'")),
            ("name", format!("'{id}'")),
            ("payload", r#"'{"type":"noop","data":{}}'"#.to_string()),
            ("run_at", (now - 1000).to_string()),
            ("created", now.to_string()),
        ];
        match row.iter_mut().find(|(c, _)| c == column) {
            Some(cell) => cell.1 = value.to_string(),
            None => row.push((column, value.to_string())),
        }
        let (columns, values): (Vec<&str>, Vec<&str>) =
            row.iter().map(|(c, v)| (*c, v.as_str())).unzip();
        conn.execute_batch(&format!(
            "INSERT INTO queues ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        ))
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    conn.execute_batch(&format!(
        r#"INSERT INTO queues (id, name, payload, status, reserved_at)
               VALUES ('held_text', 'held_text', '{{"type":"noop","data":{{}}}}', 'running', 'soon');
           INSERT INTO queues (id, name, payload, run_at, created)
               VALUES ('good', 'good', '{{"type":"noop","data":{{}}}}', {at}, {at});"#,
        at = now - 1000
    ))
    .unwrap();
    path
}

fn reasons() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<(&str, &str)> = BAD.iter().map(|(id, _, _, r)| (*id, *r)).collect();
    all.push(("held_text", "reserved_at is not a number: 'soon'"));
    all
}

fn by_id(jobs: &Value) -> std::collections::HashMap<String, Value> {
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap().to_string(), j.clone()))
        .collect()
}

#[test]
fn bad_rows_are_listed_with_their_reason_then_buried_by_system_queue() {
    let temp = tempfile::tempdir().unwrap();
    let db = old_database(temp.path());
    let d = Daemon::on_dir(temp.path(), &[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);

    // Every read keeps answering, and says what is wrong with each row.
    let jobs = by_id(&d.ok(json!({"cmd": "jobs", "limit": 1000}))["jobs"]);
    assert_eq!(jobs.len(), BAD.len() + 2, "{jobs:?}");
    for (id, reason) in reasons() {
        let listed = &jobs[id];
        let error = listed["last_error"].as_str().unwrap_or("");
        assert!(error.starts_with(reason), "{id}: {listed}");
        for key in ["run_at", "created", "updated"] {
            assert!(listed[key].is_string(), "{id}.{key}: {listed}");
        }
        let one = d.ok(json!({"cmd": "job", "id": id}));
        assert_eq!(one["job"]["last_error"], listed["last_error"], "{id}");
        d.ok(json!({"cmd": "explain", "id": id}));
    }
    assert_eq!(jobs["good"]["last_error"], Value::Null);
    for status in ["pending", "scheduled", "running", "dead"] {
        d.ok(json!({"cmd": "jobs", "status": status}));
    }
    d.ok(json!({"cmd": "jobs", "limit": 2}));
    let status = d.ok(json!({"cmd": "status"}));
    assert!(status["queue"]["pending"].is_u64(), "{status}");
    d.ok(json!({"cmd": "stats"}));
    d.ok(json!({"cmd": "metrics"}));
    let cli = Command::new(daemon::BIN)
        .args(["--socket", d.socket.to_str().unwrap(), "jobs"])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // system_queue recovers the running row and claims the rest: the bad
    // ones end dead with their reason, the good one runs.
    let run = d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert_eq!(run["run"]["status"], "ok", "{run}");
    d.until(Duration::from_secs(30), "the good job to run", |d| {
        d.job("good").is_none().then_some(())
    });
    let jobs = by_id(&d.ok(json!({"cmd": "jobs", "limit": 1000}))["jobs"]);
    for (id, reason) in reasons() {
        let job = &jobs[id];
        assert_eq!(job["status"], "dead", "{id}: {job}");
        assert!(
            job["last_error"].as_str().unwrap().starts_with(reason),
            "{id}: {job}"
        );
        let errors = &d.ok(json!({"cmd": "job", "id": id}))["errors"];
        assert!(
            errors[0]["error"].as_str().unwrap().starts_with(reason),
            "{id}: {errors}"
        );
    }
    assert!(d.log().contains("moved to dead"), "{}", d.log());

    // Migrated, the database refuses a new bad row, readably.
    let conn = Connection::open(&db).unwrap();
    let err = conn
        .execute_batch(
            r#"INSERT INTO queues (name, payload, run_at) VALUES ('x', '{"type":"noop"}', 'abc')"#,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("queues.run_at must be whole milliseconds since 1970, up to the year 9999"),
        "{err}"
    );
    if tools::have("sqlite3") {
        // An older SQLite than cronq's reads the same schema.
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(r#"INSERT INTO queues (name, payload, priority) VALUES ('x', '{"type":"noop"}', 'high');"#)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("queues.priority must be a whole number"),
            "{err}"
        );
        // (Times given: the defaults need SQLite 3.42's unixepoch('subsec').)
        let now = now_ms();
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(format!(
                r#"INSERT INTO queues (name, payload, run_at, created, updated)
                   VALUES ('from the shell', '{{"type":"noop"}}', {now}, {now}, {now});"#
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_dispatcher_buries_bad_rows_on_its_own_and_runs_the_good_job() {
    let temp = tempfile::tempdir().unwrap();
    old_database(temp.path());
    let d = Daemon::on_dir(temp.path(), &[]);
    d.until(Duration::from_secs(30), "the good job to run", |d| {
        d.job("good").is_none().then_some(())
    });
    d.until(
        Duration::from_secs(90),
        "every bad pending row to be dead",
        |d| {
            let jobs = by_id(&d.ok(json!({"cmd": "jobs", "limit": 1000}))["jobs"]);
            BAD.iter()
                .all(|(id, _, _, _)| jobs[*id]["status"] == "dead")
                .then_some(())
        },
    );
    let dead = d.ok(json!({"cmd": "jobs", "status": "dead", "limit": 1000}));
    for job in dead["jobs"].as_array().unwrap() {
        assert!(job["last_error"].is_string(), "{job}");
    }
    d.ok(json!({"cmd": "status"}));
    d.ok(json!({"cmd": "stats"}));
}
