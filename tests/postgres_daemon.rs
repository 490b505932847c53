//! Several real daemons on one PostgreSQL database, and what only a
//! database many hosts share can do: a live node on another host keeps its
//! reservations while a silent one loses them; an idle node starts a job
//! another node (or an application's SQL) enqueued, at its commit; a
//! cleanly stopped node hands its jobs back at once; `instances` and
//! `status` show the cluster. Each test gets a fresh database on the test
//! binary's server; without PostgreSQL they skip loudly.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use daemon::{Backend, Daemon};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn instance_id(d: &Daemon) -> String {
    d.ok(json!({"cmd": "status"}))["instance"]
        .as_str()
        .expect("an instance id")
        .to_string()
}

fn instances(d: &Daemon) -> Vec<Value> {
    d.ok(json!({"cmd": "instances"}))["instances"]
        .as_array()
        .expect("a list")
        .clone()
}

/// Waits until the daemon's LISTEN connection is up, as the server sees it.
fn listening(b: &Backend, d: &Daemon) {
    let Backend::Postgres { db, .. } = b else {
        panic!("not PostgreSQL")
    };
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'cronq listen'"
    );
    d.until(WAIT, "the LISTEN connection", |_| {
        (b.psql(&sql) != "0").then_some(())
    });
}

/// Waits until a whole minute is at least `room` away, so that nothing the
/// minute's `system_queue` run does can pass for what the test looks at.
fn clear_of_the_minute(room: Duration) {
    loop {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
        if into > Duration::from_secs(1) && Duration::from_secs(60) - into > room {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ms_of(time: &Value) -> i64 {
    time.as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|| panic!("not a timestamp: {time}"))
}

/// Waits until this minute's `system_queue` drain of `d` is done and the
/// next is at least `room` away; returns when the next one is due (ms since
/// the epoch). A job claimed before then was not claimed by a drain: the
/// last one ran before the job was there. (`disable system_queue` would
/// stop every claim, the dispatcher's too, so the drains stay on.)
fn between_drains(d: &Daemon, room: Duration) -> i64 {
    loop {
        clear_of_the_minute(room);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let minute = now - now % 60_000;
        let runs = d.ok(json!({"cmd": "cron", "id": "system_queue", "limit": 1}))["runs"].clone();
        let run = &runs[0];
        if run.is_object() && ms_of(&run["scheduled_for"]) >= minute && run["status"] != "running" {
            return minute + 60_000;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// When the job's first attempt was claimed, from its history record.
fn started(d: &Daemon, id: &str) -> i64 {
    let record = d.finished(id).expect("a history record");
    assert_eq!(record["status"], "succeeded", "{record}");
    ms_of(&record["started"])
}

#[test]
fn a_live_node_on_another_host_keeps_its_jobs_and_a_silent_one_loses_them() {
    let Some(b) = Backend::postgres() else { return };
    let d = b.start(&[("ENABLE_SYSTEM_QUEUE_CRON", "false")]);
    // Two nodes of other hosts, as their daemons register: one that
    // heartbeated just now, one silent for ten minutes (more than the
    // five-minute reservation timeout). Each holds a job whose reservation
    // it extended a moment ago.
    b.psql(
        "INSERT INTO instances (id, host, boot_id, pid, start_ticks, version, started, heartbeat_at)
         VALUES ('remote000000001', 'node-elsewhere', 'another-boot:pid:[4026531836]', 1, 1,
                 '0.1.0', now() - interval '1 hour', now()),
                ('silent000000001', 'node-gone', 'a-third-boot:pid:[4026531836]', 1, 1,
                 '0.1.0', now() - interval '1 hour', now() - interval '10 minutes');
         INSERT INTO queues (id, name, payload, status, attempts, reserved_at, reserved_by)
         VALUES ('remotejob000001', 'r', '{\"type\": \"noop\"}', 'running', 1, now(), 'remote000000001'),
                ('silentjob000001', 's', '{\"type\": \"noop\"}', 'running', 1, now(), 'silent000000001');",
    );
    // A system_queue run judges every other instance.
    let run = d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert_eq!(run["run"]["processed"], 1, "{run}");
    assert_eq!(
        b.psql("SELECT status || ' ' || reserved_by FROM queues WHERE id = 'remotejob000001'"),
        "running remote000000001",
        "the live remote node keeps its job"
    );
    assert!(
        d.job("silentjob000001").is_none(),
        "the silent node's job was released and run here"
    );
    let ids: Vec<String> = instances(&d)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"remote000000001".to_string()), "{ids:?}");
    assert!(!ids.contains(&"silent000000001".to_string()), "{ids:?}");
    assert!(
        d.log()
            .contains("released a reservation whose holder is gone")
    );
}

#[test]
fn a_job_enqueued_by_sql_runs_if_and_only_if_its_transaction_commits() {
    let Some(b) = Backend::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let d = b.start(&[("JOB_COMMAND_ALLOW", "/bin/touch")]);
    listening(&b, &d);
    let job = |name: &str| {
        json!({"type": "command", "data": {"argv": ["/bin/touch", marker.join(name)]}}).to_string()
    };
    // Rolled back: never stored, never run.
    b.psql(&format!(
        "BEGIN; SELECT cronq_enqueue('rolled back', '{}'); ROLLBACK;",
        job("rolled-back")
    ));
    std::fs::create_dir(&marker).unwrap();
    // Committed, as an application would in its own transaction: the
    // idle daemon starts it at the commit's notification, long before the
    // minute's fallback poll or system_queue run could.
    clear_of_the_minute(Duration::from_secs(10));
    let before = SystemTime::now();
    b.psql(&format!(
        "BEGIN; SELECT cronq_enqueue('committed', '{}'); COMMIT;",
        job("committed")
    ));
    let ran = d.until(Duration::from_secs(5), "the committed job to run", |_| {
        std::fs::metadata(marker.join("committed"))
            .and_then(|m| m.modified())
            .ok()
    });
    let latency = ran.duration_since(before).unwrap_or_default();
    eprintln!("commit to start: at most {} ms", latency.as_millis());
    // A plain INSERT with the defaults is a job too.
    clear_of_the_minute(Duration::from_secs(10));
    b.psql(&format!(
        "INSERT INTO queues (name, payload) VALUES ('inserted', '{}')",
        job("inserted")
    ));
    d.until(Duration::from_secs(5), "the inserted job to run", |_| {
        marker.join("inserted").exists().then_some(())
    });
    // The command's file exists a moment before its outcome is written.
    d.until(WAIT, "the jobs' outcomes to be written", |_| {
        (b.psql("SELECT count(*) FROM queues") == "0").then_some(())
    });
    let run = d.ok(json!({"cmd": "trigger", "id": "system_queue"}));
    assert_eq!(run["run"]["processed"], 0, "{run}");
    assert!(!marker.join("rolled-back").exists());
    assert_eq!(b.psql("SELECT count(*) FROM job_history"), "2");
}

#[test]
fn a_job_inserted_by_sql_that_fails_its_handlers_check_goes_dead_with_the_reason() {
    let Some(b) = Backend::postgres() else { return };
    let d = b.start(&[("JOB_COMMAND_ALLOW", "/bin/true")]);
    listening(&b, &d);
    // cronq_enqueue checks what SQL can; the allow list is the handler's,
    // checked when a daemon claims the job.
    let refused_argv = b.psql(
        "SELECT cronq_enqueue('not allowed',
                '{\"type\": \"command\", \"data\": {\"argv\": [\"/bin/rm\", \"-rf\", \"/nowhere\"]}}')",
    );
    // A plain INSERT skips even cronq_enqueue's checks: a handler's limit
    // out of range reaches the claim too.
    b.psql(
        "INSERT INTO queues (id, name, payload) VALUES ('sqlbadoption001', 'bad option',
                '{\"type\": \"command\", \"data\": {\"argv\": [\"/bin/true\"]},
                  \"options\": {\"tasks_max\": 0}}')",
    );
    for (id, reason) in [
        (
            refused_argv.as_str(),
            "payload.data: argv[0]: \"/bin/rm\" is not in JOB_COMMAND_ALLOW",
        ),
        (
            "sqlbadoption001",
            "payload.options.tasks_max: must be from 1 to",
        ),
    ] {
        let dead = d.until(WAIT, "the job to go dead", |d| {
            d.job(id).filter(|j| j["status"] == "dead")
        });
        assert_eq!(dead["attempts"], 1, "dead at its first claim: {dead}");
        let error = dead["last_error"].as_str().expect("a reason");
        eprintln!("{id}: {error}");
        assert!(error.starts_with(reason), "{error}");
    }
    assert!(
        d.log().contains("/bin/rm"),
        "the log says what was refused:\n{}",
        d.log()
    );
}

#[test]
fn a_cleanly_stopped_node_hands_its_job_back_and_an_idle_one_runs_it_at_once() {
    let Some(b) = Backend::postgres() else { return };
    let env = [("JOB_COMMAND_ALLOW", "/bin/sleep")];
    let mut first = b.start(&env);
    let id = first.enqueue("command", json!({"argv": ["/bin/sleep", "30"]}));
    first.until(WAIT, "the job to run on the first node", |d| {
        d.job(&id).filter(|j| j["status"] == "running")
    });
    let second = b.start(&env);
    let second_id = instance_id(&second);
    assert_eq!(instances(&second).len(), 2);
    // A forced stop (a second SIGTERM) ends the running attempt and hands
    // the job back without counting it; the idle node hears of it at once.
    first.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let handed_back = Instant::now();
    first.signal(libc::SIGTERM);
    first.wait(Duration::from_secs(30));
    let job = second.until(
        Duration::from_secs(10),
        "the idle node to take the job",
        |d| d.job(&id).filter(|j| j["status"] == "running"),
    );
    eprintln!(
        "handed back and started again within {} ms",
        handed_back.elapsed().as_millis()
    );
    assert_eq!(
        job["attempts"], 1,
        "the interrupted attempt was not counted"
    );
    assert_eq!(
        b.psql(&format!("SELECT reserved_by FROM queues WHERE id = '{id}'")),
        second_id
    );
    let left = instances(&second);
    assert_eq!(left.len(), 1, "the stopped node unregistered: {left:?}");
    assert_eq!(left[0]["id"], second_id);
}

#[test]
fn instances_and_status_show_the_cluster() {
    let Some(b) = Backend::postgres() else { return };
    let a = b.start(&[("JOB_MAX_WORKERS", "3")]);
    let mut c = b.start(&[("JOB_MAX_WORKERS", "2")]);
    let listed = instances(&a);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for (d, max) in [(&a, 3), (&c, 2)] {
        let row = listed
            .iter()
            .find(|i| i["pid"] == d.pid())
            .unwrap_or_else(|| panic!("pid {} missing from {listed:?}", d.pid()));
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "clock_offset_ms",
                "heartbeat",
                "host",
                "id",
                "pid",
                "started",
                "version",
                "workers"
            ]
        );
        assert_eq!(row["host"], host.trim());
        assert_eq!(row["workers"], json!({"max": max, "busy": 0}));
        assert!(
            row["clock_offset_ms"].as_i64().unwrap().abs() < 1_000,
            "{row}"
        );
        assert!(row["started"].as_str().unwrap().ends_with('Z'), "{row}");
        assert_eq!(row["version"], env!("CARGO_PKG_VERSION"));
    }
    let status = a.ok(json!({"cmd": "status"}));
    assert_eq!(status["backend"], "postgres");
    assert_eq!(status["instances"], 2, "{status}");
    assert!(status["clock_offset_ms"].as_i64().unwrap().abs() < 1_000);
    let db = status["db"].as_str().unwrap();
    assert!(db.starts_with("postgres://cronq@127.0.0.1:"), "{db}");
    assert!(
        !status.to_string().contains("cronq-test-pw"),
        "no password in status: {status}"
    );
    // The command line shows both, as a table and as the answer itself.
    let table = cli(&a.socket, &["instances"]);
    assert!(table.starts_with("ID "), "{table}");
    for d in [&a, &c] {
        assert!(table.contains(&format!(" {} ", d.pid())), "{table}");
    }
    let answer: Value = serde_json::from_str(&cli(&a.socket, &["--json", "instances"])).unwrap();
    assert_eq!(answer["instances"].as_array().unwrap().len(), 2);
    let shown = cli(&a.socket, &["status"]);
    assert!(shown.contains("instances: 2 alive"), "{shown}");
    // A clean stop unregisters.
    assert!(c.stop().success());
    assert_eq!(instances(&a).len(), 1);
    assert_eq!(a.ok(json!({"cmd": "status"}))["instances"], 1);
}

