//! Everything `cronq top` knows about the daemon, fed by `watch` events and
//! by the poll, and nothing it does not need to draw.
//!
//! The state aggregates as it goes: an event adds to a per-second counter,
//! inserts or removes one running job, or pushes one failure into a ring;
//! no event is stored. Every collection has a cap ([`MAX_RUNNING`],
//! [`MAX_FAILURES`], and the caps of `wire`), so 20,000 events a second for
//! a day use the memory of the first second, and drawing (at most ten
//! times a second) reads a state that is always up to date.
//!
//! Two sources, one truth each: the poll (`status`, `stats`, `crons`) is
//! the truth for counts, the header and the crons; the running jobs and
//! the failures come from events while `watch` is live, and from the poll
//! (`jobs --status running/dead`) when it is not, or after the daemon said
//! events were dropped (`lagged`), which is when `needs_sync` is set.

use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::throughput::{Counter, Throughput};
use super::wire::{CronRow, Event, EventKind, JobRow, Progress, Stats, StatusInfo};

/// Most running jobs kept (the daemon runs JOB_MAX_WORKERS at once; this
/// bounds a daemon that never says a job ended).
pub const MAX_RUNNING: usize = 1000;
/// Recent failures kept.
pub const MAX_FAILURES: usize = 100;
/// Running jobs asked for per poll.
pub const POLL_RUNNING: usize = 200;
/// Dead jobs asked for per poll.
pub const POLL_DEAD: usize = 50;

/// The request connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Up,
    /// The last poll failed with `error`; the next try is at `retry_at`.
    Down {
        error: String,
        retry_at: Timestamp,
    },
}

/// The `watch` subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    Connecting,
    Live,
    /// The daemon answered `unknown_command`: polling only.
    Unsupported,
    Down(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub id: String,
    pub name: String,
    pub job_type: String,
    pub attempt: u32,
    pub started: Option<Timestamp>,
    pub progress: Option<Progress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub at: Option<Timestamp>,
    pub id: String,
    pub name: String,
    pub job_type: String,
    pub attempt: u32,
    pub error: Option<String>,
    /// No retry follows.
    pub dead: bool,
}

/// The status line's message: the daemon's answer to the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// The poll's answers, each `None` when not asked for this time or when
/// the daemon refused it (the refusal is in `errors`).
#[derive(Debug, Clone, Default)]
pub struct Poll {
    pub status: Option<Value>,
    pub stats: Option<Value>,
    pub crons: Option<Value>,
    pub running: Option<Value>,
    pub dead: Option<Value>,
    /// Scheduled jobs: those with a `last_error` are backing off.
    pub scheduled: Option<Value>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub socket: String,
    pub link: Link,
    pub watch: Watch,
    pub status: Option<StatusInfo>,
    /// When `status` was received, to advance its uptime between polls.
    pub status_at: Option<Timestamp>,
    pub stats: Stats,
    pub crons: Vec<CronRow>,
    pub running: BTreeMap<String, Running>,
    pub failures: VecDeque<Failure>,
    pub throughput: Throughput,
    /// Events the daemon dropped for this watcher, in total.
    pub lagged: u64,
    /// Running jobs and failures must be re-read from the poll.
    pub needs_sync: bool,
    pub message: Option<Message>,
    /// The last poll's refusals, shown until a poll has none.
    pub poll_errors: Vec<String>,
    /// `stats` totals (succeeded, failed, running) at the previous poll,
    /// for per-second figures while no events come.
    baseline: Option<(u64, u64, u64)>,
}

impl State {
    pub fn new(socket: String) -> State {
        State {
            socket,
            link: Link::Connecting,
            watch: Watch::Connecting,
            status: None,
            status_at: None,
            stats: Stats::default(),
            crons: Vec::new(),
            running: BTreeMap::new(),
            failures: VecDeque::new(),
            throughput: Throughput::default(),
            lagged: 0,
            needs_sync: true,
            message: None,
            poll_errors: Vec::new(),
            baseline: None,
        }
    }

    pub fn live(&self) -> bool {
        self.watch == Watch::Live
    }

    /// Whether the next poll must read the running and dead jobs.
    pub fn poll_jobs(&self) -> bool {
        !self.live() || self.needs_sync
    }

