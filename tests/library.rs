//! The library face: a daemon built in-process with its own handlers, on a
//! temp directory with a real socket and database. Panics, timeouts and
//! programmatic enqueue are proven here, where a test can own the handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cronq::clock::ManualClock;
use cronq::{Config, Daemon, Handler, JobContext, JobError, NewJob};
use serde_json::{Map, json};

struct Panics(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Handler for Panics {
    fn job_type(&self) -> &str {
        "panics"
    }
    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("the handler blew up");
    }
}

struct Counts(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Handler for Counts {
    fn job_type(&self) -> &str {
        "counts"
    }
    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        assert!(job.attempt >= 1);
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::for_dir(dir);
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    config
}

async fn until<F: Fn() -> bool>(what: &str, check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_failed_attempt_and_the_daemon_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let (panics, counts) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let daemon = Daemon::builder(config(dir.path()))
        .handler(Panics(panics.clone()))
        .handler(Counts(counts.clone()))
        .start()
        .await
        .unwrap();
    let mut job = NewJob::new("p", "panics", Map::new());
    job.retry_count = Some(1);
    let id = daemon.queue().enqueue_one(job).await.unwrap().job.id;
    until("two attempts", || panics.load(Ordering::SeqCst) == 2).await;
    let queue = daemon.queue().clone();
    let store = queue.store().clone();
    let mut dead = None;
    for _ in 0..500 {
        let (job, errors) = store.get(id.clone(), i64::MAX / 2).await.unwrap().unwrap();
        if job.status == cronq::queue::job::JobStatus::Dead {
            dead = Some((job, errors));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (job, errors) = dead.expect("the job died");
    assert_eq!(job.attempts, 2);
    assert!(
        errors[0].error.contains("panicked: the handler blew up"),
        "{errors:?}"
    );

    // Programmatic enqueue of a batch; every job runs exactly once.
    let jobs: Vec<NewJob> = (0..200)
        .map(|i| NewJob::new(format!("c{i}"), "counts", Map::new()))
        .collect();
    daemon.queue().enqueue(jobs, true).await.unwrap();
    until("200 jobs", || counts.load(Ordering::SeqCst) == 200).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(counts.load(Ordering::SeqCst), 200);

    // Validation is the socket's: an unknown type is refused.
    let err = daemon
        .queue()
        .enqueue_one(NewJob::new("x", "nosuch", Map::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("payload.type"), "{err}");
    let _ = json!(null);
    daemon.stop().await;
}

/// A scheduled run that falls while another process holds the write lock
/// past the busy timeout is recorded (and its job enqueued) once the lock
/// goes, not dropped: found by the lock-contention soak (tests/soak/).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_run_due_while_the_database_is_locked_still_fires() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("crons.toml"),
        "[cron.tick]\nschedule = \"* * * * *\"\ntype = \"noop\"\n",
    )
    .unwrap();
    let mut config = config(dir.path());
    config.system_queue_cron = false;
    config.cron_tz = Some("UTC".into());
    let clock = Arc::new(ManualClock::new("2030-01-01T12:00:30Z".parse().unwrap()));
    let daemon = Daemon::builder(config)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let db = dir.path().join("cronq.db");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let due: jiff::Timestamp = "2030-01-01T12:01:00Z".parse().unwrap();
    clock.set(due);
    // Longer than the busy timeout (5 s): the first try to record the run
    // gives up while the lock is still held.
    tokio::time::sleep(Duration::from_secs(7)).await;
    holder.execute_batch("ROLLBACK").unwrap();
    let runs = move || -> i64 {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM cron_runs WHERE cron_id = 'tick' AND scheduled_for = ?1 AND job_id IS NOT NULL",
            [due.as_millisecond()],
            |row| row.get(0),
        )
        .unwrap()
    };
    until("the 12:01 run of tick to be recorded", || runs() == 1).await;
    daemon.stop().await;
}

struct Hangs;

#[async_trait::async_trait]
impl Handler for Hangs {
    fn job_type(&self) -> &str {
        "hangs"
    }
    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_handlers_time_out_and_the_pool_keeps_its_full_width() {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(AtomicU32::new(0));
    let mut cfg = config(dir.path());
    cfg.max_workers = 3;
    let daemon = Daemon::builder(cfg)
        .handler(Hangs)
        .handler(Counts(counts.clone()))
        .start()
        .await
        .unwrap();
    // As many hanging jobs as workers: every slot is taken until they time out.
    let hanging: Vec<NewJob> = (0..3)
        .map(|i| {
            let mut job = NewJob::new(format!("h{i}"), "hangs", Map::new());
            job.timeout_s = Some(1);
            job.retry_count = Some(0);
            job
        })
        .collect();
    daemon.queue().enqueue(hanging, true).await.unwrap();
    until("three hanging jobs running", || daemon.queue().busy() == 3).await;
    let jobs: Vec<NewJob> = (0..30)
        .map(|i| NewJob::new(format!("c{i}"), "counts", Map::new()))
        .collect();
    daemon.queue().enqueue(jobs, true).await.unwrap();
    // After the timeouts every slot is free again and the rest run.
    until("30 jobs after the timeouts", || {
        counts.load(Ordering::SeqCst) == 30
    })
    .await;
    let stats = daemon.queue().stats();
    assert_eq!(stats["hangs"].failed, 3);
    until("an idle pool", || daemon.queue().busy() == 0).await;
    daemon.stop().await;
}

/// Takes a while, and counts how many run at once.
struct Slow {
    running: Arc<AtomicU32>,
    most: Arc<AtomicU32>,
    done: Arc<AtomicU32>,
}

#[async_trait::async_trait]
impl Handler for Slow {
    fn job_type(&self) -> &str {
        "slow"
    }
    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Jobs reserved by this daemon right now (running, or claimed ahead).
async fn reserved(daemon: &Daemon) -> u64 {
    let counts = daemon.queue().store().counts(i64::MAX / 2).await.unwrap();
    counts
        .values()
        .filter_map(|by| by.get(&cronq::queue::job::JobStatus::Running))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_jobs_are_claimed_only_for_free_workers() {
    // Claimed ahead they would sit reserved while a second daemon on the
    // same file had nothing to do.
    let dir = tempfile::tempdir().unwrap();
    let (running, most, done) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let mut cfg = config(dir.path());
    cfg.max_workers = 2;
    let daemon = Daemon::builder(cfg)
        .handler(Slow {
            running: running.clone(),
            most: most.clone(),
            done: done.clone(),
        })
        .start()
        .await
        .unwrap();
    // The minute's system_queue run claims a whole batch for itself; keep
    // this half-second test clear of it.
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(62 - second)).await;
    }
    let jobs: Vec<NewJob> = (0..20)
        .map(|i| NewJob::new(format!("s{i}"), "slow", Map::new()))
        .collect();
    daemon.queue().enqueue(jobs, true).await.unwrap();
    let mut most_reserved = 0;
    while done.load(Ordering::SeqCst) < 20 {
        most_reserved = most_reserved.max(reserved(&daemon).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "both workers ran");
    assert!(
        most_reserved <= 2,
        "{most_reserved} slow jobs were reserved at once with 2 workers"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_jobs_pipelined_through_the_writer_each_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(AtomicU32::new(0));
    let mut cfg = config(dir.path());
    cfg.max_workers = 3;
    let daemon = Daemon::builder(cfg)
        .handler(Counts(counts.clone()))
        .start()
        .await
        .unwrap();
    for batch in 0..5 {
        let jobs: Vec<NewJob> = (0..1000)
            .map(|i| NewJob::new(format!("f{batch}-{i}"), "counts", Map::new()))
            .collect();
        daemon.queue().enqueue(jobs, true).await.unwrap();
    }
    until("5,000 jobs", || counts.load(Ordering::SeqCst) >= 5000).await;
    until("an idle pool", || daemon.queue().busy() == 0).await;
    // Every outcome committed: nothing is left, nothing ran twice.
    let store = daemon.queue().store().clone();
    let mut left = u64::MAX;
    for _ in 0..500 {
        left = store
            .counts(i64::MAX / 2)
            .await
            .unwrap()
            .values()
            .flat_map(|by| by.values())
            .sum();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "jobs left in the queue");
    assert_eq!(counts.load(Ordering::SeqCst), 5000);
    daemon.stop().await;
}
