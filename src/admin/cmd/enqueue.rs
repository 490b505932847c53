//! `enqueue`: one job, or a batch stored all or nothing.

use std::time::Duration;

use serde_json::Map;

use super::{Ctx, Peer};
use crate::admin::protocol::request::{EnqueueBatch, EnqueueJob};
use crate::admin::protocol::{self, AdminError, Answer, Code, JobView, Request};
use crate::config::MAX_BATCH_JOBS;
use crate::queue::job::{Enqueued, NewJob, RunAt};
use crate::store::limits::Limits;

/// The jobs of a request, every field checked, and whether it was a batch.
pub(super) fn parse(req: &Request) -> Result<(Vec<NewJob>, bool), AdminError> {
    if !req.args.contains_key("jobs") {
        return Ok((vec![new_job(req.args()?, "")?], false));
    }
    let batch: EnqueueBatch = req.args()?;
    if batch.jobs.is_empty() {
        return Err(AdminError::bad_request("jobs: must hold at least one job"));
    }
    if batch.jobs.len() > MAX_BATCH_JOBS {
        return Err(AdminError::new(
            Code::TooLarge,
            format!(
                "jobs: {} jobs in one batch, more than the limit of {MAX_BATCH_JOBS}",
                batch.jobs.len()
            ),
        ));
    }
    let mut jobs = Vec::with_capacity(batch.jobs.len());
    for (i, value) in batch.jobs.into_iter().enumerate() {
        let args: EnqueueJob = protocol::parse_args(value).map_err(|e| AdminError {
            message: format!("jobs[{i}].{}", e.message),
            ..e
        })?;
        jobs.push(new_job(args, &format!("jobs[{i}]."))?);
    }
    Ok((jobs, true))
}

pub async fn run(ctx: &Ctx, peer: Peer, req: &Request) -> Result<Answer, AdminError> {
    let (jobs, batch) = parse(req)?;
    ctx.admit(peer, jobs.len())?;
    let stored = ctx.queue.enqueue(jobs, batch).await?;
    if batch {
        let views: Vec<JobView> = stored.iter().map(view).collect();
        let json = serde_json::to_string(&views).map_err(unwritable)?;
        Ok(Answer {
            fields: Map::new(),
            raw: vec![("jobs", json)],
        })
    } else {
        let duplicate = stored.first().is_some_and(|e| e.duplicate);
        let job = stored.first().map(|e| serde_json::to_value(view(e)));
        let job = job.transpose().map_err(unwritable)?;
        Ok(crate::result! { "job": job, "duplicate": duplicate }.into())
    }
}

/// Jobs are plain strings and numbers, so this never happens; if it did,
/// the jobs are stored and the client is told the answer is lost.
fn unwritable(e: serde_json::Error) -> AdminError {
    AdminError::new(
        Code::Internal,
        format!("the jobs were stored, but the answer cannot be written: {e}"),
    )
}

fn new_job(args: EnqueueJob, at: &str) -> Result<NewJob, AdminError> {
    let when = match (args.run_at, args.delay) {
        (Some(_), Some(_)) => {
            return Err(AdminError::bad_request(format!(
                "{at}run_at, {at}delay: give one or the other, not both"
            )));
        }
        (Some(text), None) => RunAt::At(protocol::parse_time(&format!("{at}run_at"), &text)?),
        (None, Some(secs)) => RunAt::After(Duration::from_secs(secs)),
        (None, None) => RunAt::Now,
    };
    let mut job = NewJob::new(args.name, args.payload.job_type, args.payload.data);
    job.description = args.description.unwrap_or_default();
    job.retry_count = args.payload.options.retry_count;
    job.timeout_s = args.payload.options.timeout;
    job.limits = Limits {
        memory_max: args.payload.options.memory_max,
        tasks_max: args.payload.options.tasks_max,
    };
    job.when = when;
    job.priority = args.priority.unwrap_or(0);
    job.unique_key = args.unique_key;
    Ok(job)
}

fn view(e: &Enqueued) -> JobView<'_> {
    JobView::new(&e.job).duplicate(e.duplicate)
}
