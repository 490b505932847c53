//! `job`: one job and its last failures.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{self, AdminError, Request};

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
        "job": protocol::job(&job),
        "errors": errors.iter().map(protocol::attempt_error).collect::<Vec<_>>(),
    })
}
