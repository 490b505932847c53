//! The scheduler on a real temp store, driven by a [`ManualClock`].
//!
//! Each test moves the clock by hand and then waits for the scheduler to
//! have looked at the new time: the loop calls its pulse once per turn,
//! right before it sleeps again, and the runs it fired are tasks on its
//! tracker, so "the scheduler has seen time T and everything it fired is
//! recorded" is a condition to wait for, not a sleep to guess. The tests run
//! on tokio's current-thread runtime, so the loop and the test take turns
//! and a clock move can never fall between a turn's read of the time and
//! its sleep. Every wait has a timeout, so no test can hang.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Map;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Loader, Pulse, ReloadReport, Scheduler, SchedulerError};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::cron::schedule::Schedule;
use crate::cron::spec::{CatchUp, CronAction, CronSpec, DisabledBy, JobTemplate, Overlap, Source};
use crate::queue::Queue;
use crate::queue::handler::{Handler, JobContext, JobError, Registration, Registry};
use crate::queue::instance::Instance;
use crate::queue::job::JobStatus;
use crate::store::run::{RunRow, RunStatus};
use crate::store::sqlite::test_support::open_temp;
use crate::store::{JobDefaults, Store};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);
const START: &str = "2026-01-01T00:00:30Z";

fn at(text: &str) -> Timestamp {
    let text = if text.contains('T') {
        text.to_string()
    } else {
        format!("2026-01-01T{text}Z")
    };
    text.parse().expect("a test timestamp")
}

fn ms(text: &str) -> i64 {
    at(text).as_millisecond()
}

/// A job type that always fails with a retryable error: with
/// `retry_count = 0` its job goes dead after one attempt.
struct Fails;

#[async_trait::async_trait]
impl Handler for Fails {
    fn job_type(&self) -> &str {
        "fails"
    }

    async fn run(&self, _job: JobContext) -> Result<(), JobError> {
        Err(JobError::retry("it always fails"))
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(Registration::new(crate::handlers::noop::Noop));
    registry.register(Registration::new(Fails));
    registry
}

/// A UTC file cron enqueueing a `noop` job. Overlap is `allow` because
/// most tests run no dispatcher, so every job stays pending; the overlap
/// test asks for `skip` itself.
fn spec(id: &str, expr: &str) -> CronSpec {
    CronSpec {
        id: id.to_string(),
        schedule: Schedule::parse(expr).expect("a test schedule"),
        timezone: TimeZone::UTC,
        timezone_name: "UTC".to_string(),
        description: format!("test cron {id}"),
        action: CronAction::Enqueue(JobTemplate {
            job_type: "noop".to_string(),
            data: Map::new(),
            retry_count: Some(0),
            timeout_s: None,
        }),
        overlap: Overlap::Allow,
        catch_up: CatchUp::None,
        enabled: true,
        disabled_by: None,
        source: Source::File,
    }
}

fn catching_up(mut spec: CronSpec) -> CronSpec {
    spec.catch_up = CatchUp::Once;
    spec
}

fn of_type(mut spec: CronSpec, job_type: &str) -> CronSpec {
    if let CronAction::Enqueue(t) = &mut spec.action {
        t.job_type = job_type.to_string();
    }
    spec
}

/// One daemon's queue and scheduler.
struct Node {
    queue: Queue,
    scheduler: Scheduler,
    shutdown: CancellationToken,
    turns: watch::Receiver<u64>,
}

impl Node {
    async fn start(
        store: Store,
        clock: &Arc<ManualClock>,
        dir: &Path,
        specs: Vec<CronSpec>,
        loader: Option<Loader>,
    ) -> Node {
        let shutdown = CancellationToken::new();
        let queue = Queue::new(
            store,
            registry(),
            Arc::new(Config::for_dir(dir)),
            clock.clone(),
            Instance::current(clock.now_ms()),
            shutdown.clone(),
        );
        let scheduler = Scheduler::new(queue.clone(), Vec::new(), specs, loader)
            .await
            .expect("scheduler");
        let (tx, turns) = watch::channel(0u64);
        let pulse: Pulse = Arc::new(move || tx.send_modify(|n| *n += 1));
        // A turn every hour at most: only clock moves and wake-ups turn it.
        scheduler.spawn(Some(pulse), Duration::from_secs(3600));
        let mut node = Node {
            queue,
            scheduler,
            shutdown,
            turns,
        };
        node.settled_after(0).await;
        node
    }

