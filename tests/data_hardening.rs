//! `data_processing` against what a hostile or careless user sends (issue
//! 12): names that would trap DATA_DIR, a data.db linked to another
//! database, unbounded disk and memory, CSV that silently loses rows or
//! carries formulas, integers that would be rounded, world-readable files,
//! and the daemon's start-up checks. Through the handler's public API on
//! real files, and through the real daemon and its socket.
//! (tests/data_processing.rs tests the operations themselves.)

#[path = "support/daemon.rs"]
mod daemon;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cronq::handlers::data::{DataLimits, DataProcessing};
use cronq::store::data as store;
use cronq::{Handler, JobContext, JobError};
use daemon::Daemon;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn context(id: &str, data: Value) -> JobContext {
    JobContext {
        id: id.to_string(),
        name: "test".to_string(),
        job_type: "data_processing".to_string(),
        data,
        attempt: 1,
        max_attempts: 4,
        timeout: Duration::from_secs(30),
        cron_id: None,
        shutdown: CancellationToken::new(),
        limits: Default::default(),
        cancel: CancellationToken::new(),
        reporter: Default::default(),
        result: Default::default(),
    }
}

/// Checks the payload as an enqueue would, then runs it.
async fn run_with(handler: &DataProcessing, id: &str, data: Value) -> Result<(), JobError> {
    handler.validate(&data).map_err(JobError::Permanent)?;
    handler.run(context(id, data)).await
}

async fn run(dir: &Path, id: &str, data: Value) -> Result<(), JobError> {
    run_with(&DataProcessing::new(dir), id, data).await
}

