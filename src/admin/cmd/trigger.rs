//! `trigger`: runs a cron now, enabled or not, and answers when it has
//! done its part.

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::Request;
use crate::admin::protocol::{self, AdminError};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let IdArg { id } = req.args_with_id()?;
    let fired = ctx.scheduler.trigger(&id).await?;
    let mut run = fired.run.as_ref().map_or(Value::Null, protocol::run);
    if let (Some(drain), Value::Object(map)) = (fired.drain, &mut run) {
        map.insert("processed".into(), drain.processed.into());
        map.insert("failed".into(), drain.failed.into());
        map.insert("recovered".into(), drain.recovered.into());
    }
    Ok(crate::result! { "run": run })
}
