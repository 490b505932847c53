//! What is known, in memory only, about the jobs running now: each
//! attempt's cancel token (fired by a forced `cancel`) and the progress its
//! handler last reported; and the progress that jobs running on other
//! daemons reported through the relay.
//!
//! Progress is never written to the database: a handler may report on
//! every row, so the report is throttled to one a second per job here, kept
//! on the daemon running the job, published as a `progress` event, and, on
//! a shared database, relayed to the other daemons (at most one message a
//! second per running job), which keep the last one for `job` and `jobs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::events::{Event, Events, JobRef, Progress};
use crate::clock::{Clock, Millis};
use crate::store::job::Lease;

/// The shortest time between two accepted progress reports of one job.
pub const PROGRESS_EVERY_MS: i64 = 1000;
/// Longest progress `message`, in characters.
pub const MAX_PROGRESS_MESSAGE: usize = 500;
/// Cancels kept for jobs claimed here but not started, at most.
const MAX_DOOMED: usize = 10_000;
/// Other daemons' jobs whose progress is remembered at most.
const MAX_REMOTE: usize = 10_000;
/// A remembered remote progress older than this is forgotten when room
/// is needed.
const REMOTE_STALE_MS: i64 = 10 * 60 * 1000;

/// The live state; one per queue.
#[derive(Default)]
pub struct Live {
    running: Mutex<HashMap<String, Arc<Running>>>,
    /// Jobs this daemon holds reserved but has not started (claimed
    /// ahead) that a forced cancel reached first: cancelled on start.
    doomed: Mutex<HashSet<String>>,
    remote: Mutex<HashMap<String, (u32, Progress)>>,
}

/// One running attempt.
pub struct Running {
    pub lease: Lease,
    pub job: JobRef,
    /// Fired by a forced `cancel`; distinct from the shutdown token.
    pub cancel: CancellationToken,
    progress: Mutex<Option<Progress>>,
    /// When the last report was accepted (`i64::MIN`: never).
    last_report: AtomicI64,
}

impl Live {
    /// Registers a starting attempt; it is forgotten when the returned
    /// guard drops. A forced cancel that came before the start fires the
    /// token at once.
    pub fn start(self: &Arc<Live>, lease: &Lease, job: JobRef) -> Started {
        let running = Arc::new(Running {
            lease: lease.clone(),
            job,
            cancel: CancellationToken::new(),
            progress: Mutex::new(None),
            last_report: AtomicI64::new(i64::MIN),
        });
        if lock(&self.doomed).remove(&lease.job_id) {
            running.cancel.cancel();
        }
        lock(&self.running).insert(lease.job_id.clone(), running.clone());
        Started {
            live: self.clone(),
            running,
        }
    }

    /// Fires the cancel token of job `id` if it runs here: true when it
    /// does. `held` says that this daemon holds its reservation, so a job
    /// claimed ahead and not yet started is cancelled when it starts.
    pub fn cancel(&self, id: &str, held: bool) -> bool {
        if let Some(running) = lock(&self.running).get(id) {
            running.cancel.cancel();
            return true;
        }
        if held {
            let mut doomed = lock(&self.doomed);
            // Orders for jobs that never start here (ended meanwhile) are
            // not kept without bound.
            if doomed.len() >= MAX_DOOMED {
                doomed.clear();
            }
            doomed.insert(id.to_string());
        }
        held
    }

    /// A forced cancel is over (or the job ended first): nothing is left
    /// to cancel on start.
    pub fn forget_cancel(&self, id: &str) {
        lock(&self.doomed).remove(id);
    }

    /// The progress of job `id` in its attempt `attempt`, reported here or
    /// relayed from the daemon running it.
    pub fn progress_of(&self, id: &str, attempt: u32) -> Option<Progress> {
        if let Some(running) = lock(&self.running).get(id)
            && running.lease.attempt == attempt
        {
            return lock(&running.progress).clone();
        }
        match lock(&self.remote).get(id) {
            Some((a, progress)) if *a == attempt => Some(progress.clone()),
            _ => None,
        }
    }

    /// Remembers another daemon's report.
    pub fn remote_progress(&self, job: &JobRef, progress: Progress) {
        let mut remote = lock(&self.remote);
        if remote.len() >= MAX_REMOTE && !remote.contains_key(&job.id) {
            let stale_before = progress.at - REMOTE_STALE_MS;
            remote.retain(|_, (_, p)| p.at >= stale_before);
            if remote.len() >= MAX_REMOTE {
                return;
            }
        }
        remote.insert(job.id.clone(), (job.attempt, progress));
    }

    /// Another daemon's job ended: its progress is no longer news.
    pub fn remote_ended(&self, id: &str) {
        lock(&self.remote).remove(id);
    }
}

/// A registered attempt; unregistered when dropped.
pub struct Started {
    live: Arc<Live>,
    pub running: Arc<Running>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let mut running = lock(&self.live.running);
        // Only this attempt's entry: a later attempt may have replaced it.
        if running
            .get(&self.running.lease.job_id)
            .is_some_and(|r| Arc::ptr_eq(r, &self.running))
        {
            running.remove(&self.running.lease.job_id);
        }
    }
}

