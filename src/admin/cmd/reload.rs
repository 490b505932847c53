//! `reload`: re-reads the crons file; a bad file changes nothing. The new
//! definitions are published to the other daemons on the database before
//! the answer, so a `crons` on any of them right after sees them.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::AdminError;

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let report = ctx.scheduler.reload()?;
    if let Err(e) = ctx.scheduler.sync_cluster().await {
        // The table is reloaded; the scheduler publishes at its next turn.
        tracing::warn!(error = %e, "could not publish the reloaded crons to the database yet: {e}");
    }
    Ok(crate::result! {
        "added": report.added,
        "removed": report.removed,
        "changed": report.changed,
    })
}