fn cli(socket: &Path, args: &[&str]) -> String {
    let out = Command::new(daemon::BIN)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run cronq");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_bad_url_or_an_unreachable_server_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (url, needle) in [
        (
            "postgres://cronq:hunter2@db.example:5432/cronq?sslmode=sometimes".to_string(),
            "CRONQ_DATABASE_URL is not a PostgreSQL URL".to_string(),
        ),
        (
            format!("postgres://cronq:hunter2@127.0.0.1:{port}/cronq?connect_timeout=3"),
            format!(
                "cannot connect to the PostgreSQL server at 127.0.0.1:{port} named by CRONQ_DATABASE_URL"
            ),
        ),
    ] {
        let out = Command::new(daemon::BIN)
            .arg("daemon")
            .current_dir(dir.path())
            .env_clear()
            .env("LOG_FORMAT", "text")
            .env("CRONQ_DATABASE_URL", &url)
            .output()
            .expect("run cronq daemon");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&needle), "{needle:?} not in {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(!stderr.contains("is ready"), "{stderr}");
        assert!(
            !dir.path().join("cronq-data/admin.sock").exists(),
            "no socket before the database works"
        );
    }
}

#[test]
fn a_job_no_notification_announced_is_found_by_the_fallback_poll() {
    let Some(b) = Backend::postgres() else { return };
    // Heartbeats every 15 s (a quarter of the one-minute reservation
    // timeout), and no system_queue drain before the job is claimed that
    // could find it instead.
    let d = b.start(&[("JOB_RESERVATION_TIMEOUT", "1")]);
    listening(&b, &d);
    let next_drain = between_drains(&d, Duration::from_secs(45));
    // A row whose notification never comes (as if lost).
    b.psql(
        "ALTER TABLE queues DISABLE TRIGGER queues_notify_insert;
         INSERT INTO queues (id, name, payload) VALUES ('unannounced0001', 'u', '{\"type\": \"noop\"}');",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.job("unannounced0001").is_some(), "nothing announced it");
    d.until(
        Duration::from_secs(60),
        "the fallback poll to run it",
        |d| d.job("unannounced0001").is_none().then_some(()),
    );
    let at = started(&d, "unannounced0001");
    assert!(
        at < next_drain,
        "claimed by the drain at {next_drain}, not a heartbeat: {at}"
    );
}

#[test]
fn a_job_enqueued_while_the_listen_connection_was_down_is_claimed_when_it_comes_back() {
    let Some(b) = Backend::postgres() else { return };
    let Backend::Postgres { db, .. } = &b else {
        unreachable!()
    };
    // No system_queue drain before the job is claimed, and the default
    // heartbeat (a minute or more): only the claim pass after the reconnect
    // can find the job in time.
    let d = b.start(&[]);
    listening(&b, &d);
    let next_drain = between_drains(&d, Duration::from_secs(30));
    // The LISTEN connection is cut, as a server restart or a network fault
    // would, and cannot come back yet: the database takes no new
    // connections (those open, the pool's, go on).
    b.psql(&format!("ALTER DATABASE {db} CONNECTION LIMIT 0"));
    b.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'cronq listen'",
    );
    d.until(WAIT, "the daemon to notice", |d| {
        d.log()
            .contains("lost the LISTEN connection to PostgreSQL")
            .then_some(())
    });
    // Enqueued meanwhile: its notification reaches no one.
    std::thread::sleep(Duration::from_millis(500));
    b.psql(
        "INSERT INTO queues (id, name, payload) VALUES ('missed000000001', 'm', '{\"type\": \"noop\"}')",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        d.job("missed000000001").is_some(),
        "nothing told the daemon"
    );
    // Once it reconnects, a claim pass finds it.
    b.psql(&format!("ALTER DATABASE {db} CONNECTION LIMIT -1"));
    d.until(Duration::from_secs(15), "the reconnect's claim pass", |d| {
        d.job("missed000000001").is_none().then_some(())
    });
    let at = started(&d, "missed000000001");
    assert!(
        at < next_drain,
        "claimed by the drain at {next_drain}, not the reconnect: {at}"
    );
    d.until(WAIT, "the log to say so", |d| {
        d.log()
            .contains("the LISTEN connection to PostgreSQL is back")
            .then_some(())
    });
}

