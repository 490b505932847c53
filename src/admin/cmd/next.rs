//! `next`: the next fire times of any expression, without a cron.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::NextQuery;
use crate::admin::protocol::{self, AdminError, Request};
use crate::cron::schedule::{Schedule, default_timezone, parse_timezone};

pub const MAX_COUNT: usize = 100;

/// The arguments, checked: everything but the defaults that need the daemon.
pub(super) struct Parsed {
    schedule: Schedule,
    count: usize,
    timezone: Option<jiff::tz::TimeZone>,
    after: Option<i64>,
}

pub(super) fn parse(req: &Request) -> Result<Parsed, AdminError> {
    let args: NextQuery = req.args()?;
    let count = args.count.unwrap_or(5);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(AdminError::bad_request(format!(
            "count: must be from 1 to {MAX_COUNT}, got {count}"
        )));
    }
    let schedule = Schedule::parse(&args.schedule)
        .map_err(|e| AdminError::bad_request(format!("schedule: {e}")))?;
    let timezone = args
        .timezone
        .map(|name| {
            parse_timezone(&name).map_err(|e| AdminError::bad_request(format!("timezone: {e}")))
        })
        .transpose()?;
    let after = args
        .after
        .map(|text| protocol::parse_time("after", &text))
        .transpose()?;
    Ok(Parsed {
        schedule,
        count,
        timezone,
        after,
    })
}

pub fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let Parsed {
        schedule,
        count,
        timezone,
        after,
    } = parse(req)?;
    let tz = match timezone {
        Some(tz) => tz,
        None => default_timezone(ctx.queue.config().cron_tz.as_deref())
            .map_err(|e| AdminError::bad_request(format!("CRON_TZ: {e}")))?,
    };
    let after = after.unwrap_or_else(|| ctx.queue.clock().now_ms());
    let after = jiff::Timestamp::from_millisecond(after)
        .map_err(|e| AdminError::bad_request(format!("after: {e}")))?;
    let next: Vec<Value> = schedule
        .upcoming(after, &tz, count)
        .into_iter()
        .map(|t| protocol::time(t.as_millisecond()))
        .collect();
    Ok(crate::result! { "next": next })
}
