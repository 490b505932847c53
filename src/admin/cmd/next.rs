//! `next`: the next fire times of any expression, without a cron.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::{self, AdminError, Request};
use crate::cron::schedule::{Schedule, default_timezone, parse_timezone};

pub const MAX_COUNT: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    schedule: String,
    count: Option<usize>,
    timezone: Option<String>,
    after: Option<String>,
}

pub fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let args: Args = req.args()?;
    let count = args.count.unwrap_or(5);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(AdminError::bad_request(format!(
            "count: must be from 1 to {MAX_COUNT}, got {count}"
        )));
    }
    let schedule = Schedule::parse(&args.schedule)
        .map_err(|e| AdminError::bad_request(format!("schedule: {e}")))?;
    let tz = match &args.timezone {
        Some(name) => {
            parse_timezone(name).map_err(|e| AdminError::bad_request(format!("timezone: {e}")))?
        }
        None => default_timezone(ctx.queue.config().cron_tz.as_deref())
            .map_err(|e| AdminError::bad_request(format!("CRON_TZ: {e}")))?,
    };
    let after = match &args.after {
        Some(text) => protocol::parse_time("after", text)?,
        None => ctx.queue.clock().now_ms(),
    };
    let after = jiff::Timestamp::from_millisecond(after)
        .map_err(|e| AdminError::bad_request(format!("after: {e}")))?;
    let next: Vec<Value> = schedule
        .upcoming(after, &tz, count)
        .into_iter()
        .map(|t| protocol::time(t.as_millisecond()))
        .collect();
    Ok(crate::result! { "next": next })
}