fn op(operation: &str, source: &str, target: &str, options: Value) -> Value {
    json!({"operation": operation, "source": source, "target": target, "options": options})
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn rows(dir: &Path, table: &str) -> Option<Vec<Vec<Value>>> {
    let conn = store::open(&dir.join("data.db")).unwrap();
    let mut cursor = store::select_all(&conn, table).unwrap()?;
    let mut rows = Vec::new();
    cursor
        .for_each(|row| {
            rows.push(row);
            true
        })
        .unwrap();
    Some(rows)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir` whose name ends in `.tmp`.
fn temp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            found.extend(temp_files(&entry.path()));
        } else if name.ends_with(".tmp") {
            found.push(name);
        }
    }
    found
}

// ----- Item 6: CSV that would lose rows, or carry formulas. -----

#[tokio::test]
async fn an_unterminated_quote_fails_the_import_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    // The issue's file: `printf 'id,name\n1,"abc\n2,def\n3,ghi\n'`.
    write(dir.path(), "in.csv", "id,name\n1,\"abc\n2,def\n3,ghi\n");
    let err = run(
        dir.path(),
        "1",
        op("import", "file:in.csv", "table:t", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        JobError::Permanent(
            "source: line 2: a quoted field opens here and is never closed: the file ends inside it"
                .into()
        )
    );
    assert!(rows(dir.path(), "t").is_none(), "rows were imported");
}

#[tokio::test]
async fn csv_exports_escape_formulas_but_not_numbers_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.jsonl",
        concat!(
            r#"{"=cmd": "=HYPERLINK(\"http://x\")", "n": -5, "s": "-5", "t": "@SUM(A1)", "u": "-2+3"}"#,
            "\n",
            r#"{"=cmd": "+1", "n": 1.5, "s": "-1e3", "t": "\tx", "u": "safe = yes"}"#,
            "\n"
        ),
    );
    run(
        dir.path(),
        "1",
        op("import", "file:in.jsonl", "table:t", json!({})),
    )
    .await
    .unwrap();
    run(
        dir.path(),
        "2",
        op("export", "table:t", "file:out.csv", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("out.csv")).unwrap(),
        "'=cmd,n,s,t,u\n\"'=HYPERLINK(\"\"http://x\"\")\",-5,-5,'@SUM(A1),'-2+3\n+1,1.5,-1e3,'\tx,safe = yes\n"
    );
    run(
        dir.path(),
        "3",
        op(
            "export",
            "table:t",
            "file:raw.csv",
            json!({"csv_formula_escape": false}),
        ),
    )
    .await
    .unwrap();
    assert!(
        fs::read_to_string(dir.path().join("raw.csv"))
            .unwrap()
            .starts_with("=cmd,n,s,t,u\n\"=HYPERLINK(")
    );
    // JSON is not for spreadsheets: never escaped.
    run(
        dir.path(),
        "4",
        op("export", "table:t", "file:out.jsonl", json!({})),
    )
    .await
    .unwrap();
    assert!(
        fs::read_to_string(dir.path().join("out.jsonl"))
            .unwrap()
            .starts_with(r#"{"=cmd":"=HYPERLINK"#)
    );
}

// ----- Item 16: integers beyond 64 bits. -----

#[tokio::test]
async fn integers_beyond_64_bits_are_refused_not_rounded() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.json",
        r#"[{"id": 1, "big": 9223372036854775807}, {"id": 2, "big": 12345678901234567890123}]"#,
    );
    let err = run(
        dir.path(),
        "1",
        op("import", "file:in.json", "table:t", json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(
        err.message(),
        "source: element 2, column \"big\": the integer 12345678901234567890123 does not fit in \
         64 bits and would be rounded; write it as a string (\"12345678901234567890123\") to keep it exact"
    );
    assert!(rows(dir.path(), "t").is_none());

    // Quoted, it is kept exactly; i64's extremes are numbers still.
    write(
        dir.path(),
        "in.jsonl",
        "{\"big\": \"12345678901234567890123\"}\n{\"big\": -9223372036854775808}\n",
    );
    run(
        dir.path(),
        "2",
        op("import", "file:in.jsonl", "table:ok", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(
        rows(dir.path(), "ok").unwrap(),
        vec![
            vec![json!("12345678901234567890123")],
            vec![json!(i64::MIN)]
        ]
    );
    // CSV fields are text, so a long number in a CSV is kept as written.
    write(dir.path(), "in.csv", "big\n12345678901234567890123\n");
    run(
        dir.path(),
        "3",
        op("import", "file:in.csv", "table:c", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(
        rows(dir.path(), "c").unwrap(),
        vec![vec![json!("12345678901234567890123")]]
    );
}

// ----- Items 4 (a) and 16: names refused at enqueue. -----

#[test]
fn names_that_trap_data_dir_are_refused_by_validate() {
    let handler = DataProcessing::new("/nonexistent");
    let refused = |data: Value| handler.validate(&data).unwrap_err();
    for dir in ["data.db", "data.db-wal", "data.db-shm", "data.db-journal"] {
        let err = refused(op(
            "export",
            "table:t",
            &format!("file:{dir}/x.csv"),
            json!({}),
        ));
        assert!(
            err.starts_with(&format!(
                "target: {dir:?} at the top of DATA_DIR belongs to the data database"
            )),
            "{err}"
        );
    }
    let err = refused(op("import", "file:data.db-wal/x.csv", "table:t", json!({})));
    assert!(err.starts_with("source: \"data.db-wal\""), "{err}");
    let err = refused(op("import", "file:in.csv", "table:queues", json!({})));
    assert!(
        err.starts_with(
            "target: table name \"queues\" is reserved: the daemon's own database has a table of that name"
        ),
        "{err}"
    );
    let long = format!("file:{}.csv", "n".repeat(252));
    let err = refused(op("export", "table:t", &long, json!({})));
    assert!(
        err.ends_with("is 256 bytes long; a file or folder name holds at most 255"),
        "{err}"
    );
}

// ----- Item 4 (b): data.db opened without following links. -----

#[tokio::test]
async fn a_data_db_linked_to_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let queue_db = dir.path().join("queue.db");
    rusqlite::Connection::open(&queue_db)
        .unwrap()
        .execute_batch("CREATE TABLE payloads (p TEXT); INSERT INTO payloads VALUES ('secret');")
        .unwrap();
    let data_dir = dir.path().join("data");
    fs::create_dir(&data_dir).unwrap();
    std::os::unix::fs::symlink(&queue_db, data_dir.join("data.db")).unwrap();
    let err = run(
        &data_dir,
        "1",
        op("export", "table:payloads", "file:dump.csv", json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.message().contains("is a symlink"), "{err}");
    assert!(!data_dir.join("dump.csv").exists());

    fs::remove_file(data_dir.join("data.db")).unwrap();
    fs::hard_link(&queue_db, data_dir.join("data.db")).unwrap();
    let err = run(
        &data_dir,
        "2",
        op("export", "table:payloads", "file:dump.csv", json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("2 hard links"), "{err}");
    assert!(!data_dir.join("dump.csv").exists());
}

// ----- Item 4 (c): disk and memory bounds. -----

/// DATA_DIR's usage as the cap counts it: every regular file.
fn usage(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            total += usage(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

fn seed_csv(rows: usize) -> String {
    let mut seed = String::from("id,text\n");
    for i in 0..rows {
        seed.push_str(&format!("{i},some words for row number {i}\n"));
    }
    seed
}

#[tokio::test]
async fn two_transforms_appending_tables_into_each_other_hit_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 2u64 << 20;
    let handler = DataProcessing::with_limits(
        dir.path(),
        DataLimits {
            max_bytes: cap,
            max_groups: 100,
        },
    );
    write(dir.path(), "seed.csv", &seed_csv(1000));
    run_with(
        &handler,
        "seed",
        op("import", "file:seed.csv", "table:a", json!({})),
    )
    .await
    .unwrap();
    let mut failure = None;
    for round in 0..40 {
        let used = usage(dir.path());
        assert!(
            used < 4 * cap,
            "DATA_DIR holds {used} bytes after {round} rounds, far past DATA_MAX_BYTES={cap}, and no job failed"
        );
        let (from, to) = if round % 2 == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        let data = op(
            "transform",
            &format!("table:{from}"),
            &format!("table:{to}"),
            json!({}),
        );
        if let Err(err) = run_with(&handler, &format!("round{round}"), data).await {
            failure = Some(err);
            break;
        }
    }
    let err = failure.expect("40 rounds of doubling never reached the cap");
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.message().starts_with("DATA_DIR is full: ")
            && err.message().contains("DATA_MAX_BYTES=2097152"),
        "{err}"
    );
    // The job that hit the cap was rolled back, so DATA_DIR stays near it.
    assert!(usage(dir.path()) < 2 * cap, "{}", usage(dir.path()));
}

#[tokio::test]
async fn an_export_past_the_cap_stops_midway_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "seed.csv", &seed_csv(20_000));
    run(
        dir.path(),
        "seed",
        op("import", "file:seed.csv", "table:t", json!({})),
    )
    .await
    .unwrap();
    fs::remove_file(dir.path().join("seed.csv")).unwrap();
    // Room for a tenth of the export's ~650 kB.
    let max_bytes = usage(dir.path()) + 65_000;
    let handler = DataProcessing::with_limits(
        dir.path(),
        DataLimits {
            max_bytes,
            max_groups: 100,
        },
    );
    let err = run_with(
        &handler,
        "export",
        op("export", "table:t", "file:exports/t.csv", json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.message()
            .contains(&format!("past DATA_MAX_BYTES={max_bytes}")),
        "{err}"
    );
    assert!(!dir.path().join("exports/t.csv").exists());
    assert!(temp_files(dir.path()).is_empty());
    // Now full: the next job is refused before it writes anything.
    fs::write(dir.path().join("filler"), vec![0u8; 70_000]).unwrap();
    let err = run_with(
        &handler,
        "next",
        op("export", "table:t", "file:small.json", json!({})),
    )
    .await
    .unwrap_err();
    assert!(
        err.message().contains("which reaches DATA_MAX_BYTES"),
        "{err}"
    );
}

#[tokio::test]
async fn an_aggregate_past_data_max_groups_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let handler = DataProcessing::with_limits(
        dir.path(),
        DataLimits {
            max_bytes: 1 << 30,
            max_groups: 10,
        },
    );
    write(dir.path(), "in.csv", &seed_csv(11));
    let data = |rows: &str| {
        op(
            "aggregate",
            &format!("file:{rows}"),
            "file:out.csv",
            json!({"group_by": ["id"], "metrics": [{"op": "count"}]}),
        )
    };
    let err = run_with(&handler, "1", data("in.csv")).await.unwrap_err();
    assert_eq!(
        err,
        JobError::Permanent(
            "source: row 11: options.group_by makes more than 10 groups (DATA_MAX_GROUPS); \
             group by fewer fields, or raise DATA_MAX_GROUPS"
                .into()
        )
    );
    assert!(!dir.path().join("out.csv").exists());
    write(dir.path(), "ten.csv", &seed_csv(10));
    run_with(&handler, "2", data("ten.csv")).await.unwrap();
}

// ----- Item 16: files are not world-readable. -----

#[tokio::test]
async fn outputs_and_the_data_database_are_not_world_readable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.csv", "a\n1\n");
    run(
        dir.path(),
        "1",
        op("import", "file:in.csv", "table:t", json!({})),
    )
    .await
    .unwrap();
    run(
        dir.path(),
        "2",
        op("export", "table:t", "file:new/deeper/t.csv", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(mode(&dir.path().join("data.db")), 0o600);
    assert_eq!(mode(&dir.path().join("new/deeper/t.csv")), 0o640);
    assert_eq!(mode(&dir.path().join("new")), 0o750);
    assert_eq!(mode(&dir.path().join("new/deeper")), 0o750);
}

// ----- Through the real daemon. -----

/// Runs `cronq daemon` in `dir` expecting it to refuse to start; returns
/// its stderr.
fn refused_start(dir: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(daemon::BIN)
        .arg("daemon")
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("cronq started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{status}: {stderr}");
    stderr
}

#[test]
fn the_daemon_refuses_a_database_inside_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_start(
        dir.path(),
        &[
            ("CRONQ_DB", "cronq-data/data/cronq.db"),
            ("CRONQ_SOCKET", "s.sock"),
        ],
    );
    assert!(
        stderr.contains(
            "CRONQ_DB=\"cronq-data/data/cronq.db\" lies inside DATA_DIR=\"cronq-data/data\""
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("cronq-data/data/cronq.db").exists());
    // DATA_DIR the state folder itself, holding the database.
    let stderr = refused_start(
        dir.path(),
        &[("DATA_DIR", "cronq-data"), ("CRONQ_SOCKET", "s.sock")],
    );
    assert!(
        stderr.contains("lies inside DATA_DIR=\"cronq-data\""),
        "{stderr}"
    );
    assert!(!dir.path().join("cronq-data/cronq.db").exists());
}

#[test]
fn names_that_trap_data_dir_are_bad_requests_on_the_socket() {
    let d = Daemon::start(&[]);
    for (data, field) in [
        (
            op("import", "file:in.csv", "table:queues", json!({})),
            "target: table name \"queues\" is reserved",
        ),
        (
            op("export", "table:t", "file:data.db-wal/x.csv", json!({})),
            "target: \"data.db-wal\" at the top of DATA_DIR",
        ),
        (
            op(
                "export",
                "table:t",
                &format!("file:{}.json", "x".repeat(300)),
                json!({}),
            ),
            "target: the name",
        ),
        (
            op(
                "export",
                "table:t",
                "file:x.csv",
                json!({"csv_formula_escape": "no"}),
            ),
            "options.csv_formula_escape: expected true or false",
        ),
    ] {
        let a = d.request(json!({"cmd": "enqueue", "name": "x",
            "payload": {"type": "data_processing", "data": data}}));
        assert_eq!(a["error"]["code"], "bad_request", "{a}");
        let message = a["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
    }
    assert!(!d.dir.join("cronq-data/data/data.db-wal").is_dir());
}

/// Waits until job `id` is gone (done) or dead; returns the dead job.
fn settle(d: &Daemon, id: &str) -> Option<Value> {
    d.until(
        Duration::from_secs(60),
        "the data job to end",
        |d| match d.job(id) {
            None => Some(None),
            Some(job) if job["status"] == "dead" => Some(Some(job)),
            Some(_) => None,
        },
    )
}

#[test]
fn data_max_bytes_stops_transforms_feeding_each_other_through_the_daemon() {
    let d = Daemon::start(&[("DATA_MAX_BYTES", "1M")]);
    let data_dir = d.dir.join("cronq-data/data");
    write(&data_dir, "seed.csv", &seed_csv(1000));
    let seed = d.enqueue(
        "data_processing",
        op("import", "file:seed.csv", "table:a", json!({})),
    );
    assert!(settle(&d, &seed).is_none(), "the seed import failed");
    let mut dead = None;
    for round in 0..40 {
        let used = usage(&data_dir);
        assert!(
            used < 4 << 20,
            "DATA_DIR holds {used} bytes after {round} rounds with DATA_MAX_BYTES=1M"
        );
        let (from, to) = if round % 2 == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        let id = d.enqueue(
            "data_processing",
            op(
                "transform",
                &format!("table:{from}"),
                &format!("table:{to}"),
                json!({}),
            ),
        );
        if let Some(job) = settle(&d, &id) {
            dead = Some(job);
            break;
        }
    }
    let job = dead.expect("40 rounds of doubling never reached DATA_MAX_BYTES");
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("DATA_DIR is full") && error.contains("DATA_MAX_BYTES=1048576"),
        "{job}"
    );
    // Permanent: dead after its first attempt.
    assert_eq!(job["attempts"], 1, "{job}");
}

#[test]
fn start_up_sweeps_the_temporary_files_of_a_job_killed_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cronq-data/data");
    let mut big = String::from("n,text\n");
    for i in 0..1_500_000 {
        big.push_str(&format!("{i},row number {i}\n"));
    }
    write(&data_dir, "big.csv", &big);
    // User files, some named much like temporary files, none of them ours.
    for rel in [
        "exports/users.csv",
        "exports/.users.csv.tmp",
        "notes.tmp",
        "exports/.x.csv.1-0123456789abcdef.tmp",
    ] {
        write(&data_dir, rel, "mine");
    }
    let mut d = Daemon::on_dir(dir.path(), &[]);
    // No retry: the restarted daemon buries the job instead of running it
    // again, which would make a temporary file of its own.
    d.ok(json!({"cmd": "enqueue", "name": "big", "payload": {
        "type": "data_processing",
        "data": op("transform", "file:big.csv", "file:out/big.jsonl", json!({})),
        "options": {"retry_count": 0}}}));
    let out = data_dir.join("out");
    d.until(
        Duration::from_secs(60),
        "a temporary file to appear",
        |_| {
            fs::read_dir(&out)
                .ok()?
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .then_some(())
        },
    );
    d.kill();
    let left = temp_files(&out);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!out.join("big.jsonl").exists());

    d.spawn();
    assert!(
        temp_files(&out).is_empty(),
        "{:?}\n{}",
        temp_files(&out),
        d.log()
    );
    assert!(
        d.log()
            .contains("deleted 1 temporary files that data jobs killed mid-write left in DATA_DIR"),
        "{}",
        d.log()
    );
    for rel in [
        "exports/users.csv",
        "exports/.users.csv.tmp",
        "notes.tmp",
        "exports/.x.csv.1-0123456789abcdef.tmp",
    ] {
        assert_eq!(
            fs::read_to_string(data_dir.join(rel)).unwrap(),
            "mine",
            "{rel}"
        );
    }
}

#[test]
fn files_are_created_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(daemon::BIN);
    command
        .arg("daemon")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.path().join("daemon.log")).unwrap());
    // SAFETY: umask is async-signal-safe; nothing else runs in the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::umask(0);
            Ok(())
        });
    }
    let d = Daemon::adopt(dir.path(), command.spawn().unwrap());
    d.until(Duration::from_secs(20), "the daemon to answer", |d| {
        let mut c = d.try_client().ok()?;
        (c.request(json!({"cmd": "ping"}))["ok"] == true).then_some(())
    });
    let data_dir = dir.path().join("cronq-data/data");
    write(&data_dir, "in.csv", "a\n1\n");
    for data in [
        op("import", "file:in.csv", "table:t", json!({})),
        op("export", "table:t", "file:exports/day/t.csv", json!({})),
    ] {
        let id = d.enqueue("data_processing", data);
        assert!(settle(&d, &id).is_none(), "{}", d.log());
    }
    assert_eq!(mode(&data_dir.join("data.db")), 0o600);
    assert_eq!(mode(&data_dir.join("exports/day/t.csv")), 0o640);
    assert_eq!(mode(&data_dir.join("exports")), 0o750);
    assert_eq!(mode(&data_dir.join("exports/day")), 0o750);
}
