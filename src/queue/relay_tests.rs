//! The relay between two daemons' queues on one real PostgreSQL database:
//! a watcher on one sees the other's events, in order; progress reaches
//! the other's `job`; a forced cancel reaches the daemon running the job;
//! a waiter learns of an end on the other daemon.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::queue::Queue;
use crate::queue::events::{EventKind, Received, Subscription};
use crate::queue::handler::{Handler, JobContext, JobError, Registration, Registry};
use crate::queue::instance::Instance;
use crate::queue::stop::Cancel;
use crate::store::job::NewJob;
use crate::store::postgres::{ClockSync, PgOptions, PgSettings, PgStore, testing};
use crate::store::{JobDefaults, Store};

const WAIT: Duration = Duration::from_secs(30);

/// Reports progress, then holds until cancelled (`"hold": true`) or for
/// `ms` milliseconds.
struct Worker;

#[async_trait::async_trait]
impl Handler for Worker {
    fn job_type(&self) -> &str {
        "work"
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        job.progress(7, Some(10), Some("rows".into()));
        if job.data["hold"] == true {
            job.cancel.cancelled().await;
            return Err(JobError::retry("stopped"));
        }
        let ms = job.data["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

struct Node {
    queue: Queue,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn node(url: &str, claims: bool) -> Node {
    let settings = PgSettings::parse(url, &|_| None).expect("settings");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = PgOptions {
        defaults: JobDefaults::default(),
        clock: clock.clone(),
        clock_sync: ClockSync::Fixed(0),
    };
    let store = Store::new(PgStore::open(settings, options).await.expect("open"));
    let mut registry = Registry::new();
    registry.register(Registration::new(Worker));
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let now = clock.now_ms();
    let instance = Instance::current(now);
    store.register_instance(instance.row(now)).await.unwrap();
    let queue = Queue::new(
        store,
        registry,
        Arc::new(Config::for_dir(dir.path())),
        clock,
        instance,
        shutdown.clone(),
    );
    queue.spawn_relay();
    // The other node claims nothing: it has no dispatcher.
    if claims {
        queue.spawn_dispatcher();
    }
    Node {
        queue,
        shutdown,
        _dir: dir,
    }
}

impl Node {
    async fn stop(self) {
        self.shutdown.cancel();
        self.queue.wait_stopped().await;
        self.queue.store().close().await;
    }
}

fn work(data: serde_json::Value) -> NewJob {
    let serde_json::Value::Object(data) = data else {
        panic!("an object")
    };
    NewJob::new("w", "work", data)
}

/// The next event of `job` (others are skipped), within [`WAIT`].
async fn next_of(sub: &mut Subscription, job: &str) -> EventKind {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match sub.recv().await {
                Received::Event(e) if e.job_id() == Some(job) => return e.kind,
                Received::Event(_) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    found.expect("an event in time")
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_progress_cancels_and_ends_cross_between_daemons() {
    let Some(server) = testing::shared() else {
        return;
    };
    let url = server.url(&server.create_database().expect("create database"));
    let runner = node(&url, true).await;
    let watcher = node(&url, false).await;
    let (a, b) = (&runner.queue, &watcher.queue);

    // Nobody watches: the runner builds no event for others.
    assert!(!a.events().wanted());
    let mut sub = b.events().subscribe();
    until("the runner hears of the watcher", || a.events().wanted()).await;

    // A job enqueued and run on the runner (the dispatcher's wake-ups by
    // other nodes' enqueues are not this test's): its events reach the
    // watcher in order, and its progress the watcher's `job`.
    let id = a
        .enqueue_one(work(json!({"ms": 1500})))
        .await
        .unwrap()
        .job
        .id;
    assert_eq!(next_of(&mut sub, &id).await, EventKind::Enqueued);
    assert_eq!(next_of(&mut sub, &id).await, EventKind::Started);
    assert_eq!(next_of(&mut sub, &id).await, EventKind::Progress);
    let progress = b.progress_of(&id, 1).expect("relayed progress");
    assert_eq!((progress.done, progress.total), (7, Some(10)));
    assert_eq!(next_of(&mut sub, &id).await, EventKind::Succeeded);
    assert!(b.progress_of(&id, 1).is_none(), "forgotten at the end");

    // A waiter on the watcher learns of an end on the runner.
    let id = a
        .enqueue_one(work(json!({"ms": 300})))
        .await
        .unwrap()
        .job
        .id;
    let waiter = b.events().wait_for(&id);
    let ended = tokio::time::timeout(WAIT, waiter.ended())
        .await
        .expect("the end in time");
    assert_eq!(ended.kind, EventKind::Succeeded);
    drop(waiter);

    // A forced cancel on the watcher stops the job on the runner.
    let id = a
        .enqueue_one(work(json!({"hold": true})))
        .await
        .unwrap()
        .job
        .id;
    assert_eq!(next_of(&mut sub, &id).await, EventKind::Enqueued);
    assert_eq!(next_of(&mut sub, &id).await, EventKind::Started);
    assert_eq!(
        b.cancel(id.clone(), false).await.unwrap(),
        Cancel::Refused(crate::store::job::Refusal::WrongStatus(
            crate::store::job::JobStatus::Running
        ))
    );
    assert_eq!(b.cancel(id.clone(), true).await.unwrap(), Cancel::Cancelled);
    let now = b.clock().now_ms();
    assert!(b.store().get(id.clone(), now).await.unwrap().is_none());
    loop {
        match next_of(&mut sub, &id).await {
            EventKind::Progress => continue,
            kind => {
                assert_eq!(kind, EventKind::Cancelled);
                break;
            }
        }
    }

    drop(sub);
    watcher.stop().await;
    runner.stop().await;
}
