//! `cancel`: deletes a job that is not running (its history record says
//! `cancelled`); or, with a `filter`, every such job it matches (see
//! `bulk`).

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{AdminError, Request};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    if super::bulk::is_bulk(req) {
        return super::bulk::cancel(ctx, req).await;
    }
    let IdArg { id } = req.args_with_id()?;
    let now = ctx.queue.clock().now_ms();
    match ctx.queue.store().cancel(id.clone(), now).await? {
        Ok(()) => Ok(crate::result! { "cancelled": id }),
        Err(refusal) => Err(super::retry::refused(&id, refusal, "cancelled")),
    }
}
