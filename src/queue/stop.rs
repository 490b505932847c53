//! Cancelling jobs: a waiting job is deleted; a running one, with `force`,
//! is stopped.
//!
//! A forced cancel fires the attempt's own cancel token (not the shutdown
//! token: the daemon goes on). The handler is expected to return soon
//! after; the `command` handler ends its processes. One that has not
//! returned within [`CANCEL_GRACE`] is abandoned: its future is dropped,
//! which aborts its task and ends a command's process group, and whatever
//! it would have done is fenced away, because the job's row is deleted
//! under its lease. A handler that returns success despite the token did
//! its work: that job ends `succeeded`, and the cancel says so.
//!
//! A bulk cancel (a `filter`) takes only jobs that are not running, and
//! publishes each one's end as a single cancel does.
//!
//! A job running on another daemon (a shared PostgreSQL database) is
//! reached through the relay: a message names the job and its holder,
//! which fires the token there. It arrives within milliseconds while the
//! holder's LISTEN connection is up; the answer waits for the job's end
//! (a relayed event, or the row gone) for [`FORCE_WAIT`] at most.

use std::time::Duration;

use super::events::{Event, EventKind, JobRef};
use super::{Queue, QueueError};
use crate::store::StoreError;
use crate::store::history::{Bulk, BulkFilter};
use crate::store::job::{Ending, JobStatus, Lease, Refusal};

/// How long a handler may take to return after its cancel token fired
/// before it is abandoned.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// How long a forced cancel waits for the job to end before answering
/// that it could not confirm it.
pub const FORCE_WAIT: Duration = Duration::from_secs(15);
/// How often a forced cancel of another daemon's job looks at the row.
const RECHECK: Duration = Duration::from_millis(500);

/// What became of a cancel.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// The job is gone: deleted while waiting, or stopped while running.
    Cancelled,
    /// Nothing was done.
    Refused(Refusal),
    /// The job ended otherwise (`succeeded`, `dead`) before the stop took.
    EndedFirst(EventKind),
    /// It runs in another process this daemon has no channel to.
    RunningElsewhere { instance: String },
    /// Asked to stop, it had not ended within [`FORCE_WAIT`].
    NotConfirmed { instance: String },
}

impl Queue {
    /// Deletes job `id` if it is not running; with `force`, stops it if it
    /// is, and answers once it has ended.
    pub async fn cancel(&self, id: String, force: bool) -> Result<Cancel, QueueError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        // Registered before anything is asked, so no end slips by.
        let waiter = force.then(|| inner.events.wait_for(&id));
        let Some((job, _)) = inner.store.get(id.clone(), now).await? else {
            return Ok(Cancel::Refused(Refusal::NotFound));
        };
        match inner.store.cancel(id.clone(), now).await? {
            Ok(()) => {
                inner.events.job_ended(Event::job(
                    EventKind::Cancelled,
                    now,
                    JobRef::of(&job, job.attempts),
                ));
                self.touch();
                return Ok(Cancel::Cancelled);
            }
            Err(Refusal::WrongStatus(JobStatus::Running)) if force => {}
            Err(refusal) => return Ok(Cancel::Refused(refusal)),
        }
        let Some(waiter) = waiter else {
            return Ok(Cancel::Refused(Refusal::WrongStatus(JobStatus::Running)));
        };
        let holder = job.reserved_by.clone().unwrap_or_default();
        let here = holder == inner.instance.id;
        if here {
            inner.live.cancel(&id, true);
        } else if !self.relay_cancel(&id, &holder) {
            return Ok(Cancel::RunningElsewhere { instance: holder });
        }
        tracing::info!(job_id = %id, holder = %holder, "job {id}: asked to stop (forced cancel)");
        let recheck = async {
            loop {
                tokio::time::sleep(RECHECK).await;
                match inner.store.get(id.clone(), inner.clock.now_ms()).await {
                    // Gone: it ended; by the cancel unless its end says otherwise.
                    Ok(None) => {
                        return inner
                            .events
                            .recent_end(&id)
                            .map_or(EventKind::Cancelled, |e| e.kind);
                    }
                    Ok(Some((j, _))) if j.status != JobStatus::Running => {
                        return match j.status {
                            JobStatus::Dead => EventKind::Dead,
                            _ => EventKind::Failed,
                        };
                    }
                    _ => {}
                }
            }
        };
        let ended = tokio::select! {
            event = waiter.ended() => Some(event.kind),
            kind = recheck => Some(kind),
            () = tokio::time::sleep(FORCE_WAIT) => None,
        };
        inner.live.forget_cancel(&id);
        Ok(match ended {
            Some(EventKind::Cancelled) => Cancel::Cancelled,
            Some(kind) => Cancel::EndedFirst(kind),
            None => Cancel::NotConfirmed { instance: holder },
        })
    }
}

