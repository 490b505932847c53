//! `log_level`: changes the log filter at runtime.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::LogLevelArgs;
use crate::admin::protocol::{AdminError, Code, Request};

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The level asked for, checked against the five names.
pub(super) fn parse(req: &Request) -> Result<String, AdminError> {
    let LogLevelArgs { level } = req.args()?;
    if !LEVELS.contains(&level.as_str()) {
        return Err(AdminError::bad_request(format!(
            "level: {level:?} is not one of error, warn, info, debug, trace"
        )));
    }
    Ok(level)
}

pub fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let level = parse(req)?;
    let Some(set) = &ctx.log_level else {
        return Err(AdminError::new(
            Code::Unavailable,
            "this daemon was started without a reloadable log filter",
        ));
    };
    let now = set(&level).map_err(|e| AdminError::new(Code::Internal, e))?;
    tracing::info!(level = %now, "log level changed");
    Ok(crate::result! { "level": now })
}
