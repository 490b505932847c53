//! `cancel`: deletes a job that is not running.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{AdminError, Request};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let IdArg { id } = req.args_with_id()?;
    let now = ctx.queue.clock().now_ms();
    match ctx.queue.store().cancel(id.clone(), now).await? {
        Ok(()) => Ok(crate::result! { "cancelled": id }),
        Err(refusal) => Err(super::retry::refused(&id, refusal, "cancelled")),
    }
}
