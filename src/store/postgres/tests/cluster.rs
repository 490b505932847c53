//! What only several nodes on one database show: concurrent migrations,
//! claims racing under SKIP LOCKED, cron runs racing for one minute,
//! wake-ups over LISTEN/NOTIFY and their reconnection, and clocks that
//! disagree.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{fresh_url, open_at, settings};
use super::{job, types};
use crate::clock::{Clock, Millis, SystemClock};
use crate::store::job::RunAt;
use crate::store::postgres::{
    ClockSync, OpenError, PgOptions, PgStore, SCHEMA_VERSION, Wakeups, testing,
};
use crate::store::run::{NewRun, RunStatus, RunTrigger};
use crate::store::{Backend, JobDefaults};

/// Waits (generously: the machine is shared) until `ok` holds for the
/// store's wake-up counters.
async fn wait_for(rx: &mut watch::Receiver<Wakeups>, what: &str, ok: impl Fn(&Wakeups) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|w| ok(w)))
        .await
        .map(|r| r.map(|_| ()));
    assert!(
        matches!(waited, Ok(Ok(()))),
        "timed out waiting for {what}: {:?}",
        *rx.borrow()
    );
}

async fn system(url: &str) -> PgStore {
    open_at(url, Arc::new(SystemClock), ClockSync::Measure).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_daemons_opening_an_empty_database_migrate_it_once() {
    let Some(url) = fresh_url() else { return };
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { system(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("no open failed"));
    }
    let server = testing::shared().unwrap();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let applied = server
        .psql_in(db, "SELECT max(version) FROM schema_migrations")
        .unwrap();
    assert_eq!(applied, SCHEMA_VERSION.to_string());
    for store in stores {
        store.close().await;
    }
}

#[tokio::test]
async fn a_database_newer_than_this_binary_is_refused() {
    let Some(url) = fresh_url() else { return };
    system(&url).await.close().await;
    let server = testing::shared().unwrap();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    server
        .psql_in(
            db,
            &format!(
                "INSERT INTO schema_migrations (version, name) VALUES ({}, 'from_the_future')",
                SCHEMA_VERSION + 1
            ),
        )
        .unwrap();
    let err = PgStore::open(
        settings(&url),
        PgOptions::new(JobDefaults::default(), Arc::new(SystemClock)),
    )
    .await
    .err()
    .expect("refused");
    assert!(matches!(err, OpenError::TooNew { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("newer than this cronq"), "{text}");
    assert!(
        text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
        "{text}"
    );
    assert!(!text.contains(testing::PASSWORD), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_claiming_at_once_never_take_the_same_job() {
    let Some(url) = fresh_url() else { return };
    let a = system(&url).await;
    let b = system(&url).await;
    const JOBS: usize = 3000;
    for chunk in 0..(JOBS / 500) {
        let jobs = (0..500).map(|i| job(&format!("j{chunk}-{i}"))).collect();
        a.enqueue(jobs, 0, 1_000_000).await.unwrap();
    }
    let now = SystemClock.now_ms();
    // Two claimers on each store, small batches: many claims overlap.
    let drain = |store: PgStore, me: &'static str| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let claimed = store
                    .claim_batches(me, &types(), 20, 10, now)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return ids;
                }
                for c in claimed {
                    ids.push((
                        c.job.id.clone(),
                        store.complete(c.lease, false, now).await.unwrap(),
                    ));
                }
            }
        })
    };
    let claimers = [
        drain(a.clone(), "a1"),
        drain(a.clone(), "a2"),
        drain(b.clone(), "b1"),
        drain(b.clone(), "b2"),
    ];
    let mut per_claimer = Vec::new();
    for c in claimers {
        per_claimer.push(c.await.unwrap());
    }
    let claims: Vec<&(String, bool)> = per_claimer.iter().flatten().collect();
    let distinct: HashSet<&String> = claims.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), JOBS, "every job claimed");
    assert_eq!(claims.len(), JOBS, "no job claimed twice");
    assert!(
        claims.iter().all(|(_, done)| *done),
        "every lease held to the end"
    );
    assert!(
        per_claimer.iter().all(|ids| !ids.is_empty()),
        "every claimer claimed: {:?}",
        per_claimer.iter().map(Vec::len).collect::<Vec<_>>()
    );
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_racing_for_each_cron_minute_fire_it_once() {
    let Some(url) = fresh_url() else { return };
    let a = system(&url).await;
    let b = system(&url).await;
    let race = |store: PgStore, me: &'static str| {
        tokio::spawn(async move {
            let mut won = Vec::new();
            for minute in 0..50i64 {
                let run = NewRun {
                    cron_id: "report".into(),
                    scheduled_for: 1_800_000_000_000 + minute * 60_000,
                    trigger: RunTrigger::Schedule,
                    status: RunStatus::Running,
                    now: SystemClock.now_ms(),
                    instance: me.into(),
                    error: None,
                };
                if store.begin_run(run).await.unwrap().is_some() {
                    won.push(minute);
                }
            }
            won
        })
    };
    let (wa, wb) = (race(a.clone(), "a"), race(b.clone(), "b"));
    let (wa, wb) = (wa.await.unwrap(), wb.await.unwrap());
    let mut all: Vec<i64> = wa.iter().chain(&wb).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..50).collect::<Vec<_>>(),
        "each minute fired exactly once"
    );
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_on_one_node_wakes_another_once_per_transaction() {
    let Some(url) = fresh_url() else { return };
    let a = system(&url).await;
    let b = system(&url).await;
    let mut wakeups = b.wakeups();
    wait_for(&mut wakeups, "the LISTEN connection", |w| w.connected).await;
    let before = wakeups.borrow().notifications;
    let batch = (0..100).map(|i| job(&i.to_string())).collect();
    a.enqueue(batch, SystemClock.now_ms(), 1000).await.unwrap();
    a.enqueue(vec![job("one more")], SystemClock.now_ms(), 1000)
        .await
        .unwrap();
    // Notifications arrive in commit order: once the second transaction's
    // is in, every one the first sent is too.
    wait_for(&mut wakeups, "two notifications", |w| {
        w.notifications >= before + 2
    })
    .await;
    assert_eq!(
        wakeups.borrow().notifications,
        before + 2,
        "one notification per enqueue transaction, not per job"
    );
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_connection_comes_back_after_it_is_killed() {
    let Some(url) = fresh_url() else { return };
    let a = system(&url).await;
    let b = system(&url).await;
    wait_for(&mut a.wakeups(), "A's LISTEN connection", |w| w.connected).await;
    let mut wakeups = b.wakeups();
    wait_for(&mut wakeups, "B's LISTEN connection", |w| w.connected).await;
    let first = *wakeups.borrow();
    let server = testing::shared().unwrap();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let killed = server
        .psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = '{db}' AND application_name = 'cronq listen'"
        ))
        .unwrap();
    assert_eq!(killed, "2", "both stores' LISTEN connections");
    wait_for(&mut wakeups, "a reconnection", |w| {
        w.connected && w.reconnects > first.reconnects
    })
    .await;
    let before = wakeups.borrow().notifications;
    a.enqueue(vec![job("after")], SystemClock.now_ms(), 10)
        .await
        .unwrap();
    wait_for(&mut wakeups, "a notification after reconnecting", |w| {
        w.notifications > before
    })
    .await;
    a.close().await;
    b.close().await;
}

