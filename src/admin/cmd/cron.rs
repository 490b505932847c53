//! `cron`: one cron and its recent runs, newest first.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::{self, AdminError, Request};
use crate::store::crons::KEPT_RUNS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    id: String,
    limit: Option<usize>,
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let args: Args = req.args_with_id()?;
    let limit = args.limit.unwrap_or(20);
    if !(1..=KEPT_RUNS as usize).contains(&limit) {
        return Err(AdminError::bad_request(format!(
            "limit: must be from 1 to {KEPT_RUNS} (runs kept per cron), got {limit}"
        )));
    }
    let view = ctx.scheduler.view(&args.id)?;
    let runs = ctx.queue.store().runs(args.id, limit).await?;
    Ok(crate::result! {
        "cron": protocol::cron(&view, runs.first()),
        "runs": runs.iter().map(protocol::run).collect::<Vec<_>>(),
    })
}
