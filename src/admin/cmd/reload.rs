//! `reload`: re-reads the crons file; a bad file changes nothing.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::AdminError;

pub fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let report = ctx.scheduler.reload()?;
    Ok(crate::result! {
        "added": report.added,
        "removed": report.removed,
        "changed": report.changed,
    })
}
