//! `enable` and `disable`: a cron's switch, persisted across restarts.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{self, AdminError, Request};

pub async fn run(
    ctx: &Ctx,
    req: &Request,
    enabled: bool,
) -> Result<Map<String, Value>, AdminError> {
    let IdArg { id } = req.args_with_id()?;
    let view = ctx.scheduler.set_enabled(&id, enabled).await?;
    let last = ctx.queue.store().runs(id, 1).await?;
    Ok(crate::result! { "cron": protocol::cron(&view, last.first()) })
}
