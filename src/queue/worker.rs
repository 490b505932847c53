//! One attempt of one job: run its handler under its timeout with panics
//! captured, then complete, retry or bury it, fenced on its lease.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Queue;
use super::handler::{JobContext, JobError};
use super::job::Claimed;
use super::retry;
use crate::store::StoreError;
use crate::store::jobs::{AfterFailure, Outcome};

/// How often a completion or failure is retried while the database is busy
/// before the job is left to recovery.
const WRITE_TRIES: u32 = 5;

/// Runs `claimed` in a worker slot. With `chain`, the write that records
/// each outcome also claims the next ready job, and the slot goes straight
/// on to it while there is work. Returns whether the last attempt succeeded.
pub(super) async fn run(
    queue: Queue,
    claimed: Claimed,
    slot: OwnedSemaphorePermit,
    chain: bool,
) -> bool {
    let inner = &queue.inner;
    inner.busy.fetch_add(1, Ordering::Relaxed);
    let mut next = Some(claimed);
    let mut succeeded = false;
    while let Some(claimed) = next.take() {
        (succeeded, next) = attempt_job(&queue, claimed, chain).await;
    }
    // The slot is held until the outcome is committed: a job counts as
    // running until then, so a crash re-runs at most JOB_MAX_WORKERS.
    drop(slot);
    inner.busy.fetch_sub(1, Ordering::Relaxed);
    succeeded
}

/// One attempt: run the handler, record the outcome, and maybe claim the
/// next job.
async fn attempt_job(queue: &Queue, claimed: Claimed, chain: bool) -> (bool, Option<Claimed>) {
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
    async move {
        let inner = &queue.inner;
        let timeout = Duration::from_secs(u64::from(job.timeout_s.max(1)));
        lock(&inner.leases).insert(lease.clone(), Instant::now() + timeout);
        tracing::debug!(max_attempts = job.max_attempts, "job started");
        let started = Instant::now();

        let result = match inner.registry.enabled(&job.job_type) {
            Err(e) => Err(JobError::retry(e)),
            Ok(handler) => match handler.validate(&job.data()) {
                Err(message) => Err(JobError::permanent(format!("payload.data: {message}"))),
                Ok(()) => {
                    let ctx = JobContext {
                        id: job.id.clone(),
                        name: job.name.clone(),
                        job_type: job.job_type.clone(),
                        data: job.data(),
                        attempt: lease.attempt,
                        max_attempts: job.max_attempts,
                        timeout,
                        cron_id: job.cron_id.clone(),
                        shutdown: inner.shutdown.child_token(),
                    };
                    attempt(handler.clone(), ctx, timeout)
                        .in_current_span()
                        .await
                }
            },
        };
        let took = started.elapsed();
        inner.stats.record(&job.job_type, result.is_ok(), took);
        let duration_ms = took.as_millis() as u64;

        let from_cron = job.cron_id.is_some();
        let next = (chain && !inner.shutdown.is_cancelled()).then(|| inner.types.clone());
        let written = match &result {
            Ok(()) => {
                tracing::info!(duration_ms, "job finished");
                let outcome = Outcome::Succeeded { from_cron };
                let now = inner.clock.now_ms();
                write(|| {
                    inner
                        .store
                        .finish(lease.clone(), outcome.clone(), now, next.clone())
                })
                .await
            }
            Err(error) => {
                let now = inner.clock.now_ms();
                let config = &inner.config;
                let after = retry::after_failure(
                    error,
                    lease.attempt,
                    job.max_attempts,
                    now,
                    config.backoff_base,
                    config.backoff_max,
                );
                match after {
                    AfterFailure::Dead => tracing::error!(
                        duration_ms,
                        error = %error,
                        permanent = error.is_permanent(),
                        "job failed for good; it is dead"
                    ),
                    AfterFailure::RetryAt(at) => tracing::warn!(
                        duration_ms,
                        error = %error,
                        retry_in_ms = at - now,
                        "job failed; it will be retried"
                    ),
                }
                let outcome = Outcome::Failed {
                    error: error.message().to_string(),
                    after,
                };
                let written = write(|| {
                    inner
                        .store
                        .finish(lease.clone(), outcome.clone(), now, next.clone())
                })
                .await;
                // The dispatcher may be asleep with nothing due: the retry is.
                if matches!(after, AfterFailure::RetryAt(_)) {
                    inner.wake.notify_one();
                }
                written
            }
        };
        let following = match written {
            Ok((true, following)) => following,
            Ok((false, following)) => {
                tracing::warn!(
                    "the job's reservation was taken over while it ran (recovered as stale); \
                     its outcome was not recorded"
                );
                following
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "could not record the job's outcome; it will run again after recovery"
                );
                None
            }
        };
        lock(&inner.leases).remove(&lease);
        queue.touch();
        (result.is_ok(), following)
    }
    .instrument(span)
    .await
}

/// Runs the handler in its own task, so a panic is caught as a failure and
/// a timeout can abort it.
async fn attempt(
    handler: std::sync::Arc<dyn super::handler::Handler>,
    ctx: JobContext,
    timeout: Duration,
) -> Result<(), JobError> {
    let task = tokio::spawn(async move { handler.run(ctx).await }.in_current_span());
    let abort = task.abort_handle();
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
async fn write<T, F, Fut>(mut op: F) -> Result<T, StoreError>
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

pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