/// The system clock moved by a fixed amount: a host whose clock is off.
struct Skewed(i64);

#[async_trait::async_trait]
impl Clock for Skewed {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now() + jiff::SignedDuration::from_millis(self.0)
    }

    async fn sleep_toward(&self, deadline: jiff::Timestamp) {
        let left = deadline.as_millisecond() - self.now_ms();
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left as u64).min(Duration::from_secs(60)))
                .await;
        }
    }
}

#[tokio::test]
async fn a_node_whose_clock_is_two_minutes_ahead_runs_nothing_early_and_steals_nothing() {
    let Some(url) = fresh_url() else { return };
    const AHEAD: Millis = 120_000;
    let right = system(&url).await;
    let skewed_clock = Arc::new(Skewed(AHEAD));
    let ahead = open_at(&url, skewed_clock.clone(), ClockSync::Measure).await;
    let offset = ahead.clock_offset_ms();
    assert!(
        (offset - AHEAD).abs() < 1_000,
        "the offset is measured: {offset} ms"
    );
    assert!(right.clock_offset_ms().abs() < 1_000);
    // Without the correction (the control): the skewed node would judge by
    // its own clock.
    let naive = open_at(&url, skewed_clock.clone(), ClockSync::Fixed(0)).await;

    // A job enqueued on the right node, due in 60 s.
    let mut delayed = job("delayed");
    delayed.when = RunAt::After(Duration::from_secs(60));
    right
        .enqueue(vec![delayed], SystemClock.now_ms(), 10)
        .await
        .unwrap();
    let its_now = skewed_clock.now_ms();
    assert!(
        ahead
            .claim("ahead", &types(), 10, its_now)
            .await
            .unwrap()
            .is_empty(),
        "the skewed node claims nothing early"
    );
    let next = ahead.next_due(&types(), its_now).await.unwrap().unwrap();
    assert!(
        next - its_now > 50_000,
        "due in about a minute by its clock too"
    );

    // A job claimed by the right node just now, with a reservation timeout
    // of one minute.
    right
        .enqueue(vec![job("running")], SystemClock.now_ms(), 10)
        .await
        .unwrap();
    let held = right
        .claim("right", &types(), 10, SystemClock.now_ms())
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let stale_before = skewed_clock.now_ms() - 60_000;
    assert!(
        ahead
            .recover(stale_before, vec![], skewed_clock.now_ms())
            .await
            .unwrap()
            .is_empty(),
        "the skewed node takes no live reservation"
    );
    assert!(
        right
            .complete(held[0].lease.clone(), false, SystemClock.now_ms())
            .await
            .unwrap()
    );

    // The control shows the test would catch the fault.
    assert_eq!(
        naive
            .claim("naive", &types(), 10, skewed_clock.now_ms())
            .await
            .unwrap()
            .len(),
        1,
        "a node judging by its own clock would have run the delayed job early"
    );
    for store in [right, ahead, naive] {
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_during_an_outage_are_written_when_the_server_is_back() {
    if !testing::available() {
        return;
    }
    let server = testing::PgServer::start(testing::ServerOptions::default()).unwrap();
    let db = server.create_database().unwrap();
    let store = system(&server.url(&db)).await;
    let now = SystemClock.now_ms();
    store
        .enqueue((0..5).map(|i| job(&i.to_string())).collect(), now, 10)
        .await
        .unwrap();
    let claimed = store.claim("me", &types(), 5, now).await.unwrap();
    server.stop().unwrap();
    let completions: Vec<_> = claimed
        .into_iter()
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move { store.complete(c.lease, false, now).await })
        })
        .collect();
    // The batcher keeps them while the server is down...
    let started = Instant::now();
    while store.outcomes_stalled_for() < Duration::from_millis(200)
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store.outcomes_stalled_for() >= Duration::from_millis(200),
        "the batcher is waiting"
    );
    // ...and the store still counts as working for the watchdog: the
    // outage is the server's, which a restart of this node would not cure.
    assert!(
        Backend::responsive(&store, Duration::from_millis(100)),
        "an outage must not stop the watchdog's pings"
    );
    let err = store.enqueue(vec![job("x")], now, 10).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    // ...and writes them once it is back.
    server.start_again().unwrap();
    for c in completions {
        assert!(
            c.await.unwrap().unwrap(),
            "the outcome was written after the outage"
        );
    }
    assert!(
        store
            .counts(now)
            .await
            .unwrap()
            .values()
            .all(|s| s.values().all(|n| *n == 0))
    );
    store.close().await;
}

