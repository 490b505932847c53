//! `jobs`: a filtered listing, newest first, paged by cursor.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::JobsQuery;
use crate::admin::protocol::{self, AdminError, Request};
use crate::queue::job::JobStatus;
use crate::store::ListFilter;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// The listing's filter, every argument checked.
pub(super) fn parse(req: &Request) -> Result<ListFilter, AdminError> {
    let args: JobsQuery = req.args()?;
    let status = match args.status.as_deref() {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            AdminError::bad_request(format!(
                "status: {text:?} is not one of pending, scheduled, running, dead"
            ))
        })?),
    };
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AdminError::bad_request(format!(
            "limit: must be from 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    let filter = ListFilter {
        job_type: args.job_type,
        status,
        since: args
            .since
            .map(|t| protocol::parse_time("since", &t))
            .transpose()?,
        until: args
            .until
            .map(|t| protocol::parse_time("until", &t))
            .transpose()?,
        limit,
        after: args.after.map(|c| parse_cursor(&c)).transpose()?,
    };
    Ok(filter)
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let filter = parse(req)?;
    let now = ctx.queue.clock().now_ms();
    let (jobs, more) = ctx.queue.store().list(filter, now).await?;
    let next = match (more, jobs.last()) {
        (true, Some(last)) => Value::String(format!("{}.{}", last.created, last.id)),
        _ => Value::Null,
    };
    Ok(crate::result! {
        "jobs": jobs.iter().map(|j| super::job::with_progress(ctx, j)).collect::<Vec<_>>(),
        "next": next,
    })
}

/// A cursor is `CREATED_MS.ID` of the last job of the previous page.
fn parse_cursor(text: &str) -> Result<(i64, String), AdminError> {
    let bad = || {
        AdminError::bad_request(format!(
            "after: {text:?} is not a cursor from a previous page's \"next\""
        ))
    };
    let (created, id) = text.split_once('.').ok_or_else(bad)?;
    let created = created.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((created, id.to_string()))
}