    fn turns(&self) -> u64 {
        *self.turns.borrow()
    }

    /// Waits for a turn after the `seen`th, then for every run it fired.
    async fn settled_after(&mut self, seen: u64) {
        tokio::time::timeout(WAIT, async {
            self.turns
                .wait_for(|n| *n > seen)
                .await
                .expect("scheduler alive");
            // The loop itself is one task; the rest are runs being fired.
            while self.scheduler.inner.tasks.len() > 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the scheduler took a turn and finished firing");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, async {
            self.scheduler.wait_stopped().await;
            self.queue.wait_stopped().await;
        })
        .await
        .expect("stopped");
    }
}

/// Sets the clock and waits until every node has looked at the new time.
async fn move_clock(clock: &ManualClock, to: Timestamp, nodes: &mut [&mut Node]) {
    let seen: Vec<u64> = nodes.iter().map(|n| n.turns()).collect();
    clock.set(to);
    for (node, seen) in nodes.iter_mut().zip(seen) {
        node.settled_after(seen).await;
    }
}

/// One store, one clock, one scheduler.
struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    node: Node,
}

impl Harness {
    async fn start(specs: Vec<CronSpec>) -> Harness {
        Harness::with_loader(specs, None).await
    }

    async fn with_loader(specs: Vec<CronSpec>, loader: Option<Loader>) -> Harness {
        let (dir, store) = open_temp();
        let clock = Arc::new(ManualClock::new(at(START)));
        let node = Node::start(store.clone(), &clock, dir.path(), specs, loader).await;
        Harness {
            _dir: dir,
            store,
            clock,
            node,
        }
    }

    async fn move_to(&mut self, to: &str) {
        move_clock(&self.clock, at(to), &mut [&mut self.node]).await;
    }

    /// Persists a switch and waits for the turn it wakes.
    async fn set_enabled(&mut self, id: &str, enabled: bool) {
        let seen = self.node.turns();
        self.node
            .scheduler
            .set_enabled(id, enabled)
            .await
            .expect("switch");
        self.node.settled_after(seen).await;
    }

    async fn runs(&self, id: &str) -> Vec<RunRow> {
        runs(&self.store, id).await
    }

    async fn scheduled(&self, id: &str) -> Vec<(i64, String)> {
        self.runs(id)
            .await
            .into_iter()
            .map(|r| (r.scheduled_for, r.trigger))
            .collect()
    }

    fn next_run(&self, id: &str) -> Option<i64> {
        self.node.scheduler.view(id).expect("known cron").next_run
    }
}

/// A cron's runs, oldest first.
async fn runs(store: &Store, id: &str) -> Vec<RunRow> {
    let mut runs = store.runs(id.to_string(), 1000).await.expect("runs");
    runs.reverse();
    runs
}

async fn pending_jobs(store: &Store, job_type: &str, now: i64) -> u64 {
    store
        .counts(now)
        .await
        .expect("counts")
        .get(job_type)
        .and_then(|by_status| by_status.get(&JobStatus::Pending).copied())
        .unwrap_or(0)
}

fn schedule(text: &str) -> (i64, String) {
    (ms(text), "schedule".to_string())
}

fn catch_up(text: &str) -> (i64, String) {
    (ms(text), "catch_up".to_string())
}

#[tokio::test]
async fn a_cron_fires_at_its_time_and_records_the_run() {
    let mut h = Harness::start(vec![
        spec("every_minute", "* * * * *"),
        spec("hourly", "0 * * * *"),
    ])
    .await;
    assert_eq!(h.next_run("every_minute"), Some(ms("00:01:00")));

    h.move_to("00:00:59.999").await;
    assert!(h.runs("every_minute").await.is_empty(), "fired early");

    h.move_to("00:01:00").await;
    let runs = h.runs("every_minute").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.scheduled_for, ms("00:01:00"));
    assert_eq!(run.started, Some(ms("00:01:00")));
    assert_eq!(run.trigger, "schedule");
    // The run follows the job it enqueued, which no one has run yet.
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.job_id.is_some());
    assert_eq!(pending_jobs(&h.store, "noop", ms("00:01:00")).await, 1);
    assert!(h.runs("hourly").await.is_empty());
    assert_eq!(h.next_run("every_minute"), Some(ms("00:02:00")));
    h.node.stop().await;
}

