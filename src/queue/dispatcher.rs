//! The dispatcher, which claims ready jobs and starts workers for them, and
//! the heartbeat that keeps reservations alive after shutdown.
//!
//! Claimed jobs wait in a small buffer until a worker takes them. The
//! dispatcher claims one job per free worker, plus as many as the busy
//! workers get through in [`super::CLAIM_AHEAD`] at their recent pace (at
//! most [`super::AHEAD_BATCHES`] claims of JOB_BATCH_SIZE, made in one
//! transaction): with fast jobs no worker waits for a claim's
//! commit, and with slow ones nothing sits reserved in the buffer for long,
//! so other daemons sharing the file get their share. When nothing is ready
//! it sleeps until the earliest scheduled job, an enqueue, or shutdown; it
//! never polls.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::worker;
use super::{Queue, lock};
use crate::clock::MAX_WALL_SLEEP;

/// How long to wait before claiming again after the database refused.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(super) async fn run(queue: Queue) {
    let inner = &queue.inner;
    tracing::debug!(types = %inner.types.join(","), workers = inner.config.max_workers, "dispatcher started");
    while !inner.shutdown.is_cancelled() {
        if !queue.automatic() {
            // Automatic processing is off (the system_queue cron is
            // disabled): nothing is claimed until it is switched on.
            tokio::select! {
                () = inner.wake.notified() => continue,
                () = inner.shutdown.cancelled() => break,
            }
        }
        start_workers(&queue);
        let buffered = lock(&inner.ready).len();
        let free = inner.slots.available_permits();
        // Jobs worth having claimed: one per free worker, plus those the
        // busy workers will want while this claim commits.
        let target = free + queue.claim_ahead();
        let low = free.max(target / 2);
        let mut refill_below = low;
        if buffered < low {
            let want = target - buffered;
            let now = inner.clock.now_ms();
            inner.refilling.store(true, Ordering::Release);
            let claimed = queue.claim_ready(want, now).await;
            if let Ok(claimed) = &claimed {
                lock(&inner.ready).extend(claimed.iter().cloned());
            }
            queue.refilled();
            match claimed {
                Ok(claimed) if !claimed.is_empty() => continue,
                Ok(_) if buffered == 0 => {
                    if !sleep_until_due(&queue, now).await {
                        break;
                    }
                    continue;
                }
                // Nothing more is ready; the workers' exits wake us.
                Ok(_) => refill_below = 0,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim jobs: {e}; trying again shortly");
                    tokio::select! {
                        () = tokio::time::sleep(ERROR_PAUSE) => continue,
                        () = inner.shutdown.cancelled() => break,
                    }
                }
            }
        }
        // Woken by an enqueue, a worker that freed its slot, or one that
        // took the buffer below `refill_below`.
        inner.refill_below.store(refill_below, Ordering::Relaxed);
        queue.refilled();
        tokio::select! {
            () = inner.wake.notified() => {}
            () = until_room(&queue) => {}
            () = inner.shutdown.cancelled() => break,
        }
    }
    let unstarted: Vec<_> = lock(&inner.ready).drain(..).map(|c| c.lease).collect();
    if !unstarted.is_empty() {
        queue.release(unstarted).await;
    }
    tracing::debug!("dispatcher stopped claiming");
}

/// Gives each buffered job a free worker slot, as far as they go.
fn start_workers(queue: &Queue) {
    let inner = &queue.inner;
    let mut waiting = lock(&inner.ready).len();
    while waiting > 0 {
        let Ok(slot) = inner.slots.clone().try_acquire_owned() else {
            return;
        };
        inner.tasks.spawn(worker::serve(queue.clone(), slot));
        // Each worker takes jobs until the buffer is empty; one per job is
        // only needed while fewer workers run than jobs wait.
        waiting -= 1;
    }
}

/// Nothing is ready or buffered: sleeps until the earliest scheduled job,
/// an enqueue, a retry or a freed worker slot (rows written by other
/// programs are the system_queue cron's). False at shutdown.
async fn sleep_until_due(queue: &Queue, now: crate::clock::Millis) -> bool {
    let inner = &queue.inner;
    let pause = match inner.store.next_due(&inner.types, now).await {
        Ok(Some(due)) => Some(Duration::from_millis((due - now).max(1) as u64).min(MAX_WALL_SLEEP)),
        Ok(None) => None,
        Err(_) => Some(ERROR_PAUSE),
    };
    let sleep = async {
        match pause {
            Some(pause) => tokio::time::sleep(pause).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = inner.wake.notified() => true,
        () = sleep => true,
        () = until_room(queue) => true,
        () = inner.shutdown.cancelled() => false,
    }
}

/// Until a rate-limited type whose jobs wait gets room in its window
/// (JOB_TYPE_RATE); forever when none waits.
async fn until_room(queue: &Queue) {
    match queue.limits_next_room() {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Keeps running jobs' reservations alive while they finish after
/// shutdown; until then the scheduler's turns heartbeat (one timer fewer to
/// wake an idle daemon).
pub(super) async fn heartbeat(queue: Queue) {
    let inner = &queue.inner;
    inner.shutdown.cancelled().await;
    let mut ticks = tokio::time::interval(super::heartbeat_every(&inner.config));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => queue.heartbeat_if_due().await,
            () = wait_idle(&queue) => break,
        }
    }
}

async fn wait_idle(queue: &Queue) {
    while !lock(&queue.inner.leases).is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
