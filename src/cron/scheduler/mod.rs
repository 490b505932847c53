//! The scheduler: one task that sleeps until the earliest next fire of any
//! enabled cron, fires it exactly once, and records every run.
//!
//! "Exactly once" rests on the store: a run row `(cron_id, scheduled_for)`
//! is inserted under a unique index before anything fires, so a second
//! daemon on the same file, or this one restarted within the minute, finds
//! the row and fires nothing. The in-memory next-fire times only decide
//! when to look; they never move backward, so a wall clock stepping back
//! cannot bring a fired run round again.
//!
//! Whether a cron fires at all is its switch, and `enable`/`disable` on any
//! daemon of the database holds for all of them: the switches are read
//! again before anything is fired (`cluster.rs`, which also reports crons
//! files that define one id differently).

mod cluster;

pub use cluster::{Conflict, Peer};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::spec::{CatchUp, CronAction, CronSpec, DisabledBy, Overlap, SYSTEM_QUEUE};
use crate::clock::{Clock, Millis};
use crate::queue::events::Event;
use crate::queue::{DrainReport, Queue, QueueError};
use crate::store::run::{NewRun, RunRow, RunStatus, RunTrigger};
use crate::store::{Store, StoreError};

/// A forward step of the wall clock larger than this is a correction of a
/// wrong clock, not time that passed: nothing missed is fired for it.
const CLOCK_CORRECTION: SignedDuration = SignedDuration::from_hours(3);
/// A write transaction running longer than this means the database is
/// wedged: the watchdog is no longer pinged and systemd restarts us (on a
/// file; see `Backend::responsive` for a shared database).
const WRITER_STALL_LIMIT: Duration = Duration::from_secs(20);
/// Most missed fire times looked at when finding the latest one.
const MAX_MISSED_SCAN: usize = 100_000;
/// How long a turn waits for the cluster's switches before it fires with
/// the ones it knows (a database that does not answer).
const SYNC_LIMIT: Duration = Duration::from_secs(2);
/// Tries to record a due run while the database is busy or out of reach
/// (a server restarting); each try itself waits up to the busy timeout
/// (5 s) on a file, so together about a minute.
const FIRE_TRIES: u32 = 10;
const FIRE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Reads the crons file again, for `reload` and SIGHUP. The error names
/// the file and line at fault.
pub type Loader = Arc<dyn Fn() -> Result<Vec<CronSpec>, String> + Send + Sync>;