#[tokio::test]
async fn a_wall_clock_moving_backward_never_fires_a_run_twice() {
    let mut h = Harness::start(vec![catching_up(spec("a", "* * * * *"))]).await;
    h.move_to("00:01:00").await;
    h.move_to("00:00:10").await;
    h.move_to("00:01:00").await;
    h.move_to("00:01:59").await;
    assert_eq!(h.scheduled("a").await, vec![schedule("00:01:00")]);

    // Back across midnight, then forward past the fired minute again.
    h.move_to("2025-12-31T23:58:00Z").await;
    h.move_to("00:00:00").await;
    h.move_to("00:01:30").await;
    assert_eq!(h.scheduled("a").await, vec![schedule("00:01:00")]);

    h.move_to("00:02:00").await;
    assert_eq!(
        h.scheduled("a").await,
        vec![schedule("00:01:00"), schedule("00:02:00")]
    );
    h.node.stop().await;
}

#[tokio::test]
async fn a_forward_step_under_three_hours_fires_at_most_one_run_per_cron() {
    let mut h = Harness::start(vec![
        catching_up(spec("once", "* * * * *")),
        spec("none", "* * * * *"),
        catching_up(spec("five", "*/5 * * * *")),
    ])
    .await;
    // Late for one fire time is not missing it: that is a scheduled run.
    h.move_to("00:01:20").await;
    assert_eq!(h.scheduled("once").await, vec![schedule("00:01:00")]);
    assert_eq!(h.scheduled("none").await, vec![schedule("00:01:00")]);

    // Two hours pass at once (a suspend): the latest missed run, once.
    h.move_to("02:01:20").await;
    assert_eq!(
        h.scheduled("once").await,
        vec![schedule("00:01:00"), catch_up("02:01:00")]
    );
    assert_eq!(h.scheduled("none").await, vec![schedule("00:01:00")]);
    assert_eq!(h.scheduled("five").await, vec![catch_up("02:00:00")]);

    h.move_to("02:02:00").await;
    assert_eq!(h.runs("once").await.len(), 3);
    assert_eq!(
        h.scheduled("none").await,
        vec![schedule("00:01:00"), schedule("02:02:00")]
    );
    assert_eq!(h.runs("five").await.len(), 1);
    h.node.stop().await;
}

#[tokio::test]
async fn a_jump_over_three_hours_fires_nothing_missed() {
    let mut h = Harness::start(vec![
        catching_up(spec("once", "* * * * *")),
        spec("none", "* * * * *"),
    ])
    .await;
    h.move_to("03:30:30").await;
    assert!(h.runs("once").await.is_empty());
    assert!(h.runs("none").await.is_empty());
    assert_eq!(h.next_run("once"), Some(ms("03:31:00")));

    h.move_to("03:31:00").await;
    assert_eq!(h.scheduled("once").await, vec![schedule("03:31:00")]);
    assert_eq!(h.scheduled("none").await, vec![schedule("03:31:00")]);
    h.node.stop().await;
}

#[tokio::test]
async fn catch_up_once_fires_one_missed_run_at_start_up() {
    let (dir, store) = open_temp();
    let clock = Arc::new(ManualClock::new(at(START)));
    let specs = vec![
        catching_up(spec("once", "* * * * *")),
        spec("none", "* * * * *"),
    ];
    let mut first = Node::start(store.clone(), &clock, dir.path(), specs.clone(), None).await;
    move_clock(&clock, at("00:01:00"), &mut [&mut first]).await;
    first.stop().await;

    // Down for an hour and a half; a cron never run before has nothing to catch up.
    clock.set(at("01:30:30"));
    let mut specs = specs;
    specs.push(catching_up(spec("new", "* * * * *")));
    let mut second = Node::start(store.clone(), &clock, dir.path(), specs, None).await;
    let scheduled = |runs: Vec<RunRow>| -> Vec<(i64, String)> {
        runs.into_iter()
            .map(|r| (r.scheduled_for, r.trigger))
            .collect()
    };
    assert_eq!(
        scheduled(runs(&store, "once").await),
        vec![schedule("00:01:00"), catch_up("01:30:00")]
    );
    assert_eq!(
        scheduled(runs(&store, "none").await),
        vec![schedule("00:01:00")]
    );
    assert!(runs(&store, "new").await.is_empty());

    move_clock(&clock, at("01:31:00"), &mut [&mut second]).await;
    assert_eq!(
        scheduled(runs(&store, "once").await),
        vec![
            schedule("00:01:00"),
            catch_up("01:30:00"),
            schedule("01:31:00")
        ]
    );
    second.stop().await;
}