    /// One `watch` event, received at `now` (used when it has no `at`).
    pub fn apply_event(&mut self, e: Event, now: Timestamp) {
        let at = e.at.unwrap_or(now);
        let second = at.as_second();
        match e.kind {
            EventKind::Started => {
                self.throughput.add(second, Counter::Started, 1);
                if let Some(job) = e.job {
                    self.insert_running(Running {
                        id: job.id,
                        name: job.name,
                        job_type: job.job_type,
                        attempt: job.attempt,
                        started: Some(at),
                        progress: None,
                    });
                }
            }
            EventKind::Progress => {
                if let (Some(job), Some(p)) = (e.job, e.progress) {
                    match self.running.get_mut(&job.id) {
                        Some(r) => r.progress = Some(p),
                        None => self.insert_running(Running {
                            id: job.id,
                            name: job.name,
                            job_type: job.job_type,
                            attempt: job.attempt,
                            started: None,
                            progress: Some(p),
                        }),
                    }
                }
            }
            EventKind::Succeeded => {
                self.throughput.add(second, Counter::Succeeded, 1);
                self.end(e.job.as_ref().map(|j| j.id.as_str()));
                self.settled(e.job.as_ref().map(|j| j.id.as_str()));
            }
            EventKind::Failed | EventKind::Dead => {
                let dead = e.kind == EventKind::Dead;
                if let Some(job) = e.job {
                    self.end(Some(&job.id));
                    let failure = Failure {
                        at: Some(at),
                        id: job.id,
                        name: job.name,
                        job_type: job.job_type,
                        attempt: job.attempt,
                        error: e.error,
                        dead,
                    };
                    // A daemon may say `failed` and then `dead` of one
                    // attempt: that is one failure, now known to be final.
                    if !self.upgrade_to_dead(&failure) {
                        self.throughput.add(second, Counter::Failed, 1);
                        self.push_failure(failure);
                    }
                } else {
                    self.throughput.add(second, Counter::Failed, 1);
                }
            }
            EventKind::Cancelled => {
                self.end(e.job.as_ref().map(|j| j.id.as_str()));
                self.settled(e.job.as_ref().map(|j| j.id.as_str()));
            }
            EventKind::Paused | EventKind::Resumed => {
                if let (Some(paused), Some(status)) = (e.paused, self.status.as_mut()) {
                    status.paused = paused;
                }
            }
            EventKind::Lagged => {
                self.lagged = self.lagged.saturating_add(e.dropped);
                self.needs_sync = true;
            }
            // Counts and crons come from the poll, at most a second later.
            EventKind::Enqueued
            | EventKind::CronFired
            | EventKind::CronSkipped
            | EventKind::Other => {}
        }
    }

    fn insert_running(&mut self, r: Running) {
        if self.running.len() >= MAX_RUNNING && !self.running.contains_key(&r.id) {
            // Full: a daemon that never reports ends. The next sync
            // rebuilds the table from the daemon's own list.
            self.needs_sync = true;
            return;
        }
        self.running.insert(r.id.clone(), r);
    }

    fn end(&mut self, id: Option<&str>) {
        if let Some(id) = id {
            self.running.remove(id);
        }
    }

    /// A job that succeeded in the end (retried) or was cancelled is no
    /// longer a failure to act on: its failures leave the pane, which so
    /// agrees with the polled one (the jobs dead or retrying now).
    fn settled(&mut self, id: Option<&str>) {
        if let Some(id) = id {
            self.failures.retain(|f| f.id != id);
        }
    }

    fn upgrade_to_dead(&mut self, f: &Failure) -> bool {
        match self.failures.front_mut() {
            Some(last) if f.dead && !last.dead && last.id == f.id && last.attempt == f.attempt => {
                last.dead = true;
                if f.error.is_some() {
                    last.error = f.error.clone();
                }
                true
            }
            _ => false,
        }
    }

    /// Newest first.
    fn push_failure(&mut self, f: Failure) {
        self.failures.push_front(f);
        self.failures.truncate(MAX_FAILURES);
    }