/// How a handler reports progress: [`crate::JobContext::progress`]. The
/// default reports to nobody (a context built outside the queue).
#[derive(Clone, Default)]
pub struct ProgressReporter {
    to: Option<Arc<Reporting>>,
}

struct Reporting {
    running: Arc<Running>,
    events: Events,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressReporter")
            .field("connected", &self.to.is_some())
            .finish()
    }
}

impl ProgressReporter {
    pub(super) fn new(running: Arc<Running>, events: Events, clock: Arc<dyn Clock>) -> Self {
        ProgressReporter {
            to: Some(Arc::new(Reporting {
                running,
                events,
                clock,
            })),
        }
    }

    /// Records a report unless one was accepted less than
    /// [`PROGRESS_EVERY_MS`] ago. Never waits, never writes to disk.
    pub fn report(&self, done: u64, total: Option<u64>, message: Option<String>) {
        let Some(to) = &self.to else { return };
        let now: Millis = to.clock.now_ms();
        let last = to.running.last_report.load(Ordering::Relaxed);
        if last != i64::MIN && now - last < PROGRESS_EVERY_MS {
            return;
        }
        // Two threads of one handler reporting at once: one of them wins.
        if to
            .running
            .last_report
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let message = message.map(|m| match m.char_indices().nth(MAX_PROGRESS_MESSAGE) {
            Some((end, _)) => m[..end].to_string(),
            None => m,
        });
        let progress = Progress {
            done,
            total,
            message,
            at: now,
        };
        *lock(&to.running.progress) = Some(progress.clone());
        to.events
            .publish_progress(Event::progress(to.running.job.clone(), progress));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn lease(id: &str, attempt: u32) -> Lease {
        Lease {
            job_id: id.into(),
            attempt,
            instance: "me".into(),
        }
    }

    fn job_ref(id: &str) -> JobRef {
        JobRef {
            id: id.into(),
            name: "n".into(),
            job_type: "noop".into(),
            attempt: 1,
            cron_id: None,
        }
    }

    #[test]
    fn reports_are_throttled_to_one_a_second_and_kept_per_attempt() {
        let live = Arc::new(Live::default());
        let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
        let started = live.start(&lease("a", 1), job_ref("a"));
        let reporter = ProgressReporter::new(started.running.clone(), Events::new(), clock.clone());
        reporter.report(1, Some(10), Some("rows".into()));
        reporter.report(2, Some(10), None);
        let p = live.progress_of("a", 1).unwrap();
        assert_eq!(
            (p.done, p.total, p.message.as_deref()),
            (1, Some(10), Some("rows"))
        );
        clock.advance(std::time::Duration::from_millis(999));
        reporter.report(3, None, None);
        assert_eq!(live.progress_of("a", 1).unwrap().done, 1);
        clock.advance(std::time::Duration::from_millis(1));
        reporter.report(4, None, Some("é".repeat(MAX_PROGRESS_MESSAGE + 5)));
        let p = live.progress_of("a", 1).unwrap();
        assert_eq!(p.done, 4);
        assert_eq!(p.message.unwrap().chars().count(), MAX_PROGRESS_MESSAGE);
        assert!(live.progress_of("a", 2).is_none(), "another attempt's");
        drop(started);
        assert!(live.progress_of("a", 1).is_none());
        ProgressReporter::default().report(1, None, None);
    }

    #[test]
    fn a_cancel_reaches_a_running_or_a_claimed_job() {
        let live = Arc::new(Live::default());
        let started = live.start(&lease("a", 1), job_ref("a"));
        assert!(live.cancel("a", true));
        assert!(started.running.cancel.is_cancelled());
        assert!(!live.cancel("b", false), "neither running nor held here");
        assert!(live.cancel("b", true));
        let b = live.start(&lease("b", 1), job_ref("b"));
        assert!(b.running.cancel.is_cancelled(), "cancelled as it starts");
        drop(b);
        let b = live.start(&lease("b", 2), job_ref("b"));
        assert!(!b.running.cancel.is_cancelled(), "only once");
    }

    #[test]
    fn remote_progress_is_bounded() {
        let live = Live::default();
        let at = 1_800_000_000_000;
        for i in 0..MAX_REMOTE + 5 {
            let p = Progress {
                done: i as u64,
                total: None,
                message: None,
                at,
            };
            live.remote_progress(&job_ref(&i.to_string()), p);
        }
        assert_eq!(lock(&live.remote).len(), MAX_REMOTE);
        let later = Progress {
            done: 1,
            total: None,
            message: None,
            at: at + REMOTE_STALE_MS + 1,
        };
        live.remote_progress(&job_ref("new"), later);
        assert_eq!(live.progress_of("new", 1).unwrap().done, 1);
        live.remote_ended("new");
        assert!(live.progress_of("new", 1).is_none());
    }
}