#[tokio::test]
async fn overlap_skip_records_skipped_while_the_job_is_pending_and_allow_fires() {
    let mut skip = spec("skip", "* * * * *");
    skip.overlap = Overlap::Skip;
    let mut h = Harness::start(vec![skip, spec("allow", "* * * * *")]).await;
    h.move_to("00:01:00").await;
    h.move_to("00:02:00").await;

    let runs = h.runs("skip").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Running);
    assert_eq!(runs[1].scheduled_for, ms("00:02:00"));
    assert_eq!(runs[1].status, RunStatus::Skipped);
    assert_eq!(runs[1].job_id, None);
    let job = runs[0].job_id.clone().expect("first run's job");
    let error = runs[1].error.clone().unwrap_or_default();
    assert!(error.contains(&job), "{error}");

    let runs = h.runs("allow").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Running && r.job_id.is_some())
    );
    // One job from `skip`, two from `allow`.
    assert_eq!(pending_jobs(&h.store, "noop", ms("00:02:00")).await, 3);
    h.node.stop().await;
}

#[tokio::test]
async fn two_schedulers_on_one_database_fire_each_minute_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronq.db");
    let open = || Store::sqlite(&path, JobDefaults::default()).expect("open");
    let (store_a, store_b) = (open(), open());
    let clock = Arc::new(ManualClock::new(at(START)));
    let specs = vec![spec("shared", "* * * * *")];
    let mut a = Node::start(store_a.clone(), &clock, dir.path(), specs.clone(), None).await;
    let mut b = Node::start(store_b, &clock, dir.path(), specs, None).await;

    for minute in 1..=5 {
        let to = at(&format!("00:0{minute}:00"));
        move_clock(&clock, to, &mut [&mut a, &mut b]).await;
    }
    let runs = runs(&store_a, "shared").await;
    let minutes: Vec<i64> = runs.iter().map(|r| r.scheduled_for).collect();
    let expected: Vec<i64> = (1..=5).map(|m| ms(&format!("00:0{m}:00"))).collect();
    assert_eq!(minutes, expected, "{runs:?}");
    assert!(runs.iter().all(|r| r.job_id.is_some()));
    // The loser of each race enqueued nothing.
    assert_eq!(pending_jobs(&store_a, "noop", ms("00:05:00")).await, 5);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_file_crons_run_follows_its_job_to_ok_or_failed() {
    let mut h = Harness::start(vec![
        spec("good", "* * * * *"),
        of_type(spec("bad", "* * * * *"), "fails"),
    ])
    .await;
    h.node.queue.spawn_dispatcher();
    h.move_to("00:01:00").await;

    let settled = |id: &'static str| {
        let store = h.store.clone();
        async move {
            tokio::time::timeout(WAIT, async {
                loop {
                    let runs = runs(&store, id).await;
                    if let [run] = runs.as_slice()
                        && run.status != RunStatus::Running
                    {
                        return run.clone();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{id}'s run did not end"))
        }
    };
    let good = settled("good").await;
    assert_eq!(good.status, RunStatus::Ok, "{good:?}");
    assert_eq!(good.error, None);
    assert!(good.finished.is_some());
    let bad = settled("bad").await;
    assert_eq!(bad.status, RunStatus::Failed, "{bad:?}");
    assert!(
        bad.error
            .as_deref()
            .unwrap_or("")
            .contains("it always fails"),
        "{bad:?}"
    );
    assert!(bad.finished.is_some());
    h.node.stop().await;
}

#[tokio::test]
async fn runs_are_pruned_to_the_last_hundred_per_cron() {
    let mut h = Harness::start(vec![spec("often", "* * * * *"), spec("other", "0 * * * *")]).await;
    let mut last = at("00:00:00");
    for _ in 0..105 {
        last += jiff::SignedDuration::from_mins(1);
        let to = last;
        move_clock(&h.clock, to, &mut [&mut h.node]).await;
    }
    let runs = h.runs("often").await;
    assert_eq!(runs.len(), 100);
    assert_eq!(runs[0].scheduled_for, ms("00:06:00"));
    assert_eq!(runs[99].scheduled_for, ms("01:45:00"));
    // Pruning is per cron: the hourly cron's one run is kept.
    assert_eq!(h.scheduled("other").await, vec![schedule("01:00:00")]);
    h.node.stop().await;
}

#[tokio::test]
async fn reload_reports_changes_and_a_failing_loader_changes_nothing() {
    let first = vec![
        spec("a", "* * * * *"),
        spec("b", "0 * * * *"),
        spec("c", "*/5 * * * *"),
    ];
    let file: Arc<Mutex<Result<Vec<CronSpec>, String>>> = Arc::new(Mutex::new(Ok(first.clone())));
    let loader: Loader = {
        let file = file.clone();
        Arc::new(move || file.lock().unwrap().clone())
    };
    let mut h = Harness::with_loader(first, Some(loader)).await;

    *file.lock().unwrap() = Ok(vec![
        spec("a", "* * * * *"),
        spec("b", "30 * * * *"),
        spec("d", "* * * * *"),
    ]);
    let seen = h.node.turns();
    let report = h.node.scheduler.reload().expect("reload");
    h.node.settled_after(seen).await;
    assert_eq!(
        report,
        ReloadReport {
            added: vec!["d".into()],
            removed: vec!["c".into()],
            changed: vec!["b".into()],
        }
    );
    let ids = |h: &Harness| -> Vec<(String, Option<i64>)> {
        h.node
            .scheduler
            .views()
            .into_iter()
            .map(|v| (v.spec.id, v.next_run))
            .collect()
    };
    let table = ids(&h);
    assert_eq!(
        table,
        vec![
            ("a".to_string(), Some(ms("00:01:00"))),
            ("b".to_string(), Some(ms("00:30:00"))),
            ("d".to_string(), Some(ms("00:01:00"))),
        ]
    );

    let fault = "crons.toml:3: schedule: minute field: 61 is out of range".to_string();
    *file.lock().unwrap() = Err(fault.clone());
    match h.node.scheduler.reload() {
        Err(SchedulerError::Reload(message)) => assert_eq!(message, fault),
        other => panic!("expected the loader's error, got {other:?}"),
    }
    assert_eq!(ids(&h), table);
    assert!(matches!(
        h.node.scheduler.view("c"),
        Err(SchedulerError::NotFound(_))
    ));

    for minute in 1..=5 {
        h.move_to(&format!("00:0{minute}:00")).await;
    }
    assert_eq!(h.runs("a").await.len(), 5);
    assert_eq!(h.runs("d").await.len(), 5);
    assert!(h.runs("b").await.is_empty());
    assert!(h.runs("c").await.is_empty(), "a removed cron fired");
    h.node.stop().await;
}

#[tokio::test]
async fn disable_stops_firing_and_enable_does_not_fire_what_passed() {
    let mut h = Harness::start(vec![catching_up(spec("a", "* * * * *"))]).await;
    h.move_to("00:01:00").await;
    h.set_enabled("a", false).await;
    assert!(!h.node.scheduler.view("a").unwrap().enabled);
    h.move_to("00:02:00").await;
    h.move_to("00:03:00").await;
    assert_eq!(h.scheduled("a").await, vec![schedule("00:01:00")]);

    h.move_to("00:03:30").await;
    h.set_enabled("a", true).await;
    assert_eq!(h.next_run("a"), Some(ms("00:04:00")));
    assert_eq!(h.scheduled("a").await, vec![schedule("00:01:00")]);
    assert_eq!(h.store.cron_switches().await.unwrap().get("a"), Some(&true));

    h.move_to("00:04:00").await;
    assert_eq!(
        h.scheduled("a").await,
        vec![schedule("00:01:00"), schedule("00:04:00")]
    );
    h.node.stop().await;
}

#[tokio::test]
async fn a_disable_on_one_daemon_stops_the_cron_on_every_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronq.db");
    let open = || Store::sqlite(&path, JobDefaults::default()).expect("open");
    let (store_a, store_b) = (open(), open());
    let clock = Arc::new(ManualClock::new(at(START)));
    let specs = vec![spec("shared", "* * * * *")];
    let mut a = Node::start(store_a.clone(), &clock, dir.path(), specs.clone(), None).await;
    let mut b = Node::start(store_b, &clock, dir.path(), specs, None).await;
    move_clock(&clock, at("00:01:00"), &mut [&mut a, &mut b]).await;

    // Switched off on a: b must not fire it either.
    a.scheduler
        .set_enabled("shared", false)
        .await
        .expect("disable");
    for minute in 2..=3 {
        move_clock(
            &clock,
            at(&format!("00:0{minute}:00")),
            &mut [&mut a, &mut b],
        )
        .await;
    }
    assert_eq!(
        runs(&store_a, "shared")
            .await
            .iter()
            .map(|r| r.scheduled_for)
            .collect::<Vec<_>>(),
        vec![ms("00:01:00")]
    );
    b.scheduler.sync_cluster().await.expect("sync");
    let on_b = b.scheduler.view("shared").unwrap();
    assert!(!on_b.enabled, "b shows a's disable");
    assert_eq!(on_b.disabled_by, Some(DisabledBy::Override));

    // Switched on again on b: the next minute fires, once.
    move_clock(&clock, at("00:03:30"), &mut [&mut a, &mut b]).await;
    b.scheduler
        .set_enabled("shared", true)
        .await
        .expect("enable");
    move_clock(&clock, at("00:04:00"), &mut [&mut a, &mut b]).await;
    assert_eq!(
        runs(&store_a, "shared")
            .await
            .iter()
            .map(|r| r.scheduled_for)
            .collect::<Vec<_>>(),
        vec![ms("00:01:00"), ms("00:04:00")]
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn daemons_whose_files_differ_mark_the_cron_until_they_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronq.db");
    let open = || Store::sqlite(&path, JobDefaults::default()).expect("open");
    let clock = Arc::new(ManualClock::new(at(START)));
    let file_b: Arc<Mutex<Vec<CronSpec>>> = Arc::new(Mutex::new(vec![
        spec("same", "0 * * * *"),
        spec("nightly", "0 3 * * *"),
    ]));
    let loader: Loader = {
        let file = file_b.clone();
        Arc::new(move || Ok(file.lock().unwrap().clone()))
    };
    let a_specs = vec![spec("same", "0 * * * *"), spec("nightly", "0 2 * * *")];
    let a = Node::start(open(), &clock, dir.path(), a_specs, None).await;
    let b_specs = file_b.lock().unwrap().clone();
    let b = Node::start(open(), &clock, dir.path(), b_specs, Some(loader)).await;
    a.queue.register().await.expect("register a");
    b.queue.register().await.expect("register b");
    for node in [&a, &b] {
        node.scheduler.sync_cluster().await.expect("sync");
    }
    a.scheduler.sync_cluster().await.expect("sync");
    let conflict = a
        .scheduler
        .view("nightly")
        .unwrap()
        .conflict
        .expect("a sees b's other nightly");
    assert_eq!(conflict.instances.len(), 1);
    assert_eq!(conflict.instances[0].id, b.queue.instance().id);
    assert_ne!(conflict.instances[0].digest, conflict.digest);
    assert_eq!(a.scheduler.view("same").unwrap().conflict, None);
    let on_b = b
        .scheduler
        .view("nightly")
        .unwrap()
        .conflict
        .expect("and b a's");
    assert_eq!(on_b.instances[0].id, a.queue.instance().id);

    // b's file is made to agree and reloaded: the mark goes on both.
    *file_b.lock().unwrap() = vec![spec("same", "0 * * * *"), spec("nightly", "0 2 * * *")];
    b.scheduler.reload().expect("reload");
    b.scheduler.sync_cluster().await.expect("sync");
    a.scheduler.sync_cluster().await.expect("sync");
    assert_eq!(a.scheduler.view("nightly").unwrap().conflict, None);
    assert_eq!(b.scheduler.view("nightly").unwrap().conflict, None);

    // A daemon that goes away takes its definitions with it.
    *file_b.lock().unwrap() = vec![spec("nightly", "0 4 * * *")];
    b.scheduler.reload().expect("reload");
    b.scheduler.sync_cluster().await.expect("sync");
    a.scheduler.sync_cluster().await.expect("sync");
    assert!(a.scheduler.view("nightly").unwrap().conflict.is_some());
    let b_id = b.queue.instance().id.clone();
    b.stop().await;
    a.queue
        .store()
        .remove_instances(vec![b_id])
        .await
        .expect("remove b");
    a.scheduler.sync_cluster().await.expect("sync");
    assert_eq!(a.scheduler.view("nightly").unwrap().conflict, None);
    a.stop().await;
}
