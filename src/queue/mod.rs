//! The job lifecycle: the model, the handler registry, the dispatcher that
//! claims batches and the workers that run them.
//!
//! [`Queue`] is the handle the rest of the daemon holds: the admin socket
//! and library callers enqueue through it, the `system_queue` cron drains
//! through it, and the daemon starts its background tasks from it.

mod dispatcher;
pub mod enqueue;
pub mod events;
pub mod handler;
pub mod import;
pub mod instance;
pub use crate::store::job;
pub mod limits;
pub mod live;
mod relay;
pub mod retry;
pub mod stats;
pub mod stop;
mod worker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::Config;
use crate::store::history::{PRUNE_BATCH, Prune, Pruned};
use crate::store::instance::InstanceRow;
use crate::store::job::Recovered;
use crate::store::run::{NewRun, RunRow, RunStatus};
use crate::store::tick::{Tick, Ticked};
use crate::store::{Store, StoreError};
use handler::Registry;
use instance::Instance;
use job::{Claimed, Enqueued, Lease, NewJob};
use stats::{Stats, TypeStats};

/// Why the queue refused or could not do something.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A job failed validation; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A job's payload is over `CRONQ_MAX_PAYLOAD_BYTES`.
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// What a `system_queue` run did.
#[derive(Debug, Clone, Default)]
pub struct SystemQueueRun {
    /// The run as recorded (`None` when none was asked for or another
    /// process had it).
    pub run: Option<RunRow>,
    pub fired: bool,
    pub report: DrainReport,
}

/// What one drain of the queue did, for `trigger system_queue`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub recovered: usize,
    pub processed: usize,
    pub failed: usize,
}

/// The queue: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    instance: Instance,
    /// The types this process claims: those of its enabled handlers.
    types: Vec<String>,
    /// Of `types`, those without a per-type limit: claimed as a whole.
    unlimited: Vec<String>,
    /// JOB_TYPE_CONCURRENCY and JOB_TYPE_RATE, and what each type holds.
    limits: limits::Limits,
    /// Whether jobs are claimed as they become ready (the dispatcher) and
    /// each minute (`system_queue`): the system_queue cron's switch, set
    /// by ENABLE_SYSTEM_QUEUE_CRON and by `enable`/`disable system_queue`.
    automatic: AtomicBool,
    /// A round of pruning after a tick is under way.
    pruning: AtomicBool,
    /// One permit per worker: JOB_MAX_WORKERS jobs at once, whoever claimed
    /// them (the dispatcher or a `system_queue` drain).
    slots: Arc<Semaphore>,
    busy: AtomicUsize,
    /// Claimed by the dispatcher, not yet taken by a worker.
    ready: Mutex<VecDeque<Claimed>>,
    /// One permit per outcome queued but not yet committed (see `worker`).
    outcomes: Arc<Semaphore>,
    /// A worker that takes the buffer below this wakes the dispatcher to
    /// claim more (once; the dispatcher sets it again).
    refill_below: AtomicUsize,
    /// The recent average time of a handler, in microseconds: how far
    /// ahead the dispatcher claims.
    pace_us: AtomicU64,
    /// Set while more jobs are about to be claimed: a worker that finds the
    /// buffer empty then waits for them instead of leaving.
    refilling: AtomicBool,
    /// Told when a claim is in (or turned out empty).
    filled: Notify,
    /// Poked by every enqueue so the dispatcher claims at once; also by
    /// workers as they free a slot or drain the buffer.
    wake: Notify,
    /// Reservations held by running workers, extended by the heartbeat,
    /// with the instant each attempt's timeout ends.
    leases: Mutex<HashMap<Lease, Instant>>,
    /// Bumped whenever jobs are stored or finish: the systemd STATUS line
    /// is recomputed on change, so an idle daemon does not wake for it.
    activity: tokio::sync::watch::Sender<u64>,
    last_heartbeat: Mutex<Instant>,
    stats: Stats,
    shutdown: CancellationToken,
    /// Cancelled by a forced stop (a second SIGTERM/SIGINT): running
    /// attempts are abandoned and their jobs handed back.
    halt: CancellationToken,
    /// Jobs a `system_queue` drain has claimed and not yet started.
    drain_waiting: AtomicUsize,
    tasks: TaskTracker,
    started: Instant,
    /// What happens, for watchers and waiters (`events`).
    events: events::Events,
    /// Running jobs' cancel tokens and progress (`live`).
    live: Arc<live::Live>,
    /// Forced cancels for other daemons, once the relay runs (`relay`).
    relay: std::sync::OnceLock<tokio::sync::mpsc::Sender<relay::CancelOrder>>,
}