#[test]
fn a_silent_node_loses_its_jobs_at_a_heartbeat_even_with_system_queue_off() {
    let Some(b) = Backend::postgres() else { return };
    // A one-minute reservation timeout: heartbeats every 15 s. No
    // system_queue run ever judges the other nodes here.
    let d = b.start(&[
        ("ENABLE_SYSTEM_QUEUE_CRON", "false"),
        ("JOB_RESERVATION_TIMEOUT", "1"),
    ]);
    b.psql(
        "INSERT INTO instances (id, host, boot_id, pid, start_ticks, version, started, heartbeat_at)
         VALUES ('silent000000002', 'node-gone', 'a-third-boot:pid:[4026531836]', 1, 1,
                 '0.1.0', now() - interval '1 hour', now() - interval '2 minutes');
         INSERT INTO queues (id, name, payload, status, attempts, reserved_at, reserved_by)
         VALUES ('silentjob000002', 's', '{\"type\": \"noop\"}', 'running', 1,
                 now() - interval '2 minutes', 'silent000000002');",
    );
    let job = d.until(
        Duration::from_secs(40),
        "a heartbeat to release the job",
        |d| {
            d.job("silentjob000002")
                .filter(|j| j["status"] != "running")
        },
    );
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert!(
        !instances(&d).iter().any(|i| i["id"] == "silent000000002"),
        "the silent node is removed"
    );
}
