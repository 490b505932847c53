//! `job`: one job and its last failures.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{self, AdminError, Request};
use crate::queue::job::{Job, JobStatus};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let IdArg { id } = req.args_with_id()?;
    let now = ctx.queue.clock().now_ms();
    let (job, errors) = ctx
        .queue
        .store()
        .get(id.clone(), now)
        .await?
        .ok_or_else(|| {
            AdminError::not_found(format!(
                "no job has id {id:?} (jobs that succeeded are deleted)"
            ))
        })?;
    Ok(crate::result! {
        "job": with_progress(ctx, &job),
        "errors": errors.iter().map(protocol::attempt_error).collect::<Vec<_>>(),
    })
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
