//! `job`: one job and its last failures, from the queue while it is there,
//! else from the history of finished jobs.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{self, AdminError, Request};
use crate::config::describe_span;
use crate::queue::Queue;
use crate::queue::job::{Job, JobStatus};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let IdArg { id } = req.args_with_id()?;
    let queue = &ctx.queue;
    let now = queue.clock().now_ms();
    let store = queue.store();
    if let Some((job, errors)) = store.get(id.clone(), now).await? {
        let mut shown = with_progress(ctx, &job);
        // A dead job's end is in the history too (with its result).
        if job.status == JobStatus::Dead
            && let Some(record) = store.finished_job(id).await?
        {
            shown = protocol::with_ending(shown, &record);
        }
        return Ok(crate::result! {
            "job": shown,
            "errors": errors.iter().map(protocol::attempt_error).collect::<Vec<_>>(),
        });
    }
    match store.finished_job(id.clone()).await? {
        Some(record) => Ok(crate::result! {
            "job": protocol::finished_job(&record),
            "errors": Vec::<Value>::new(),
        }),
        None => Err(not_found(queue, &id)),
    }
}

/// No job has `id`, in the queue or the history: says how long the history
/// keeps finished jobs, so "not found" is not read as "never existed".
pub(super) fn not_found(queue: &Queue, id: &str) -> AdminError {
    let config = queue.config();
    let kept = if config.history {
        format!(
            "finished jobs are kept for {}",
            describe_span(config.history_retention)
        )
    } else {
        "finished jobs are not kept: JOB_HISTORY=off".to_string()
    };
    AdminError::not_found(format!("no job has id {id:?} ({kept})"))
}

/// A job as the protocol writes it, with `progress` when it is running and
/// its handler has reported some.
pub(super) fn with_progress(ctx: &Ctx, job: &Job) -> Value {
    let mut value = protocol::job(job);
    if job.status == JobStatus::Running
        && let Some(progress) = ctx.queue.progress_of(&job.id, job.attempts)
        && let Value::Object(map) = &mut value
    {
        map.insert(
            "progress".into(),
            serde_json::to_value(progress).unwrap_or(Value::Null),
        );
    }
    value
}