    /// The poll's answers, received at `now`.
    pub fn apply_poll(&mut self, poll: Poll, now: Timestamp) {
        self.link = Link::Up;
        self.poll_errors = poll.errors;
        if let Some(s) = poll
            .status
            .as_ref()
            .and_then(|v| StatusInfo::deserialize(v).ok())
        {
            self.status = Some(s);
            self.status_at = Some(now);
        }
        if let Some(stats) = &poll.stats {
            self.stats = Stats::from_answer(stats);
            self.count_from_stats(now);
        }
        if let Some(crons) = &poll.crons {
            self.crons = CronRow::list(crons);
        }
        let synced = poll.running.is_some() && poll.dead.is_some();
        if let Some(running) = &poll.running {
            self.running = JobRow::list(running, MAX_RUNNING.min(POLL_RUNNING))
                .into_iter()
                .map(|j| {
                    let progress = j
                        .progress
                        .or_else(|| self.running.get(&j.id).and_then(|r| r.progress.clone()));
                    let r = Running {
                        id: j.id,
                        name: j.name,
                        job_type: j.job_type,
                        attempt: j.attempts,
                        started: j.reserved_at,
                        progress,
                    };
                    (r.id.clone(), r)
                })
                .collect();
        }
        if let Some(dead) = &poll.dead {
            let retrying = poll.scheduled.as_ref().map_or_else(Vec::new, |s| {
                JobRow::list(s, POLL_DEAD)
                    .into_iter()
                    .filter(|j| j.last_error.is_some())
                    .collect()
            });
            self.merge_failed(JobRow::list(dead, POLL_DEAD), retrying);
        }
        if synced {
            self.needs_sync = false;
        }
    }

    /// Per-second figures from `stats`' totals since the daemon started,
    /// while no events count them. A total that went down is a restarted
    /// daemon: a new baseline, not a negative rate.
    fn count_from_stats(&mut self, now: Timestamp) {
        let (mut ok, mut failed) = (0u64, 0u64);
        for t in &self.stats.types {
            ok = ok.saturating_add(t.succeeded);
            failed = failed.saturating_add(t.failed);
        }
        let running = self
            .stats
            .types
            .iter()
            .map(|t| t.counts.running)
            .sum::<u64>();
        let previous = self.baseline.replace((ok, failed, running));
        if self.live() {
            return;
        }
        let Some((ok0, failed0, running0)) = previous else {
            return;
        };
        if ok < ok0 || failed < failed0 {
            return;
        }
        let (d_ok, d_failed) = (ok - ok0, failed - failed0);
        // Every job that ended or is now running more than before started
        // since the last poll.
        let started = (d_ok + d_failed + running).saturating_sub(running0);
        // The poll's figures are the second that just ended.
        let second = now.as_second() - 1;
        self.throughput.add(second, Counter::Succeeded, d_ok);
        self.throughput.add(second, Counter::Failed, d_failed);
        self.throughput.add(second, Counter::Started, started);
    }

    /// Without events the failures pane is the daemon's dead jobs and the
    /// scheduled ones backing off after an error, newest first; with
    /// events, dead jobs the events did not show (from before `top`
    /// started, or dropped) are added and missing errors filled in.
    fn merge_failed(&mut self, dead: Vec<JobRow>, retrying: Vec<JobRow>) {
        let as_failure = |j: JobRow, dead: bool| Failure {
            at: j.updated,
            id: j.id,
            name: j.name,
            job_type: j.job_type,
            attempt: j.attempts,
            error: j.last_error,
            dead,
        };
        if !self.live() {
            let mut all: Vec<Failure> = dead
                .into_iter()
                .map(|j| as_failure(j, true))
                .chain(retrying.into_iter().map(|j| as_failure(j, false)))
                .collect();
            all.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
            all.truncate(MAX_FAILURES);
            self.failures = all.into();
            return;
        }
        for j in dead {
            if let Some(f) = self.failures.iter_mut().find(|f| f.id == j.id) {
                f.dead = true;
                if f.error.is_none() {
                    f.error = j.last_error;
                }
            } else if self.failures.len() < MAX_FAILURES {
                self.failures.push_back(as_failure(j, true));
            }
        }
    }

    /// The poll could not reach the daemon.
    pub fn unreachable(&mut self, error: String, retry_at: Timestamp) {
        self.link = Link::Down { error, retry_at };
    }

    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
        });
    }

    /// Whether `job_type` is paused (by name or by `*`).
    pub fn is_paused(&self, job_type: &str) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.paused.iter().any(|p| p == job_type || p == "*"))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
