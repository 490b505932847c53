//! A daemon whose clock runs two minutes ahead (through the library's
//! clock), on one PostgreSQL database with a daemon whose clock is right
//! (the real binary): it runs no delayed job before it is due by the
//! server's clock, and takes no live reservation of the other daemon, with
//! a reservation timeout (one minute) shorter than its skew. Through the
//! real daemon paths: its dispatcher, and its `system_queue` run's
//! recovery.

#[path = "support/daemon.rs"]
mod daemon;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cronq::clock::Clock;
use cronq::config::Database;
use cronq::store::postgres::PgSettings;
use cronq::{Config, Daemon, Handler, JobContext, JobError};
use daemon::Backend;
use serde_json::json;

const AHEAD: jiff::SignedDuration = jiff::SignedDuration::from_mins(2);

/// The system clock moved two minutes ahead: a host whose clock is wrong.
struct Ahead;

#[async_trait::async_trait]
impl Clock for Ahead {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now() + AHEAD
    }

    async fn sleep_toward(&self, deadline: jiff::Timestamp) {
        let left = deadline.as_millisecond() - self.now_ms();
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left as u64).min(Duration::from_secs(60)))
                .await;
        }
    }
}

/// Notes when (by the real clock) each job started.
struct Records(Arc<Mutex<Vec<(String, SystemTime)>>>);

#[async_trait::async_trait]
impl Handler for Records {
    fn job_type(&self) -> &str {
        "records"
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        self.0.lock().unwrap().push((job.name, SystemTime::now()));
        Ok(())
    }
}

fn at(text: &str) -> SystemTime {
    let ms = cronq::clock::parse_rfc3339(text).expect("a timestamp");
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_two_minutes_ahead_runs_nothing_early_and_steals_no_live_reservation() {
    let Some(b) = Backend::postgres() else { return };
    let Backend::Postgres { url, .. } = &b else {
        unreachable!()
    };
    // The daemon whose clock is right runs a long job, with a one-minute
    // reservation timeout.
    let right = b.start(&[
        ("JOB_COMMAND_ALLOW", "/bin/sleep"),
        ("JOB_RESERVATION_TIMEOUT", "1"),
    ]);
    let long = right.enqueue("command", json!({"argv": ["/bin/sleep", "20"]}));
    right.until(Duration::from_secs(20), "the long job to run", |d| {
        d.job(&long).filter(|j| j["status"] == "running")
    });
    let holder = b.psql(&format!(
        "SELECT reserved_by FROM queues WHERE id = '{long}'"
    ));

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_dir(dir.path());
    config.database = Database::Postgres(PgSettings::parse(url, &|_| None).unwrap());
    config.reservation_timeout = Duration::from_secs(60);
    config.command_allow = vec!["/bin/sleep".into()];
    let started = Arc::new(Mutex::new(Vec::new()));
    let ahead = Daemon::builder(config)
        .clock(Arc::new(Ahead))
        .handler(Records(started.clone()))
        .start()
        .await
        .unwrap();
    let offset = ahead.queue().store().clock_offset_ms().unwrap();
    assert!(
        (offset - AHEAD.as_millis() as i64).abs() < 1_000,
        "measured: {offset} ms"
    );

    // Its system_queue run judges the other daemon's reservation, 2 minutes
    // old by its own clock, by the server's: fresh.
    let fired = ahead.scheduler().trigger("system_queue").await.unwrap();
    assert_eq!(fired.drain.unwrap().recovered, 0);
    assert_eq!(
        b.psql(&format!(
            "SELECT status || ' ' || attempts || ' ' || reserved_by FROM queues WHERE id = '{long}'"
        )),
        format!("running 1 {holder}"),
        "the live reservation stayed with its holder"
    );

    // A job due in 3 s by the server's clock, which only the skewed daemon
    // can run: its dispatcher starts it no earlier.
    let enqueued = b.psql(
        "SELECT cronq_enqueue('delayed', '{\"type\": \"records\"}',
                              run_at => now() + interval '3 seconds')
                || ' ' || to_char((now() + interval '3 seconds') AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    );
    let due = at(enqueued.split_once(' ').expect("id and due time").1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while started.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delayed job never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (name, when) = started.lock().unwrap()[0].clone();
    assert_eq!(name, "delayed");
    assert!(
        when >= due,
        "started {:?} before it was due",
        due.duration_since(when).unwrap_or_default()
    );
    // And the long job is still the right daemon's.
    assert_eq!(
        b.psql(&format!(
            "SELECT attempts || ' ' || reserved_by FROM queues WHERE id = '{long}'"
        )),
        format!("1 {holder}")
    );
    ahead.stop().await;
}
