//! `crons`: every cron with its next and last run.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::{self, AdminError};

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let last = ctx.queue.store().last_runs().await?;
    let crons: Vec<Value> = ctx
        .scheduler
        .views()
        .iter()
        .map(|view| protocol::cron(view, last.get(&view.spec.id).map(|(run, _)| run)))
        .collect();
    Ok(crate::result! { "crons": crons })
}
