//! `explain`: why a job is not running now, in plain words: its state, its
//! handler, automatic processing, a pause of its type, a per-type limit, a
//! full pool; how a finished job ended; and for a job taken over from
//! PocketBase, which record it was.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{AdminError, Request};
use crate::clock::format_ms;
use crate::queue::job::JobStatus;
use crate::store::history::{ALL_TYPES, FinalStatus};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let IdArg { id } = req.args_with_id()?;
    let queue = &ctx.queue;
    let now = queue.clock().now_ms();
    let Some((job, _)) = queue.store().get(id.clone(), now).await? else {
        return finished(ctx, &id).await;
    };
    let mut reasons = Vec::new();
    let mut runnable = false;
    match job.status {
        JobStatus::Dead => reasons.push(format!(
            "it is dead after {} of {} attempts: {}; `retry` brings it back",
            job.attempts,
            job.max_attempts,
            job.last_error.as_deref().unwrap_or("no error was recorded")
        )),
        JobStatus::Running => {
            let holder = job.reserved_by.clone().unwrap_or_default();
            let who = queue
                .store()
                .instances()
                .await?
                .into_iter()
                .find(|i| i.id == holder)
                .map_or_else(
                    || format!("instance {holder}, which is no longer registered"),
                    |i| format!("pid {} on {} (instance {holder})", i.pid, i.host),
                );
            reasons.push(format!(
                "it is running: attempt {} of {}, reserved by {who} since {}",
                job.attempts,
                job.max_attempts,
                job.reserved_at
                    .map_or_else(|| "an unknown time".into(), format_ms)
            ));
        }
        JobStatus::Scheduled if job.attempts > 0 => reasons.push(format!(
            "its run_at is in the future ({}): backing off after attempt {} failed: {}",
            format_ms(job.run_at),
            job.attempts,
            job.last_error.as_deref().unwrap_or("no error was recorded")
        )),
        JobStatus::Scheduled => reasons.push(format!(
            "its run_at is in the future ({}): it was enqueued with a delay",
            format_ms(job.run_at)
        )),
        JobStatus::Pending => runnable = true,
    }
    if matches!(job.status, JobStatus::Pending | JobStatus::Scheduled) {
        if let Err(e) = queue.registry().enabled(&job.job_type) {
            runnable = false;
            reasons.push(format!("{e}; jobs of this type wait until it is enabled"));
        }
        if !queue.automatic() {
            runnable = false;
            reasons.push(
                "automatic processing is off (the system_queue cron is disabled: \
                 ENABLE_SYSTEM_QUEUE_CRON=false or `disable system_queue`); \
                 `trigger system_queue` drains a batch by hand"
                    .into(),
            );
        }
        let paused = queue.store().paused().await?;
        if paused.iter().any(|p| p == ALL_TYPES || *p == job.job_type) {
            runnable = false;
            let which = if paused.iter().any(|p| p == ALL_TYPES) {
                "every job type is paused".to_string()
            } else {
                format!("the {} type is paused", job.job_type)
            };
            reasons.push(format!(
                "{which}: no daemon claims it until `resume` (running jobs finish)"
            ));
        }
    }
    if runnable
        && let Some(limit) = queue
            .limits()
            .holding_back(&job.job_type, std::time::Instant::now())
    {
        runnable = false;
        reasons.push(limit);
    }
    if runnable && queue.busy() >= queue.max_workers() {
        reasons.push(format!(
            "all {} workers are busy; it runs when one is free",
            queue.max_workers()
        ));
    }
    if runnable && reasons.is_empty() {
        reasons.push("it is ready and will be claimed by the next free worker".into());
    }
    if let Some(origin) = job.unique_key.as_deref().and_then(from_pocketbase) {
        reasons.push(origin);
    }
    Ok(crate::result! { "runnable": runnable, "reasons": reasons })
}

/// A job no longer in the queue: how it ended, from the history.
async fn finished(ctx: &Ctx, id: &str) -> Result<Map<String, Value>, AdminError> {
    let Some(record) = ctx.queue.store().finished_job(id.to_string()).await? else {
        return Err(super::job::not_found(&ctx.queue, id));
    };
    let how = match record.status {
        FinalStatus::Succeeded => format!(
            "it succeeded on attempt {} of {} at {}",
            record.attempts,
            record.max_attempts,
            format_ms(record.finished)
        ),
        FinalStatus::Cancelled => format!("it was cancelled at {}", format_ms(record.finished)),
        FinalStatus::Dead => format!(
            "it died after {} of {} attempts at {} and was purged from the queue: {}",
            record.attempts,
            record.max_attempts,
            format_ms(record.finished),
            record
                .last_error
                .as_deref()
                .unwrap_or("no error was recorded")
        ),
    };
    Ok(crate::result! { "runnable": false, "reasons": [how] })
}

/// Where a job taken over from PocketBase came from, read from the unique
/// key the bridge gives it (`pocketbase:COLLECTION:RECORD_ID`).
fn from_pocketbase(key: &str) -> Option<String> {
    let (collection, record) = key.strip_prefix("pocketbase:")?.split_once(':')?;
    Some(format!(
        "it was taken over from PocketBase: record {record} of the collection {collection}"
    ))
}
