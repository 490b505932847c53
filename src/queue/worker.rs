//! Workers: one attempt of one job at a time, its handler run under its
//! timeout with panics captured, its outcome (complete, retry or bury)
//! recorded fenced on its lease.
//!
//! A worker does not wait for its outcome to reach the disk before it takes
//! the next job: it queues the write and goes on, so the writer commits the
//! outcomes of many jobs at once and no worker idles through a commit. The
//! outcome is settled (logged, the dispatcher told) on the writer thread
//! right after its commit. A queued outcome holds a permit of the queue's
//! `outcomes` semaphore until then, so at most `AHEAD_BATCHES x
//! JOB_BATCH_SIZE` jobs have run without a committed outcome: the most a
//! crash can make run twice, besides the jobs running at that moment.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Queue;
use super::events::{Event, EventKind, JobRef};
use super::handler::{Handler, JobContext, JobError, JobResult, ProgressReporter};
use super::job::{Claimed, Job, Lease};
use super::retry;
use crate::clock::Millis;
use crate::store::job::{AfterFailure, Ending, Outcome};
use crate::store::limits::Limits;
use crate::store::{Pending, StoreError};

/// How often a completion or failure is retried while the database is busy
/// before the job is left to recovery.
const WRITE_TRIES: u32 = 5;

/// Runs jobs from the queue's claimed-ahead buffer in one worker slot until
/// no more are coming or shutdown begins, then frees the slot.
pub(super) async fn serve(queue: Queue, slot: OwnedSemaphorePermit) {
    while let Some(claimed) = next_job(&queue).await {
        // Not waited for: the outcome settles itself once committed.
        drop(attempt_job(&queue, claimed).await);
    }
    drop(slot);
    // The dispatcher may have buffered jobs that wait for this slot.
    queue.wake();
}

/// The next claimed job: from the buffer, or, while the dispatcher is
/// claiming more, once its claim is in. None when no more are coming or
/// shutdown has begun.
async fn next_job(queue: &Queue) -> Option<Claimed> {
    let inner = &queue.inner;
    loop {
        // Listening before looking, so a refill between the two is seen.
        let filled = inner.filled.notified();
        tokio::pin!(filled);
        filled.as_mut().enable();
        if let Some(job) = queue.take_ready() {
            return Some(job);
        }
        if !inner.refilling.load(Ordering::Acquire) || inner.shutdown.is_cancelled() {
            return None;
        }
        tokio::select! {
            () = &mut filled => {}
            () = inner.shutdown.cancelled() => return None,
        }
    }
}

/// Runs one claimed job in `slot` and waits until its outcome is committed;
/// returns whether it succeeded. For `system_queue` drains, which report
/// what they did.
pub(super) async fn run_one(queue: Queue, claimed: Claimed, slot: OwnedSemaphorePermit) -> bool {
    let (succeeded, pending) = attempt_job(&queue, claimed).await;
    if let Some(pending) = pending {
        // Settled on the writer thread; only the wait is ours.
        let _ = pending.committed().await;
    }
    drop(slot);
    queue.wake();
    succeeded
}

/// What an outcome write is about: settled (logged, the dispatcher told)
/// once the write's answer is known.
struct Written {
    queue: Queue,
    lease: Lease,
    outcome: Outcome,
    now: Millis,
    span: tracing::Span,
    /// Counts this outcome as uncommitted until dropped.
    permit: Option<OwnedSemaphorePermit>,
    runtime: tokio::runtime::Handle,
    /// For the event published once the outcome is committed.
    job: JobRef,
    duration_ms: u64,
}

impl Written {
    /// Queues the outcome write; the writer settles it after the commit.
    async fn submit(self) -> Option<Pending<bool>> {
        let store = self.queue.inner.store.clone();
        let (lease, outcome, now) = (self.lease.clone(), self.outcome.clone(), self.now);
        let (span, job_id) = (self.span.clone(), self.lease.job_id.clone());
        let then = Box::new(move |answer: &Result<bool, StoreError>| self.settle(answer));
        match store.finish(lease, outcome, now, Some(then)).await {
            Ok(pending) => Some(pending),
            Err(e) => {
                span.in_scope(|| {
                    tracing::error!(
                        error = %e,
                        "job {job_id}: could not record its outcome: {e}; it will run again after recovery"
                    )
                });
                None
            }
        }
    }

    /// On the writer thread, right after the commit: quick, never waits.
    fn settle(self, answer: &Result<bool, StoreError>) {
        if matches!(answer, Err(StoreError::Busy(_))) {
            // Busy is worth a few more tries: the work is done.
            let runtime = self.runtime.clone();
            let tasks = self.queue.inner.tasks.clone();
            tasks.spawn_on(self.retry(), &runtime);
            return;
        }
        self.log(answer);
    }

    async fn retry(self) {
        let store = &self.queue.inner.store;
        let answer = write(|| async {
            let queued = store.finish(self.lease.clone(), self.outcome.clone(), self.now, None);
            queued.await?.committed().await
        })
        .await;
        self.log(&answer);
    }