impl Queue {
    /// Cancels up to `filter.limit` matching jobs that are not running (a
    /// bulk `cancel`), each as [`Queue::cancel`] cancels one: its history
    /// record says `cancelled`, and its end is published, for watchers and
    /// waiters.
    pub async fn cancel_matching(&self, filter: BulkFilter) -> Result<Bulk, QueueError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let bulk = inner.store.cancel_matching(filter, now).await?;
        for job in &bulk.cancelled {
            let job = JobRef {
                id: job.id.clone(),
                name: job.name.clone(),
                job_type: job.job_type.clone(),
                attempt: job.attempts,
                cron_id: job.cron_id.clone(),
            };
            inner
                .events
                .job_ended(Event::job(EventKind::Cancelled, now, job));
        }
        if bulk.count > 0 {
            self.touch();
        }
        Ok(bulk)
    }
}

/// The worker's end of an attempt a forced cancel stopped: the row is
/// deleted under the lease, its history record written as `cancelled`
/// with what the attempt ran and returned, and the end published.
pub(super) async fn end_cancelled(
    queue: &Queue,
    lease: Lease,
    ending: Ending,
    job: JobRef,
    abandoned: bool,
) {
    let inner = &queue.inner;
    let now = inner.clock.now_ms();
    let id = lease.job_id.clone();
    let written = super::worker::write(|| {
        inner
            .store
            .cancel_running(lease.clone(), ending.clone(), now)
    })
    .await;
    match written {
        Ok(true) => {
            if abandoned {
                tracing::warn!(
                    "job {id} ({}) was cancelled while it ran; its handler did not stop within {} s \
                     and was abandoned",
                    job.job_type,
                    CANCEL_GRACE.as_secs()
                );
            } else {
                tracing::info!("job {id} ({}) was cancelled while it ran", job.job_type);
            }
            inner
                .events
                .job_ended(Event::job(EventKind::Cancelled, now, job));
        }
        Ok(false) => tracing::warn!(
            "job {id}: its reservation was taken over while it ran; the cancel was not recorded"
        ),
        Err(e) => log_unrecorded(&id, &e),
    }
    queue.touch();
    queue.wake();
}

fn log_unrecorded(id: &str, e: &StoreError) {
    tracing::error!(
        error = %e,
        "job {id}: could not record its cancel: {e}; it will run again after recovery"
    );
}

/// Resolves [`CANCEL_GRACE`] after `cancel` fires; never if it does not.
pub(super) async fn grace_after(cancel: &tokio_util::sync::CancellationToken) {
    cancel.cancelled().await;
    tokio::time::sleep(CANCEL_GRACE).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::config::Config;
    use crate::queue::handler::{Handler, JobContext, JobError, Registration, Registry};
    use crate::queue::instance::Instance;
    use crate::store::job::NewJob;
    use crate::store::sqlite::test_support::open_temp;
    use tokio_util::sync::CancellationToken;

    /// Ignores its cancel token: sleeps a minute, then would succeed.
    struct Stubborn(Arc<AtomicBool>);

    #[async_trait::async_trait]
    impl Handler for Stubborn {
        fn job_type(&self) -> &str {
            "stubborn"
        }

        async fn run(&self, _job: JobContext) -> Result<(), JobError> {
            self.0.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_that_ignores_the_token_is_abandoned_after_the_grace() {
        let (dir, store) = open_temp();
        let running = Arc::new(AtomicBool::new(false));
        let mut registry = Registry::new();
        registry.register(Registration::new(Stubborn(running.clone())));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let now = clock.now_ms();
        let instance = Instance::current(now);
        store.register_instance(instance.row(now)).await.unwrap();
        let shutdown = CancellationToken::new();
        let queue = Queue::new(
            store,
            registry,
            Arc::new(Config::for_dir(dir.path())),
            clock,
            instance,
            shutdown.clone(),
        );
        queue.spawn_dispatcher();
        let id = queue
            .enqueue_one(NewJob::new("s", "stubborn", serde_json::Map::new()))
            .await
            .unwrap()
            .job
            .id;
        while !running.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = tokio::time::Instant::now();
        assert_eq!(
            queue.cancel(id.clone(), true).await.unwrap(),
            Cancel::Cancelled
        );
        let took = started.elapsed();
        assert!(took >= CANCEL_GRACE, "answered after {took:?}");
        let now = queue.clock().now_ms();
        assert!(queue.store().get(id.clone(), now).await.unwrap().is_none());
        assert_eq!(queue.busy(), 0, "the worker slot is free again");
        assert_eq!(
            queue.events().recent_end(&id).map(|e| e.kind),
            Some(EventKind::Cancelled)
        );
        shutdown.cancel();
        queue.wait_stopped().await;
    }
}
