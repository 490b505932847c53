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
//! it sleeps until the earliest scheduled job, an enqueue, or shutdown.
//!
//! On a database other hosts share, jobs also become ready elsewhere: the
//! backend's wake-up channel (PostgreSQL's LISTEN connection) signals
//! another node's enqueue within milliseconds, and every reconnect of that
//! channel, after which a claim pass picks up whatever was sent during the
//! gap. Behind that, each heartbeat that did not drain the queue wakes the
//! dispatcher for a claim pass (the fallback poll, each minute while
//! `system_queue` runs: see `Queue::fallback_poll`). It never polls on a
//! timer of its own.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::worker;
use super::{Queue, lock};
use crate::clock::{MAX_WALL_SLEEP, Millis};
use crate::store::Wakeups;

/// How long to wait before claiming again after the database refused; it
/// doubles while the refusals go on (an outage), up to [`MAX_ERROR_PAUSE`],
/// and a reconnect of the wake-up channel cuts it short.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
const MAX_ERROR_PAUSE: Duration = Duration::from_secs(30);

pub(super) async fn run(queue: Queue) {
    let inner = &queue.inner;
    tracing::debug!(types = %inner.types.join(","), workers = inner.config.max_workers, "dispatcher started");
    let mut wakeups = inner.store.wakeups();
    let mut errors: u32 = 0;
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
            if claimed.is_ok() && errors > 0 {
                tracing::info!("claiming jobs again");
                errors = 0;
            }
            match claimed {
                Ok(claimed) if !claimed.is_empty() => continue,
                Ok(_) if buffered == 0 => {
                    if !sleep_until_due(&queue, now, &mut wakeups).await {
                        break;
                    }
                    continue;
                }
                // Nothing more is ready; the workers' exits wake us.
                Ok(_) => refill_below = 0,
                Err(e) => {
                    let pause = error_pause(errors);
                    if errors == 0 {
                        tracing::warn!(error = %e, "could not claim jobs: {e}; trying again in {} s, then less often while it lasts", pause.as_secs());
                    } else {
                        tracing::debug!(error = %e, "could not claim jobs: {e}");
                    }
                    errors = errors.saturating_add(1);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = woken(&mut wakeups) => continue,
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
            () = woken(&mut wakeups) => {}
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
/// an enqueue, a retry, a freed worker slot, a signal of the backend's
/// wake-up channel, or the fallback poll. On a file, rows written by other
/// programs are the system_queue cron's. False at shutdown.
async fn sleep_until_due(
    queue: &Queue,
    now: Millis,
    wakeups: &mut Option<watch::Receiver<Wakeups>>,
) -> bool {
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
        () = woken(wakeups) => true,
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

/// Returns when the backend's wake-up channel signals; never when there is
/// none (or it closed).
async fn woken(wakeups: &mut Option<watch::Receiver<Wakeups>>) {
    if let Some(rx) = wakeups.as_mut()
        && rx.changed().await.is_ok()
    {
        return;
    }
    *wakeups = None;
    std::future::pending().await
}

/// The pause after `errors` refusals in a row.
fn error_pause(errors: u32) -> Duration {
    ERROR_PAUSE
        .saturating_mul(1 << errors.min(16))
        .min(MAX_ERROR_PAUSE)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_after_refusals_grows_to_its_cap() {
        let pauses: Vec<u64> = (0..8).map(|n| error_pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(error_pause(u32::MAX), MAX_ERROR_PAUSE);
    }
}