    /// The committed outcome, as an event: always for a job's end, which
    /// waiters need; a retry only when someone watches.
    fn publish(&self) {
        let events = &self.queue.inner.events;
        let (job, now, took) = (self.job.clone(), self.now, self.duration_ms);
        match &self.outcome {
            Outcome::Succeeded { .. } => events.job_ended(Event::succeeded(now, job, took)),
            Outcome::Failed {
                error,
                after: AfterFailure::Dead,
                ..
            } => events.job_ended(Event::failed(now, job, error, None, Some(took))),
            Outcome::Failed {
                error,
                after: AfterFailure::RetryAt(at),
                ..
            } => events.publish(|| Event::failed(now, job, error, Some(*at), Some(took))),
        }
    }

    fn log(self, answer: &Result<bool, StoreError>) {
        let inner = &self.queue.inner;
        let job_id = &self.lease.job_id;
        self.span.in_scope(|| match answer {
            Ok(true) => self.publish(),
            Ok(false) => tracing::warn!(
                "job {job_id}: its reservation was taken over while it ran (recovered as stale); \
                 its outcome was not recorded"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "job {job_id}: could not record its outcome: {e}; it will run again after recovery"
            ),
        });
        // The dispatcher may be asleep with nothing due: the retry is now.
        if matches!(
            self.outcome,
            Outcome::Failed {
                after: AfterFailure::RetryAt(_),
                ..
            }
        ) {
            inner.wake.notify_one();
        }
        self.queue.touch();
        drop(self.permit);
    }
}

/// One attempt: run the handler, then queue the record of its outcome.
/// Returns whether it succeeded and the queued write (none when it could
/// not even be queued, which is logged).
async fn attempt_job(queue: &Queue, claimed: Claimed) -> (bool, Option<Pending<bool>>) {
    let Claimed { job, lease } = claimed;
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        job_type = %job.job_type,
        attempt = lease.attempt,
        cron_id = tracing::field::Empty,
    );
    if let Some(cron_id) = &job.cron_id {
        span.record("cron_id", cron_id.as_str());
    }
    let in_span = span.clone();
    async move {
        let inner = &queue.inner;
        let timeout = Duration::from_secs(u64::from(job.timeout_s.max(1)));
        super::lock(&inner.leases).insert(lease.clone(), Instant::now() + timeout);
        inner.busy.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(max_attempts = job.max_attempts, "job started");
        let started = Instant::now();
        // The handler's result, kept in the history when this attempt ends the job.
        let result_slot = JobResult::default();
        let live = inner.live.start(&lease, JobRef::of(&job, lease.attempt));
        let cancel = live.running.cancel.clone();
        let at = inner.clock.now_ms();
        inner
            .events
            .publish(|| Event::job(EventKind::Started, at, live.running.job.clone()));
        let mut abandoned = false;

        let result = match inner.registry.enabled(&job.job_type) {
            Err(e) => Err(JobError::retry(e)),
            Ok(handler) => match checked(handler.as_ref(), &job) {
                Err(error) => Err(error),
                Ok(_) if cancel.is_cancelled() => Err(JobError::permanent("cancelled")),
                Ok(limits) => {
                    let ctx = JobContext {
                        id: job.id.clone(),
                        name: job.name.clone(),
                        job_type: job.job_type.clone(),
                        data: job.data(),
                        attempt: lease.attempt,
                        max_attempts: job.max_attempts,
                        timeout,
                        cron_id: job.cron_id.clone(),
                        limits,
                        shutdown: inner.shutdown.child_token(),
                        result: result_slot.clone(),
                        cancel: cancel.clone(),
                        reporter: ProgressReporter::new(
                            live.running.clone(),
                            inner.events.clone(),
                            inner.clock.clone(),
                        ),
                    };
                    let run = attempt(handler.clone(), ctx, timeout).in_current_span();
                    tokio::select! {
                        result = run => result,
                        () = inner.halt.cancelled() => {
                            // `run` is dropped here: the handler's task is
                            // aborted with it (a command's group is ended).
                            inner.busy.fetch_sub(1, Ordering::Relaxed);
                            hand_back(queue, &job.id, &job.job_type, lease).await;
                            queue.limit_ended(&job.job_type);
                            return (false, None);
                        }
                        // A forced cancel the handler ignores: `run` is
                        // dropped, as on a timeout.
                        () = super::stop::grace_after(&cancel) => {
                            abandoned = true;
                            Err(JobError::permanent("cancelled"))
                        }
                    }
                }
            },
        };
        let took = started.elapsed();
        inner.busy.fetch_sub(1, Ordering::Relaxed);
        if cancel.is_cancelled() && result.is_err() {
            super::lock(&inner.leases).remove(&lease);
            queue.limit_ended(&job.job_type);
            let job = live.running.job.clone();
            drop(live);
            let ending = Ending {
                ran_ms: Some(took.as_millis().min(i64::MAX as u128) as i64),
                result: result_slot.take(),
            };
            super::stop::end_cancelled(queue, lease, ending, job, abandoned).await;
            return (false, None);
        }
        inner.stats.record(&job.job_type, result.is_ok(), took);
        queue.pace(took);
        let duration_ms = took.as_millis() as u64;
        let ending = Ending {
            ran_ms: Some(duration_ms.min(i64::MAX as u64) as i64),
            result: result_slot.take(),
        };

        let now = inner.clock.now_ms();
        let outcome = match &result {
            Ok(()) => {
                tracing::info!(duration_ms, "job finished");
                Outcome::Succeeded {
                    from_cron: job.cron_id.is_some(),
                    ending,
                }
            }
            Err(error) => {
                let config = &inner.config;
                let after = retry::after_failure(
                    error,
                    lease.attempt,
                    job.max_attempts,
                    now,
                    config.backoff_base,
                    config.backoff_max,
                );
                let (id, job_type, attempt) = (&job.id, &job.job_type, lease.attempt);
                let first = crate::logging::first_line(error.message());
                match after {
                    AfterFailure::Dead if error.is_permanent() => tracing::error!(
                        duration_ms,
                        error = %error,
                        permanent = true,
                        "job {id} ({job_type}) failed permanently on attempt {attempt}; \
                         it is dead: {first}"
                    ),
                    AfterFailure::Dead => tracing::error!(
                        duration_ms,
                        error = %error,
                        permanent = false,
                        "job {id} ({job_type}) failed on its last attempt ({attempt} of {}); \
                         it is dead: {first}",
                        job.max_attempts
                    ),
                    AfterFailure::RetryAt(at) => tracing::warn!(
                        duration_ms,
                        error = %error,
                        retry_in_ms = at - now,
                        "job {id} ({job_type}) failed on attempt {attempt} of {}; \
                         retrying in {} s: {first}",
                        job.max_attempts,
                        ((at - now).max(0) as u64).div_ceil(1000)
                    ),
                }
                Outcome::Failed {
                    error: error.message().to_string(),
                    after,
                    ending,
                }
            }
        };
        // Waits only while too many outcomes are uncommitted; the lease is
        // still heartbeated meanwhile.
        let permit = inner.outcomes.clone().acquire_owned().await.ok();
        // No longer running: the heartbeat stops extending the lease, and a
        // heartbeat queued after the outcome would find the job finished.
        super::lock(&inner.leases).remove(&lease);
        queue.limit_ended(&job.job_type);
        drop(live);
        let lease_attempt = lease.attempt;
        let written = Written {
            queue: queue.clone(),
            lease,
            outcome,
            now,
            span: in_span,
            permit,
            runtime: tokio::runtime::Handle::current(),
            job: JobRef {
                id: job.id,
                name: job.name,
                job_type: job.job_type,
                attempt: lease_attempt,
                cron_id: job.cron_id,
            },
            duration_ms,
        };
        (result.is_ok(), written.submit().await)
    }
    .instrument(span)
    .await
}

