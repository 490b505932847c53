//! `crons`: every cron with its next and last run, and where the other
//! daemons on the database define it differently.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::{self, AdminError};

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    // The switches and the other daemons' definitions as of now, not as of
    // this daemon's last fire.
    ctx.scheduler.sync_cluster().await?;
    let last = ctx.queue.store().last_runs().await?;
    let crons: Vec<Value> = ctx
        .scheduler
        .views()
        .iter()
        .map(|view| protocol::cron(view, last.get(&view.spec.id).map(|(run, _)| run)))
        .collect();
    Ok(crate::result! { "crons": crons })
}
