//! `cron`: one cron and its recent runs, newest first.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::CronQuery;
use crate::admin::protocol::{self, AdminError, Request};
use crate::store::run::KEPT_RUNS;

/// The cron's id and the number of runs wanted, checked.
pub(super) fn parse(req: &Request) -> Result<(String, usize), AdminError> {
    let args: CronQuery = req.args_with_id()?;
    let limit = args.limit.unwrap_or(20);
    if !(1..=KEPT_RUNS as usize).contains(&limit) {
        return Err(AdminError::bad_request(format!(
            "limit: must be from 1 to {KEPT_RUNS} (runs kept per cron), got {limit}"
        )));
    }
    Ok((args.id, limit))
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let (id, limit) = parse(req)?;
    ctx.scheduler.sync_cluster().await?;
    let view = ctx.scheduler.view(&id)?;
    let runs = ctx.queue.store().runs(id, limit).await?;
    Ok(crate::result! {
        "cron": protocol::cron(&view, runs.first()),
        "runs": runs.iter().map(protocol::run).collect::<Vec<_>>(),
    })
}