/// A forced stop abandoned the attempt: its reservation is released with
/// the attempt given back, so the job runs again, whole, after a restart.
async fn hand_back(queue: &Queue, id: &str, job_type: &str, lease: Lease) {
    let inner = &queue.inner;
    super::lock(&inner.leases).remove(&lease);
    match inner.store.release(vec![lease], inner.clock.now_ms()).await {
        Ok(_) => tracing::warn!(
            "job {id} ({job_type}) was interrupted by a forced stop; \
             it is handed back with this attempt not counted"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "job {id} ({job_type}) was interrupted by a forced stop and could not be \
             handed back: {e}; recovery releases it at the next start"
        ),
    }
    queue.touch();
}

/// The checks a stored row gets before it runs, since it may have reached
/// the table without `enqueue`: its data, and the limits in its options.
/// Either failing is permanent, the same row would fail the same way.
fn checked(handler: &dyn Handler, job: &Job) -> Result<Limits, JobError> {
    handler
        .validate(&job.data())
        .map_err(|message| JobError::permanent(format!("payload.data: {message}")))?;
    Limits::from_options(job.payload.get("options"))
        .and_then(|limits| handler.check_limits(&limits).map(|()| limits))
        .map_err(|message| JobError::permanent(format!("payload.options.{message}")))
}

/// Runs the handler in its own task, so a panic is caught as a failure and
/// a timeout can abort it (as does dropping this future).
async fn attempt(
    handler: std::sync::Arc<dyn super::handler::Handler>,
    ctx: JobContext,
    timeout: Duration,
) -> Result<(), JobError> {
    let task = tokio::spawn(async move { handler.run(ctx).await }.in_current_span());
    let abort = task.abort_handle();
    // Dropped with the future (a forced stop): the handler goes too.
    let _abort_on_drop = AbortOnDrop(abort.clone());
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) if e.is_panic() => Err(JobError::retry(format!(
            "the handler panicked: {}",
            panic_message(e.into_panic())
        ))),
        Ok(Err(e)) => Err(JobError::retry(format!("the handler was cancelled: {e}"))),
        Err(_) => {
            abort.abort();
            Err(JobError::retry(format!(
                "timed out after {} s",
                timeout.as_secs()
            )))
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Retries a write while the database is busy: the outcome of work already
/// done is worth a few waits.
pub(super) async fn write<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if matches!(e, StoreError::Busy(_)) && tries + 1 < WRITE_TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}