#[tokio::test]
async fn each_heartbeat_measures_the_offset_again_and_records_it() {
    let Some(url) = fresh_url() else { return };
    let clock = Arc::new(crate::clock::ManualClock::new(jiff::Timestamp::now()));
    // The manual clock stands still while real time (the server's) goes
    // on: what it moved by, less the time since it was set, is its offset.
    let set = Instant::now();
    let expected = |moved_ms: i64| moved_ms - set.elapsed().as_millis() as i64;
    let store = open_at(&url, clock.clone(), ClockSync::Measure).await;
    assert!((store.clock_offset_ms() - expected(0)).abs() < 1_000);
    clock.advance(Duration::from_secs(300));
    let row = super::instance("me", clock.now_ms());
    store.register_instance(row.clone()).await.unwrap();
    let offset = store.clock_offset_ms();
    assert!(
        (offset - expected(300_000)).abs() < 1_000,
        "the heartbeat saw the clock move: {offset} ms"
    );
    let server = testing::shared().unwrap();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let stored: i64 = server
        .psql_in(db, "SELECT clock_offset_ms FROM instances WHERE id = 'me'")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored, offset, "the instance row shows it");
    // The row's instants are the caller's, read back through the offset.
    let listed = store.instances().await.unwrap();
    assert_eq!(listed[0].heartbeat_at, row.heartbeat_at);
    clock.advance(Duration::from_secs(60));
    store.heartbeat_instance(row, clock.now_ms()).await.unwrap();
    assert!((store.clock_offset_ms() - expected(360_000)).abs() < 1_000);
    store.close().await;
}

/// What a test's log lines say, caught by a subscriber of this thread.
#[derive(Clone, Default)]
struct Caught(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Caught {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Caught {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_clock_two_minutes_off_is_warned_about_once_naming_host_server_and_offset() {
    let Some(url) = fresh_url() else { return };
    let caught = Caught::default();
    let writer = caught.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = open_at(&url, Arc::new(Skewed(120_000)), ClockSync::Measure).await;
    // Each heartbeat measures again; the warning is not repeated.
    let row = super::instance("me", SystemClock.now_ms() + 120_000);
    store.register_instance(row.clone()).await.unwrap();
    store
        .heartbeat_instance(row, SystemClock.now_ms() + 120_000)
        .await
        .unwrap();
    let text = caught.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let server = settings(&url).server();
    for part in [
        format!("the clock of {} is 120.", host.trim()),
        format!("s ahead of the PostgreSQL server's at {server}"),
        "clock_offset_ms=1".to_string(),
    ] {
        assert!(
            warnings[0].contains(&part),
            "{part:?} not in {}",
            warnings[0]
        );
    }
    store.close().await;
}
