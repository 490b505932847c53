//! A PostgreSQL outage under a real daemon: the server stopped for 30 s
//! with `pg_ctl`-style fast shutdown (the test harness's own server), a job
//! running through it. The daemon stays up and keeps pinging the systemd
//! watchdog (a real notify socket, WATCHDOG_USEC shorter than the outage),
//! says the database is unavailable in STATUS= and in admin errors, finishes
//! the job, keeps its outcome and writes it when the server is back; the
//! job ran once; the LISTEN connection comes back by itself.

#[path = "support/daemon.rs"]
mod daemon;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cronq::store::postgres::testing::{self, PgServer, ServerOptions};
use serde_json::json;

const OUTAGE: Duration = Duration::from_secs(30);
/// systemd's WATCHDOG_USEC for the daemon: it must ping every 1.5 s.
const WATCHDOG: Duration = Duration::from_secs(3);

/// What systemd would receive on the notify socket, with when it came.
#[derive(Clone, Default)]
struct Notices(Arc<Mutex<Vec<(Instant, String)>>>);

impl Notices {
    fn listen(path: &std::path::Path) -> Notices {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let notices = Notices::default();
        let into = notices.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    into.0.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        notices
    }

    /// The instants of the messages that contain `what`, from `since`.
    fn times(&self, what: &str, since: Instant) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, text)| *at >= since && text.contains(what))
            .map(|(at, _)| *at)
            .collect()
    }

    fn texts(&self, what: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text.contains(what))
            .map(|(_, text)| text.clone())
            .collect()
    }
}

#[test]
fn a_thirty_second_outage_keeps_the_daemon_up_and_loses_nothing() {
    if !testing::available() {
        return;
    }
    let server = PgServer::start(ServerOptions::default()).expect("start PostgreSQL");
    let db = server.create_database().unwrap();
    let url = server.url(&db);
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let notices = Notices::listen(&notify);
    let watchdog_usec = WATCHDOG.as_micros().to_string();
    let d = daemon::Daemon::on_dir(
        dir.path(),
        &[
            ("CRONQ_DATABASE_URL", &url),
            ("JOB_COMMAND_ALLOW", "/bin/sleep"),
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            ("WATCHDOG_USEC", &watchdog_usec),
        ],
    );
    let id = d.enqueue("command", json!({"argv": ["/bin/sleep", "5"]}));
    d.until(Duration::from_secs(20), "the job to run", |d| {
        d.job(&id).filter(|j| j["status"] == "running")
    });

    server.stop().expect("stop PostgreSQL");
    let down = Instant::now();
    // Admin writes say why they cannot be done.
    let refused = d.request(json!({"cmd": "enqueue", "name": "x", "payload": {"type": "noop"}}));
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("PostgreSQL at 127.0.0.1:{}", server.port())),
        "{message}"
    );
    assert!(!message.contains(testing::PASSWORD), "{message}");
    std::thread::sleep(OUTAGE);
    assert!(
        d.request(json!({"cmd": "ping"}))["ok"] == true,
        "the daemon is up after {OUTAGE:?} without its database"
    );
    let pings = notices.times("WATCHDOG=1", down);
    let mut last = down;
    for at in &pings {
        assert!(
            at.duration_since(last) < WATCHDOG,
            "a gap of {:?} in the watchdog's pings would have had systemd kill the daemon",
            at.duration_since(last)
        );
        last = *at;
    }
    assert!(
        Instant::now().duration_since(last) < WATCHDOG,
        "the pings stopped"
    );
    let statuses = notices.texts("database unavailable");
    assert!(!statuses.is_empty(), "STATUS= said nothing of the outage");
    assert!(
        statuses[0].contains(&format!("PostgreSQL at 127.0.0.1:{}", server.port())),
        "{statuses:?}"
    );

    server.start_again().expect("start PostgreSQL again");
    // The job finished during the outage; its outcome was kept and is
    // written now (a succeeded job leaves the queue for the history).
    d.until(Duration::from_secs(30), "the outcome to be written", |d| {
        let answer = d.request(json!({"cmd": "job", "id": id}));
        (answer["job"]["status"] == "succeeded").then_some(())
    });
    let log = d.log();
    let runs = log
        .lines()
        .filter(|l| l.contains("job finished") && l.contains(&id))
        .count();
    assert_eq!(runs, 1, "the job ran once:\n{log}");
    assert!(
        log.contains("job outcomes are being written again"),
        "{log}"
    );
    // Work goes on: an enqueue is stored and run, woken through the LISTEN
    // connection that reconnected by itself.
    let next = d.enqueue("noop", json!({}));
    d.until(Duration::from_secs(20), "a new job to run", |d| {
        d.job(&next).is_none().then_some(())
    });
    d.until(
        Duration::from_secs(20),
        "the STATUS= line to recover",
        |_| {
            notices
                .texts("STATUS=")
                .last()
                .filter(|t| t.contains("busy, ") && !t.contains("unavailable"))
                .map(|_| ())
        },
    );
    assert!(log.contains("the database is unavailable"), "{log}");
}