impl Queue {
    pub fn new(
        store: Store,
        registry: Registry,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        instance: Instance,
        shutdown: CancellationToken,
    ) -> Queue {
        let types = registry.enabled_types();
        let uncommitted = AHEAD_BATCHES * config.batch_size.max(1);
        let limits = limits::Limits::new(&config);
        let automatic = AtomicBool::new(config.system_queue_cron);
        Queue {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_workers)),
                store,
                registry,
                config,
                clock,
                instance,
                unlimited: limits.unlimited(&types),
                types,
                limits,
                automatic,
                pruning: AtomicBool::new(false),
                busy: AtomicUsize::new(0),
                ready: Mutex::new(VecDeque::new()),
                outcomes: Arc::new(Semaphore::new(uncommitted)),
                refill_below: AtomicUsize::new(0),
                refilling: AtomicBool::new(false),
                filled: Notify::new(),
                pace_us: AtomicU64::new(INITIAL_PACE.as_micros() as u64),
                wake: Notify::new(),
                leases: Mutex::new(HashMap::new()),
                activity: tokio::sync::watch::Sender::new(0),
                last_heartbeat: Mutex::new(Instant::now()),
                stats: Stats::default(),
                shutdown,
                halt: CancellationToken::new(),
                drain_waiting: AtomicUsize::new(0),
                tasks: TaskTracker::new(),
                started: Instant::now(),
                events: events::Events::new(),
                live: Arc::default(),
                relay: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Validates and stores `jobs` all or nothing, then wakes the
    /// dispatcher. Field names in errors are prefixed `jobs[i].` when
    /// `batch` is set, as the protocol's batch form names them.
    pub async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        batch: bool,
    ) -> Result<Vec<Enqueued>, QueueError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(QueueError::ShuttingDown);
        }
        let config = &self.inner.config;
        let now = self.inner.clock.now_ms();
        for (i, job) in jobs.iter().enumerate() {
            let at = if batch {
                format!("jobs[{i}].")
            } else {
                String::new()
            };
            enqueue::validate(
                job,
                &self.inner.registry,
                config.max_payload_bytes,
                &at,
                now,
            )?;
        }
        let stored = self
            .inner
            .store
            .enqueue(jobs, now, config.max_pending)
            .await?;
        if stored.iter().any(|e| !e.duplicate) {
            self.inner.wake.notify_one();
            self.touch();
            let events = &self.inner.events;
            if events.wanted() {
                for e in stored.iter().filter(|e| !e.duplicate) {
                    let job = events::JobRef::of(&e.job, e.job.attempts);
                    events.publish(|| events::Event::job(events::EventKind::Enqueued, now, job));
                }
            }
        }
        Ok(stored)
    }

    /// Stores one job; the library's programmatic enqueue.
    pub async fn enqueue_one(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let mut stored = self.enqueue(vec![job], false).await?;
        stored
            .pop()
            .ok_or(QueueError::Invalid("no job was stored".into()))
    }

    /// Registers this daemon on the database, so the others can see it and
    /// tell when it dies. The daemon calls it once at start-up.
    pub async fn register(&self) -> Result<(), StoreError> {
        let now = self.inner.clock.now_ms();
        self.inner
            .store
            .register_instance(self.instance_row(now))
            .await
    }

    /// This daemon's row as of `now`, with its workers.
    fn instance_row(&self, now: crate::clock::Millis) -> InstanceRow {
        InstanceRow {
            workers_max: self.inner.config.max_workers as i64,
            workers_busy: self.busy() as i64,
            ..self.inner.instance.row(now)
        }
    }

    /// Every registered instance, oldest first, as the store has them; this
    /// daemon's own row with its workers of now.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let mut rows = self.inner.store.instances().await?;
        for row in rows.iter_mut().filter(|r| r.id == self.inner.instance.id) {
            row.workers_busy = self.busy() as i64;
            if let Some(offset) = self.inner.store.clock_offset_ms() {
                row.clock_offset_ms = offset;
            }
        }
        Ok(rows)
    }

    /// How many registered instances this daemon judges alive (itself
    /// included): those whose heartbeat is younger than the reservation
    /// timeout and whose process, if on this host, still runs.
    pub async fn live_instances(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let rows = inner.store.instances().await?;
        let now = inner.clock.now_ms();
        let timeout_ms = inner.config.reservation_timeout.as_millis() as i64;
        let shared = inner.store.shared();
        Ok(rows
            .iter()
            .filter(|row| !inner.instance.judges_dead(row, now, timeout_ms, shared))
            .count())
    }

    /// Releases reservations whose holder is gone: held by an instance that
    /// is provably dead, or not extended for JOB_RESERVATION_TIMEOUT. The
    /// daemon calls it at start-up, so a predecessor killed with -9 does
    /// not hold its jobs for minutes.
    pub async fn recover(&self) -> Result<Vec<Recovered>, QueueError> {
        let (tick, reserved) = self.tick(None, 0);
        let ticked = self.inner.store.tick(tick).await;
        self.inner.limits.settle(reserved, &[], Instant::now());
        let ticked = ticked?;
        self.after_tick(&ticked);
        Ok(ticked.recovered)
    }

    /// What one tick of the store is to do: heartbeat and extend always,
    /// then record `run`, recover, claim up to `limit` jobs (limited types
    /// each within the quota reserved for it, returned to be settled), and
    /// prune.
    fn tick(&self, run: Option<NewRun>, limit: usize) -> (Tick, limits::Reserved) {
        let inner = &self.inner;
        // Reserved before `now` is read: a job claimed under a rate limit
        // is stamped no earlier than its room in the window. Only for free
        // workers: a limited job is never claimed to wait.
        let room = limit.min(inner.slots.available_permits());
        let reserved = inner.limits.reserve(&inner.types, room, Instant::now());
        let now = inner.clock.now_ms();
        let timeout_ms = inner.config.reservation_timeout.as_millis() as i64;
        let judge_as = inner.instance.clone();
        let shared = inner.store.shared();
        // With the minute's system_queue run; with automatic processing
        // off there is none, and the heartbeats prune instead.
        let prune = (run.is_some() || !self.automatic()).then(|| self.prune_now(now));
        let tick = Tick {
            now,
            instance: self.instance_row(now),
            leases: self.held_leases(),
            run,
            stale_before: now - timeout_ms,
            judge: Box::new(move |row| judge_as.judges_dead(row, now, timeout_ms, shared)),
            types: inner.unlimited.clone(),
            limit,
            quotas: reserved.0.clone(),
            prune,
        };
        (tick, reserved)
    }

    /// What retention and the row caps prune at `now`.
    fn prune_now(&self, now: crate::clock::Millis) -> Prune {
        let config = &self.inner.config;
        let ago = |d: Duration| now.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64);
        Prune {
            history_before: Some(ago(config.history_retention)),
            history_max: Some(config.history_max),
            dead_before: config.dead_retention.map(ago),
            batch: PRUNE_BATCH,
        }
    }

    /// After a tick that pruned a whole batch of some kind: further rounds,
    /// each its own short transaction, until nothing is left (one such
    /// run at a time). An idle daemon never gets here.
    fn prune_more(&self, pruned: Pruned) {
        if pruned.history + pruned.dead > 0 {
            tracing::debug!(
                history = pruned.history,
                dead = pruned.dead,
                "pruned finished job records and dead jobs"
            );
        }
        if !pruned.more || self.inner.pruning.swap(true, Ordering::AcqRel) {
            return;
        }
        let queue = self.clone();
        self.inner.tasks.spawn(async move {
            let inner = &queue.inner;
            loop {
                if inner.shutdown.is_cancelled() {
                    break;
                }
                let prune = queue.prune_now(inner.clock.now_ms());
                match inner.store.prune(prune).await {
                    Ok(round) if round.more => tokio::task::yield_now().await,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not prune finished jobs: {e}; the next minute tries again");
                        break;
                    }
                }
            }
            inner.pruning.store(false, Ordering::Release);
        });
    }

    fn after_tick(&self, ticked: &Ticked) {
        self.heartbeat_done();
        self.log_recovery(
            &ticked.recovered,
            ticked.orphan_runs,
            self.still_held(&ticked.lost),
        );
        if !ticked.recovered.is_empty() {
            self.inner.wake.notify_one();
        }
    }

    /// The `system_queue` cron's work, in one transaction: heartbeat,
    /// record `run` (unless another process has it), recover stale and
    /// dead holders' reservations, claim up to JOB_BATCH_SIZE ready jobs;
    /// then run them and return when all have finished.
    pub async fn run_system_queue(
        &self,
        run: Option<NewRun>,
    ) -> Result<SystemQueueRun, StoreError> {
        let inner = &self.inner;
        let (tick, reserved) = self.tick(run, inner.config.batch_size);
        let ticked = inner.store.tick(tick).await;
        let claimed = ticked.as_ref().map_or(&[][..], |t| t.claimed.as_slice());
        inner.limits.settle(reserved, claimed, Instant::now());
        let ticked = ticked?;
        self.after_tick(&ticked);
        self.prune_more(ticked.pruned);
        if !ticked.fired {
            self.fallback_poll();
        }
        let mut out = SystemQueueRun {
            run: ticked.run,
            fired: ticked.fired,
            report: DrainReport {
                recovered: ticked.recovered.len(),
                ..DrainReport::default()
            },
        };
        if ticked.claimed.is_empty() {
            return Ok(out);
        }
        let (processed, failed) = self.run_claimed(ticked.claimed).await;
        out.report.processed = processed;
        out.report.failed = failed;
        if let Some(run) = &out.run {
            out.run = inner
                .store
                .finish_run(run.id, RunStatus::Ok, None, inner.clock.now_ms())
                .await?;
        }
        Ok(out)
    }

    /// Runs claimed jobs as workers free up, handing back those not started
    /// when shutdown comes; returns how many ran and how many failed.
    async fn run_claimed(&self, claimed: Vec<Claimed>) -> (usize, usize) {
        let inner = &self.inner;
        let mut runs = tokio::task::JoinSet::new();
        let mut waiting = Waiting::new(&inner.drain_waiting, claimed.len());
        let mut pending = claimed.into_iter();
        while let Some(job) = pending.next() {
            let permit = tokio::select! {
                permit = inner.slots.clone().acquire_owned() => permit,
                () = inner.shutdown.cancelled() => {
                    let leases = std::iter::once(job).chain(pending).map(|c| c.lease).collect();
                    self.release(leases).await;
                    break;
                }
            };
            let Ok(permit) = permit else { break };
            waiting.started_one();
            runs.spawn(worker::run_one(self.clone(), job, permit));
        }
        drop(waiting);
        let (mut processed, mut failed) = (0, 0);
        while let Some(outcome) = runs.join_next().await {
            processed += 1;
            if !matches!(outcome, Ok(true)) {
                failed += 1;
            }
        }
        (processed, failed)
    }

    fn log_recovery(&self, recovered: &[Recovered], orphan_runs: usize, lost: usize) {
        for r in recovered {
            tracing::warn!(
                job_id = %r.job_id,
                job_type = %r.job_type,
                attempt = r.attempt,
                dead = r.dead,
                "job {} ({}): released a reservation whose holder is gone, held for attempt {}{}",
                r.job_id,
                r.job_type,
                r.attempt,
                if r.dead { "; that was its last attempt, so it is dead" } else { "" }
            );
        }
        if orphan_runs > 0 {
            tracing::warn!(
                runs = orphan_runs,
                "{orphan_runs} cron run(s) left unfinished by a stopped daemon were marked failed"
            );
        }
        if lost > 0 {
            tracing::warn!(
                lost,
                "{lost} running job(s) lost their reservations to recovery; their outcomes will not be recorded"
            );
        }
    }

    /// Heartbeats this instance and extends running jobs' reservations when
    /// the last heartbeat is older than its interval. Called on every turn
    /// of the scheduler, whose turns come at least once a minute; a
    /// `system_queue` run heartbeats too, so usually this writes nothing.
    pub async fn heartbeat_if_due(&self) {
        let inner = &self.inner;
        // A little slack: the minute's system_queue run, dispatched on the
        // same turn, heartbeats as well; only a missed one should cost a write.
        let every = heartbeat_every(&inner.config);
        let due = lock(&inner.last_heartbeat).elapsed() >= every + every / 8;
        if !due {
            return;
        }
        let now = inner.clock.now_ms();
        // Where daemons of other hosts may die unseen, a heartbeat also
        // looks for them: their jobs go back once their heartbeat is older
        // than the reservation timeout, not at the next minute whose
        // system_queue run happens to do it (up to a minute later, and
        // never while system_queue is off).
        if inner.store.shared() {
            let (tick, reserved) = self.tick(None, 0);
            let ticked = inner.store.tick(tick).await;
            inner.limits.settle(reserved, &[], Instant::now());
            match ticked {
                Ok(ticked) => {
                    self.after_tick(&ticked);
                    self.prune_more(ticked.pruned);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not record this instance's heartbeat: {e}")
                }
            }
            self.fallback_poll();
            return;
        }
        if let Err(e) = inner
            .store
            .heartbeat_instance(self.instance_row(now), now)
            .await
        {
            tracing::warn!(error = %e, "could not record this instance's heartbeat: {e}");
            return;
        }
        match inner.store.extend(self.held_leases(), now).await {
            Ok(lost) => self.log_recovery(&[], 0, self.still_held(&lost)),
            Err(e) => {
                tracing::warn!(error = %e, "could not extend running jobs' reservations: {e}")
            }
        }
        self.heartbeat_done();
        self.fallback_poll();
        if !self.automatic() {
            // No system_queue minute prunes: the heartbeat does.
            match inner.store.prune(self.prune_now(now)).await {
                Ok(pruned) => self.prune_more(pruned),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not prune finished jobs: {e}; the next heartbeat tries again"
                ),
            }
        }
    }

    /// On a database other hosts share, a heartbeat that did not drain the
    /// queue (another node fired this minute's `system_queue`, or it is
    /// off) is also a claim pass: the fallback poll, riding on a wake-up
    /// the daemon makes anyway (each minute while `system_queue` runs,
    /// else at each heartbeat). Notifications are sent at commit for every
    /// way cronq makes a job ready (an enqueue, an application's INSERT or
    /// `cronq_enqueue`, a release, a recovery, a retry) and a reconnect
    /// makes a pass of its own, so this only catches what none of them
    /// announce: a failed job's retry coming due while the node that
    /// scheduled it is busy or gone, a notification lost. On a file,
    /// nothing to do.
    fn fallback_poll(&self) {
        if self.inner.store.shared() {
            self.inner.wake.notify_one();
        }
    }

    /// The reservations this process holds: running jobs' and those
    /// claimed ahead, which must not go stale while they wait.
    /// How many of the leases a write did not find this process still
    /// holds: those were lost to recovery. One whose job finished since was
    /// not lost: its outcome may commit before a write that listed it
    /// (outcomes join a writer operation queued before them; see
    /// `store::sqlite::outcomes`).
    fn still_held(&self, leases: &[Lease]) -> usize {
        let inner = &self.inner;
        // One lock at a time, as everywhere else.
        let not_running: Vec<&Lease> = {
            let running = lock(&inner.leases);
            leases.iter().filter(|l| !running.contains_key(l)).collect()
        };
        let ready = lock(&inner.ready);
        let gone = not_running
            .iter()
            .filter(|l| !ready.iter().any(|c| &c.lease == **l))
            .count();
        leases.len() - gone
    }

    fn held_leases(&self) -> Vec<Lease> {
        let inner = &self.inner;
        let mut leases: Vec<Lease> = lock(&inner.leases).keys().cloned().collect();
        leases.extend(lock(&inner.ready).iter().map(|c| c.lease.clone()));
        leases
    }

    /// The next claimed job for a worker; none when the buffer is empty or
    /// shutdown has begun (what is left is the dispatcher's to hand back).
    fn take_ready(&self) -> Option<Claimed> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return None;
        }
        let mut ready = lock(&inner.ready);
        let job = ready.pop_front()?;
        if ready.len() < inner.refill_below.load(Ordering::Relaxed) {
            inner.refill_below.store(0, Ordering::Relaxed);
            inner.refilling.store(true, Ordering::Release);
            inner.wake.notify_one();
        }
        Some(job)
    }

    /// The dispatcher's claim is in, or it claims nothing now: workers
    /// waiting for jobs look again, and leave if there are none.
    fn refilled(&self) {
        self.inner.refilling.store(false, Ordering::Release);
        self.inner.filled.notify_waiters();
    }

    /// Records how long a handler took, for [`Queue::claim_ahead`].
    fn pace(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let pace = &self.inner.pace_us;
        let old = pace.load(Ordering::Relaxed);
        // A moving average over the last eight or so jobs; racing workers
        // may drop a sample, which an average can afford.
        let new = old - old / 8 + sample / 8;
        pace.store(new, Ordering::Relaxed);
    }

    /// How many jobs to claim beyond the free workers: what the workers get
    /// through in [`CLAIM_AHEAD`] at their recent pace, at most
    /// [`AHEAD_BATCHES`] x JOB_BATCH_SIZE.
    fn claim_ahead(&self) -> usize {
        let inner = &self.inner;
        let pace = inner.pace_us.load(Ordering::Relaxed).max(1);
        let per_worker = CLAIM_AHEAD.as_micros() as u64 / pace;
        (per_worker as usize)
            .saturating_mul(inner.config.max_workers)
            .min(AHEAD_BATCHES * inner.config.batch_size)
    }

    fn heartbeat_done(&self) {
        *lock(&self.inner.last_heartbeat) = Instant::now();
    }

    /// Starts the dispatcher, which claims jobs as they become ready.
    pub fn spawn_dispatcher(&self) {
        self.inner.tasks.spawn(dispatcher::run(self.clone()));
    }

    /// Starts the task that keeps running jobs' reservations alive while
    /// they finish after shutdown (before, the scheduler's turns do it).
    pub fn spawn_heartbeat(&self) {
        self.inner.tasks.spawn(dispatcher::heartbeat(self.clone()));
    }

    /// Waits for the dispatcher, the heartbeat and every running job to end
    /// after the shutdown token was cancelled.
    pub async fn wait_stopped(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Hands reservations back untouched, as if never claimed.
    async fn release(&self, leases: Vec<Lease>) {
        let n = leases.len();
        match self
            .inner
            .store
            .release(leases, self.inner.clock.now_ms())
            .await
        {
            Ok(released) => tracing::info!(
                released,
                claimed = n,
                "released jobs not started before shutdown"
            ),
            Err(e) => {
                tracing::warn!(error = %e, jobs = n, "could not release {n} job(s) not started before shutdown: {e}; they are recovered at the next start")
            }
        }
    }

    /// Tells the dispatcher that jobs may have become ready.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Signals that the queue's figures changed.
    pub(crate) fn touch(&self) {
        self.inner.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever jobs are stored or finish.
    pub fn activity(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.activity.subscribe()
    }

    /// How long the running job with the most time left may still take.
    pub fn longest_remaining(&self) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.inner.leases)
            .values()
            .map(|deadline| deadline.saturating_duration_since(now))
            .max()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn instance(&self) -> &Instance {
        &self.inner.instance
    }

    /// Workers running a job now.
    pub fn busy(&self) -> usize {
        self.inner.busy.load(Ordering::Relaxed)
    }

    /// Jobs this daemon holds reserved (the store counts them `running`)
    /// without a worker running them: claimed ahead of a free worker, or
    /// finished with their outcome not yet committed. `busy()` plus this is
    /// what this daemon accounts for of the store's `running` count.
    pub fn claimed(&self) -> usize {
        let inner = &self.inner;
        let uncommitted = (AHEAD_BATCHES * inner.config.batch_size.max(1))
            .saturating_sub(inner.outcomes.available_permits());
        lock(&inner.ready).len() + inner.drain_waiting.load(Ordering::Relaxed) + uncommitted
    }

    /// The ids of the jobs running in this daemon's workers now.
    pub fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.inner.leases)
            .keys()
            .map(|lease| lease.job_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Forces a stop under way: running attempts are abandoned (a command's
    /// processes are ended), and their jobs handed back with the attempt
    /// not counted, for this daemon's next start or another to run.
    pub fn halt(&self) {
        self.inner.halt.cancel();
    }

    pub fn max_workers(&self) -> usize {
        self.inner.config.max_workers
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Whether jobs are claimed automatically: the system_queue cron is on
    /// (ENABLE_SYSTEM_QUEUE_CRON, then `enable`/`disable system_queue`).
    pub fn automatic(&self) -> bool {
        self.inner.automatic.load(Ordering::Relaxed)
    }

    /// Turns automatic processing on or off (the scheduler does, as the
    /// system_queue cron is switched); the dispatcher follows at once.
    pub fn set_automatic(&self, on: bool) {
        let was = self.inner.automatic.swap(on, Ordering::Relaxed);
        if was != on {
            tracing::info!(
                automatic = on,
                "automatic processing is {}",
                if on {
                    "on"
                } else {
                    "off: jobs wait for `trigger system_queue`"
                }
            );
            self.wake();
        }
    }

    /// The per-type limits, for `status` and `explain`.
    pub fn limits(&self) -> &limits::Limits {
        &self.inner.limits
    }

    /// Claims up to `want` ready jobs for the dispatcher: types with a
    /// per-type limit first, each within its quota and only for the free
    /// workers, then the others as one claim of batches (with no limit
    /// configured, just that claim).
    async fn claim_ready(
        &self,
        want: usize,
        now: crate::clock::Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        let inner = &self.inner;
        let (id, batch) = (&inner.instance.id, inner.config.batch_size);
        if inner.limits.is_empty() {
            return inner
                .store
                .claim_batches(id, &inner.types, want, batch, now)
                .await;
        }
        // Jobs of a limited type are claimed only for free workers, never
        // ahead: a claim counts as the job's start, so it must start now.
        let room = want.min(inner.slots.available_permits());
        let reserved = inner.limits.reserve(&inner.types, room, Instant::now());
        // Read after the reservation: the claim stamps the jobs with it.
        let now = now.max(inner.clock.now_ms());
        let limited = if reserved.0.is_empty() {
            Ok(Vec::new())
        } else {
            inner.store.claim_quotas(id, &reserved.0, now).await
        };
        inner.limits.settle(
            reserved,
            limited.as_deref().unwrap_or_default(),
            Instant::now(),
        );
        let mut claimed = limited?;
        let room = want.saturating_sub(claimed.len());
        if room > 0 && !inner.unlimited.is_empty() {
            let more = inner
                .store
                .claim_batches(id, &inner.unlimited, room, batch, now)
                .await?;
            claimed.extend(more);
        }
        // The limited ones first: they were claimed for free workers.
        Ok(claimed)
    }

    /// A job of `job_type` this daemon claimed is done with its worker:
    /// its type's concurrency quota grows, and the dispatcher claims again.
    fn limit_ended(&self, job_type: &str) {
        if self.inner.limits.ended(job_type) {
            self.wake();
        }
    }

    /// When a rate-limited type gets room again, for the dispatcher's sleep.
    fn limits_next_room(&self) -> Option<Instant> {
        self.inner.limits.next_room(Instant::now())
    }

    pub fn stats(&self) -> BTreeMap<String, TypeStats> {
        self.inner.stats.snapshot()
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The event bus: `watch`, `wait`, and the scheduler's and pause
    /// commands' events go through it.
    pub fn events(&self) -> &events::Events {
        &self.inner.events
    }

    /// The progress last reported by job `id` in attempt `attempt`, by
    /// this daemon's worker or, relayed, another daemon's.
    pub fn progress_of(&self, id: &str, attempt: u32) -> Option<events::Progress> {
        self.inner.live.progress_of(id, attempt)
    }
}

/// How much work, at the handlers' recent pace, the dispatcher claims ahead
/// of free workers. Long enough to cover a claim's commit under load (an
/// enqueue of a thousand jobs holds the writer for about 10 ms); short
/// enough that a job claimed ahead never waits long.
const CLAIM_AHEAD: Duration = Duration::from_millis(20);

/// Batches of JOB_BATCH_SIZE the dispatcher may hold claimed ahead, and
/// outcomes the workers may leave uncommitted: with fast jobs, 1 batch
/// kept the end-to-end bench at 18,000 jobs/s, 8 at 30,000. It is also
/// what a `kill -9` can make run twice, besides the running jobs: 400 jobs
/// with the defaults, and only for jobs of a few milliseconds or less.
const AHEAD_BATCHES: usize = 8;

/// The pace assumed before any job has run: slow enough that nothing is
/// claimed ahead until jobs prove fast.
const INITIAL_PACE: Duration = Duration::from_millis(100);

/// Counts a drain's claimed jobs as waiting until each is started; those
/// never started (released at shutdown) stop counting when it is dropped.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    left: usize,
}

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize, n: usize) -> Waiting<'a> {
        count.fetch_add(n, Ordering::Relaxed);
        Waiting { count, left: n }
    }

    fn started_one(&mut self) {
        if self.left > 0 {
            self.left -= 1;
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(self.left, Ordering::Relaxed);
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often this instance's heartbeat is written: often enough that the
/// reservation timeout never passes between two.
pub fn heartbeat_every(config: &Config) -> Duration {
    (config.reservation_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