/// Called on every turn of the scheduler loop while the store's own
/// machinery works (`Backend::responsive`): the systemd watchdog's proof
/// of life.
pub type Pulse = Arc<dyn Fn() + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no cron has id {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Reload(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A cron as the admin commands show it.
#[derive(Debug, Clone)]
pub struct CronView {
    pub spec: CronSpec,
    /// In force now: a persisted `enable`/`disable`, else as declared.
    pub enabled: bool,
    /// Why it is off now; `None` when `enabled`.
    pub disabled_by: Option<DisabledBy>,
    pub next_run: Option<Millis>,
    /// Other daemons on the database whose crons file defines this cron
    /// differently; `None` when they agree (always for a built-in).
    pub conflict: Option<Conflict>,
}

/// What one firing did.
#[derive(Debug, Clone)]
pub struct Fired {
    /// `None` when another process had already fired this run.
    pub run: Option<RunRow>,
    /// The drain's counts, for `system_queue`.
    pub drain: Option<DrainReport>,
}

/// What `reload` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue,
    loader: Option<Loader>,
    table: Mutex<Table>,
    wake: Notify,
    /// When `system_queue` last fired, for `status`.
    last_tick: Mutex<Option<Millis>>,
    /// Bumped by every `system_queue` run: the PocketBase follower lists
    /// its collection then.
    ticks: tokio::sync::watch::Sender<u64>,
    /// Crons with a run in progress in this process, so a slow
    /// `system_queue` drain is not started again on top of itself.
    in_flight: Mutex<HashSet<String>>,
    tasks: TaskTracker,
}

struct Table {
    builtins: Vec<CronSpec>,
    crons: BTreeMap<String, CronSpec>,
    overrides: HashMap<String, bool>,
    next: HashMap<String, Timestamp>,
    cluster: cluster::Cluster,
}

impl Table {
    fn enabled(&self, spec: &CronSpec) -> bool {
        self.overrides
            .get(&spec.id)
            .copied()
            .unwrap_or(spec.enabled)
    }
}

impl Scheduler {
    /// Builds the table from the built-in and file crons, with the
    /// persisted `enable`/`disable` overrides.
    pub async fn new(
        queue: Queue,
        builtins: Vec<CronSpec>,
        file: Vec<CronSpec>,
        loader: Option<Loader>,
    ) -> Result<Scheduler, SchedulerError> {
        let overrides = queue.store().cron_switches().await?;
        let now = queue.clock().now();
        let mut crons = BTreeMap::new();
        for spec in builtins.iter().cloned().chain(file) {
            crons.insert(spec.id.clone(), spec);
        }
        let next = crons
            .values()
            .filter_map(|s| Some((s.id.clone(), s.schedule.next_after(now, &s.timezone)?)))
            .collect();
        let table = Table {
            builtins,
            crons,
            overrides,
            next,
            cluster: cluster::Cluster::unpublished(),
        };
        // One switch for automatic processing: the system_queue cron's.
        if let Some(spec) = table.crons.get(SYSTEM_QUEUE) {
            queue.set_automatic(table.enabled(spec));
        }
        Ok(Scheduler {
            inner: Arc::new(Inner {
                queue,
                loader,
                table: Mutex::new(table),
                wake: Notify::new(),
                last_tick: Mutex::new(None),
                ticks: tokio::sync::watch::Sender::new(0),
                in_flight: Mutex::new(HashSet::new()),
                tasks: TaskTracker::new(),
            }),
        })
    }

    /// Starts the scheduler loop. `pulse` is called on each turn; turns come
    /// at least every `turn_every`.
    pub fn spawn(&self, pulse: Option<Pulse>, turn_every: Duration) {
        let this = self.clone();
        self.inner
            .tasks
            .spawn(async move { this.run(pulse, turn_every).await });
    }

    /// Waits for the loop and every run in progress to end after shutdown.
    pub async fn wait_stopped(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        self.inner.queue.clock()
    }

    fn store(&self) -> &Store {
        self.inner.queue.store()
    }

    pub fn views(&self) -> Vec<CronView> {
        let table = self.table();
        table
            .crons
            .values()
            .map(|spec| CronView {
                enabled: table.enabled(spec),
                disabled_by: match table.overrides.get(&spec.id) {
                    Some(true) => None,
                    Some(false) => Some(DisabledBy::Override),
                    None => spec.disabled_by,
                },
                next_run: table.next.get(&spec.id).map(|t| t.as_millisecond()),
                conflict: table.cluster.conflicts.get(&spec.id).cloned(),
                spec: spec.clone(),
            })
            .collect()
    }

    pub fn view(&self, id: &str) -> Result<CronView, SchedulerError> {
        self.views()
            .into_iter()
            .find(|v| v.spec.id == id)
            .ok_or_else(|| SchedulerError::NotFound(id.to_string()))
    }

    /// Changes at every `system_queue` run.
    pub fn ticks(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.ticks.subscribe()
    }

    pub fn last_tick(&self) -> Option<Millis> {
        *self
            .inner
            .last_tick
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a cron now, enabled or not, and returns when it has done its
    /// part: a drain finished, a job enqueued.
    pub async fn trigger(&self, id: &str) -> Result<Fired, SchedulerError> {
        let spec = self.view(id)?.spec;
        let now = self.clock().now();
        Ok(self.fire(spec, now, RunTrigger::Manual).await?)
    }

    /// Persists an `enable`/`disable`; it outlives restarts and reloads.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<CronView, SchedulerError> {
        self.view(id)?;
        let now = self.clock().now();
        self.store()
            .set_cron_enabled(id.to_string(), enabled, now.as_millisecond())
            .await?;
        {
            let mut table = self.table();
            table.overrides.insert(id.to_string(), enabled);
            table.cluster.switch_generation += 1;
            // Counted from now, so re-enabling never fires what passed while off.
            if let Some(spec) = table.crons.get(id).cloned()
                && let Some(at) = spec.schedule.next_after(now, &spec.timezone)
            {
                table.next.insert(id.to_string(), at);
            }
        }
        tracing::info!(cron_id = id, enabled, "cron switched");
        if id == SYSTEM_QUEUE {
            self.inner.queue.set_automatic(enabled);
        }
        self.inner.wake.notify_one();
        self.view(id)
    }

    /// Re-reads the crons file. A bad file changes nothing.
    pub fn reload(&self) -> Result<ReloadReport, SchedulerError> {
        let Some(loader) = &self.inner.loader else {
            return Ok(ReloadReport::default());
        };
        let file = loader().map_err(SchedulerError::Reload)?;
        let now = self.clock().now();
        let mut report = ReloadReport::default();
        {
            let mut table = self.table();
            let mut crons: BTreeMap<String, CronSpec> = table
                .builtins
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect();
            for spec in file {
                crons.insert(spec.id.clone(), spec);
            }
            for (id, spec) in &crons {
                match table.crons.get(id) {
                    None => report.added.push(id.clone()),
                    Some(old) if old != spec => report.changed.push(id.clone()),
                    Some(_) => continue,
                }
                match spec.schedule.next_after(now, &spec.timezone) {
                    Some(at) => table.next.insert(id.clone(), at),
                    None => table.next.remove(id),
                };
            }
            for id in table.crons.keys() {
                if !crons.contains_key(id) {
                    report.removed.push(id.clone());
                }
            }
            for id in &report.removed {
                table.next.remove(id);
            }
            table.crons = crons;
        }
        self.definitions_changed();
        tracing::info!(
            added = %report.added.join(","),
            removed = %report.removed.join(","),
            changed = %report.changed.join(","),
            "crons reloaded: {} added, {} removed, {} changed",
            report.added.len(),
            report.removed.len(),
            report.changed.len()
        );
        self.inner.wake.notify_one();
        Ok(report)
    }

    async fn run(self, pulse: Option<Pulse>, turn_every: Duration) {
        let shutdown = self.inner.queue.shutdown_token().clone();
        self.sync_before_firing().await;
        self.catch_up().await;
        let mut last_seen = self.clock().now();
        loop {
            let now = self.clock().now();
            let step = now.duration_since(last_seen);
            if step < -SignedDuration::from_secs(1) {
                tracing::warn!(
                    by_s = -step.as_secs(),
                    "the wall clock stepped back by {} s; runs already fired are not fired again",
                    -step.as_secs()
                );
            }
            if step > CLOCK_CORRECTION {
                tracing::warn!(
                    by_s = step.as_secs(),
                    "the wall clock jumped forward by {} s, more than 3 hours; \
                     treating it as a correction and firing no missed runs",
                    step.as_secs()
                );
                self.reschedule_all(now);
            }
            if self.due_or_unpublished(now) {
                self.sync_before_firing().await;
            }
            self.fire_due(now);
            last_seen = last_seen.max(now);

            // The scheduler's turn is the daemon's pulse: it proves to the
            // watchdog that this loop turns and the store works (see
            // `Backend::responsive`), and heartbeats when no system_queue
            // run did. The heartbeat waits at most half a turn, so a
            // database server that stopped answering cannot hold the turns,
            // and with them the watchdog's pings, back.
            if let Some(pulse) = &pulse
                && self.store().responsive(WRITER_STALL_LIMIT)
            {
                pulse();
            }
            let heartbeat = self.inner.queue.heartbeat_if_due();
            if tokio::time::timeout(turn_every / 2, heartbeat)
                .await
                .is_err()
            {
                tracing::warn!(
                    "this instance's heartbeat got no answer from the database in {} ms; trying again at the next turn",
                    (turn_every / 2).as_millis()
                );
            }
            let earliest = {
                let table = self.table();
                table
                    .crons
                    .values()
                    .filter(|s| table.enabled(s))
                    .filter_map(|s| table.next.get(&s.id).copied())
                    .min()
            };
            // Turns fall on multiples of `turn_every` (:00, :15, ...), so the
            // minute's system_queue fire and a turn are one wake-up, not two.
            let period = (turn_every.as_millis() as i64).max(1);
            let turn = Timestamp::from_millisecond((now.as_millisecond() / period + 1) * period)
                .unwrap_or(Timestamp::MAX);
            let until = earliest.map_or(turn, |e| e.min(turn));
            tokio::select! {
                () = self.clock().sleep_toward(until) => {}
                () = self.inner.wake.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        tracing::debug!("scheduler stopped");
    }

    /// Whether a cron (enabled here or not: another daemon may have enabled
    /// it) is due at `now`, or this daemon's definitions wait to be
    /// published.
    fn due_or_unpublished(&self, now: Timestamp) -> bool {
        let table = self.table();
        table.cluster.unpublished || table.next.values().any(|at| *at <= now)
    }

    /// Takes in the cluster's switches (and definitions) before firing;
    /// when the database does not answer in time, fires by the last known.
    async fn sync_before_firing(&self) {
        match tokio::time::timeout(SYNC_LIMIT, self.sync_cluster()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                error = %e,
                "could not read the crons' switches from the database ({e}); firing by the last known"
            ),
            Err(_) => tracing::warn!(
                "the database did not give the crons' switches in {} s; firing by the last known",
                SYNC_LIMIT.as_secs()
            ),
        }
    }

    fn reschedule_all(&self, now: Timestamp) {
        let mut table = self.table();
        let next: HashMap<_, _> = table
            .crons
            .values()
            .filter_map(|s| Some((s.id.clone(), s.schedule.next_after(now, &s.timezone)?)))
            .collect();
        table.next = next;
    }

    /// Fires every enabled cron whose next fire time has come: the one due
    /// run, or, when several were missed (a suspend, a stopped process), at
    /// most one: the latest, and only for `catch_up = "once"`.
    fn fire_due(&self, now: Timestamp) {
        let mut due = Vec::new();
        {
            let mut table = self.table();
            let ids: Vec<String> = table.crons.keys().cloned().collect();
            for id in ids {
                let Some(spec) = table.crons.get(&id).cloned() else {
                    continue;
                };
                let Some(next) = table.next.get(&id).copied() else {
                    continue;
                };
                if next > now {
                    continue;
                }
                if let Some(after) = spec.schedule.next_after(now, &spec.timezone) {
                    table.next.insert(id.clone(), after);
                } else {
                    table.next.remove(&id);
                }
                if !table.enabled(&spec) {
                    continue;
                }
                let latest = latest_fire(&spec, next, now);
                if latest == next {
                    due.push((spec, next, RunTrigger::Schedule));
                } else if spec.catch_up == CatchUp::Once {
                    due.push((spec, latest, RunTrigger::CatchUp));
                } else {
                    tracing::info!(
                        cron_id = %id,
                        first_missed = %next,
                        "runs were missed (the process was stopped or the clock jumped); \
                         catch_up is none, so none is fired"
                    );
                }
            }
        }
        for (spec, at, trigger) in due {
            let this = self.clone();
            self.inner
                .tasks
                .spawn(async move { this.fire_retrying_busy(spec, at, trigger).await });
        }
    }

    /// Fires a due run, trying again while another process holds the write
    /// lock, or the database server cannot be reached (a restart): without
    /// this, a run due then was dropped (the scheduler has already moved on
    /// to the next fire time). Retrying is safe: the run row's unique index
    /// makes a second try that finds the run recorded fire nothing.
    async fn fire_retrying_busy(&self, spec: CronSpec, at: Timestamp, trigger: RunTrigger) {
        let shutdown = self.inner.queue.shutdown_token().clone();
        let mut tries = 1;
        loop {
            match self.fire(spec.clone(), at, trigger).await {
                Ok(_) => return,
                Err(e)
                    if matches!(e, StoreError::Busy(_) | StoreError::Unwritable(_))
                        && tries < FIRE_TRIES =>
                {
                    tracing::warn!(cron_id = %spec.id, error = %e, tries, "cron {}: its run is not recorded yet ({e}); trying again", spec.id);
                    tries += 1;
                    tokio::select! {
                        () = tokio::time::sleep(FIRE_RETRY_PAUSE) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                Err(e) => {
                    tracing::error!(cron_id = %spec.id, error = %e, "cron {}: its run could not be recorded: {e}", spec.id);
                    return;
                }
            }
        }
    }

    /// At start-up: for each enabled `catch_up = "once"` cron that missed
    /// runs since its last recorded one, fire the latest missed run.
    async fn catch_up(&self) {
        let now = self.clock().now();
        let candidates: Vec<CronSpec> = {
            let table = self.table();
            table
                .crons
                .values()
                .filter(|s| s.catch_up == CatchUp::Once && table.enabled(s))
                .cloned()
                .collect()
        };
        for spec in candidates {
            let last = match self.store().last_scheduled(spec.id.clone()).await {
                Ok(Some(last)) => last,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(cron_id = %spec.id, error = %e, "cron {}: could not read its last run ({e}); no catch-up", spec.id);
                    continue;
                }
            };
            let Ok(last) = Timestamp::from_millisecond(last) else {
                continue;
            };
            let Some(first_missed) = spec.schedule.next_after(last, &spec.timezone) else {
                continue;
            };
            if first_missed > now {
                continue;
            }
            let missed = latest_fire(&spec, first_missed, now);
            if let Err(e) = self.fire(spec.clone(), missed, RunTrigger::CatchUp).await {
                tracing::error!(cron_id = %spec.id, error = %e, "cron {}: its catch-up run could not be recorded: {e}", spec.id);
            }
        }
    }

    /// One run of `spec` for `scheduled_for`.
    async fn fire(
        &self,
        spec: CronSpec,
        scheduled_for: Timestamp,
        trigger: RunTrigger,
    ) -> Result<Fired, StoreError> {
        let span = tracing::info_span!("cron", cron_id = %spec.id, trigger = trigger.as_str());
        self.fire_inner(spec, scheduled_for, trigger)
            .instrument(span)
            .await
    }

    async fn fire_inner(
        &self,
        spec: CronSpec,
        scheduled_for: Timestamp,
        trigger: RunTrigger,
    ) -> Result<Fired, StoreError> {
        let store = self.store();
        let queue = &self.inner.queue;
        let new_run = |status: RunStatus, error: Option<String>| NewRun {
            cron_id: spec.id.clone(),
            scheduled_for: scheduled_for.as_millisecond(),
            trigger,
            status,
            now: self.clock().now_ms(),
            instance: queue.instance().id.clone(),
            error,
        };

        if let Some(reason) = self.skip_reason(&spec, trigger).await? {
            tracing::info!(reason = %reason, "cron run skipped");
            let run = store
                .begin_run(new_run(RunStatus::Skipped, Some(reason.clone())))
                .await?;
            if run.is_some() {
                let (at, when) = (self.clock().now_ms(), scheduled_for.as_millisecond());
                queue
                    .events()
                    .publish(|| Event::cron_skipped(at, &spec.id, when, &reason));
            }
            return Ok(Fired { run, drain: None });
        }
        if let CronAction::SystemQueue = spec.action {
            return self.system_queue(new_run(RunStatus::Running, None)).await;
        }
        let Some(run) = store.begin_run(new_run(RunStatus::Running, None)).await? else {
            tracing::debug!(scheduled_for = %scheduled_for, "another process already fired this run");
            return Ok(Fired {
                run: None,
                drain: None,
            });
        };
        tracing::info!(scheduled_for = %scheduled_for, "cron run started");
        if !matches!(spec.action, CronAction::Enqueue(_)) {
            self.fired(&spec.id, scheduled_for.as_millisecond(), None);
        }
        let started = std::time::Instant::now();
        let _in_flight = InFlight::enter(&self.inner.in_flight, &spec.id);

        let outcome = match &spec.action {
            // Returned above: its run record is part of the queue's tick.
            CronAction::SystemQueue => Ok(()),
            CronAction::ClearExports => {
                let config = queue.config();
                let (dir, days) = (config.data_dir.clone(), config.export_retention_days);
                let cleared = tokio::task::spawn_blocking(move || {
                    crate::handlers::data::clear_exports(&dir, days, SystemTime::now())
                })
                .await;
                match cleared {
                    Ok(Ok(report)) => {
                        tracing::info!(
                            files_deleted = report.files_deleted,
                            bytes_freed = report.bytes_freed,
                            failures = report.failures,
                            "old exports cleared"
                        );
                        Ok(())
                    }
                    Ok(Err(e)) => Err(format!("clearing exports failed: {e}")),
                    Err(e) => Err(format!("clearing exports panicked: {e}")),
                }
            }
            CronAction::Enqueue(template) => {
                let job = template.new_job(&spec.id, &spec.description, run.id);
                match queue.enqueue_one(job).await {
                    Ok(stored) => {
                        tracing::info!(job_id = %stored.job.id, "cron enqueued its job");
                        self.fired(
                            &spec.id,
                            scheduled_for.as_millisecond(),
                            Some(&stored.job.id),
                        );
                        // The run now follows its job: the store ends it when
                        // the job succeeds or dies.
                        let mut run = run;
                        // As `runs` reads it: the stored status, a delay included.
                        run.job_status = Some(match stored.job.status {
                            crate::queue::job::JobStatus::Scheduled => "pending".to_string(),
                            other => other.as_str().to_string(),
                        });
                        run.job_id = Some(stored.job.id);
                        return Ok(Fired {
                            run: Some(run),
                            drain: None,
                        });
                    }
                    Err(QueueError::Store(e)) if e.is_unavailable() => Err(e.to_string()),
                    Err(e) => Err(format!("could not enqueue the cron's job: {e}")),
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let (status, error) = match outcome {
            Ok(()) => (RunStatus::Ok, None),
            Err(e) => (RunStatus::Failed, Some(e)),
        };
        match &error {
            None => tracing::info!(duration_ms, "cron run finished"),
            Some(error) => tracing::error!(
                duration_ms,
                error = %error,
                "cron {} run failed: {}",
                spec.id,
                crate::logging::first_line(error)
            ),
        }
        let run = store
            .finish_run(run.id, status, error, self.clock().now_ms())
            .await?;
        Ok(Fired { run, drain: None })
    }

    /// A `system_queue` run: recording the run, recovery and the claim are
    /// one transaction (an idle minute costs one write), then the claimed
    /// jobs run.
    async fn system_queue(&self, run: NewRun) -> Result<Fired, StoreError> {
        let _in_flight = InFlight::enter(&self.inner.in_flight, &run.cron_id);
        *self
            .inner
            .last_tick
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(run.now);
        self.inner.ticks.send_modify(|n| *n = n.wrapping_add(1));
        let started = std::time::Instant::now();
        let done = self.inner.queue.run_system_queue(Some(run)).await?;
        if !done.fired {
            tracing::debug!("another process already fired this run");
            return Ok(Fired {
                run: None,
                drain: None,
            });
        }
        let d = done.report;
        // An idle minute is not news to a watcher either (100 idle watchers
        // then cost nothing at all); one that did work is.
        if let Some(run) = done
            .run
            .as_ref()
            .filter(|_| d.processed > 0 || d.recovered > 0)
        {
            self.fired(&run.cron_id, run.scheduled_for, None);
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        // An idle minute is not news; one that did work is.
        if d.processed > 0 || d.recovered > 0 {
            tracing::info!(
                duration_ms,
                processed = d.processed,
                failed = d.failed,
                recovered = d.recovered,
                "cron run finished"
            );
        } else {
            tracing::debug!(duration_ms, "cron run finished; nothing to do");
        }
        Ok(Fired {
            run: done.run,
            drain: Some(d),
        })
    }

    /// Publishes a `cron_fired` event, if anyone watches.
    fn fired(&self, cron_id: &str, scheduled_for: Millis, job_id: Option<&str>) {
        let at = self.clock().now_ms();
        self.inner
            .queue
            .events()
            .publish(|| Event::cron_fired(at, cron_id, scheduled_for, job_id));
    }

    /// Why a run should not start: its previous run is still at work.
    async fn skip_reason(
        &self,
        spec: &CronSpec,
        trigger: RunTrigger,
    ) -> Result<Option<String>, StoreError> {
        if trigger == RunTrigger::Manual || spec.overlap == Overlap::Allow {
            return Ok(None);
        }
        if let CronAction::Enqueue(_) = spec.action {
            return Ok(self
                .store()
                .active_cron_job(spec.id.clone())
                .await?
                .map(|job| format!("the previous run's job {job} is still pending or running")));
        }
        let busy = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&spec.id);
        Ok(busy.then(|| "the previous run is still in progress".to_string()))
    }
}

/// The latest fire time of `spec` from `first` up to `now`.
fn latest_fire(spec: &CronSpec, first: Timestamp, now: Timestamp) -> Timestamp {
    let mut latest = first;
    for _ in 0..MAX_MISSED_SCAN {
        match spec.schedule.next_after(latest, &spec.timezone) {
            Some(at) if at <= now => latest = at,
            _ => break,
        }
    }
    latest
}

/// Marks a cron as running in this process while alive.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl<'a> InFlight<'a> {
    fn enter(set: &'a Mutex<HashSet<String>>, id: &str) -> InFlight<'a> {
        set.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        InFlight {
            set,
            id: id.to_string(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests;
