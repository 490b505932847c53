//! `purge`: deletes dead jobs, optionally only old ones.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::PurgeArgs;
use crate::admin::protocol::{AdminError, Request};

/// `older_than`, once the arguments are checked.
pub(super) fn parse(req: &Request) -> Result<Option<u64>, AdminError> {
    let args: PurgeArgs = req.args()?;
    if args.status != "dead" {
        return Err(AdminError::bad_request(format!(
            "status: only \"dead\" jobs can be purged, not {:?}",
            args.status
        )));
    }
    Ok(args.older_than)
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let older_than = parse(req)?;
    let before = match older_than {
        None => None,
        Some(secs) => {
            let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            Some(ctx.queue.clock().now_ms().saturating_sub(ms))
        }
    };
    let purged = ctx.queue.store().purge_dead(before).await?;
    Ok(crate::result! { "purged": purged })
}
