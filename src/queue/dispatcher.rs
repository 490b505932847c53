//! The dispatcher, which claims ready jobs whenever a worker is free, and
//! the heartbeat, which keeps this instance's reservations alive.
//!
//! The dispatcher claims only as many jobs as there are free workers, so a
//! claimed job is always running: nothing sits reserved in a buffer that a
//! crash or a shutdown would have to hand back. When nothing is ready it
//! sleeps until the earliest scheduled job, an enqueue, or shutdown; it
//! never polls.

use std::time::Duration;

use super::Queue;
use super::worker::{self, lock};
use crate::clock::MAX_WALL_SLEEP;

/// How long to wait before claiming again after the database refused.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(super) async fn run(queue: Queue) {
    let inner = &queue.inner;
    tracing::debug!(types = ?inner.types, workers = inner.config.max_workers, "dispatcher started");
    loop {
        let slot = tokio::select! {
            slot = inner.slots.clone().acquire_owned() => slot,
            () = inner.shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let want = (inner.slots.available_permits() + 1).min(inner.config.batch_size);
        let now = inner.clock.now_ms();
        let claimed = match inner
            .store
            .claim(&inner.instance.id, &inner.types, want, now)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim jobs; trying again shortly");
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(ERROR_PAUSE) => continue,
                    () = inner.shutdown.cancelled() => break,
                }
            }
        };
        if claimed.is_empty() {
            drop(slot);
            // Nothing due at all: sleep until an enqueue or a retry wakes us
            // (rows written by other programs are the system_queue cron's).
            let pause = match inner.store.next_due(&inner.types, now).await {
                Ok(Some(due)) => {
                    Some(Duration::from_millis((due - now).max(1) as u64).min(MAX_WALL_SLEEP))
                }
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
                () = inner.wake.notified() => {}
                () = sleep => {}
                () = inner.shutdown.cancelled() => break,
            }
            continue;
        }
        let mut slot = Some(slot);
        let mut jobs = claimed.into_iter();
        while let Some(job) = jobs.next() {
            let permit = match slot.take() {
                Some(p) => p,
                // Counted free above, but a drain may have taken it since.
                None => match inner.slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        let rest = std::iter::once(job)
                            .chain(jobs.by_ref())
                            .map(|c| c.lease)
                            .collect();
                        queue.release(rest).await;
                        break;
                    }
                },
            };
            inner
                .tasks
                .spawn(worker::run(queue.clone(), job, permit, true));
        }
    }
    tracing::debug!("dispatcher stopped claiming");
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
